"""The effect of cheaper contraction: CDP members trained with the term on a sub-batch
(``contraction.batch_fraction``) against the same seeds' γ = 0 and full (every update, whole
batch) CDP members of other sweeps, paired per seed (``experiments.compare`` pools sweeps of one setting; here the
settings differ on purpose).

    B=benchmarks/results/robomimic_lift_unet_g100; python -m benchmarks.science.reduced_contraction_effect \\
        --base=${B}_cpu,${B}_s345_cpu,${B}_s678_cpu --variant="sub-batch 1/16=${B}_sub16_cpu" \\
        --out=${B}_sub16_cpu/reduced_vs_full.md

Rows: for each data fraction and evaluation step of the variant sweeps, each metric (return, success, λmax, action
spread), the pairs (γ = 0, full), (γ = 0, variant) and (full, variant): both means and the paired difference with
its 95% interval, the seeds ahead and the two-sided paired-t and Wilcoxon p-values
(:func:`cdp_jax.analysis.comparison.paired_test`). The base sweeps' γ = 0 and largest γ members are the references; the
variant sweeps' largest γ members are compared with them.
"""
from __future__ import annotations

import os

import numpy as np
from absl import app, flags

from cdp_jax.train import results
from cdp_jax.analysis.comparison import paired_test
from cdp_jax.io import atomic_write_text

_BASE = flags.DEFINE_list("base", [], "workdirs whose γ = 0 and full (every update, whole batch) CDP members are the "
                          "references")
_VARIANT = flags.DEFINE_multi_string("variant", [], "'label=workdir[,workdir...]': sweeps (of other seeds) trained "
                                     "with contraction.batch_fraction < 1")
_OUT = flags.DEFINE_string("out", "", "where the Markdown table goes ('' prints it only)")
METRICS = ("return", "success", "lambda_max", "action_std")


def members(workdirs: list[str]) -> dict:
    """``{(data fraction, step, γ): {seed: row}}`` over the workdirs' results.csv."""
    out = {}
    for w in workdirs:
        rows = results.read_csv(os.path.join(w, "results.csv"))
        if not rows:
            raise SystemExit(f"no results.csv rows in {w}: give sweep workdirs")
        for r in rows:
            out.setdefault((r["data_fraction"], r["step"], r["gamma"]), {})[r["seed"]] = r
    return out


def pair_row(cell: str, metric: str, a_name: str, a: dict, b_name: str, b: dict) -> str:
    seeds = sorted(set(a) & set(b))
    x = np.array([a[s][metric] for s in seeds], np.float64)
    y = np.array([b[s][metric] for s in seeds], np.float64)
    t = paired_test(y - x)
    f = "{:.0f}" if metric == "return" else "{:.3f}"
    return (f"| {cell} | {metric} | {a_name} | {b_name} | {f.format(x.mean())} | {f.format(y.mean())} | "
            f"{f.format(t['difference'])} (± {f.format(t['difference_ci95'])}) | {t['wins']} / {t['seeds']} | "
            f"{t['p_t']:.3f} / {t['p_wilcoxon']:.3f} |")


def table(base: dict, variants: dict[str, dict]) -> str:
    lines = ["| data, step | metric | A | B | mean A | mean B | B − A (95% CI) | seeds B > A | p: t / Wilcoxon |",
             "|---|---|---|---|---|---|---|---|---|"]
    gamma = max(g for _, _, g in base)
    cells = sorted({(f, s) for rows in variants.values() for f, s, _ in rows})
    for fraction, step in cells:
        cell = f"{fraction:g}, {step}"
        zero, every = base.get((fraction, step, 0.0), {}), base.get((fraction, step, gamma), {})
        for metric in METRICS:
            lines.append(pair_row(cell, metric, "γ 0", zero, "every update", every))
            for label, rows in variants.items():
                ours = rows.get((fraction, step, max(g for _, _, g in rows)), {})
                lines.append(pair_row(cell, metric, "γ 0", zero, label, ours))
                lines.append(pair_row(cell, metric, "every update", every, label, ours))
    return "\n".join(lines)


def main(_) -> int:
    variants = {}
    for item in _VARIANT.value:
        label, sep, workdirs = item.rpartition("=")
        if not sep or not label:
            raise SystemExit(f"--variant={item!r}: write label=workdir[,workdir...]")
        variants[label] = members(workdirs.split(","))
    text = table(members(_BASE.value), variants)
    print(text)
    if _OUT.value:
        atomic_write_text(_OUT.value, text + "\n")
    return 0


if __name__ == "__main__":
    app.run(main)
