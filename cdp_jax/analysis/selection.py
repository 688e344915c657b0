"""Choosing γ without peeking: the best contraction weight per data fraction, chosen on held-out evaluation
episodes, then reported on the sweep's own evaluation.

The official code sweeps γ ∈ {0.001, 0.01, 0.1, 0.5, 1, 10} per task (:data:`cdp_jax.train.config.OFFICIAL_GAMMAS`). Picking
the γ whose reported score is highest inflates that score (the maximum of noisy means); here every member of a
finished sweep is evaluated again on environment seeds that the sweep never used, γ is chosen per data fraction on
that held-out mean over seeds, and the table reports the chosen γ's score from the sweep's results.csv with the
γ = 0 score beside it (seed-paired gain).

    python -m experiments.select_gamma --workdir=runs/hopper-gammas [--episodes=10]
"""
from __future__ import annotations

import os

import jax
import numpy as np

from cdp_jax.train import results
from cdp_jax.io import atomic_write_text
from cdp_jax.train.workdir import read_config
from cdp_jax.train import evaluation
from cdp_jax.datasets import Normalizer
from cdp_jax.train.policy import load_grid
from cdp_jax.datasets.source import load_dataset

HOLDOUT_OFFSET = 1_000_000        # held-out reset seeds start this far above the sweep's eval_seed
COLUMNS = ("data_fraction", "gamma", "seeds", "holdout_score", "reported_score", "reported_ci95", "gamma0_score",
           "paired_gain", "paired_gain_ci95", "chosen")


def score_metric(info) -> str:
    """What γ is chosen on: the normalised score where the dataset has reference scores, else the average return
    (robomimic's average reward, the paper's Robomimic-Limited metric)."""
    return "normalized_score" if info.ref_min_score is not None and info.ref_max_score is not None else "return"


def holdout_scores(workdir: str, episodes: int) -> tuple[list[dict], dict, str]:
    """Every member's mean score (:func:`score_metric`) on ``episodes`` held-out episodes at the last checkpoint:
    ``([{seed, data_fraction, gamma, holdout_score}], sweep config, metric)``."""
    agents, meta, step = load_grid(workdir)
    cfg = read_config(workdir)
    _, info = load_dataset(cfg)
    metric = score_metric(info)
    act = evaluation.grid_actor(lambda agent, obs, key: agent.act(obs, key))
    seeds = np.asarray([m["seed"] for m in meta["members"]])
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s), 3), step))(seeds)
    scores = evaluation.evaluate(agents, act, info, Normalizer.from_meta(meta), keys, episodes,
                                 seed=int(cfg["eval_seed"]) + HOLDOUT_OFFSET, workers=int(cfg.get("eval_workers", 1)),
                                 return_clip=tuple(cfg.get("eval_return_clip", ())),
                                 max_envs=int(cfg.get("eval_max_envs", 0)))
    rows = [dict(seed=m["seed"], data_fraction=m["data_fraction"], gamma=m["gamma"],
                 holdout_score=float(scores[metric][i])) for i, m in enumerate(meta["members"])]
    return rows, cfg, metric


def choose(holdout: list[dict], reported: list[dict], metric: str = "normalized_score") -> list[dict]:
    """One row per (data fraction, γ > 0): held-out mean, reported mean ± CI, the γ = 0 reported mean, the
    seed-paired reported gain over γ = 0, and ``chosen`` on the γ with the best held-out mean of its fraction.

    ``reported``: the sweep's final results.csv rows (one per member); ``metric``: their column to report."""
    final = {(r["data_fraction"], r["gamma"], r["seed"]): r[metric] for r in reported}
    out = []
    for frac in sorted({h["data_fraction"] for h in holdout}):
        gammas = sorted({h["gamma"] for h in holdout if h["data_fraction"] == frac and h["gamma"] > 0})
        if not gammas:
            raise ValueError("the sweep has no γ > 0 member to choose from; give it --config.gammas with γ > 0")
        seeds = sorted({h["seed"] for h in holdout if h["data_fraction"] == frac})
        base = [final.get((frac, 0.0, s), np.nan) for s in seeds]
        rows = []
        for g in gammas:
            held = [h["holdout_score"] for h in holdout if h["data_fraction"] == frac and h["gamma"] == g]
            rep = [final.get((frac, g, s), np.nan) for s in seeds]
            mean, _, ci, n = results.mean_ci(rep)
            gain, _, gain_ci, _ = results.mean_ci(np.subtract(rep, base))
            rows.append(dict(data_fraction=frac, gamma=g, seeds=n, holdout_score=float(np.nanmean(held)),
                             reported_score=mean, reported_ci95=ci, gamma0_score=results.mean_ci(base)[0],
                             paired_gain=gain, paired_gain_ci95=gain_ci, chosen=False))
        best = max(rows, key=lambda r: r["holdout_score"])
        best["chosen"] = True
        out += rows
    return out


def selection_markdown(rows: list[dict], episodes: int, dataset_id: str, metric: str = "normalized_score") -> str:
    what = "normalised score" if metric == "normalized_score" else "average return (no reference scores)"
    lines = [f"# γ chosen on held-out episodes: {dataset_id}", "",
             f"Each member was evaluated again on {episodes} held-out episodes (environment seeds the sweep never "
             f"used); per data fraction the γ with the best held-out mean over seeds is chosen (**bold**). Scores "
             f"({what}): the sweep's own final evaluation, mean ± 95% CI over seeds; gain: seed-paired against "
             f"γ = 0.", "",
             "| data fraction | γ | held-out mean | reported score | γ = 0 reported | paired gain |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mark = (lambda s: f"**{s}**") if r["chosen"] else (lambda s: s)
        lines.append(f"| {r['data_fraction']:g} | {mark(format(r['gamma'], 'g'))} | {r['holdout_score']:.1f} | "
                     f"{r['reported_score']:.1f} ± {r['reported_ci95']:.1f} | {r['gamma0_score']:.1f} | "
                     f"{r['paired_gain']:+.1f} ± {r['paired_gain_ci95']:.1f} |")
    return "\n".join(lines) + "\n"


def select_gamma(workdir: str, episodes: int = 10) -> list[dict]:
    """Evaluates the held-out episodes, chooses γ and writes ``gamma_selection.md`` / ``.csv`` in ``workdir``."""
    holdout, cfg, metric = holdout_scores(workdir, episodes)
    reported = results.final_rows(results.read_csv(os.path.join(workdir, "results.csv")))
    if not reported:
        raise ValueError(f"{workdir!r} has no results.csv rows yet; let the sweep reach an evaluation first")
    rows = choose(holdout, reported, metric)
    results.write_csv(os.path.join(workdir, "gamma_selection.csv"), rows, COLUMNS)
    atomic_write_text(os.path.join(workdir, "gamma_selection.md"),
                      selection_markdown(rows, episodes, cfg["dataset_id"], metric))
    return rows
