"""The one record format of every benchmark result: ``{"header": {...}, "figures": {...}}``, written atomically.

The header says where the figures come from: ``commit`` (``-dirty`` when the tree had uncommitted changes), ``date``,
``device`` (the GPU's name, or the CPU's model and widest vector ISA), ``jax`` and the exact ``command``. A rerun is a
new dated file (:func:`dated_path`), never an overwrite of an older figure. Files from before this format carry
``"commit": "unknown"`` and the commit that added them (``committed_in``).
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

from cdp_jax.io import atomic_write_text
from cdp_jax.train.cli import cpu_model_and_flags

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ISAS = ("avx512f", "avx2", "avx", "sse4_2")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(RESULTS)).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def device() -> str:
    """``NVIDIA H200`` (one GPU; ``x N`` for several), or ``Intel(R) Xeon(R) Processor, avx512f, 2 cores``."""
    import jax
    devices = jax.devices()
    if devices[0].platform != "cpu":
        return devices[0].device_kind + (f" x {len(devices)}" if len(devices) > 1 else "")
    model, flags = cpu_model_and_flags()
    isa = next((i for i in ISAS if i in flags), "unknown ISA")
    return f"{model}, {isa}, {len(os.sched_getaffinity(0))} cores"


def header(argv: list[str] | None = None) -> dict:
    import jax
    argv = list(sys.argv if argv is None else argv)
    module = argv[0]
    if module.endswith(".py") and os.path.exists(module):       # `python -m pkg.mod`: sys.argv[0] is the file
        rel = os.path.relpath(os.path.abspath(module), os.path.dirname(RESULTS) + "/..")
        module = "python -m " + rel.removesuffix(".py").replace(os.sep, ".")
    return dict(commit=commit(), date=datetime.date.today().isoformat(), device=device(), jax=jax.__version__,
                command=" ".join([module, *argv[1:]]))


def device_tag() -> str:
    import jax
    return "cpu" if jax.devices()[0].platform == "cpu" else "gpu"


def dated_path(name: str) -> str:
    """``benchmarks/results/NAME_DEVICE_YYYY-MM-DD.json``: where a run of benchmark ``name`` writes today."""
    return os.path.join(RESULTS, f"{name}_{device_tag()}_{datetime.date.today().isoformat()}.json")


def write(path: str, figures, head: dict | None = None) -> None:
    """Writes ``{"header": head or header(), "figures": figures}`` to ``path`` atomically (rewrite it as figures
    arrive: a run cut short keeps what it measured)."""
    atomic_write_text(path, json.dumps(dict(header=head or header(), figures=figures), indent=1) + "\n")


def read(path: str) -> tuple[dict, object]:
    """``(header, figures)`` of a result file."""
    with open(path) as f:
        record = json.load(f)
    return record["header"], record["figures"]
