"""Data-scarcity subsets that stack and vmap: a padded index array plus a count per grid member.

Two kinds: ``"transitions"`` keeps ``round(fraction * N)`` transitions drawn without replacement (the reference
code's ``data_portion``: a seeded random permutation); ``"episodes"`` keeps ``round(fraction * E)`` whole episodes.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from cdp_jax.datasets.loading import Transitions

SUBSET_KINDS = ("transitions", "episodes")


class Subsets(flax.struct.PyTreeNode):
    """``idx [..., max_n]`` int32 (valid entries first, padded by repeating them) and ``count [...]`` int32."""

    idx: jax.Array
    count: jax.Array


def check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"a data fraction must be in (0, 1], got {fraction}")
    return fraction


def subset_indices(num_transitions: int, fraction: float, seed: int, kind: str = "transitions",
                   episode_starts: np.ndarray | None = None) -> np.ndarray:
    """Sorted transition indices of one subset (numpy, exact size for ``kind="transitions"``)."""
    fraction = check_fraction(fraction)
    rng = np.random.default_rng(seed)
    if kind == "transitions":
        n = max(1, int(round(fraction * num_transitions)))
        return np.sort(rng.permutation(num_transitions)[:n])
    if kind == "episodes":
        if episode_starts is None:
            raise ValueError("episode subsets need the dataset's episode_starts")
        bounds = np.append(np.asarray(episode_starts), num_transitions)
        chosen = rng.permutation(len(episode_starts))[:max(1, int(round(fraction * len(episode_starts))))]
        return np.sort(np.concatenate([np.arange(bounds[e], bounds[e + 1]) for e in chosen]))
    raise ValueError(f"unknown subset kind {kind!r}; choose one of {SUBSET_KINDS}")


def make_subsets(num_transitions: int, fractions, seeds, kind: str = "transitions",
                 episode_starts: np.ndarray | None = None) -> Subsets:
    """One subset per (fraction, seed) pair, stacked along a leading axis ``[G]``."""
    fractions, seeds = list(fractions), list(seeds)
    if len(fractions) != len(seeds):
        raise ValueError(f"make_subsets needs one seed per fraction, got {len(fractions)} and {len(seeds)}")
    sets = [subset_indices(num_transitions, f, s, kind, episode_starts) for f, s in zip(fractions, seeds)]
    width = max(len(s) for s in sets)
    idx = np.stack([np.resize(s, width) for s in sets]).astype(np.int32)
    return Subsets(idx=jnp.asarray(idx), count=jnp.asarray([len(s) for s in sets], jnp.int32))


def sample_batch(key: jax.Array, data: Transitions, subset: Subsets, batch_size: int) -> Transitions:
    """``batch_size`` transitions drawn uniformly (with replacement) from ONE subset (vmap over members)."""
    pos = jax.random.randint(key, (batch_size,), 0, subset.count)
    return data.rows(subset.idx[pos])
