"""CDP vs EDP on Minari's D4RL AntMaze (``D4RL/antmaze/TASK-v1``) with the paper's protocol, its per-task eta and
weight_temperature, and the max-over-10-samples critic target.

    --config=experiments/configs/d4rl_antmaze.py:medium-play   (needs ``minari download D4RL/antmaze/medium-play-v1``)
"""
from experiments.configs.d4rl_mujoco import rl_config

ANTMAZE = {"medium-play": (2.0, 10.0), "medium-diverse": (3.0, 5.0), "large-play": (4.5, 5.0),
           "large-diverse": (3.5, 10.0)}


def get_config(task: str = "medium-play"):
    if task not in ANTMAZE:
        raise ValueError(f"unknown antmaze task {task!r}; use one of {sorted(ANTMAZE)}")
    return rl_config(f"D4RL/antmaze/{task}-v1", *ANTMAZE[task], max_q_backup=True, return_clip=(0.0, 1.0))
