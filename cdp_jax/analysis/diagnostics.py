"""How contractive is a trained sampler? Measurements behind ``python -m experiments.diagnose``.

* :func:`sampler_lipschitz`: the empirical Lipschitz constant ``||d a_0 / d a_T||_2`` of the whole scan-compiled
  sampler at fixed states, by power iteration on ``J^T J`` with JVPs and VJPs through the scan.
* :func:`lambda_max_curve`: exact ``lambda_max(J_sym)`` of the x0 network as a function of the level ``t``.
* :func:`action_statistics`: the spread of actions across initial noises (the consistency that the paper's
  corollary bounds) and how far sampled actions fall from the data.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from cdp_jax.train import results
from cdp_jax.datasets import Normalizer
from cdp_jax.train.policy import load_grid
from cdp_jax.datasets.source import load_dataset
from cdp_jax.train.workdir import read_config
from cdp_jax.train.results import save_figure


def sampler_lipschitz(sample_fn: Callable[[jax.Array], jax.Array], x_T: jax.Array, key: jax.Array,
                      num_iters: int = 20) -> jax.Array:
    """Largest singular value of ``d sample_fn(x_T) / d x_T`` per row: ``x_T [S, d]`` -> ``[S]``.

    ``sample_fn`` maps initial noise to actions row by row (row s depends only on row s), so one JVP and one VJP
    of the batched function give every row's ``J v`` and ``J^T u`` at once.
    """
    _, jvp_fn = jax.linearize(sample_fn, x_T)
    vjp_fn = jax.linear_transpose(jvp_fn, x_T)
    normalise = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-30)
    v = normalise(jax.random.normal(key, x_T.shape))
    for _ in range(num_iters):
        v = normalise(vjp_fn(jvp_fn(v))[0])
    return jnp.linalg.norm(jvp_fn(v), axis=-1)


def lambda_max_curve(denoiser, params, key, states, actions, levels) -> jax.Array:
    """Mean exact ``lambda_max(J_sym)`` over ``states [S, o]`` / dataset ``actions [S, d]`` noised to each of
    ``levels [L]`` (ints): ``[L]``."""
    def at(t):
        tt = jnp.full(states.shape[0], t)
        noise = jax.random.normal(jax.random.fold_in(key, t), actions.shape)
        x_t = denoiser.q_sample(actions, tt, noise)
        return denoiser.max_eigenvalue(params, key, x_t, tt, states).mean()
    return jax.lax.map(at, jnp.asarray(levels))


def action_statistics(samples: jax.Array, data_actions: jax.Array, neighbour_actions: jax.Array) -> dict:
    """``samples [K, S, d]`` (K initial noises at S states), the dataset action at each state ``[S, d]`` and the
    dataset actions of each state's nearest neighbours ``[S, M, d]``. Returns means over states of: the std
    across noises, the distance to the dataset action, and the distance to the nearest neighbouring action."""
    spread = jnp.mean(jnp.std(samples, axis=0))
    to_data = jnp.mean(jnp.linalg.norm(samples - data_actions[None], axis=-1))
    nearest = jnp.min(jnp.linalg.norm(samples[:, :, None, :] - neighbour_actions[None], axis=-1), axis=-1)
    return dict(action_spread=spread, distance_to_data_action=to_data, distance_to_nearest_action=jnp.mean(nearest))


def diagnose_sweep(workdir: str, num_states: int = 64, num_noises: int = 16, num_levels: int = 0,
                   neighbours: int = 10, seed: int = 0) -> list[dict]:
    """Runs every measurement for every grid member of a finished sweep; writes ``diagnostics.csv`` and
    ``plots/diagnostics_*.png`` into ``workdir`` and returns the rows (long format: one row per member per
    metric per level). λmax is measured at ``num_levels`` levels spread over 0..T-1 (0: every level)."""
    import os

    import numpy as np
    if num_states < 1:
        raise ValueError(f"num_states must be >= 1 (dataset states to measure at), got {num_states}")


    agents, meta, step = load_grid(workdir)
    if not hasattr(agents, "denoiser"):
        raise ValueError(f"agent {meta['agent']!r} has no diffusion sampler to diagnose")
    data, _ = load_dataset(read_config(workdir))          # as the sweep saw it
    norm = Normalizer.from_meta(meta)
    # neighbours by the standardised low-dim observation (image rows also hold frame indices: not a distance);
    # the states themselves as the policy sees them (image rows: their frames' pixels, Transitions.rows)
    low = norm.obs(np.asarray(data.observations))[:, :norm.obs_mean.shape[-1]]
    acts = norm.to_agent_action(np.asarray(data.actions))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(low), min(num_states, len(low)), replace=False)
    pool = rng.choice(len(low), min(20_000, len(low)), replace=False)
    dist = np.linalg.norm(low[pick][:, None] - low[pool][None], axis=-1)
    near = pool[np.argsort(dist, axis=1)[:, :neighbours]]
    states = norm.obs(data.rows(jnp.asarray(pick)).observations)
    data_act, near_act = (jnp.asarray(x, jnp.float32) for x in (acts[pick], acts[near]))
    steps_T = meta["agent_config"]["diffusion"]["diffusion_steps"]
    levels = np.unique(np.linspace(0, steps_T - 1, num_levels or steps_T).astype(int))
    key = jax.random.PRNGKey(seed)

    def member(agent):
        den, params = agent.denoiser, agent.ema_params
        sample = lambda x_T: den.sample(params, key, states, x_init=x_T)
        x_T = jax.random.normal(jax.random.fold_in(key, 1), data_act.shape)
        lip = sampler_lipschitz(sample, x_T, jax.random.fold_in(key, 2)).mean()
        noises = jax.random.normal(jax.random.fold_in(key, 3), (num_noises,) + data_act.shape)
        samples = jax.lax.map(sample, noises)
        return dict(lambda_max=lambda_max_curve(den, params, key, states, data_act, levels), sampler_lipschitz=lip,
                    **action_statistics(samples, data_act, near_act))

    out = jax.device_get(jax.jit(jax.vmap(member))(agents))
    rows = []
    for i, m in enumerate(meta["members"]):
        base = dict(seed=m["seed"], data_fraction=m["data_fraction"], gamma=m["gamma"], step=step)
        rows += [dict(base, metric="lambda_max", t=int(t), value=float(out["lambda_max"][i][j])) for j, t in enumerate(levels)]
        rows += [dict(base, metric=k, t=-1, value=float(out[k][i])) for k in
                 ("sampler_lipschitz", "action_spread", "distance_to_data_action", "distance_to_nearest_action")]
    columns = ("seed", "data_fraction", "gamma", "step", "metric", "t", "value")
    results.write_csv(os.path.join(workdir, "diagnostics.csv"), rows, columns)
    _plot(rows, os.path.join(workdir, "plots"))
    return rows


def _plot(rows: list[dict], outdir: str) -> None:
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    os.makedirs(outdir, exist_ok=True)
    fractions = sorted({r["data_fraction"] for r in rows}, reverse=True)
    gammas = sorted({r["gamma"] for r in rows})
    fig, axes = plt.subplots(1, len(fractions), figsize=(4.2 * len(fractions), 3.2), squeeze=False)
    for ax, frac in zip(axes[0], fractions):
        for gamma in gammas:
            sel = [r for r in rows if r["metric"] == "lambda_max" and r["data_fraction"] == frac and r["gamma"] == gamma]
            ts = sorted({r["t"] for r in sel})
            ax.plot(ts, [np.mean([r["value"] for r in sel if r["t"] == t]) for t in ts], marker="o", label=f"γ={gamma:g}")
        ax.set_title(f"data fraction {frac:g}"), ax.set_xlabel("noise level t"), ax.set_ylabel("λmax(J_sym) of x0-net")
    axes[0][0].legend()
    fig.suptitle("λmax(J_sym) per noise level: mean over members (seeds) and states", fontsize=10)
    save_figure(fig, os.path.join(outdir, "diagnostics_lambda_max.png"))
    metrics = ("sampler_lipschitz", "action_spread", "distance_to_data_action", "distance_to_nearest_action")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics), 3.2), squeeze=False)
    width = 0.8 / len(gammas)
    for ax, metric in zip(axes[0], metrics):
        for k, gamma in enumerate(gammas):
            vals = [[r["value"] for r in rows if r["metric"] == metric and r["data_fraction"] == f and r["gamma"] == gamma]
                    for f in fractions]
            ax.bar(np.arange(len(fractions)) + k * width, [np.mean(v) for v in vals], width,
                   yerr=[np.std(v) for v in vals], capsize=3, label=f"γ={gamma:g}")
        ax.set_xticks(np.arange(len(fractions)) + 0.4 - width / 2, [f"{f:g}" for f in fractions])
        ax.set_xlabel("data fraction"), ax.set_title(metric)
    axes[0][0].legend()
    fig.suptitle("Bars: mean over seeds; error bars: std over seeds (not a confidence interval)", fontsize=10)
    save_figure(fig, os.path.join(outdir, "diagnostics_consistency.png"))
