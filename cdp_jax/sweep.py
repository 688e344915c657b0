"""A sweep: the grid of seeds x data fractions x gammas trained as ONE vmapped, scan-compiled program.

Data flow: ``validate`` -> dataset (generated on first use when the config names a generator) -> ``build_grid``
-> ``init_agents`` (vmap of ``Agent.create``) -> per chunk of ``eval_every`` steps: ``train_chunk`` (jit of vmap
over members of a ``lax.scan`` over steps) -> evaluation of every member at once -> results rows -> orbax
checkpoint. Rerunning the same command resumes from the last checkpoint with identical results.

Keys: member ``m`` with seed ``s`` initialises from ``PRNGKey(s)`` and draws its step-``i`` batch and update keys
from ``fold_in(fold_in(PRNGKey(s), 1), i)``; its data subset is seeded by ``s`` too. A member therefore draws
the same numbers alone or inside any grid, and members that share a seed are paired (same initial network,
same subset, same batches), so gamma is the only difference between them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import shutil
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from cdp_jax import agents as agent_registry
from cdp_jax import evaluation, results
from cdp_jax.agents.base import HParams
from cdp_jax.checkpoint import SweepCheckpoints
from cdp_jax.data import Subsets, Transitions, load_transitions, make_subsets, sample_batch
from cdp_jax.data.subsets import SUBSET_KINDS
from cdp_jax.datasets import GENERATORS
from cdp_jax.datasets import generate as generate_dataset
from cdp_jax.io import atomic_write_text
from cdp_jax.policy import write_policy_meta
from cdp_jax.tensorboard import MemberBoards
from cdp_jax.workdir import WorkdirLock, ensure_writable, holds_config, record_config

EVAL_SCALARS = ("normalized_score", "return", "success", "action_std", "lambda_max")
REQUIRED = ("dataset_id", "agent", "seeds", "data_fractions", "gammas", "num_steps", "eval_every", "eval_episodes")


def base_config() -> ml_collections.ConfigDict:
    """Fields every sweep config has; config files override them. ``seeds`` is a count or a tuple of seeds
    (``--config.seeds=5`` or ``--config.seeds='(0, 3, 7)'``)."""
    return ml_collections.ConfigDict(dict(
        dataset_id="local/pointmaze/umaze-v0", generate="", generate_steps=0, agent="dbc", agent_config=ml_collections.ConfigDict(),
        seeds=ml_collections.FieldReference(3, field_type=object), data_fractions=(1.0,), subset_kind="transitions", gammas=(0.0, 0.1), eta=1.0, num_steps=10_000,
        eval_every=2_000, eval_episodes=10, eval_seed=100_000, eval_workers=1, batch_size=256, normalize_obs=True,
        consistency_states=64, consistency_samples=8, grid_chunk=0, resume=True, overwrite=False, distributed=False,
        tensorboard=True))


def seeds_of(cfg) -> list[int]:
    """``seeds`` may be a count (0..n-1) or an explicit list."""
    if isinstance(cfg.seeds, int):
        return list(range(cfg.seeds))
    if isinstance(cfg.seeds, (tuple, list)) and all(isinstance(s, int) for s in cfg.seeds):
        return [int(s) for s in cfg.seeds]
    raise ValueError(f"seeds must be a count or a tuple of integer seeds, got {cfg.seeds!r}")


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Refuses a bad config before any compute, with one line naming the field."""
    for name in REQUIRED:
        if name not in cfg:
            raise ValueError(f"config has no field {name!r}; every sweep config needs {REQUIRED}")
    agent_registry.agent_class(cfg.agent)
    seeds = seeds_of(cfg)
    if not seeds or (isinstance(cfg.seeds, int) and cfg.seeds < 1):
        raise ValueError(f"seeds must be a positive count or a non-empty list, got {cfg.seeds}")
    for name, values in (("seeds", seeds), ("data_fractions", [float(f) for f in cfg.data_fractions]),
                         ("gammas", [float(g) for g in cfg.gammas])):
        if len(set(values)) != len(values):
            raise ValueError(f"{name} has repeated values {tuple(values)}: each grid member must be distinct")
    if not cfg.data_fractions:
        raise ValueError("data_fractions is empty; give at least one fraction in (0, 1]")
    for f in cfg.data_fractions:
        if not 0.0 < float(f) <= 1.0:
            raise ValueError(f"data_fractions must lie in (0, 1], got {f}")
    if not cfg.gammas:
        raise ValueError("gammas is empty; give at least one contraction weight >= 0 (0 is the plain backbone)")
    for g in cfg.gammas:
        if not float(g) >= 0.0 or not math.isfinite(float(g)):
            raise ValueError(f"gammas must be finite and >= 0, got {g}")
    if cfg.agent not in agent_registry.DIFFUSION and any(float(g) > 0 for g in cfg.gammas):
        raise ValueError(f"agent {cfg.agent!r} has no diffusion model, so gammas must be (0.0,)")
    if int(cfg.get("eval_workers", 1)) < 0:
        raise ValueError(f"eval_workers must be >= 0 (0: one per CPU core, 1: in this process), got {cfg.eval_workers}")
    for name in ("num_steps", "eval_every", "eval_episodes", "batch_size"):
        if int(cfg[name]) < 1:
            raise ValueError(f"{name} must be >= 1, got {cfg[name]}")
    if cfg.num_steps % cfg.eval_every:
        raise ValueError(f"num_steps={cfg.num_steps} must be a multiple of eval_every={cfg.eval_every}")
    if cfg.subset_kind not in SUBSET_KINDS:
        raise ValueError(f"unknown subset_kind {cfg.subset_kind!r}; choose one of {SUBSET_KINDS}")
    if cfg.generate and cfg.generate not in GENERATORS:
        raise ValueError(f"unknown generator {cfg.generate!r}; choose one of {sorted(GENERATORS)} or ''")
    agent_config(cfg)                                   # validates the agent's own fields


