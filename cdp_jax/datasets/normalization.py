"""The one place where observations are standardised and actions rescaled between the environment's Box and
the agents' ``[-1, 1]^act_dim``. Pure arithmetic, so the same object serves numpy (evaluation, data generation)
and traced jax arrays (``TrainedPolicy`` under ``jit``/``jax.export``)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


OBS_NORMALIZATIONS = ("gaussian", "minmax", "none")


def _finite_box(low, high, act_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The Box bounds, or ``[-1, 1]`` when either bound is not finite (an unbounded action space)."""
    low = np.asarray(low, np.float32).reshape(-1) if low is not None else None
    high = np.asarray(high, np.float32).reshape(-1) if high is not None else None
    if low is None or high is None or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32)
    return low, high


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """``obs_mean, obs_std [obs_dim]`` and ``action_low, action_high [act_dim]`` (finite)."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray

    @classmethod
    def from_info(cls, info, obs_normalization: str = "gaussian") -> "Normalizer":
        """From a loaded dataset's statistics and action space. Observations: ``"gaussian"`` standardises them
        (the official RL code), ``"minmax"`` maps each dimension's dataset range to ``[-1, 1]`` (CleanDiffuser's
        ``MinMaxNormalizer``, the official IL code; a constant dimension maps to -1 as there), ``"none"`` leaves
        them."""
        low, high = _finite_box(info.action_low, info.action_high, info.act_dim)
        if obs_normalization == "none":
            return cls(np.zeros(info.obs_dim, np.float32), np.ones(info.obs_dim, np.float32), low, high)
        if obs_normalization == "minmax":
            span = np.asarray(info.obs_max, np.float32) - np.asarray(info.obs_min, np.float32)
            half = np.where(span == 0, 1.0, span).astype(np.float32) / 2
            return cls(np.asarray(info.obs_min, np.float32) + half, half, low, high)
        if obs_normalization != "gaussian":
            raise ValueError(f"unknown obs_normalization {obs_normalization!r}; choose one of {OBS_NORMALIZATIONS}")
        return cls(np.asarray(info.obs_mean, np.float32), np.asarray(info.obs_std, np.float32), low, high)

    @classmethod
    def from_action_space(cls, space) -> "Normalizer":
        """Actions only (identity on observations): a gymnasium Box."""
        dim = int(np.prod(space.shape))
        low, high = _finite_box(space.low, space.high, dim)
        return cls(np.zeros(0, np.float32), np.ones(0, np.float32), low, high)

    @classmethod
    def from_meta(cls, meta: dict) -> "Normalizer":
        """From a sweep's ``policy_meta.json`` (see :meth:`as_meta`)."""
        low, high = _finite_box(meta["action_low"], meta["action_high"], int(meta["act_dim"]))
        return cls(np.asarray(meta["obs_mean"], np.float32), np.asarray(meta["obs_std"], np.float32), low, high)

    def as_meta(self) -> dict:
        return dict(obs_mean=self.obs_mean.tolist(), obs_std=self.obs_std.tolist(),
                    action_low=self.action_low.tolist(), action_high=self.action_high.tolist())

    def obs(self, obs):
        """Raw observations ``[..., obs_dim]`` -> standardised. Statistics shorter than the observation cover its
        first numbers (an image observation's low-dim history); the rest (pixels, frame indices) pass unchanged."""
        k = self.obs_mean.shape[-1]
        if obs.shape[-1] == k:
            return (obs - self.obs_mean) / self.obs_std
        xp = jnp if isinstance(obs, jax.Array) else np
        return xp.concatenate([(obs[..., :k] - self.obs_mean) / self.obs_std, obs[..., k:]], axis=-1)

    def to_agent_action(self, action):
        """Environment actions ``[..., act_dim]`` -> ``[-1, 1]``."""
        return 2.0 * (action - self.action_low) / (self.action_high - self.action_low) - 1.0

    def to_env_action(self, action):
        """Agent actions in ``[-1, 1]`` -> the environment's Box."""
        return self.action_low + 0.5 * (action + 1.0) * (self.action_high - self.action_low)
