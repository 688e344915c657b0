"""python -m cdp_jax.datasets {list | generate NAME | download NAME | check-d4rl ID | convert-robosuite FILE} ...

    python -m cdp_jax.datasets list
    python -m cdp_jax.datasets download d4rl/hopper-medium-replay-v2     (D4RL's own file, to $D4RL_DATASET_DIR)
    python -m cdp_jax.datasets check-d4rl d4rl/hopper-medium-replay-v2   (replays its states in the evaluation env)
    python -m cdp_jax.datasets generate pointmaze-umaze --steps=1000000
    python -m cdp_jax.datasets convert-robosuite demo.hdf5 [--images] [--dataset_id=OUT.hdf5]
        (your own robosuite demonstrations, replayed into robomimic's layout: datasets/robosuite_demos.py)
    python -m cdp_jax.datasets download robomimic-transport [--kind=ph|mh] [--obs=low_dim|image]
        (robomimic's released v1.5 demonstrations, needs a network: datasets/robomimic_download.py)
    python -m cdp_jax.datasets generate mujoco --env=Hopper-v5 --levels=simple,medium,expert [--train_steps=1000000]
        [--expert_return=R] [--workdir=DIR] [--official_ids]          (SAC behaviour policies: generators/mujoco.py)
"""
from __future__ import annotations

import glob
import os
import sys
import time

from absl import flags

from cdp_jax.train.cli import run_flags_cli
from cdp_jax.datasets import d4rl, robomimic_download, robomimic_releases, robosuite_demos
from cdp_jax.envs import robomimic_env
from cdp_jax.datasets.generators import GENERATORS, generate
from cdp_jax.datasets.loading import datasets_root
from cdp_jax.datasets.generators import mujoco
from cdp_jax.io.stopping import Stopped, report, stop_promptly


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("steps", None, "number of transitions (default: the generator's)", flag_values=fv)
    flags.DEFINE_string("dataset_id", None, "Minari id to write (default: local/...); convert-robosuite: the output "
                        "file (default: FILE_low_dim.hdf5 or FILE_image.hdf5 beside it)", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "generator seed", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "replace an existing dataset of that id", flag_values=fv)
    flags.DEFINE_string("kind", "ph", "download: robomimic demonstrators, ph (proficient human) or mh (multi-human)",
                        flag_values=fv)
    flags.DEFINE_string("obs", "low_dim", "download: robomimic observations, low_dim or image", flag_values=fv)
    flags.DEFINE_bool("images", False, "robomimic: also render agentview and eye-in-hand camera frames",
                      flag_values=fv)
    flags.DEFINE_integer("image_size", 84, "robomimic --images: square camera size (robomimic: 84)", flag_values=fv)
    # mujoco only (SAC behaviour policies)
    flags.DEFINE_string("env", "Hopper-v5", "mujoco: any gymnasium id with a Box action space", flag_values=fv)
    flags.DEFINE_string("levels", "simple,medium,expert", "mujoco: comma list of simple, medium, expert, "
                        "medium-replay, medium-expert", flag_values=fv)
    flags.DEFINE_integer("train_steps", 1_000_000, "mujoco: SAC environment steps at most", flag_values=fv)
    flags.DEFINE_integer("eval_every", 10_000, "mujoco: environment steps between evaluations", flag_values=fv)
    flags.DEFINE_integer("start_steps", 5_000, "mujoco: uniform random actions before SAC acts", flag_values=fv)
    flags.DEFINE_integer("update_every", 1_000, "mujoco: env steps per compiled block of as many updates",
                         flag_values=fv)
    flags.DEFINE_float("expert_return", 0.0, "mujoco: R_E (default: the D4RL reference if known)", flag_values=fv)
    flags.DEFINE_string("workdir", "", "mujoco: SAC checkpoints and snapshots (default runs/sac/ENV-seedS)",
                        flag_values=fv)
    flags.DEFINE_bool("official_ids", False, "mujoco: write mujoco/ENV/LEVEL-v0 instead of local/...", flag_values=fv)


