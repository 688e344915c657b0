"""Soft actor-critic (Haarnoja et al. 2018, with automatic entropy tuning) in JAX: the behaviour-policy trainer of
the locomotion datasets.

* Actor: :class:`cdp_jax.nn.networks.GaussianActor` (2 x 256 ReLU) squashed by tanh (distrax), actions in (-1, 1).
* Critic: two ReLU MLP heads (2 x 256), soft target ``r + discount (1 - done)
  (min Q'(s', a') - alpha log pi(a'|s'))``, Polyak rate ``tau``.
* Temperature: ``log_alpha`` trained towards the target entropy ``-act_dim``.
* Replay: :class:`ReplayBuffer`, fixed-capacity arrays on the device; :func:`train_steps` runs many updates in one
  ``lax.scan``, each on a fresh uniform batch, so a host loop can step the environment for ``K`` steps and then
  call one compiled program for ``K`` updates (update-to-data ratio 1).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training.train_state import TrainState

from cdp_jax.datasets.loading import ROW_FIELDS, Transitions
from cdp_jax.nn.networks import GaussianActor, tanh_gaussian


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "actor_lr": 3e-4, "critic_lr": 3e-4, "temperature_lr": 3e-4, "hidden": 256, "discount": 0.99, "tau": 0.005,
        "init_temperature": 1.0, "batch_size": 256})


class SoftQ(nn.Module):
    """Two ReLU MLP critics: ``(obs [..., obs_dim], act [..., act_dim]) -> (q1, q2)``, each ``[...]``."""

    hidden: int = 256

    @nn.compact
    def __call__(self, obs, act):
        x = jnp.concatenate([obs, act], -1)

        def head(name):
            h = nn.relu(nn.Dense(self.hidden, name=f"{name}_0")(x))
            h = nn.relu(nn.Dense(self.hidden, name=f"{name}_1")(h))
            return nn.Dense(1, name=f"{name}_out")(h)[..., 0]

        return head("q1"), head("q2")


class ReplayBuffer(flax.struct.PyTreeNode):
    """``capacity`` rows of :class:`cdp_jax.datasets.Transitions` (actions in (-1, 1)), of which ``size`` are filled.
    Rows are never overwritten: make the capacity the training budget."""

    data: Transitions
    size: jax.Array

    FIELDS = ROW_FIELDS

    @classmethod
    def create(cls, capacity: int, obs_dim: int, act_dim: int) -> "ReplayBuffer":
        shapes = {"observations": (obs_dim,), "actions": (act_dim,), "next_observations": (obs_dim,)}
        return cls(Transitions(**{f: jnp.zeros((capacity, *shapes.get(f, ())), jnp.float32) for f in cls.FIELDS}),
                   jnp.zeros((), jnp.int32))

    @functools.partial(jax.jit, donate_argnums=0)
    def add(self, chunk: dict) -> "ReplayBuffer":
        """Appends ``chunk`` (every field of :class:`Transitions`, each with a leading axis K) at row ``size``."""
        put = lambda buf, new: jax.lax.dynamic_update_slice_in_dim(buf, new.astype(buf.dtype), self.size, 0)
        data = self.data.replace(**{f: put(getattr(self.data, f), chunk[f]) for f in self.FIELDS})
        return self.replace(data=data, size=self.size + chunk["rewards"].shape[0])

    def sample(self, key, batch_size: int) -> dict:
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        return {f: getattr(self.data, f)[idx] for f in self.FIELDS}


class SACAgent(flax.struct.PyTreeNode):
    actor: TrainState
    critic: TrainState
    critic_target: dict
    temperature: TrainState              # params: {"log_alpha": []}
    config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: ml_collections.ConfigDict, key, obs_dim: int, act_dim: int) -> "SACAgent":
        config = ml_collections.FrozenConfigDict(dict(config.to_dict(), obs_dim=obs_dim, act_dim=act_dim))
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        actor_net, critic_net = cls.networks(config)
        actor = TrainState.create(apply_fn=actor_net.apply, params=actor_net.init(k_actor, obs),
                                  tx=optax.adam(config.actor_lr))
        critic_params = critic_net.init(k_critic, obs, act)
        critic = TrainState.create(apply_fn=critic_net.apply, params=critic_params, tx=optax.adam(config.critic_lr))
        temperature = TrainState.create(apply_fn=None, params={"log_alpha": jnp.log(jnp.float32(config.init_temperature))},
                                        tx=optax.adam(config.temperature_lr))
        return cls(actor, critic, critic_params, temperature, config)

    @staticmethod
    def networks(config):
        return GaussianActor(config.act_dim, config.hidden, num_layers=2), SoftQ(config.hidden)

    def policy(self, params, obs):
        return tanh_gaussian(*self.actor.apply_fn(params, obs))

    def critic_loss(self, params, batch, key, alpha):
        next_act, next_logp = self.policy(self.actor.params, batch["next_observations"]).sample_and_log_prob(seed=key)
        q1n, q2n = self.critic.apply_fn(self.critic_target, batch["next_observations"], next_act)
        target = batch["rewards"] + self.config.discount * (1.0 - batch["terminals"]) * (
            jnp.minimum(q1n, q2n) - alpha * next_logp)
        q1, q2 = self.critic.apply_fn(params, batch["observations"], batch["actions"])
        target = jax.lax.stop_gradient(target)
        loss = jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)
        return loss, {"critic_loss": loss, "q": q1.mean()}

    def actor_loss(self, params, batch, key, alpha):
        act, logp = self.policy(params, batch["observations"]).sample_and_log_prob(seed=key)
        q1, q2 = self.critic.apply_fn(self.critic.params, batch["observations"], act)
        loss = jnp.mean(alpha * logp - jnp.minimum(q1, q2))
        return loss, {"actor_loss": loss, "entropy": -logp.mean()}

    @jax.jit
    def update(self, batch: dict, key) -> tuple["SACAgent", dict]:
        """One SAC step on ``batch`` (the fields of :class:`Transitions`, leading axis B)."""
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(self.temperature.params["log_alpha"])
        grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(self.critic.params, batch, k_critic, alpha)
        critic = self.critic.apply_gradients(grads=grads)
        tau = self.config.tau
        target = optax.incremental_update(critic.params, self.critic_target, tau)
        agent = self.replace(critic=critic, critic_target=target)
        grads, actor_info = jax.grad(agent.actor_loss, has_aux=True)(self.actor.params, batch, k_actor, alpha)
        actor = self.actor.apply_gradients(grads=grads)
        target_entropy = -float(self.config.act_dim)

        def temperature_loss(params):
            return -jnp.exp(params["log_alpha"]) * (target_entropy - actor_info["entropy"])

        temperature = self.temperature.apply_gradients(grads=jax.grad(temperature_loss)(self.temperature.params))
        return agent.replace(actor=actor, temperature=temperature), {**critic_info, **actor_info, "alpha": alpha}

    @jax.jit
    def sample_actions(self, obs, key, step):
        """Stochastic actions in (-1, 1), ``obs [..., obs_dim] -> [..., act_dim]``, keyed by ``fold_in(key, step)``."""
        return self.policy(self.actor.params, obs).sample(seed=jax.random.fold_in(key, step))


@functools.partial(jax.jit, static_argnums=(3,))
def train_steps(agent: SACAgent, buffer: ReplayBuffer, key, num_updates: int) -> tuple[SACAgent, dict]:
    """``num_updates`` SAC steps on uniform batches of ``buffer`` in one ``lax.scan``; returns mean metrics."""
    def body(agent, k):
        k_batch, k_update = jax.random.split(k)
        return agent.update(buffer.sample(k_batch, agent.config.batch_size), k_update)

    agent, metrics = jax.lax.scan(body, agent, jax.random.split(key, num_updates))
    return agent, jax.tree.map(jnp.mean, metrics)


@jax.jit
def snapshot_actions(actor_params, obs, seed):
    """Stochastic actions of a saved actor snapshot (``SACAgent.actor.params``), ``obs [..., obs_dim] ->
    [..., act_dim]`` in (-1, 1), drawn with ``PRNGKey(seed)``."""
    p = actor_params["params"]
    net = GaussianActor(p["Dense_2"]["kernel"].shape[-1], p["Dense_0"]["kernel"].shape[-1], num_layers=2)
    return tanh_gaussian(*net.apply(actor_params, obs)).sample(seed=jax.random.PRNGKey(seed))
