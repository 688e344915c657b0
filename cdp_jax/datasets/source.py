"""A sweep config's dataset: made on first use where the config can make it (a generator, robomimic's release), then
loaded as the sweep trains on it."""
from __future__ import annotations

import os

import minari
import ml_collections

from cdp_jax import agents as agent_registry
from cdp_jax.datasets import d4rl, robomimic_download, robomimic_releases
from cdp_jax.datasets.generators import GENERATORS
from cdp_jax.datasets.generators import generate as generate_dataset
from cdp_jax.datasets.loading import datasets_root
from cdp_jax.datasets.loading import hub_reachable, load_transitions
from cdp_jax.datasets.robomimic_hdf5 import is_robomimic, resolve_path
from cdp_jax.datasets.robomimic_hdf5 import load_transitions as load_robomimic
from cdp_jax.envs.robomimic_env import check_environments
from cdp_jax.io import folder_lock


def make_missing_dataset(cfg, progress: bool = True) -> None:
    """Generates a missing dataset that the config can generate, or downloads a missing robomimic release where
    Hugging Face answers (a missing Minari id downloads as it loads). The processes of a multi-process sweep
    take turns (a lock on the datasets folder, taken only where the dataset is missing): one makes it, the
    others find it."""
    if not _missing(cfg):
        return
    with folder_lock(datasets_root()):
        if _missing(cfg):
            _make(cfg, progress)


def _missing(cfg) -> bool:
    if d4rl.is_d4rl(cfg.dataset_id):                    # downloaded as it loads
        return False
    if is_robomimic(cfg.dataset_id):
        return not os.path.exists(resolve_path(cfg.dataset_id))
    return cfg.dataset_id not in minari.list_local_datasets()


def _make(cfg, progress: bool) -> None:
    if is_robomimic(cfg.dataset_id):
        if cfg.generate:
            print(f"dataset {cfg.dataset_id} is not here: generating it with {cfg.generate} (first use only)")
            generate_dataset(cfg.generate, cfg.dataset_id, cfg.generate_steps or None, progress=progress,
                             image_size=cfg.generate_image_size)
        elif (release := robomimic_releases.released(cfg.dataset_id)) and hub_reachable():
            print(f"dataset {cfg.dataset_id} is not here: downloading robomimic's (first use only)")
            robomimic_download.download(*release, progress=progress)
    elif cfg.generate:
        writes = GENERATORS[cfg.generate].dataset_id
        stem = writes.rsplit("-v", 1)[0]                 # local/pointmaze/umaze-v0 -> local/pointmaze/umaze
        if cfg.dataset_id != writes and not cfg.dataset_id.startswith(stem + "-"):
            raise ValueError(f"dataset {cfg.dataset_id!r} is not local, and generator {cfg.generate!r} writes "
                             f"{writes!r} (or a variant {stem}-TAG-vN): fix --config.dataset_id, or generate it "
                             f"under this id first with `python -m cdp_jax.datasets generate {cfg.generate} "
                             f"--dataset_id {cfg.dataset_id}`")
        print(f"dataset {cfg.dataset_id} is not local: generating it with {cfg.generate} (first use only)")
        generate_dataset(cfg.generate, cfg.dataset_id, cfg.generate_steps or None, progress=progress)


def load_dataset(cfg: ml_collections.ConfigDict | dict):
    """A sweep config's dataset (a ConfigDict, or a workdir's recorded config as ``read_config`` gives it) as
    ``(Transitions on the device, DatasetInfo)``: a robomimic file cut into the config's windows (observation keys,
    demo filter), or a Minari id. Refuses, in one line, actions that are not a Box and an offline-RL agent on a
    dataset without rewards."""
    cfg = ml_collections.ConfigDict(cfg) if isinstance(cfg, dict) else cfg
    if is_robomimic(cfg.dataset_id):
        data, info = load_robomimic(cfg.dataset_id, **cfg.sequence.to_dict(), obs_keys=tuple(cfg.obs_keys) or None,
                                   eval_max_steps=cfg.eval_max_steps, demo_filter=cfg.get("demo_filter", ""))
        check_environments(cameras=info.image_layout is not None)     # before training, not at evaluation
    elif d4rl.is_d4rl(cfg.dataset_id):
        data, info = d4rl.load_transitions(cfg.dataset_id)
        print(f"dataset: {cfg.dataset_id}, D4RL's file {d4rl.parse(cfg.dataset_id)[1]}")
    else:
        data, info = load_transitions(cfg.dataset_id)
    if not info.continuous_actions:
        raise ValueError(f"agent {cfg.agent!r} needs a continuous (Box) action space, but dataset "
                         f"{cfg.dataset_id!r} has {info.action_space}; choose a dataset with Box actions")
    if cfg.agent in agent_registry.OFFLINE_RL and not info.has_rewards:
        raise ValueError(f"agent {cfg.agent!r} is an offline-RL agent but dataset {cfg.dataset_id!r} has no "
                         f"rewards; use an imitation agent such as 'dbc'")
    return data, info
