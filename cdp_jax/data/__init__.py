"""Offline data: Minari loading into device arrays, normalisation, data-scarcity subsets, batch sampling."""
from cdp_jax.data.loading import DatasetError, DatasetInfo, Transitions, load_transitions
from cdp_jax.data.normalization import Normalizer
from cdp_jax.data.subsets import Subsets, make_subsets, sample_batch

__all__ = ["DatasetError", "DatasetInfo", "Normalizer", "Transitions", "load_transitions", "Subsets", "make_subsets",
           "sample_batch"]
