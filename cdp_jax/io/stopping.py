"""A prompt stop on request while data is being made. Inside :func:`stop_promptly`, the first SIGINT or SIGTERM is
recorded, and the maker's next :func:`check` (between demos, chunks of bytes, blocks of transitions: seconds apart)
raises :class:`Stopped`; a second signal stops at once. Makers that keep progress (demos, downloaded bytes, SAC
checkpoints) have it on disk, written atomically, and the same command continues from it; the others (PointMaze and
the toy data: about a minute) start again. (Raising inside the signal handler itself is not
safe: it can land in a ``__del__`` or ``finally``, where Python swallows it.)"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable


class Stopped(Exception):
    """A run stopped on request; ``signal_name`` is ``"SIGINT"`` or ``"SIGTERM"`` (exit codes 130 and 143)."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name


def report(err: Stopped) -> int:
    """Prints ``err`` as the run's last line, on a line of its own (after any progress line), and returns its exit
    code: 130 for SIGINT, 143 for SIGTERM."""
    print(f"\n{err}", file=sys.stderr, flush=True)
    return 130 if err.signal_name == "SIGINT" else 143


_request: list = []               # [(signal name, what was being made)] while a stop is pending


def check() -> None:
    """Raises :class:`Stopped` if a stop was requested inside :func:`stop_promptly`; else nothing (cheap)."""
    if _request:
        name, what = _request[0]
        raise Stopped(f"{name}: stopped {what}; rerun the same command to continue (the demos, downloaded bytes and "
                      f"checkpoints made so far are kept)", name)


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[str], None]):
    """While the block runs in the main thread, SIGINT and SIGTERM call ``handler("SIGINT" or "SIGTERM")``; the
    handlers in place before come back afterwards (elsewhere than the main thread, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda signum, frame: handler(signal.Signals(signum).name))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stop_promptly(what: str):
    """While the block runs, SIGINT and SIGTERM make the next :func:`check` raise; a second signal raises
    ``KeyboardInterrupt`` at once."""
    def handler(name: str) -> None:
        if _request:
            raise KeyboardInterrupt(f"second {name}")
        _request.append((name, what))

    try:
        with on_stop_signals(handler):
            yield
            check()                # a signal after the maker's last check still stops what comes next
    finally:
        _request.clear()
