"""A flat pool of evaluation environments, stepped in this process or split over worker processes.

``EnvPool(spec, layout, n, workers)`` holds ``n`` copies of one gymnasium environment. ``reset(seeds)`` and
``step(actions, active)`` act on all of them at once and return flat arrays. With ``workers > 1`` the envs are
split into contiguous blocks, each owned by one ``spawn``-started process (safe next to JAX's threads); every
env still sees exactly the same seeds and actions, so the results equal the in-process pool's bit for bit.
Workers pay off when many envs step per call (a large grid on a many-core GPU host); on 2 cores stay at 1.

:func:`envs_that_fit` bounds how many environments may live at once: it measures one environment's memory in a fresh
process (a robosuite one holds about 100 MB; a sweep starts that process with :func:`start_measuring` before it
compiles) and compares it with the memory available now.
"""
from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import resource
import signal
import sys
from typing import NamedTuple

import gymnasium as gym
import numpy as np


def register_robotics_envs() -> None:
    """Imports gymnasium-robotics (which registers PointMaze, AntMaze, ...) without its import-time notice about
    Adroit reward versions, which concerns environments this project never uses."""
    import io
    with contextlib.redirect_stderr(io.StringIO()):
        importlib.import_module("gymnasium_robotics")


def flatten_observation(obs, layout) -> np.ndarray:
    """One environment observation in the loader's flat layout (see :mod:`cdp_jax.datasets.loading`)."""
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k, _ in layout])
    return np.asarray(obs, np.float32).reshape(-1)


class _Block:
    """Envs ``[n]`` stepped in one process: the unit both the in-process pool and each worker run."""

    def __init__(self, spec, layout, n: int):
        self.envs = [gym.make(spec) for _ in range(n)]
        self.layout = layout

    def reset(self, seeds):
        return np.stack([flatten_observation(env.reset(seed=int(s))[0], self.layout)
                         for env, s in zip(self.envs, seeds)])

    def step(self, actions, active):
        """``(obs [n, D], reward [n], done [n], success [n])``; success is NaN where the env does not report it.
        Inactive envs are not stepped and return zeros (their obs is left to the caller)."""
        n = len(self.envs)
        obs = np.zeros((n, sum(d for _, d in self.layout)), np.float32)
        reward, done, success = np.zeros(n), np.zeros(n, bool), np.full(n, np.nan)
        for i in np.flatnonzero(active):
            o, r, term, trunc, info = self.envs[i].step(actions[i])
            obs[i], reward[i], done[i] = flatten_observation(o, self.layout), float(r), term or trunc
            if "success" in info:
                success[i] = float(info["success"])
        return obs, reward, done, success

    def close(self):
        for env in self.envs:
            env.close()


def _worker(conn, spec, layout, n):
    # The parent owns the pool's life: a SIGTERM or Ctrl-C sent to the whole process group (``timeout``, a
    # terminal, a job scheduler) reaches the parent, which stops gracefully after its current evaluation and closes
    # the pool; a worker that died of it would break that evaluation. If the parent dies, ``recv`` ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    register_robotics_envs()
    block = _Block(spec, layout, n)
    while True:
        try:
            cmd, args = conn.recv()
        except (EOFError, OSError):             # the parent is gone
            return
        if cmd == "close":
            block.close()
            conn.close()
            return
        try:
            conn.send(("ok", getattr(block, cmd)(*args)))
        except Exception as err:  # noqa: BLE001 - sent back and raised in the parent with its message
            conn.send(("error", f"{type(err).__name__}: {err}"))


@contextlib.contextmanager
def _children_on_cpu():
    """Processes started inside see ``JAX_PLATFORMS=cpu``: one that imports jax must not claim the accelerator."""
    saved = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["JAX_PLATFORMS"]
        else:
            os.environ["JAX_PLATFORMS"] = saved


class EnvMemory(NamedTuple):
    """Resident memory, in bytes, of a process that built environments of one spec: ``base`` after the imports and
    the first environment, ``per_env`` for each further one."""

    base: int
    per_env: int


