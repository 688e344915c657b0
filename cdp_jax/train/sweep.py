"""The host driver of a sweep: prepare (dataset, grid, restore) -> for each training interval of ``eval_every`` steps:
train (:mod:`cdp_jax.train.grid`), checkpoint, evaluate every member at once, record (:mod:`cdp_jax.train.records`)
-> finish (``summary.md``, plots). Rerunning the same command resumes from the last checkpoint with identical
results (an interval whose evaluation died is evaluated from its checkpoint, not trained again).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import ml_collections

from cdp_jax import agents as agent_registry
from cdp_jax.datasets import Normalizer
from cdp_jax.datasets.source import load_dataset, make_missing_dataset
from cdp_jax.io.checkpoint import Checkpoints
from cdp_jax.io.stopping import Stopped, on_stop_signals, stop_promptly
from cdp_jax.train import distributed, evaluation
from cdp_jax.train.config import agent_config, flatten, validate
from cdp_jax.train.eval_overlap import BackgroundEvaluator, evaluation_device, training_devices
from cdp_jax.train.grid import GridLayout, auto_members_per_program, build_grid, init_agents, make_train_steps
from cdp_jax.train.policy import write_policy_meta
from cdp_jax.train.records import OUTPUTS, UNEVALUATED, Records
from cdp_jax.train.wandb_runs import WandbRuns
from cdp_jax.train.workdir import WorkdirLock, ensure_writable, holds_config, record_config

__all__ = ["Sweep", "SweepStopped", "UNEVALUATED", "progress_steps"]


def progress_steps(cfg) -> int:
    """Steps per compiled training call: ``progress_every`` when set (it must divide ``eval_every``), otherwise the
    largest divisor of ``eval_every`` between 100 and a tenth of it, so the progress bar and its ETA move about ten
    times between evaluations (``eval_every`` itself when there is none: short intervals train in one call).
    Results do not depend on it (every step's randomness comes from its index)."""
    if cfg.get("progress_every", 0):
        return int(cfg.progress_every)
    return max((d for d in range(100, cfg.eval_every // 10 + 1) if cfg.eval_every % d == 0), default=cfg.eval_every)


class SweepStopped(Stopped):
    """A run stopped on request at a clean point; ``signal_name`` is ``"SIGINT"`` or ``"SIGTERM"``."""


def _stop_on_signals(sweep: "Sweep"):
    """While a sweep runs: the first SIGINT/SIGTERM asks it to stop after the current interval's checkpoint; a
    second one stops at once (KeyboardInterrupt)."""
    def handler(name: str) -> None:
        if sweep.stop_signal is not None:
            raise KeyboardInterrupt(f"second {name}")
        sweep.stop_signal = name
        print(f"\n{name}: stopping after the current interval and its checkpoint (send it again to stop at once)",
              file=sys.stderr, flush=True)
    return on_stop_signals(handler)


def network_note(acfg) -> str:
    """The denoiser's time embedding, which every results table names (docs/fidelity.md)."""
    if "diffusion" not in acfg:
        return ""
    kind = acfg.diffusion.time_embedding
    what = ("the official code's integer-cast sinusoid" if kind == "cleandiffuser" else
            "the sinusoid the official code means")
    return f"Denoiser time embedding: `{kind}` ({what}; docs/fidelity.md)."


@dataclasses.dataclass
class _Run:
    """What one run of a sweep holds between its intervals."""
    data: object                 # Transitions on the training devices, normalised
    info: object                 # DatasetInfo
    norm: Normalizer
    grid: object                 # cdp_jax.train.grid.Grid
    layout: GridLayout
    state: dict                  # {"agents": [G], "diverged": [G]}
    start: int                   # the step training resumes from
    checkpoints: Checkpoints
    records: Records
    train_steps: object          # make_train_steps(...)
    act: object                  # evaluation.grid_actor(...): every member's actions in one compiled call
    constants: tuple             # (seeds, probe observations, probe actions): what every evaluation reads
    evaluator: BackgroundEvaluator | None
    unevaluated: dict | None     # train metrics of a restored checkpoint whose evaluation never finished
    note: str = ""               # what summary.md says below its tables: the network that ran
    pending: tuple | None = None     # overlap: (step, future, metrics) of the interval under evaluation

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()
        self.records.close()
        self.checkpoints.close()


class Sweep:
    """Runs a validated config in ``workdir``: ``Sweep(cfg, workdir).run()`` returns the results rows.

    Everything that can be refused (config, workdir, a second live writer, dataset, grid) is checked before
    anything is written. ``SIGINT``/``SIGTERM`` stop the run at the next clean point (after the current interval's
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
        with stop_promptly(f"making dataset {self.cfg.dataset_id}"):       # not after an interval: there is none yet
            make_missing_dataset(self.cfg, self.progress)
        return load_dataset(self.cfg)

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
        run = self._prepare()
        try:
            if run.unevaluated is not None:
                self._evaluate_and_record(run, run.start, run.state, run.unevaluated)
            for step in range(run.start, self.cfg.num_steps, self.cfg.eval_every):
                with run.records.timed("train_s"):
                    run.state, metrics = self._train(run, step)
                self._evaluate_and_record(run, step + self.cfg.eval_every, run.state, self._checkpoint(
                    run, step + self.cfg.eval_every, metrics))
            if run.pending is not None:
                self._collect(run)
        finally:                                    # finished, stopped or failed: nothing left open
            run.close()
        self.timing = run.records.finish(run.note)
        self.agents, self.grid, self.info = run.state["agents"], run.grid, run.info
        return run.records.rows

    def _prepare(self) -> _Run:
        """Dataset, grid, agents (restored where a checkpoint is), the compiled training steps and the records;
        the workdir changes only once everything is checked."""
        cfg, primary = self.cfg, distributed.is_primary()
        data, info = self._dataset()
        norm = Normalizer.from_info(info, cfg.obs_normalization)
        data = data.replace(observations=norm.obs(data.observations), next_observations=norm.obs(data.next_observations),
                            actions=jnp.asarray(norm.to_agent_action(data.actions), jnp.float32))
        grid = build_grid(cfg, data.size, info.episode_starts)
        acfg = agent_config(cfg, info.image_layout)
        eval_device = evaluation_device() if cfg.eval_overlap else None
        if cfg.eval_overlap and eval_device is None:
            raise ValueError("eval_overlap needs a device to evaluate on beside the training devices, and JAX has "
                             "one host device only: run through `python -m experiments.sweep` (it adds one), or "
                             "call cdp_jax.train.eval_overlap.reserve_host_device() right after importing jax")
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
        agents = init_agents(agent_registry.agent_class(cfg.agent), acfg, grid, info.obs_dim, info.act_dim)
        layout = GridLayout.plan([m["gamma"] for m in grid.members], cfg.members_per_program or
                                 auto_members_per_program(sum(x.nbytes for x in jax.tree.leaves(agents)) // grid.size,
                                                          cfg.batch_size, grid.size),
                                 training_devices(cfg.eval_overlap), by_contraction=cfg.group_by_contraction)
        if distributed.multi_process():             # the dataset, whole on every device of every process
            data = distributed.put(data, jax.sharding.NamedSharding(layout.mesh, jax.sharding.PartitionSpec()))
        checkpoints = Checkpoints(self.workdir)
        state, start = self._restore(checkpoints, {"agents": agents, "diverged": jnp.zeros(grid.size, bool)})
        wandb = (WandbRuns(self.workdir, grid.members, cfg.wandb, cfg.agent, flatten(cfg.to_dict()))
                 if cfg.wandb != "off" and primary else None)
        records = Records(self.workdir, grid.members, start=start, primary=primary, tensorboard=cfg.tensorboard,
                          progress=self.progress, num_steps=cfg.num_steps, wandb=wandb)
        probe = data.rows(jax.random.choice(jax.random.PRNGKey(cfg.eval_seed), data.size,
                                            (min(cfg.consistency_states, data.size),), replace=False))
        evaluator = BackgroundEvaluator(eval_device) if cfg.eval_overlap else None
        constants = (grid.seeds, probe.observations, probe.actions)
        if evaluator is not None:
            constants = jax.device_put(constants, eval_device)      # on the evaluation device once
        return _Run(data, info, norm, grid, layout, state, start, checkpoints, records,
                    make_train_steps(data, cfg.batch_size, progress_steps(cfg)),
                    evaluation.grid_actor(lambda agent, obs, key: agent.act(obs, key)), constants, evaluator,
                    records.unevaluated(start, checkpoints.directory), note=network_note(acfg))

    def _clear_outputs(self) -> None:
        for name in OUTPUTS:
            path = os.path.join(self.workdir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)

    def _restore(self, checkpoints: Checkpoints, state: dict) -> tuple[dict, int]:
        """``(state, step)``: the newest intact checkpoint's, or ``(state, 0)`` for a fresh run."""
        if self.fresh:
            return state, 0
        latest, restored, refused = checkpoints.restore_latest(state, max_step=self.cfg.num_steps)
        if refused:
            print(f"checkpoint step(s) {refused} in {checkpoints.directory} are corrupt or partial; "
                  + (f"resuming from step {latest}, the newest intact one" if latest is not None
                     else "no intact checkpoint is left: starting over"))
        return (restored, latest) if latest is not None else (state, 0)

    def _train(self, run: _Run, step: int) -> tuple[dict, dict]:
        """One interval of ``eval_every`` steps for every compiled group, as compiled calls of
        :func:`progress_steps` steps each (the progress bar moves after each); returns the new state and the
        metrics averaged over the interval. The groups are gathered once and joined once per interval."""
        layout = run.layout
        groups = [layout.group_inputs(k, run.state["agents"], run.state["diverged"], run.grid.subsets, run.grid.seeds)
                  for k in range(layout.num_groups)]
        metrics = [[] for _ in groups]
        sub = progress_steps(self.cfg)
        for start in range(step, step + self.cfg.eval_every, sub):
            for k, (g, met) in enumerate(zip(groups, metrics)):
                g[0], g[1], m = run.train_steps(*g, start, contraction=layout.contraction(k))
                met.append(m)
            jax.block_until_ready([g[:2] for g in groups])
            run.records.bar.update(sub)
        mean = [jax.tree.map(lambda *m: jnp.nanmean(jnp.stack(m), axis=0), *met) for met in metrics]
        agents, diverged, metrics = jax.block_until_ready((layout.join([g[0] for g in groups]),
                                                           layout.join([g[1] for g in groups]), layout.join(mean)))
        return {"agents": agents, "diverged": diverged}, metrics

    def _checkpoint(self, run: _Run, done: int, metrics: dict) -> dict:
        """The interval's state, saved before its evaluation, its train metrics held just before it (after the
        previous interval is recorded, so only the newest lacks rows); returns the metrics on the host."""
        if run.pending is not None:                 # overlap: interval k's evaluation ran while k + 1 trained
            self._collect(run)
        with run.records.timed("write_s"):
            host = distributed.to_host(metrics)     # on every process (a collective across processes)
            run.records.hold(done, host)
            run.checkpoints.save(done, run.state)
        return host

    def _evaluate_and_record(self, run: _Run, done: int, state: dict, metrics: dict) -> None:
        """Evaluates interval ``done`` and records it; with an overlapping evaluator, starts its evaluation and
        records it once the next interval has trained."""
        evaluate = functools.partial(evaluation.member_rows, self.cfg, run.grid.members, run.act, run.info, run.norm,
                                     done)
        if run.evaluator is not None:               # on the evaluation device, whose copies it makes
            run.pending = (done, run.evaluator.submit(evaluate, state["agents"], state["diverged"], *run.constants),
                           metrics)
            return
        with run.records.timed("eval_s", "eval_wait_s"):
            new_rows = evaluate(state["agents"], state["diverged"], *run.constants)
        self._record(run, done, metrics, new_rows)

    def _collect(self, run: _Run) -> None:
        """Waits for the overlapped evaluation and records its interval."""
        done, future, metrics = run.pending
        run.pending = None
        with run.records.timed("eval_wait_s"):
            new_rows, seconds = future.result()
        run.records.timing["eval_s"] += seconds
        self._record(run, done, metrics, new_rows)

    def _record(self, run: _Run, done: int, metrics: dict, new_rows: list[dict]) -> None:
        run.records.record(done, metrics, new_rows)
        if self.stop_signal is not None and done < self.cfg.num_steps:
            raise SweepStopped(f"stopped by {self.stop_signal} at step {done} of {self.cfg.num_steps} (checkpoint "
                               f"saved); rerun the same command to resume", self.stop_signal)
