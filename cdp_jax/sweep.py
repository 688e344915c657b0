"""The host driver of a sweep: dataset, grid, then per chunk of ``eval_every`` steps the compiled training
function (:mod:`cdp_jax.grid`), an orbax checkpoint, evaluation of every member at once, results rows and
TensorBoard scalars. Rerunning the same command resumes from the last checkpoint with identical results (a chunk
whose evaluation died is evaluated from its checkpoint, not trained again).

Data flow: ``validate`` (:mod:`cdp_jax.config`) -> dataset (generated on first use when the config names a
generator) -> ``build_grid`` -> ``init_agents`` (vmap of ``Agent.create``) -> chunks -> ``summary.md`` and plots.
"""
from __future__ import annotations

import contextlib
import functools
import json
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
from cdp_jax import distributed, evaluation, results
from cdp_jax.checkpoint import Checkpoints
from cdp_jax.config import agent_config, validate
from cdp_jax.datasets import Normalizer, load_transitions
from cdp_jax.datasets import GENERATORS
from cdp_jax.datasets import generate as generate_dataset
from cdp_jax.datasets import robomimic_download
from cdp_jax.datasets.generators.writing import datasets_root
from cdp_jax.datasets.loading import hub_reachable
from cdp_jax.datasets.robomimic_hdf5 import is_robomimic, resolve_path
from cdp_jax.datasets.robomimic_hdf5 import load_transitions as load_robomimic
from cdp_jax.eval_overlap import BackgroundEvaluator, evaluation_device, training_devices
from cdp_jax.grid import GridLayout, auto_grid_chunk, build_grid, init_agents, make_train_chunk
from cdp_jax.io import atomic_write_text, folder_lock
from cdp_jax.policy import write_policy_meta
from cdp_jax.tensorboard import MemberBoards
from cdp_jax.workdir import WorkdirLock, ensure_writable, holds_config, record_config

EVAL_SCALARS = ("normalized_score", "return", "success", "action_std", "lambda_max")
# The train metrics of the newest checkpoint, written just before it (and before its evaluation): a rerun after an
# evaluation that died (out of memory, a crashed simulator) evaluates the restored chunk instead of training it again.
UNEVALUATED = "unevaluated_chunk.json"


