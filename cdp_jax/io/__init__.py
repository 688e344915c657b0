"""Atomic file writes (nothing half-written survives a crash), and a lock that lets one process at a time write
into a folder."""
from __future__ import annotations

import contextlib
import fcntl
import os
import uuid


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``. The file gets
    the permissions of a plain ``open`` (0666 less the umask; ``mkstemp``'s 0600 would hide results.csv from a
    shared project's other users)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def folder_lock(folder: str):
    """Holds an exclusive ``flock`` on ``folder`` (made if missing) until the block ends: of several processes that
    would write the same files there (the processes of one sweep making its dataset), one works, the others wait
    and then find its files. The lock leaves nothing behind."""
    os.makedirs(folder, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
