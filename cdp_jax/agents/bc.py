"""Gaussian behaviour cloning, the BC baseline of Table 1: a tanh-squashed diagonal Gaussian (distrax) fitted by
maximum likelihood; evaluation takes its mode ``tanh(mean)``. It has no diffusion, so gamma must be 0."""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cdp_jax.agents.base import (LossWeights, check_batch, check_weights, freeze_config, jit_update, make_optimizer,
                                 refuse_gamma)
from cdp_jax.nn.networks import GaussianActor, tanh_gaussian


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(agent="bc", lr=3e-4, hidden=256, total_steps=100_000, cosine_lr=True))


class BCAgent(flax.struct.PyTreeNode):
    params: dict
    opt_state: optax.OptState
    step: jax.Array
    weights: LossWeights
    config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, config, weights: LossWeights, key, obs_dim: int, act_dim: int):
        check_weights(weights)
        refuse_gamma(weights, "bc")
        config = freeze_config(config, obs_dim, act_dim)
        params = GaussianActor(act_dim, config.hidden).init(key, jnp.zeros((1, obs_dim)))
        tx = make_optimizer(config.lr, config.total_steps, 0.0, config.cosine_lr)
        return cls(params, tx.init(params), jnp.zeros((), jnp.int32), weights, config)

    def loss(self, params, batch):
        mean, log_std = GaussianActor(self.config.act_dim, self.config.hidden).apply(params, batch["observations"])
        actions = jnp.clip(batch["actions"], -1 + 1e-5, 1 - 1e-5)
        nll = -tanh_gaussian(mean, log_std).log_prob(actions).mean()
        return nll, dict(loss=nll, mse=jnp.mean((jnp.tanh(mean) - batch["actions"]) ** 2))

    @jit_update
    def update(self, batch, key, contraction: bool = False):
        """One gradient step; ``key`` and ``contraction`` go unused (no noise, no diffusion model for γ to act on)."""
        del key, contraction
        check_batch(batch, self.config)
        grads, metrics = jax.grad(self.loss, has_aux=True)(self.params, batch)
        tx = make_optimizer(self.config.lr, self.config.total_steps, 0.0, self.config.cosine_lr)
        updates, opt_state = tx.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state,
                            step=self.step + 1), metrics

    @jax.jit
    def act(self, obs, key):
        """The mode ``tanh(mean)``, ``[B, act_dim]``."""
        del key
        mean, _ = GaussianActor(self.config.act_dim, self.config.hidden).apply(self.params, obs)
        return jnp.tanh(mean)
