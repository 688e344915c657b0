"""Diffusion Policy's windows over demonstrations: an observation history, an action chunk and the executed steps per
row, with its edge padding, and the official data-scarcity subsets over windows."""
from __future__ import annotations

import numpy as np

SPLIT_SEED = 42                 # the official fixed seed of the data-scarcity subsets over windows


def check_window(horizon: int, obs_steps: int, action_steps: int, observed_in_chunk: bool = False) -> None:
    """Refuses, in one line, a window shape that cannot be cut: every size >= 1 and the chunk at least as long as
    the executed steps; with ``observed_in_chunk`` (Diffusion Policy's windows, which also predict the observed
    frames' actions) at least as long as the observed steps too. The sweep's rows start their chunk at the
    current frame, so there ``horizon < obs_steps`` is fine (the official Pearce MLP: history 2, one action)."""
    if min(horizon, obs_steps, action_steps) < 1:
        raise ValueError(f"horizon, obs_steps and action_steps must be >= 1, got {horizon}, {obs_steps}, {action_steps}")
    if horizon < action_steps or (observed_in_chunk and horizon < obs_steps):
        raise ValueError(f"the chunk horizon {horizon} is shorter than action_steps={action_steps}"
                         + (f" or obs_steps={obs_steps}" if observed_in_chunk else "")
                         + "; use a longer horizon (Diffusion Policy: horizon 16, obs 2, action 8)")


def window_indices(episode_starts, episode_lengths, horizon: int, obs_steps: int, action_steps: int) -> np.ndarray:
    """Frame indices ``[W, horizon]`` of every window (Diffusion Policy's padding: ``obs_steps - 1`` frames before
    each episode, ``action_steps - 1`` after, edge frames repeated). ``obs = frames[idx[:, :obs_steps]]``,
    ``actions = frames[idx]``."""
    check_window(horizon, obs_steps, action_steps, observed_in_chunk=True)
    out = []
    offsets = np.arange(horizon)
    for start, length in zip(np.asarray(episode_starts), np.asarray(episode_lengths)):
        first, last = -(obs_steps - 1), int(length) - horizon + (action_steps - 1)
        begins = np.arange(first, max(last, first) + 1)
        out.append(start + np.clip(begins[:, None] + offsets, 0, int(length) - 1))
    return np.concatenate(out).astype(np.int32)


def window_subset(num_windows: int, fraction: float, seed: int = SPLIT_SEED) -> np.ndarray:
    """The official data-scarcity subset: ``max(1, round(fraction * W))`` windows drawn without replacement with
    a fixed seed (the same windows for every training seed), sorted."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the data fraction must lie in (0, 1], got {fraction}")
    count = max(1, int(round(fraction * num_windows)))
    return np.sort(np.random.default_rng(seed).choice(num_windows, count, replace=False)).astype(np.int32)


def clamped(starts, lengths, offsets) -> np.ndarray:
    """For every frame, the frame indices at ``offsets`` from it, clamped inside its episode: ``[N, len(offsets)]``."""
    out = []
    for start, length in zip(starts, lengths):
        local = np.arange(int(length))[:, None] + np.asarray(offsets)[None]
        out.append(int(start) + np.clip(local, 0, int(length) - 1))
    return np.concatenate(out)
