"""What the contraction does in offline RL: arms of time embedding × where the penalty acts × γ, seed-paired.

    python -m benchmarks.science.settling --preset=cpu [--workdir=runs/settling]     # 2 cores, ~100 min, resumable
    python -m benchmarks.science.settling --preset=gpu --workdir=/tmp/settling       # one H100 call (gpu/science.sh)
    python -m benchmarks.science.settling --preset=cpu --report_only                 # tables from what has run

Arms (each one or more sweeps in ``WORKDIR/NAME``, ``--arms`` lists the names; every member shares seeds and subsets
with the members of every other sweep):

* A: ``float`` embedding (the sinusoid the official code means), penalty on t < 0.1·T, γ ∈ {0, 0.01, 0.1};
* B: ``float`` embedding, penalty at every level, γ 0.1 (its reference is A's γ 0 member: at γ 0 the penalty's
  levels do not matter, and a member draws the same numbers in any grid);
* C: ``cleandiffuser`` embedding (what the official code computes), penalty on t < 0.1·T, γ ∈ {0, 0.1}.

Each CDP member is compared with the γ 0 member of its own embedding, of the same seed and data fraction, at the
last evaluation both reached: normalised score, success, the spread of the 100 candidates before selection
(``candidate_std``) and λmax(J_sym) of the x0 network at low levels (t < 0.1·T, where the RL penalty acts) and high
levels (t ≥ T/2), measured on the final checkpoint at every level (:func:`cdp_jax.analysis.diagnostics.diagnose_sweep`).
Also C's γ 0 against A's γ 0: the embedding alone. Every table is rewritten as soon as an arm finishes.

Writes ``benchmarks/results/settling_DEVICE_DATE.{json,md,csv,png}`` (``--out`` names another stem): the paired
rows with mean ± 95% interval, seeds ahead and paired-t / Wilcoxon p; the PNG shows the paired score differences and
λmax per level of each arm.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
from absl import flags

from benchmarks import record
from cdp_jax.analysis.comparison import paired_test
from cdp_jax.analysis.diagnostics import diagnose_sweep
from cdp_jax.io import atomic_write_text
from cdp_jax.train import results
from cdp_jax.train.cli import run_flags_cli
from cdp_jax.train.results import save_figure
from cdp_jax.train.sweep import Sweep
from experiments.configs.pointmaze_rl import get_config

METRICS = ("normalized_score", "success", "candidate_std", "lambda_low", "lambda_high")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One sweep of an arm (an arm may take several, e.g. A's γ 0.01 at fewer fractions): its network, where the
    penalty acts, its γ and fractions, and the sweep whose γ 0 members its CDP members are paired with."""
    label: str
    embedding: str
    low_noise_fraction: float
    gammas: tuple
    reference: str
    fractions: tuple = ()              # () = the preset's


@dataclasses.dataclass(frozen=True)
class Preset:
    dataset_id: str
    generate: str
    generate_steps: int
    seeds: int
    steps: int
    evaluations: int
    eval_episodes: int
    fractions: tuple
    arms: dict
    eval_workers: int = 1


A = Arm("A", "float", 0.1, (0.0, 0.01, 0.1), "A")
C = Arm("C", "cleandiffuser", 0.1, (0.0, 0.1), "C")


PRESETS = {
    "cpu": Preset("local/pointmaze/umaze-v0", "pointmaze-umaze", 1_000_000, seeds=5, steps=4_000, evaluations=1,
                  eval_episodes=10, fractions=(1.0, 0.1),
                  arms={"A": dataclasses.replace(A, gammas=(0.0, 0.1)), "C": C,
                        "B": Arm("B", "float", 1.0, (0.1,), "A", (0.1,)),
                        "A-0.01": Arm("A", "float", 0.1, (0.01,), "A", (0.1,))}),
    "gpu": Preset("local/pointmaze/medium-v0", "pointmaze-medium", 300_000, seeds=10, steps=20_000, evaluations=1,
                  eval_episodes=50, fractions=(1.0, 0.1), arms={"A": A, "C": C}, eval_workers=0),
    "smoke": Preset("local/pointmaze/umaze-100k-v0", "pointmaze-umaze", 100_000, seeds=2, steps=20, evaluations=1,
                    eval_episodes=1, fractions=(1.0, 0.1),
                    arms={"A": A, "B": Arm("B", "float", 1.0, (0.1,), "A", (0.1,)), "C": C}),
}


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_enum("preset", "cpu", list(PRESETS), "dataset, budget and arms", flag_values=fv)
    flags.DEFINE_list("arms", [], "run only these sweeps of the preset's arms, in this order (default: all)",
                      flag_values=fv)
    flags.DEFINE_integer("steps", 0, "gradient steps per member (0: the preset's)", flag_values=fv)
    flags.DEFINE_integer("seeds", 0, "seeds per arm (0: the preset's)", flag_values=fv)
    flags.DEFINE_integer("eval_episodes", 0, "evaluation episodes per member (0: the preset's)", flag_values=fv)
    flags.DEFINE_integer("states", 32, "dataset states λmax per level is averaged over", flag_values=fv)
    flags.DEFINE_string("workdir", "runs/settling", "where the arms' sweeps go (a rerun resumes them)", flag_values=fv)
    flags.DEFINE_string("out", "", "result stem (default: benchmarks/results/settling_DEVICE_DATE)", flag_values=fv)
    flags.DEFINE_bool("report_only", False, "write the tables from the sweeps as they are; train nothing",
                      flag_values=fv)


