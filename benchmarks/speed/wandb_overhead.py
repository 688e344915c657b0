"""What W&B logging costs a sweep: the quickstart (or ``--config``) run twice side by side, with
``--config.wandb=off`` and ``--config.wandb=offline``, in fresh workdirs; per run the wall time of the whole sweep,
its training and writing seconds (``timing.json``), and the ratio offline / off.

    python -m benchmarks.speed.wandb_overhead [--config=experiments/configs/quickstart.py] [--out=PATH]

Writes ``benchmarks/results/wandb_overhead_DEVICE_DATE.json`` (record header). Logging hands the scalars over
between training intervals, so only ``write_s`` and the runs' start and finish should grow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import record
from cdp_jax.train.cli import run_flags_cli


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("config", "experiments/configs/quickstart.py", "the sweep config to time", flag_values=fv)
    flags.DEFINE_string("out", "", "result file (default: benchmarks/results/wandb_overhead_DEVICE_DATE.json)",
                        flag_values=fv)


def timed_sweep(config: str, workdir: str, mode: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "experiments.sweep", f"--config={config}", f"--workdir={workdir}",
                           f"--config.wandb={mode}"], capture_output=True, text=True,
                          env=dict(os.environ, WANDB_SILENT="true"))
    if proc.returncode != 0:
        raise SystemExit(f"error: the {mode} sweep failed: {proc.stderr.strip().splitlines()[-1]}")
    with open(os.path.join(workdir, "timing.json")) as f:
        timing = json.load(f)
    return dict(process_s=time.perf_counter() - t0, **{k: timing[k] for k in ("wall_s", "train_s", "write_s")})


def run(_, args: flags.FlagValues) -> int:
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("off", "offline"):
            figures[mode] = timed_sweep(args.config, os.path.join(tmp, mode), mode)
            print(f"wandb={mode}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures[mode].items()), flush=True)
    figures["ratio_offline_to_off"] = {k: figures["offline"][k] / figures["off"][k] for k in figures["off"]}
    print("offline / off: " + ", ".join(f"{k} {v:.3f}" for k, v in figures["ratio_offline_to_off"].items()))
    out = args.out or record.dated_path("wandb_overhead")
    record.write(out, dict(config=args.config, **figures))
    print(f"wrote {out}")
    return 0


def main(argv: list[str]) -> int:
    return run_flags_cli(["python -m benchmarks.speed.wandb_overhead", *argv], __doc__, define_flags, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
