"""CDP vs EDP on MuJoCo locomotion with the paper's RL protocol: 10 seeds, fractions 1.0 / 0.4 / 0.05, 200k steps,
evaluation every 20k steps on 50 episodes, per-task eta and weight_temperature of the official task files.

    --config=experiments/configs/d4rl_mujoco.py:hopper-medium-replay     (ENV-LEVEL; ENV in hopper, walker2d,
        halfcheetah; LEVEL in medium, medium-replay, medium-expert (the paper's rows), or simple, expert)
    --config=experiments/configs/d4rl_mujoco.py:hopper-medium-replay,gammas   (the official γ grid in one sweep)

The dataset: ``local/mujoco/ENV/LEVEL-v0`` when it exists here (``python -m cdp_jax.datasets generate mujoco
--env Hopper-v5 --levels medium,medium-replay,...``), else Minari's ``mujoco/ENV/LEVEL-v0`` for the levels Minari
has (simple, medium, expert; downloaded once with a network). Minari has no medium-replay / medium-expert, so those
rows need the generated datasets. ``simple`` takes the medium settings and ``expert`` the medium-expert ones.
"""
from cdp_jax.train.config import OFFICIAL_GAMMAS, base_config

# (eta, weight_temperature) of the official configs/cdp-rl/task files, verbatim: the one source of truth, also
# for benchmarks/science/paper_tables.py.
TASKS = {("halfcheetah", "medium"): (1.0, 50.0), ("halfcheetah", "medium-replay"): (1.0, 150.0),
         ("halfcheetah", "medium-expert"): (1.0, 50.0),
         ("hopper", "medium"): (1.0, 300.0), ("hopper", "medium-replay"): (1.0, 300.0),
         ("hopper", "medium-expert"): (1.0, 8.0),
         ("walker2d", "medium"): (1.0, 300.0), ("walker2d", "medium-replay"): (1.0, 100.0),
         ("walker2d", "medium-expert"): (1.0, 300.0)}
SETTINGS_OF = {"simple": "medium", "expert": "medium-expert"}        # Minari-only levels: the nearest paper row
MINARI_LEVELS = ("simple", "medium", "expert")


def task_settings(env: str, level: str) -> tuple[float, float]:
    """``(eta, weight_temperature)`` of a task, refusing unknown ones in one line."""
    key = (env, SETTINGS_OF.get(level, level))
    if key not in TASKS:
        raise ValueError(f"unknown MuJoCo task {env}-{level!r}; use ENV-LEVEL with ENV in hopper, walker2d, "
                         f"halfcheetah and LEVEL in medium, medium-replay, medium-expert, simple, expert")
    return TASKS[key]


def dataset_id(env: str, level: str) -> str:
    """The generated dataset when it is here, else Minari's id for the levels Minari has."""
    local = f"local/mujoco/{env}/{level}-v0"
    import minari
    if local in minari.list_local_datasets() or level not in MINARI_LEVELS:
        return local
    return f"mujoco/{env}/{level}-v0"


def rl_config(dataset_id: str, eta: float, weight_temperature: float, max_q_backup: bool = False,
              return_clip: tuple = ()):
    """The paper's EDP/CDP protocol on one Minari dataset: 50 evaluation episodes (the official 10 environments
    x 5), returns clipped to ``return_clip`` before the normalised score (official: kitchen [0, 4], antmaze [0, 1])."""
    cfg = base_config("edp")
    cfg.dataset_id, cfg.eta = dataset_id, eta
    cfg.agent_config.weight_temperature, cfg.agent_config.max_q_backup = weight_temperature, max_q_backup
    cfg.seeds, cfg.data_fractions, cfg.gammas = 10, (1.0, 0.4, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 200_000, 20_000, 50
    cfg.eval_return_clip = return_clip
    return cfg


def get_config(arg: str = "hopper-medium"):
    """``TASK`` or ``TASK,gammas``: the latter trains the official γ grid (``cdp_jax.train.config.OFFICIAL_GAMMAS``) in
    one sweep; choose γ afterwards with ``python -m experiments.select_gamma --workdir=...``."""
    task, _, preset = arg.partition(",")
    if preset not in ("", "gammas"):
        raise ValueError(f"unknown option {preset!r} after the task; the only one is ',gammas'")
    env, _, level = task.partition("-")
    eta, temperature = task_settings(env, level)
    cfg = rl_config(dataset_id(env, level), eta, temperature)
    if preset:
        cfg.gammas = OFFICIAL_GAMMAS
    return cfg
