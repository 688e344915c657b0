"""Orbax checkpoints of a training state: ``DIR/checkpoints/<step>``, written atomically, restored with fallback."""
from __future__ import annotations

import gc
import logging
import os
import sys
import warnings

import jax
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored or written; the message says what to do."""


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:160]}"


def _drop_abandoned_reads() -> None:
    """Orbax can leave read coroutines that were never awaited (a failed restore; some reads on closing the
    manager); collect them now, quietly, so that they do not print pages of "Exception ignored" later or at exit."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)        # "coroutine ... was never awaited"
            gc.collect()
    finally:
        sys.unraisablehook = hook


class Checkpoints:
    """``workdir/checkpoints/<step>``: the whole training state pytree. Orbax writes each step into a temporary
    folder and renames it, so a crash leaves either the whole step or none of it; temporary leftovers are
    removed when the next run opens the folder. Only the ``max_to_keep`` newest steps are kept."""

    def __init__(self, workdir: str, max_to_keep: int = 2, read_only: bool = False):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        if read_only and not os.path.isdir(self.directory):
            raise CheckpointError(f"{workdir!r} holds no checkpoints folder; run experiments.sweep there first")
        quiet = logging.getLogger("absl")                  # orbax warns that a read-only folder is read-only
        level = quiet.level
        quiet.setLevel(logging.ERROR if read_only else level)
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, cleanup_tmp_directories=not read_only, enable_async_checkpointing=False,
                read_only=read_only, create=not read_only))
        finally:
            quiet.setLevel(level)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        try:
            self.manager.save(step, args=ocp.args.StandardSave(state))
            self.manager.wait_until_finished()
        except Exception as err:  # noqa: BLE001 - a full disk or a lost folder has the same fix
            raise CheckpointError(f"could not write the checkpoint of step {step} in {self.directory} "
                                  f"({_short(err)}); free disk space and rerun the same command: it resumes "
                                  f"from the last complete checkpoint") from None

    def restore(self, step: int, like):
        """Restores ``step`` into the structure, shapes and shardings of ``like``."""
        abstract = jax.tree.map(lambda x: x if isinstance(x, jax.ShapeDtypeStruct) else ocp.utils.to_shape_dtype_struct(x),
                                like)
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # noqa: BLE001 - any orbax failure has the same fix
            reason = _short(err)
        # Outside the except clause: the failed restore's traceback no longer holds its abandoned reads.
        _drop_abandoned_reads()
        raise CheckpointError(f"checkpoint {step} in {self.directory} cannot be restored ({reason}); "
                              f"delete the folder or rerun with --config.resume=False")

    def restore_latest(self, like, max_step: int | None = None):
        """``(step, state, refused)``: the newest step (at most ``max_step``) that restores, newest first;
        ``refused`` lists the newer steps that were corrupt or partial. ``(None, None, refused)`` if none does."""
        refused = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            if max_step is not None and step > max_step:
                continue
            try:
                return step, self.restore(step, like), refused
            except CheckpointError:
                refused.append(step)
        return None, None, refused

    def close(self) -> None:
        self.manager.close()
        _drop_abandoned_reads()
