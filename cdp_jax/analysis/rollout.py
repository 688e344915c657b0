"""Watch a trained grid member act: episodes in the environment its sweep evaluated it in, rendered to an animated
GIF (Pillow), with each episode's return and success.

    python -m experiments.rollout --workdir=runs/quickstart --member=3 --episodes=2

The environment is rebuilt from the workdir's recorded config exactly as the sweep's evaluation builds it (a Minari
dataset's evaluation environment; a robomimic file's ``env_args`` with the sweep's observation history and action
chunks), with an offscreen renderer. Episode ``i`` resets with seed ``eval_seed + i``, the sweep's evaluation
seeds. A frame is taken after every control step, inside a robomimic chunk too (``step_frames``), so the GIF at
its default 20 frames per second runs in real time on robosuite's 20 Hz tasks.
"""
from __future__ import annotations

import io
import os

import gymnasium as gym
import jax
import numpy as np

from cdp_jax.envs.pool import flatten_observation, register_robotics_envs
from cdp_jax.io import atomic_write_bytes
from cdp_jax.envs.robosuite_compat import is_gl_error, rendering_unavailable
from cdp_jax.envs.robomimic_env import RobomimicGymEnv
from cdp_jax.train.policy import load_policy
from cdp_jax.datasets.source import load_dataset
from cdp_jax.train.workdir import read_config


def render_env(info, camera: str = "agentview", size: int = 256) -> gym.Env:
    """The evaluation environment of ``info`` (a sweep's ``DatasetInfo``) with ``render_mode="rgb_array"``; a
    robomimic task renders ``camera`` at ``size`` x ``size``. One line, naming the fix, where rendering cannot
    start."""
    spec = info.eval_env_spec
    if spec is None:
        info.make_env()                                     # raises the one-line DatasetError
    if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"                     # no display: offscreen EGL (a GPU, or Mesa's llvmpipe)
    env = None
    try:
        if spec.entry_point == "cdp_jax.envs.robomimic_env:RobomimicGymEnv":
            env = RobomimicGymEnv(**spec.kwargs, render_mode="rgb_array", render_camera=camera, render_size=size)
        else:
            register_robotics_envs()
            env = gym.make(spec, render_mode="rgb_array")
        env.reset(seed=0)
        env.render()                                        # the renderer starts here: fail now, in one line
        return env
    except Exception as err:                                # noqa: BLE001 - backends raise many kinds
        if env is not None:
            env.close()
        if is_gl_error(err):
            raise rendering_unavailable(err) from None
        raise


def record(policy, env: gym.Env, obs_layout, episodes: int, seed: int, key: jax.Array) -> dict:
    """Runs ``episodes`` episodes of ``policy`` (a :class:`cdp_jax.train.policy.TrainedPolicy`) in ``env``, resetting
    with ``seed + i``; returns ``frames`` (a list of ``[H, W, 3]`` uint8, every episode's), ``returns`` and
    ``success`` (any step's ``info["success"]``; NaN where the environment does not report it), one per episode."""
    frames, returns, success = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        frames.append(np.asarray(env.render(), np.uint8))
        total, solved, done, t = 0.0, np.nan, False, 0
        while not done:
            action = policy.act(flatten_observation(obs, obs_layout)[None], jax.random.fold_in(key, i * 100_003 + t))
            obs, reward, terminated, truncated, info = env.step(np.asarray(action[0]))
            frames += [np.asarray(f, np.uint8) for f in getattr(env.unwrapped, "step_frames", None) or [env.render()]]
            total, done, t = total + float(reward), terminated or truncated, t + 1
            solved = np.fmax(solved, float(info.get("success", np.nan)))    # NaN while never reported
        returns.append(total)
        success.append(float(solved))
    return dict(frames=frames, returns=returns, success=success)


def write_gif(path: str, frames: list, fps: float = 20.0, size: int = 0) -> str:
    """``frames`` as an animated GIF at ``fps`` (at most 50: GIF's 10 ms clock), each scaled to ``size`` pixels
    wide when ``size`` > 0; written atomically."""
    from PIL import Image
    if not frames:
        raise ValueError("no frames to write")
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    if size:
        images = [im.resize((size, max(1, round(im.height * size / im.width)))) for im in images]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / min(float(fps), 50.0))))
    atomic_write_bytes(path, buf.getvalue())
    return path


def rollout(workdir: str, member: int, episodes: int = 1, out: str = "", fps: float = 20.0, size: int = 256,
            camera: str = "agentview", seed: int | None = None, step: int | None = None) -> dict:
    """Records member ``member`` of the sweep in ``workdir`` (its latest checkpoint, or ``step``) and writes the
    GIF (default ``WORKDIR/rollouts/member{member}_step{step}.gif``); returns :func:`record`'s episode figures,
    ``path``, ``member`` (its seed, data fraction and γ), ``step`` and the number of ``frames``."""
    policy = load_policy(workdir, member=member, step=step)
    cfg = read_config(workdir)
    _, info = load_dataset(cfg)
    key = jax.random.PRNGKey(policy.member["seed"])
    # XLA compiles before the first OpenGL context exists: Mesa's llvmpipe (EGL without a GPU) renders garbage once
    # XLA has initialised its own LLVM after it (measured: every frame after the policy's first compilation).
    policy.act(np.zeros((1, policy.meta["obs_dim"]), np.float32), jax.random.fold_in(key, 0)).block_until_ready()
    env = render_env(info, camera, size)
    try:
        got = record(policy, env, info.obs_layout, episodes, int(cfg["eval_seed"]) if seed is None else seed, key)
    finally:
        env.close()
    path = out or os.path.join(workdir, "rollouts", f"member{member}_step{policy.step}.gif")
    frames = got.pop("frames")
    write_gif(path, frames, fps, size)
    return dict(got, path=path, member=policy.member, step=policy.step, frames=len(frames))
