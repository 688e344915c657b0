"""The imitation data-scarcity ablation on PointMaze (generated offline with the maze2d recipe, 1M steps): DBC
(gamma = 0) against CDP-IL (gamma = 0.1) with the official low-dim IL recipe (``official_il_recipe``).

Maze: override ``--config.dataset_id=local/pointmaze/medium-v0 --config.generate=pointmaze-medium``.
"""
from cdp_jax.agents import default_agent_config
from cdp_jax.train.config import base_config


def official_il_recipe(cfg):
    """The official ``scripts/cdp_il_lowdim.py`` settings on a sweep config: DBC's defaults (Pearce MLP,
    50 DPM-Solver++ steps, L_c on the denoising loss's own samples at all levels, lr 1e-3, AdamW, no LR
    schedule, EMA 0.995 after every update), batch 512, MinMax observation normalisation. Also the Table 2 job
    of ``benchmarks/science/paper_tables.py``, and the official network: CleanDiffuser's integer-cast time embedding
    (docs/fidelity.md). (One difference stays: the official Pearce MLP conditions on an observation history of 2
    steps; here on the current observation.)"""
    cfg.agent, cfg.agent_config = "dbc", default_agent_config("dbc")
    cfg.agent_config.diffusion.time_embedding = "cleandiffuser"
    cfg.batch_size, cfg.obs_normalization = 512, "minmax"
    return cfg


def get_config():
    cfg = official_il_recipe(base_config())
    cfg.dataset_id, cfg.generate = "local/pointmaze/umaze-v0", "pointmaze-umaze"
    cfg.seeds, cfg.data_fractions, cfg.gammas = 5, (1.0, 0.4, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 100_000, 10_000, 10
    return cfg
