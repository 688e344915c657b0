"""Efficient Diffusion Policy (EDP), the offline-RL backbone of CDP; with ``gamma > 0`` it is CDP-RL.

Actor (as the official ``scripts/cdp_rl.py`` builds it on CleanDiffuser): x0-prediction DQL MLP, T = 50, loss
``bc + eta * q_loss + gamma * L_c`` with the one-step action approximation
``a0_hat = x_theta(alpha_t a + sigma_t eps, t, s)`` and ``q_loss = -Q1(s, a0_hat).mean() / |Q2(s, a0_hat)|.mean()``
(the denominator held fixed; Q1 and Q2 swap roles with probability 0.5), and ``L_c`` on levels t < 0.1 T.
Critic: twin LayerNorm Q networks, target ``r + discount (1 - done) min(Q1', Q2')(s', a')`` with ``a'`` one sample
of the EMA actor (DPM-Solver++, 15 steps), or the max over ``num_backup_samples`` samples of each Q' first
(``max_q_backup``, antmaze). Target critic: Polyak 0.995 every 5 steps. EMA actor: 0.995 every 5 steps from 1000.
Evaluation: 100 candidates from the EMA actor at temperature 0.5; one is drawn from softmax(Q_min * weight_temperature)
with the target critic.
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
from cdp_jax.nn.networks import TwinQ


def default_config() -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(dict(
        agent="edp", actor_lr=3e-4, critic_lr=3e-4, weight_decay=0.01, total_steps=200_000, cosine_lr=True,
        grad_clip=0.0, discount=0.99, target_rate=0.995, target_every=5, ema_rate=0.995, ema_every=5, ema_start=1000,
        ema_before_start="init", q_action_clip=False, critic_hidden=256, max_q_backup=False, num_backup_samples=10,
        num_candidates=100, candidate_temperature=0.5,
        weight_temperature=300.0, diffusion=diffusion.default_config()))
    return cfg


def critic_target(rewards, terminals, q1_next, q2_next, discount: float):
    """``r + discount (1 - done) min(max_k Q1'(s', a'_k), max_k Q2'(s', a'_k))``.

    ``q1_next, q2_next [B, K]`` over ``K`` next-action samples (K = 1: the plain single-sample target)."""
    return rewards + discount * (1.0 - terminals) * jnp.minimum(q1_next.max(-1), q2_next.max(-1))


def normalized_q_loss(q1, q2, swap):
    """EDP's actor Q term ``-mean(Qa) / stop_grad(mean(|Qb|))`` with (a, b) = (1, 2), or (2, 1) when ``swap``."""
    qa, qb = jnp.where(swap, q2, q1), jnp.where(swap, q1, q2)
    return -qa.mean() / jax.lax.stop_gradient(jnp.abs(qb).mean())


def select_candidates(key, candidates, q, temperature):
    """Draws one of ``candidates [B, N, act_dim]`` per row with probabilities softmax(``q [B, N]`` * temperature)."""
    choice = jax.random.categorical(key, q * temperature, axis=-1)
    return jnp.take_along_axis(candidates, choice[:, None, None], axis=1)[:, 0]


