"""The tables and the figure of ``benchmarks/science/paper_tables.py``: cells (mean ± 95% t-interval over seeds of the
final evaluation), seed-paired CDP − EDP gains, the data-scarcity verdict, and the paper's numbers beside ours."""
from __future__ import annotations

import csv
import math
import os


import numpy as np

from benchmarks.science import robomimic_jobs
from cdp_jax.analysis import comparison
from benchmarks.science.jobs import Budget, Dataset
from cdp_jax.train import results
from cdp_jax.io import atomic_write_text

PAPER_CSV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference", "paper.csv")
CDP_GAMMA = 0.1
# paper_tables.sweep_config gives every diffusion agent the official network
EMBEDDING = "Diffusion agents: CleanDiffuser's integer-cast time embedding, the official network (docs/fidelity.md)."


def read_paper(path: str = PAPER_CSV) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def paper_value(paper: list[dict], table: str, row: str, column: str) -> float:
    for r in paper:
        if r["table"] == table and r["row"] == row and r["column"] == column:
            return float(r["value"])
    return math.nan


def cell(rows: list[dict], dataset_id: str, agent: str, fraction: float, gamma: float, metric: str) -> tuple:
    """(mean, 95% CI half-width, n) of the final ``metric`` over seeds for one grid cell."""
    vals = [r[metric] for r in rows if r["dataset_id"] == dataset_id and r["agent"] == agent
            and r["data_fraction"] == fraction and r["gamma"] == gamma]
    mean, _, ci, n = results.mean_ci(vals)
    return mean, ci, n


def seed_gains(rows: list[dict], dataset_id: str, fraction: float, metric: str = "normalized_score") -> dict:
    """``{seed: CDP - EDP}``; members with the same seed share their data subset, initial network and batches."""
    by_gamma = {}
    for r in rows:
        if r["dataset_id"] == dataset_id and r["agent"] == "edp" and r["data_fraction"] == fraction:
            by_gamma.setdefault(r["gamma"], {})[r["seed"]] = r[metric]
    return comparison.seed_gains(by_gamma, CDP_GAMMA)


def paired_gain(rows: list[dict], dataset_id: str, fraction: float) -> tuple:
    """(mean, 95% CI, n) of the seed-paired CDP - EDP gain."""
    mean, _, ci, n = results.mean_ci(list(seed_gains(rows, dataset_id, fraction).values()))
    return mean, ci, n


def _fmt(mean: float, ci: float, n: int, digits: int = 1) -> str:
    if n == 0 or not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}" if np.isfinite(ci) else f"{mean:.{digits}f}"


