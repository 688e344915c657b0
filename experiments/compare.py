"""Seed-paired γ > 0 against γ = 0, for one sweep or several pooled (seeds 0-2 in one workdir, 3-5 in another).

    python -m experiments.compare --workdirs=runs/lift-unet                       # writes paired.md/.csv there
    python -m experiments.compare --workdirs=runs/a,runs/b --out=runs/a+b         # pooled: results.csv, summary.md,
                                                                                  # plots/, paired.md, paired.csv

paired.md also tests the data-scarcity claim where fraction 1.0 and smaller ones share seeds: per seed, the gain
over γ = 0 at the smaller fraction minus the gain at 1.0 (scarcity.csv).

The sweeps must share every setting but the grid's (seeds, fractions, γ values, chunking); ``--allow=key,...``
names keys that may differ. One member's evaluation in two workdirs is refused. See cdp_jax/analysis/comparison.py.
"""
import os
import sys

from absl import app, flags

from cdp_jax.analysis import comparison
from cdp_jax.train import results
from cdp_jax.io import atomic_write_text

_WORKDIRS = flags.DEFINE_list("workdirs", [], "the sweeps' workdirs, comma-separated")
_OUT = flags.DEFINE_string("out", "", "where the pooled files go (needed for several workdirs; never one of them)")
_METRIC = flags.DEFINE_string("metric", "", "results.csv column to compare (default: the summary's headline metric, "
                                            "and the return beside a success rate)")
_ALLOW = flags.DEFINE_list("allow", [], "config keys that may differ between the pooled sweeps")


def compare(workdirs: list[str], out: str, metric: str = "", allow: tuple = ()) -> str:
    """Writes the comparison (see the module docstring) and returns paired.md's text."""
    if len(workdirs) > 1 and not out:
        raise ValueError("several workdirs are pooled into a new folder: name it with --out=runs/pooled")
    if len(workdirs) > 1 and any(os.path.realpath(out) == os.path.realpath(w) for w in workdirs):
        raise ValueError(f"--out={out} is one of the pooled sweeps; its results.csv is the sweep's own (a rerun "
                         f"resumes from it): give a new folder")
    out = out or workdirs[0]
    rows = comparison.pooled_rows(workdirs, tuple(allow))
    if metric and metric not in rows[0]:
        raise ValueError(f"unknown metric {metric!r}; results.csv has {', '.join(results.COLUMNS)}")
    metrics = results.reported_metrics(rows, metric)
    os.makedirs(out, exist_ok=True)
    if len(workdirs) > 1:
        results.write_csv(os.path.join(out, "results.csv"), rows)
        results.write_reports(rows, out)
    tables = {m: comparison.paired_differences(rows, m) for m in metrics}
    scarcity = {m: comparison.scarcity_differences(rows, m) for m in metrics}
    text = "\n".join([comparison.paired_markdown(t, m) for m, t in tables.items()]
                     + [comparison.scarcity_markdown(t, m) for m, t in scarcity.items() if t])
    atomic_write_text(os.path.join(out, "paired.md"), text)
    results.write_csv(os.path.join(out, "paired.csv"), [dict(r, metric=m) for m, t in tables.items() for r in t],
                      columns=("metric",) + comparison.COLUMNS)
    if any(scarcity.values()):
        results.write_csv(os.path.join(out, "scarcity.csv"), [dict(r, metric=m) for m, t in scarcity.items() for r in t],
                          columns=("metric",) + comparison.SCARCITY_COLUMNS)
    return text


def main(argv):
    del argv
    try:
        print(compare(_WORKDIRS.value, _OUT.value, _METRIC.value, tuple(_ALLOW.value)))
    except ValueError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main)