def list_datasets() -> None:
    import minari

    local = minari.list_local_datasets()
    print(f"Datasets on disk under {datasets_root()} ({len(local)}):")
    for did, meta in sorted(local.items()):
        print(f"  {did:36s} {int(meta.get('total_steps', 0)):>9d} steps {int(meta.get('total_episodes', 0)):>7d} "
              f"episodes")
    robomimic = sorted(glob.glob(os.path.join(datasets_root(), "robomimic", "**", "*.hdf5"), recursive=True))
    print(f"robomimic files under {os.path.join(datasets_root(), 'robomimic')} ({len(robomimic)}; the dataset_id is "
          f"the path below the datasets folder):")
    for path in robomimic:
        print(f"  {os.path.relpath(path, datasets_root()):44s} {os.path.getsize(path) / 2**20:>9.1f} MiB")
    print("Generators (python -m cdp_jax.datasets generate NAME):")
    for g in GENERATORS.values():
        print(f"{g.name:18s} {g.dataset_id:28s} {g.default_steps:>9d} steps  {g.summary}")
    print(f"{'mujoco':18s} {'local/mujoco/ENV/LEVEL-v0':28s} {1_000_000:>9d} steps  SAC behaviour policies "
          f"(levels simple, medium, expert, medium-replay, medium-expert)")
    print("robomimic's released demonstrations (python -m cdp_jax.datasets download robomimic-TASK [--kind] [--obs]):")
    for kind, tasks in robomimic_releases.RELEASED.items():
        print(f"  --kind={kind}: {', '.join(tasks)}; --obs={' or '.join(robomimic_releases.OBSERVATIONS)}")


def run(args: list[str], fv: flags.FlagValues) -> int:
    if args == ["list"]:
        list_datasets()
        return 0
    if len(args) != 2 or args[0] not in ("generate", "download", "check-d4rl", "convert-robosuite"):
        print(f"error: expected `list`, `generate NAME` (NAME one of {sorted(GENERATORS) + ['mujoco']}), "
              f"`download robomimic-TASK`, `download d4rl/NAME`, `check-d4rl ID` or `convert-robosuite FILE`, got "
              f"{' '.join(args) or 'nothing'}", file=sys.stderr)
        return 2
    name, start = args[1], time.time()
    try:
        with stop_promptly(f"`{args[0]} {name}`"):
            path = _make(args[0], name, fv)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Stopped as err:
        return report(err)
    if path:
        print(f"wrote {path} in {time.time() - start:.1f}s")
    return 0


def _make(command: str, name: str, fv: flags.FlagValues) -> str:
    """Runs ``generate``, ``download`` or ``check-d4rl`` on ``name``; returns what was written ('' for a check)."""
    if command == "check-d4rl":
        report = d4rl.replay_error(name)
        print(f"{name}: {report['rows']} rows replayed in {report['env']}: largest next-observation difference "
              f"{report['max_obs_error']:.3g}, largest reward difference {report['max_reward_error']:.3g}")
        return ""
    if command == "convert-robosuite":
        return convert_robosuite(name, fv)
    if command == "download" and name.startswith(d4rl.PREFIX):
        path = d4rl.locate(name)[1]
    elif command == "download":
        if not name.startswith("robomimic-"):
            raise ValueError(f"only robomimic and D4RL files are downloaded here (robomimic-TASK, d4rl/NAME), got "
                             f"{name!r}; Minari datasets download with `minari download ID` or on a sweep's "
                             f"first use")
        path = robomimic_download.download(name.removeprefix("robomimic-"), fv.kind, fv.obs,
                                           overwrite=fv.overwrite)
    elif name == "mujoco":
        report = mujoco.generate(mujoco.Options(
            env_id=fv.env, levels=fv.levels, steps=fv.steps or 1_000_000, train_steps=fv.train_steps,
            eval_every=fv.eval_every, start_steps=fv.start_steps, update_every=fv.update_every,
            expert_return=fv.expert_return, seed=fv.seed, workdir=fv.workdir, official_ids=fv.official_ids,
            overwrite=fv.overwrite))
        for level, did in report["datasets"].items():
            print(f"{level:14s} {did}")
        path = ", ".join(report["datasets"].values())
    else:
        path = generate(name, fv.dataset_id, fv.steps, fv.seed, fv.overwrite,
                        image_size=fv.image_size if fv.images else 0)
    return path


def convert_robosuite(path: str, fv: flags.FlagValues) -> str:
    kind = "image" if fv.images else "low_dim"
    out = fv.dataset_id or f"{os.path.splitext(path)[0]}_{kind}.hdf5"
    report = robosuite_demos.convert(path, out, images=fv.images, image_size=fv.image_size, overwrite=fv.overwrite)
    task = robomimic_env.task_from_env_name(report["env_name"]) + ("-image" if fv.images else "")
    print(f"{report['demos']} demos ({report['frames']} frames) of {report['env_name']}, "
          f"{report['seconds_per_demo']:.2f} s per demo, largest state-replay error {report['max_state_error']:.2g}\n"
          f"train on it: python -m experiments.sweep --config=experiments/configs/robomimic.py:{task} "
          f"--config.dataset_id={os.path.abspath(out)} --config.generate=''")
    return out


def main(argv: list[str]) -> int:
    """``argv`` without the program name, e.g. ``["generate", "pointmaze-umaze", "--steps=1000"]``."""
    return run_flags_cli(["python -m cdp_jax.datasets", *argv], __doc__, define_flags, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
