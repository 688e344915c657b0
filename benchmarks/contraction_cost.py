"""Update steps/s of a Hopper-sized agent (obs 11, act 3, batch 256, T = 50, DQL MLP) with each contraction
regularizer, on all samples and on the low-noise 10% sub-batch, as a ratio to gamma = 0.

    python -m benchmarks.contraction_cost [--agent dbc|edp] [--steps 200] [--grid_members 8]

The last line compares a vmapped grid of γ = 0 members compiled without the contraction term (what the sweep
does: ``GridLayout`` groups members by γ > 0 and sets the static ``contraction.enabled`` flag per group) with
the same grid computing it and multiplying by 0 (what a vmapped ``lax.cond`` on γ does).

For EDP (the paper's RL backbone: critic targets from 15-step DPM-Solver++ samples) the gamma = 0 row is EDP
and the low-noise Frobenius row is CDP as the official code runs it.
"""
from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
from absl import flags

from benchmarks.timing import median_seconds
from cdp_jax.agents import agent_class, default_agent_config
from cdp_jax.agents.base import HParams

OBS, ACT, BATCH = 11, 3, 256


def steps_per_second(agent_name: str, penalty: str, fraction: float, gamma: float, steps: int, members: int = 0,
                     contraction_on: bool | None = None) -> float:
    """Update steps/s of one agent, or (``members > 0``) of a vmapped grid of that many (per member: aggregate / N).
    ``contraction_on`` is the static flag (default: ``gamma > 0``, as the sweep compiles it)."""
    cfg = default_agent_config(agent_name)
    cfg.diffusion.network, cfg.diffusion.contraction.penalty = "dql", penalty
    cfg.diffusion.contraction.low_noise_fraction, cfg.diffusion.contraction.num_iters = fraction, 5
    cfg.diffusion.contraction.enabled = gamma > 0 if contraction_on is None else contraction_on
    key = jax.random.PRNGKey(0)
    create = lambda s: agent_class(agent_name).create(cfg, HParams(gamma=gamma), jax.random.PRNGKey(s), OBS, ACT)
    agent = jax.vmap(create)(jnp.arange(members)) if members else create(0)
    obs = jax.random.normal(key, (BATCH, OBS))
    batch = {"observations": obs, "actions": jnp.tanh(jax.random.normal(jax.random.fold_in(key, 1), (BATCH, ACT))),
             "rewards": jnp.ones(BATCH), "next_observations": obs, "terminals": jnp.zeros(BATCH)}
    step = (lambda a, k: jax.vmap(lambda m: m.update(batch, k))(a)) if members else (lambda a, k: a.update(batch, k))

    @jax.jit
    def run(agent, key):
        return jax.lax.scan(step, agent, jax.random.split(key, steps))[0]

    return steps / median_seconds(run, agent, key)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_integer("steps", 200, "update steps per timed call", flag_values=fv)
    flags.DEFINE_enum("agent", "dbc", ["dbc", "edp"], "backbone", flag_values=fv)
    flags.DEFINE_integer("grid_members", 8, "size of the gamma = 0 grid comparison", flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
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
    n = args.grid_members
    off = steps_per_second(args.agent, "frobenius", 0.1, 0.0, args.steps, members=n)
    on = steps_per_second(args.agent, "frobenius", 0.1, 0.0, args.steps, members=n, contraction_on=True)
    print(f"grid of {n} gamma = 0 members: {off:.1f} steps/s compiled without L_c (the sweep now), {on:.1f} with L_c "
          f"computed and multiplied by 0 (what a vmapped lax.cond on gamma did): the old way cost {off / on:.2f}x")
    print(json.dumps(dict(grid_members=n, gamma0_static_off=off, gamma0_computed=on, ratio=off / on)))
    return 0


if __name__ == "__main__":
    from cdp_jax.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.contraction_cost", *sys.argv[1:]], __doc__, define_flags, main))
