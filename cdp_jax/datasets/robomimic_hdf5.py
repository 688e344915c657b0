"""robomimic's HDF5 demonstrations: read (real PH files or the ones generated here), write, and cut into windows.

Layout (robomimic v0.3+)::

    data                      attrs: env_args (JSON), total (frames)
      demo_N                  attrs: num_samples
        obs/<key>             [n, ...]   low-dim keys: object, robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos
        actions [n, act_dim], rewards [n], dones [n], states [n, state_dim]

Windows follow Diffusion Policy's ``SequenceSampler``: a window is ``horizon`` consecutive frames of one episode,
starting up to ``obs_steps - 1`` frames before its first frame and ending up to ``action_steps - 1`` frames after
its last, padded by repeating the edge frame. The policy sees the window's first ``obs_steps`` observations and
predicts its ``horizon`` actions; the ``action_steps`` from the last observed frame on are executed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np

from cdp_jax.io import atomic_write_bytes
from cdp_jax.datasets.loading import datasets_root
from cdp_jax.envs import robomimic_env
from cdp_jax.datasets import d4rl, robomimic_releases
from cdp_jax.datasets.loading import DatasetInfo, Transitions
from cdp_jax.datasets.windows import check_window, clamped


@dataclasses.dataclass(frozen=True)
class Demos:
    """Frames of all demonstrations, concatenated in demo order.

    ``observations [N, obs_dim]`` (the low-dim ``obs_keys`` concatenated), ``actions [N, act_dim]``,
    ``rewards [N]``, ``episode_starts [E]`` and ``episode_lengths [E]``; ``env_args`` as recorded in the file.
    With camera keys among ``obs_keys`` (``*_image``): ``frames [N, cameras, H, W, 3]`` uint8 and ``cameras``."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_starts: np.ndarray
    episode_lengths: np.ndarray
    obs_keys: tuple
    env_args: dict
    path: str = ""
    frames: np.ndarray | None = None
    cameras: tuple = ()

    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts)


def resolve_path(path: str) -> str:
    """An absolute path, or one relative to the datasets folder (``$MINARI_DATASETS_PATH``), where
    ``python -m cdp_jax.datasets generate robomimic-TASK`` writes ``robomimic/TASK/scripted/low_dim.hdf5``."""
    return path if os.path.isabs(path) or os.path.exists(path) else os.path.join(datasets_root(), path)


def _demo_names(group) -> list[str]:
    names = [n for n in group.keys() if re.fullmatch(r"demo_\d+", n)]
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def read_demos(path: str, obs_keys: tuple | None = None, image_size: tuple | None = None,
               demo_filter: str = "") -> Demos:
    """Reads a robomimic HDF5 file; ``obs_keys`` default to the task's low-dim keys, camera keys (``*_image``)
    among them are read as uint8 frames. ``demo_filter`` names one of the file's ``mask/<key>`` demo lists
    (robomimic's ``hdf5_filter_key``: ``train``, ``valid``, ``20_percent``, ...) to read those demos only; "" reads
    all. Refuses, in one line, a missing or non-HDF5 file, a file without ``data``/``env_args``, an unknown filter
    (listing the file's), observation keys the file lacks (listing the ones it has), and camera frames that are
    not ``[n, H, W, 3]`` uint8 of one size (of ``image_size = (H, W)`` when given)."""
    if not os.path.isfile(resolve_path(path)):
        release = robomimic_releases.released(path)
        raise ValueError(f"robomimic file {resolve_path(path)!r} does not exist; " + (
            f"download it with `{robomimic_releases.command(*release)}` (needs a network) or copy it there"
            if release else "generate one with `python -m cdp_jax.datasets generate robomimic-lift` or download "
                            "robomimic's with `python -m cdp_jax.datasets download robomimic-lift`"))
    path = resolve_path(path)
    with _open_hdf5(path) as f:
        env_args, names = _layout(f, path)
        if demo_filter:
            names = _filtered(f, path, names, demo_filter)
        task = robomimic_env.task_from_env_name(env_args["env_name"])
        keys = tuple(obs_keys or robomimic_env.TASKS[task].obs_keys)
        have = sorted(f["data"][names[0]]["obs"].keys())
        images = [k for k in keys if k.endswith(robomimic_env.IMAGE_KEY_SUFFIX)]
        if images and not any(k.endswith(robomimic_env.IMAGE_KEY_SUFFIX) for k in have):
            raise ValueError(f"image keys {images} were asked of a low-dim file; {path!r} has only {have}")
        missing = [k for k in keys if k not in have]
        if missing:
            raise ValueError(f"{path!r} has no observation key(s) {missing}; it has {have}")
        cameras = tuple(k for k in keys if k.endswith(robomimic_env.IMAGE_KEY_SUFFIX))
        low = tuple(k for k in keys if k not in cameras)
        lengths = np.asarray([len(f["data"][name]["actions"]) for name in names], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        frames = None
        if cameras:         # one array filled in place: loading holds the pixels once, not per demo and again whole
            first = f["data"][names[0]]["obs"][cameras[0]]
            image_size = tuple(image_size or first.shape[1:3])
            frames = np.empty((int(lengths.sum()), len(cameras), *image_size, 3), np.uint8)
        obs, act, rew = [], [], []
        for name, start, n in zip(names, starts, lengths):
            demo = f["data"][name]
            obs.append(np.concatenate([np.asarray(demo["obs"][k], np.float32).reshape(n, -1) for k in low]
                                      + [np.zeros((n, 0), np.float32)], axis=1))
            for c, key in enumerate(cameras):
                frames[start:start + n, c] = _camera(demo, key, n, image_size, path)
            act.append(np.asarray(demo["actions"], np.float32))
            rew.append(np.asarray(demo["rewards"], np.float32))
    return Demos(np.concatenate(obs), np.concatenate(act), np.concatenate(rew), starts, lengths, low + cameras,
                 env_args, path, frames, cameras)


def _open_hdf5(path: str):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path!r} is not a readable HDF5 file ({err}); download or generate it again") from None


