"""``generate mujoco``: locomotion datasets from JAX SAC behaviour policies, Minari's recipe without a network.

    python -m cdp_jax.datasets generate mujoco --env Hopper-v5 --levels simple,medium,expert [--steps 1000000]

Levels are defined by the policy's evaluated return relative to an expert return ``R_E``:

=========  =====================================================================================
simple     the first evaluated SAC snapshot with return >= 0.1 R_E
medium     the first snapshot with return >= R_E / 3 (D4RL: "about 1/3 of the expert")
expert     the first snapshot with return >= 0.9 R_E; the best one if the training budget ends first
=========  =====================================================================================

``R_E`` is ``--expert_return``, else the D4RL reference expert return for Hopper, Walker2d, HalfCheetah, Ant and
the pendulums (:data:`REFERENCE_EXPERT_RETURNS`), else (any other environment) the best evaluated return after
the whole training budget. With ``R_E`` known, training stops as soon as the highest requested level is reached.
Derived datasets: ``medium-replay`` is SAC's replay buffer up to the medium snapshot (D4RL's recipe) and
``medium-expert`` the concatenation of the medium and expert datasets.

Each level's dataset has ``--steps`` transitions from its snapshot's stochastic policy, episode ``k`` reset with
seed ``123 + k`` as Minari's collection scripts do. ``ref_min_score`` is the mean return of a uniform random policy
and ``ref_max_score`` that of the expert snapshot (``R_E`` when no expert was trained), each over 100 episodes.
Training state (agent, replay buffer, step) is checkpointed with orbax at every evaluation in ``--workdir``; a
rerun of the same command resumes it. Every evaluated snapshot is kept in ``WORKDIR/snapshots`` (with its step,
return and the training wall time so far) and each level's in ``WORKDIR/levels/LEVEL.msgpack``; the report
(levels, reference scores, timings) is ``WORKDIR/levels/datasets.json``.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import time

import flax.serialization
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from cdp_jax.datasets.generators import sac
from cdp_jax.datasets.loading import datasets_root
from cdp_jax.datasets.generators.collection import collect, env_actions, replay_episodes, snapshot_actor
from cdp_jax.datasets.generators.writing import mean_return, write_dataset
from cdp_jax.io import atomic_write_bytes, atomic_write_text
from cdp_jax.io import stopping
from cdp_jax.io.checkpoint import CheckpointError, Checkpoints

LEVELS = ("simple", "medium", "expert")
LEVEL_FRACTIONS = {"simple": 0.1, "medium": 1.0 / 3.0, "expert": 0.9}
DERIVED = {"medium-replay": ("medium",), "medium-expert": ("medium", "expert")}
REFERENCE_EXPERT_RETURNS = {"Hopper": 3234.3, "Walker2d": 4592.3, "HalfCheetah": 12135.0, "Ant": 3879.7,
                            "InvertedPendulum": 1000.0, "InvertedDoublePendulum": 9350.0}


@dataclasses.dataclass
class Options:
    """Everything ``generate mujoco`` takes (the CLI flags)."""

    env_id: str = "Hopper-v5"
    levels: tuple = LEVELS
    steps: int = 1_000_000                  # transitions per level dataset
    train_steps: int = 1_000_000            # SAC environment steps at most (= updates, after start_steps)
    start_steps: int = 5_000                # uniform random actions first
    update_every: int = 1_000               # env steps between compiled update blocks (update-to-data ratio 1)
    eval_every: int = 10_000
    eval_episodes: int = 5
    expert_return: float = 0.0              # 0: the reference table, else measured
    ref_episodes: int = 100
    seed: int = 0
    workdir: str = ""                       # default: runs/sac/<env>-seed<seed>
    official_ids: bool = False
    overwrite: bool = False
    progress: bool = True


def env_name(env_id: str) -> str:
    """``Hopper-v5 -> Hopper``."""
    return env_id.split("/")[-1].split("-v")[0]


def dataset_id(env_id: str, level: str, official: bool = False) -> str:
    return f"{'' if official else 'local/'}mujoco/{env_name(env_id).lower()}/{level}-v0"


def parse_levels(levels) -> tuple:
    """Validates a level list (``"simple,medium,expert"`` or a sequence); base levels must be in increasing order."""
    names = [s.strip() for s in (levels.split(",") if isinstance(levels, str) else levels) if s.strip()]
    if not names:
        raise ValueError(f"--levels is empty; choose from {LEVELS + tuple(DERIVED)}")
    for name in names:
        if name not in LEVELS and name not in DERIVED:
            raise ValueError(f"unknown level {name!r}; choose from {LEVELS + tuple(DERIVED)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--levels {','.join(names)} repeats a level")
    base = [n for n in names if n in LEVELS]
    if base != sorted(base, key=LEVELS.index):
        raise ValueError(f"--levels {','.join(names)} are out of order: base levels must increase as "
                         f"{','.join(LEVELS)}")
    for name in names:
        missing = [p for p in DERIVED.get(name, ()) if p not in base]
        if missing:
            raise ValueError(f"level {name!r} needs {missing} in --levels too (it is built from them)")
    order = LEVELS + tuple(DERIVED)              # a derived level is collected after the levels it is built from
    return tuple(sorted(names, key=order.index))


def check_env(env_id: str) -> gym.Env:
    """Makes ``env_id``, refusing unknown ids and non-Box action spaces in one line each."""
    try:
        gym.spec(env_id)
    except gym.error.Error:
        raise ValueError(f"unknown environment {env_id!r}; give a registered gymnasium id such as Hopper-v5, "
                         f"Walker2d-v5 or HalfCheetah-v5") from None
    env = gym.make(env_id)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"environment {env_id!r} has a {type(env.action_space).__name__} action space; SAC and the "
                         f"diffusion policies need a continuous Box action space")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        raise ValueError(f"environment {env_id!r} has observation space {env.observation_space}; only flat Box "
                         f"observations are supported")
    return env


# ---------------------------------------------------------------------------------------------------- training

class Trainer:
    """SAC on ``options.env_id`` with evaluation, snapshots and orbax checkpoints in ``workdir``."""

    def __init__(self, options: Options, env: gym.Env):
        self.o, self.env = options, env
        self.workdir = options.workdir or os.path.join("runs", "sac", f"{options.env_id}-seed{options.seed}")
        os.makedirs(os.path.join(self.workdir, "snapshots"), exist_ok=True)
        self.obs_dim, self.act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        self.scale = env_actions(env.action_space)
        if options.eval_every % options.update_every:
            raise ValueError(f"eval_every={options.eval_every} must be a multiple of update_every={options.update_every}")

    def history(self) -> list[dict]:
        """Every evaluated snapshot so far: ``[{step, return, path}]`` in step order."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.workdir, "snapshots", "*.json"))):
            with open(path) as f:
                out.append(json.load(f))
        return sorted(out, key=lambda r: r["step"])

    def _save_snapshot(self, step: int, params, ret: float, wall_s: float) -> None:
        stem = os.path.join(self.workdir, "snapshots", f"{step:09d}")
        atomic_write_bytes(stem + ".msgpack", flax.serialization.to_bytes(params))
        atomic_write_text(stem + ".json", json.dumps({"step": step, "return": ret, "wall_s": round(wall_s, 1),
                                                      "path": stem + ".msgpack"}))

    def train(self, expert_return: float) -> tuple[dict, "sac.ReplayBuffer"]:
        """Trains until the highest requested level is reached (``expert_return > 0``) or the budget ends.
        Returns ``(levels {name: snapshot record}, replay buffer)``."""
        o = self.o
        wanted = [lv for lv in LEVELS if lv in o.levels or any(lv in DERIVED.get(d, ()) for d in o.levels)]
        key = jax.random.PRNGKey(o.seed)
        agent = sac.SACAgent.create(sac.default_config(), key, self.obs_dim, self.act_dim)
        buffer = sac.ReplayBuffer.create(o.train_steps, self.obs_dim, self.act_dim)
        ckpt = Checkpoints(self.workdir, max_to_keep=1)
        start = self.resumed_from = ckpt.latest_step() or 0
        if start:
            try:
                state = ckpt.restore(start, {"agent": agent, "buffer": buffer})
            except CheckpointError:
                raise ValueError(f"the SAC checkpoint in {self.workdir} does not fit this run (it was made with "
                                 f"another --train_steps or environment); use the same options or another "
                                 f"--workdir") from None
            agent, buffer = state["agent"], state["buffer"]
        history = self.history()
        levels = choose_levels(history, expert_return, wanted)
        wall0 = time.time() - (history[-1]["wall_s"] if history else 0.0)    # training wall time across resumes
        with tqdm(total=o.train_steps, initial=start, desc=f"SAC {o.env_id}", unit="step", disable=not o.progress,
                  dynamic_ncols=True) as bar:
            obs, _ = self.env.reset(seed=o.seed * 1_000_003 + start)
            staged = {f: [] for f in sac.ReplayBuffer.FIELDS}
            step = start
            while step < o.train_steps and not (expert_return > 0 and wanted[-1] in levels):
                stopping.check()                               # resumes from the last evaluation's checkpoint
                if step < o.start_steps:
                    a = np.random.default_rng((o.seed, step)).uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
                else:
                    a = np.asarray(agent.sample_actions(jnp.asarray(obs, jnp.float32), key, step))
                next_obs, reward, terminated, truncated, _ = self.env.step(self.scale(a))
                step += 1
                cut = step % o.eval_every == 0                 # every evaluation ends the episode (exact resumes)
                row = {"observations": obs, "actions": a, "rewards": reward, "next_observations": next_obs,
                       "terminals": terminated, "truncations": truncated or cut,
                       "episode_ends": terminated or truncated or cut}
                for f, v in row.items():
                    staged[f].append(np.asarray(v, np.float32))
                obs = next_obs
                if terminated or truncated:
                    obs, _ = self.env.reset()
                if step % o.update_every == 0:
                    buffer = buffer.add({f: jnp.asarray(np.stack(v)) for f, v in staged.items()})
                    staged = {f: [] for f in sac.ReplayBuffer.FIELDS}
                    if step >= o.start_steps:
                        agent, _ = sac.train_steps(agent, buffer, jax.random.fold_in(jax.random.fold_in(key, 2), step),
                                                         o.update_every)
                    bar.update(o.update_every)
                if cut:
                    params = jax.device_get(agent.actor.params)
                    ret = mean_return(self.env, snapshot_actor(params, self.scale), o.eval_episodes, seed=10_000 + step)
                    self._save_snapshot(step, params, ret, time.time() - wall0)
                    ckpt.save(step, {"agent": agent, "buffer": buffer})
                    levels = choose_levels(self.history(), expert_return, wanted)
                    bar.set_postfix(ret=f"{ret:.0f}", levels=",".join(levels) or "-")
                    obs, _ = self.env.reset(seed=o.seed * 1_000_003 + step)
        ckpt.close()
        history = self.history()
        if not history:
            raise ValueError(f"training stopped before its first evaluation; raise --train_steps above "
                             f"--eval_every={o.eval_every}")
        levels = choose_levels(history, expert_return or max(r["return"] for r in history), wanted, final=True)
        os.makedirs(os.path.join(self.workdir, "levels"), exist_ok=True)
        atomic_write_text(os.path.join(self.workdir, "levels", "levels.json"), json.dumps(levels, indent=1))
        return levels, buffer


