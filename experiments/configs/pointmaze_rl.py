"""Offline RL on the generated PointMaze: EDP (gamma = 0) against CDP (gamma = 0.1), the paper's RL recipe
(x0 DQL actor, twin LayerNorm critic, 15-step DPM-Solver++, contraction on t < 0.1 T, 100 evaluation candidates).

Other backbones on the same data: ``--config.agent=dql|idql`` (CDP-DQL / CDP-IDQL with gamma > 0) and
``--config.agent=bc --config.gammas='(0.0,)'``.
"""
from cdp_jax.train.config import base_config


def get_config():
    cfg = base_config("edp")
    cfg.dataset_id, cfg.generate, cfg.generate_steps = "local/pointmaze/umaze-v0", "pointmaze-umaze", 1_000_000
    cfg.eta = 1.0
    cfg.seeds, cfg.data_fractions, cfg.gammas = 3, (1.0, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 20_000, 5_000, 10
    return cfg
