"""Where the RL contraction penalty acts, by time embedding: λmax(J_sym) of the x0 network at every level t = 0..T-1
of an EDP member (γ 0) and a CDP member (γ 0.1, penalty on t < 0.1·T) trained with each embedding, ``float`` (the
sinusoid the official code means) and ``cleandiffuser`` (what it computes), on the quickstart's generated UMaze.

    python -m benchmarks.science.embedding_levels [--steps=2000] [--seeds=1] [--workdir=runs/embedding_levels]

Writes ``benchmarks/results/embedding_levels_DEVICE_DATE.json`` (the curves, with the record header) and a PNG beside
it: one panel per embedding, λmax against t for γ 0 and γ 0.1, the penalised levels shaded.
"""
from __future__ import annotations

import os
import sys

import numpy as np
from absl import flags

from benchmarks import record
from cdp_jax.analysis.diagnostics import diagnose_sweep
from cdp_jax.train.cli import run_flags_cli
from cdp_jax.train.results import save_figure
from cdp_jax.train.sweep import Sweep
from experiments.configs.pointmaze_rl import get_config

EMBEDDINGS = ("float", "cleandiffuser")


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("steps", 2000, "gradient steps per member", flag_values=fv)
    flags.DEFINE_integer("seeds", 1, "seeds per arm", flag_values=fv)
    flags.DEFINE_integer("states", 32, "dataset states λmax is averaged over", flag_values=fv)
    flags.DEFINE_string("workdir", "runs/embedding_levels", "where the two sweeps go", flag_values=fv)
    flags.DEFINE_string("out", "", "the result file (default: benchmarks/results/embedding_levels_DEVICE_DATE.json)",
                        flag_values=fv)


def sweep_config(embedding: str, steps: int, seeds: int):
    cfg = get_config()
    cfg.dataset_id, cfg.generate_steps = "local/pointmaze/umaze-100k-v0", 100_000      # the quickstart's data
    cfg.agent_config.diffusion.time_embedding = embedding
    cfg.seeds, cfg.data_fractions, cfg.gammas = seeds, (1.0,), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = steps, steps, 3
    return cfg


def plot(curves: dict, low_levels: int, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(curves), figsize=(5.0 * len(curves), 3.4), sharey=True, squeeze=False)
    for ax, (embedding, by_gamma) in zip(axes[0], curves.items()):
        for gamma, values in by_gamma.items():
            ax.plot(range(len(values)), values, marker=".", label=f"γ={gamma:g}" + (" (EDP)" if gamma == 0 else " (CDP)"))
        ax.axvspan(-0.5, low_levels - 0.5, alpha=0.15, label="penalised levels t < 0.1·T")
        ax.set_title(f"time embedding: {embedding}"), ax.set_xlabel("noise level t")
    axes[0][0].set_ylabel("λmax(J_sym) of the x0 network")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("λmax per level, mean over dataset states and seeds (generated PointMaze-UMaze)", fontsize=10)
    save_figure(fig, path)


def run(_, args: flags.FlagValues) -> int:
    curves, figures = {}, {}
    d = sweep_config("float", 1, 1).agent_config.diffusion
    low_levels = int(np.ceil(d.contraction.low_noise_fraction * d.diffusion_steps))      # the RL penalty's levels
    for embedding in EMBEDDINGS:
        workdir = os.path.join(args.workdir, embedding)
        rows = Sweep(sweep_config(embedding, args.steps, args.seeds), workdir).run()
        levels = diagnose_sweep(workdir, num_states=args.states, num_noises=4)
        by_gamma = {}
        for gamma in sorted({r["gamma"] for r in levels}):
            sel = [r for r in levels if r["metric"] == "lambda_max" and r["gamma"] == gamma]
            by_gamma[gamma] = [float(np.mean([r["value"] for r in sel if r["t"] == t])) for t in sorted({r["t"] for r in sel})]
        curves[embedding] = by_gamma
        figures[embedding] = dict(lambda_max_by_level={str(g): v for g, v in by_gamma.items()},
                                  final_scores={str(r["gamma"]): r["normalized_score"] for r in rows})
        print(f"{embedding}: λmax at t = 0, 4, 10, 49: " + "; ".join(
            f"γ {g:g}: " + ", ".join(f"{v[t]:.3f}" for t in (0, 4, 10, len(v) - 1)) for g, v in by_gamma.items()))
    out = args.out or record.dated_path("embedding_levels")
    record.write(out, dict(steps=args.steps, seeds=args.seeds, states=args.states, curves=figures))
    plot(curves, low_levels, out.removesuffix(".json") + ".png")
    print(f"wrote {out} and its .png")
    return 0


def main(argv: list[str]) -> int:
    return run_flags_cli(["python -m benchmarks.science.embedding_levels", *argv], __doc__, define_flags, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
