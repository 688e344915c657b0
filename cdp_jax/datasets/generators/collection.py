"""Rollouts of a behaviour policy as Minari episode buffers: a SAC snapshot's stochastic actions, or SAC's own replay
buffer (the ``medium-replay`` level), the way D4RL's and Minari's locomotion datasets were collected."""
from __future__ import annotations

import gymnasium as gym
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from cdp_jax.datasets.generators import sac
from cdp_jax.datasets.generators.writing import episode_buffer
from cdp_jax.datasets.normalization import Normalizer
from cdp_jax.io import stopping

RESET_SEED = 123                # episode k of a collection resets with seed RESET_SEED + k


def env_actions(space: gym.spaces.Box):
    """``scale(a)``: agent actions in (-1, 1) -> the environment's Box, float32 (the data layer's Normalizer)."""
    norm = Normalizer.from_action_space(space)
    return lambda a: np.asarray(norm.to_env_action(np.asarray(a, np.float32)), np.float32)


def snapshot_actor(params, scale):
    """``act(obs, rng)``: stochastic environment actions of an actor snapshot, seeded from the numpy ``rng``."""
    def act(obs, rng):
        return scale(sac.snapshot_actions(params, jnp.asarray(obs, jnp.float32), int(rng.integers(2**31))))
    return act


def collect(env: gym.Env, act, num_steps: int, desc: str, progress: bool, seed: int) -> list:
    """``num_steps`` transitions of ``act(obs, rng)`` as Minari episode buffers (``rng`` seeded by ``seed``); episode
    ``k`` is reset with seed ``123 + k``; the last episode is truncated where the budget ends."""
    episodes, done_steps, k, rng = [], 0, 0, np.random.default_rng(seed)
    with tqdm(total=num_steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True) as bar:
        while done_steps < num_steps:
            obs, _ = env.reset(seed=RESET_SEED + k)
            o, a, r, term, trunc = [obs], [], [], [], []
            while True:
                stopping.check()
                action = act(obs, rng)
                obs, reward, terminated, truncated, _ = env.step(action)
                o.append(obs), a.append(action), r.append(reward), term.append(terminated)
                last = done_steps + len(a) >= num_steps
                trunc.append(bool(truncated) or (last and not terminated))
                if terminated or trunc[-1]:
                    break
            episodes.append(episode_buffer(np.asarray(o, np.float32), a, r, term, trunc, seed=RESET_SEED + k))
            done_steps += len(a)
            bar.update(len(a))
            k += 1
    return episodes


def replay_episodes(buffer: "sac.ReplayBuffer", size: int, scale) -> list:
    """The first ``size`` replay transitions as episodes (split at terminals and truncations)."""
    data = {f: np.asarray(getattr(buffer.data, f)[:size]) for f in sac.ReplayBuffer.FIELDS}
    ends = np.flatnonzero(data["episode_ends"] > 0)
    if len(ends) == 0 or ends[-1] != size - 1:
        ends = np.append(ends, size - 1)
    episodes, start = [], 0
    for end in ends:
        sl = slice(start, end + 1)
        obs = np.concatenate([data["observations"][sl], data["next_observations"][end:end + 1]])
        trunc = data["truncations"][sl] > 0
        trunc[-1] = trunc[-1] or not data["terminals"][end] > 0
        episodes.append(episode_buffer(obs, scale(data["actions"][sl]), data["rewards"][sl], data["terminals"][sl] > 0,
                                       trunc))
        start = end + 1
    return episodes
