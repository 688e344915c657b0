"""D4RL's own HDF5 files, read as they are: the data of the paper's Table 1 MuJoCo rows.

A ``dataset_id`` names one by D4RL's name, ``d4rl/hopper-medium-replay-v2`` (looked up under D4RL's own file name in
``$D4RL_DATASET_DIR``, default ``~/.d4rl/datasets``, and downloaded there on first use from D4RL's published location,
or from ``$D4RL_MIRROR``, a base URL that serves the same file names), or by the path of an ``.hdf5`` file in D4RL's
layout: ``observations, actions, rewards, terminals, timeouts``, optional ``next_observations`` and ``infos/qpos``,
``infos/qvel``, compressed (gzip) or not.

Transitions follow D4RL's ``qlearning_dataset`` (``d4rl/__init__.py``), which CORL, IQL and the official CDP code
read: a terminal ends an episode with done = 1; a timeout ends it without one, and the timeout row is dropped, since
its next observation (the following row) belongs to the next episode. Where the file has ``next_observations`` (the
v2 files do), every row keeps its own next observation, and an episode also ends wherever ``next_observations[i]``
differs from ``observations[i + 1]``: some files' timeouts do not line up with the real episode ends (rows cut from a
replay buffer), and a bootstrap across such a cut would join two episodes.
"""
from __future__ import annotations

import os
import re

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from cdp_jax.datasets.loading import DatasetError, DatasetInfo, Transitions, default_reward_tune, tune_rewards
from cdp_jax.io.download import download_file

PREFIX = "d4rl/"
LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert", "full-replay")
# D4RL's reference returns for the normalised score (d4rl/infos.py, REF_MIN_SCORE / REF_MAX_SCORE; v2 uses v0's).
REF_SCORES = {"hopper": (-20.272305, 3234.3), "halfcheetah": (-280.178953, 12135.0), "walker2d": (1.629008, 4592.3)}
# D4RL v2 was recorded in gym's mujoco-py Hopper-v3 (and kin); gymnasium's v4 runs the same model and the same
# reward on the mujoco bindings (v5 changed defaults), so it is the evaluation environment: replay_error() checks it.
EVAL_ENVS = {"hopper": "Hopper-v4", "halfcheetah": "HalfCheetah-v4", "walker2d": "Walker2d-v4"}
URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/"
MIRROR, DIRECTORY = "D4RL_MIRROR", "D4RL_DATASET_DIR"
REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")
NAMES = tuple(f"{PREFIX}{env}-{level}-v2" for env in REF_SCORES for level in LEVELS)


def dataset_dir() -> str:
    return os.environ.get(DIRECTORY, os.path.join(os.path.expanduser("~"), ".d4rl", "datasets"))


def has_layout(path: str) -> bool:
    """Whether ``path`` is an HDF5 file with D4RL's top-level ``observations`` (robomimic's have ``data``)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return "observations" in f
    except OSError:
        return False


def is_d4rl(dataset_id: str) -> bool:
    dataset_id = str(dataset_id)
    return dataset_id.startswith(PREFIX) or (dataset_id.endswith(".hdf5") and os.path.isfile(dataset_id)
                                             and has_layout(dataset_id))


def parse(dataset_id: str) -> tuple[str, str]:
    """``(env, file path)`` of a D4RL name or file; one-line DatasetError for an unknown name."""
    if not dataset_id.startswith(PREFIX):
        env = next((e for e in REF_SCORES if e in os.path.basename(dataset_id).lower().replace("walker_", "walker2d_")),
                   None)
        if env is None:
            raise DatasetError(f"{dataset_id}: the file name must say its environment ({', '.join(REF_SCORES)}), as "
                               f"D4RL's do; rename it, e.g. hopper_medium-v2.hdf5")
        return env, dataset_id
    match = re.fullmatch(r"d4rl/([a-z0-9]+)-([a-z-]+)-v2", dataset_id)
    if match is None or match.group(1) not in REF_SCORES or match.group(2) not in LEVELS:
        raise DatasetError(f"unknown D4RL dataset {dataset_id!r}; the known ones are {', '.join(NAMES)} (or give the "
                           f"path of a file in D4RL's layout)")
    env, level = match.groups()
    return env, os.path.join(dataset_dir(), f"{env}_{level.replace('-', '_')}-v2.hdf5")


def url(path: str) -> str:
    """Where D4RL's file of that name is served (``$D4RL_MIRROR`` first, if set)."""
    return os.environ.get(MIRROR, URL).rstrip("/") + "/" + os.path.basename(path)


