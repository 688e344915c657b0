"""Weights & Biases runs of a sweep, beside its TensorBoard files (``--config.wandb=offline|online``; default off).

One W&B run per grid member, grouped by the workdir's name (job type: the agent; config: the member's seed, data
fraction, γ, η and the sweep's flattened config), logging the same train and eval scalars as TensorBoard at the same
steps, handed over between training intervals; one sweep-level run holds the final ``summary.md`` and plots. The run
ids are kept in ``WORKDIR/wandb_runs.json`` with the last step logged, so a resumed sweep continues the same runs
without repeating a step. Project, entity and folder follow W&B's own ``WANDB_PROJECT`` (default ``cdp_jax``),
``WANDB_ENTITY`` and ``WANDB_DIR`` (default: the workdir). ``online`` where W&B's server cannot be reached says so in
one line and logs offline instead, so a long sweep never waits on it; upload later with
``wandb sync WORKDIR/wandb/offline-run-*``.
"""
from __future__ import annotations

import json
import math
import os
import socket
import urllib.parse
import uuid

from cdp_jax.io import atomic_write_text
from cdp_jax.train.tensorboard import member_name

MODES = ("off", "offline", "online")
RUNS_FILE = "wandb_runs.json"
INSTALL = 'pip install -e ".[wandb]"'


def import_wandb():
    try:
        import wandb
    except ImportError:
        raise ValueError(f"--config.wandb needs the wandb package: {INSTALL} (or --config.wandb=off)") from None
    return wandb


def reachable(timeout: float = 3.0) -> bool:
    """Whether W&B's server (``WANDB_BASE_URL``, default api.wandb.ai) answers a TCP connection."""
    url = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


class WandbRuns:
    """``log(step, scalars)`` takes ``[{tag: value}]``, one dict per member (as TensorBoard's writers do);
    ``close()`` finishes the member runs; ``attach(workdir)`` then writes the sweep-level run (summary and plots)."""

    def __init__(self, workdir: str, members: list[dict], mode: str, agent: str, config: dict):
        wandb = import_wandb()
        if mode == "online" and not reachable():
            print(f"W&B: {os.environ.get('WANDB_BASE_URL', 'api.wandb.ai')} cannot be reached: logging offline; "
                  f"upload later with `wandb sync {os.environ.get('WANDB_DIR', workdir)}/wandb/offline-run-*`")
            mode = "offline"
        self.path = os.path.join(workdir, RUNS_FILE)
        saved = self._load(len(members))
        self.ids = saved.get("members") or [uuid.uuid4().hex[:12] for _ in members]
        self.sweep_id = saved.get("sweep") or uuid.uuid4().hex[:12]
        self.logged = int(saved.get("logged_step", -1))
        self._save()
        folder = os.environ.get("WANDB_DIR", workdir)
        os.makedirs(folder, exist_ok=True)
        group = os.path.basename(os.path.abspath(workdir))
        self.common = dict(project=os.environ.get("WANDB_PROJECT", "cdp_jax"), group=group, dir=folder, mode=mode,
                           resume="allow", reinit="create_new", settings=wandb.Settings(silent=True))
        self.flat = {f"sweep.{k}": v for k, v in config.items()}
        self.runs = [wandb.init(id=run_id, name=f"{group}/{member_name(m)}", job_type=agent,
                                config=dict(m, eta=config.get("eta"), **self.flat), **self.common)
                     for run_id, m in zip(self.ids, members)]

    def _load(self, num_members: int) -> dict:
        try:
            with open(self.path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return {}
        return saved if len(saved.get("members", [])) == num_members else {}

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(dict(members=self.ids, sweep=self.sweep_id, logged_step=self.logged)))

    def log(self, step: int, scalars: list[dict]) -> None:
        if step <= self.logged:                      # already logged before a resume
            return
        for run, values in zip(self.runs, scalars):
            run.log({k: v for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}, step=step)
        self.logged = step
        self._save()

    def attach(self, workdir: str) -> None:
        """The sweep-level run: ``summary.md`` (as text, and as a file of the run) and the plots (as images)."""
        import wandb
        run = wandb.init(id=self.sweep_id, name=f"{self.common['group']}/summary", job_type="summary",
                         config=self.flat, **self.common)
        summary = os.path.join(workdir, "summary.md")
        if os.path.exists(summary):
            with open(summary) as f:
                run.summary["summary_md"] = f.read()
            run.save(summary, base_path=workdir, policy="now")
        plots = os.path.join(workdir, "plots")
        images = sorted(p for p in os.listdir(plots) if p.endswith(".png")) if os.path.isdir(plots) else []
        if images:
            run.log({f"plots/{p[:-4]}": wandb.Image(os.path.join(plots, p)) for p in images})
        run.finish()

    def close(self) -> None:
        for run in self.runs:
            run.finish()
        self.runs = []
