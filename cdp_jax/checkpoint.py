"""Orbax checkpoints of a sweep, and the workdir's config fingerprint."""
from __future__ import annotations

import json
import os

import jax
import orbax.checkpoint as ocp

from cdp_jax.io import atomic_write_text


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored; the message says what to do."""


class SweepCheckpoints:
    """``workdir/checkpoints/<step>``: the whole training state pytree, written atomically by orbax."""

    def __init__(self, workdir: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """Restores ``step`` into the structure, shapes and shardings of ``like``."""
        abstract = jax.tree.map(lambda x: x if isinstance(x, jax.ShapeDtypeStruct) else ocp.utils.to_shape_dtype_struct(x),
                                like)
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # noqa: BLE001 - any orbax failure has the same fix
            raise CheckpointError(f"checkpoint {step} in {self.directory} cannot be restored ({type(err).__name__}: "
                                  f"{str(err)[:200]}); delete the folder or rerun with --config.resume=False") from None

    def close(self) -> None:
        self.manager.close()


def fingerprint(config_dict: dict, ignore=("resume", "overwrite")) -> str:
    """Canonical JSON of a config without the keys that may change between runs of the same sweep."""
    return json.dumps({k: v for k, v in config_dict.items() if k not in ignore}, sort_keys=True, default=str, indent=1)


def check_workdir(workdir: str, config_dict: dict, overwrite: bool) -> bool:
    """Creates ``workdir`` if needed, refuses one that is not writable or holds a different config unless
    ``overwrite``, and records the config. Returns True when the workdir already held this same config."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"workdir {workdir!r} is not writable ({err.strerror}); choose another --workdir") from None
    path = os.path.join(workdir, "config.json")
    mine = fingerprint(config_dict)
    if os.path.exists(path):
        with open(path) as f:
            theirs = f.read()
        if theirs == mine:
            return True
        if not overwrite:
            raise ValueError(f"workdir {workdir!r} holds a sweep with a different config ({path}); use another "
                             f"--workdir, or pass --config.overwrite=True to start over there")
    atomic_write_text(path, mine)
    return False
