"""``toy-reach``: a tiny 2-D reaching task with bimodal demonstrations, for tests and quick checks.

The point starts near (0, -0.6) and moves by ``0.1 * action`` (action in [-1, 1]^2). Reaching either target
(-0.6, 0.6) or (0.6, 0.6) within 0.1 gives reward 1 and terminates; episodes are cut at 30 steps. The
demonstrator picks one target per episode at random, so actions at the start state are bimodal.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from cdp_jax.datasets.generators.writing import episode_buffer, mean_return, write_dataset

ENV_ID = "cdp_jax/ToyReach-v0"
TARGETS = np.array([[-0.6, 0.6], [0.6, 0.6]], np.float32)
MAX_STEPS, RADIUS, SPEED = 30, 0.1, 0.1


class ToyReachEnv(gym.Env):
    """Observation: the position ``[2]``. Action: a velocity ``[2]`` in [-1, 1]."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.pos = np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.array([0.0, -0.6], np.float32) + self.np_random.uniform(-0.1, 0.1, 2).astype(np.float32)
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + SPEED * np.clip(action, -1, 1), -1, 1).astype(np.float32)
        reached = bool(np.min(np.linalg.norm(TARGETS - self.pos, axis=1)) <= RADIUS)
        return self.pos.copy(), float(reached), reached, False, {"success": reached}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="cdp_jax.datasets.generators.toy:ToyReachEnv", max_episode_steps=MAX_STEPS)


def demonstrator(target: np.ndarray, noise: float):
    def policy(obs, rng):
        return np.clip(5.0 * (target - obs) + rng.normal(0.0, noise, 2), -1, 1).astype(np.float32)
    return policy


def nearest_target_policy(obs, rng):
    return demonstrator(TARGETS[np.argmin(np.linalg.norm(TARGETS - obs, axis=1))], 0.0)(obs, rng)


def generate(dataset_id: str, num_steps: int = 5_000, seed: int = 0, overwrite: bool = False,
             progress: bool = True) -> str:
    """Writes ``num_steps`` demonstration steps (the last episode is cut to fit) as a Minari dataset."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    episodes, steps, k = [], 0, 0
    with tqdm(total=num_steps, desc="toy-reach", unit="step", disable=not progress) as bar:
        while steps < num_steps:
            policy = demonstrator(TARGETS[rng.integers(len(TARGETS))], 0.1)
            obs, _ = env.reset(seed=seed + k)
            k += 1
            obs_list, acts, rews, terms, truncs = [obs], [], [], [], []
            done = False
            while not done:
                action = policy(obs, rng)
                obs, reward, terminated, truncated, _ = env.step(action)
                steps += 1
                truncated = truncated or steps == num_steps
                obs_list.append(obs), acts.append(action), rews.append(reward), terms.append(terminated)
                truncs.append(truncated and not terminated)
                done = terminated or truncated
            bar.update(len(acts))
            episodes.append(episode_buffer(np.stack(obs_list), acts, rews, terms, truncs, seed=seed + k - 1))
    ref_max = mean_return(env, nearest_target_policy, 50, 10_000)
    ref_min = mean_return(env, lambda obs, rng: rng.uniform(-1, 1, 2).astype(np.float32), 50, 10_000)
    try:
        return write_dataset(dataset_id, episodes, env_spec=env.spec, eval_env_spec=env.spec, ref_min_score=ref_min,
                             ref_max_score=ref_max, algorithm_name="cdp_jax.datasets.generators.toy demonstrator",
                             description=__doc__, overwrite=overwrite)
    finally:
        env.close()
