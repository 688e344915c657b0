"""Minari D4RL kitchen (``D4RL/kitchen/complete-v2`` and its siblings), with the protocol of ``d4rl_mujoco.py``.

Needs a network for the Minari download (``minari download D4RL/kitchen/complete-v2``).
"""
from experiments.configs.d4rl_mujoco import get_config as mujoco_config


def get_config():
    cfg = mujoco_config()
    cfg.dataset_id = "D4RL/kitchen/complete-v2"
    return cfg
