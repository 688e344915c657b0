"""Results of a sweep: ``results.csv`` (one row per member per evaluation), ``summary.md`` and plots."""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from cdp_jax.io import atomic_write_text

COLUMNS = ("dataset_id", "agent", "seed", "data_fraction", "gamma", "step", "normalized_score", "return", "success",
           "action_std", "candidate_std", "lambda_max", "diverged", "wall_time")
GROUP = ("dataset_id", "agent", "data_fraction", "gamma")


def write_csv(path: str, rows: list[dict], columns=COLUMNS) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: str) -> list[dict]:
    """Rows of a results file with numbers parsed (``dataset_id`` and ``agent`` stay text, as does any value that
    is no number); an absent file gives no rows."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key not in ("dataset_id", "agent"):
                row[key] = _number(value)
    return rows


def _number(text: str):
    """The number ``text`` was written from: ``"3"`` -> 3, ``"3.0"`` -> 3.0 (so a rewrite is byte-identical);
    text that is no number (a metric's name) stays text."""
    if text in ("", "nan"):
        return math.nan
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def mean_ci(values) -> tuple[float, float, float, int]:
    """``(mean, std, half-width of the 95% t-interval, n)`` over finite values."""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan, 0
    if len(v) == 1:
        return float(v[0]), 0.0, math.nan, 1
    from scipy.special import stdtrit    # Student's t quantile (scipy.stats would add 0.5 s to a CLI run)
    std = float(v.std(ddof=1))
    return float(v.mean()), std, float(stdtrit(len(v) - 1, 0.975) * std / math.sqrt(len(v))), len(v)


def final_rows(rows: list[dict]) -> list[dict]:
    """Each member's row at its last evaluation step."""
    last = {}
    for row in rows:
        key = tuple(row[k] for k in GROUP) + (row["seed"],)
        if key not in last or row["step"] > last[key]["step"]:
            last[key] = row
    return list(last.values())


def summarize(rows: list[dict], metric: str = "normalized_score") -> list[dict]:
    """Per (dataset, agent, fraction, gamma) at the FINAL evaluation: mean, std and 95% CI over seeds."""
    groups = {}
    for row in final_rows(rows):
        groups.setdefault(tuple(row[k] for k in GROUP), []).append(row)
    out = []
    for key, members in sorted(groups.items()):
        mean, std, ci, n = mean_ci([m[metric] for m in members])
        out.append(dict(zip(GROUP, key), mean=mean, std=std, ci95=ci, seeds=n, step=int(max(m["step"] for m in members)),
                        diverged=int(sum(m["diverged"] for m in members)),
                        action_std=mean_ci([m["action_std"] for m in members])[0],
                        candidate_std=mean_ci([m.get("candidate_std", np.nan) for m in members])[0],
                        lambda_max=mean_ci([m["lambda_max"] for m in members])[0]))
    return out


def fmt_number(x: float, digits: int = 1) -> str:
    """``x`` with ``digits`` decimals, or an en dash when it is not finite."""
    return "–" if not np.isfinite(x) else f"{x:.{digits}f}"


def headline_metric(rows: list[dict]) -> str:
    """What a sweep's summary and plots show: the normalised score where the dataset has reference scores, else
    the success rate where the environment reports success (robomimic: Table 2's metric), else the return."""
    for metric in ("normalized_score", "success"):
        if any(np.isfinite(r[metric]) for r in rows):
            return metric
    return "return"


def reported_metrics(rows: list[dict], metric: str = "") -> list[str]:
    """The columns a report shows: ``metric`` (default :func:`headline_metric`), and the average return after it
    when that is the success rate (robomimic's two metrics, Table 2 and Robomimic-Limited)."""
    metric = metric or headline_metric(rows)
    return [metric, "return"] if metric == "success" else [metric]


def summary_markdown(rows: list[dict], metric: str | None = None) -> str:
    """The final evaluation per (dataset, agent, fraction, γ) as Markdown tables, one per
    :func:`reported_metrics`."""
    return "\n".join(_summary_table(rows, m) for m in reported_metrics(rows, metric or ""))


def _summary_table(rows: list[dict], metric: str) -> str:
    table = summarize(rows, metric)
    lines = [f"# Sweep summary: {metric} at the final evaluation (not the best), mean ± std over seeds, 95% CI "
             f"(t-interval)", "",
             "| dataset | agent | data fraction | γ | step | seeds | mean ± std | 95% CI | action std | candidate std "
             "| λmax (low t) | diverged |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['dataset_id']} | {r['agent']} | {r['data_fraction']:g} | {r['gamma']:g} | {r['step']} | "
                     f"{r['seeds']} | {fmt_number(r['mean'])} ± {fmt_number(r['std'])} | ± {fmt_number(r['ci95'])} | "
                     f"{fmt_number(r['action_std'], 3)} | {fmt_number(r['candidate_std'], 3)} | "
                     f"{fmt_number(r['lambda_max'], 3)} | {r['diverged']} |")
    return "\n".join(lines) + "\n"


def write_reports(rows: list[dict], outdir: str, note: str = "") -> None:
    """``outdir/summary.md`` (:func:`summary_markdown`, then ``note``) and ``outdir/plots/`` (:func:`plot_all`; where
    the headline is the success rate, the average return's plots too, in ``plots/return/``)."""
    atomic_write_text(os.path.join(outdir, "summary.md"), summary_markdown(rows) + (f"\n{note}\n" if note else ""))
    plots = os.path.join(outdir, "plots")
    plot_all(rows, plots)
    for metric in reported_metrics(rows)[1:]:      # robomimic's second metric, the average reward
        plot_all(rows, os.path.join(plots, metric), metric)


def save_figure(fig, path: str) -> None:
    """Saves a matplotlib figure as PNG atomically (temporary file + ``os.replace``) and closes it."""
    import matplotlib.pyplot as plt
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def _seeds_note(rows: list[dict]) -> str:
    n = sorted({len({r["seed"] for r in rows if (r["data_fraction"], r["gamma"]) == key})
                for key in {(r["data_fraction"], r["gamma"]) for r in rows}})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
    return f"mean ± 95% t-interval over {seeds} seeds"


def _interval(metric: str, mean: np.ndarray, ci: np.ndarray) -> np.ndarray:
    """``[2, n]`` error-bar lengths below and above ``mean``: the 95% half-width, cut at [0, 1] for a success rate
    (a t-interval over 2-3 seeds easily reaches past both ends)."""
    ci = np.nan_to_num(ci)
    low, high = mean - ci, mean + ci
    if metric == "success":
        low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
    return np.nan_to_num(np.stack([mean - low, high - mean]))


def plot_all(rows: list[dict], outdir: str, metric: str | None = None) -> list[str]:
    """Learning curves, ``metric`` (default :func:`headline_metric`) vs data fraction per γ, and γ sensitivity per
    fraction. Returns the paths. Every band and error bar is the 95% t-interval over seeds, and each figure says so."""
    metric = metric or headline_metric(rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(outdir, exist_ok=True)
    if not rows:
        return []
    fractions = sorted({r["data_fraction"] for r in rows}, reverse=True)
    gammas = sorted({r["gamma"] for r in rows})
    note = _seeds_note(rows)
    paths = []

    paths.append(os.path.join(outdir, "learning_curves.png"))
    save_figure(_learning_curves(plt, rows, metric, fractions, gammas, note), paths[-1])

    table = summarize(rows, metric)
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for k, gamma in enumerate(gammas):
        sel = sorted((r for r in table if r["gamma"] == gamma), key=lambda r: r["data_fraction"])
        dodge = 1.0 + 0.06 * (k - (len(gammas) - 1) / 2)          # side by side, so no bar hides another
        mean = np.array([r["mean"] for r in sel])
        ax.errorbar([r["data_fraction"] * dodge for r in sel], mean,
                    yerr=_interval(metric, mean, np.array([r["ci95"] for r in sel])), marker="o", capsize=3,
                    label=f"γ={gamma:g}")
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("data fraction"), ax.set_ylabel(f"final {metric}"), ax.legend()
    ax.set_title(f"Final score vs data: {note}", fontsize=9)
    paths.append(os.path.join(outdir, "score_vs_fraction.png"))
    save_figure(fig, paths[-1])

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for k, frac in enumerate(fractions):
        sel = {r["gamma"]: r for r in table if r["data_fraction"] == frac}
        xs = [i + 0.08 * (k - (len(fractions) - 1) / 2) for i, g in enumerate(gammas) if g in sel]
        mean = np.array([sel[g]["mean"] for g in gammas if g in sel])
        ax.errorbar(xs, mean, yerr=_interval(metric, mean, np.array([sel[g]["ci95"] for g in gammas if g in sel])),
                    marker="o", capsize=3, label=f"fraction {frac:g}")
    ax.set_xticks(range(len(gammas)), [f"{g:g}" for g in gammas])      # γ as categories: 0 is a real tick
    ax.set_xlabel("contraction weight γ"), ax.set_ylabel(f"final {metric}"), ax.legend()
    ax.set_title(f"γ sensitivity: {note}", fontsize=9)
    paths.append(os.path.join(outdir, "gamma_sensitivity.png"))
    save_figure(fig, paths[-1])
    return paths


def _learning_curves(plt, rows: list[dict], metric: str, fractions: list, gammas: list, note: str):
    """One panel per data fraction: ``metric`` over gradient steps per γ, with the 95% t-interval shaded."""
    fig, axes = plt.subplots(1, len(fractions), figsize=(4.2 * len(fractions), 3.4), squeeze=False, sharey=True)
    for ax, frac in zip(axes[0], fractions):
        for gamma in gammas:
            sel = [r for r in rows if r["data_fraction"] == frac and r["gamma"] == gamma]
            steps = sorted({r["step"] for r in sel})
            stats_ = [mean_ci([r[metric] for r in sel if r["step"] == s]) for s in steps]
            mean = np.array([s[0] for s in stats_])
            low, high = _interval(metric, mean, np.array([s[2] for s in stats_]))
            ax.plot(steps, mean, marker="o", label=f"γ={gamma:g}")
            ax.fill_between(steps, mean - low, mean + high, alpha=0.2)
        ax.set_title(f"data fraction {frac:g}"), ax.set_xlabel("gradient step")
    axes[0][0].set_ylabel(metric)
    axes[0][0].legend()
    fig.suptitle(f"Learning curves: {note} (shaded)", fontsize=10)
    fig.tight_layout()
    return fig
