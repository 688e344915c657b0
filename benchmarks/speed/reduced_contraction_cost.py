"""What taking the contraction term on a sub-batch costs (``contraction.batch_fraction``), one figure per fresh
process (figures measured one after another in one process drift upwards for the UNet): the γ = 0 update against
CDP with L_c on a sub-batch at every update, in interleaved rounds.

    python -m benchmarks.speed.reduced_contraction_cost [--rounds=2] [--only=unet_64,unet_256]
        [--out=benchmarks/results/reduced_contraction_cost_cpu_DATE.json]

Groups (``--only``), each with its own γ = 0 figure as the ratio's base:
* ``pearce``: the official imitation recipe on Lift shapes (Pearce MLP, batch 512, L_c at all t; 240 updates per
  timed scan): on a 10% sub-batch, 1 probe and the exact Jacobian.
* ``unet_64``: Lift chunks (16 x 7) at batch 64 (16 updates as calls of one compiled update): CDP-Unet with 1 probe
  on sub-batches of 1/16 and 1/8.
* ``unet_256``: the same chunks at the recipe's batch 256 (8 updates): 1 probe on sub-batches of 1/16 and 1/8.
"""
from __future__ import annotations

import json
import subprocess
import sys

from absl import flags

from benchmarks import record
from benchmarks.speed.contraction_cost import steps_per_second

SHAPES = dict(pearce=dict(network="pearce", obs_dim=38, act_dim=7, batch_size=512, steps=240, scan=True),
              unet_64=dict(network="unet", obs_dim=38, act_dim=16 * 7, batch_size=64, horizon=16, steps=16,
                           scan=False),
              unet_256=dict(network="unet", obs_dim=38, act_dim=16 * 7, batch_size=256, horizon=16, steps=8,
                            scan=False))
# (name, group, probes, batch fraction); probes None: the group's γ = 0 base figure
FIGURES = (("pearce_dbc", "pearce", None, 1.0),
           ("pearce_1_probe_sub_1_10", "pearce", 1, 0.1),
           ("pearce_exact_sub_1_10", "pearce", 0, 0.1),
           ("dp_unet_64", "unet_64", None, 1.0),
           ("cdp_unet_64_1_probe_sub_1_16", "unet_64", 1, 1 / 16),
           ("cdp_unet_64_1_probe_sub_1_8", "unet_64", 1, 1 / 8),
           ("dp_unet_256", "unet_256", None, 1.0),
           ("cdp_unet_256_1_probe_sub_1_16", "unet_256", 1, 1 / 16),
           ("cdp_unet_256_1_probe_sub_1_8", "unet_256", 1, 1 / 8))


def one_figure(group: str, probes: int | None, batch_fraction: float) -> float:
    """Updates/s of one figure, in this process."""
    kw = dict(SHAPES[group])
    steps = kw.pop("steps")
    if probes is None:
        return steps_per_second("dbc", "frobenius", 1.0, 0.0, steps, **kw)
    return steps_per_second("dbc", "frobenius", 1.0, 0.1, steps, num_probes=probes, batch_fraction=batch_fraction,
                            **kw)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("rounds", 2, "interleaved rounds", flag_values=fv)
    flags.DEFINE_list("only", list(SHAPES), f"groups to measure, of {list(SHAPES)}", flag_values=fv)
    flags.DEFINE_string("out", "", "the result file, rewritten after every figure (default: benchmarks/results/"
                        "reduced_contraction_cost_DEVICE_DATE.json)", flag_values=fv)
    flags.DEFINE_string("figure", "", "internal: measure one figure (its index) in this process and print it",
                        flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    if args.figure:
        import jax
        print(json.dumps(dict(updates_per_s=one_figure(*FIGURES[int(args.figure)][1:]),
                              device=f"{jax.devices()[0].device_kind} x{jax.device_count()}")))
        return 0
    unknown = set(args.only) - set(SHAPES)
    if unknown:
        raise SystemExit(f"unknown --only group(s) {sorted(unknown)}; choose from {list(SHAPES)}")
    chosen = [(i, f) for i, f in enumerate(FIGURES) if f[1] in args.only]
    out = args.out or record.dated_path("reduced_contraction_cost")
    base = {group: name for name, group, probes, *_ in FIGURES if probes is None}
    rounds, device = [], ""
    for r in range(args.rounds):
        sps = {}
        rounds.append(dict(updates_per_s=sps))
        for i, (name, *_) in chosen:   # the file is rewritten after every figure: a killed run keeps what it measured
            proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.reduced_contraction_cost", f"--figure={i}"],
                                  capture_output=True, text=True, check=True)
            figure = json.loads(proc.stdout.strip().splitlines()[-1])
            sps[name], device = figure["updates_per_s"], figure["device"]
            rounds[-1]["ratio_to_gamma0"] = {
                name: sps[base[group]] / sps[name] for _, (name, group, probes, *_) in chosen
                if probes is not None and name in sps and base[group] in sps}
            record.write(out, dict(device=device, figures=[name for _, (name, *_) in chosen], rounds=rounds))
        print(f"round {r}: " + ", ".join(f"{k} {v:.2f}x" for k, v in rounds[-1]["ratio_to_gamma0"].items()),
              flush=True)
    return 0


if __name__ == "__main__":
    from cdp_jax.train.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.speed.reduced_contraction_cost", *sys.argv[1:]], __doc__, define_flags,
                           main))
