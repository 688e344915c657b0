"""CDP vs EDP on Minari's D4RL kitchen (``D4RL/kitchen/TASK-v2``, TASK in complete, partial, mixed) with the paper's
protocol and its kitchen settings (eta 0.005, weight_temperature 5).

    --config=experiments/configs/d4rl_kitchen.py:complete      (needs ``minari download D4RL/kitchen/complete-v2`` once)
"""
from experiments.configs.d4rl_mujoco import rl_config


def get_config(task: str = "complete"):
    if task not in ("complete", "partial", "mixed"):
        raise ValueError(f"unknown kitchen task {task!r}; use complete, partial or mixed")
    return rl_config(f"D4RL/kitchen/{task}-v2", 0.005, 5.0, return_clip=(0.0, 4.0))
