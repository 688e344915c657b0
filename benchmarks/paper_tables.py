"""Reproduce the paper's tables beside its published numbers.

    python -m benchmarks.paper_tables --preset offline --workdir runs/paper      # 2-core CPU, no network, ~1 h
    python -m benchmarks.paper_tables --preset full --workdir runs/paper_full    # GPU + network (Minari ids)

Every table cell is one sweep (``cdp_jax.sweep.Sweep``) in ``WORKDIR/sweeps/<job>``; a rerun resumes or reuses
finished sweeps. Outputs:

* ``WORKDIR/table1.md``: offline RL (BC, DQL, EDP, IDQL, CDP = EDP + contraction) per dataset, with the paper's
  number beside ours where the paper has that dataset, and the limited-data comparison (EDP vs CDP per data
  fraction, with the seed-paired CDP - EDP gain);
* ``WORKDIR/table2.md``: imitation, DBC against CDP (DBC + contraction);
* ``WORKDIR/limited_data.png``: final score against data fraction, EDP vs CDP, per dataset, beside the paper's
  D4RL 10% figure;
* ``WORKDIR/results.csv``: every final row of every sweep.

Numbers are the FINAL evaluation (not the best), mean ± 95% t-interval half-width over seeds. A dataset that
this project generated (``local/...``) is not the D4RL dataset, and the tables say so in their data column.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
import time

import numpy as np
from absl import flags

from cdp_jax import results
from cdp_jax.cli import run_flags_cli
from cdp_jax.io import atomic_write_text

PAPER_CSV = os.path.join(os.path.dirname(__file__), "reference", "paper.csv")
CDP_GAMMA = 0.1


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

    @property
    def provenance(self) -> str:
        if self.dataset_id.startswith("local/"):
            how = f"generated here by `{self.generate or 'cdp_jax.datasets'}`" if self.generate else "generated here"
            return f"`{self.dataset_id}` ({how}; not the D4RL data)"
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


BUDGETS = {
    "smoke": Budget(rl_steps=20, il_steps=20, seeds=2, eval_episodes=1, fractions=(1.0, 0.05)),
    "offline": Budget(rl_steps=1_500, il_steps=4_000, seeds=3, eval_episodes=5, fractions=(1.0, 0.1, 0.05)),
    # One GPU call (benchmarks/gpu_science.sh): EDP/CDP data scarcity on PointMaze-Medium at a budget where EDP learns.
    "gpu": Budget(rl_steps=20_000, il_steps=20_000, seeds=10, eval_episodes=50, fractions=(1.0, 0.1, 0.05),
                  evaluations=2, eval_workers=0),
    "full": Budget(rl_steps=200_000, il_steps=100_000, seeds=10, eval_episodes=10, fractions=(1.0, 0.1, 0.05),
                   evaluations=10),
}

def preset_datasets(preset: str, local_ids: set[str], generate_steps: int) -> list[Dataset]:
    """The datasets of a preset. ``offline`` adds any locally generated locomotion dataset it finds."""
    from experiments.configs import d4rl_kitchen
    from experiments.configs.d4rl_mujoco import TASKS
    if preset == "full":
        out = [Dataset(f"mujoco/{env}/{level}-v0", paper_row=f"{env}-{level}", eta=eta, weight_temperature=temp,
                       imitation=False)
               for (env, level), (eta, temp) in TASKS.items() if level == "medium"]
        kitchen = d4rl_kitchen.get_config("complete")
        out.append(Dataset(kitchen.dataset_id, paper_row="kitchen-complete", eta=kitchen.eta,
                           weight_temperature=kitchen.agent_config.weight_temperature))
        return out
    if preset == "gpu":
        return [Dataset("local/pointmaze/medium-v0", "pointmaze-medium", generate_steps, imitation=False)]
    # DQL diverges at eta = 1 on the generated PointMaze (measured), so its PointMaze rows use 0.1, said in table1.md.
    out = [Dataset("local/pointmaze/umaze-v0", "pointmaze-umaze", generate_steps, dql_eta=0.1),
           Dataset("local/pointmaze/medium-v0", "pointmaze-medium", generate_steps, dql_eta=0.1,
                   fractions=(1.0, 0.05) if preset == "offline" else ())]        # keeps the preset near 60 min
    if preset == "offline":
        out += [Dataset(f"local/mujoco/{env}/{level}-v0", paper_row=f"{env}-{level}", eta=eta,
                        weight_temperature=temp, imitation=False)
                for (env, level), (eta, temp) in TASKS.items() if f"local/mujoco/{env}/{level}-v0" in local_ids]
    return out


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    dataset: Dataset
    agent: str
    fractions: tuple
    gammas: tuple


# Rough seconds per member-update on the 2-core CPU (measured), only to weight the progress ETA between jobs.
RELATIVE_COST = {"edp": 1 / 25, "dql": 1 / 20, "idql": 1 / 50, "bc": 1 / 1000, "dbc": 1 / 150}


def job_cost(job: Job, budget: Budget) -> float:
    members = len(job.fractions) * len(job.gammas) * budget.seeds
    return members * (budget.il_steps if job.agent == "dbc" else budget.rl_steps) * RELATIVE_COST[job.agent]


def jobs_for(datasets: list[Dataset], budget: Budget) -> list[Job]:
    jobs = []
    for ds in datasets:
        stem = ds.dataset_id.replace("/", "_")
        jobs.append(Job(f"{stem}-edp", ds, "edp", ds.fractions or budget.fractions, (0.0, CDP_GAMMA)))
        jobs += [Job(f"{stem}-{agent}", ds, agent, (1.0,), (0.0,)) for agent in ("bc", "dql", "idql")]
        if ds.imitation:
            jobs.append(Job(f"{stem}-dbc", ds, "dbc", (1.0,), (0.0, CDP_GAMMA)))
    return jobs


def sweep_config(job: Job, budget: Budget):
    """The sweep config of one job: the project's paper configs with the preset's budget."""
    from cdp_jax.config import base_config
    ds = job.dataset
    cfg = base_config()
    cfg.dataset_id, cfg.generate, cfg.generate_steps = ds.dataset_id, ds.generate, ds.generate_steps
    cfg.agent = job.agent
    cfg.seeds, cfg.data_fractions, cfg.gammas = budget.seeds, job.fractions, job.gammas
    steps = budget.il_steps if job.agent == "dbc" else budget.rl_steps
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = steps, steps // budget.evaluations, budget.eval_episodes
    cfg.eval_workers = budget.eval_workers
    if job.agent == "dbc":
        from experiments.configs.pointmaze import official_il_recipe
        official_il_recipe(cfg)
    elif job.agent in ("edp", "dql"):
        cfg.eta = ds.dql_eta if job.agent == "dql" and ds.dql_eta else ds.eta
        if ds.weight_temperature:
            cfg.agent_config.weight_temperature = ds.weight_temperature
    return cfg


def run_job(job: Job, budget: Budget, workdir: str, report_only: bool = False) -> list[dict]:
    """Runs, resumes or reuses one job's sweep (a changed budget starts it over); returns its final rows.
    ``report_only``: no training, the rows of the last evaluation the job reached (none if it never ran)."""
    from cdp_jax.workdir import fingerprint
    from cdp_jax.sweep import Sweep
    path = os.path.join(workdir, "sweeps", job.name)
    if report_only:
        return results.final_rows(results.read_csv(os.path.join(path, "results.csv")))
    cfg = sweep_config(job, budget)
    cfg.overwrite = True
    done = results.read_csv(os.path.join(path, "results.csv"))
    recorded = os.path.join(path, "config.json")
    finished = bool(done) and max(r["step"] for r in done) >= cfg.num_steps and os.path.exists(recorded)
    if finished:
        with open(recorded) as f:
            finished = f.read() == fingerprint(cfg.to_dict())
    if not finished:
        Sweep(cfg, path).run()
        done = results.read_csv(os.path.join(path, "results.csv"))
    return results.final_rows(done)


# ---------------------------------------------------------------- the paper's numbers and the tables

def read_paper(path: str = PAPER_CSV) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def paper_value(paper: list[dict], table: str, row: str, column: str) -> float:
    for r in paper:
        if r["table"] == table and r["row"] == row and r["column"] == column:
            return float(r["value"])
    return math.nan


def cell(rows: list[dict], dataset_id: str, agent: str, fraction: float, gamma: float, metric: str) -> tuple:
    """(mean, 95% CI half-width, n) of the final ``metric`` over seeds for one grid cell."""
    vals = [r[metric] for r in rows if r["dataset_id"] == dataset_id and r["agent"] == agent
            and r["data_fraction"] == fraction and r["gamma"] == gamma]
    mean, _, ci, n = results.mean_ci(vals)
    return mean, ci, n


def seed_gains(rows: list[dict], dataset_id: str, fraction: float, metric: str = "normalized_score") -> dict:
    """``{seed: CDP - EDP}``; members with the same seed share their data subset, initial network and batches."""
    def by_seed(gamma):
        return {r["seed"]: r[metric] for r in rows if r["dataset_id"] == dataset_id and r["agent"] == "edp"
                and r["data_fraction"] == fraction and r["gamma"] == gamma}
    edp, cdp = by_seed(0.0), by_seed(CDP_GAMMA)
    return {s: cdp[s] - edp[s] for s in sorted(set(edp) & set(cdp))}


def paired_gain(rows: list[dict], dataset_id: str, fraction: float) -> tuple:
    """(mean, 95% CI, n) of the seed-paired CDP - EDP gain."""
    mean, _, ci, n = results.mean_ci(list(seed_gains(rows, dataset_id, fraction).values()))
    return mean, ci, n


def _fmt(mean: float, ci: float, n: int, digits: int = 1) -> str:
    if n == 0 or not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}" if np.isfinite(ci) else f"{mean:.{digits}f}"


def table1_markdown(rows, datasets: list[Dataset], paper, budget: Budget, preset: str) -> str:
    lines = [f"# Table 1: offline RL (preset `{preset}`)", "",
             (f"Normalised score (0-100) at the final evaluation after {_steps_reached(rows, budget.rl_steps)} gradient "
              f"steps, mean ± 95% CI "
             f"(t-interval) over {budget.seeds} seeds, {budget.eval_episodes} evaluation episodes per seed. "
             f"CDP = EDP + contraction (γ = {CDP_GAMMA}, Frobenius, t < 0.1·T). Each cell: ours (paper)."), "",
             "| dataset | data used | BC | DQL | EDP | IDQL | CDP |", "|---|---|---|---|---|---|---|"]
    for ds in datasets:
        cells = []
        for agent, gamma, column in (("bc", 0.0, "BC"), ("dql", 0.0, "DQL"), ("edp", 0.0, "EDP"),
                                     ("idql", 0.0, "IDQL"), ("edp", CDP_GAMMA, "CDP")):
            ours = _fmt(*cell(rows, ds.dataset_id, agent, 1.0, gamma, "normalized_score"))
            cells.append(f"{ours} ({results.fmt_number(paper_value(paper, 'table1', ds.paper_row, column))})")
        lines.append(f"| {ds.paper_row or ds.dataset_id.split('/', 1)[1]} | {ds.provenance} | " + " | ".join(cells) + " |")
    avg = [results.fmt_number(paper_value(paper, "table1", "Average over all envs", c))
           for c in ("BC", "DQL", "EDP", "IDQL", "CDP")]
    lines.append("| paper: average over its D4RL tasks | D4RL | " + " | ".join(f"– ({a})" for a in avg) + " |")
    capped = [f"{ds.dataset_id} (η = {ds.dql_eta:g})" for ds in datasets if ds.dql_eta and ds.dql_eta != ds.eta]
    if capped:
        lines += ["", "DQL's Q weight differs from EDP's on " + ", ".join(capped) + ": DQL diverges at EDP's η there."]
    lines += ["", "## Limited data: EDP against CDP per data fraction", "",
              ("Subsets are random transitions, the same subset for EDP and CDP at each seed; the gain is the "
              "seed-paired CDP - EDP difference (mean ± 95% CI)."), "",
              "| dataset | fraction | EDP | CDP | CDP − EDP | seeds |", "|---|---|---|---|---|---|"]
    for ds in datasets:
        for frac in ds.fractions or budget.fractions:
            edp = cell(rows, ds.dataset_id, "edp", frac, 0.0, "normalized_score")
            cdp = cell(rows, ds.dataset_id, "edp", frac, CDP_GAMMA, "normalized_score")
            gain = paired_gain(rows, ds.dataset_id, frac)
            lines.append(f"| {ds.dataset_id} | {frac:g} | {_fmt(*edp)} | {_fmt(*cdp)} | {_fmt(*gain)} | {gain[2]} |")
    lines += ["", "Paper, D4RL at 10% data (read off its figure): " + "; ".join(
        f"{row}: EDP {results.fmt_number(paper_value(paper, 'limited_data', row, 'EDP'), 0)}, "
        f"CDP {results.fmt_number(paper_value(paper, 'limited_data', row, 'CDP'), 0)}"
        for row in ("Mujoco-M", "Mujoco-MR", "Mujoco-ME", "Kitchen", "Antmaze-M")) + ".", "",
              scarcity_verdict(rows, datasets, budget)]
    return "\n".join(lines) + "\n"


def _steps_reached(rows, planned: int) -> str:
    """The planned step count, or what the rows reached when a run was cut short."""
    reached = {int(r["step"]) for r in rows if r["agent"] != "dbc"}
    if not reached or reached == {planned}:
        return str(planned)
    return f"{'/'.join(map(str, sorted(reached)))} (of {planned} planned: cut short)"


def scarcity_verdict(rows, datasets: list[Dataset], budget: Budget) -> str:
    """Whether the CDP - EDP gain is larger at the smallest fraction than at 100%, per dataset, with the 95% CI of
    the per-seed difference of the two gains (gain at the small fraction minus gain at 1.0)."""
    parts = []
    for ds in datasets:
        small = min(ds.fractions or budget.fractions)
        per_seed = {frac: seed_gains(rows, ds.dataset_id, frac) for frac in (1.0, small)}
        seeds = sorted(set(per_seed[1.0]) & set(per_seed[small]))
        if not seeds or small == 1.0:
            continue
        full = np.mean([per_seed[1.0][s] for s in seeds])
        scarce = np.mean([per_seed[small][s] for s in seeds])
        diff, _, ci, n = results.mean_ci([per_seed[small][s] - per_seed[1.0][s] for s in seeds])
        verdict = "holds" if diff > 0 else "does not hold"
        if np.isfinite(ci):
            verdict += " (significant at 95%)" if abs(diff) > ci else " (not significant at 95%)"
        parts.append(f"`{ds.dataset_id}`: gain {scarce:+.1f} at fraction {small:g} vs {full:+.1f} at 1.0, "
                     f"difference {diff:+.1f} ± {ci:.1f} over {n} seeds: {verdict}")
    if not parts:
        return ""
    return "**Data-scarcity claim (the CDP − EDP gain is larger with less data):**\n\n" + "\n".join(
        f"- {p}" for p in parts)


def table2_markdown(rows, datasets: list[Dataset], paper, budget: Budget, preset: str) -> str:
    lines = [f"# Table 2: imitation, DBC against CDP (preset `{preset}`)", "",
             (f"Diffusion BC (DQL MLP, x0, 15-step DPM-Solver++) with γ = 0 (DBC) and γ = {CDP_GAMMA} (CDP), "
             f"{budget.il_steps} gradient steps, final evaluation, mean ± 95% CI over {budget.seeds} seeds."), "",
             "| dataset | data used | metric | DBC | CDP |", "|---|---|---|---|---|"]
    for ds in (d for d in datasets if d.imitation):
        for metric, label in (("success", "success rate"), ("normalized_score", "normalised score")):
            dbc = cell(rows, ds.dataset_id, "dbc", 1.0, 0.0, metric)
            cdp = cell(rows, ds.dataset_id, "dbc", 1.0, CDP_GAMMA, metric)
            digits = 2 if metric == "success" else 1
            lines.append(f"| {ds.dataset_id.split('/', 1)[1]} | {ds.provenance} | {label} | "
                         f"{_fmt(*dbc, digits)} | {_fmt(*cdp, digits)} |")
    lines += ["", "The paper's Table 2 is on robomimic, which has no Minari release; its numbers (success rate):", "",
              "| task | DBC-DiT | CDP-DiT | DP-Unet | CDP-Unet |", "|---|---|---|---|---|"]
    for row in ("Transport-L", "Transport-H", "Can-H", "Average"):
        lines.append(f"| {row} | " + " | ".join(results.fmt_number(paper_value(paper, "table2", row, c), 2)
                                              for c in ("DBC-DiT", "CDP-DiT", "DP-Unet", "CDP-Unet")) + " |")
    return "\n".join(lines) + "\n"


def limited_data_plot(rows, datasets: list[Dataset], paper, budget: Budget, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(datasets) + 1, figsize=(4.0 * (len(datasets) + 1), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        fractions = sorted(ds.fractions or budget.fractions)
        for gamma, label in ((0.0, "EDP"), (CDP_GAMMA, "CDP")):
            stats_ = [cell(rows, ds.dataset_id, "edp", f, gamma, "normalized_score") for f in fractions]
            ax.errorbar(fractions, [s[0] for s in stats_], yerr=np.nan_to_num([s[1] for s in stats_]), marker="o",
                        capsize=3, label=label)
        ax.set_xscale("log"), ax.set_xlabel("data fraction"), ax.set_ylabel("normalised score")
        ax.set_title(ds.dataset_id.split("/", 1)[1], fontsize=9)
        ax.legend()
    ax = axes[0][-1]
    tasks = ("Mujoco-M", "Mujoco-MR", "Mujoco-ME", "Kitchen", "Antmaze-M")
    x = np.arange(len(tasks))
    for k, column in enumerate(("EDP", "CDP")):
        ax.bar(x + 0.4 * k - 0.2, [paper_value(paper, "limited_data", t, column) for t in tasks], 0.4, label=column)
    ax.set_xticks(x, tasks, rotation=30, fontsize=8), ax.set_title("paper: D4RL at 10% (read off)", fontsize=9)
    ax.legend()
    fig.suptitle(f"Final score vs data fraction, mean ± 95% CI over {budget.seeds} seeds", fontsize=10)
    results.save_figure(fig, path)


def write_outputs(rows, datasets, budget: Budget, preset: str, workdir: str) -> None:
    paper = read_paper()
    atomic_write_text(os.path.join(workdir, "table1.md"), table1_markdown(rows, datasets, paper, budget, preset))
    atomic_write_text(os.path.join(workdir, "table2.md"), table2_markdown(rows, datasets, paper, budget, preset))
    limited_data_plot(rows, datasets, paper, budget, os.path.join(workdir, "limited_data.png"))
    results.write_csv(os.path.join(workdir, "results.csv"), rows)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_enum("preset", "offline", sorted(BUDGETS), "budget and datasets", flag_values=fv)
    flags.DEFINE_string("workdir", "runs/paper", "one sweep workdir per job under WORKDIR/sweeps, tables at the top",
                        flag_values=fv)
    flags.DEFINE_integer("generate_steps", 300_000, "transitions per generated PointMaze dataset (offline/smoke/gpu "
                         "presets)", flag_values=fv)
    flags.DEFINE_list("agents", [], "run only these agents' jobs (e.g. edp)", flag_values=fv)
    flags.DEFINE_bool("report_only", False, "train nothing: write the tables from what the jobs' sweeps have so far",
                      flag_values=fv)


def run(_, args: flags.FlagValues) -> int:
    import minari
    budget = BUDGETS[args.preset]
    datasets = preset_datasets(args.preset, set(minari.list_local_datasets()), args.generate_steps)
    jobs = [j for j in jobs_for(datasets, budget) if not args.agents or j.agent in args.agents]
    if not jobs:
        print(f"error: no job of preset {args.preset!r} uses the agents {','.join(args.agents)!r}", file=sys.stderr)
        return 2
    os.makedirs(args.workdir, exist_ok=True)
    rows, start = [], time.time()
    costs = [job_cost(job, budget) for job in jobs]
    for k, job in enumerate(jobs):
        elapsed = time.time() - start
        eta = f", about {elapsed * sum(costs[k:]) / sum(costs[:k]) / 60:.0f} min left" if k and elapsed > 60 else ""
        print(f"[{k + 1}/{len(jobs)}] {job.name}: {job.agent}, fractions {job.fractions}, gammas {job.gammas} "
              f"({elapsed / 60:.1f} min so far{eta})", flush=True)
        try:
            rows += run_job(job, budget, args.workdir, args.report_only)
        except (ValueError, FileNotFoundError) as err:
            print(f"error in job {job.name}: {err}", file=sys.stderr)
            return 2
        write_outputs(rows, datasets, budget, args.preset, args.workdir)
    print(f"done in {(time.time() - start) / 60:.1f} min: {args.workdir}/table1.md, table2.md, limited_data.png")
    return 0


def main(argv: list[str]) -> int:
    """``argv`` without the program name, e.g. ``["--preset=smoke", "--workdir=/tmp/t"]``."""
    return run_flags_cli(["python -m benchmarks.paper_tables", *argv], __doc__, define_flags, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