def agent_config(cfg) -> ml_collections.ConfigDict:
    """The agent's defaults updated by ``cfg.agent_config``; ``total_steps`` follows ``num_steps``."""
    out = agent_registry.default_agent_config(cfg.agent)
    try:
        out.update_from_flattened_dict(_flatten(cfg.agent_config.to_dict()))
    except KeyError as err:
        raise ValueError(f"agent_config has a key that agent {cfg.agent!r} does not know: {err}") from None
    out.total_steps = int(cfg.num_steps)
    from cdp_jax.diffusion import validate_config
    if "diffusion" in out:
        validate_config(out.diffusion)
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


@dataclasses.dataclass(frozen=True)
class Grid:
    """The flattened grid: ``members`` (dicts of seed, data_fraction, gamma) and their stacked leaves."""

    members: list
    hp: HParams                 # [G]
    seeds: jax.Array            # [G] int32
    subsets: Subsets            # [G, max_n]

    @property
    def size(self) -> int:
        return len(self.members)


def build_grid(cfg, num_transitions: int, episode_starts: np.ndarray) -> Grid:
    members = [dict(seed=s, data_fraction=float(f), gamma=float(g))
               for f, g, s in itertools.product(cfg.data_fractions, cfg.gammas, seeds_of(cfg))]
    subsets = make_subsets(num_transitions, [m["data_fraction"] for m in members], [m["seed"] for m in members],
                           cfg.subset_kind, episode_starts)
    smallest = int(subsets.count.min())
    if smallest < cfg.batch_size:
        frac = min(m["data_fraction"] for m in members)
        raise ValueError(f"data fraction {frac:g} keeps only {smallest} of {num_transitions} transitions, fewer than "
                         f"one batch ({cfg.batch_size}); use fractions >= {cfg.batch_size / num_transitions:.2g} or a "
                         f"smaller batch_size")
    hp = HParams(gamma=jnp.asarray([m["gamma"] for m in members], jnp.float32),
                 eta=jnp.full(len(members), float(cfg.eta), jnp.float32))
    return Grid(members, hp, jnp.asarray([m["seed"] for m in members], jnp.int32), subsets)


def init_agents(agent_cls, acfg, grid: Grid, obs_dim: int, act_dim: int):
    create = lambda hp, seed: agent_cls.create(acfg, hp, jax.random.PRNGKey(seed), obs_dim, act_dim)
    return jax.jit(jax.vmap(create))(grid.hp, grid.seeds)


def batch_dict(batch: Transitions) -> dict:
    return {"observations": batch.observations, "actions": batch.actions, "rewards": batch.rewards,
            "next_observations": batch.next_observations, "terminals": batch.terminals}


