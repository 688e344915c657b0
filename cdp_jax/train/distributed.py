"""One sweep over several processes, as JAX means it: one process per host, the grid's member axis sharded over
the global device mesh, the dataset replicated, orbax writing one multi-process checkpoint.

Every process runs the same host program on the same config and data (so every process builds the same grid);
the compiled training steps run SPMD over all processes' devices, each device holding its share of the members.
Evaluation is split too: each process steps the environments of its own block of members and the scores are
gathered. Only process 0 writes files other than checkpoints (results.csv, summary.md, plots, TensorBoard) and
holds the workdir lock. Launch (SLURM, one task per host)::

    srun python -m experiments.sweep --config=... --workdir=/shared/run --config.distributed=True

``jax.distributed.initialize`` finds the coordinator from SLURM; elsewhere pass ``--coordinator=host:port
--num_processes=N --process_id=i`` to each process. On CPU the cross-process collectives use gloo.
"""
from __future__ import annotations

import jax
import numpy as np


def initialize(coordinator: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """``jax.distributed.initialize``; empty arguments let JAX detect the cluster (SLURM, ...)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")     # CPU collectives; GPUs use their own
    kwargs = {}
    if coordinator:
        kwargs = dict(coordinator_address=coordinator, num_processes=int(num_processes), process_id=int(process_id))
    jax.distributed.initialize(**kwargs)


def multi_process() -> bool:
    return jax.process_count() > 1


def is_primary() -> bool:
    """Process 0 writes results and holds the workdir lock."""
    return jax.process_index() == 0


def put(tree, sharding):
    """``tree`` placed with ``sharding``: ``jax.device_put`` in one process; across processes, arrays that this
    process holds whole (the same on every process) become global arrays built from their host copies."""
    if not multi_process():
        return jax.device_put(tree, sharding)

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.tree.map(one, tree)


def to_host(tree):
    """Every leaf as a numpy array holding all members, on every process."""
    if not multi_process():
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, np.ndarray) or x.is_fully_addressable else
                        np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree)


def local_block(size: int) -> slice:
    """This process's contiguous block of ``size`` members (evaluation)."""
    per = -(-size // jax.process_count())
    start = min(size, jax.process_index() * per)
    return slice(start, min(size, start + per))


def gather_blocks(values: np.ndarray, size: int) -> np.ndarray:
    """The inverse of :func:`local_block`: each process's ``values [block, ...]`` -> all ``[size, ...]``."""
    if not multi_process():
        return values
    from jax.experimental import multihost_utils
    per = -(-size // jax.process_count())
    padded = np.zeros((per,) + values.shape[1:], values.dtype)
    padded[:len(values)] = values
    return np.asarray(multihost_utils.process_allgather(padded)).reshape((-1,) + values.shape[1:])[:size]


def barrier(name: str) -> None:
    if multi_process():
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