def table1_markdown(rows, datasets: list[Dataset], paper, budget: Budget, preset: str) -> str:
    lines = [f"# Table 1: offline RL (preset `{preset}`)", "",
             (f"Normalised score (0-100) at the final evaluation after {_steps_reached(rows, budget.rl_steps)} gradient "
              f"steps, mean ± 95% CI "
             f"(t-interval) over {budget.seeds} seeds, {budget.eval_episodes} evaluation episodes per seed. "
             f"CDP = EDP + contraction (γ = {CDP_GAMMA}, Frobenius, t < 0.1·T). Each cell: ours (paper). {EMBEDDING}"),
             "",
             "| dataset | data used | BC | DQL | EDP | IDQL | CDP |", "|---|---|---|---|---|---|---|"]
    for ds in datasets:
        cells = []
        for agent, gamma, column in (("bc", 0.0, "BC"), ("dql", 0.0, "DQL"), ("edp", 0.0, "EDP"),
                                     ("idql", 0.0, "IDQL"), ("edp", CDP_GAMMA, "CDP")):
            ours = _fmt(*cell(rows, ds.dataset_id, agent, 1.0, gamma, "normalized_score"))
            cells.append(f"{ours} ({results.fmt_number(paper_value(paper, 'table1', ds.paper_row, column))})")
        lines.append(f"| {ds.paper_row or ds.dataset_id.split('/', 1)[1]} | {ds.provenance} | " + " | ".join(cells) + " |")
    avg = [results.fmt_number(paper_value(paper, "table1", "Average over all envs", c))
           for c in ("BC", "DQL", "EDP", "IDQL", "CDP")]
    lines.append("| paper: average over its D4RL tasks | D4RL | " + " | ".join(f"– ({a})" for a in avg) + " |")
    capped = [f"{ds.dataset_id} (η = {ds.dql_eta:g})" for ds in datasets if ds.dql_eta and ds.dql_eta != ds.eta]
    if capped:
        lines += ["", "DQL's Q weight differs from EDP's on " + ", ".join(capped) + ": DQL diverges at EDP's η there."]
    lines += ["", "## Limited data: EDP against CDP per data fraction", "",
              ("Subsets are random transitions, the same subset for EDP and CDP at each seed; the gain is the "
              "seed-paired CDP - EDP difference (mean ± 95% CI)."), "",
              "| dataset | fraction | EDP | CDP | CDP − EDP | seeds |", "|---|---|---|---|---|---|"]
    for ds in datasets:
        for frac in ds.fractions or budget.fractions:
            edp = cell(rows, ds.dataset_id, "edp", frac, 0.0, "normalized_score")
            cdp = cell(rows, ds.dataset_id, "edp", frac, CDP_GAMMA, "normalized_score")
            gain = paired_gain(rows, ds.dataset_id, frac)
            lines.append(f"| {ds.dataset_id} | {frac:g} | {_fmt(*edp)} | {_fmt(*cdp)} | {_fmt(*gain)} | {gain[2]} |")
    lines += ["", "Paper, D4RL at 10% data (read off its figure): " + "; ".join(
        f"{row}: EDP {results.fmt_number(paper_value(paper, 'limited_data', row, 'EDP'), 0)}, "
        f"CDP {results.fmt_number(paper_value(paper, 'limited_data', row, 'CDP'), 0)}"
        for row in ("Mujoco-M", "Mujoco-MR", "Mujoco-ME", "Kitchen", "Antmaze-M")) + ".", "",
              scarcity_verdict(rows, datasets, budget)]
    return "\n".join(lines) + "\n"


def _steps_reached(rows, planned: int) -> str:
    """The planned step count, or what the rows reached when a run was cut short."""
    reached = {int(r["step"]) for r in rows if r["agent"] != "dbc"}
    if not reached or reached == {planned}:
        return str(planned)
    return f"{'/'.join(map(str, sorted(reached)))} (of {planned} planned: cut short)"


def scarcity_verdict(rows, datasets: list[Dataset], budget: Budget) -> str:
    """Whether the CDP - EDP gain is larger at the smallest fraction than at 100%, per dataset, with the 95% CI of
    the per-seed difference of the two gains (gain at the small fraction minus gain at 1.0)."""
    parts = []
    for ds in datasets:
        small = min(ds.fractions or budget.fractions)
        per_seed = {frac: seed_gains(rows, ds.dataset_id, frac) for frac in (1.0, small)}
        seeds = sorted(set(per_seed[1.0]) & set(per_seed[small]))
        if not seeds or small == 1.0:
            continue
        full = np.mean([per_seed[1.0][s] for s in seeds])
        scarce = np.mean([per_seed[small][s] for s in seeds])
        diff, _, ci, n = results.mean_ci([per_seed[small][s] - per_seed[1.0][s] for s in seeds])
        verdict = "holds" if diff > 0 else "does not hold"
        if np.isfinite(ci):
            verdict += " (significant at 95%)" if abs(diff) > ci else " (not significant at 95%)"
        parts.append(f"`{ds.dataset_id}`: gain {scarce:+.1f} at fraction {small:g} vs {full:+.1f} at 1.0, "
                     f"difference {diff:+.1f} ± {ci:.1f} over {n} seeds: {verdict}")
    if not parts:
        return ""
    return "**Data-scarcity claim (the CDP − EDP gain is larger with less data):**\n\n" + "\n".join(
        f"- {p}" for p in parts)


