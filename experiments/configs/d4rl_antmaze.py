"""Minari D4RL antmaze (``D4RL/antmaze/medium-play-v1`` and its siblings), with the protocol of ``d4rl_mujoco.py``.

Needs a network for the Minari download (``minari download D4RL/antmaze/medium-play-v1``).
"""
from experiments.configs.d4rl_mujoco import get_config as mujoco_config


def get_config():
    cfg = mujoco_config()
    cfg.dataset_id = "D4RL/antmaze/medium-play-v1"
    return cfg
