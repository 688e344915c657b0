"""Update steps/s of a Hopper-sized agent (obs 11, act 3, batch 256, T = 50, DQL MLP) with each contraction
regularizer, on all samples and on the low-noise 10% sub-batch, as a ratio to gamma = 0.

    python -m benchmarks.contraction_cost [--agent dbc|edp] [--steps 200]

For EDP (the paper's RL backbone: critic targets from 15-step DPM-Solver++ samples) the gamma = 0 row is EDP
and the low-noise Frobenius row is CDP as the official code runs it.
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from benchmarks.timing import median_seconds
from cdp_jax.agents import agent_class, default_agent_config
from cdp_jax.agents.base import HParams

OBS, ACT, BATCH = 11, 3, 256


def steps_per_second(agent_name: str, penalty: str, fraction: float, gamma: float, steps: int) -> float:
    cfg = default_agent_config(agent_name)
    cfg.diffusion.network, cfg.diffusion.contraction.penalty = "dql", penalty
    cfg.diffusion.contraction.low_noise_fraction, cfg.diffusion.contraction.num_iters = fraction, 5
    key = jax.random.PRNGKey(0)
    agent = agent_class(agent_name).create(cfg, HParams(gamma=gamma), key, OBS, ACT)
    obs = jax.random.normal(key, (BATCH, OBS))
    batch = {"observations": obs, "actions": jnp.tanh(jax.random.normal(jax.random.fold_in(key, 1), (BATCH, ACT))),
             "rewards": jnp.ones(BATCH), "next_observations": obs, "terminals": jnp.zeros(BATCH)}

    @jax.jit
    def run(agent, key):
        return jax.lax.scan(lambda a, k: a.update(batch, k),
                            agent, jax.random.split(key, steps))[0]

    return steps / median_seconds(run, agent, key)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--agent", default="dbc")
    args = parser.parse_args()
    print(f"agent {args.agent}, device {jax.devices()[0].device_kind}, {args.steps} steps per timed call")
    base = steps_per_second(args.agent, "frobenius", 0.1, 0.0, args.steps)
    rows = [dict(variant="gamma=0", steps_per_s=base, ratio=1.0)]
    for penalty in ("frobenius", "hinge"):
        for fraction, label in ((1.0, "all samples"), (0.1, "low-noise 10% sub-batch")):
            sps = steps_per_second(args.agent, penalty, fraction, 0.1, args.steps)
            rows.append(dict(variant=f"{penalty}, {label}", steps_per_s=sps, ratio=base / sps))
    print(f"{'variant':40s} {'steps/s':>9s} {'time ratio':>10s}")
    for r in rows:
        print(f"{r['variant']:40s} {r['steps_per_s']:9.1f} {r['ratio']:10.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
