"""Measure how contractive every grid member's sampler is.  python -m experiments.diagnose --workdir DIR [--states N]"""
import sys

from absl import app, flags, logging

from cdp_jax.analysis.diagnostics import diagnose_sweep

_WORKDIR = flags.DEFINE_string("workdir", None, "a finished sweep's workdir", required=True)
_STATES = flags.DEFINE_integer("states", 64, "number of dataset states to measure at")
_LEVELS = flags.DEFINE_integer("levels", 0, "noise levels to measure λmax at, spread over 0..T-1 (0: every level)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if _STATES.value < 1:
        sys.exit(f"error: --states must be >= 1 (dataset states to measure at), got {_STATES.value}")
    try:
        rows = diagnose_sweep(_WORKDIR.value, _STATES.value, num_levels=_LEVELS.value)
    except ValueError as err:
        sys.exit(f"error: {err}")
    summary = {}
    for r in rows:
        if r["metric"] != "lambda_max":
            summary.setdefault((r["data_fraction"], r["gamma"], r["metric"]), []).append(r["value"])
    for (frac, gamma, metric), values in sorted(summary.items()):
        print(f"fraction {frac:g}  gamma {gamma:g}  {metric:28s} {sum(values) / len(values):.4f}")
    print(f"wrote {_WORKDIR.value}/diagnostics.csv and {_WORKDIR.value}/plots/diagnostics_*.png")


if __name__ == "__main__":
    app.run(main)
