"""Seed-paired comparisons of each γ > 0 against γ = 0, over one sweep or several pooled.

Members that share a seed share their data subset, initial network, batches and evaluation episodes
(:mod:`cdp_jax.train.grid`), so the per-seed difference ``score(γ) - score(0)`` is the quantity to test, not the two
means. A sweep extended later with new seeds in another workdir (seeds 0-2, then 3-5) pools here, after a check
that the runs used the same hyperparameters.

    rows = pooled_rows(["runs/a", "runs/b"])             # merged results.csv rows, refused on a clash
    table = paired_differences(rows, "return")           # one row per (dataset, agent, fraction, step, γ > 0)
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
from scipy import stats

from cdp_jax.train import results
from cdp_jax.train.workdir import read_config

CELL = ("dataset_id", "agent", "data_fraction", "step")
# Config keys that may differ between pooled runs: which members ran, and how the work was split, not what they did.
GRID_KEYS = ("seeds", "data_fractions", "gammas", "members_per_program", "group_by_contraction", "eval_workers", "distributed",
             "tensorboard")
TEST_COLUMNS = ("seeds", "difference", "difference_std", "difference_ci95", "wins", "t", "p_t", "p_wilcoxon")
COLUMNS = CELL + ("gamma", "base_mean", "mean") + TEST_COLUMNS
SCARCITY_COLUMNS = CELL + ("gamma", "gain_small", "gain_full") + TEST_COLUMNS


def _config(workdir: str) -> dict:
    try:
        return read_config(workdir)
    except FileNotFoundError:
        raise ValueError(f"{workdir} has no config.json: give the workdir of a sweep (python -m experiments.sweep)")


def config_differences(workdirs: list[str], allowed: tuple = ()) -> dict:
    """``{key: [value per workdir]}`` for the config keys that differ between the sweeps, besides
    :data:`GRID_KEYS` and ``allowed``."""
    configs = [_config(w) for w in workdirs]
    keys = sorted(set().union(*configs) - set(GRID_KEYS) - set(allowed))
    return {k: [c.get(k) for c in configs] for k in keys if any(c.get(k) != configs[0].get(k) for c in configs)}


def pooled_rows(workdirs: list[str], allowed: tuple = ()) -> list[dict]:
    """The results.csv rows of the sweeps in ``workdirs``, merged. Refused (``ValueError``, naming the fix) when a
    sweep has no results yet, when their configs differ in a key outside :data:`GRID_KEYS` + ``allowed``, or when
    one member's evaluation (dataset, agent, fraction, γ, seed, step) appears in two of them."""
    if not workdirs:
        raise ValueError("no workdirs given: name at least one sweep's workdir")
    real = [os.path.realpath(w) for w in workdirs]
    if len(set(real)) < len(real):
        twice = next(w for w, r in zip(workdirs, real) if real.count(r) > 1)
        raise ValueError(f"{twice} is listed twice: name each sweep once")
    differ = config_differences(workdirs, allowed)
    if differ:
        listing = "; ".join(f"{k}: " + " vs ".join(json.dumps(v) for v in vals) for k, vals in differ.items())
        raise ValueError(f"the sweeps differ in {listing}. Pool only runs of one setting, or name the keys that may "
                         f"differ with --allow={','.join(differ)}")
    merged, origin = [], {}
    for workdir in workdirs:
        rows = results.read_csv(os.path.join(workdir, "results.csv"))
        if not rows:
            raise ValueError(f"{workdir} has no results.csv rows yet: let the sweep reach its first evaluation")
        for row in rows:
            key = tuple(row[k] for k in results.GROUP + ("seed", "step"))
            if key in origin:
                raise ValueError(f"seed {row['seed']} (γ {row['gamma']:g}, fraction {row['data_fraction']:g}, step "
                                 f"{row['step']}) is in both {origin[key]} and {workdir}: pool sweeps that ran "
                                 f"different seeds (--config.seeds='(3,4,5)')")
            origin[key] = workdir
            merged.append(row)
    return merged


def _scores(rows: list[dict], metric: str) -> dict:
    """``{(dataset, agent, fraction, step): {gamma: {seed: score}}}`` over the finite scores."""
    cells = {}
    for row in rows:
        if np.isfinite(row[metric]):
            cells.setdefault(tuple(row[k] for k in CELL), {}).setdefault(row["gamma"], {})[row["seed"]] = row[metric]
    return cells


def seed_gains(by_gamma: dict, gamma: float, base_gamma: float = 0.0) -> dict:
    """``{seed: score(γ) - score(base γ)}`` over the seeds evaluated under both; ``by_gamma``: ``{γ: {seed: score}}``."""
    base, other = by_gamma.get(base_gamma, {}), by_gamma.get(gamma, {})
    return {s: other[s] - base[s] for s in sorted(set(base) & set(other))}


def paired_test(diff) -> dict:
    """Mean, standard deviation and 95% t-interval half-width of per-seed differences, ``wins`` (how many are
    positive), the one-sample t statistic with its two-sided p-value, and the Wilcoxon signed-rank two-sided p-value
    (exact for small n). A statistic that is undefined (one seed; every difference equal, or zero) is ``nan``."""
    diff = np.asarray(diff, np.float64)
    mean, std, ci, n = results.mean_ci(diff)
    t = p_t = p_w = math.nan
    if n >= 2 and std > 0:
        t = mean / (std / math.sqrt(n))
        p_t = float(2 * stats.t.sf(abs(t), n - 1))
    if n >= 2 and np.any(diff != 0):
        p_w = float(stats.wilcoxon(diff).pvalue)
    return dict(seeds=n, difference=mean, difference_std=std, difference_ci95=ci, wins=int(np.sum(diff > 0)),
                t=t, p_t=p_t, p_wilcoxon=p_w)