def check_file(path: str) -> int:
    """The number of rows of a file in D4RL's layout; one-line ValueError naming what is wrong."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            have = sorted(k for k in f.keys())
            missing = [k for k in REQUIRED if k not in f]
            if missing:
                raise ValueError(f"{path} lacks the D4RL arrays {missing}; it has {have}")
            lengths = {k: f[k].shape[0] for k in REQUIRED + ("next_observations",) if k in f}
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err})") from None
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{path}: its arrays have different lengths {lengths}")
    return lengths["observations"]


def read(path: str) -> dict:
    """The file's arrays as numpy (float32 but for the flags), checked for layout, lengths and NaN/inf."""
    import h5py
    try:
        check_file(path)
    except ValueError as err:
        raise DatasetError(str(err)) from None
    out = {}
    with h5py.File(path, "r") as f:
        for key in REQUIRED + ("next_observations",):
            if key in f:
                out[key] = np.asarray(f[key][()], np.float32).reshape(f[key].shape[0], -1)
        for key in ("qpos", "qvel"):
            if f"infos/{key}" in f:
                out[key] = np.asarray(f[f"infos/{key}"][()], np.float64)
    for key in ("observations", "actions", "rewards", "next_observations"):
        bad = ~np.isfinite(out.get(key, np.zeros(0)))
        if bad.any():
            raise DatasetError(f"{path} has {int(bad.sum())} NaN/inf values in its {key} (first in row "
                               f"{int(np.argwhere(bad)[0][0])}); clean the file or download it again")
    out["rewards"], out["terminals"], out["timeouts"] = (out[k][:, 0] for k in ("rewards", "terminals", "timeouts"))
    return out


def transitions(arrays: dict) -> dict:
    """Rows as the module docstring says: ``observations, actions, rewards, next_observations, terminals,
    truncations, episode_ends`` (numpy, one row per kept transition)."""
    obs, term, timeout = arrays["observations"], arrays["terminals"] > 0, arrays["timeouts"] > 0
    n = obs.shape[0]
    if "next_observations" in arrays:
        nxt = arrays["next_observations"]
        cut = np.zeros(n, bool)
        cut[:-1] = np.any(nxt[:-1] != obs[1:], axis=1)
        keep = np.ones(n, bool)
        ends = term | timeout | cut
    else:                                               # qlearning_dataset: next = the following row
        nxt = np.concatenate([obs[1:], obs[-1:]])
        keep = ~timeout
        keep[-1] = False                                # no following row
        ends = term.copy()
        ends[:-1] |= timeout[1:]                        # the row before a dropped timeout row ends its episode
    rows = np.flatnonzero(keep)
    ends = ends[rows]
    ends[-1] = True                                     # the data's last kept row ends its episode
    done = term[rows]
    return dict(observations=obs[rows], actions=arrays["actions"][rows], rewards=arrays["rewards"][rows],
                next_observations=nxt[rows], terminals=done.astype(np.float32),
                truncations=(ends & ~done).astype(np.float32), episode_ends=ends.astype(np.float32))


def locate(dataset_id: str, download: bool = True, progress: bool = True) -> tuple[str, str]:
    """``(env, path)``, downloading a named file that is not on disk yet (resumable and atomic)."""
    env, path = parse(dataset_id)
    if os.path.exists(path):
        return env, path
    if not dataset_id.startswith(PREFIX):
        raise DatasetError(f"D4RL file {path} does not exist")
    if not download:
        raise DatasetError(f"{dataset_id} is not on disk: expected {path} (download it from {url(path)})")
    try:
        download_file(url(path), path, check_file, what="a D4RL file", progress=progress)
    except ValueError as err:
        raise DatasetError(f"{dataset_id}: {err}") from None
    return env, path


