"""BC-GMM, the robomimic baseline of Table 2: an MLP (2 x 1024 ReLU) outputs a mixture of ``num_modes`` diagonal
Gaussians (distrax ``MixtureSameFamily``) over the action (chunk), fitted by maximum likelihood, as robomimic's
``BC_GMM``: means squashed by tanh, scales ``softplus(.) + min_std``, lr 1e-4; evaluation samples the mixture with
the scales set to ``min_std`` (robomimic's ``low_noise_eval``). It has no diffusion, so gamma must be 0."""
from __future__ import annotations

from typing import TYPE_CHECKING

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cdp_jax.agents.base import (LossWeights, check_batch, check_weights, freeze_config, jit_update, make_optimizer,
                                 refuse_gamma)

if TYPE_CHECKING:          # imported on use below
    import distrax


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(agent="bc_gmm", lr=1e-4, hidden=1024, num_layers=2, num_modes=5,
                                          min_std=1e-4, total_steps=100_000, cosine_lr=False))


class GMMHead(nn.Module):
    """``obs [..., obs_dim] -> (logits [..., K], means [..., K, act_dim], scales [..., K, act_dim])``."""

    act_dim: int
    hidden: int
    num_layers: int
    num_modes: int
    min_std: float

    @nn.compact
    def __call__(self, obs):
        h = obs
        for _ in range(self.num_layers):
            h = nn.relu(nn.Dense(self.hidden)(h))
        lead = h.shape[:-1]
        means = jnp.tanh(nn.Dense(self.num_modes * self.act_dim)(h)).reshape(lead + (self.num_modes, self.act_dim))
        scales = nn.softplus(nn.Dense(self.num_modes * self.act_dim)(h)).reshape(means.shape) + self.min_std
        return nn.Dense(self.num_modes)(h), means, scales


def mixture(logits, means, scales) -> distrax.Distribution:
    import distrax          # on use, as in cdp_jax.nn.networks.tanh_gaussian
    return distrax.MixtureSameFamily(distrax.Categorical(logits=logits), distrax.MultivariateNormalDiag(means, scales))


class BCGMMAgent(flax.struct.PyTreeNode):
    params: dict
    opt_state: optax.OptState
    step: jax.Array
    weights: LossWeights
    config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

    @property
    def head(self) -> GMMHead:
        c = self.config
        return GMMHead(c.act_dim, c.hidden, c.num_layers, c.num_modes, c.min_std)

    @staticmethod
    def optimizer(config):
        return make_optimizer(config.lr, config.total_steps, 0.0, config.cosine_lr)

    @classmethod
    def create(cls, config, weights: LossWeights, key, obs_dim: int, act_dim: int):
        check_weights(weights)
        refuse_gamma(weights, "bc_gmm")
        config = freeze_config(config, obs_dim, act_dim)
        agent = cls(None, None, jnp.zeros((), jnp.int32), weights, config)
        params = agent.head.init(key, jnp.zeros((1, obs_dim)))
        return agent.replace(params=params, opt_state=cls.optimizer(config).init(params))

    def loss(self, params, batch):
        nll = -mixture(*self.head.apply(params, batch["observations"])).log_prob(batch["actions"]).mean()
        return nll, dict(loss=nll)

    @jit_update
    def update(self, batch, key, contraction: bool = False):
        """One gradient step; ``key`` and ``contraction`` go unused (no noise, no diffusion model for γ to act on)."""
        del key, contraction
        check_batch(batch, self.config)
        grads, metrics = jax.grad(self.loss, has_aux=True)(self.params, batch)
        updates, opt_state = self.optimizer(self.config).update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state,
                            step=self.step + 1), metrics

    @jax.jit
    def act(self, obs, key):
        """A sample of the mixture with every scale at ``min_std`` (low-noise evaluation), ``[B, act_dim]``."""
        logits, means, scales = self.head.apply(self.params, obs)
        low = jnp.full_like(scales, self.config.min_std)
        return jnp.clip(mixture(logits, means, low).sample(seed=key), -1.0, 1.0)