def paired_differences(rows: list[dict], metric: str, base_gamma: float = 0.0) -> list[dict]:
    """For every (dataset, agent, data fraction, evaluation step) and every γ other than ``base_gamma``, over the
    seeds evaluated at both: the two means and :func:`paired_test` of the per-seed differences. Non-finite scores
    drop their seed."""
    out = []
    for cell, by_gamma in sorted(_scores(rows, metric).items()):
        for gamma in sorted(g for g in by_gamma if g != base_gamma):
            gains = seed_gains(by_gamma, gamma, base_gamma)
            if not gains:
                continue
            out.append(dict(zip(CELL, cell), gamma=gamma,
                            base_mean=float(np.mean([by_gamma[base_gamma][s] for s in gains])),
                            mean=float(np.mean([by_gamma[gamma][s] for s in gains])), **paired_test(list(gains.values()))))
    return out


def scarcity_differences(rows: list[dict], metric: str, base_gamma: float = 0.0) -> list[dict]:
    """The paper's data-scarcity claim, tested per seed: for every (dataset, agent, step, γ) and every data fraction
    below 1.0, the gain over ``base_gamma`` at that fraction minus the gain at fraction 1.0, over the seeds with
    both gains (:func:`paired_test`; positive: the contraction helps more with less data). Columns as
    :data:`SCARCITY_COLUMNS`."""
    cells = _scores(rows, metric)
    out = []
    for (dataset, agent, fraction, step), by_gamma in sorted(cells.items()):
        full = cells.get((dataset, agent, 1.0, step))
        if fraction >= 1.0 or full is None:
            continue
        for gamma in sorted(g for g in by_gamma if g != base_gamma):
            small, whole = seed_gains(by_gamma, gamma, base_gamma), seed_gains(full, gamma, base_gamma)
            seeds = sorted(set(small) & set(whole))
            if not seeds:
                continue
            out.append(dict(dataset_id=dataset, agent=agent, data_fraction=fraction, step=step, gamma=gamma,
                            gain_small=float(np.mean([small[s] for s in seeds])),
                            gain_full=float(np.mean([whole[s] for s in seeds])),
                            **paired_test([small[s] - whole[s] for s in seeds])))
    return out


def _formatter(metric: str):
    digits = 2 if metric == "success" else 1
    return lambda x, d=digits: results.fmt_number(x, d)


def _test_cells(r: dict, fmt) -> str:
    """The :func:`paired_test` columns of one table row."""
    return (f"{r['seeds']} | {fmt(r['difference'])} ± {fmt(r['difference_std'])} | ± {fmt(r['difference_ci95'])} | "
            f"{r['wins']}/{r['seeds']} | {fmt(r['t'], 2)} | {fmt(r['p_t'], 3)} | {fmt(r['p_wilcoxon'], 3)} |")


_TEST_HEADER = "seeds | difference | 95% CI | wins | t | p (t) | p (Wilcoxon) |"


def paired_markdown(table: list[dict], metric: str, base_gamma: float = 0.0) -> str:
    """:func:`paired_differences` as a Markdown table."""
    fmt = _formatter(metric)
    lines = [f"# Seed-paired {metric}: each γ against γ = {base_gamma:g}", "",
             f"Difference = score(γ) − score(γ = {base_gamma:g}) per seed (same subset, initial network, batches and "
             f"evaluation episodes), mean ± std, 95% t-interval; wins: seeds where γ scored higher; p: two-sided, "
             f"paired t and Wilcoxon signed-rank.", "",
             f"| dataset | agent | data fraction | step | γ | γ = {base_gamma:g} mean | γ mean | " + _TEST_HEADER,
             "|---" * 14 + "|"]
    for r in table:
        lines.append(f"| {r['dataset_id']} | {r['agent']} | {r['data_fraction']:g} | {r['step']} | {r['gamma']:g} | "
                     f"{fmt(r['base_mean'])} | {fmt(r['mean'])} | " + _test_cells(r, fmt))
    return "\n".join(lines) + "\n"


def scarcity_markdown(table: list[dict], metric: str, base_gamma: float = 0.0) -> str:
    """:func:`scarcity_differences` as a Markdown table (empty text when there is nothing to compare)."""
    if not table:
        return ""
    fmt = _formatter(metric)
    lines = [f"# Data scarcity, {metric}: the gain over γ = {base_gamma:g} at a data fraction minus the gain at 1.0", "",
             "Per seed (the seeds run at both fractions); positive: the contraction helps more with less data (the "
             "paper's claim); tests as above.", "",
             "| dataset | agent | data fraction | step | γ | gain there | gain at 1.0 | " + _TEST_HEADER,
             "|---" * 14 + "|"]
    for r in table:
        lines.append(f"| {r['dataset_id']} | {r['agent']} | {r['data_fraction']:g} | {r['step']} | {r['gamma']:g} | "
                     f"{fmt(r['gain_small'])} | {fmt(r['gain_full'])} | " + _test_cells(r, fmt))
    return "\n".join(lines) + "\n"