def sweep_config(preset: Preset, arm: Arm, steps: int, seeds: int, episodes: int):
    cfg = get_config()
    cfg.dataset_id, cfg.generate, cfg.generate_steps = preset.dataset_id, preset.generate, preset.generate_steps
    d = cfg.agent_config.diffusion
    d.time_embedding, d.contraction.low_noise_fraction = arm.embedding, arm.low_noise_fraction
    cfg.seeds, cfg.data_fractions, cfg.gammas = seeds, arm.fractions or preset.fractions, arm.gammas
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = steps, steps // preset.evaluations, episodes
    cfg.eval_workers = preset.eval_workers
    return cfg


def member_table(workdir: str, levels_low: int, num_states: int) -> dict:
    """``{(seed, fraction, γ): row}``: the member's last results.csv row, with ``lambda_low`` / ``lambda_high``
    (mean λmax over levels t < levels_low and t ≥ T/2 of its final checkpoint) and ``lambda_levels`` (every t)."""
    rows = {}
    for r in results.read_csv(os.path.join(workdir, "results.csv")):
        key = (r["seed"], r["data_fraction"], r["gamma"])
        if key not in rows or r["step"] > rows[key]["step"]:
            rows[key] = dict(r)
    curves = level_curves(workdir, max((r["step"] for r in rows.values()), default=0), num_states)
    for key, by_t in curves.items():
        if key in rows:
            values = np.array([by_t[t] for t in sorted(by_t)])
            rows[key].update(lambda_low=float(values[:levels_low].mean()),
                             lambda_high=float(values[len(values) // 2:].mean()), lambda_levels=values.tolist())
    return rows


def level_curves(workdir: str, step: int, num_states: int) -> dict:
    """``{(seed, fraction, γ): {t: λmax}}`` of the sweep's checkpoint at ``step``, measured once and kept in
    ``WORKDIR/settling_levels.json`` (a rerun of the report reads it back instead of measuring again)."""
    path = os.path.join(workdir, "settling_levels.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved["step"] == step and saved["states"] == num_states:
            return {tuple(k): {int(t): v for t, v in c.items()} for k, c in saved["curves"]}
    curves = {}
    for r in diagnose_sweep(workdir, num_states=num_states, num_noises=4):
        if r["metric"] == "lambda_max":
            curves.setdefault((r["seed"], r["data_fraction"], r["gamma"]), {})[r["t"]] = r["value"]
    atomic_write_text(path, json.dumps(dict(step=step, states=num_states, curves=[[list(k), c]
                                                                                  for k, c in curves.items()])))
    return curves


def comparisons(arms: dict, members: dict) -> list[tuple[str, str, float, str, float]]:
    """``(label, reference arm, reference γ, arm, γ)`` for each CDP member kind, and C's γ 0 against A's."""
    out = [(f"{arm.label} γ {g:g}", arm.reference, 0.0, name, g)
           for name, arm in arms.items() for g in arm.gammas if g > 0 and name in members and arm.reference in members]
    if "A" in members and "C" in members:
        out.append(("C γ 0 vs A γ 0 (embedding alone)", "A", 0.0, "C", 0.0))
    return out


def paired_rows(arms: dict, members: dict) -> list[dict]:
    rows = []
    for label, ref_arm, ref_gamma, arm, gamma in comparisons(arms, members):
        ref, ours = members[ref_arm], members[arm]
        for fraction in sorted({f for _, f, g in ours if g == gamma}, reverse=True):
            seeds = sorted(s for s, f, g in ours if f == fraction and g == gamma and (s, f, ref_gamma) in ref)
            if not seeds:                              # the reference has no member of this fraction
                continue
            step = min(min(ours[s, fraction, gamma]["step"], ref[s, fraction, ref_gamma]["step"]) for s in seeds)
            for metric in METRICS:
                a = [ref[s, fraction, ref_gamma].get(metric, np.nan) for s in seeds]
                b = [ours[s, fraction, gamma].get(metric, np.nan) for s in seeds]
                ok = np.isfinite(a) & np.isfinite(b)
                t = paired_test(np.asarray(b)[ok] - np.asarray(a)[ok])
                rows.append(dict(comparison=label, data_fraction=fraction, step=step, metric=metric,
                                 reference_mean=float(np.mean(np.asarray(a)[ok])) if ok.any() else np.nan,
                                 mean=float(np.mean(np.asarray(b)[ok])) if ok.any() else np.nan, **t))
    return rows


COLUMNS = ("comparison", "data_fraction", "step", "metric", "reference_mean", "mean", "difference",
           "difference_ci95", "wins", "seeds", "p_t", "p_wilcoxon")


def markdown(rows: list[dict], head: dict, preset: str) -> str:
    lines = [f"# Settling experiment ({preset} preset): CDP arms against γ 0 of the same embedding, seed-paired", "",
             f"commit `{head['commit']}`, {head['date']}, {head['device']}, jax {head['jax']}; `{head['command']}`", "",
             "| comparison | data | step | metric | γ 0 | arm | arm − γ 0 (95% CI) | seeds ahead | p: t / Wilcoxon |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = "{:.1f}" if r["metric"] == "normalized_score" else "{:.3f}"
        lines.append(f"| {r['comparison']} | {r['data_fraction']:g} | {r['step']} | {r['metric']} | "
                     f"{f.format(r['reference_mean'])} | {f.format(r['mean'])} | {f.format(r['difference'])} "
                     f"(± {f.format(r['difference_ci95'])}) | {r['wins']} / {r['seeds']} | "
                     f"{r['p_t']:.3f} / {r['p_wilcoxon']:.3f} |")
    lines += ["", "λ low: mean λmax(J_sym) over t < 0.1·T; λ high: over t ≥ T/2 (final checkpoint, "
              "dataset states). candidate_std: std across the 100 evaluation candidates before selection."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], members: dict, path: str, head: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    score = [r for r in rows if r["metric"] == "normalized_score"]
    labels = [f"{r['comparison']}\n@ {r['data_fraction']:g}" for r in score]
    ax.errorbar(range(len(score)), [r["difference"] for r in score], yerr=[r["difference_ci95"] for r in score],
                fmt="o", capsize=4)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xticks(range(len(score)), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("score − γ 0 (seed-paired, 95% CI)")
    for name, by_member in members.items():
        for gamma in sorted({g for _, _, g in by_member}):
            curves = [m["lambda_levels"] for (s, f, g), m in by_member.items() if g == gamma and "lambda_levels" in m]
            if curves:
                bx.plot(np.mean(curves, axis=0), label=f"{name} γ {gamma:g}")
    bx.set_xlabel("noise level t"), bx.set_ylabel("λmax(J_sym), mean over members"), bx.legend(fontsize=7)
    fig.suptitle(f"settling experiment: commit {head['commit']}, {head['date']}, {head['device']}", fontsize=8)
    save_figure(fig, path)


def run(_, args: flags.FlagValues) -> int:
    preset = PRESETS[args.preset]
    unknown = set(args.arms) - set(preset.arms)
    if unknown:
        sys.exit(f"error: --arms: unknown {', '.join(sorted(unknown))}; the {args.preset} preset has "
                 f"{', '.join(preset.arms)}")
    arms = {k: preset.arms[k] for k in args.arms or preset.arms}            # in the order --arms gives
    steps, seeds = args.steps or preset.steps, args.seeds or preset.seeds
    episodes = args.eval_episodes or preset.eval_episodes
    stem = args.out or record.dated_path("settling").removesuffix(".json")
    head, members = record.header(), {}
    for name, arm in arms.items():
        cfg = sweep_config(preset, arm, steps, seeds, episodes)
        workdir = os.path.join(args.workdir, name)
        if not args.report_only:
            print(f"sweep {name}: {arm.embedding} embedding, penalty on t < {arm.low_noise_fraction:g}·T, "
                  f"γ {arm.gammas}, fractions {cfg.data_fractions}", flush=True)
            Sweep(cfg, workdir).run()
        if not os.path.exists(os.path.join(workdir, "results.csv")):
            print(f"sweep {name}: no results yet in {workdir}", flush=True)
            continue
        d = cfg.agent_config.diffusion
        members[name] = member_table(workdir, int(np.ceil(0.1 * d.diffusion_steps)), args.states)
        rows = paired_rows(arms, members)
        text = markdown(rows, head, args.preset)
        atomic_write_text(stem + ".md", text)
        results.write_csv(stem + ".csv", rows, columns=COLUMNS)
        record.write(stem + ".json", dict(preset=args.preset, steps=steps, seeds=seeds, eval_episodes=episodes,
                                          arms={k: dataclasses.asdict(v) for k, v in arms.items()}, paired=rows,
                                          members={a: [dict(m, seed=s, data_fraction=f, gamma=g)
                                                       for (s, f, g), m in by.items()] for a, by in members.items()}),
                     head)
        plot(rows, members, stem + ".png", head)
        print(text, flush=True)
    print(f"wrote {stem}.{{md,csv,json,png}}")
    return 0


def main(argv: list[str]) -> int:
    return run_flags_cli(["python -m benchmarks.science.settling", *argv], __doc__, define_flags, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
