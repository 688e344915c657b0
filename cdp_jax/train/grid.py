"""The grid as data and as one compiled program.

``build_grid`` flattens seeds x data fractions x γ into members with stacked leaves; ``make_train_steps`` is the
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

from cdp_jax.train import distributed
from cdp_jax.agents.base import LossWeights
from cdp_jax.train.config import seeds_of
from cdp_jax.datasets import Subsets, Transitions, make_subsets, sample_batch
from cdp_jax.train.eval_overlap import training_devices

# The memory heuristic's activation estimate per member: batch rows x the widest layer (512) x about 64 live
# activations of that width per row in one update (forward, backward, JVPs, the critic-target sampler) x 4 bytes.
ACTIVATION_BYTES_PER_ROW = 512 * 64 * 4

@dataclasses.dataclass(frozen=True)
class Grid:
    """The flattened grid: ``members`` (dicts of seed, data_fraction, gamma) and their stacked leaves."""

    members: list
    weights: LossWeights                 # [G]
    seeds: jax.Array            # [G] int32
    subsets: Subsets            # [G, max_n]

    @property
    def size(self) -> int:
        return len(self.members)


def build_grid(cfg, num_transitions: int, episode_starts: np.ndarray) -> Grid:
    members = [dict(seed=s, data_fraction=float(f), gamma=float(g))
               for f, g, s in itertools.product(cfg.data_fractions, cfg.gammas, seeds_of(cfg))]
    split = [m["seed"] if cfg.subset_seed < 0 else cfg.subset_seed for m in members]   # official IL: fixed 42
    subsets = make_subsets(num_transitions, [m["data_fraction"] for m in members], split, cfg.subset_kind,
                           episode_starts)
    smallest = int(subsets.count.min())
    if smallest < cfg.batch_size:
        frac = min(m["data_fraction"] for m in members)
        raise ValueError(f"data fraction {frac:g} keeps only {smallest} of {num_transitions} transitions, fewer than "
                         f"one batch ({cfg.batch_size}); use fractions >= {cfg.batch_size / num_transitions:.2g} or a "
                         f"smaller batch_size")
    weights = LossWeights(gamma=jnp.asarray([m["gamma"] for m in members], jnp.float32),
                 eta=jnp.full(len(members), float(cfg.eta), jnp.float32))
    return Grid(members, weights, jnp.asarray([m["seed"] for m in members], jnp.int32), subsets)


def init_agents(agent_cls, acfg, grid: Grid, obs_dim: int, act_dim: int):
    create = lambda weights, seed: agent_cls.create(acfg, weights, jax.random.PRNGKey(seed), obs_dim, act_dim)
    return jax.jit(jax.vmap(create))(grid.weights, grid.seeds)


def batch_dict(batch: Transitions) -> dict:
    return {"observations": batch.observations, "actions": batch.actions, "rewards": batch.rewards,
            "next_observations": batch.next_observations, "terminals": batch.terminals}


def make_train_steps(data: Transitions, batch_size: int, steps: int):
    """``(agents [G], diverged [G], subsets [G], seeds [G], start_step, contraction) -> (agents, diverged, mean
    metrics [G])``; ``contraction`` (static) says whether the updates compute the contraction term.

    A member whose loss turns NaN or inf within the call, or whose state ends it non-finite, goes back to its state
    at the call's start (its last finite one) and is marked diverged; the others go on. The check is once per
    call, not per step: a per-step select over the whole state cost a one-member grid 20% of its step time.
    """
    def member(agent, diverged, subset, seed, start, contraction):
        base = jax.random.fold_in(jax.random.PRNGKey(seed), 1)

        def body(agent, i):
            k_batch, k_update = jax.random.split(jax.random.fold_in(base, start + i))
            return agent.update(batch_dict(sample_batch(k_batch, data, subset, batch_size)), k_update, contraction)

        end, metrics = jax.lax.scan(body, agent, jnp.arange(steps))
        finite = jnp.all(jnp.isfinite(metrics["loss"])) & jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(end) if jnp.issubdtype(x.dtype, jnp.inexact)]))
        diverged = diverged | ~finite
        agent = jax.tree.map(lambda n, o: jnp.where(diverged, o, n), end, agent)
        return agent, diverged, jax.tree.map(jnp.nanmean, metrics)

    def train_steps(agents, diverged, subsets, seeds, start, contraction: bool):
        if diverged.shape[0] > 1:
            grid = jax.vmap(lambda *a: member(*a, start, contraction))
            return grid(agents, diverged, subsets, seeds)
        # One member: the same function without the member axis (vmapped over one, the step is 13-22% slower).
        one = member(*jax.tree.map(lambda x: x[0], (agents, diverged, subsets, seeds)), start, contraction)
        return jax.tree.map(lambda x: x[None], one)

    return jax.jit(train_steps, donate_argnums=(0,), static_argnames="contraction")


def auto_members_per_program(agents_one_member_bytes: int, batch_size: int, grid_size: int) -> int:
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
    """How the grid's members map onto compiled groups and devices.

    By default (``by_contraction``) members with γ = 0 and with γ > 0 never share a group: each group is compiled
    with the contraction term off or on (the static ``contraction`` of :func:`make_train_steps`), so a γ = 0 member pays nothing
    for it while a γ > 0 member computes it without a per-member branch. With ``by_contraction=False`` every member
    is of one class, compiled with the term when any γ > 0 (a γ = 0 member then computes L_c and weights it by 0:
    its gradient is the same up to rounding); fewer, wider programs, for an accelerator on which one program of N
    members costs little more than one of N/2. Each class is split into groups of at most ``per_program`` members,
    the last one padded by repeating its last member so that every group of a class has one shape (one compile);
    group sizes are multiples of the device count, so a group shards evenly over a 1-D ``grid`` mesh. The whole
    grid's state stays in member order; ``group`` gathers a group's rows and ``join`` puts them back.
    """

    size: int
    groups: tuple            # ((member indices, ...), contraction_on) per compiled group
    mesh: object

    @classmethod
    def plan(cls, gammas, per_program: int, devices=None, by_contraction: bool = True) -> "GridLayout":
        """``devices``: those the grid trains on (default: :func:`cdp_jax.train.eval_overlap.training_devices`)."""
        devices = list(devices or training_devices(False))
        n_dev = len(devices)
        groups = []
        contraction = [float(g) > 0 for g in gammas]
        if not by_contraction:
            contraction = [any(contraction)] * len(gammas)
        for on in (False, True):
            members = [i for i, c in enumerate(contraction) if c == on]
            if not members:
                continue
            size = -(-min(max(int(per_program), 1), len(members)) // n_dev) * n_dev
            for start in range(0, len(members), size):
                part = members[start:start + size]
                groups.append((tuple(part + [part[-1]] * (size - len(part))), on))
        mesh = jax.make_mesh((n_dev,), ("grid",), axis_types=(jax.sharding.AxisType.Auto,),
                             devices=devices) if n_dev > 1 else None
        return cls(len(gammas), tuple(groups), mesh)

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    def group(self, tree, k: int):
        """Group ``k``'s rows of a member-major tree ``[size, ...] -> [group size, ...]``, sharded over devices."""
        part = _take_rows(tree, np.asarray(self.groups[k][0]))
        if self.mesh is not None:
            part = distributed.put(part, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("grid")))
        return part

    def group_inputs(self, k: int, agents, diverged, subsets, seeds) -> list:
        """Group ``k``'s arguments of :func:`make_train_steps` ``[agents, diverged, subsets, seeds]``, gathered in
        one compiled program."""
        return list(self.group((agents, diverged, subsets, seeds), k))

    def contraction(self, k: int) -> bool:
        """Whether group ``k`` is compiled with the contraction term (γ = 0 groups are not)."""
        return self.groups[k][1]

    def join(self, parts: list):
        """The inverse of ``group`` over all groups: member-major ``[size, ...]`` (padding rows dropped)."""
        flat = [i for members, _ in self.groups for i in members]
        first = {}
        for pos, i in enumerate(flat):
            first.setdefault(i, pos)
        return _concatenate_rows(parts, np.asarray([first[i] for i in range(self.size)]))


# One compiled program per tree for all of its leaves: leaf by leaf, a resumed run compiled ~170 tiny gathers and
# concatenations before its first interval (1-2 s of every start on a 2-core CPU).
@jax.jit
def _take_rows(tree, idx):
    """Rows ``idx [n]`` of every leaf of a member-major tree: ``[G, ...] -> [n, ...]``."""
    return jax.tree.map(lambda x: x[idx], tree)


@jax.jit
def _concatenate_rows(trees, idx):
    """The trees' leaves concatenated along the member axis, then rows ``idx [n]`` of the result."""
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[idx], *trees)
