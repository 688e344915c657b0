"""Minari MuJoCo locomotion (``mujoco/{hopper,walker2d,halfcheetah}/{simple,medium,expert}-v0``), the paper's
RL protocol: 10 seeds, fractions 1.0 / 0.4 / 0.05, 200k steps, evaluation every 20k steps on 10 episodes.

Needs a network for the Minari download (``minari download mujoco/hopper/medium-v0``). Until the offline-RL
backbones land, the agent is DBC (imitation); switch ``--config.agent`` when EDP is available.
"""
from cdp_jax.sweep import base_config


def get_config():
    cfg = base_config()
    cfg.dataset_id = "mujoco/hopper/medium-v0"
    cfg.agent = "dbc"
    cfg.agent_config.diffusion = dict(network="dql", sampling_steps=15)
    cfg.agent_config.diffusion.contraction = dict(low_noise_fraction=0.1, num_iters=5)
    cfg.agent_config.lr, cfg.agent_config.ema_every, cfg.agent_config.ema_start = 3e-4, 5, 1000
    cfg.seeds, cfg.data_fractions, cfg.gammas = 10, (1.0, 0.4, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 200_000, 20_000, 10
    return cfg
