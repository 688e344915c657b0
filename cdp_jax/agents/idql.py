"""IDQL (Hansen-Estruch et al. 2023), a Table 1 baseline: an IQL critic (twin Q, expectile value with tau = 0.7)
decoupled from a diffusion behaviour policy (IDQLMlp with dropout 0.1, eps-prediction, T = 5, DDPM; AdamW weight
decay 0.01, EMA every 5 steps, as the official baseline config), and evaluation by resampling N
candidates with the implicit-policy weights ``|tau - 1{Q(s, a) < V(s)}|``. gamma > 0 adds the contraction term to
the behaviour policy (CDP-IDQL).
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cdp_jax.core import diffusion
from cdp_jax.agents.base import (DiffusionActor, LossWeights, check_batch, check_weights, ema_update, freeze_config,
                                 jit_update, make_optimizer, polyak_update)
from cdp_jax.nn.networks import TwinQ, ValueNetwork


def default_config() -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(dict(
        agent="idql", actor_lr=3e-4, critic_lr=3e-4, weight_decay=0.01, total_steps=200_000, cosine_lr=True,
        grad_clip=0.0, discount=0.99, expectile=0.7, target_rate=0.995, target_every=1, ema_rate=0.9999, ema_every=5,
        ema_start=0, ema_before_start="init", critic_hidden=256, num_candidates=100, diffusion=diffusion.default_config()))
    d = cfg.diffusion
    d.network = "idql"                               # IDQLMlp: hidden 256, 3 residual blocks, dropout 0.1
    d.prediction, d.diffusion_steps, d.sampler, d.sampling_steps = "eps", 5, "ddpm", 5
    d.contraction.low_noise_fraction = 1.0
    return cfg


def expectile_loss(diff, tau):
    """``|tau - 1{diff < 0}| diff^2``, averaged: the IQL value loss with ``diff = Q - V``."""
    return jnp.mean(jnp.abs(tau - (diff < 0).astype(diff.dtype)) * diff**2)


def implicit_weights(q, v, tau):
    """IDQL's resampling weights ``|tau - 1{Q < V}|`` for ``q [B, N]`` against ``v [B]``."""
    return jnp.abs(tau - (q < v[:, None]).astype(q.dtype))


class IDQLAgent(DiffusionActor, flax.struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    actor_ema: dict
    critic_params: dict
    critic_opt: optax.OptState
    critic_target: dict
    value_params: dict
    value_opt: optax.OptState
    step: jax.Array
    weights: LossWeights
    config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

    @staticmethod
    def optimizers(cfg):
        return (make_optimizer(cfg.actor_lr, cfg.total_steps, cfg.weight_decay, cfg.cosine_lr, cfg.grad_clip),
                make_optimizer(cfg.critic_lr, cfg.total_steps, 0.0, cfg.cosine_lr, cfg.grad_clip))

    @classmethod
    def create(cls, config, weights: LossWeights, key, obs_dim: int, act_dim: int):
        check_weights(weights)
        config = freeze_config(config, obs_dim, act_dim)
        k_a, k_q, k_v = jax.random.split(key, 3)
        actor = diffusion.Denoiser.from_config(config.diffusion, act_dim).init(k_a, obs_dim)
        critic = TwinQ(config.critic_hidden).init(k_q, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))
        value = ValueNetwork(config.critic_hidden).init(k_v, jnp.zeros((1, obs_dim)))
        actor_tx, critic_tx = cls.optimizers(config)
        return cls(actor, actor_tx.init(actor), actor, critic, critic_tx.init(critic), critic, value,
                   critic_tx.init(value), jnp.zeros((), jnp.int32), weights, config)

    def q(self, params, obs, act):
        return TwinQ(self.config.critic_hidden).apply(params, obs, act)

    def v(self, params, obs):
        return ValueNetwork(self.config.critic_hidden).apply(params, obs)

    def value_loss(self, params, batch):
        q = jnp.minimum(*self.q(self.critic_target, batch["observations"], batch["actions"]))
        loss = expectile_loss(jax.lax.stop_gradient(q) - self.v(params, batch["observations"]), self.config.expectile)
        return loss, dict(value_loss=loss)

    def critic_loss(self, params, value_params, batch):
        target = batch["rewards"] + self.config.discount * (1.0 - batch["terminals"]) * self.v(
            value_params, batch["next_observations"])
        q1, q2 = self.q(params, batch["observations"], batch["actions"])
        loss = jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)
        return loss, dict(critic_loss=loss, q_mean=q1.mean())

    def actor_loss(self, params, batch, key, contraction: bool = True):
        w = self.weights
        denoising, contraction = self.denoiser.loss_terms(params, batch["observations"], batch["actions"], key,
                                                          contraction)
        loss = denoising + w.gamma * contraction
        return loss, dict(actor_loss=loss, denoising_loss=denoising, contraction_loss=contraction)

    @jit_update
    def update(self, batch, key, contraction: bool = True):
        """Value, critic and behaviour-policy steps; returns ``(new_agent, metrics)``. ``contraction`` (static):
        compute L_c."""
        check_batch(batch, self.config)
        cfg = self.config
        actor_tx, critic_tx = self.optimizers(cfg)
        v_grads, v_metrics = jax.grad(self.value_loss, has_aux=True)(self.value_params, batch)
        v_updates, value_opt = critic_tx.update(v_grads, self.value_opt, self.value_params)
        value = optax.apply_updates(self.value_params, v_updates)
        c_grads, c_metrics = jax.grad(self.critic_loss, has_aux=True)(self.critic_params, value, batch)
        c_updates, critic_opt = critic_tx.update(c_grads, self.critic_opt, self.critic_params)
        critic = optax.apply_updates(self.critic_params, c_updates)
        a_grads, a_metrics = jax.grad(self.actor_loss, has_aux=True)(self.actor_params, batch, key, contraction)
        a_updates, actor_opt = actor_tx.update(a_grads, self.actor_opt, self.actor_params)
        actor = optax.apply_updates(self.actor_params, a_updates)
        step = self.step + 1
        metrics = dict(**v_metrics, **c_metrics, **a_metrics,
                       loss=v_metrics["value_loss"] + c_metrics["critic_loss"] + a_metrics["actor_loss"])
        return self.replace(actor_params=actor, actor_opt=actor_opt, actor_ema=ema_update(self.actor_ema, actor, step, cfg),
                            critic_params=critic, critic_opt=critic_opt,
                            critic_target=polyak_update(self.critic_target, critic, step, cfg.target_every, cfg.target_rate),
                            value_params=value,
                            value_opt=value_opt, step=step), metrics

    @jax.jit
    def act(self, obs, key):
        """Resamples one of ``num_candidates`` behaviour-policy actions by the implicit-policy weights."""
        cfg = self.config
        check_batch({"observations": obs, "actions": jnp.zeros((1, cfg.act_dim))}, cfg)
        k_sample, k_pick = jax.random.split(key)
        rep, cands = self.candidates(obs, k_sample, cfg.num_candidates)
        q = jnp.minimum(*self.q(self.critic_target, rep, cands.reshape(rep.shape[0], -1))).reshape(cands.shape[:2])
        weights = implicit_weights(q, self.v(self.value_params, obs), cfg.expectile)
        choice = jax.random.categorical(k_pick, jnp.log(weights), axis=-1)
        return jnp.take_along_axis(cands, choice[:, None, None], axis=1)[:, 0]
