"""The data-scarcity ablation on PointMaze (generated offline with the maze2d recipe, 1M steps).

Maze: override ``--config.dataset_id=local/pointmaze/medium-v0 --config.generate=pointmaze-medium``.
"""
from cdp_jax.config import base_config


def get_config():
    cfg = base_config()
    cfg.dataset_id, cfg.generate = "local/pointmaze/umaze-v0", "pointmaze-umaze"
    cfg.agent = "dbc"
    cfg.agent_config.diffusion = dict(network="dql", sampling_steps=15)
    cfg.agent_config.diffusion.contraction = dict(low_noise_fraction=0.1, num_iters=5)
    cfg.agent_config.lr = 3e-4
    cfg.seeds, cfg.data_fractions, cfg.gammas = 5, (1.0, 0.4, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 100_000, 10_000, 10
    return cfg
