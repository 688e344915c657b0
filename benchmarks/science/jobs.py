"""What the paper-table presets run: datasets with their official per-task settings, budgets, and jobs (one sweep
each); shared by ``paper_tables`` (which runs them) and ``paper_report`` (which tabulates them)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset of a preset: its Minari id, the generator that makes it offline ('' = download), the paper's row
    name in Table 1 ('' = not in the paper) and the RL settings of the official per-task config."""

    dataset_id: str
    generate: str = ""
    generate_steps: int = 0
    paper_row: str = ""
    eta: float = 1.0
    dql_eta: float = 0.0                     # DQL's Q weight; 0: the same eta as EDP (the official task configs)
    weight_temperature: float = 0.0          # 0: the agent's default
    imitation: bool = True                   # also run Table 2 (DBC vs CDP) on it
    fractions: tuple = ()                    # data fractions of its EDP/CDP grid (() = the budget's)
    robomimic: str = ""                      # a robomimic task: Table 2 backbones only (benchmarks/science/robomimic_jobs.py)

    @property
    def provenance(self) -> str:
        if self.robomimic:
            return (f"`{self.dataset_id}` (generated demos by `{self.generate}`, not the PH data)" if self.generate
                    else f"`{self.dataset_id}` (robomimic PH file)")
        if self.dataset_id.startswith("local/"):
            how = f"generated here by `{self.generate or 'cdp_jax.datasets'}`" if self.generate else "generated here"
            return f"`{self.dataset_id}` ({how}; not the D4RL data)"
        if self.dataset_id.startswith("d4rl/"):
            return f"`{self.dataset_id}` (D4RL's file, the paper's data)"
        return f"`{self.dataset_id}` (Minari; the paper used D4RL)"


@dataclasses.dataclass(frozen=True)
class Budget:
    """The per-preset training budget: steps for RL and imitation sweeps, seeds, evaluation episodes, fractions."""

    rl_steps: int
    il_steps: int
    seeds: int
    eval_episodes: int
    fractions: tuple
    evaluations: int = 1                     # evaluations per run (the last one is reported)
    eval_workers: int = 1                    # processes stepping the evaluation envs (0: one per CPU core)
    robomimic_backbones: tuple = ("pearce", "bc_gmm")   # Table 2 backbones on robomimic datasets


BUDGETS = {
    "smoke": Budget(rl_steps=20, il_steps=20, seeds=2, eval_episodes=1, fractions=(1.0, 0.05)),
    "offline": Budget(rl_steps=1_500, il_steps=4_000, seeds=3, eval_episodes=5, fractions=(1.0, 0.1, 0.05)),
    # One GPU call (benchmarks/gpu/science.sh): EDP/CDP data scarcity on PointMaze-Medium at a budget where EDP learns.
    "gpu": Budget(rl_steps=20_000, il_steps=20_000, seeds=10, eval_episodes=50, fractions=(1.0, 0.1, 0.05),
                  evaluations=2, eval_workers=0),
    "full": Budget(rl_steps=200_000, il_steps=100_000, seeds=10, eval_episodes=10, fractions=(1.0, 0.1, 0.05),
                   evaluations=10, robomimic_backbones=("pearce", "unet", "dit", "bc_gmm")),
}


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    dataset: Dataset
    agent: str
    fractions: tuple
    gammas: tuple
    backbone: str = ""                       # robomimic jobs: pearce, unet, dit or bc_gmm