def _resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak (which only grows while environments are built)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _measure_worker(conn, spec, count):
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # as a pool worker: a group signal is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        register_robotics_envs()
        envs = [gym.make(spec)]
        envs[0].reset(seed=0)
        base = _resident_bytes()
        for k in range(count):
            envs.append(gym.make(spec))
            envs[-1].reset(seed=k + 1)
        conn.send(EnvMemory(base, max(0, _resident_bytes() - base) // count))
    except Exception:  # noqa: BLE001 - the pool that builds it next raises the error in full, in its own process
        conn.send(None)


_MEASURED: dict[str, EnvMemory | None] = {}
_MEASURING: dict[str, tuple] = {}           # spec -> (process, connection) of a measurement still running
MEASURED_ENVS = 4


def start_measuring(spec, count: int = MEASURED_ENVS) -> None:
    """Starts :func:`environment_memory`'s measurement in the background and returns at once, so that its process
    start and imports (2-3 s for a toy environment, about 10 s for a robosuite image one) overlap this process's
    compiling; :func:`environment_memory` collects it. Nothing to do where it is measured or measuring already."""
    if repr(spec) in _MEASURED or repr(spec) in _MEASURING:
        return
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_measure_worker, args=(child, spec, count), daemon=True)
    with _children_on_cpu():
        proc.start()
    child.close()
    _MEASURING[repr(spec)] = (proc, parent)


def environment_memory(spec, count: int = MEASURED_ENVS) -> EnvMemory | None:
    """Measures ``spec``'s memory in a fresh ``spawn``-started process (this one's allocator would reuse memory that
    earlier environments freed): one environment for the imports, then ``count`` more. ``None`` if the environment
    fails to build there. Cached per spec; a measurement :func:`start_measuring` began is waited for."""
    if repr(spec) in _MEASURED:
        return _MEASURED[repr(spec)]
    start_measuring(spec, count)
    proc, parent = _MEASURING.pop(repr(spec))
    try:
        measured = parent.recv()                # None: the environment failed to build; the pool will say why
    except (EOFError, OSError):                 # the process died (killed, out of memory)
        measured = None
    proc.join()
    _MEASURED[repr(spec)] = measured
    return measured


def available_memory() -> int | None:
    """Bytes this process may still allocate: the system's ``MemAvailable``, capped by a cgroup (v2 or v1) limit
    such as a container's or a batch job's; ``None`` where neither can be read (not Linux)."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            limits += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f, open(usage_file) as g:
                limit, usage = f.read().strip(), int(g.read())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:           # "max" or a huge number: no limit
            limits.append(max(0, int(limit) - usage))
    return min(limits) if limits else None


def envs_that_fit(spec, workers: int = 1, share: float = 0.5) -> int:
    """How many environments of ``spec`` fit in ``share`` of the memory available now (at least 1), counting the
    base memory of each worker process when ``workers > 1``; 0 (no bound) where the available memory or the
    environment's is unknown."""
    available = available_memory()
    memory = None if available is None else environment_memory(spec)
    if memory is None:
        return 0
    budget = share * available - (memory.base * workers if workers > 1 else 0)
    return max(1, int(budget // max(memory.per_env, 1 << 20)))


class EnvPool:
    """``n`` environments of ``spec`` in ``workers`` processes (1: this process)."""

    def __init__(self, spec, layout, n: int, workers: int = 1):
        self.n, self.layout = n, layout
        workers = max(1, min(int(workers), n))
        if workers == 1:
            self.local, self.bounds = _Block(spec, layout, n), None
            return
        self.local = None
        edges = np.linspace(0, n, workers + 1).round().astype(int)
        self.bounds = list(zip(edges[:-1], edges[1:]))
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        with _children_on_cpu():
            for lo, hi in self.bounds:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, spec, layout, hi - lo), daemon=True)
                proc.start()
                self.conns.append(parent)
                self.procs.append(proc)

    def _call(self, cmd, *arrays):
        if self.local is not None:
            return getattr(self.local, cmd)(*arrays)
        try:
            for conn, (lo, hi) in zip(self.conns, self.bounds):
                conn.send((cmd, tuple(a[lo:hi] for a in arrays)))
            replies = [conn.recv() for conn in self.conns]
        except (EOFError, OSError):
            codes = [p.exitcode for p in self.procs]
            raise RuntimeError(f"an evaluation worker process died (exit codes {codes}; -9 is the kernel's OOM "
                               f"killer or a kill -9): rerun, or evaluate in-process with eval_workers=1") from None
        for status, payload in replies:
            if status == "error":
                raise RuntimeError(f"an evaluation environment failed in a worker: {payload}")
        parts = [payload for _, payload in replies]
        return parts[0].__class__(np.concatenate(p) for p in zip(*parts)) if isinstance(parts[0], tuple) \
            else np.concatenate(parts)

    def reset(self, seeds: np.ndarray) -> np.ndarray:
        """Resets env ``i`` with ``seeds[i]``; returns flat observations ``[n, obs_dim]``."""
        return self._call("reset", np.asarray(seeds))

    def step(self, actions: np.ndarray, active: np.ndarray):
        """Steps the envs where ``active``; returns ``(obs, reward, done, success)``, each ``[n, ...]``."""
        return self._call("step", np.asarray(actions), np.asarray(active, bool))

    def close(self):
        if self.local is not None:
            self.local.close()
            return
        for conn in self.conns:
            try:
                conn.send(("close", ()))
            except OSError:                     # that worker is gone already
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
