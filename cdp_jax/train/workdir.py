"""A sweep's working folder: one live writer at a time (a lock), and the config it holds (a fingerprint)."""
from __future__ import annotations

import fcntl
import json
import os

from cdp_jax.io import atomic_write_text
from cdp_jax.train.config import base_config

LOCK = ".lock"
CONFIG = "config.json"


def fingerprint(config_dict: dict, ignore=("resume", "overwrite", "eval_overlap", "eval_max_envs",
                                           "progress_every", "wandb")) -> str:
    """Canonical JSON of a config without the keys that may change between runs of the same sweep (``wandb``: a
    resumed sweep may start or stop logging there)."""
    return json.dumps({k: v for k, v in config_dict.items() if k not in ignore}, sort_keys=True, default=str, indent=1)


def ensure_writable(workdir: str) -> None:
    """Creates ``workdir`` if needed; refuses a path that is a file or a folder this process cannot write."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"workdir {workdir!r} is a file, not a folder; choose another --workdir")
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"workdir {workdir!r} is not writable ({err.strerror}); choose another --workdir") from None


class WorkdirLock:
    """An exclusive ``flock`` on ``workdir/.lock`` for the life of this object (or of the process: the kernel
    drops it when the holder dies, so a killed run never leaves the folder locked)."""

    def __init__(self, workdir: str):
        self.path, self.fd = os.path.join(workdir, LOCK), None
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            self.fd = None
            raise ValueError(f"workdir {workdir!r} is in use by a running sweep (pid {holder}); wait for it to "
                             f"finish or stop it, or choose another --workdir") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def __del__(self):
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def read_config(workdir: str) -> dict:
    """The sweep config recorded in ``workdir/config.json``, with the keys it predates (top-level fields that
    :func:`cdp_jax.train.config.base_config` gained after it was written) at their defaults: a sweep recorded before a
    field existed ran as that field's default does. ``FileNotFoundError`` when there is none; ``ValueError``
    naming the file when it is not JSON."""
    path = os.path.join(workdir, CONFIG)
    with open(path) as f:
        try:
            stored = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}): a sweep writes it atomically, so it was edited or "
                             f"is another file") from None
    defaults = json.loads(json.dumps(base_config().to_dict(), default=str))
    return {**{k: v for k, v in defaults.items() if k not in stored}, **stored}


def holds_config(workdir: str, config_dict: dict, overwrite: bool) -> bool:
    """True when ``workdir`` already records this same config (:func:`read_config`); refuses a different one
    unless ``overwrite``. Writes nothing (see :func:`record_config`)."""
    path = os.path.join(workdir, CONFIG)
    if not os.path.exists(path):
        return False
    if fingerprint(read_config(workdir)) == fingerprint(json.loads(fingerprint(config_dict))):
        return True
    if not overwrite:
        raise ValueError(f"workdir {workdir!r} holds a sweep with a different config ({path}); use another "
                         f"--workdir, or pass --config.overwrite=True to start over there")
    return False


def record_config(workdir: str, config_dict: dict) -> None:
    atomic_write_text(os.path.join(workdir, CONFIG), fingerprint(config_dict))
