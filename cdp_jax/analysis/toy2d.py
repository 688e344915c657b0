"""The paper's 2-D toy: four Gaussian modes at the corners of a square, no condition, trained with
DBC at ``gamma = 0`` (Standard) and ``gamma > 0`` (CDP) as ONE vmapped program.

``run(outdir, ...)`` writes ``toy2d.png`` (samples over training, one row per gamma) and ``metrics.json``.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cdp_jax.agents import dbc
from cdp_jax.agents.base import LossWeights
from cdp_jax.train.evaluation import low_noise_lambda_max
from cdp_jax.io import atomic_write_text
from cdp_jax.train.results import save_figure

CENTRES = np.array([[-0.6, -0.6], [-0.6, 0.6], [0.6, -0.6], [0.6, 0.6]], np.float32)


def default_config() -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(dict(
        gammas=(0.0, 0.1), num_steps=4000, num_snapshots=5, batch_size=256, num_data=2000, mode_std=0.08,
        num_samples=2000, seed=0, agent=dbc.default_config()))
    a = cfg.agent
    a.lr, a.diffusion.network, a.diffusion.clip = 1e-3, "dql", 1.0
    a.diffusion.contraction.low_noise_fraction = 0.1
    return cfg


def mixture_samples(key, n: int, std: float) -> jax.Array:
    """``n`` points ``[n, 2]`` from the equal-weight mixture of N(centre, std^2 I) over ``CENTRES``."""
    k_c, k_n = jax.random.split(key)
    centre = jnp.asarray(CENTRES)[jax.random.randint(k_c, (n,), 0, len(CENTRES))]
    return centre + std * jax.random.normal(k_n, (n, 2))


def mode_metrics(samples: np.ndarray, std: float) -> dict:
    """Mean distance to the nearest mode centre, and the fraction of samples farther than 3 std from all."""
    dist = np.linalg.norm(samples[:, None, :] - CENTRES[None], axis=-1).min(axis=1)
    return dict(mean_nearest_mode_distance=float(dist.mean()), far_fraction=float((dist > 3 * std).mean()))


def train(cfg: ml_collections.ConfigDict):
    """Trains one DBC agent per gamma, vmapped. Returns ``(agents, snapshots [S, G, N, 2], snapshot_steps)``."""
    gammas = jnp.asarray(cfg.gammas, jnp.float32)
    key = jax.random.PRNGKey(cfg.seed)
    k_data, k_init, k_train = jax.random.split(key, 3)
    data = mixture_samples(k_data, cfg.num_data, cfg.mode_std)
    agent_cfg = ml_collections.ConfigDict(cfg.agent.to_dict())
    agent_cfg.total_steps = cfg.num_steps
    obs = jnp.zeros((cfg.batch_size, 1))
    # Every member starts from the same initial network so that gamma is the only difference.
    agents = jax.vmap(lambda g: dbc.DBCAgent.create(agent_cfg, LossWeights(gamma=g), k_init, 1, 2))(gammas)
    chunk = cfg.num_steps // cfg.num_snapshots

    def step(agent, key):
        k_b, k_u = jax.random.split(key)
        idx = jax.random.randint(k_b, (cfg.batch_size,), 0, cfg.num_data)
        return agent.update({"observations": obs, "actions": data[idx]}, k_u)

    @jax.jit
    def run_chunk(agents, key):
        keys = jax.random.split(key, chunk)
        return jax.lax.scan(lambda a, k: jax.vmap(step, (0, None))(a, k), agents, keys)

    sample = jax.jit(jax.vmap(lambda a, k: a.act(jnp.zeros((cfg.num_samples, 1)), k), (0, None)))
    snapshots, steps = [], []
    for i in range(cfg.num_snapshots):
        agents, _ = run_chunk(agents, jax.random.fold_in(k_train, i))
        snapshots.append(np.asarray(sample(agents, jax.random.PRNGKey(cfg.seed + 1))))
        steps.append((i + 1) * chunk)
    return agents, np.stack(snapshots), steps


def plot(path: str, snapshots: np.ndarray, steps, gammas) -> None:
    """Sampled actions (dots, drawn over the hollow mode markers so collapsed samples stay visible) per γ and step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(gammas), len(steps)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.6 * n_rows), squeeze=False,
                             sharex=True, sharey=True)
    for g, gamma in enumerate(gammas):
        for s, step in enumerate(steps):
            ax = axes[g, s]
            ax.scatter(CENTRES[:, 0], CENTRES[:, 1], marker="o", s=90, facecolors="none", edgecolors="tab:red",
                       linewidths=1.2, zorder=1, label="mode centres")
            ax.scatter(snapshots[s, g, :, 0], snapshots[s, g, :, 1], s=2, alpha=0.5, c="tab:blue", zorder=2,
                       label=f"{snapshots.shape[2]} sampled actions")
            ax.set_xlim(-1.05, 1.05), ax.set_ylim(-1.05, 1.05), ax.set_xticks([-1, 0, 1]), ax.set_yticks([-1, 0, 1])
            if g == 0:
                ax.set_title(f"step {step}")
            if s == 0:
                ax.set_ylabel("Standard (γ = 0)" if gamma == 0 else f"CDP (γ = {gamma:g})")
    axes[0, -1].legend(loc="lower right", fontsize=7, markerscale=2)
    fig.suptitle("Toy 2-D bimodal imitation: samples of the diffusion policy (action x, y)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def run(outdir: str, cfg: ml_collections.ConfigDict | None = None) -> dict:
    """Trains, plots and writes ``metrics.json``; returns the metrics keyed by ``f"gamma={g}"``."""
    cfg = cfg or default_config()
    if any(g < 0 for g in cfg.gammas) or not cfg.gammas:
        raise ValueError(f"gammas must be a non-empty list of values >= 0, got {cfg.gammas}")
    os.makedirs(outdir, exist_ok=True)
    agents, snapshots, steps = train(cfg)
    k_x, k_l = jax.random.split(jax.random.PRNGKey(cfg.seed + 2))
    points = mixture_samples(k_x, 512, cfg.mode_std)
    lam = low_noise_lambda_max(agents, jnp.zeros((512, 1)), points, k_l)
    metrics = {}
    for g, gamma in enumerate(cfg.gammas):
        metrics[f"gamma={gamma:g}"] = dict(gamma=float(gamma), lambda_max_low_noise=float(lam[g]),
                                           **mode_metrics(snapshots[-1, g], cfg.mode_std))
    plot(os.path.join(outdir, "toy2d.png"), snapshots, steps, list(cfg.gammas))
    atomic_write_text(os.path.join(outdir, "metrics.json"), json.dumps(metrics, indent=2))
    return metrics
