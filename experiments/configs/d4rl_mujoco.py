"""CDP vs EDP on MuJoCo locomotion with the paper's RL protocol: 10 seeds, fractions 1.0 / 0.4 / 0.05, 200k steps,
evaluation every 20k steps on 50 episodes, per-task eta and weight_temperature of the official task files.

    --config=experiments/configs/d4rl_mujoco.py:hopper-medium-replay     (ENV-LEVEL; ENV in hopper, walker2d,
        halfcheetah; LEVEL in medium, medium-replay, medium-expert (the paper's rows), or simple, expert)
    --config=experiments/configs/d4rl_mujoco.py:hopper-medium-replay,gammas   (the official γ grid in one sweep)
    --config=experiments/configs/d4rl_mujoco.py:hopper-medium-replay,generated   (the dataset generated here)

The dataset: the paper's, D4RL's own file ``d4rl/ENV-LEVEL-v2`` (read from ``$D4RL_DATASET_DIR``, default
``~/.d4rl/datasets``, where D4RL itself keeps it, or downloaded there on first use; ``cdp_jax/datasets/d4rl.py``).
With ``,generated``: ``local/mujoco/ENV/LEVEL-v0``, made offline by ``python -m cdp_jax.datasets generate mujoco
--env Hopper-v5 --levels medium,medium-replay,...`` (SAC behaviour policies: not the paper's data; ``simple`` takes
the medium settings and ``expert`` the medium-expert ones).
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


def task_settings(env: str, level: str) -> tuple[float, float]:
    """``(eta, weight_temperature)`` of a task, refusing unknown ones in one line."""
    key = (env, SETTINGS_OF.get(level, level))
    if key not in TASKS:
        raise ValueError(f"unknown MuJoCo task {env}-{level!r}; use ENV-LEVEL with ENV in hopper, walker2d, "
                         f"halfcheetah and LEVEL in medium, medium-replay, medium-expert, simple, expert")
    return TASKS[key]


def dataset_id(env: str, level: str, generated: bool = False) -> str:
    """D4RL's file of the task (the paper's data), or with ``generated`` the dataset generated here."""
    return f"local/mujoco/{env}/{level}-v0" if generated else f"d4rl/{env}-{level}-v2"


def rl_config(dataset_id: str, eta: float, weight_temperature: float, max_q_backup: bool = False,
              return_clip: tuple = ()):
    """The paper's EDP/CDP protocol on one Minari dataset: 50 evaluation episodes (the official 10 environments
    x 5), returns clipped to ``return_clip`` before the normalised score (official: kitchen [0, 4], antmaze [0, 1]),
    and the official network: CleanDiffuser's integer-cast time embedding (docs/fidelity.md)."""
    cfg = base_config("edp")
    cfg.agent_config.diffusion.time_embedding = "cleandiffuser"
    cfg.dataset_id, cfg.eta = dataset_id, eta
    cfg.agent_config.weight_temperature, cfg.agent_config.max_q_backup = weight_temperature, max_q_backup
    cfg.seeds, cfg.data_fractions, cfg.gammas = 10, (1.0, 0.4, 0.05), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 200_000, 20_000, 50
    cfg.eval_return_clip = return_clip
    return cfg


def get_config(arg: str = "hopper-medium"):
    """``TASK[,gammas][,generated]``: ``gammas`` trains the official γ grid (``cdp_jax.train.config.OFFICIAL_GAMMAS``)
    in one sweep (choose γ afterwards with ``python -m experiments.select_gamma --workdir=...``); ``generated`` trains
    on the dataset generated here instead of D4RL's file."""
    task, *options = arg.split(",")
    unknown = [o for o in options if o not in ("gammas", "generated")]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} after the task; use ',gammas' and/or ',generated'")
    env, _, level = task.partition("-")
    eta, temperature = task_settings(env, level)
    cfg = rl_config(dataset_id(env, level, "generated" in options), eta, temperature)
    if "gammas" in options:
        cfg.gammas = OFFICIAL_GAMMAS
    return cfg