def choose_levels(history: list[dict], expert_return: float, wanted, final: bool = False) -> dict:
    """``{level: snapshot record}`` for the levels that ``history`` already reaches (see the module docstring).
    With ``final``, an expert level that was never reached takes the best snapshot."""
    if expert_return <= 0:
        return {}
    out = {}
    for level in wanted:
        hit = [r for r in history if r["return"] >= LEVEL_FRACTIONS[level] * expert_return]
        if hit:
            out[level] = dict(hit[0], target=LEVEL_FRACTIONS[level] * expert_return)
        elif final and level == "expert" and history:
            out[level] = dict(max(history, key=lambda r: r["return"]), target=LEVEL_FRACTIONS[level] * expert_return,
                              note="target not reached within the training budget: the best snapshot")
    return out


def load_snapshot(path: str, like) -> dict:
    """Restores actor params saved by :meth:`Trainer._save_snapshot` into the structure of ``like``."""
    with open(path, "rb") as f:
        return flax.serialization.from_bytes(like, f.read())


def generate(options: Options) -> dict:
    """Trains (or resumes), then writes every requested level; returns ``{level: dataset id}`` (also written to
    ``WORKDIR/levels/datasets.json`` with returns and timings)."""
    o = dataclasses.replace(options, levels=parse_levels(options.levels))     # the caller's options stay as given
    for name in ("steps", "train_steps", "eval_every", "eval_episodes", "update_every", "ref_episodes"):
        if int(getattr(o, name)) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(o, name)}")
    env = check_env(o.env_id)
    ids = {lv: dataset_id(o.env_id, lv, o.official_ids) for lv in o.levels}
    for lv, did in ids.items():
        if os.path.exists(os.path.join(datasets_root(), did)) and not o.overwrite:
            raise FileExistsError(f"dataset {did!r} already exists; pass --overwrite to replace it")
    expert_return = o.expert_return or REFERENCE_EXPERT_RETURNS.get(env_name(o.env_id), 0.0)
    trainer = Trainer(o, env)
    t0 = time.time()
    levels, buffer = trainer.train(expert_return)
    timings = {"train_s": time.time() - t0}
    missing = [lv for lv in o.levels if lv in LEVELS and lv not in levels]
    if missing:
        best = max(r["return"] for r in trainer.history())
        raise ValueError(f"levels {missing} were not reached within --train_steps={o.train_steps} (best evaluated "
                         f"return {best:.1f}, expert return {expert_return:.1f}); raise --train_steps or lower "
                         f"--expert_return")
    like = jax.device_get(sac.SACAgent.create(sac.default_config(), jax.random.PRNGKey(0), trainer.obs_dim,
                                              trainer.act_dim).actor.params)
    snapshots = {lv: load_snapshot(rec["path"], like) for lv, rec in levels.items()}
    policies = {lv: snapshot_actor(params, trainer.scale) for lv, params in snapshots.items()}
    for lv, params in snapshots.items():
        atomic_write_bytes(os.path.join(trainer.workdir, "levels", f"{lv}.msgpack"), flax.serialization.to_bytes(params))
    t1 = time.time()
    env.action_space.seed(o.seed)
    ref_min = mean_return(env, lambda obs, rng: env.action_space.sample(), o.ref_episodes, seed=0)
    ref_max = mean_return(env, policies["expert"], o.ref_episodes, seed=0) if "expert" in policies else expert_return
    timings["reference_s"] = time.time() - t1
    episodes, written = {}, {}
    spec = gym.spec(o.env_id)
    for lv in o.levels:
        t = time.time()
        if lv in LEVELS:
            episodes[lv] = collect(env, policies[lv], o.steps, f"collect {lv}", o.progress, seed=o.seed + 7)
            how = f"stochastic SAC snapshot at step {levels[lv]['step']} (evaluated return {levels[lv]['return']:.1f})"
        elif lv == "medium-replay":
            episodes[lv] = replay_episodes(buffer, levels["medium"]["step"], trainer.scale)
            how = f"the SAC replay buffer up to the medium snapshot (step {levels['medium']['step']})"
        else:
            episodes[lv] = episodes["medium"] + episodes["expert"]
            how = "the medium and expert datasets concatenated"
        write_dataset(ids[lv], episodes[lv], env_spec=spec, eval_env_spec=spec, ref_min_score=ref_min,
                      ref_max_score=ref_max, algorithm_name="cdp_jax SAC (JAX)",
                      description=f"{o.env_id} {lv}: {how}; levels relative to expert return {expert_return:.1f} "
                                  f"(cdp_jax.datasets.generators.mujoco)", overwrite=o.overwrite)
        timings[f"{lv}_s"] = time.time() - t
        written[lv] = ids[lv]
    report = {"datasets": written, "levels": levels, "resumed_from": trainer.resumed_from, "ref_min_score": ref_min, "ref_max_score": ref_max,
              "expert_return": expert_return, "timings": timings}
    atomic_write_text(os.path.join(trainer.workdir, "levels", "datasets.json"), json.dumps(report, indent=1))
    return report
