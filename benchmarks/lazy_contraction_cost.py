"""Lazy contraction's cost, one figure per fresh process (figures measured one after another in one process drift
upwards for the UNet): the γ = 0 update against CDP with L_c every k-th update (``contraction.every``), in
interleaved rounds.

    python -m benchmarks.lazy_contraction_cost [--rounds=2] [--out=benchmarks/results/lazy_contraction_cost_cpu.json]

Rows: the official imitation recipe on Lift shapes (Pearce MLP, batch 512, L_c at all t on the whole batch; 240
updates per timed scan): 1 probe every 4 and 5 updates, the exact Jacobian every 16, 1 probe every 5 held
(``contraction.lazy = "hold"``); Lift chunks (16 x 7, batch 64, 48 updates as calls of one compiled update):
CDP-Unet with 1 probe every 16 updates, scaled and held.
"""
from __future__ import annotations

import json
import subprocess
import sys

from absl import flags

from cdp_jax.io import atomic_write_text

PEARCE = dict(network="pearce", obs_dim=38, act_dim=7, batch_size=512)
UNET = dict(network="unet", obs_dim=38, act_dim=16 * 7, batch_size=64, horizon=16)
# (name, shapes, probes, every, lazy mode, steps, scan); every 0: the γ = 0 update the row's ratio divides by
FIGURES = (("pearce_dbc", "PEARCE", 0, 0, "", 240, True),
           ("pearce_1_probe_every_4", "PEARCE", 1, 4, "scale", 240, True),
           ("pearce_1_probe_every_5", "PEARCE", 1, 5, "scale", 240, True),
           ("pearce_exact_every_16", "PEARCE", 0, 16, "scale", 240, True),
           ("pearce_1_probe_every_5_hold", "PEARCE", 1, 5, "hold", 240, True),
           ("dp_unet", "UNET", 0, 0, "", 48, False),
           ("cdp_unet_1_probe_every_16", "UNET", 1, 16, "scale", 48, False),
           ("cdp_unet_1_probe_every_16_hold", "UNET", 1, 16, "hold", 48, False))


def one_figure(shapes: str, probes: int, every: int, lazy: str, steps: int, scan: bool) -> float:
    """Updates/s of one figure, in this process."""
    from benchmarks.contraction_cost import steps_per_second
    kw = dict(globals()[shapes], scan=scan)
    if every == 0:
        return steps_per_second("dbc", "frobenius", 1.0, 0.0, steps, **kw)
    return steps_per_second("dbc", "frobenius", 1.0, 0.1, steps, num_probes=probes, every=every, lazy=lazy, **kw)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("rounds", 2, "interleaved rounds", flag_values=fv)
    flags.DEFINE_string("out", "benchmarks/results/lazy_contraction_cost_cpu.json", "the JSON file to (re)write",
                        flag_values=fv)
    flags.DEFINE_string("figure", "", "internal: measure one figure (its index) in this process and print it",
                        flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    if args.figure:
        print(json.dumps(one_figure(*FIGURES[int(args.figure)][1:])))
        return 0
    rounds = []
    for r in range(args.rounds):
        sps = {}
        for i, (name, *_) in enumerate(FIGURES):
            out = subprocess.run([sys.executable, "-m", "benchmarks.lazy_contraction_cost", f"--figure={i}"],
                                 capture_output=True, text=True, check=True)
            sps[name] = float(out.stdout.strip().splitlines()[-1])
        ratio = {name: sps[base] / sps[name] for name, shapes, _, every, *_ in FIGURES if every
                 for base in ("pearce_dbc" if shapes == "PEARCE" else "dp_unet",)}
        rounds.append(dict(updates_per_s=sps, ratio_to_gamma0=ratio))
        print(f"round {r}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()), flush=True)
        atomic_write_text(args.out, json.dumps(dict(figures=[f[0] for f in FIGURES], rounds=rounds), indent=1))
    return 0


if __name__ == "__main__":
    from cdp_jax.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.lazy_contraction_cost", *sys.argv[1:]], __doc__, define_flags, main))
