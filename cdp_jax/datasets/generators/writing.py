"""Writing episodes as a Minari dataset, atomically, with minari's own ``create_dataset_from_buffers``."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.namespace import create_namespace, list_local_namespaces

from cdp_jax.datasets.loading import datasets_root


@contextlib.contextmanager
def _datasets_path(path: str):
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def episode_buffer(observations, actions, rewards, terminations, truncations, seed=None) -> EpisodeBuffer:
    """One episode: ``observations`` has ``T + 1`` entries (an array, or a dict of arrays), the rest ``T``."""
    return EpisodeBuffer(seed=seed, observations=observations, actions=np.asarray(actions, np.float32),
                         rewards=np.asarray(rewards, np.float64), terminations=np.asarray(terminations, bool),
                         truncations=np.asarray(truncations, bool))


def refuse_existing(dataset_id: str, overwrite: bool) -> None:
    """Raises ``FileExistsError`` when ``dataset_id`` exists and ``overwrite`` is off: call it before collecting."""
    final = os.path.join(datasets_root(), dataset_id)
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(f"dataset {dataset_id!r} already exists at {final}; pass --overwrite to replace it")


def write_dataset(dataset_id: str, episodes: list[EpisodeBuffer], *, env_spec: gym.envs.registration.EnvSpec,
                  eval_env_spec: gym.envs.registration.EnvSpec, ref_min_score: float, ref_max_score: float,
                  algorithm_name: str, description: str, overwrite: bool = False) -> str:
    """Writes ``episodes`` as Minari dataset ``dataset_id`` and returns its folder.

    The dataset is built under a temporary root beside the real one and moved into place with one rename,
    so an interrupted generation never leaves a half-written dataset that ``minari.load_dataset`` would find.
    """
    root = datasets_root()
    final = os.path.join(root, dataset_id)
    refuse_existing(dataset_id, overwrite)
    os.makedirs(root, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix=".tmp-generate-", dir=root)
    try:
        with _datasets_path(tmp_root):
            minari.create_dataset_from_buffers(
                dataset_id, episodes, env=env_spec, eval_env=eval_env_spec, algorithm_name=algorithm_name,
                ref_min_score=float(ref_min_score), ref_max_score=float(ref_max_score), description=description,
                author="cdp_jax", author_email="cdp_jax@localhost", code_permalink="cdp_jax.datasets",
                data_format="hdf5")
        namespace = parse_dataset_id(dataset_id)[0]
        with _datasets_path(root):
            if namespace is not None and namespace not in list_local_namespaces():
                create_namespace(namespace)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        if os.path.exists(final):
            trash = tempfile.mkdtemp(prefix=".tmp-old-", dir=root)
            os.rename(final, os.path.join(trash, "old"))
            os.rename(os.path.join(tmp_root, dataset_id), final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(os.path.join(tmp_root, dataset_id), final)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def mean_return(env: gym.Env, policy, num_episodes: int, seed: int) -> float:
    """Average undiscounted return of ``policy(obs, rng) -> action`` over ``num_episodes`` (reset seeds seed+k)."""
    rng = np.random.default_rng(seed)
    returns = []
    for k in range(num_episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, rng))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))
