"""Discrete variance-preserving (VP) noise schedules.

A schedule holds ``T`` noise levels at continuous times ``t_k = linspace(t_min, 1, T)[k]``
(``k = 0`` is the least noisy level). Forward noising is ``x_k = alpha_k * x_0 + sigma_k * eps``
with ``alpha_k**2 + sigma_k**2 = 1``. The cosine schedule follows CleanDiffuser (s = 0.008,
time clipped at 0.9946), as the official CDP code uses it; the linear one is the VP-SDE of
Song et al. with beta in [0.1, 20].

Samplers also need a fully clean end point, so every schedule exposes *augmented* arrays of
length ``T + 1`` whose position 0 is ``alpha = 1, sigma = 0`` and whose position ``k + 1`` is
level ``k``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("cosine", "linear")


@dataclasses.dataclass(frozen=True, eq=False)
class VPSchedule:
    """Concrete float32 numpy arrays of shape ``[T]``: ``t`` (continuous time), ``alpha``, ``sigma``.

    They stay numpy so that schedules built inside a trace remain constants; index them with
    :meth:`alpha_at` / :meth:`sigma_at` for traced level indices.
    """

    t: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray

    def alpha_at(self, t: jax.Array) -> jax.Array:
        """``alpha`` at integer levels ``t`` (any shape)."""
        return jnp.asarray(self.alpha)[t]

    def sigma_at(self, t: jax.Array) -> jax.Array:
        """``sigma`` at integer levels ``t`` (any shape)."""
        return jnp.asarray(self.sigma)[t]

    @property
    def num_steps(self) -> int:
        return self.alpha.shape[0]


def _cosine_alpha(t: np.ndarray, s: float = 0.008, t_max: float = 0.9946) -> np.ndarray:
    f = lambda u: np.cos(0.5 * np.pi * (u + s) / (1.0 + s))
    return f(np.minimum(t, t_max)) / f(0.0)


def _linear_alpha(t: np.ndarray, beta_min: float = 0.1, beta_max: float = 20.0) -> np.ndarray:
    return np.exp(-0.5 * beta_min * t - 0.25 * (beta_max - beta_min) * t**2)


def make_schedule(name: str = "cosine", num_steps: int = 50, t_min: float = 1e-3) -> VPSchedule:
    """Builds a discrete VP schedule.

    Args:
      name: ``"cosine"`` or ``"linear"``.
      num_steps: T, the number of discrete noise levels.
      t_min: the continuous time of the least noisy level.
    Returns:
      A :class:`VPSchedule` with float32 arrays of shape ``[T]``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of {SCHEDULES}")
    if int(num_steps) < 2:
        raise ValueError(f"a schedule needs at least 2 diffusion steps, got num_steps={num_steps}")
    t = np.linspace(t_min, 1.0, int(num_steps), dtype=np.float64)
    alpha = _cosine_alpha(t) if name == "cosine" else _linear_alpha(t)
    sigma = np.sqrt(1.0 - alpha**2)
    f32 = lambda a: np.asarray(a, np.float32)
    return VPSchedule(t=f32(t), alpha=f32(alpha), sigma=f32(sigma))