def _layout(f, path: str) -> tuple[dict, list[str]]:
    """``(env_args, demo group names in order)`` of an open robomimic file; refuses another layout in one line."""
    if "data" not in f or "env_args" not in f["data"].attrs:
        raise ValueError(f"{path!r} is not in robomimic's layout (no data group with env_args)")
    try:
        env_args = json.loads(f["data"].attrs["env_args"])
    except (TypeError, ValueError):
        raise ValueError(f"{path!r}: data.attrs['env_args'] is not JSON; the file is damaged") from None
    names = _demo_names(f["data"])
    if not names:
        raise ValueError(f"{path!r} holds no demo_N group under data")
    return env_args, names


def _filtered(f, path: str, names: list[str], demo_filter: str) -> list[str]:
    """The demos that ``mask/<demo_filter>`` lists, in demo order (as robomimic sorts them)."""
    masks = sorted(f["mask"].keys()) if "mask" in f else []
    if demo_filter not in masks:
        raise ValueError(f"{path!r} has no demo filter {demo_filter!r} (mask/{demo_filter}); it has "
                         f"{masks or 'none'}: use one of those, or '' for every demo")
    listed = [n.decode() if isinstance(n, bytes) else str(n) for n in f["mask"][demo_filter][()]]
    unknown = sorted(set(listed) - set(names))
    if unknown or not listed:
        raise ValueError(f"{path!r}: mask/{demo_filter} lists " + (f"demos the file lacks ({unknown[:5]})" if unknown
                                                                  else "no demos") + "; the file is damaged")
    return sorted(set(listed), key=lambda n: int(n.split("_")[1]))


def check_file(path: str) -> tuple[dict, int]:
    """``(env_args, number of demonstrations)`` of a robomimic HDF5 file, read from its metadata alone (fast on a
    multi-gigabyte image file); refuses, in one line, a file that is not HDF5 or not in robomimic's layout."""
    with _open_hdf5(path) as f:
        env_args, names = _layout(f, path)
    return env_args, len(names)


def _camera(demo, key: str, n: int, size, path: str) -> np.ndarray:
    """One camera's frames ``[n, H, W, 3]`` uint8, checked against ``size = (H, W)`` when given."""
    data = demo["obs"][key]
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[0] != n or data.shape[-1] != 3:
        raise ValueError(f"{path!r}: {demo.name}/obs/{key} is {data.dtype} {data.shape}; camera frames must be "
                         f"uint8 [{n}, H, W, 3]")
    if size is not None and tuple(data.shape[1:3]) != tuple(size):
        raise ValueError(f"{path!r}: {demo.name}/obs/{key} has {data.shape[1]}x{data.shape[2]} frames, expected "
                         f"{size[0]}x{size[1]} (every camera and demo must have one size; set the config's image "
                         f"size to the file's)")
    return np.asarray(data)


def write_demos(path: str, episodes: list[dict], env_args: dict) -> str:
    """Writes ``episodes`` (each ``{"obs": {key: [n, ...]}, "actions": [n, act_dim], "rewards": [n],
    "states": [n, state_dim]}``, optionally ``"attrs"`` for the demo group) in robomimic's layout, atomically (a
    crash leaves no partial file)."""
    import io

    import h5py
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(env_args)
        data.attrs["total"] = int(sum(len(e["actions"]) for e in episodes))
        for i, ep in enumerate(episodes):
            demo = data.create_group(f"demo_{i}")
            n = len(ep["actions"])
            demo.attrs["num_samples"] = n
            demo.attrs.update(ep.get("attrs", {}))
            for key, value in ep["obs"].items():
                demo.create_dataset(f"obs/{key}", data=np.asarray(value))
            demo.create_dataset("actions", data=np.asarray(ep["actions"], np.float64))
            demo.create_dataset("rewards", data=np.asarray(ep["rewards"], np.float64))
            demo.create_dataset("dones", data=np.arange(n) == n - 1)
            demo.create_dataset("states", data=np.asarray(ep["states"], np.float64))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def is_robomimic(dataset_id: str) -> bool:
    """Dataset ids ending in ``.hdf5`` name robomimic files (absolute, or relative to the datasets folder), but for
    files in D4RL's layout (:mod:`cdp_jax.datasets.d4rl`)."""
    return str(dataset_id).endswith(".hdf5") and not d4rl.is_d4rl(dataset_id)


