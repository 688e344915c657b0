"""python -m cdp_jax.datasets {list, generate NAME [--steps N] [--dataset-id ID] [--seed S] [--overwrite]}

    python -m cdp_jax.datasets generate mujoco --env Hopper-v5 --levels simple,medium,expert [--steps 1000000]
        [--train-steps 1000000] [--expert-return R] [--workdir DIR] [--official-ids]   (cdp_jax.datasets.mujoco)
"""
from __future__ import annotations

import argparse
import sys
import time

from cdp_jax.datasets.registry import GENERATORS, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdp_jax.datasets", description="Generate Minari datasets offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the datasets on disk and the generators")
    gen = sub.add_parser("generate", help="generate a dataset under $MINARI_DATASETS_PATH")
    gen.add_argument("name", help=f"one of {sorted(GENERATORS) + ['mujoco']}")
    gen.add_argument("--steps", type=int, default=None, help="number of transitions (default: the generator's)")
    gen.add_argument("--dataset-id", default=None, help="Minari id to write (default: local/...)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that id")
    mj = gen.add_argument_group("mujoco (SAC behaviour policies; see cdp_jax/datasets/mujoco.py)")
    mj.add_argument("--env", default="Hopper-v5", help="any gymnasium id with a Box action space")
    mj.add_argument("--levels", default="simple,medium,expert",
                    help="comma list, increasing: simple,medium,expert; also medium-replay, medium-expert")
    mj.add_argument("--train-steps", type=int, default=1_000_000, help="SAC environment steps at most")
    mj.add_argument("--eval-every", type=int, default=10_000)
    mj.add_argument("--start-steps", type=int, default=5_000, help="uniform random actions before SAC acts")
    mj.add_argument("--update-every", type=int, default=1_000, help="env steps per compiled block of as many updates")
    mj.add_argument("--expert-return", type=float, default=0.0, help="R_E (default: the D4RL reference if known)")
    mj.add_argument("--workdir", default="", help="SAC checkpoints and snapshots (default runs/sac/ENV-seedS)")
    mj.add_argument("--official-ids", action="store_true", help="write mujoco/ENV/LEVEL-v0 instead of local/...")
    args = parser.parse_args(argv)
    if args.command == "list":
        import minari

        from cdp_jax.datasets.writing import datasets_root
        local = minari.list_local_datasets()
        print(f"Datasets on disk under {datasets_root()} ({len(local)}):")
        for did, meta in sorted(local.items()):
            print(f"  {did:36s} {int(meta.get('total_steps', 0)):>9d} steps {int(meta.get('total_episodes', 0)):>7d} "
                  f"episodes")
        print("Generators (python -m cdp_jax.datasets generate NAME):")
        for g in GENERATORS.values():
            print(f"{g.name:18s} {g.dataset_id:28s} {g.default_steps:>9d} steps  {g.summary}")
        print(f"{'mujoco':18s} {'local/mujoco/ENV/LEVEL-v0':28s} {1_000_000:>9d} steps  SAC behaviour policies "
              f"(levels simple, medium, expert, medium-replay, medium-expert)")
        return 0
    start = time.time()
    try:
        if args.name == "mujoco":
            from cdp_jax.datasets import mujoco
            report = mujoco.generate(mujoco.Options(
                env_id=args.env, levels=args.levels, steps=args.steps or 1_000_000, train_steps=args.train_steps,
                eval_every=args.eval_every, start_steps=args.start_steps,
                update_every=args.update_every, expert_return=args.expert_return, seed=args.seed, workdir=args.workdir,
                official_ids=args.official_ids, overwrite=args.overwrite))
            for level, did in report["datasets"].items():
                print(f"{level:14s} {did}")
            path = ", ".join(report["datasets"].values())
        else:
            path = generate(args.name, args.dataset_id, args.steps, args.seed, args.overwrite)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} in {time.time() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
