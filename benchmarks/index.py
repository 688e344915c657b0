"""Writes ``benchmarks/README.md``: one table row per result file or result folder under ``benchmarks/results/``
(benchmark, command, what it measures, its headline figure with device, date and commit, the file), generated from
the files' own headers (:mod:`benchmarks.record`).

    python -m benchmarks.index
"""
from __future__ import annotations

import json
import os
import sys

from benchmarks.record import RESULTS
from cdp_jax.io import atomic_write_text

README = os.path.join(os.path.dirname(RESULTS), "README.md")
WHAT = {
    "benchmarks.speed.vs_official": "cdp_jax's EDP/CDP update against the official step written out in PyTorch",
    "benchmarks.speed.throughput": "updates/s of one run and of grids, sampler and evaluation speed, eval share",
    "benchmarks.speed.contraction_cost": "each contraction regularizer's step time relative to γ = 0",
    "benchmarks.speed.reduced_contraction_cost": "the contraction term on a sub-batch: cost relative to γ = 0",
    "benchmarks.speed.image_throughput": "image observations: env steps/s with cameras, updates/s, loading memory",
    "benchmarks.speed.robomimic_throughput": "robomimic: scripted demos, updates/s per backbone, lockstep evaluation",
    "benchmarks.speed.vmap_member_cost": "the member axis: vmap against a loop over members",
    "experiments.sweep": "a sweep's results.csv, summary.md and plots (the science behind docs/)",
    "benchmarks.science.paper_tables": "Table 1 / Table 2 cells and the limited-data figure beside the paper's",
    "benchmarks.science.embedding_levels": "λmax(J_sym) per noise level of EDP and CDP, per time embedding",
    "benchmarks.science.settling": "CDP arms (embedding × penalty levels × γ) against γ 0, seed-paired",
    "benchmarks.speed.wandb_overhead": "a sweep with W&B logging (offline) against without",
    "benchmarks/gpu/check.sh": "the GPU speed check's log",
}
COMMANDS = {"benchmarks.speed.vs_official": "python -m benchmarks.speed.vs_official --torch_python=PYTHON",
            "experiments.sweep": "see the folder's config.json and the doc that cites it"}


def _number(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def headline(benchmark: str, figures) -> str:
    """The one or two figures a reader looks for first; ``see the file`` where the layout is not known."""
    try:
        if benchmark == "benchmarks.speed.vs_official":
            return ", ".join(f"{k}: {v:.2f}×" for k, v in figures["ratios"].items() if "torch" not in k)
        if benchmark == "benchmarks.speed.throughput" and "edp_updates_per_s" in figures:
            return (f"EDP {figures['edp_updates_per_s']:.0f}, CDP {figures['cdp_updates_per_s']:.0f} updates/s" +
                    "".join(f"; grid of {g['N']}: {g['aggregate_updates_per_s']:.0f}"
                            for g in figures.get("edp_cdp_grid", [])[-1:]))
        if benchmark == "benchmarks.speed.throughput" and "sweep_eval_share" in figures:
            return f"evaluation share {figures['sweep_eval_share']['eval_share']:.0%}"
        if benchmark == "benchmarks.speed.contraction_cost":
            part = next(p for p in ("rl", "il", "chunks") if p in figures)
            rows = figures[part] if part != "chunks" else next(iter(figures[part].values()))
            return f"{part}: " + ", ".join(f"{r['variant']} {r['ratio']:.2f}×" for r in rows[1:3])
        if benchmark == "benchmarks.science.embedding_levels":
            return "; ".join(f"{emb}: λmax at t=0 γ0 {c['lambda_max_by_level']['0.0'][0]:.2f} → γ0.1 "
                             f"{c['lambda_max_by_level']['0.1'][0]:.2f}, at t=25 {c['lambda_max_by_level']['0.0'][25]:.2f}"
                             f" → {c['lambda_max_by_level']['0.1'][25]:.2f}" for emb, c in figures["curves"].items())
        if benchmark == "benchmarks.speed.wandb_overhead":
            return f"offline / off: process time {figures['ratio_offline_to_off']['process_s']:.3f}×"
        if benchmark == "benchmarks.science.settling":
            return "; ".join(f"{r['comparison']} @ {r['data_fraction']:g}: {r['difference']:+.1f} ± "
                             f"{r['difference_ci95']:.1f} (p {r['p_t']:.2f})" for r in figures["paired"]
                             if r["metric"] == "normalized_score")
        if benchmark == "benchmarks.speed.reduced_contraction_cost":
            return ", ".join(f"{k} {v:.2f}×" for k, v in list(figures["rounds"][-1]["ratio_to_gamma0"].items())[:2])
    except (KeyError, TypeError, StopIteration, IndexError, AttributeError, ValueError):
        pass
    if isinstance(figures, dict):
        numbers = [(k, v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            return ", ".join(f"{k} {_number(v)}" for k, v in numbers[:2])
    return "see the file"


def entries() -> list[dict]:
    out = []
    for name in sorted(os.listdir(RESULTS)):
        path = os.path.join(RESULTS, name)
        record = path if name.endswith(".json") else os.path.join(path, "header.json")
        if not os.path.isfile(record):
            continue
        with open(record) as f:
            data = json.load(f)
        head = data.get("header", {})
        command = head.get("command", "unknown")
        benchmark = head.get("benchmark") or (command.split()[2] if command.startswith("python -m ") else "unknown")
        figures = data.get("figures")
        if figures is None:                       # a folder: its own tables
            figures = next((f for f in ("summary.md", "table1.md", "paired.md") if os.path.exists(
                os.path.join(path, f))), "the folder's files")
        known = command if command != "unknown" else head.get("command_as_documented") or COMMANDS.get(benchmark)
        out.append(dict(benchmark=benchmark, command=known or "unknown", what=WHAT.get(benchmark, ""),
                        headline=figures if isinstance(figures, str) else headline(benchmark, figures), head=head,
                        file=os.path.relpath(path, os.path.dirname(RESULTS))))
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["# Benchmarks", "",
             "Generated by `python -m benchmarks.index` from the result files' headers (`benchmarks/record.py`); do "
             "not edit by hand. `speed/` measures speed (ratios measured side by side in one run), `science/` "
             "reproduces the paper's tables, `gpu/` holds the scripts for a lent GPU machine, `reference/` the "
             "published numbers. Every result file carries commit, date, device, jax version and the exact command; "
             "files written before that format say `header unknown` and give the last commit that changed them.",
             "", "| benchmark | command | what it measures | latest figure (device, date, commit) | file |",
             "|---|---|---|---|---|"]
    for r in rows:
        h = r["head"]
        commit = h.get("commit", "unknown")
        commit = f"header unknown, committed in {h.get('committed_in', '?')}" if commit == "unknown" else commit
        where = f"{h.get('device', 'unknown')}; {h.get('date', '?')}; {commit}"
        lines.append(f"| {r['benchmark']} | `{r['command']}` | {r['what']} | {r['headline']} ({where}) | "
                     f"[{r['file']}]({r['file']}) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    atomic_write_text(README, markdown(entries()))
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
