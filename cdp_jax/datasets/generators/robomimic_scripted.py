"""Scripted, human-like demonstrations of robomimic's Lift and Can, written in robomimic's HDF5 layout.

    python -m cdp_jax.datasets generate robomimic-lift [--steps=200] [--seed=0]   (--steps: successful demos)

A proportional controller on OSC_POSE deltas runs through waypoints: above the object, down to it, close, lift
(Lift); and for Can also over the can's target bin, down, open, and back up. Each episode draws its own
gain, approach height, grasp time and action-noise level (and a small constant drift), so that demonstrations
vary the way human ones do; only successful episodes are kept, as in robomimic's PH data (an episode ends at its
first successful step). Square has no scripted controller here (a nut on a peg needs orientation control), and
Transport is two-armed: both use the real files (README, "Robomimic").
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from cdp_jax import robomimic_env
from cdp_jax.datasets.robomimic_hdf5 import write_demos

SCRIPTED_TASKS = ("lift", "can")
POS_SCALE = 0.05                      # OSC_POSE: one unit of action moves the end effector 5 cm


@dataclasses.dataclass(frozen=True)
class Style:
    """One episode's demonstrator: proportional gain, approach height (m), closing steps, noise std, drift."""

    gain: float
    approach: float
    close_steps: int
    noise: float
    drift: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Style":
        return cls(gain=rng.uniform(0.6, 1.2), approach=rng.uniform(0.06, 0.12), close_steps=int(rng.integers(8, 16)),
                   noise=rng.uniform(0.0, 0.1), drift=rng.normal(0.0, 0.02, 3))


def _waypoints(task: str, env, style: Style) -> list[tuple]:
    """``[(target position [3] or callable, gripper, steps at most, tolerance)]`` for the current episode."""
    raw = env.raw
    if task == "lift":
        obj = lambda: env.raw["cube_pos"]
    else:
        obj = lambda: env.raw["Can_pos"]
    up = lambda h: (lambda: obj() + np.array([0.0, 0.0, h]))
    plan = [(up(style.approach), -1.0, 120, 0.01), (up(0.0), -1.0, 60, 0.008), (up(0.0), 1.0, style.close_steps, None)]
    if task == "lift":
        start = np.array(raw["cube_pos"])
        return plan + [(lambda: start + np.array([0.0, 0.0, 0.15]), 1.0, 120, None)]
    inner = env.env
    target = np.array(inner.target_bin_placements[inner.object_to_id["can"]])
    above_bin = target + np.array([0.0, 0.0, 0.18])
    return plan + [(up(0.15), 1.0, 80, 0.02), (lambda: above_bin, 1.0, 150, 0.02),
                   (lambda: above_bin - np.array([0.0, 0.0, 0.06]), 1.0, 60, 0.015),
                   (lambda: above_bin - np.array([0.0, 0.0, 0.06]), -1.0, 10, None),
                   (lambda: above_bin + np.array([0.0, 0.0, 0.05]), -1.0, 60, None)]


def scripted_episode(task: str, env, seed: int, rng: np.random.Generator) -> tuple[dict, bool]:
    """One episode of the scripted demonstrator from reset seed ``seed``: ``(episode dict, success)``."""
    style = Style.draw(rng)
    env.reset(seed)
    frames = {"obs": {k: [] for k in env.obs_keys}, "actions": [], "rewards": [], "states": []}
    success, steps = False, 0
    for target, grip, max_steps, tol in _waypoints(task, env, style):
        for _ in range(max_steps):
            if steps >= env.horizon:
                break
            eef = env.raw["robot0_eef_pos"]
            delta = target() - eef
            action = np.zeros(env.act_dim)
            action[:3] = np.clip(style.gain * delta / POS_SCALE + style.drift, -1, 1)
            action[:6] += rng.normal(0.0, style.noise, 6)
            action[6] = grip
            action = np.clip(action, -1.0, 1.0)
            for k, v in env.robomimic_obs().items():
                frames["obs"][k].append(v)
            frames["states"].append(env.env.sim.get_state().flatten())
            _, reward, success = env.step(action)
            frames["actions"].append(action)
            frames["rewards"].append(reward)
            steps += 1
            if success or (tol is not None and np.linalg.norm(delta) < tol):
                break
        if success or steps >= env.horizon:
            break
    episode = {"obs": {k: np.stack(v) for k, v in frames["obs"].items()}, "actions": np.stack(frames["actions"]),
               "rewards": np.asarray(frames["rewards"]), "states": np.stack(frames["states"]),
               "attrs": {"reset_seed": seed}}
    return episode, success


def generate(task: str, path: str, num_demos: int = 200, seed: int = 0, overwrite: bool = False,
             progress: bool = True, max_attempts_per_demo: int = 5, image_size: int = 0) -> dict:
    """Writes ``num_demos`` successful scripted demonstrations of ``task`` to ``path`` (robomimic layout).
    ``image_size > 0`` also renders robomimic's two cameras (``agentview_image``, ``robot0_eye_in_hand_image``,
    ``image_size`` square, uint8) into every frame, as robomimic's image datasets hold them.
    Returns ``{path, demos, attempts, success_rate, seconds}``."""
    if task not in SCRIPTED_TASKS:
        raise ValueError(f"no scripted demonstrator for robomimic task {task!r}; scripted: {SCRIPTED_TASKS} "
                         f"(square and transport: use the real PH files)")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    if num_demos < 1:
        raise ValueError(f"the number of demonstrations must be >= 1, got {num_demos}")
    env_args = robomimic_env.default_env_args(task, image_size)
    env = robomimic_env.make_env(env_args, robomimic_env.TASKS[task].obs_keys + (
        robomimic_env.CAMERAS if image_size else ()))
    rng = np.random.default_rng(seed)
    episodes, attempts, start = [], 0, time.time()
    while len(episodes) < num_demos:
        if attempts >= max_attempts_per_demo * num_demos:
            raise ValueError(f"the scripted {task} demonstrator succeeded {len(episodes)} times in {attempts} "
                             f"attempts; stopping")
        episode, success = scripted_episode(task, env, seed * 1_000_003 + attempts, rng)
        attempts += 1
        if success:
            episodes.append(episode)
        if progress and attempts % 10 == 0:
            rate = len(episodes) / attempts
            eta = (time.time() - start) / max(len(episodes), 1) * (num_demos - len(episodes))
            print(f"\r{task}: {len(episodes)}/{num_demos} demos, success {rate:.0%}, about {eta:.0f} s left",
                  end="", flush=True)
    env.close()
    if progress:
        print()
    write_demos(path, episodes, env_args)
    return dict(path=path, demos=len(episodes), attempts=attempts, success_rate=len(episodes) / attempts,
                seconds=time.time() - start)
