"""The robomimic part of ``benchmarks/science/paper_tables.py``: Table 2 (success rate per backbone, DBC/DP against CDP)
and the Robomimic-Limited comparison (average episode reward at 10% of the data), beside the paper's numbers.

Each backbone is one sweep of ``experiments/configs/robomimic.py:TASK,BACKBONE`` with the preset's budget; its rows
are labelled ``dbc:pearce``, ``dbc:unet``, ``dbc:dit`` or ``bc_gmm`` in the tables' results.csv.
"""
from __future__ import annotations

from cdp_jax.train import results
from experiments.configs.robomimic import IMAGE_OBS_KEYS, gammas
from experiments.configs.robomimic import get_config

# backbone -> (results label, the paper's column at γ = 0, at γ > 0, the limited-data figure's column at γ = 0, > 0)
COLUMNS = {"pearce": ("dbc:pearce", "DBC-MLP", "CDP-MLP", "DBC-MLP", "CDP"),
           "unet": ("dbc:unet", "DP-Unet", "CDP-Unet", "DP-Chi", ""),
           "dit": ("dbc:dit", "DP-DiT", "CDP-DiT", "DP-DiT", ""),
           "bc_gmm": ("bc_gmm", "BC-GMM", "", "BC", "")}
FRACTIONS = (1.0, 0.1)


def label(backbone: str) -> str:
    return COLUMNS[backbone][0]


def sweep_config(task: str, backbone: str, seeds: int, steps: int, evaluations: int, episodes: int, workers: int):
    """The sweep of one backbone on one task with a preset's budget."""
    cfg = get_config(f"{task},{backbone}")
    cfg.seeds, cfg.data_fractions = seeds, FRACTIONS                 # γ: the config's own, gammas(backbone)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.eval_workers = steps, steps // evaluations, episodes, workers
    return cfg


def relabel(rows: list[dict], backbone: str) -> list[dict]:
    return [dict(r, agent=label(backbone)) for r in rows]


def table(rows, dataset_id: str, task: str, provenance: str, paper, backbones, cell, fmt, paper_value) -> list[str]:
    """Markdown lines: success rate at 100% data (Table 2) and average reward at 10% (Robomimic-Limited)."""
    image = task.endswith("-image")
    row = f"{task.removesuffix('-image').capitalize()}-{'H' if image else 'L'}"     # the paper's row names
    cameras = sum(k.endswith("_image") for k in IMAGE_OBS_KEYS.get(task, ()))
    lines = [f"### {row} ({f'{cameras} cameras' if image else 'low-dim'}): {provenance}", "",
             "| backbone | γ | success rate, 100% data (paper) | average reward, 10% data (paper, read off) |",
             "|---|---|---|---|"]
    for backbone in (b for b in backbones if not (b == "bc_gmm" and image)):        # BC-GMM: low-dim only
        name, table_0, table_g, limited_0, limited_g = COLUMNS[backbone]
        for g, t_col, l_col in zip(gammas(backbone), (table_0, table_g), (limited_0, limited_g)):
            success = fmt(*cell(rows, dataset_id, name, 1.0, g, "success"), 2)
            reward = fmt(*cell(rows, dataset_id, name, 0.1, g, "return"), 1)
            paper_t = results.fmt_number(paper_value(paper, "table2", row, t_col), 2) if t_col else "–"
            paper_l = results.fmt_number(paper_value(paper, "limited_data", row, l_col), 0) if l_col else "–"
            lines.append(f"| {backbone} | {g:g} | {success} ({paper_t}) | {reward} ({paper_l}) |")
    return lines + [""]