def eval_env(env: str) -> gym.Env:
    try:
        return gym.make(EVAL_ENVS[env])
    except Exception as err:  # noqa: BLE001 - any failure here has the same fix
        raise DatasetError(f"D4RL's {env} data is evaluated in {EVAL_ENVS[env]}, which cannot be built here "
                           f"({type(err).__name__}: {err}); pip install 'gymnasium[mujoco]'") from None


def load_transitions(dataset_id: str, *, download: bool = True, reward_tune: str | None = None
                     ) -> tuple[Transitions, DatasetInfo]:
    """A D4RL file as ``(Transitions on the device, DatasetInfo)``, like :func:`cdp_jax.datasets.loading.
    load_transitions` for Minari ids; the reward tune defaults as there (MuJoCo: ``return_range``)."""
    env_name, path = locate(dataset_id, download)
    rows = transitions(read(path))
    env = eval_env(env_name)
    space, spec = env.action_space, env.spec
    env.close()
    obs, act = rows["observations"], rows["actions"]
    if obs.shape[1] != env.observation_space.shape[0] or act.shape[1] != space.shape[0]:
        raise DatasetError(f"{path} has observations of {obs.shape[1]} and actions of {act.shape[1]} numbers, but "
                           f"{spec.id} has {env.observation_space.shape[0]} and {space.shape[0]}: not {env_name} data")
    tune = default_reward_tune(env_name) if reward_tune is None else reward_tune
    rewards = tune_rewards(rows["rewards"], rows["episode_ends"], tune).astype(np.float32)
    ends = rows["episode_ends"]
    starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1]).astype(np.int64)
    low, high = REF_SCORES[env_name]
    info = DatasetInfo(
        dataset_id=dataset_id, obs_dim=obs.shape[1], act_dim=act.shape[1], obs_layout=(("observation", obs.shape[1]),),
        action_low=np.asarray(space.low, np.float32), action_high=np.asarray(space.high, np.float32),
        total_steps=obs.shape[0], total_episodes=len(starts), episode_starts=starts, obs_mean=obs.mean(0),
        obs_std=obs.std(0) + 1e-3, ref_min_score=low, ref_max_score=high, has_rewards=bool(np.any(rewards != 0)),
        reward_tune=tune, eval_env_spec=spec, action_space=space, obs_min=obs.min(0), obs_max=obs.max(0))
    data = Transitions(**{k: jnp.asarray(v) for k, v in dict(rows, rewards=rewards).items()})
    return data, info


def replay_error(dataset_id: str, rows: int = 1000, env_id: str | None = None) -> dict:
    """How closely the evaluation environment reproduces the file: for the first ``rows`` rows that have a next
    observation in the same episode, set the simulator to ``infos/qpos``, ``infos/qvel``, step the row's action and
    compare with the file's next observation and reward. ``{"rows", "max_obs_error", "max_reward_error",
    "env"}``; ``env_id`` replays in another version (e.g. ``Hopper-v5``)."""
    env_name, path = locate(dataset_id, download=False)
    arrays = read(path)
    if "qpos" not in arrays or "qvel" not in arrays:
        raise DatasetError(f"{path} has no infos/qpos and infos/qvel: its states cannot be replayed")
    nxt = arrays.get("next_observations", np.concatenate([arrays["observations"][1:], arrays["observations"][-1:]]))
    usable = ~((arrays["terminals"] > 0) | (arrays["timeouts"] > 0))
    usable[-1] = "next_observations" in arrays
    env = gym.make(env_id) if env_id else eval_env(env_name)
    env.reset(seed=0)
    obs_err, rew_err, count = 0.0, 0.0, 0
    for i in np.flatnonzero(usable)[:rows]:
        env.unwrapped.set_state(arrays["qpos"][i], arrays["qvel"][i])
        o, r, *_ = env.unwrapped.step(arrays["actions"][i])     # unwrapped: no time limit across rows
        obs_err = max(obs_err, float(np.max(np.abs(o - nxt[i]))))
        rew_err = max(rew_err, abs(float(r) - float(arrays["rewards"][i])))
        count += 1
    env.close()
    return dict(rows=count, max_obs_error=obs_err, max_reward_error=rew_err, env=env.spec.id)
