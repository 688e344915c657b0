"""Diffusion behaviour cloning (DBC), the imitation-learning backbone; with ``gamma > 0`` it is CDP-IL.

Loss: ``L = mean ||x_theta(a_t, t, s) - a||^2 + gamma * L_c`` (x0 prediction, as the official
``scripts/cdp_il_lowdim.py`` trains it).
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cdp_jax.core import diffusion
from cdp_jax.agents.base import (DiffusionActor, LossWeights, check_batch, check_weights, ema_update, freeze_config,
                                 jit_update, make_optimizer)


def default_config() -> ml_collections.ConfigDict:
    """CDP-IL low-dim defaults (the official recipe): Pearce MLP, 50 DPM-Solver++ steps, AdamW lr 1e-3 without a
    schedule, EMA 0.995 every step, L_c at all t."""
    cfg = ml_collections.ConfigDict(dict(
        agent="dbc", lr=1e-3, weight_decay=0.01, total_steps=100_000, cosine_lr=False, grad_clip=0.0,
        ema_rate=0.995, ema_every=1, ema_start=0, ema_before_start="init", diffusion=diffusion.default_config()))
    d = cfg.diffusion
    d.network, d.sampling_steps = "pearce", 50
    d.contraction.low_noise_fraction, d.contraction.num_iters = 1.0, 10
    return cfg


class DBCAgent(DiffusionActor, flax.struct.PyTreeNode):
    """Arrays: ``params``, ``opt_state``, ``actor_ema`` (network pytrees), ``step`` (int32 scalar), ``weights``."""

    ACTOR_FIELD = "params"
    params: dict
    opt_state: optax.OptState
    actor_ema: dict
    step: jax.Array
    weights: LossWeights
    config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

    @staticmethod
    def optimizer(config) -> optax.GradientTransformation:
        return make_optimizer(config.lr, config.total_steps, config.weight_decay, config.cosine_lr, config.grad_clip)

    @classmethod
    def create(cls, config: ml_collections.ConfigDict, weights: LossWeights, key: jax.Array, obs_dim: int, act_dim: int):
        check_weights(weights)
        config = freeze_config(config, obs_dim, act_dim)
        denoiser = diffusion.Denoiser.from_config(config.diffusion, act_dim)
        params = denoiser.init(key, obs_dim)
        opt_state = cls.optimizer(config).init(params)
        return cls(params, opt_state, params, jnp.zeros((), jnp.int32), weights, config)

    def loss(self, params, batch, key, contraction: bool = True):
        """``(loss, metrics)`` for ``batch = {"observations": [B, obs], "actions": [B, act]}``."""
        w = self.weights
        denoising, contraction = self.denoiser.loss_terms(params, batch["observations"], batch["actions"], key,
                                                          contraction)
        loss = denoising + w.gamma * contraction
        return loss, dict(loss=loss, denoising_loss=denoising, contraction_loss=contraction)

    @jit_update
    def update(self, batch, key, contraction: bool = True):
        """One gradient step; returns ``(new_agent, metrics)``. ``contraction`` (static): compute L_c."""
        check_batch(batch, self.config)
        grads, metrics = jax.grad(self.loss, has_aux=True)(self.params, batch, key, contraction)
        updates, opt_state = self.optimizer(self.config).update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        step = self.step + 1
        ema = ema_update(self.actor_ema, params, step, self.config)
        return self.replace(params=params, opt_state=opt_state, actor_ema=ema, step=step), metrics

    @jax.jit
    def act(self, obs, key):
        """Actions ``[B, act_dim]`` from the EMA network for ``obs [B, obs_dim]``."""
        check_batch({"observations": obs, "actions": jnp.zeros((1, self.config.act_dim))}, self.config)
        return self.denoiser.sample(self.ema_params, key, obs)
