"""CDP vs EDP on Minari MuJoCo locomotion with the paper's RL protocol: 10 seeds, fractions 1.0 / 0.4 / 0.05,
200k steps, evaluation every 20k steps on 10 episodes, per-task eta and weight_temperature (digest section 4.1).

    --config=experiments/configs/d4rl_mujoco.py:hopper-medium      (ENV-LEVEL; ENV in hopper, walker2d,
                                                                     halfcheetah; LEVEL in simple, medium, expert)

The Minari id is ``mujoco/ENV/LEVEL-v0`` (needs a network once: ``minari download mujoco/hopper/medium-v0``).
Minari has no medium-replay / medium-expert: ``medium`` uses the paper's medium settings, ``expert`` its
medium-expert ones and ``simple`` the medium ones.
"""
from cdp_jax.config import base_config

# (eta, weight_temperature) of the official configs/cdp-rl/task files.
MUJOCO = {("halfcheetah", "medium"): (1.0, 50.0), ("halfcheetah", "expert"): (1.0, 50.0),
          ("hopper", "medium"): (1.0, 300.0), ("hopper", "expert"): (1.0, 8.0),
          ("walker2d", "medium"): (1.0, 300.0), ("walker2d", "expert"): (1.0, 300.0)}


def rl_config(dataset_id: str, eta: float, weight_temperature: float, max_q_backup: bool = False):
    """The paper's EDP/CDP protocol on one Minari dataset."""
    cfg = base_config()
    cfg.dataset_id, cfg.agent, cfg.eta = dataset_id, "edp", eta
    cfg.agent_config.weight_temperature, cfg.agent_config.max_q_backup = weight_temperature, max_q_backup
    cfg.seeds, cfg.data_fractions, cfg.gammas = 10, (1.0, 0.4, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 200_000, 20_000, 10
    return cfg


def get_config(task: str = "hopper-medium"):
    env, _, level = task.partition("-")
    eta, temperature = MUJOCO.get((env, "medium" if level == "simple" else level), (None, None))
    if eta is None:
        raise ValueError(f"unknown MuJoCo task {task!r}; use ENV-LEVEL with ENV in hopper, walker2d, halfcheetah "
                         f"and LEVEL in simple, medium, expert")
    return rl_config(f"mujoco/{env}/{level}-v0", eta, temperature)
