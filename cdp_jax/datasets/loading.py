"""Load any Minari dataset into a device-resident pytree of float32 transitions.

Observation layout: Box observations are used as they are. Dict observations are flattened in a fixed order:
``observation`` first, then ``desired_goal`` (goal-conditioned mazes: PointMaze gives 4 + 2 = 6 features,
AntMaze 27 + 2 = 29); ``achieved_goal`` is left out since it repeats the position in ``observation``; any other
keys follow in sorted order. ``DatasetInfo.obs_layout`` records the (key, width) pairs.

Rewards can be tuned as the official ``scripts/cdp_rl.py`` does: ``"return_range"`` scales rewards so that
the range of episode returns spans 1000 (MuJoCo), ``"antmaze"`` subtracts 1, ``"none"`` leaves them.
"""
from __future__ import annotations

import dataclasses
import os

import flax.struct
import gymnasium as gym
import jax
import jax.numpy as jnp
import minari
import numpy as np

REWARD_TUNES = ("none", "return_range", "antmaze")


class DatasetError(ValueError):
    """A dataset that cannot be found, read or used; the message says how to fix it."""


class Transitions(flax.struct.PyTreeNode):
    """``N`` transitions: ``observations, next_observations [N, obs_dim]``, ``actions [N, act_dim]``,
    ``rewards, terminals, truncations, episode_ends [N]`` (float32; ``episode_ends`` marks the last step of each
    episode, whether it ended by termination, truncation or the end of the data)."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    terminals: jax.Array
    truncations: jax.Array
    episode_ends: jax.Array
    frames: jax.Array | None = None      # image data: uint8 [F, cameras * H * W * 3], not row-aligned (below)
    frame_steps: int = flax.struct.field(pytree_node=False, default=0)   # frame indices ending each observation

    @property
    def size(self) -> int:
        return self.observations.shape[0]

    def rows(self, idx: jax.Array) -> "Transitions":
        """The transitions at ``idx [B]``. Image data store each observation compactly, as its low-dim history
        followed by the ``frame_steps`` frame indices of its history; here those indices become the frames'
        pixels (uint8 gathered, then 0..255 floats): the flat layout of :class:`cdp_jax.nn.image_encoder.ImageLayout`."""
        out = jax.tree.map(lambda x: x[idx], self.replace(frames=None))
        if self.frames is None:
            return out
        expand = lambda compact: expand_frames(compact, self.frames, self.frame_steps)
        return out.replace(observations=expand(out.observations), next_observations=expand(out.next_observations))


ROW_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "truncations", "episode_ends")
"""The fields of :class:`Transitions` with one row per transition (``frames`` is per frame)."""


def datasets_root() -> str:
    """The Minari datasets folder: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (read at call time)."""
    return os.environ.get("MINARI_DATASETS_PATH", os.path.join(os.path.expanduser("~"), ".minari", "datasets"))


def expand_frames(compact: jax.Array, frames: jax.Array, frame_steps: int) -> jax.Array:
    """``compact [..., n_low + k]`` (low-dim history, then ``k = frame_steps`` frame indices) ->
    ``[..., n_low + k * frame_pixels]`` float32."""
    ids = compact[..., -frame_steps:].astype(jnp.int32)
    pixels = frames[ids].reshape(*compact.shape[:-1], -1).astype(jnp.float32)
    return jnp.concatenate([compact[..., :-frame_steps], pixels], axis=-1)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What evaluation and normalisation need from a dataset, without its arrays."""

    dataset_id: str
    obs_dim: int
    act_dim: int
    obs_layout: tuple
    action_low: np.ndarray
    action_high: np.ndarray
    total_steps: int
    total_episodes: int
    episode_starts: np.ndarray           # [E] index of each episode's first transition
    obs_mean: np.ndarray
    obs_std: np.ndarray
    ref_min_score: float | None
    ref_max_score: float | None
    has_rewards: bool
    reward_tune: str
    eval_env_spec: object                # gymnasium EnvSpec, or None
    action_space: object = None          # the gymnasium action space
    obs_min: np.ndarray | None = None     # [obs_dim] per-dimension minimum and maximum (MinMax normalisation)
    obs_max: np.ndarray | None = None
    image_layout: dict | None = None     # image observations: obs_steps, low_dim, cameras, height, width

    @property
    def continuous_actions(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Box)

    def normalized_score(self, returns) -> np.ndarray:
        """``100 * (return - ref_min) / (ref_max - ref_min)``, as D4RL tables report it."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise DatasetError(f"dataset {self.dataset_id!r} has no reference scores; it cannot give normalised scores")
        return 100.0 * (np.asarray(returns) - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)

    def make_env(self, **kwargs) -> gym.Env:
        """The evaluation environment recorded with the dataset (``recover_environment(eval_env=True)``)."""
        if self.eval_env_spec is None:
            raise DatasetError(f"dataset {self.dataset_id!r} records no environment, so it cannot be evaluated")
        try:
            return gym.make(self.eval_env_spec, **kwargs)
        except Exception as err:  # noqa: BLE001 - any failure here has the same fix
            raise DatasetError(
                f"the environment of dataset {self.dataset_id!r} ({self.eval_env_spec.id}, entry point "
                f"{self.eval_env_spec.entry_point}) cannot be recovered: {type(err).__name__}: {err}. Install the "
                f"package that provides it (e.g. gymnasium[mujoco] or gymnasium-robotics)") from None


def _flatten_obs(obs, space) -> tuple[np.ndarray, tuple]:
    if isinstance(obs, dict):
        keys = [k for k in ("observation", "desired_goal") if k in obs]
        keys += sorted(k for k in obs if k not in keys and k != "achieved_goal")
        parts = [np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in keys]
        return np.concatenate(parts, axis=1), tuple((k, p.shape[1]) for k, p in zip(keys, parts))
    arr = np.asarray(obs, np.float32)
    return arr.reshape(len(arr), -1), (("observation", arr.reshape(len(arr), -1).shape[1]),)


def _open(dataset_id: str, download: bool):
    local = dataset_id in minari.list_local_datasets()
    if not local and not download:
        raise DatasetError(_not_found(dataset_id))
    if not local and not hub_reachable():
        raise DatasetError(_not_found(dataset_id) + " (no network: the dataset server cannot be reached)")
    try:
        return minari.load_dataset(dataset_id, download=download and not local)
    except DatasetError:
        raise
    except Exception as err:  # noqa: BLE001
        if local:
            raise DatasetError(f"dataset {dataset_id!r} is corrupt or truncated ({type(err).__name__}: {err}); "
                               f"delete it and regenerate or re-download it") from None
        raise DatasetError(_not_found(dataset_id) + f" (download failed: {type(err).__name__})") from None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint that Minari (and robomimic's files) download from answers a TCP connection within ``timeout``
    seconds (``HF_HUB_OFFLINE=1`` means no). Without this check an offline machine retries for ~23 s."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def _not_found(dataset_id: str) -> str:
    root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
    return (f"dataset {dataset_id!r} is neither local (under {root}) nor downloadable here. Generate one with "
            f"`python -m cdp_jax.datasets generate NAME --dataset_id {dataset_id}` (see `python -m cdp_jax.datasets "
            f"list`), or fetch it on a machine with a network with `minari download {dataset_id}`")


def tune_rewards(rewards: np.ndarray, episode_ends: np.ndarray, tune: str) -> np.ndarray:
    """Reward tuning of the reference code: see the module docstring."""
    if tune == "none":
        return rewards
    if tune == "antmaze":
        return rewards - 1.0
    if tune == "return_range":
        episode_id = np.concatenate([[0], np.cumsum(episode_ends[:-1])]).astype(np.int64)
        returns = np.bincount(episode_id, weights=rewards)
        span = returns.max() - returns.min()
        return rewards * (1000.0 / span) if span > 0 else rewards
    raise DatasetError(f"unknown reward tune {tune!r}; choose one of {REWARD_TUNES}")


def default_reward_tune(dataset_id: str) -> str:
    lowered = dataset_id.lower()
    if "antmaze" in lowered:
        return "antmaze"
    if any(name in lowered for name in ("hopper", "walker", "halfcheetah", "mujoco/")):
        return "return_range"
    return "none"


def load_transitions(dataset_id: str, *, download: bool = True, reward_tune: str | None = None
                     ) -> tuple[Transitions, DatasetInfo]:
    """Loads Minari dataset ``dataset_id`` as ``(Transitions on device, DatasetInfo)``.

    Raises:
      DatasetError: unknown id (neither local nor downloadable), a corrupt file, or a bad reward tune.
    """
    reward_tune = default_reward_tune(dataset_id) if reward_tune is None else reward_tune
    if reward_tune not in REWARD_TUNES:
        raise DatasetError(f"unknown reward tune {reward_tune!r}; choose one of {REWARD_TUNES}")
    ds = _open(dataset_id, download)
    obs, next_obs, act, rew, term, trunc, ends, starts = [], [], [], [], [], [], [], []
    layout, count = None, 0
    try:
        for ep in ds.storage.get_episodes(range(ds.total_episodes)):
            o, layout = _flatten_obs(ep["observations"], ds.observation_space)
            n = len(ep["rewards"])
            if o.shape[0] != n + 1:
                raise ValueError(f"episode {ep['id']} has {o.shape[0]} observations for {n} steps")
            starts.append(count)
            count += n
            obs.append(o[:-1]), next_obs.append(o[1:])
            act.append(np.asarray(ep["actions"], np.float32).reshape(n, -1))
            rew.append(np.asarray(ep["rewards"], np.float32))
            term.append(np.asarray(ep["terminations"], np.float32))
            trunc.append(np.asarray(ep["truncations"], np.float32))
            end = np.zeros(n, np.float32)
            end[-1] = 1.0
            ends.append(end)
    except Exception as err:  # noqa: BLE001 - h5py and numpy errors all mean a damaged file
        raise DatasetError(f"dataset {dataset_id!r} is corrupt or truncated ({type(err).__name__}: {err}); "
                           f"delete it and regenerate or re-download it") from None
    if count != ds.total_steps:
        raise DatasetError(f"dataset {dataset_id!r} is truncated: its metadata says {ds.total_steps} steps but its "
                           f"episodes hold {count}; delete it and regenerate or re-download it")
    cat = lambda parts: np.concatenate(parts, axis=0)
    obs_np, act_np, rew_np, ends_np = cat(obs), cat(act), cat(rew), cat(ends)
    last_obs = np.stack([o[-1] for o in next_obs])           # each episode's final observation
    for name, arr in (("observations", obs_np), ("observations", last_obs), ("actions", act_np), ("rewards", rew_np)):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"dataset {dataset_id!r} has {int(bad.sum())} NaN/inf values in its {name} (first in "
                               f"row {first}); clean or regenerate the dataset")
    rewards = tune_rewards(rew_np, ends_np, reward_tune).astype(np.float32)
    space = ds.action_space
    meta = ds.storage.metadata
    eval_spec = ds._eval_env_spec or ds.env_spec       # what recover_environment(eval_env=True) makes
    info = DatasetInfo(
        dataset_id=dataset_id, obs_dim=obs_np.shape[1], act_dim=act_np.shape[1], obs_layout=layout,
        action_low=np.asarray(getattr(space, "low", -np.ones(act_np.shape[1])), np.float32).reshape(-1),
        action_high=np.asarray(getattr(space, "high", np.ones(act_np.shape[1])), np.float32).reshape(-1),
        total_steps=count, total_episodes=len(starts), episode_starts=np.asarray(starts, np.int64),
        obs_mean=obs_np.mean(0), obs_std=obs_np.std(0) + 1e-3,
        ref_min_score=meta.get("ref_min_score"), ref_max_score=meta.get("ref_max_score"),
        has_rewards=bool(np.any(rew_np != 0)), reward_tune=reward_tune, eval_env_spec=eval_spec, action_space=space,
        obs_min=obs_np.min(0), obs_max=obs_np.max(0))
    data = Transitions(observations=jnp.asarray(obs_np), actions=jnp.asarray(act_np), rewards=jnp.asarray(rewards),
                       next_observations=jnp.asarray(cat(next_obs)), terminals=jnp.asarray(cat(term)),
                       truncations=jnp.asarray(cat(trunc)), episode_ends=jnp.asarray(ends_np))
    return data, info
