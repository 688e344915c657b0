"""Aggregate update steps/s of a vmapped grid of N members against N separate single runs.

Hopper-sized members (obs 11, act 3, batch 256, T = 50, DQL MLP, L_c on the low-noise 10% sub-batch; by default
DBC/CDP at γ = 0.1; ``--agent=edp --gammas=0`` for an EDP grid, ``--gammas=0,0.1`` for half EDP, half CDP),
trained by the sweep's own ``make_train_steps`` on synthetic data.

    python -m benchmarks.speed.sweep_throughput [--grids 1,4,16] [--steps 100] [--agent dbc] [--gammas 0.1] [--overhead]

``--overhead``: where a one-member grid's step time goes, one EDP member (γ = 0) timed as the grid adds its
parts, each a ``steps``-step ``scan`` in one compiled program: the bare update on a fixed batch; the same
vmapped over a one-member axis; + a batch sampled from the member's subset every step; the sweep's own
``make_train_steps`` (which runs a one-member group without the member axis and checks divergence once per chunk).
Each line's ratio is to the bare update.
"""
from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
from absl import flags

from cdp_jax.agents import agent_class, default_agent_config
from cdp_jax.agents.base import LossWeights
from benchmarks.speed.timing import median_seconds
from cdp_jax.datasets import Subsets, Transitions, sample_batch
from cdp_jax.train.grid import GridLayout, batch_dict, make_train_steps

OBS, ACT, BATCH, N_DATA = 11, 3, 256, 100_000


def synthetic_data(key) -> Transitions:
    k1, k2, k3 = jax.random.split(key, 3)
    obs = jax.random.normal(k1, (N_DATA, OBS))
    zeros = jnp.zeros(N_DATA)
    rewards = jax.random.uniform(k3, (N_DATA,))
    return Transitions(obs, jnp.tanh(jax.random.normal(k2, (N_DATA, ACT))), rewards, obs, zeros, zeros, zeros)


def members(agent: str, n: int, gammas):
    """``n`` stacked Hopper-sized members (seeds 0..n-1, DQL MLP, L_c on the low-noise 10%) cycling ``gammas``."""
    cfg = default_agent_config(agent)
    cfg.diffusion.network, cfg.diffusion.contraction.low_noise_fraction = "dql", 0.1
    cfg.diffusion.contraction.num_iters = 5
    weights = LossWeights(gamma=jnp.asarray([gammas[i % len(gammas)] for i in range(n)], jnp.float32), eta=jnp.ones(n))
    return jax.vmap(lambda h, s: agent_class(agent).create(cfg, h, jax.random.PRNGKey(s), OBS, ACT))(weights, jnp.arange(n))


def grid_seconds(n: int, steps: int, data: Transitions, agent: str = "dbc", gammas=(0.1,),
                 by_contraction: bool = True) -> float:
    """Median seconds of one ``steps``-step chunk of an ``n``-member grid whose members cycle through ``gammas``
    (``agent="edp", gammas=(0.0, 0.1)``: half EDP, half CDP), grouped as the sweep groups them: by γ > 0, or
    all in one program (``by_contraction=False``, the sweep's ``group_by_contraction``)."""
    seeds = jnp.arange(n)
    agents = members(agent, n, gammas)
    subsets = Subsets(idx=jnp.tile(jnp.arange(N_DATA, dtype=jnp.int32), (n, 1)), count=jnp.full(n, N_DATA, jnp.int32))
    chunk = make_train_steps(data, BATCH, steps)
    diverged = jnp.zeros(n, bool)
    layout = GridLayout.plan([gammas[i % len(gammas)] for i in range(n)], n, by_contraction=by_contraction)

    def run(agents):
        parts = [chunk(*layout.group_inputs(k, agents, diverged, subsets, seeds), 0, layout.contraction(k))[0]
                 for k in range(layout.num_groups)]
        return parts

    copy = lambda: jax.tree.map(jnp.copy, agents)     # the chunk donates its input
    jax.block_until_ready(run(copy()))
    times = []
    for _ in range(3):
        fresh = copy()
        jax.block_until_ready(fresh)
        start = time.perf_counter()
        jax.block_until_ready(run(fresh))
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def overhead_seconds(steps: int, data: Transitions) -> dict:
    """Seconds per update of one EDP member as the grid's parts are added (see the module docstring)."""
    agent = members("edp", 1, (0.0,))
    one = jax.tree.map(lambda x: x[0], agent)
    subset = Subsets(idx=jnp.arange(N_DATA, dtype=jnp.int32), count=jnp.asarray(N_DATA, jnp.int32))
    fixed = batch_dict(data.rows(jnp.arange(BATCH)))
    fixed_step = lambda a, k: (a.update(fixed, k)[0], None)

    def sampled_step(a, k):
        k_batch, k_update = jax.random.split(k)
        return a.update(batch_dict(sample_batch(k_batch, data, subset, BATCH)), k_update)[0], None

    loop = lambda step: (lambda a, key: jax.lax.scan(step, a, jax.random.split(key, steps))[0])
    key = jax.random.PRNGKey(0)
    chunk = make_train_steps(data, BATCH, steps)
    args = (jnp.zeros(1, bool), jax.tree.map(lambda x: x[None], subset), jnp.zeros(1, jnp.int32))
    programs = {"bare update, fixed batch": (jax.jit(loop(fixed_step)), one),
                "vmapped over 1 member": (jax.jit(jax.vmap(loop(fixed_step), (0, None))), agent),
                "+ batch sampled each step": (jax.jit(jax.vmap(loop(sampled_step), (0, None))), agent),
                "the sweep's make_train_steps": (lambda a, key: chunk(jax.tree.map(jnp.copy, a), *args, 0, True),
                                                          agent)}
    return {name: median_seconds(fn, a, key) / steps for name, (fn, a) in programs.items()}


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_list("grids", ["1", "4", "16"], "grid sizes N", flag_values=fv)
    flags.DEFINE_integer("steps", 100, "update steps per timed call", flag_values=fv)
    flags.DEFINE_enum("agent", "dbc", ["dbc", "edp"], "the members' agent", flag_values=fv)
    flags.DEFINE_list("gammas", ["0.1"], "γ values the members cycle through", flag_values=fv)
    flags.DEFINE_bool("overhead", False, "time a one-member grid's parts instead of the grids", flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    data = synthetic_data(jax.random.PRNGKey(0))
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}")
    if args.overhead:
        figures = overhead_seconds(args.steps, data)
        for name, sec in figures.items():
            print(f"{name:40s} {1e3 * sec:9.3f} ms/update {sec / next(iter(figures.values())):6.2f}x")
        print(json.dumps(figures))
        return 0
    gammas = tuple(float(g) for g in args.gammas)
    timed = lambda n: grid_seconds(n, args.steps, data, args.agent, gammas)
    single = timed(1)
    rows = []
    print(f"{'N':>4s} {'grid s':>8s} {'aggregate updates/s':>20s} {'N single runs s':>16s} {'speed-up':>9s}")
    for n in (int(x) for x in args.grids):
        t = single if n == 1 else timed(n)
        rows.append(dict(N=n, grid_seconds=t, aggregate_updates_per_s=n * args.steps / t,
                         separate_seconds=n * single, speedup=n * single / t))
        r = rows[-1]
        print(f"{n:4d} {t:8.2f} {r['aggregate_updates_per_s']:20.1f} {r['separate_seconds']:16.2f} {r['speedup']:9.2f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    from cdp_jax.train.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.speed.sweep_throughput", *sys.argv[1:]], __doc__, define_flags, main))
