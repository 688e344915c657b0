"""Reproduce the paper's tables beside its published numbers.

    python -m benchmarks.science.paper_tables --preset offline --workdir runs/paper      # 2-core CPU, no network, ~1 h
    python -m benchmarks.science.paper_tables --preset full --workdir runs/paper_full    # GPU + network (Minari ids)
    python -m benchmarks.science.paper_tables --preset full --robomimic_data=ph ...      # Table 2 on robomimic's PH files

Every table cell is one sweep (``cdp_jax.train.sweep.Sweep``) in ``WORKDIR/sweeps/<job>``; a rerun resumes or reuses
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

import functools
import os
import sys
import time

from absl import flags

from benchmarks.science import robomimic_jobs
from benchmarks.science.jobs import BUDGETS, Budget, Dataset, Job
from cdp_jax.train import results
from cdp_jax.train.cli import run_flags_cli

from benchmarks.science.paper_report import CDP_GAMMA, write_outputs
from experiments.configs import d4rl_kitchen
from experiments.configs.d4rl_mujoco import TASKS
from cdp_jax.datasets import robomimic_releases
from experiments.configs.robomimic import get_config
from cdp_jax.train.config import base_config
from experiments.configs.pointmaze import official_il_recipe
from cdp_jax.train.workdir import fingerprint
from cdp_jax.train.sweep import Sweep


def preset_datasets(preset: str, local_ids: set[str], generate_steps: int, robomimic_data: str = "generated"
                    ) -> list[Dataset]:
    """The datasets of a preset. ``offline`` adds any locally generated locomotion dataset it finds.
    ``robomimic_data="ph"``: robomimic's PH files (downloaded on first use) instead of generated demos, with
    Transport, which has no scripted demonstrator."""
    robomimic = functools.partial(robomimic_datasets, data=robomimic_data)
    if preset == "full":
        out = [Dataset(f"d4rl/{env}-{level}-v2", paper_row=f"{env}-{level}", eta=eta, weight_temperature=temp,
                       imitation=False) for (env, level), (eta, temp) in TASKS.items()]      # D4RL's own files
        kitchen = d4rl_kitchen.get_config("complete")
        out.append(Dataset(kitchen.dataset_id, paper_row="kitchen-complete", eta=kitchen.eta,
                           weight_temperature=kitchen.agent_config.weight_temperature))
        return out + robomimic(("lift", "can", "square", "lift-image", "can-image")
                               + (("transport", "transport-image") if robomimic_data == "ph" else ()))
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
        out += robomimic(("lift",))
    return out


def robomimic_datasets(tasks, demos: int = 200, data: str = "generated") -> list[Dataset]:
    """Table 2's robomimic datasets: generated (scripted) demonstrations, or with ``data="ph"`` robomimic's PH
    files (their place under the datasets folder; a sweep downloads a missing one where Hugging Face answers).
    ``TASK-image`` tasks carry the cameras (Table 2's "-H" rows)."""
    if data == "ph":
        return [Dataset(robomimic_releases.dataset_id(t.removesuffix("-image"), "ph",
                                                      "image" if t.endswith("-image") else "low_dim"),
                        imitation=False, robomimic=t) for t in tasks]
    return [Dataset(get_config(t).dataset_id, f"robomimic-{t.removesuffix('-image')}", demos, imitation=False,
                    robomimic=t) for t in tasks]


# Rough seconds per member-update on the 2-core CPU (measured), only to weight the progress ETA between jobs.
RELATIVE_COST = {"edp": 1 / 25, "dql": 1 / 20, "idql": 1 / 50, "bc": 1 / 1000, "dbc": 1 / 150, "bc_gmm": 1 / 500,
                 "pearce": 1 / 40, "unet": 1, "dit": 1 / 2}


def job_cost(job: Job, budget: Budget) -> float:
    members = len(job.fractions) * len(job.gammas) * budget.seeds
    steps = budget.il_steps if job.agent in ("dbc", "bc_gmm") else budget.rl_steps
    return members * steps * RELATIVE_COST[job.backbone or job.agent]


def jobs_for(datasets: list[Dataset], budget: Budget) -> list[Job]:
    jobs = []
    for ds in datasets:
        stem = ds.dataset_id.replace("/", "_")
        if ds.robomimic:
            jobs += [Job(f"{stem}-{b}", ds, "bc_gmm" if b == "bc_gmm" else "dbc", robomimic_jobs.FRACTIONS,
                         robomimic_jobs.gammas(b), b) for b in budget.robomimic_backbones
                     if not (b == "bc_gmm" and ds.robomimic.endswith("-image"))]     # BC-GMM: low-dim only
            continue
        jobs.append(Job(f"{stem}-edp", ds, "edp", ds.fractions or budget.fractions, (0.0, CDP_GAMMA)))
        jobs += [Job(f"{stem}-{agent}", ds, agent, (1.0,), (0.0,)) for agent in ("bc", "dql", "idql")]
        if ds.imitation:
            jobs.append(Job(f"{stem}-dbc", ds, "dbc", (1.0,), (0.0, CDP_GAMMA)))
    return jobs


def sweep_config(job: Job, budget: Budget):
    """The sweep config of one job: the project's paper configs with the preset's budget."""
    ds = job.dataset
    if job.backbone:
        cfg = robomimic_jobs.sweep_config(ds.robomimic, job.backbone, budget.seeds, budget.il_steps,
                                          budget.evaluations, budget.eval_episodes, budget.eval_workers)
        cfg.dataset_id, cfg.generate, cfg.generate_steps = ds.dataset_id, ds.generate, ds.generate_steps
        return cfg
    cfg = base_config(job.agent)
    cfg.dataset_id, cfg.generate, cfg.generate_steps = ds.dataset_id, ds.generate, ds.generate_steps
    cfg.seeds, cfg.data_fractions, cfg.gammas = budget.seeds, job.fractions, job.gammas
    steps = budget.il_steps if job.agent == "dbc" else budget.rl_steps
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = steps, steps // budget.evaluations, budget.eval_episodes
    cfg.eval_workers = budget.eval_workers
    if job.agent == "dbc":
        official_il_recipe(cfg)
    elif job.agent in ("edp", "dql"):
        cfg.eta = ds.dql_eta if job.agent == "dql" and ds.dql_eta else ds.eta
        if ds.weight_temperature:
            cfg.agent_config.weight_temperature = ds.weight_temperature
    if "diffusion" in cfg.agent_config:                 # the official network (docs/fidelity.md)
        cfg.agent_config.diffusion.time_embedding = "cleandiffuser"
    return cfg


def run_job(job: Job, budget: Budget, workdir: str, report_only: bool = False) -> list[dict]:
    """Runs, resumes or reuses one job's sweep (a changed budget starts it over); returns its final rows.
    ``report_only``: no training, the rows of the last evaluation the job reached (none if it never ran)."""
    path = os.path.join(workdir, "sweeps", job.name)
    if report_only:
        done = results.read_csv(os.path.join(path, "results.csv"))
        return results.final_rows(robomimic_jobs.relabel(done, job.backbone) if job.backbone else done)
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
    return results.final_rows(robomimic_jobs.relabel(done, job.backbone) if job.backbone else done)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_enum("preset", "offline", sorted(BUDGETS), "budget and datasets", flag_values=fv)
    flags.DEFINE_string("workdir", "runs/paper", "one sweep workdir per job under WORKDIR/sweeps, tables at the top",
                        flag_values=fv)
    flags.DEFINE_integer("generate_steps", 300_000, "transitions per generated PointMaze dataset (offline/smoke/gpu "
                         "presets)", flag_values=fv)
    flags.DEFINE_list("agents", [], "run only these agents' jobs (e.g. edp)", flag_values=fv)
    flags.DEFINE_enum("robomimic_data", "generated", ["generated", "ph"], "Table 2's robomimic data: scripted demos "
                      "generated here, or robomimic's PH files (downloaded on first use; adds Transport)",
                      flag_values=fv)
    flags.DEFINE_bool("report_only", False, "train nothing: write the tables from what the jobs' sweeps have so far",
                      flag_values=fv)


def run(_, args: flags.FlagValues) -> int:
    import minari
    budget = BUDGETS[args.preset]
    datasets = preset_datasets(args.preset, set(minari.list_local_datasets()), args.generate_steps,
                               args.robomimic_data)
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
    return run_flags_cli(["python -m benchmarks.science.paper_tables", *argv], __doc__, define_flags, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