def progress_steps(cfg) -> int:
    """Steps per compiled training call: ``progress_every`` when set (it must divide ``eval_every``), otherwise the
    largest divisor of ``eval_every`` between 100 and a tenth of it, so the progress bar and its ETA move about ten
    times between evaluations (``eval_every`` itself when there is none: short intervals train in one call).
    Results do not depend on it (every step's randomness comes from its index)."""
    if cfg.get("progress_every", 0):
        return int(cfg.progress_every)
    return max((d for d in range(100, cfg.eval_every // 10 + 1) if cfg.eval_every % d == 0), default=cfg.eval_every)


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


def load_dataset(cfg: ml_collections.ConfigDict | dict):
    """A sweep config's dataset (a ConfigDict, or a workdir's recorded config as ``read_config`` gives it) as
    ``(Transitions on the device, DatasetInfo)``: a robomimic file cut into the config's windows (observation keys,
    demo filter), or a Minari id. Refuses, in one line, actions that are not a Box and an offline-RL agent on a
    dataset without rewards."""
    cfg = ml_collections.ConfigDict(cfg) if isinstance(cfg, dict) else cfg
    if is_robomimic(cfg.dataset_id):
        data, info = load_robomimic(cfg.dataset_id, **cfg.sequence.to_dict(), obs_keys=tuple(cfg.obs_keys) or None,
                                   eval_max_steps=cfg.eval_max_steps, demo_filter=cfg.get("demo_filter", ""))
        from cdp_jax.robomimic_env import check_environments
        check_environments(cameras=info.image_layout is not None)     # before training, not at evaluation
    else:
        data, info = load_transitions(cfg.dataset_id)
    if not info.continuous_actions:
        raise ValueError(f"agent {cfg.agent!r} needs a continuous (Box) action space, but dataset "
                         f"{cfg.dataset_id!r} has {info.action_space}; choose a dataset with Box actions")
    if cfg.agent in agent_registry.OFFLINE_RL and not info.has_rewards:
        raise ValueError(f"agent {cfg.agent!r} is an offline-RL agent but dataset {cfg.dataset_id!r} has no "
                         f"rewards; use an imitation agent such as 'dbc'")
    return data, info


class Sweep:
    """Runs a validated config in ``workdir``: ``Sweep(cfg, workdir).run()`` returns the results rows.

    Everything that can be refused (config, workdir, a second live writer, dataset, grid) is checked before
    anything is written. ``SIGINT``/``SIGTERM`` stop the run at the next clean point (after the current chunk's
    checkpoint); a second signal stops at once. Either way the same command resumes."""

    def __init__(self, cfg: ml_collections.ConfigDict, workdir: str, progress: bool = True):
        validate(cfg)
        self.cfg, self.workdir, self.progress = cfg, workdir, progress
        ensure_writable(workdir)
        self.lock = WorkdirLock(workdir) if distributed.is_primary() else None     # one writer: process 0
        try:
            same = holds_config(workdir, cfg.to_dict(), cfg.overwrite)
        except ValueError:
            self._release()
            raise
        self.fresh = not (same and cfg.resume)
        self.stop_signal = None

    def _dataset(self):
        self._make_dataset()
        return load_dataset(self.cfg)

    def _make_dataset(self) -> None:
        """Generates a missing dataset that the config can generate, or downloads a missing robomimic release where
        Hugging Face answers (a missing Minari id downloads as it loads). The processes of a multi-process sweep
        take turns (a lock on the datasets folder, taken only where the dataset is missing): one makes it, the
        others find it."""
        if not self._dataset_missing():
            return
        with folder_lock(datasets_root()):
            if self._dataset_missing():
                self._make_missing_dataset()

    def _dataset_missing(self) -> bool:
        import minari
        if is_robomimic(self.cfg.dataset_id):
            return not os.path.exists(resolve_path(self.cfg.dataset_id))
        return self.cfg.dataset_id not in minari.list_local_datasets()

    def _make_missing_dataset(self) -> None:
        cfg = self.cfg
        if is_robomimic(cfg.dataset_id):
            if cfg.generate:
                print(f"dataset {cfg.dataset_id} is not here: generating it with {cfg.generate} (first use only)")
                generate_dataset(cfg.generate, cfg.dataset_id, cfg.generate_steps or None, progress=self.progress,
                                 image_size=cfg.generate_image_size)
            elif (release := robomimic_download.released(cfg.dataset_id)) and hub_reachable():
                print(f"dataset {cfg.dataset_id} is not here: downloading robomimic's (first use only)")
                robomimic_download.download(*release, progress=self.progress)
        elif cfg.generate:
            writes = GENERATORS[cfg.generate].dataset_id
            stem = writes.rsplit("-v", 1)[0]                 # local/pointmaze/umaze-v0 -> local/pointmaze/umaze
            if cfg.dataset_id != writes and not cfg.dataset_id.startswith(stem + "-"):
                raise ValueError(f"dataset {cfg.dataset_id!r} is not local, and generator {cfg.generate!r} writes "
                                 f"{writes!r} (or a variant {stem}-TAG-vN): fix --config.dataset_id, or generate it "
                                 f"under this id first with `python -m cdp_jax.datasets generate {cfg.generate} "
                                 f"--dataset_id {cfg.dataset_id}`")
            print(f"dataset {cfg.dataset_id} is not local: generating it with {cfg.generate} (first use only)")
            generate_dataset(cfg.generate, cfg.dataset_id, cfg.generate_steps or None, progress=self.progress)

    def _clear_outputs(self) -> None:
        for name in ("checkpoints", "results.csv", "train_metrics.csv", "summary.md", "timing.json", "tensorboard",
                     UNEVALUATED):
            path = os.path.join(self.workdir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def run(self) -> list[dict]:
        try:
            with _stop_on_signals(self):
                return self._run()
        finally:
            self._release()

    def _run(self) -> list[dict]:
        cfg = self.cfg
        data, info = self._dataset()
        agent_cls = agent_registry.agent_class(cfg.agent)
        norm = Normalizer.from_info(info, cfg.obs_normalization)
        data = data.replace(observations=norm.obs(data.observations), next_observations=norm.obs(data.next_observations),
                            actions=jnp.asarray(norm.to_agent_action(data.actions), jnp.float32))
        grid = build_grid(cfg, data.size, info.episode_starts)
        acfg = agent_config(cfg, info.image_layout)
        eval_device = evaluation_device() if cfg.eval_overlap else None
        if cfg.eval_overlap and eval_device is None:
            raise ValueError("eval_overlap needs a device to evaluate on beside the training devices, and JAX has "
                             "one host device only: run through `python -m experiments.sweep` (it adds one), or "
                             "call cdp_jax.eval_overlap.reserve_host_device() right after importing jax")
        # Everything is checked: only now does the workdir change.
        primary = distributed.is_primary()
        if self.fresh and primary:
            self._clear_outputs()
        distributed.barrier("workdir ready")
        if primary:
            record_config(self.workdir, cfg.to_dict())
            write_policy_meta(self.workdir, agent=cfg.agent, agent_config=acfg.to_dict(), members=grid.members,
                              obs_dim=info.obs_dim, act_dim=info.act_dim, normalizer=norm, dataset_id=cfg.dataset_id)
        block = distributed.local_block(grid.size)          # the members this process evaluates
        evaluation.start_memory_measurement(info, block.stop - block.start, cfg.eval_episodes,
                                            cfg.eval_max_envs)                          # overlaps the compiling
        agents = init_agents(agent_cls, acfg, grid, info.obs_dim, info.act_dim)
        diverged = jnp.zeros(grid.size, bool)

        layout = GridLayout.plan([m["gamma"] for m in grid.members], cfg.grid_chunk or auto_grid_chunk(
            sum(x.nbytes for x in jax.tree.leaves(agents)) // grid.size, cfg.batch_size, grid.size),
            training_devices(cfg.eval_overlap), by_contraction=cfg.group_by_contraction)
        if distributed.multi_process():             # the dataset, whole on every device of every process
            data = distributed.put(data, jax.sharding.NamedSharding(layout.mesh, jax.sharding.PartitionSpec()))

        ckpt = Checkpoints(self.workdir)
        state = {"agents": agents, "diverged": diverged}
        start = 0
        rows = []
        if not self.fresh:
            latest, restored, refused = ckpt.restore_latest(state, max_step=cfg.num_steps)
            if refused:
                print(f"checkpoint step(s) {refused} in {ckpt.directory} are corrupt or partial; "
                      + (f"resuming from step {latest}, the newest intact one" if latest is not None
                         else "no intact checkpoint is left: starting over"))
            if latest is not None:
                state, start = restored, latest
                rows = [r for r in results.read_csv(os.path.join(self.workdir, "results.csv")) if r["step"] <= start]
        train_metrics = [r for r in results.read_csv(os.path.join(self.workdir, "train_metrics.csv"))
                         if r["step"] <= start] if start else []

        def metric_rows(done, metrics):
            """One train_metrics.csv row per member from ``{name: [G]}`` on the host."""
            return [dict(m, step=done, **{k: float(v[i]) for k, v in metrics.items()}) for i, m in enumerate(grid.members)]

        def write_train_metrics(names):
            results.write_csv(os.path.join(self.workdir, "train_metrics.csv"), train_metrics,
                              ("seed", "data_fraction", "gamma", "step") + tuple(sorted(names)))

        # train_metrics.csv lacks the newest checkpoint's metrics (they wait in UNEVALUATED) when its evaluation
        # never finished (no rows either: it is evaluated first), or when a kill fell between its results.csv and
        # its train_metrics.csv (rows present: the metrics are written now).
        unevaluated_path = os.path.join(self.workdir, UNEVALUATED)
        saved = _unevaluated_metrics(unevaluated_path, start, ckpt.directory) \
            if start and all(r["step"] != start for r in train_metrics) else None
        unevaluated = saved if all(r["step"] != start for r in rows) else None
        if saved is not None and unevaluated is None:
            train_metrics.extend(metric_rows(start, saved))
            if primary:
                write_train_metrics(saved)

        train_chunk = make_train_chunk(data, cfg.batch_size, progress_steps(cfg))
        act = evaluation.grid_actor(lambda agent, obs, key: agent.act(obs, key))
        k_states = jax.random.PRNGKey(cfg.eval_seed)
        probe = jax.random.choice(k_states, data.size, (min(cfg.consistency_states, data.size),), replace=False)
        probe = data.rows(probe)
        probe_obs, probe_act = probe.observations, probe.actions
        bar = tqdm(total=cfg.num_steps, initial=start, desc=f"sweep {grid.size} members", unit="step",
                   disable=not (self.progress and primary), dynamic_ncols=True)
        boards = MemberBoards(self.workdir, grid.members, cfg.tensorboard and primary)
        # wall_time continues across resumes: seconds of training + evaluation up to each row, this run and before.
        wall_before = max((r["wall_time"] for r in rows), default=0.0)
        self.timing = dict(train_s=0.0, eval_s=0.0, eval_wait_s=0.0, write_s=0.0)
        loop_start = time.perf_counter()

        def evaluate(done, agents, diverged, seeds, probe_obs, probe_act):
            return self._evaluate(agents, diverged, seeds, probe_obs, probe_act, act, info, norm, grid, done)

        def checkpoint(done, chunk_state, metrics):
            """A chunk's state, saved before its evaluation, its train metrics written just before it; returns the
            metrics on the host, as :func:`record` takes them."""
            t0 = time.perf_counter()
            host = distributed.to_host(metrics)     # on every process (a collective across processes)
            if primary:
                atomic_write_text(unevaluated_path, json.dumps(dict(step=done, metrics={
                    k: np.asarray(v).tolist() for k, v in host.items()})))
            ckpt.save(done, chunk_state)
            self.timing["write_s"] += time.perf_counter() - t0
            return host

        def record(done, metrics, new_rows):
            """Everything after a chunk's evaluation: rows, ``metrics`` (``{name: [G]}`` on the host), TensorBoard,
            results files."""
            t0 = time.perf_counter()
            rows.extend(dict(r, wall_time=round(wall_before + t0 - loop_start, 2)) for r in new_rows)
            new_metrics = metric_rows(done, metrics)
            train_metrics.extend(new_metrics)
            boards.log(done, [{**{f"train/{k}": m[k] for k in metrics},
                               **{f"eval/{k}": r[k] for k in EVAL_SCALARS}} for m, r in zip(new_metrics, new_rows)])
            if primary:
                results.write_csv(os.path.join(self.workdir, "results.csv"), rows)
                write_train_metrics(metrics)
            self.timing["write_s"] += time.perf_counter() - t0
            latest = rows[-grid.size:]
            metric = results.headline_metric(latest)
            bar.set_postfix({metric: f"{np.nanmean([r[metric] for r in latest]):.2f}"})
            if self.stop_signal is not None and done < cfg.num_steps:
                raise SweepStopped(f"stopped by {self.stop_signal} at step {done} of {cfg.num_steps} (checkpoint "
                                   f"saved); rerun the same command to resume", self.stop_signal)

        def collect(pending):
            """Waits for an overlapped evaluation and records its chunk."""
            done, future, metrics = pending
            t0 = time.perf_counter()
            new_rows, seconds = future.result()
            self.timing["eval_wait_s"] += time.perf_counter() - t0
            self.timing["eval_s"] += seconds
            record(done, metrics, new_rows)

        def evaluate_now(done, chunk_state, metrics):
            if evaluator is not None:               # on the evaluation device, whose copies it makes
                return collect((done, evaluator.submit(functools.partial(evaluate, done), chunk_state["agents"],
                                                       chunk_state["diverged"], *constants), metrics))
            t1 = time.perf_counter()
            new_rows = evaluate(done, chunk_state["agents"], chunk_state["diverged"], *constants)
            seconds = time.perf_counter() - t1
            self.timing["eval_s"] += seconds
            self.timing["eval_wait_s"] += seconds
            record(done, metrics, new_rows)

        evaluator = BackgroundEvaluator(eval_device) if cfg.eval_overlap else None
        constants = (grid.seeds, probe_obs, probe_act)      # what every evaluation reads: on its device once
        if evaluator is not None:
            constants = jax.device_put(constants, eval_device)
        pending = None          # overlap: (step, future, metrics) of the chunk under evaluation
        try:
            if unevaluated is not None:
                evaluate_now(start, state, unevaluated)
            for step in range(start, cfg.num_steps, cfg.eval_every):
                t0 = time.perf_counter()
                agents, diverged, metrics = self._train(train_chunk, layout, grid, state, step, bar)
                self.timing["train_s"] += time.perf_counter() - t0
                state, done = {"agents": agents, "diverged": diverged}, step + cfg.eval_every
                if evaluator is None:
                    evaluate_now(done, state, checkpoint(done, state, metrics))
                    continue
                if pending is not None:             # chunk k's evaluation ran while chunk k + 1 trained
                    collect(pending)
                host = checkpoint(done, state, metrics)     # after chunk k is recorded: only the newest lacks rows
                future = evaluator.submit(functools.partial(evaluate, done), agents, diverged, *constants)
                pending = (done, future, host)
            if pending is not None:
                collect(pending)
        finally:                                    # finished, stopped or failed: nothing left open
            if evaluator is not None:
                evaluator.close()
            bar.close()
            ckpt.close()
            boards.close()
        self.timing["wall_s"] = time.perf_counter() - loop_start
        self.timing["eval_share"] = self.timing["eval_wait_s"] / max(self.timing["wall_s"], 1e-9)
        if primary:
            atomic_write_text(os.path.join(self.workdir, "timing.json"), json.dumps(self.timing, indent=1))
            self.finish(rows)
        self.agents, self.grid, self.info = state["agents"], grid, info
        return rows

    def _train(self, train_chunk, layout, grid, state, step, bar):
        """One chunk of ``eval_every`` steps for every compiled group, as compiled calls of
        :func:`progress_steps` steps each (the progress bar moves after each); returns ``(agents, diverged,
        metrics)``, the metrics averaged over the chunk. The groups are gathered once and joined once per chunk."""
        agents, diverged = state["agents"], state["diverged"]
        groups = [layout.chunk_inputs(k, agents, diverged, grid.subsets, grid.seeds) for k in range(layout.num_groups)]
        metrics = [[] for _ in groups]
        sub = progress_steps(self.cfg)
        for start in range(step, step + self.cfg.eval_every, sub):
            for g, met in zip(groups, metrics):
                g[0], g[1], m = train_chunk(*g, start)
                met.append(m)
            jax.block_until_ready([g[:2] for g in groups])
            bar.update(sub)
        mean = [jax.tree.map(lambda *m: jnp.nanmean(jnp.stack(m), axis=0), *met) for met in metrics]
        out = (layout.join([g[0].replace(config=agents.config) for g in groups]),
               layout.join([g[1] for g in groups]), layout.join(mean))
        return jax.block_until_ready(out)

    def _evaluate(self, agents, diverged, seeds, probe_obs, probe_act, act, info, norm, grid, step):
        """Rows of all members; across processes each one evaluates its own block of members."""
        cfg = self.cfg
        block = distributed.local_block(grid.size)
        if distributed.multi_process():        # this process's members, as local arrays (one process: all, as is)
            agents = jax.tree.map(lambda x: jnp.asarray(x[block]), distributed.to_host(agents))
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s), 2), step))(
            seeds[block])
        scores = evaluation.evaluate(agents, act, info, norm, keys, cfg.eval_episodes, cfg.eval_seed,
                                     workers=cfg.eval_workers or os.cpu_count(), return_clip=tuple(cfg.eval_return_clip),
                                     max_envs=cfg.eval_max_envs)
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.eval_seed), step)
        local = np.stack([scores["normalized_score"], scores["return"], scores["success"],
                          evaluation.action_spread(agents, probe_obs, key, cfg.consistency_samples),
                          evaluation.low_noise_lambda_max(agents, probe_obs, probe_act, key)], axis=1)
        score, ret, success, spread, lam = distributed.gather_blocks(local, grid.size).T
        div = distributed.to_host(diverged)
        return [dict(dataset_id=cfg.dataset_id, agent=cfg.agent, seed=m["seed"], data_fraction=m["data_fraction"],
                     gamma=m["gamma"], step=step, normalized_score=float(score[i]),
                     **{"return": float(ret[i])}, success=float(success[i]),
                     action_std=float(spread[i]), lambda_max=float(lam[i]), diverged=int(div[i]))
                for i, m in enumerate(grid.members)]

    def finish(self, rows: list[dict]) -> None:
        results.write_reports(rows, self.workdir)


def _unevaluated_metrics(path: str, step: int, checkpoints: str) -> dict:
    """The train metrics ``{name: [G]}`` that :data:`UNEVALUATED` holds for checkpoint ``step``."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        saved = {}
    if saved.get("step") != step:
        raise ValueError(f"the checkpoint of step {step} in {checkpoints} has no rows in results.csv and no train "
                         f"metrics in {path}; rerun with --config.resume=False to start over")
    return {k: np.asarray(v, np.float32) for k, v in saved["metrics"].items()}
