"""Update steps/s of a Hopper-sized DBC (obs 11, act 3, batch 256, T = 50, DQL MLP) with each contraction
regularizer, on all samples and on the low-noise 10% sub-batch, as a ratio to gamma = 0.

    python -m benchmarks.contraction_cost [--steps 200]
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from benchmarks.timing import median_seconds
from cdp_jax.agents import dbc
from cdp_jax.agents.base import HParams

OBS, ACT, BATCH = 11, 3, 256


def steps_per_second(penalty: str, fraction: float, gamma: float, steps: int) -> float:
    cfg = dbc.default_config()
    cfg.diffusion.network, cfg.diffusion.contraction.penalty = "dql", penalty
    cfg.diffusion.contraction.low_noise_fraction, cfg.diffusion.contraction.num_iters = fraction, 5
    key = jax.random.PRNGKey(0)
    agent = dbc.DBCAgent.create(cfg, HParams(gamma=gamma), key, OBS, ACT)
    batch = {"observations": jax.random.normal(key, (BATCH, OBS)),
             "actions": jnp.tanh(jax.random.normal(jax.random.fold_in(key, 1), (BATCH, ACT)))}

    @jax.jit
    def run(agent, key):
        return jax.lax.scan(lambda a, k: a.update(batch, k),
                            agent, jax.random.split(key, steps))[0]

    return steps / median_seconds(run, agent, key)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    base = steps_per_second("frobenius", 0.1, 0.0, args.steps)
    rows = [dict(variant="gamma=0", steps_per_s=base, ratio=1.0)]
    for penalty in ("frobenius", "hinge"):
        for fraction, label in ((1.0, "all samples"), (0.1, "low-noise 10% sub-batch")):
            sps = steps_per_second(penalty, fraction, 0.1, args.steps)
            rows.append(dict(variant=f"{penalty}, {label}", steps_per_s=sps, ratio=base / sps))
    print(f"{'variant':40s} {'steps/s':>9s} {'time ratio':>10s}")
    for r in rows:
        print(f"{r['variant']:40s} {r['steps_per_s']:9.1f} {r['ratio']:10.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
