"""Robomimic's robosuite tasks (Lift, Can, Square, Transport), built from a dataset's own ``env_args``.

A robomimic HDF5 file records how its demonstrations were made in ``data.attrs["env_args"]`` (JSON:
``{"env_name", "type", "env_version", "env_kwargs": {robots, controller_configs, control_freq, ...}}``);
:func:`make_env` builds exactly that environment, as robomimic's ``EnvUtils.create_env_from_metadata`` does, so a
real PH file is evaluated in the configuration it was recorded with. :func:`default_env_args` writes the same
layout for the demonstrations generated here (Panda, OSC_POSE, 20 Hz, the task's horizon).

Observations are robomimic's low-dim keys, concatenated in the order given: ``object`` (robosuite's
``object-state``), ``robot0_eef_pos`` (3), ``robot0_eef_quat`` (4, xyzw), ``robot0_gripper_qpos`` (2), and the same
for ``robot1`` on Transport: 19 / 23 / 23 / 59 numbers for Lift / Can / Square / Transport. Actions: OSC_POSE
deltas in [-1, 1]^7 per arm (position x 0.05 m, rotation x 0.5 rad, gripper -1 open / +1 close).
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import json

import gymnasium as gym
import numpy as np

from cdp_jax.envs.robosuite_compat import is_gl_error, patch, rendering_unavailable


@dataclasses.dataclass(frozen=True)
class Task:
    env_name: str              # robosuite environment class
    horizon: int               # the official max episode steps
    robots: tuple
    obs_keys: tuple            # robomimic low-dim keys, in the order they are concatenated


_ARM = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
TASKS = {
    "lift": Task("Lift", 400, ("Panda",), ("object",) + _ARM),
    "can": Task("PickPlaceCan", 400, ("Panda",), ("object",) + _ARM),
    "square": Task("NutAssemblySquare", 500, ("Panda",), ("object",) + _ARM),
    "transport": Task("TwoArmTransport", 700, ("Panda", "Panda"),
                      ("object",) + _ARM + tuple(k.replace("robot0", "robot1") for k in _ARM)),
}
ROBOSUITE_KEY = {"object": "object-state"}       # robomimic's name -> robosuite's observation key
IMAGE_KEY_SUFFIX = "_image"
CAMERAS = ("agentview_image", "robot0_eye_in_hand_image")      # robomimic's image datasets (Lift, Can, Square)


def task_of(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown robomimic task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def default_env_args(task: str, image_size: int = 0) -> dict:
    """robomimic's ``env_args`` for a task as the PH datasets record it: Panda arm(s), OSC_POSE, 20 Hz, sparse
    reward; low-dim observations without rendering, or with ``image_size > 0`` robomimic's two cameras
    (:data:`CAMERAS`) rendered offscreen at that square size, as its image datasets record them."""
    t = task_of(task)
    suite = patch()
    from robosuite.controllers import load_composite_controller_config
    controller = load_composite_controller_config(controller="BASIC", robot=t.robots[0])
    kwargs = dict(has_renderer=False, has_offscreen_renderer=False, ignore_done=True, use_object_obs=True,
                  use_camera_obs=False, control_freq=20, controller_configs=controller, robots=list(t.robots),
                  reward_shaping=False, camera_depths=False, camera_heights=image_size or 84,
                  camera_widths=image_size or 84)
    if image_size:
        kwargs.update(has_offscreen_renderer=True, use_camera_obs=True,
                      camera_names=[k[:-len(IMAGE_KEY_SUFFIX)] for k in CAMERAS])
    if t.env_name == "TwoArmTransport":
        kwargs["env_configuration"] = "opposed"
    return {"env_name": t.env_name, "type": 1, "env_version": suite.__version__, "env_kwargs": kwargs}


def task_from_env_name(env_name: str) -> str:
    for name, t in TASKS.items():
        if t.env_name == env_name:
            return name
    raise ValueError(f"environment {env_name!r} is none of the robomimic tasks {[t.env_name for t in TASKS.values()]}")


def check_environments(cameras: bool) -> None:
    """Imports robosuite and, with ``cameras``, starts (and frees) one offscreen OpenGL context of the
    ``MUJOCO_GL`` backend, so that a sweep fails before training, in one line, where evaluation could not run."""
    patch()
    if not cameras:
        return
    import mujoco
    try:
        mujoco.GLContext(16, 16).free()
    except Exception as err:                                # noqa: BLE001 - any backend failure
        raise rendering_unavailable(err) from None


def image_keys(obs_keys) -> tuple:
    """The camera keys among robomimic observation keys (``agentview_image``, ``robot0_eye_in_hand_image``)."""
    return tuple(k for k in obs_keys if k.endswith(IMAGE_KEY_SUFFIX))


class RobomimicEnv:
    """One robosuite environment with robomimic's flat observation.

    ``reset(seed) -> obs [obs_dim]``; ``step(action [act_dim]) -> (obs, reward, success)``: robomimic's success is
    the task's ``_check_success()``; an episode is scored by ``success`` at any step and the sum of rewards.
    The flat observation holds the low-dim keys first, in the order given, then each camera's frame
    (``[H, W, 3]`` as 0..255 floats, upright as robomimic stores it: robosuite renders upside down) in the order
    given: :class:`cdp_jax.nn.image_encoder.ImageLayout`'s per-frame order. Camera size: ``camera_heights`` /
    ``camera_widths`` of ``env_args``. ``raw`` holds robosuite's last observation dict (object poses for scripted
    controllers)."""

    def __init__(self, env_args: dict, obs_keys: tuple | None = None, offscreen: bool = False):
        suite = patch()
        self.env_args = copy.deepcopy(env_args)
        kwargs = dict(self.env_args["env_kwargs"])
        name = self.env_args["env_name"]
        self.task = task_from_env_name(name)
        keys = tuple(obs_keys or TASKS[self.task].obs_keys)
        self.cameras = image_keys(keys)
        self.obs_keys = tuple(k for k in keys if k not in self.cameras) + self.cameras
        from robosuite.controllers.composite.composite_controller_factory import refactor_composite_controller_config
        robots = kwargs["robots"] if isinstance(kwargs["robots"], (list, tuple)) else [kwargs["robots"]]
        kwargs["controller_configs"] = refactor_composite_controller_config(kwargs["controller_configs"], robots[0],
                                                                            ["right"])
        render = bool(self.cameras)
        kwargs.update(has_renderer=False, has_offscreen_renderer=render or offscreen, use_camera_obs=render)
        if render:
            kwargs.update(camera_names=[k[:-len(IMAGE_KEY_SUFFIX)] for k in self.cameras], camera_depths=False)
        try:
            self.env = suite.make(name, **kwargs)
        except Exception as err:                            # noqa: BLE001 - robosuite/mujoco raise many kinds
            if not (render or offscreen) or not is_gl_error(err):
                raise
            raise rendering_unavailable(err) from None
        self.horizon = TASKS[self.task].horizon
        self.act_dim = int(self.env.action_spec[0].shape[0])

    def _value(self, obs: dict, key: str) -> np.ndarray:
        if key in self.cameras:
            return np.asarray(obs[key][::-1], np.uint8)       # robosuite renders upside down; robomimic flips
        return np.asarray(obs[ROBOSUITE_KEY.get(key, key)], np.float32)

    def _flat(self, obs: dict) -> np.ndarray:
        missing = [k for k in self.obs_keys if ROBOSUITE_KEY.get(k, k) not in obs]
        if missing:
            raise ValueError(f"the environment has no observation {missing}; it has {sorted(obs)}")
        return np.concatenate([self._value(obs, k).astype(np.float32).reshape(-1) for k in self.obs_keys])

    def reset(self, seed: int | None = None) -> np.ndarray:
        """A new episode; with ``seed`` the object placement and the arm's initial joint noise are reproducible."""
        if seed is not None:
            rng = np.random.default_rng(seed)
            self.env.rng = rng                       # robot joint noise at reset
            samplers = [getattr(self.env, "placement_initializer", None)]
            while samplers:                          # object placement (composite samplers hold children)
                sampler = samplers.pop()
                if sampler is not None:
                    sampler.rng = rng
                    samplers += list(getattr(sampler, "samplers", {}).values())
        self.raw = self.env.reset()
        return self._flat(self.raw)

    def step(self, action) -> tuple[np.ndarray, float, bool]:
        self.raw, reward, _, _ = self.env.step(np.asarray(action, np.float64))
        return self._flat(self.raw), float(reward), bool(self.env._check_success())

    def render(self, camera: str = "agentview", size: int = 256) -> np.ndarray:
        """The scene from ``camera``, ``[size, size, 3]`` uint8, upright (needs ``offscreen=True``)."""
        return np.asarray(self.env.sim.render(height=size, width=size, camera_name=camera)[::-1], np.uint8)

    def robomimic_obs(self) -> dict:
        """The current observation under robomimic's key names (what a robomimic file stores per frame: float32
        low-dim values, uint8 ``[H, W, 3]`` camera frames)."""
        return {k: self._value(self.raw, k) for k in self.obs_keys}

    def close(self) -> None:
        self.env.close()


