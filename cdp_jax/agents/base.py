"""What every backbone shares: the swept loss weights, optimizers and the EMA rule."""
from __future__ import annotations

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cdp_jax.core.diffusion import Denoiser


class LossWeights(flax.struct.PyTreeNode):
    """The loss weights that vary across a sweep grid; pytree leaves, so a grid is one stacked ``LossWeights``.

    ``gamma``: the contraction weight (0 gives the plain backbone). ``eta``: the Q-loss weight (RL backbones).
    """

    gamma: jax.Array | float = 0.0
    eta: jax.Array | float = 1.0


def check_weights(weights: LossWeights) -> None:
    """Raises ValueError for concrete bad values (skipped under tracing, e.g. inside vmap)."""
    for name in ("gamma", "eta"):
        value = getattr(weights, name)
        if isinstance(value, jax.core.Tracer):
            continue
        if np.any(np.asarray(value) < 0) or not np.all(np.isfinite(np.asarray(value))):
            raise ValueError(f"{name} must be finite and >= 0, got {value}")


def refuse_gamma(weights: LossWeights, agent: str) -> None:
    """Agents without a diffusion model have nothing for γ to act on: refuse γ > 0 (when it is concrete)."""
    if not isinstance(weights.gamma, jax.core.Tracer) and float(jnp.max(jnp.asarray(weights.gamma))) > 0:
        raise ValueError(f"agent {agent!r} has no diffusion model, so gamma must be 0; use gammas=(0.0,)")


def check_batch(batch: dict, config: ml_collections.ConfigDict) -> None:
    """Raises ValueError when a batch's observation or action width differs from the agent's (at trace time)."""
    for field, dim in (("observations", config.obs_dim), ("actions", config.act_dim)):
        if field not in batch:
            raise ValueError(f"the batch has no {field!r} field; it has {sorted(batch)}")
        if batch[field].shape[-1] != dim:
            raise ValueError(f"batch {field} have width {batch[field].shape[-1]} but the agent was created for {dim}")


def make_optimizer(lr: float, total_steps: int, weight_decay: float = 0.0, cosine: bool = True,
                   grad_clip: float = 0.0) -> optax.GradientTransformation:
    """Adam (``weight_decay == 0``) or AdamW with an optional cosine decay over ``total_steps``, as the
    official code's ``CosineAnnealingLR``."""
    schedule = optax.cosine_decay_schedule(lr, max(int(total_steps), 1)) if cosine else lr
    opt = optax.adamw(schedule, weight_decay=weight_decay) if weight_decay else optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(grad_clip), opt) if grad_clip else opt


def polyak_update(target, params, step: jax.Array, every: int, rate: float):
    """``target <- rate * target + (1 - rate) * params`` on steps that are multiples of ``every``, else unchanged
    (optax's ``incremental_update`` under ``periodic_update``)."""
    return optax.periodic_update(optax.incremental_update(params, target, 1.0 - rate), target, step, every)


EMA_BEFORE_START = ("init", "copy")
# ``update(batch, key, contraction=True)``: whether the contraction term is computed is part of the compiled program
jit_update = functools.partial(jax.jit, static_argnames="contraction")


def ema_update(ema, params, step: jax.Array, cfg: ml_collections.ConfigDict):
    """The EMA of the actor: :func:`polyak_update` with ``cfg.ema_rate`` every ``cfg.ema_every`` steps from
    ``cfg.ema_start``. Before ``ema_start`` it stays at the initial weights (``ema_before_start="init"``, the
    official code: CleanDiffuser's EMA model is a copy made at construction, blended only from step 1000) or
    follows the parameters (``"copy"``)."""
    blended = polyak_update(ema, params, step, cfg.ema_every, cfg.ema_rate)
    before = params if cfg.ema_before_start == "copy" else ema
    return jax.tree.map(lambda p, b: jnp.where(step < cfg.ema_start, p, b), before, blended)


# The ranges of the agents' shared top-level fields (each agent has some of them): (test, what it must be).
_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "finite and > 0")
_NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0, "finite and >= 0")
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
_COUNT = (lambda v: v >= 1, ">= 1")
FIELD_RANGES = {
    **dict.fromkeys(("lr", "actor_lr", "critic_lr", "min_std"), _POSITIVE),
    **dict.fromkeys(("weight_decay", "grad_clip", "candidate_temperature", "weight_temperature", "ema_start"),
                    _NON_NEGATIVE),
    **dict.fromkeys(("discount", "target_rate", "ema_rate"), _UNIT),
    "expectile": (lambda v: 0 < v < 1, "in (0, 1)"),
    **dict.fromkeys(("ema_every", "target_every", "num_candidates", "num_backup_samples", "total_steps", "hidden",
                     "critic_hidden", "num_layers", "num_modes"), _COUNT),
}


def check_agent_config(config) -> None:
    """Raises ValueError naming the first field of an agent config that is out of its range
    (:data:`FIELD_RANGES`: a learning rate <= 0, a rate outside [0, 1], a count < 1, ...) or an unknown
    ``ema_before_start``."""
    for name, (ok, what) in FIELD_RANGES.items():
        if name in config and not ok(float(config[name])):
            raise ValueError(f"agent_config.{name} must be {what}, got {config[name]}")
    if config.get("ema_before_start", "init") not in EMA_BEFORE_START:
        raise ValueError(f"unknown ema_before_start {config.ema_before_start!r}; choose one of {EMA_BEFORE_START}")


def freeze_config(config: ml_collections.ConfigDict, obs_dim: int, act_dim: int) -> ml_collections.FrozenConfigDict:
    """An agent's static config (checked by :func:`check_agent_config`): a hashable copy with ``obs_dim`` and
    ``act_dim`` recorded."""
    check_agent_config(config)
    config = ml_collections.ConfigDict(config.to_dict())
    config.obs_dim, config.act_dim = int(obs_dim), int(act_dim)
    return ml_collections.FrozenConfigDict(config)


class DiffusionActor:
    """What every diffusion backbone shares; mixed into agents whose config has a ``diffusion`` section and that
    hold ``weights`` (:class:`LossWeights`), the EMA actor parameters ``actor_ema``, the actor parameters in the field named by
    ``ACTOR_FIELD``."""

    ACTOR_FIELD = "actor_params"

    @property
    def ema_params(self):
        """The EMA actor parameters that sampling and evaluation use."""
        return self.actor_ema

    @property
    def denoiser(self):
        return Denoiser.from_config(self.config.diffusion, self.config.act_dim)

    def candidates(self, obs, key, num: int, temperature: float | None = None):
        """``num`` EMA-policy actions per state: ``(obs repeated [B*num, o], candidates [B, num, d])``."""
        rep = jnp.repeat(obs, num, axis=0)
        cands = self.denoiser.sample(self.ema_params, key, rep, temperature=temperature)
        return rep, cands.reshape(obs.shape[0], num, -1)