def load_transitions(path: str, obs_steps: int = 1, horizon: int = 1, action_steps: int = 1,
                     obs_keys: tuple | None = None, image_size: tuple | None = None, eval_max_steps: int = 0,
                     demo_filter: str = ""):
    """A robomimic file as ``(Transitions on device, DatasetInfo)`` for the sweep: one row per frame, its
    observation the last ``obs_steps`` frames (``[obs_steps * obs_dim]``, the episode's first frame repeated before
    it) and its action the chunk of ``horizon`` actions from that frame on (``[horizon * act_dim]``, the last action
    repeated after the episode). Windows thus start at the current frame (Diffusion Policy's start ``obs_steps - 1``
    frames earlier and predicts the past actions too). Evaluation runs :class:`cdp_jax.envs.robomimic_env.RobomimicGymEnv`
    with the file's ``env_args``, executing ``action_steps`` actions per chunk, for the task's horizon (or
    ``eval_max_steps`` > 0 environment steps). ``demo_filter``: only the demos of one of the file's masks
    (:func:`read_demos`).

    With camera keys in ``obs_keys``, every frame is stored once, as uint8 on the device (``Transitions.frames``),
    and each row holds its low-dim history and the indices of its history's frames; batches carry the flat image
    observation (:meth:`Transitions.rows`). ``DatasetInfo.image_layout`` then describes that layout, and the
    observation statistics cover its low-dim history only."""
    import gymnasium as gym
    import jax.numpy as jnp

    check_window(horizon, obs_steps, action_steps)
    demos = read_demos(path, obs_keys, image_size, demo_filter)
    starts, lengths = demos.episode_starts, demos.episode_lengths
    n, obs_dim = demos.observations.shape
    act_dim = demos.actions.shape[1]
    history = clamped(starts, lengths, np.arange(-(obs_steps - 1), 1))
    following = clamped(starts, lengths, np.arange(-(obs_steps - 1), 1) + 1)
    chunk = clamped(starts, lengths, np.arange(horizon))
    stats = demos.observations[history].reshape(n, obs_steps * obs_dim)     # the low-dim history of each row
    following_low = demos.observations[following].reshape(n, obs_steps * obs_dim)
    observations, next_observations = stats, following_low
    image_layout, frames, full_dim = None, None, stats.shape[1]
    if demos.frames is not None:                  # rows end with their history's frame indices (Transitions.rows)
        _, cams, height, width, _ = demos.frames.shape
        image_layout = dict(obs_steps=obs_steps, low_dim=obs_dim, cameras=demos.cameras, height=height, width=width)
        observations = np.concatenate([stats, history.astype(np.float32)], axis=1)
        next_observations = np.concatenate([following_low, following.astype(np.float32)], axis=1)
        frames = jnp.asarray(demos.frames.reshape(n, -1))
        full_dim += obs_steps * cams * height * width * 3
    ends = np.zeros(n, np.float32)
    ends[starts + lengths - 1] = 1.0
    data = Transitions(observations=jnp.asarray(observations),
                       actions=jnp.asarray(demos.actions[chunk].reshape(n, -1)), rewards=jnp.asarray(demos.rewards),
                       next_observations=jnp.asarray(next_observations), terminals=jnp.asarray(ends),
                       truncations=jnp.zeros(n, jnp.float32), episode_ends=jnp.asarray(ends), frames=frames,
                       frame_steps=obs_steps if frames is not None else 0)
    spec = robomimic_env.gym_spec(demos.env_args, demos.obs_keys, obs_steps, horizon, action_steps, eval_max_steps)
    space = gym.spaces.Box(-1.0, 1.0, (horizon * act_dim,), np.float32)
    info = DatasetInfo(
        dataset_id=path, obs_dim=full_dim, act_dim=horizon * act_dim, obs_layout=(("observation", full_dim),),
        action_low=space.low, action_high=space.high, total_steps=n, total_episodes=len(starts),
        episode_starts=np.asarray(starts, np.int64), obs_mean=stats.mean(0), obs_std=stats.std(0) + 1e-3,
        ref_min_score=None, ref_max_score=None, has_rewards=bool(np.any(demos.rewards != 0)), reward_tune="none",
        eval_env_spec=spec, action_space=space, obs_min=stats.min(0), obs_max=stats.max(0),
        image_layout=image_layout)
    return data, info
