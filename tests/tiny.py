"""The tiny sweep that the tests run, in process and in CLI subprocesses: a module of its own, so that a subprocess
whose config loads it imports the library alone (not pytest, chex and a test module: 0.6 s of each CLI start in the
suite)."""
import math

from cdp_jax.train import config, sweep


def tiny_config(**overrides):
    cfg = config.base_config()
    cfg.dataset_id, cfg.generate, cfg.generate_steps = "local/toy/reach-v0", "toy-reach", 600
    cfg.agent_config.diffusion.update(network="dql", hidden=32, diffusion_steps=10, sampling_steps=5)
    cfg.agent_config.lr = 1e-3
    cfg.seeds, cfg.data_fractions, cfg.gammas = 2, (1.0, 0.5), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.batch_size = 40, 20, 2, 32
    cfg.consistency_states, cfg.consistency_samples = 8, 4
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def run(cfg, workdir):
    """Runs a sweep in this process: ``(sweep, rows)``."""
    s = sweep.Sweep(cfg, str(workdir), progress=False)
    return s, s.run()


def comparable(rows: list[dict]) -> list[dict]:
    """Rows as values to compare with ``==``: wall_time (never reproducible) dropped, NaN as None (NaN != NaN)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items() if k != "wall_time"}
            for r in rows]