class EDPAgent(DiffusionActor, flax.struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    actor_ema: dict
    critic_params: dict
    critic_opt: optax.OptState
    critic_target: dict
    step: jax.Array
    weights: LossWeights
    config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

    @staticmethod
    def optimizers(cfg):
        actor = make_optimizer(cfg.actor_lr, cfg.total_steps, cfg.weight_decay, cfg.cosine_lr, cfg.grad_clip)
        critic = make_optimizer(cfg.critic_lr, cfg.total_steps, 0.0, cfg.cosine_lr, cfg.grad_clip)
        return actor, critic

    @classmethod
    def create(cls, config, weights: LossWeights, key, obs_dim: int, act_dim: int):
        check_weights(weights)
        config = freeze_config(config, obs_dim, act_dim)
        k_actor, k_critic = jax.random.split(key)
        actor = diffusion.Denoiser.from_config(config.diffusion, act_dim).init(k_actor, obs_dim)
        critic = TwinQ(config.critic_hidden).init(k_critic, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))
        actor_tx, critic_tx = cls.optimizers(config)
        return cls(actor, actor_tx.init(actor), actor, critic, critic_tx.init(critic), critic,
                   jnp.zeros((), jnp.int32), weights, config)

    def q(self, params, obs, act):
        return TwinQ(self.config.critic_hidden).apply(params, obs, act)

    def critic_loss(self, params, batch, key):
        cfg = self.config
        k = cfg.num_backup_samples if cfg.max_q_backup else 1
        next_obs = jnp.repeat(batch["next_observations"], k, axis=0)
        next_act = self.denoiser.sample(self.actor_ema, key, next_obs)
        q1n, q2n = self.q(self.critic_target, next_obs, next_act)
        b = batch["rewards"].shape[0]
        target = jax.lax.stop_gradient(critic_target(batch["rewards"], batch["terminals"], q1n.reshape(b, k),
                                                     q2n.reshape(b, k), cfg.discount))
        q1, q2 = self.q(params, batch["observations"], batch["actions"])
        loss = jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)
        return loss, dict(critic_loss=loss, q_mean=q1.mean(), target_mean=target.mean())

    def policy_action(self, params, obs, act, key):
        """The action the Q term differentiates through: EDP's one-step approximation
        ``x_theta(alpha_t a + sigma_t eps, t, s)`` at a random level, unclipped as in the official code
        (``q_action_clip=True`` clips it to the action box, which zeroes the Q gradient outside it)."""
        x_a, t_a, _ = self.denoiser.noise(key, act)
        x0 = self.denoiser.predict_x0(params, x_a, t_a, obs)
        return jnp.clip(x0, -1.0, 1.0) if self.config.q_action_clip else x0

    def actor_loss(self, params, critic_params, batch, key, contraction: bool = True):
        k_bc, k_approx, k_swap = jax.random.split(key, 3)
        obs, act, w = batch["observations"], batch["actions"], self.weights
        denoising, contraction = self.denoiser.loss_terms(params, obs, act, k_bc, contraction)
        q1, q2 = self.q(critic_params, obs, self.policy_action(params, obs, act, k_approx))
        q_loss = normalized_q_loss(q1, q2, jax.random.bernoulli(k_swap))
        loss = denoising + w.gamma * contraction + w.eta * q_loss
        return loss, dict(actor_loss=loss, denoising_loss=denoising, contraction_loss=contraction, q_loss=q_loss)

    @jit_update
    def update(self, batch, key, contraction: bool = True):
        """One critic and one actor step; returns ``(new_agent, metrics)`` with ``metrics["loss"]`` their sum.
        ``contraction`` (static): compute L_c."""
        check_batch(batch, self.config)
        cfg = self.config
        k_critic, k_actor = jax.random.split(key)
        actor_tx, critic_tx = self.optimizers(cfg)
        c_grads, c_metrics = jax.grad(self.critic_loss, has_aux=True)(self.critic_params, batch, k_critic)
        c_updates, critic_opt = critic_tx.update(c_grads, self.critic_opt, self.critic_params)
        critic = optax.apply_updates(self.critic_params, c_updates)
        a_grads, a_metrics = jax.grad(self.actor_loss, has_aux=True)(self.actor_params, critic, batch, k_actor,
                                                                     contraction)
        a_updates, actor_opt = actor_tx.update(a_grads, self.actor_opt, self.actor_params)
        actor = optax.apply_updates(self.actor_params, a_updates)
        step = self.step + 1
        ema = ema_update(self.actor_ema, actor, step, cfg)
        target = polyak_update(self.critic_target, critic, step, cfg.target_every, cfg.target_rate)
        metrics = dict(**c_metrics, **a_metrics, loss=c_metrics["critic_loss"] + a_metrics["actor_loss"])
        return self.replace(actor_params=actor, actor_opt=actor_opt, actor_ema=ema, critic_params=critic,
                            critic_opt=critic_opt, critic_target=target, step=step), metrics

    @jax.jit
    def act(self, obs, key):
        """Evaluation actions ``[B, act_dim]``: candidates from the EMA actor, one drawn by softmax(Q * temperature)."""
        cfg = self.config
        check_batch({"observations": obs, "actions": jnp.zeros((1, cfg.act_dim))}, cfg)
        k_sample, k_pick = jax.random.split(key)
        rep, cands = self.candidates(obs, k_sample, cfg.num_candidates, cfg.candidate_temperature)
        q = jnp.minimum(*self.q(self.critic_target, rep, cands.reshape(rep.shape[0], -1)))
        return select_candidates(k_pick, cands, q.reshape(cands.shape[:2]), cfg.weight_temperature)