def make_train_chunk(data: Transitions, batch_size: int, chunk_steps: int):
    """``(agents [G], diverged [G], subsets [G], seeds [G], start_step) -> (agents, diverged, mean metrics [G])``.

    A member whose loss turns NaN or inf keeps its last finite state and is marked diverged; the others go on.
    """
    def member(agent, diverged, subset, seed, start):
        base = jax.random.fold_in(jax.random.PRNGKey(seed), 1)

        def body(carry, i):
            agent, diverged = carry
            k_batch, k_update = jax.random.split(jax.random.fold_in(base, start + i))
            new, metrics = agent.update(batch_dict(sample_batch(k_batch, data, subset, batch_size)), k_update)
            finite = jnp.isfinite(metrics["loss"])
            keep_new = finite & ~diverged
            agent = jax.tree.map(lambda n, o: jnp.where(keep_new, n, o), new, agent)
            return (agent, diverged | ~finite), metrics

        (agent, diverged), metrics = jax.lax.scan(body, (agent, diverged), jnp.arange(chunk_steps))
        return agent, diverged, jax.tree.map(jnp.nanmean, metrics)

    return jax.jit(jax.vmap(member, (0, 0, 0, 0, None)), donate_argnums=(0,))


def auto_grid_chunk(agents_one_member_bytes: int, batch_size: int, grid_size: int) -> int:
    """Members per compiled program so that the grid fits in about half of the device's memory."""
    device = jax.devices()[0]
    try:
        limit = device.memory_stats()["bytes_limit"]
    except Exception:  # noqa: BLE001 - CPU devices have no memory stats
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_member = 4 * agents_one_member_bytes + batch_size * 512 * 64 * 4
    return max(1, min(grid_size, int(0.5 * limit // per_member)))


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """How ``size`` members map onto equal compiled groups of ``chunk`` members and onto devices.

    The member axis is padded (by repeating the last member) to ``num_groups * chunk`` with ``chunk`` a multiple of
    the device count, so every group has one shape (one compile) and shards evenly over a 1-D ``grid`` mesh.
    """

    size: int
    chunk: int
    num_groups: int
    mesh: object

    @classmethod
    def plan(cls, size: int, chunk: int) -> "GridLayout":
        n_dev = jax.device_count()
        chunk = -(-min(max(int(chunk), 1), size) // n_dev) * n_dev
        mesh = jax.make_mesh((n_dev,), ("grid",), axis_types=(jax.sharding.AxisType.Auto,)) if n_dev > 1 else None
        return cls(size, chunk, -(-size // chunk), mesh)

    @property
    def padded(self) -> int:
        return self.num_groups * self.chunk

    def pad(self, tree):
        extra = self.padded - self.size
        if extra:
            tree = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), tree)
        if self.mesh is not None:
            tree = jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("grid")))
        return tree

    def unpad(self, tree):
        return tree if self.padded == self.size else jax.tree.map(lambda x: x[:self.size], tree)

    def group(self, tree, k: int):
        if self.num_groups == 1:
            return tree
        return jax.tree.map(lambda x: x[k * self.chunk:(k + 1) * self.chunk], tree)

    def join(self, parts: list):
        return parts[0] if len(parts) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


class SweepStopped(Exception):
    """A run stopped on request at a clean point; ``signal_name`` is ``"SIGINT"`` or ``"SIGTERM"``."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name


@contextlib.contextmanager
def _stop_on_signals(sweep: "Sweep"):
    """While a sweep runs in the main thread: the first SIGINT/SIGTERM asks it to stop after the current chunk's
    checkpoint; a second one stops at once (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if sweep.stop_signal is not None:
            raise KeyboardInterrupt(f"second {name}")
        sweep.stop_signal = name
        print(f"\n{name}: stopping after the current chunk and its checkpoint (send it again to stop at once)",
              file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Sweep:
    """Runs a validated config in ``workdir``: ``Sweep(cfg, workdir).run()`` returns the results rows.

    Everything that can be refused (config, workdir, a second live writer, dataset, grid) is checked before
    anything is written. ``SIGINT``/``SIGTERM`` stop the run at the next clean point (after the current chunk's
    checkpoint); a second signal stops at once. Either way the same command resumes."""

    def __init__(self, cfg: ml_collections.ConfigDict, workdir: str, progress: bool = True):
        validate(cfg)
        self.cfg, self.workdir, self.progress = cfg, workdir, progress
        ensure_writable(workdir)
        self.lock = WorkdirLock(workdir)
        try:
            same = holds_config(workdir, cfg.to_dict(), cfg.overwrite)
        except ValueError:
            self.lock.release()
            raise
        self.fresh = not (same and cfg.resume)
        self.stop_signal = None

    def _dataset(self):
        cfg = self.cfg
        import minari
        if cfg.generate and cfg.dataset_id not in minari.list_local_datasets():
            writes = GENERATORS[cfg.generate].dataset_id
            if cfg.dataset_id != writes:
                raise ValueError(f"dataset {cfg.dataset_id!r} is not local, and generator {cfg.generate!r} writes "
                                 f"{writes!r}: fix --config.dataset_id, or generate it under this id first with "
                                 f"`python -m cdp_jax.datasets generate {cfg.generate} --dataset-id {cfg.dataset_id}`")
            print(f"dataset {cfg.dataset_id} is not local: generating it with {cfg.generate} (first use only)")
            generate_dataset(cfg.generate, cfg.dataset_id, cfg.generate_steps or None, progress=self.progress)
        data, info = load_transitions(cfg.dataset_id)
        agent_registry.agent_class(cfg.agent)
        if not info.continuous_actions:
            raise ValueError(f"agent {cfg.agent!r} needs a continuous (Box) action space, but dataset "
                             f"{cfg.dataset_id!r} has {info.action_space}; choose a dataset with Box actions")
        if cfg.agent in agent_registry.OFFLINE_RL and not info.has_rewards:
            raise ValueError(f"agent {cfg.agent!r} is an offline-RL agent but dataset {cfg.dataset_id!r} has no "
                             f"rewards; use an imitation agent such as 'dbc'")
        return data, info

    def _clear_outputs(self) -> None:
        for name in ("checkpoints", "results.csv", "train_metrics.csv", "summary.md", "timing.json", "tensorboard"):
            path = os.path.join(self.workdir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)

    def run(self) -> list[dict]:
        try:
            with _stop_on_signals(self):
                return self._run()
        finally:
            self.lock.release()

    def _run(self) -> list[dict]:
        cfg = self.cfg
        data, info = self._dataset()
        agent_cls = agent_registry.agent_class(cfg.agent)
        norm = evaluation.Normalizer(info)
        if cfg.normalize_obs:
            data = data.replace(observations=(data.observations - norm.mean) / norm.std,
                                next_observations=(data.next_observations - norm.mean) / norm.std)
        else:
            norm.mean, norm.std = np.zeros_like(norm.mean), np.ones_like(norm.std)
        data = data.replace(actions=jnp.asarray(norm.to_agent_action(np.asarray(data.actions)), jnp.float32))
        grid = build_grid(cfg, data.size, info.episode_starts)
        acfg = agent_config(cfg)
        # Everything is checked: only now does the workdir change.
        if self.fresh:
            self._clear_outputs()
        record_config(self.workdir, cfg.to_dict())
        write_policy_meta(self.workdir, agent=cfg.agent, agent_config=acfg.to_dict(), members=grid.members,
                          obs_dim=info.obs_dim, act_dim=info.act_dim, obs_mean=norm.mean, obs_std=norm.std,
                          action_low=norm.low, action_high=norm.high, dataset_id=cfg.dataset_id)
        agents = init_agents(agent_cls, acfg, grid, info.obs_dim, info.act_dim)
        diverged = jnp.zeros(grid.size, bool)

        layout = GridLayout.plan(grid.size, cfg.grid_chunk or auto_grid_chunk(
            sum(x.nbytes for x in jax.tree.leaves(agents)) // grid.size, cfg.batch_size, grid.size))
        agents, diverged, subsets, seeds = (layout.pad(x) for x in (agents, diverged, grid.subsets, grid.seeds))

        ckpt = SweepCheckpoints(self.workdir)
        state = {"agents": agents, "diverged": diverged}
        start = 0
        rows = []
        if not self.fresh:
            latest, restored, refused = ckpt.restore_latest(layout.unpad(state), max_step=cfg.num_steps)
            if refused:
                print(f"checkpoint step(s) {refused} in {ckpt.directory} are corrupt or partial; "
                      + (f"resuming from step {latest}, the newest intact one" if latest is not None
                         else "no intact checkpoint is left: starting over"))
            if latest is not None:
                state, start = layout.pad(restored), latest
                rows = [r for r in results.read_csv(os.path.join(self.workdir, "results.csv")) if r["step"] <= start]
        train_metrics = [r for r in results.read_csv(os.path.join(self.workdir, "train_metrics.csv"))
                         if r["step"] <= start] if start else []

        train_chunk = make_train_chunk(data, cfg.batch_size, cfg.eval_every)
        policy = evaluation.make_policy(lambda agent, obs, key: agent.act(obs, key))
        k_states = jax.random.PRNGKey(cfg.eval_seed)
        probe = jax.random.choice(k_states, data.size, (min(cfg.consistency_states, data.size),), replace=False)
        probe_obs, probe_act = data.observations[probe], data.actions[probe]
        bar = tqdm(total=cfg.num_steps, initial=start, desc=f"sweep {grid.size} members", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        boards = MemberBoards(self.workdir, grid.members, cfg.tensorboard)
        # wall_time continues across resumes: seconds of training + evaluation up to each row, this run and before.
        wall_before = max((r["wall_time"] for r in rows), default=0.0)
        self.timing = dict(train_s=0.0, eval_s=0.0, write_s=0.0)
        for step in range(start, cfg.num_steps, cfg.eval_every):
            t0 = time.perf_counter()
            agents, diverged = state["agents"], state["diverged"]
            parts = [train_chunk(*(layout.group(x, k) for x in (agents, diverged, subsets, seeds)), step)
                     for k in range(layout.num_groups)]
            agents, diverged, metrics = (layout.join([p[i] for p in parts]) for i in range(3))
            jax.block_until_ready((agents, metrics))
            t1 = time.perf_counter()
            done = step + cfg.eval_every
            real_agents, real_diverged = layout.unpad(agents), layout.unpad(diverged)
            new_rows = self._evaluate(real_agents, real_diverged, policy, info, norm, grid, done, probe_obs, probe_act)
            t2 = time.perf_counter()
            self.timing["train_s"] += t1 - t0
            self.timing["eval_s"] += t2 - t1
            wall = wall_before + sum(self.timing.values())
            rows += [dict(r, wall_time=round(wall, 2)) for r in new_rows]
            metrics = jax.device_get(layout.unpad(metrics))
            new_metrics = [dict(m, step=done, **{k: float(v[i]) for k, v in metrics.items()})
                           for i, m in enumerate(grid.members)]
            train_metrics += new_metrics
            boards.log(done, [{**{f"train/{k}": m[k] for k in metrics}, **{f"eval/{k}": r[k] for k in EVAL_SCALARS}}
                              for m, r in zip(new_metrics, new_rows)])
            state = {"agents": agents, "diverged": diverged}
            results.write_csv(os.path.join(self.workdir, "results.csv"), rows)
            results.write_csv(os.path.join(self.workdir, "train_metrics.csv"), train_metrics,
                              ("seed", "data_fraction", "gamma", "step") + tuple(sorted(metrics)))
            ckpt.save(done, layout.unpad(state))
            self.timing["write_s"] += time.perf_counter() - t2
            bar.update(cfg.eval_every)
            scores = [r["normalized_score"] for r in rows[-grid.size:]]
            bar.set_postfix(score=f"{np.nanmean(scores):.1f}" if np.isfinite(scores).any() else "n/a")
            if self.stop_signal is not None and done < cfg.num_steps:
                bar.close()
                ckpt.close()
                boards.close()
                raise SweepStopped(f"stopped by {self.stop_signal} at step {done} of {cfg.num_steps} (checkpoint "
                                   f"saved); rerun the same command to resume", self.stop_signal)
        bar.close()
        ckpt.close()
        boards.close()
        total = sum(self.timing.values())
        self.timing["eval_share"] = self.timing["eval_s"] / total if total else 0.0
        atomic_write_text(os.path.join(self.workdir, "timing.json"), json.dumps(self.timing, indent=1))
        self.finish(rows)
        self.agents, self.grid, self.info = layout.unpad(state["agents"]), grid, info
        return rows

    def _evaluate(self, agents, diverged, policy, info, norm, grid, step, probe_obs, probe_act):
        cfg = self.cfg
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s), 2), step))(grid.seeds)
        scores = evaluation.evaluate(agents, policy, info, norm, keys, cfg.eval_episodes, cfg.eval_seed,
                                     workers=cfg.eval_workers or os.cpu_count())
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.eval_seed), step)
        spread = evaluation.action_spread(agents, probe_obs, key, cfg.consistency_samples)
        lam = evaluation.low_noise_lambda_max(agents, probe_obs, probe_act, key)
        div = np.asarray(diverged)
        return [dict(dataset_id=cfg.dataset_id, agent=cfg.agent, seed=m["seed"], data_fraction=m["data_fraction"],
                     gamma=m["gamma"], step=step, normalized_score=float(scores["normalized_score"][i]),
                     **{"return": float(scores["return"][i])}, success=float(scores["success"][i]),
                     action_std=float(spread[i]), lambda_max=float(lam[i]), diverged=int(div[i]))
                for i, m in enumerate(grid.members)]

    def finish(self, rows: list[dict]) -> None:
        atomic_write_text(os.path.join(self.workdir, "summary.md"), results.summary_markdown(rows))
        results.plot_all(rows, os.path.join(self.workdir, "plots"))
