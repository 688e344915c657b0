"""The grid as data and as one compiled program.

``build_grid`` flattens seeds x data fractions x γ into members with stacked leaves; ``make_train_chunk`` is the
pure training function, ``(agents [G], diverged [G], subsets [G], seeds [G], start) -> (agents, diverged,
metrics [G])``: a jit of a vmap over members of a ``lax.scan`` over steps (purejaxrl's shape). ``GridLayout``
splits a grid too large for memory into equal compiled groups and shards the member axis over devices.

Keys: member ``m`` with seed ``s`` initialises from ``PRNGKey(s)`` and draws its step-``i`` batch and update keys
from ``fold_in(fold_in(PRNGKey(s), 1), i)``; its data subset is seeded by ``s`` too. A member therefore draws
the same numbers alone or inside any grid, and members that share a seed are paired (same initial network,
same subset, same batches), so γ is the only difference between them.
"""
from __future__ import annotations

import dataclasses
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np

from cdp_jax.agents.base import HParams
from cdp_jax.config import seeds_of
from cdp_jax.data import Subsets, Transitions, make_subsets, sample_batch

# The memory heuristic's activation estimate per member: batch rows x the widest layer (512) x about 64 live
# activations of that width per row in one update (forward, backward, JVPs, the critic-target sampler) x 4 bytes.
ACTIVATION_BYTES_PER_ROW = 512 * 64 * 4

@dataclasses.dataclass(frozen=True)
class Grid:
    """The flattened grid: ``members`` (dicts of seed, data_fraction, gamma) and their stacked leaves."""

    members: list
    hp: HParams                 # [G]
    seeds: jax.Array            # [G] int32
    subsets: Subsets            # [G, max_n]

    @property
    def size(self) -> int:
        return len(self.members)


def build_grid(cfg, num_transitions: int, episode_starts: np.ndarray) -> Grid:
    members = [dict(seed=s, data_fraction=float(f), gamma=float(g))
               for f, g, s in itertools.product(cfg.data_fractions, cfg.gammas, seeds_of(cfg))]
    subsets = make_subsets(num_transitions, [m["data_fraction"] for m in members], [m["seed"] for m in members],
                           cfg.subset_kind, episode_starts)
    smallest = int(subsets.count.min())
    if smallest < cfg.batch_size:
        frac = min(m["data_fraction"] for m in members)
        raise ValueError(f"data fraction {frac:g} keeps only {smallest} of {num_transitions} transitions, fewer than "
                         f"one batch ({cfg.batch_size}); use fractions >= {cfg.batch_size / num_transitions:.2g} or a "
                         f"smaller batch_size")
    hp = HParams(gamma=jnp.asarray([m["gamma"] for m in members], jnp.float32),
                 eta=jnp.full(len(members), float(cfg.eta), jnp.float32))
    return Grid(members, hp, jnp.asarray([m["seed"] for m in members], jnp.int32), subsets)


def init_agents(agent_cls, acfg, grid: Grid, obs_dim: int, act_dim: int):
    create = lambda hp, seed: agent_cls.create(acfg, hp, jax.random.PRNGKey(seed), obs_dim, act_dim)
    return jax.jit(jax.vmap(create))(grid.hp, grid.seeds)


def batch_dict(batch: Transitions) -> dict:
    return {"observations": batch.observations, "actions": batch.actions, "rewards": batch.rewards,
            "next_observations": batch.next_observations, "terminals": batch.terminals}


def make_train_chunk(data: Transitions, batch_size: int, chunk_steps: int):
    """``(agents [G], diverged [G], subsets [G], seeds [G], start_step) -> (agents, diverged, mean metrics [G])``.

    A member whose loss turns NaN or inf keeps its last finite state and is marked diverged; the others go on.
    """
    def member(agent, diverged, subset, seed, start):
        base = jax.random.fold_in(jax.random.PRNGKey(seed), 1)

        def body(carry, i):
            agent, diverged = carry
            k_batch, k_update = jax.random.split(jax.random.fold_in(base, start + i))
            new, metrics = agent.update(batch_dict(sample_batch(k_batch, data, subset, batch_size)), k_update)
            finite = jnp.isfinite(metrics["loss"])
            keep_new = finite & ~diverged
            agent = jax.tree.map(lambda n, o: jnp.where(keep_new, n, o), new, agent)
            return (agent, diverged | ~finite), metrics

        (agent, diverged), metrics = jax.lax.scan(body, (agent, diverged), jnp.arange(chunk_steps))
        return agent, diverged, jax.tree.map(jnp.nanmean, metrics)

    return jax.jit(jax.vmap(member, (0, 0, 0, 0, None)), donate_argnums=(0,))


def auto_grid_chunk(agents_one_member_bytes: int, batch_size: int, grid_size: int) -> int:
    """Members per compiled program so that the grid fits in about half of the device's memory."""
    device = jax.devices()[0]
    try:
        limit = device.memory_stats()["bytes_limit"]
    except Exception:  # noqa: BLE001 - CPU devices have no memory stats
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_member = 4 * agents_one_member_bytes + batch_size * ACTIVATION_BYTES_PER_ROW
    return max(1, min(grid_size, int(0.5 * limit // per_member)))


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """How ``size`` members map onto equal compiled groups of ``chunk`` members and onto devices.

    The member axis is padded (by repeating the last member) to ``num_groups * chunk`` with ``chunk`` a multiple of
    the device count, so every group has one shape (one compile) and shards evenly over a 1-D ``grid`` mesh.
    """

    size: int
    chunk: int
    num_groups: int
    mesh: object

    @classmethod
    def plan(cls, size: int, chunk: int) -> "GridLayout":
        n_dev = jax.device_count()
        chunk = -(-min(max(int(chunk), 1), size) // n_dev) * n_dev
        mesh = jax.make_mesh((n_dev,), ("grid",), axis_types=(jax.sharding.AxisType.Auto,)) if n_dev > 1 else None
        return cls(size, chunk, -(-size // chunk), mesh)

    @property
    def padded(self) -> int:
        return self.num_groups * self.chunk

    def pad(self, tree):
        extra = self.padded - self.size
        if extra:
            tree = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), tree)
        if self.mesh is not None:
            tree = jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("grid")))
        return tree

    def unpad(self, tree):
        return tree if self.padded == self.size else jax.tree.map(lambda x: x[:self.size], tree)

    def group(self, tree, k: int):
        if self.num_groups == 1:
            return tree
        return jax.tree.map(lambda x: x[k * self.chunk:(k + 1) * self.chunk], tree)

    def join(self, parts: list):
        return parts[0] if len(parts) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
