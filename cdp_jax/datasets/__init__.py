"""Offline datasets, in the order the data flows: make them, load them, normalise them, take subsets.

* :mod:`cdp_jax.datasets.generators` writes real Minari datasets offline (``python -m cdp_jax.datasets generate``):
  ``pointmaze-{open,umaze,medium,large}`` (the D4RL/Minari maze2d recipe), ``toy-reach`` (2-D, bimodal
  demonstrations, for tests) and ``mujoco`` (SAC behaviour policies, :mod:`cdp_jax.datasets.generators.sac`).
* :mod:`cdp_jax.datasets.loading`: any Minari id (local or remote) -> :class:`Transitions` on the device.
* :mod:`cdp_jax.datasets.normalization`: the one :class:`Normalizer` (actions to [-1, 1], observations).
* :mod:`cdp_jax.datasets.subsets`: data-scarcity subsets as index masks, and batch sampling inside ``jit``.
* :mod:`cdp_jax.datasets.robomimic_hdf5`: robomimic's HDF5 demonstrations (read, write, windows);
  :mod:`cdp_jax.datasets.robomimic_download` fetches robomimic's released files (``python -m cdp_jax.datasets
  download robomimic-TASK``).
"""
from cdp_jax.datasets.generators import GENERATORS, generate
from cdp_jax.datasets.loading import DatasetError, DatasetInfo, Transitions, load_transitions
from cdp_jax.datasets.normalization import Normalizer
from cdp_jax.datasets.subsets import Subsets, make_subsets, sample_batch

__all__ = ["GENERATORS", "DatasetError", "DatasetInfo", "Normalizer", "Transitions", "Subsets", "generate",
           "load_transitions", "make_subsets", "sample_batch"]
