"""What a sweep writes as it trains: ``results.csv`` (one row per member per evaluation), ``train_metrics.csv``,
TensorBoard scalars (and W&B runs where asked), the progress bar, ``timing.json``, and the newest checkpoint's train metrics until its
evaluation is recorded (so a rerun after an evaluation that died evaluates that checkpoint instead of training it
again)."""
from __future__ import annotations

import contextlib
import json
import os
import time

import numpy as np
from tqdm import tqdm

from cdp_jax.io import atomic_write_text
from cdp_jax.train import results
from cdp_jax.train.tensorboard import MemberBoards
from cdp_jax.train.wandb_runs import RUNS_FILE, WandbRuns

EVAL_SCALARS = ("normalized_score", "return", "success", "action_std", "candidate_std", "lambda_max")
UNEVALUATED = "unevaluated_interval.json"
# Everything a fresh sweep removes from its workdir before it starts.
OUTPUTS = ("checkpoints", "results.csv", "train_metrics.csv", "summary.md", "timing.json", "tensorboard", UNEVALUATED,
           RUNS_FILE)


class Records:
    """The sweep's record of ``members`` from step ``start`` on (rows and metrics of earlier steps are read back
    from the workdir). Only the ``primary`` process writes files; every process keeps the rows."""

    def __init__(self, workdir: str, members: list[dict], *, start: int, primary: bool, tensorboard: bool,
                 progress: bool, num_steps: int, wandb: WandbRuns | None = None):
        self.workdir, self.members, self.primary = workdir, members, primary
        self.rows = self._read("results.csv", start)
        self.train_metrics = self._read("train_metrics.csv", start)
        self.boards = MemberBoards(workdir, members, tensorboard and primary)
        self.wandb = wandb                  # the sweep makes W&B runs in process 0 only
        self.bar = tqdm(total=num_steps, initial=start, desc=f"sweep {len(members)} members", unit="step",
                        disable=not (progress and primary), dynamic_ncols=True)
        # wall_time continues across resumes: seconds of training + evaluation up to each row, this run and before.
        self.wall_before = max((r["wall_time"] for r in self.rows), default=0.0)
        self.timing = dict(train_s=0.0, eval_s=0.0, eval_wait_s=0.0, write_s=0.0)
        self.loop_start = time.perf_counter()

    def _read(self, name: str, start: int) -> list[dict]:
        return [r for r in results.read_csv(os.path.join(self.workdir, name)) if r["step"] <= start] if start else []

    @contextlib.contextmanager
    def timed(self, *keys: str):
        """Adds the block's seconds to each of ``timing[key]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            for key in keys:
                self.timing[key] += time.perf_counter() - t0

    def unevaluated(self, start: int, checkpoints: str) -> dict | None:
        """The train metrics ``{name: [G]}`` of checkpoint ``start`` when its evaluation never finished (the sweep
        evaluates it first), else None. Where a kill fell between its results.csv rows and its train_metrics.csv
        rows, the metrics are written now."""
        if not start or any(r["step"] == start for r in self.train_metrics):
            return None
        saved = _read_unevaluated(os.path.join(self.workdir, UNEVALUATED), start, checkpoints)
        if all(r["step"] != start for r in self.rows):
            return saved
        self.train_metrics.extend(self._metric_rows(start, saved))
        if self.primary:
            self._write_train_metrics(saved)
        return None

    def hold(self, done: int, metrics: dict) -> None:
        """Keeps an interval's train metrics (``{name: [G]}`` on the host) beside its checkpoint until recorded."""
        if self.primary:
            atomic_write_text(os.path.join(self.workdir, UNEVALUATED), json.dumps(dict(step=done, metrics={
                k: np.asarray(v).tolist() for k, v in metrics.items()})))

    def record(self, done: int, metrics: dict, new_rows: list[dict]) -> None:
        """An evaluated interval: its rows, its train metrics (``{name: [G]}`` on the host), TensorBoard scalars,
        the results files and the progress bar's headline."""
        with self.timed("write_s"):
            now = time.perf_counter()
            self.rows.extend(dict(r, wall_time=round(self.wall_before + now - self.loop_start, 2)) for r in new_rows)
            new_metrics = self._metric_rows(done, metrics)
            self.train_metrics.extend(new_metrics)
            scalars = [{**{f"train/{k}": m[k] for k in metrics}, **{f"eval/{k}": r[k] for k in EVAL_SCALARS}}
                       for m, r in zip(new_metrics, new_rows)]
            self.boards.log(done, scalars)
            if self.wandb is not None:
                self.wandb.log(done, scalars)
            if self.primary:
                results.write_csv(os.path.join(self.workdir, "results.csv"), self.rows)
                self._write_train_metrics(metrics)
        latest = self.rows[-len(self.members):]
        metric = results.headline_metric(latest)
        self.bar.set_postfix({metric: f"{np.nanmean([r[metric] for r in latest]):.2f}"})

    def _metric_rows(self, done: int, metrics: dict) -> list[dict]:
        return [dict(m, step=done, **{k: float(v[i]) for k, v in metrics.items()}) for i, m in enumerate(self.members)]

    def _write_train_metrics(self, metrics: dict) -> None:
        results.write_csv(os.path.join(self.workdir, "train_metrics.csv"), self.train_metrics,
                          ("seed", "data_fraction", "gamma", "step") + tuple(sorted(metrics)))

    def close(self) -> None:
        self.bar.close()
        self.boards.close()
        if self.wandb is not None:
            self.wandb.close()

    def finish(self, note: str = "") -> dict:
        """``timing.json``, the summary table (then ``note``) and plots; returns the timing."""
        self.timing["wall_s"] = time.perf_counter() - self.loop_start
        self.timing["eval_share"] = self.timing["eval_wait_s"] / max(self.timing["wall_s"], 1e-9)
        if self.primary:
            atomic_write_text(os.path.join(self.workdir, "timing.json"), json.dumps(self.timing, indent=1))
            results.write_reports(self.rows, self.workdir, note)
            if self.wandb is not None:
                self.wandb.attach(self.workdir)
        return self.timing


def _read_unevaluated(path: str, step: int, checkpoints: str) -> dict:
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