class RobomimicGymEnv(gym.Env):
    """A robomimic task as the evaluation loop steps it (gymnasium API, flat Box spaces).

    Observation: the last ``obs_steps`` frames, oldest first, ``[obs_steps * obs_dim]`` (the first frame repeated
    after a reset, as Diffusion Policy pads); with cameras, the low-dim history first, then the pixel history. Action: a chunk ``[horizon * act_dim]`` of which the first
    ``action_steps`` actions are executed, one environment step each; the reward is their sum. As the paper
    scores robomimic (success: any reward > 0; average reward: the sum over the episode), an episode always runs
    the task's full horizon in environment steps (or ``max_steps``, a shorter check; then it is truncated); ``info["success"]`` is 1.0 on every step
    where the task is solved."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_args: str, obs_keys: tuple | None = None, obs_steps: int = 1, horizon: int = 1,
                 action_steps: int = 1, max_steps: int = 0, render_mode: str | None = None,
                 render_camera: str = "agentview", render_size: int = 256):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode, self.render_camera, self.render_size = render_mode, render_camera, int(render_size)
        self.inner = make_env(env_args, obs_keys, offscreen=render_mode is not None)
        self.obs_steps, self.horizon, self.action_steps = int(obs_steps), int(horizon), int(action_steps)
        self.max_steps = int(max_steps) or self.inner.horizon
        obs_dim = len(self.inner.reset(seed=0))
        self.low_dim = obs_dim - sum(self.inner.raw[k].size for k in self.inner.cameras)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_steps * obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.horizon * self.inner.act_dim,), np.float32)

    def _observation(self) -> np.ndarray:
        """The history as :class:`cdp_jax.nn.image_encoder.ImageLayout` orders it: every frame's low-dim part, then
        every frame's pixels (for low-dim keys alone: the frames one after the other)."""
        n = self.low_dim
        return np.concatenate([f[:n] for f in self.history] + [f[n:] for f in self.history]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        first = self.inner.reset(seed)
        self.history = collections.deque([first] * self.obs_steps, maxlen=self.obs_steps)
        self.steps = 0
        return self._observation(), {}

    def step(self, action):
        chunk = np.asarray(action, np.float64).reshape(self.horizon, self.inner.act_dim)[:self.action_steps]
        total, solved = 0.0, False
        self.step_frames = []                   # with render_mode: every executed control step's view
        for a in chunk:
            obs, reward, success = self.inner.step(np.clip(a, -1.0, 1.0))
            if self.render_mode is not None:
                self.step_frames.append(self.render())
            self.history.append(obs)
            total, solved = total + reward, solved or success
            self.steps += 1
            if self.steps >= self.max_steps:
                break
        return self._observation(), total, False, self.steps >= self.max_steps, {"success": float(solved)}

    def render(self) -> np.ndarray:
        """``render_camera``'s view now, ``[render_size, render_size, 3]`` uint8 (``render_mode="rgb_array"``);
        ``step_frames`` holds one such view per control step of the last :meth:`step` (a chunk runs several)."""
        return self.inner.render(self.render_camera, self.render_size)

    def close(self):
        self.inner.close()


def gym_spec(env_args: dict, obs_keys: tuple, obs_steps: int = 1, horizon: int = 1,
             action_steps: int = 1, max_steps: int = 0) -> gym.envs.registration.EnvSpec:
    """The evaluation environment as a gymnasium ``EnvSpec`` (what :class:`cdp_jax.envs.pool.EnvPool` builds, in
    this process or in workers); ``max_steps`` > 0 cuts episodes shorter than the task's horizon."""
    return gym.envs.registration.EnvSpec(
        id="cdp_jax/Robomimic-v0", entry_point="cdp_jax.envs.robomimic_env:RobomimicGymEnv", disable_env_checker=True,
        kwargs=dict(env_args=json.dumps(env_args), obs_keys=tuple(obs_keys), obs_steps=obs_steps, horizon=horizon,
                    action_steps=action_steps, max_steps=max_steps))


def make_env(env_args: dict | str, obs_keys: tuple | None = None, offscreen: bool = False) -> RobomimicEnv:
    """The environment a robomimic file records (``env_args`` as a dict or its JSON text); ``offscreen`` adds an
    offscreen renderer for :meth:`RobomimicEnv.render` (camera observations have one anyway)."""
    if isinstance(env_args, str):
        env_args = json.loads(env_args)
    return RobomimicEnv(env_args, obs_keys, offscreen)

