"""Shared timing helper for the benchmark scripts: compile once, then median wall time of repeats."""
from __future__ import annotations

import time

import jax


def median_seconds(fn, *args, repeats: int = 5) -> float:
    """Median seconds of ``fn(*args)`` after one warm-up call; blocks on the result."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