def table2_markdown(rows, datasets: list[Dataset], paper, budget: Budget, preset: str) -> str:
    lines = [f"# Table 2: imitation, DBC against CDP (preset `{preset}`)", "",
             (f"Diffusion BC with the official recipe (Pearce MLP, 50 DPM-Solver++ steps, L_c at all t; "
              f"experiments/configs/pointmaze.py) with γ = 0 (DBC) and γ = {CDP_GAMMA} (CDP), "
              f"{budget.il_steps} gradient steps, final evaluation, mean ± 95% CI over {budget.seeds} seeds. "
              f"{EMBEDDING}"), "",
             "| dataset | data used | metric | DBC | CDP |", "|---|---|---|---|---|"]
    for ds in (d for d in datasets if d.imitation):
        for metric, label in (("success", "success rate"), ("normalized_score", "normalised score")):
            dbc = cell(rows, ds.dataset_id, "dbc", 1.0, 0.0, metric)
            cdp = cell(rows, ds.dataset_id, "dbc", 1.0, CDP_GAMMA, metric)
            digits = 2 if metric == "success" else 1
            lines.append(f"| {ds.dataset_id.split('/', 1)[1]} | {ds.provenance} | {label} | "
                         f"{_fmt(*dbc, digits)} | {_fmt(*cdp, digits)} |")
    robo = [d for d in datasets if d.robomimic]
    if robo:
        lines += ["", "## Robomimic (low-dim): each backbone without and with contraction (its CDP γ in the γ column: "
                  "0.1 for the Pearce MLP, 100 for the chunk backbones, whose d x d mean weighs a chunk 16x less)", "",
                  f"{budget.il_steps} gradient steps, {budget.eval_episodes} evaluation episodes of the task's full "
                  f"horizon, final evaluation, mean ± 95% CI over {budget.seeds} seeds; success = any reward > 0, "
                  f"average reward = the episode's sum. The paper's values are for the PH data.", ""]
        for ds in robo:
            lines += robomimic_jobs.table(rows, ds.dataset_id, ds.robomimic, ds.provenance, paper,
                                          budget.robomimic_backbones, cell, _fmt, paper_value)
    lines += ["", "The paper's Table 2 is on robomimic, which has no Minari release; its numbers (success rate):", "",
              "| task | DBC-DiT | CDP-DiT | DP-Unet | CDP-Unet |", "|---|---|---|---|---|"]
    for row in ("Transport-L", "Transport-H", "Can-H", "Average"):
        lines.append(f"| {row} | " + " | ".join(results.fmt_number(paper_value(paper, "table2", row, c), 2)
                                              for c in ("DBC-DiT", "CDP-DiT", "DP-Unet", "CDP-Unet")) + " |")
    return "\n".join(lines) + "\n"


def limited_data_plot(rows, datasets: list[Dataset], paper, budget: Budget, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(datasets) + 1, figsize=(4.0 * (len(datasets) + 1), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        fractions = sorted(ds.fractions or budget.fractions)
        for gamma, label in ((0.0, "EDP"), (CDP_GAMMA, "CDP")):
            stats_ = [cell(rows, ds.dataset_id, "edp", f, gamma, "normalized_score") for f in fractions]
            ax.errorbar(fractions, [s[0] for s in stats_], yerr=np.nan_to_num([s[1] for s in stats_]), marker="o",
                        capsize=3, label=label)
        ax.set_xscale("log"), ax.set_xlabel("data fraction"), ax.set_ylabel("normalised score")
        ax.set_title(ds.dataset_id.split("/", 1)[1], fontsize=9)
        ax.legend()
    ax = axes[0][-1]
    tasks = ("Mujoco-M", "Mujoco-MR", "Mujoco-ME", "Kitchen", "Antmaze-M")
    x = np.arange(len(tasks))
    for k, column in enumerate(("EDP", "CDP")):
        ax.bar(x + 0.4 * k - 0.2, [paper_value(paper, "limited_data", t, column) for t in tasks], 0.4, label=column)
    ax.set_xticks(x, tasks, rotation=30, fontsize=8), ax.set_title("paper: D4RL at 10% (read off)", fontsize=9)
    ax.legend()
    fig.suptitle(f"Final score vs data fraction, mean ± 95% CI over {budget.seeds} seeds", fontsize=10)
    results.save_figure(fig, path)


def write_outputs(rows, datasets, budget: Budget, preset: str, workdir: str) -> None:
    paper = read_paper()
    offline_rl = [d for d in datasets if not d.robomimic]
    atomic_write_text(os.path.join(workdir, "table1.md"), table1_markdown(rows, offline_rl, paper, budget, preset))
    atomic_write_text(os.path.join(workdir, "table2.md"), table2_markdown(rows, datasets, paper, budget, preset))
    limited_data_plot(rows, offline_rl, paper, budget, os.path.join(workdir, "limited_data.png"))
    results.write_csv(os.path.join(workdir, "results.csv"), rows)
