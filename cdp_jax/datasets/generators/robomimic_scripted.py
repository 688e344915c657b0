"""Scripted, human-like demonstrations of robomimic's Lift, Can and Square, written in robomimic's HDF5 layout.

    python -m cdp_jax.datasets generate robomimic-lift [--steps=200] [--seed=0]   (--steps: successful demos)

A proportional controller on OSC_POSE deltas runs through waypoints: above the object, down to it, close, lift
(Lift); for Can also over the can's target bin, down, open, and back up; for Square the gripper also turns (the
yaw part of the rotation delta) to the nut's handle, grasps it, carries the nut until its centre (observed) is
over the square peg while turning it square to the peg, lowers it and lets go. Each episode draws its own gain,
approach height, grasp time and action-noise level (and a small constant drift), so that demonstrations vary the
way human ones do; only successful episodes are kept, as in robomimic's PH data (an episode ends at its first
successful step). Transport is two-armed: it uses the real files (docs/robomimic.md).
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from cdp_jax.envs import robomimic_env
from cdp_jax.datasets.robomimic_hdf5 import write_demos
from cdp_jax.datasets.generators.progress import DemoProgress
from cdp_jax.io import stopping

SCRIPTED_TASKS = ("lift", "can", "square")
POS_SCALE = 0.05                      # OSC_POSE: one unit of action moves the end effector 5 cm
ROT_SCALE = 0.5                       # and one unit of rotation turns it 0.5 rad
SQUARE_HANDLE = 0.054                 # the square nut's handle site, along the nut's x axis from its centre (m)
YAW_TOLERANCE = 0.05                  # rad: a turning waypoint is reached when the yaw is this close too


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


def yaw(quat_xyzw: np.ndarray) -> float:
    """The heading (rad) of a body's x axis in the world's xy plane, from its quaternion (robosuite's x, y, z, w)."""
    x, y, z, w = quat_xyzw
    return float(np.arctan2(2 * (x * y + z * w), 1 - 2 * (y * y + z * z)))


def wrap(angle: float, period: float) -> float:
    """``angle`` shifted by a multiple of ``period`` into ``[-period / 2, period / 2)``."""
    return (angle + period / 2) % period - period / 2


def _square_waypoints(env, style: Style) -> list[tuple]:
    """Square: grasp the nut by its handle, carry its centre over the square peg (turned square to it), lower, open.
    Targets that follow the nut are computed from the current observation at every step."""
    peg = env.env.sim.data.body_xpos[env.env.sim.model.body_name2id("peg1")].copy()
    nut = lambda: env.raw["SquareNut_pos"]
    nut_yaw = lambda: yaw(env.raw["SquareNut_quat"])
    handle = lambda: nut() + SQUARE_HANDLE * np.array([np.cos(nut_yaw()), np.sin(nut_yaw()), 0.0])
    eef = lambda: env.raw["robot0_eef_pos"]
    squared = lambda: yaw(env.raw["robot0_eef_quat"]) + wrap(-nut_yaw(), np.pi / 2)     # the nut square to the peg
    nut_over_peg = lambda: eef()[:2] + peg[:2] - nut()[:2]          # where the gripper puts the nut's centre on the peg
    carry = lambda: np.r_[nut_over_peg(), 1.05]
    lower = lambda: np.r_[nut_over_peg(), 0.90 + (eef()[2] - nut()[2])]  # the nut's centre 4 cm above the table
    return [(lambda: handle() + [0.0, 0.0, style.approach], -1.0, 100, 0.01, nut_yaw), (handle, -1.0, 60, 0.006, None),
            (handle, 1.0, style.close_steps, None, None), (lambda: np.r_[handle()[:2], 1.05], 1.0, 40, 0.01, None),
            (carry, 1.0, 200, 0.005, squared), (lower, 1.0, 80, 0.005, squared), (eef, -1.0, 15, None, None)]


def _waypoints(task: str, env, style: Style) -> list[tuple]:
    """``[(target position [3] callable, gripper, steps at most, tolerance, target yaw callable or None)]`` for the
    current episode."""
    raw = env.raw
    if task == "square":
        return _square_waypoints(env, style)
    if task == "lift":
        obj = lambda: env.raw["cube_pos"]
    else:
        obj = lambda: env.raw["Can_pos"]
    up = lambda h: (lambda: obj() + np.array([0.0, 0.0, h]))
    plan = [(up(style.approach), -1.0, 120, 0.01), (up(0.0), -1.0, 60, 0.008), (up(0.0), 1.0, style.close_steps, None)]
    if task == "lift":
        start = np.array(raw["cube_pos"])
        plan += [(lambda: start + np.array([0.0, 0.0, 0.15]), 1.0, 120, None)]
    else:
        inner = env.env
        target = np.array(inner.target_bin_placements[inner.object_to_id["can"]])
        above_bin = target + np.array([0.0, 0.0, 0.18])
        plan += [(up(0.15), 1.0, 80, 0.02), (lambda: above_bin, 1.0, 150, 0.02),
                 (lambda: above_bin - np.array([0.0, 0.0, 0.06]), 1.0, 60, 0.015),
                 (lambda: above_bin - np.array([0.0, 0.0, 0.06]), -1.0, 10, None),
                 (lambda: above_bin + np.array([0.0, 0.0, 0.05]), -1.0, 60, None)]
    return [w + (None,) for w in plan]


def scripted_episode(task: str, env, seed: int, rng: np.random.Generator) -> tuple[dict, bool]:
    """One episode of the scripted demonstrator from reset seed ``seed``: ``(episode dict, success)``."""
    style = Style.draw(rng)
    env.reset(seed)
    frames = {"obs": {k: [] for k in env.obs_keys}, "actions": [], "rewards": [], "states": []}
    success, steps = False, 0
    for target, grip, max_steps, tol, target_yaw in _waypoints(task, env, style):
        for _ in range(max_steps):
            stopping.check()                  # the episode is redone on the rerun, from the same state
            if steps >= env.horizon:
                break
            eef = env.raw["robot0_eef_pos"]
            delta = target() - eef
            action = np.zeros(env.act_dim)
            action[:3] = np.clip(style.gain * delta / POS_SCALE + style.drift, -1, 1)
            turn = 0.0 if target_yaw is None else wrap(target_yaw() - yaw(env.raw["robot0_eef_quat"]), np.pi)
            action[5] = np.clip(turn / ROT_SCALE, -1, 1)        # a parallel gripper: yaw modulo a half turn
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
            if success or (tol is not None and np.linalg.norm(delta) < tol and abs(turn) < YAW_TOLERANCE):
                break
        if success or steps >= env.horizon:
            break
    episode = {"obs": {k: np.stack(v) for k, v in frames["obs"].items()}, "actions": np.stack(frames["actions"]),
               "rewards": np.asarray(frames["rewards"]), "states": np.stack(frames["states"]),
               "attrs": {"reset_seed": seed}}
    return episode, success


def generate(task: str, path: str, num_demos: int = 200, seed: int = 0, overwrite: bool = False,
             progress: bool = True, max_attempts_per_demo: int = 5, image_size: int = 0) -> dict:
    """Writes ``num_demos`` successful scripted demonstrations of ``task`` to ``path`` (robomimic layout); the demos
    are kept in ``path.partial/`` as they are made, and a stopped generation continues from them (same result).
    ``image_size > 0`` also renders robomimic's two cameras (``agentview_image``, ``robot0_eye_in_hand_image``,
    ``image_size`` square, uint8) into every frame, as robomimic's image datasets hold them.
    Returns ``{path, demos, attempts, success_rate, seconds}``."""
    if task not in SCRIPTED_TASKS:
        raise ValueError(f"no scripted demonstrator for robomimic task {task!r}; scripted: {SCRIPTED_TASKS} "
                         f"(transport: use the real PH file)")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    if num_demos < 1:
        raise ValueError(f"the number of demonstrations must be >= 1, got {num_demos}")
    env_args = robomimic_env.default_env_args(task, image_size)
    env = robomimic_env.make_env(env_args, robomimic_env.TASKS[task].obs_keys + (
        robomimic_env.CAMERAS if image_size else ()))
    rng = np.random.default_rng(seed)
    made = DemoProgress(path + ".partial", dict(task=task, seed=seed, image_size=image_size), overwrite)
    episodes, attempts, rng_state = made.load()
    if rng_state is not None:
        rng.bit_generator.state = rng_state
    start, resumed = time.time(), len(episodes)
    while len(episodes) < num_demos:
        if attempts >= max_attempts_per_demo * num_demos:
            raise ValueError(f"the scripted {task} demonstrator succeeded {len(episodes)} times in {attempts} "
                             f"attempts; stopping")
        episode, success = scripted_episode(task, env, seed * 1_000_003 + attempts, rng)
        attempts += 1
        if success:
            episodes.append(episode)
            made.add(len(episodes) - 1, episode, attempts, rng.bit_generator.state)
        if progress and attempts % 10 == 0:
            rate = len(episodes) / attempts
            eta = (time.time() - start) / max(len(episodes) - resumed, 1) * (num_demos - len(episodes))
            print(f"\r{task}: {len(episodes)}/{num_demos} demos, success {rate:.0%}, about {eta:.0f} s left",
                  end="", flush=True)
    env.close()
    if progress:
        print()
    write_demos(path, episodes[:num_demos], env_args)
    made.finish()
    return dict(path=path, demos=min(len(episodes), num_demos), attempts=attempts,
                success_rate=len(episodes) / attempts, seconds=time.time() - start)
