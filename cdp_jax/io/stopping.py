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
def stop_promptly(what: str):
    """While the block runs in the main thread, SIGINT and SIGTERM make the next :func:`check` raise; a second
    signal raises ``KeyboardInterrupt`` at once. The handlers in place before come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if _request:
            raise KeyboardInterrupt(f"second {name}")
        _request.append((name, what))

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
        check()                    # a signal after the maker's last check still stops what comes next
    finally:
        _request.clear()
        for s, h in previous.items():
            signal.signal(s, h)
