"""DBC vs CDP on the generated ``toy-reach`` task (bimodal demonstrations): a sweep that runs in about a minute."""
from cdp_jax.train.config import base_config


def get_config():
    cfg = base_config("dbc")
    cfg.dataset_id, cfg.generate, cfg.generate_steps = "local/toy/reach-v0", "toy-reach", 5_000
    cfg.agent_config.diffusion.update(network="dql", hidden=128, sampling_steps=15)
    cfg.agent_config.lr = 1e-3
    cfg.seeds, cfg.data_fractions, cfg.gammas = 2, (1.0, 0.1), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.batch_size = 1_000, 500, 5, 128
    return cfg
