"""The embedded default: DBC vs CDP on a generated PointMaze-UMaze, full data and 5%, 2 seeds, on 2 CPU cores.

The dataset (100k steps of the maze2d recipe) is generated on first use, offline, in about 20 s.
"""
from cdp_jax.train.config import base_config


def get_config():
    cfg = base_config("dbc")
    cfg.dataset_id, cfg.generate, cfg.generate_steps = "local/pointmaze/umaze-100k-v0", "pointmaze-umaze", 100_000
    cfg.agent_config.diffusion.update(network="dql", sampling_steps=15)
    cfg.agent_config.diffusion.contraction.update(low_noise_fraction=0.1, num_iters=5)
    cfg.agent_config.lr = 3e-4
    cfg.seeds, cfg.data_fractions, cfg.gammas = 2, (1.0, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.batch_size = 4_000, 1_000, 5, 256
    return cfg
