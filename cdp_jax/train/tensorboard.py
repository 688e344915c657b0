"""Per-member TensorBoard scalars of a sweep: ``workdir/tensorboard/<member>/`` event files (tensorboardX, no
TensorFlow). View them with ``pip install tensorboard && tensorboard --logdir WORKDIR/tensorboard``."""
from __future__ import annotations

import math
import os


def member_name(member: dict) -> str:
    """``seed0_frac0.05_gamma0.1``: one TensorBoard run per grid member."""
    return f"seed{member['seed']}_frac{member['data_fraction']:g}_gamma{member['gamma']:g}"


class MemberBoards:
    """One ``SummaryWriter`` per member; ``log(step, scalars)`` takes ``[{tag: value}]``, one dict per member.
    Disabled (``enabled=False``, or tensorboardX missing: said once) it does nothing."""

    def __init__(self, workdir: str, members: list[dict], enabled: bool = True):
        self.writers = []
        if not enabled:
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            print("tensorboardX is not installed: no TensorBoard event files (pip install tensorboardX)")
            return
        root = os.path.join(workdir, "tensorboard")
        self.writers = [SummaryWriter(os.path.join(root, member_name(m)), flush_secs=30) for m in members]

    def log(self, step: int, scalars: list[dict]) -> None:
        for writer, values in zip(self.writers, scalars):
            for tag, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(tag, value, step)
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []
