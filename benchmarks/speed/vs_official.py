"""cdp_jax against the official PyTorch step, side by side on this machine (issue 15, item 2).

    python -m benchmarks.speed.vs_official --torch_python=/path/to/python-with-torch [--rounds=4] [--steps=200]
        [--out=benchmarks/results/vs_official_cpu_DATE.json]

Each figure comes from a fresh process; the rounds interleave the configurations (torch EDP, torch EDP computing
the Jacobian as the official script does, torch CDP, cdp_jax EDP, cdp_jax CDP), so a slow spell of a shared machine
hits all of them. The torch side is :mod:`benchmarks.speed.torch_reference` (its docstring says what it runs); the cdp_jax
side is one EDP agent's update in a compiled ``scan`` of ``--steps`` steps (the sweep's chunk), Hopper shapes, CDP
as the official code runs it (Frobenius, beta 0.1, levels t < 0.1 T). Reported: the median updates/s of each
configuration and the ratios cdp_jax / torch (EDP against the faster torch EDP, so the ratio is never flattered).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

from benchmarks import record
from benchmarks.speed.contraction_cost import steps_per_second
from cdp_jax.train.cli import prefer_wide_cpu_vectors

FLAGS = flags.FLAGS
flags.DEFINE_string("torch_python", sys.executable, "a Python interpreter that has torch")
flags.DEFINE_integer("rounds", 4, "interleaved rounds; each runs every configuration once in a fresh process")
flags.DEFINE_integer("steps", 200, "timed update steps per measurement (torch: after 20 warm-up steps)")
flags.DEFINE_string("out", "", "the result file (default: benchmarks/results/vs_official_DEVICE_DATE.json)")
flags.DEFINE_enum("side", "both", ["both", "jax"], "internal: 'jax' measures one cdp_jax figure and prints it")
flags.DEFINE_float("gamma", 0.0, "internal: the contraction weight of the 'jax' side")

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {  # name -> command line of one measurement
    "torch EDP": lambda: [FLAGS.torch_python, os.path.join(HERE, "torch_reference.py"), "--gamma=0"],
    "torch EDP, Jacobian computed": lambda: [FLAGS.torch_python, os.path.join(HERE, "torch_reference.py"),
                                            "--gamma=0", "--jacobian_at_gamma0"],
    "torch CDP": lambda: [FLAGS.torch_python, os.path.join(HERE, "torch_reference.py"), "--gamma=0.1"],
    "cdp_jax EDP": lambda: [sys.executable, "-m", "benchmarks.speed.vs_official", "--side=jax", "--gamma=0"],
    "cdp_jax CDP": lambda: [sys.executable, "-m", "benchmarks.speed.vs_official", "--side=jax", "--gamma=0.1"],
}


def jax_updates_per_second(gamma: float, steps: int) -> float:
    return steps_per_second("edp", "frobenius", 0.1, gamma, steps)


def measure(name: str) -> float:
    cmd = CONFIGS[name]() + [f"--steps={FLAGS.steps}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(HERE))
    if done.returncode:
        raise SystemExit(f"{name} failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["updates_per_s"])


def main(_) -> int:
    if FLAGS.side == "jax":
        prefer_wide_cpu_vectors()              # as the sweep runs it
        print(json.dumps(dict(updates_per_s=jax_updates_per_second(FLAGS.gamma, FLAGS.steps))))
        return 0
    rounds = {name: [] for name in CONFIGS}
    for r in range(FLAGS.rounds):
        for name in CONFIGS:
            rounds[name].append(measure(name))
            print(f"round {r + 1}/{FLAGS.rounds}  {name:30s} {rounds[name][-1]:7.1f} updates/s", flush=True)
    median = {name: statistics.median(v) for name, v in rounds.items()}
    torch_edp = max(median["torch EDP"], median["torch EDP, Jacobian computed"])
    ratios = {"EDP: cdp_jax / torch": median["cdp_jax EDP"] / torch_edp,
              "CDP: cdp_jax / torch": median["cdp_jax CDP"] / median["torch CDP"],
              "CDP / EDP step time, cdp_jax": median["cdp_jax EDP"] / median["cdp_jax CDP"],
              "CDP / EDP step time, torch": median["torch EDP"] / median["torch CDP"]}
    print(f"\n{'configuration':32s} {'median updates/s':>16s}")
    for name, v in median.items():
        print(f"{name:32s} {v:16.1f}")
    for name, v in ratios.items():
        print(f"{name:32s} {v:16.2f}")
    record.write(FLAGS.out or record.dated_path("vs_official"), dict(
        steps=FLAGS.steps, rounds=rounds, median_updates_per_s=median, ratios=ratios))
    return 0


if __name__ == "__main__":
    app.run(main)
