"""Evaluation overlapped with training (``eval_overlap=True``): while the training devices run interval k + 1,
one host thread evaluates a snapshot of interval k on a device of its own.

It needs a device of its own because XLA runs one device's programs one after another: a small evaluation call
issued while a training chunk runs waits for the whole chunk (measured on CPU: 0.25 ms alone, 733 ms behind a
0.7 s program; 1 ms on a second host device). So the evaluation runs on the host CPU of a GPU or TPU machine, and on
a second host device on a CPU-only machine, which :func:`reserve_host_device` asks JAX for before it starts
(``python -m experiments.sweep`` does it when the config turns the overlap on). The training devices are then all
the others.

The results do not change: the snapshot holds the same numbers, every evaluation key derives from the member's
seed and the step, and the evaluation device runs the same backend (a CPU-only run's results.csv equals the
sequential run's; tested). On a GPU machine the evaluation's sampler runs on the host CPU instead of the GPU, so
its numbers match a sequential run only up to floating-point rounding.
"""
from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Callable

import jax

OVERLAP_HOST_DEVICES = 2
_reserved = []          # non-empty once reserve_host_device ran: no grid trains on the evaluation device


def reserve_host_device() -> None:
    """Asks JAX for a second host CPU device (for the evaluation on a CPU-only machine) and keeps it out of every
    grid's training devices, also for sweeps that do not overlap. Call it before JAX's first computation; on a GPU
    or TPU machine the extra host device is harmless."""
    try:
        if jax.config.jax_num_cpu_devices < OVERLAP_HOST_DEVICES:
            jax.config.update("jax_num_cpu_devices", OVERLAP_HOST_DEVICES)
        _reserved.append(True)
    except RuntimeError as err:
        raise ValueError("eval_overlap needs a host device of its own, which JAX can only add before its first "
                         "computation: run through `python -m experiments.sweep`, or call "
                         "cdp_jax.train.eval_overlap.reserve_host_device() right after importing jax") from err


def evaluation_device() -> jax.Device | None:
    """The device that evaluates while the others train: the host CPU beside an accelerator, the last of several
    host devices on a CPU-only machine, ``None`` when there is no such device."""
    if jax.default_backend() != "cpu":
        return jax.devices("cpu")[0]
    cpus = jax.devices("cpu")
    return cpus[-1] if len(cpus) > 1 else None


def training_devices(overlap: bool) -> list[jax.Device]:
    """The devices the grid trains on: all default devices, less the evaluation device when overlapping or
    reserved."""
    spare = evaluation_device() if overlap or _reserved else None
    return [d for d in jax.devices() if d != spare]


class BackgroundEvaluator:
    """Runs evaluations in one host thread on ``device``, one at a time, in submission order."""

    def __init__(self, device: jax.Device):
        self.device = device
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cdp-eval")

    def submit(self, evaluate: Callable[..., Any], *arrays) -> concurrent.futures.Future:
        """Copies ``arrays`` (pytrees) to the evaluation device now (arrays already there are not copied), so that
        ``evaluate`` computes there, and returns a future of ``(evaluate(*copies), seconds it took)``."""
        copies = jax.block_until_ready(jax.device_put(arrays, self.device))

        def run():
            start = time.perf_counter()
            with jax.default_device(self.device):
                out = evaluate(*copies)
            return out, time.perf_counter() - start

        return self._pool.submit(run)

    def close(self) -> None:
        """Lets a running evaluation finish in the background; drops queued ones."""
        self._pool.shutdown(wait=False, cancel_futures=True)
