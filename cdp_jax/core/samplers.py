"""Samplers for discrete VP diffusion, each one ``jax.lax.scan``.

All samplers integrate from the noisiest level to the clean end using an x0 predictor
``x0_fn(x_t [..., d], t_idx: int32 scalar) -> [..., d]`` (a closure over parameters and the
observation, so callers can ``vmap`` over states and stacked parameters). With ``K`` steps the
visited positions on the augmented grid (position 0 = clean, position k = level k-1) are
``round(linspace(T, 0, K + 1))``, the analogue of the official ``linspace(0, T-1, K+1)`` schedule
that also lands exactly on clean data.

* ``"ddpm"``: ancestral sampling from the Gaussian posterior q(x_s | x_t, x0) (SDE).
* ``"ddim"``: deterministic DDIM (= first-order DPM-Solver++) (ODE).
* ``"dpm_solver_2m"``: DPM-Solver++(2M) in data prediction (ODE), first order on the first and last step.

Every step is the linear update ``x_s = c_x * x_t + c_d * D + std * z`` with ``D = w0 * x0_i + w1 * x0_{i-1}``;
the coefficients are precomputed in float64 from the (concrete) schedule.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cdp_jax.core.schedules import VPSchedule

SAMPLERS = ("ddpm", "ddim", "dpm_solver_2m")

X0Fn = Callable[[jax.Array, jax.Array], jax.Array]


def step_positions(num_levels: int, num_steps: int) -> np.ndarray:
    """Augmented-grid positions visited by a ``num_steps`` sampler, from ``T`` down to 0 (clean)."""
    if not 1 <= int(num_steps) <= num_levels:
        raise ValueError(f"sampling steps must be in [1, T={num_levels}], got {num_steps}")
    return np.round(np.linspace(num_levels, 0, int(num_steps) + 1)).astype(np.int32)


def _coefficients(schedule: VPSchedule, method: str, num_steps: int) -> dict[str, np.ndarray]:
    alpha = np.concatenate([[1.0], np.asarray(schedule.alpha, np.float64)])
    sigma = np.concatenate([[0.0], np.asarray(schedule.sigma, np.float64)])
    pos = step_positions(len(alpha) - 1, num_steps)
    p, q = pos[:-1], pos[1:]
    a_p, s_p, a_q, s_q = alpha[p], sigma[p], alpha[q], sigma[q]
    zeros = np.zeros(len(p))
    w0, w1, std = np.ones(len(p)), zeros.copy(), zeros.copy()
    if method == "ddpm":
        a_pq = a_p / a_q
        var_pq = s_p**2 - a_pq**2 * s_q**2
        c_x, c_d = a_pq * s_q**2 / s_p**2, a_q * var_pq / s_p**2
        std = np.sqrt(np.maximum(var_pq * s_q**2 / s_p**2, 0.0))
    else:
        c_x = s_q / s_p
        c_d = a_q - s_q * a_p / s_p                       # = -alpha_q (e^{-h} - 1), and = 1 at the clean end
        if method == "dpm_solver_2m":
            with np.errstate(divide="ignore"):
                lam = np.log(alpha) - np.log(sigma)            # +inf at the clean end
            h = lam[q] - lam[p]
            for i in range(1, len(p)):
                if q[i] != 0:                               # second order except on the first and last step
                    r = (lam[p[i]] - lam[p[i - 1]]) / h[i]
                    w0[i], w1[i] = 1.0 + 0.5 / r, -0.5 / r
    f32 = lambda a: np.asarray(a, np.float32)
    return dict(t_idx=(p - 1).astype(np.int32), c_x=f32(c_x), c_d=f32(c_d), w0=f32(w0), w1=f32(w1), std=f32(std))


def sample(x0_fn: X0Fn, schedule: VPSchedule, key: jax.Array, shape: tuple[int, ...], *,
           method: str = "dpm_solver_2m", num_steps: int = 15, temperature: float = 1.0,
           clip: float | tuple[jax.Array, jax.Array] | None = None, x_init: jax.Array | None = None) -> jax.Array:
    """Draws samples of ``shape`` (``[..., d]``) by integrating the reverse process in one ``lax.scan``.

    Args:
      x0_fn: the clean-data predictor ``(x_t, t_idx) -> x0``.
      schedule: a concrete :class:`VPSchedule` (built outside any trace, e.g. from the config).
      key: PRNG key for the initial noise (and DDPM's per-step noise).
      shape: output shape ``[..., d]``.
      method: one of ``SAMPLERS``.
      num_steps: K, 1 <= K <= T.
      temperature: scale of the initial noise ``x_T = temperature * N(0, I)``.
      clip: ``c`` clips each x0 prediction (and the output) to ``[-c, c]``; a ``(low, high)`` pair clips to bounds.
      x_init: optional initial noise of ``shape`` (overrides ``key`` for it), used to differentiate through the sampler.
    Returns:
      samples of ``shape``.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; choose one of {SAMPLERS}")
    coef = _coefficients(schedule, method, num_steps)
    if clip is None:
        clip_fn = lambda x: x
    elif isinstance(clip, tuple):
        clip_fn = lambda x: jnp.clip(x, clip[0], clip[1])
    else:
        clip_fn = lambda x: jnp.clip(x, -clip, clip)
    k_init, k_steps = jax.random.split(key)
    x = temperature * jax.random.normal(k_init, shape) if x_init is None else x_init
    step_keys = jax.random.split(k_steps, num_steps)

    def body(carry, inputs):
        x, prev_x0 = carry
        c, k = inputs
        x0 = clip_fn(x0_fn(x, c["t_idx"]))
        drive = c["w0"] * x0 + c["w1"] * prev_x0
        x = c["c_x"] * x + c["c_d"] * drive
        if method == "ddpm":
            x = x + c["std"] * jax.random.normal(k, shape)
        return (x, x0), None

    (x, _), _ = jax.lax.scan(body, (x, jnp.zeros(shape, x.dtype)), ({k: jnp.asarray(v) for k, v in coef.items()}, step_keys))
    return clip_fn(x)
