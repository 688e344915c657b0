"""What every backbone shares: the swept hyperparameters, optimizers and the EMA rule."""
from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax


class HParams(flax.struct.PyTreeNode):
    """Hyperparameters that vary across a sweep grid; pytree leaves, so a grid is one stacked ``HParams``.

    ``gamma``: the contraction weight (0 gives the plain backbone). ``eta``: the Q-loss weight (RL backbones).
    """

    gamma: jax.Array | float = 0.0
    eta: jax.Array | float = 1.0


def check_hparams(hp: HParams) -> None:
    """Raises ValueError for concrete bad values (skipped under tracing, e.g. inside vmap)."""
    for name in ("gamma", "eta"):
        value = getattr(hp, name)
        if isinstance(value, jax.core.Tracer):
            continue
        if np.any(np.asarray(value) < 0) or not np.all(np.isfinite(np.asarray(value))):
            raise ValueError(f"{name} must be finite and >= 0, got {value}")


def refuse_gamma(hp: HParams, agent: str) -> None:
    """Agents without a diffusion model have nothing for γ to act on: refuse γ > 0 (when it is concrete)."""
    if not isinstance(hp.gamma, jax.core.Tracer) and float(jnp.max(jnp.asarray(hp.gamma))) > 0:
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


def initial_held_contraction(config: ml_collections.ConfigDict, actor_params):
    """The ``held_contraction`` a new agent starts with: zeros shaped like ``actor_params`` when its config holds
    the lazy contraction gradient (``diffusion.contraction.every > 1`` with ``lazy = "hold"``), else None."""
    c = config.diffusion.contraction
    return jax.tree.map(jnp.zeros_like, actor_params) if c.every > 1 and c.lazy == "hold" else None


class DiffusionActor:
    """What every diffusion backbone shares; mixed into agents whose config has a ``diffusion`` section and that
    hold ``hp``, the EMA actor parameters ``actor_ema``, the actor parameters in the field named by
    ``ACTOR_FIELD`` and ``held_contraction`` (None, or γ∇L_c for the lazy "hold" mode: :func:`cdp_jax.grid.
    lazy_update`)."""

    ACTOR_FIELD = "actor_params"

    @property
    def ema_params(self):
        """The EMA actor parameters that sampling and evaluation use."""
        return self.actor_ema

    @property
    def denoiser(self):
        from cdp_jax.diffusion import Denoiser
        return Denoiser.from_config(self.config.diffusion, self.config.act_dim)

    def regularized_bc_loss(self, params, obs, act, key):
        """``(bc + γ·L_c, {bc_loss, contraction_loss})``: the denoising loss at random levels plus the contraction
        term, the only place where γ multiplies anything. ``L_c`` is computed when the static flag
        ``config.diffusion.contraction.enabled`` is on (the default); the sweep compiles its γ = 0 members in
        groups with the flag off (:class:`cdp_jax.grid.GridLayout`), so they pay nothing for it and report 0."""
        den = self.denoiser
        k_noise, k_c = jax.random.split(key)
        x_t, t, eps = den.noise(k_noise, act)
        cond = den.encode(params, obs, jax.random.fold_in(key, 2))    # image encoders crop at random, once
        dropout_key = jax.random.fold_in(key, 1)
        if not self.config.diffusion.contraction.enabled:
            bc = den.denoising_loss(params, x_t, t, eps, act, cond, dropout_key)
            return bc + self.held_term(params), dict(bc_loss=bc, contraction_loss=jnp.zeros(()))
        bc, lc = den.denoising_and_contraction_loss(params, k_c, x_t, t, eps, act, cond, dropout_key)
        return bc + self.hp.gamma * lc, dict(bc_loss=bc, contraction_loss=lc)

    def held_term(self, params):
        """A scalar that is 0 and whose gradient with respect to ``params`` is ``held_contraction`` (the "hold"
        mode's γ∇L_c from an earlier update), so the optimizer sees it every update; 0 without one."""
        if self.held_contraction is None:
            return 0.0
        return sum(jnp.vdot(jax.lax.stop_gradient(h), p - jax.lax.stop_gradient(p))
                   for h, p in zip(jax.tree.leaves(self.held_contraction), jax.tree.leaves(params)))

    def contraction_gradient(self, obs, act, key):
        """``(L_c, γ·∇L_c)`` at the actor parameters, for ``obs [B, obs_dim]`` and ``act [B, act_dim]`` (the
        contraction term on its own noise draw; needs ``contraction.enabled``)."""
        def weighted(params):
            lc = self.regularized_bc_loss(params, obs, act, key)[1]["contraction_loss"]
            return self.hp.gamma * lc, lc

        (_, lc), grad = jax.value_and_grad(weighted, has_aux=True)(getattr(self, self.ACTOR_FIELD))
        return lc, grad

    def candidates(self, obs, key, num: int, temperature: float | None = None):
        """``num`` EMA-policy actions per state: ``(obs repeated [B*num, o], candidates [B, num, d])``."""
        rep = jnp.repeat(obs, num, axis=0)
        cands = self.denoiser.sample(self.ema_params, key, rep, temperature=temperature)
        return rep, cands.reshape(obs.shape[0], num, -1)
