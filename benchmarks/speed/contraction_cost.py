"""What the contraction term costs: update steps/s with each regularizer as a ratio to the same agent at γ = 0.

    python -m benchmarks.speed.contraction_cost [--parts=rl,il,chunks,grid] [--agent=dbc|edp] [--steps=200]
        [--grid_members=8] [--chunk_batch=256] [--probes=1,4,8]
        [--chunk_networks=unet,dit] [--out=benchmarks/results/contraction_cost_cpu_DATE.json]

Parts (each a table, all written to ``--out`` as soon as measured):

* ``rl``: a Hopper-sized agent (obs 11, act 3, batch 256, T = 50, DQL MLP): Frobenius and hinge, on all samples
  and on the low-noise 10% sub-batch. For ``--agent=edp`` (critic targets from 15-step DPM-Solver++ samples) the
  γ = 0 row is EDP and the low-noise Frobenius row is CDP as the official code runs it.
* ``il``: the official imitation setting on Lift shapes (Pearce MLP, obs history 2 x 19, act 7, batch 512, L_c on
  the denoising samples at all t): the exact d-JVP form against the probe estimator (1 and 4 probes), on the
  whole batch (official) and on a 10% sub-batch (``contraction.batch_fraction=0.1``, an option).
* ``chunks``: DP-Unet vs CDP-Unet on Lift chunk shapes (obs 2 x 19, chunk 16 x 7 = 112, batch 256), contraction by
  1, 4 and 8 probes and by 1 probe on a 10% sub-batch (target: CDP-Unet / DP-Unet <= 1.15), each as calls
  of one compiled update; ``--chunk_networks=unet,dit`` adds DP-DiT / CDP-DiT; and how noisy one probe is.
* ``grid``: a vmapped grid of γ = 0 members compiled without the contraction term (what the sweep does) against
  the same grid computing it and multiplying by 0 (what a vmapped ``lax.cond`` on γ does).
"""
from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
from absl import flags

from benchmarks import record
from benchmarks.speed.timing import median_seconds
from cdp_jax.core import contraction
from cdp_jax.agents import agent_class, default_agent_config
from cdp_jax.agents.base import LossWeights

OBS, ACT, BATCH = 11, 3, 256
PARTS = ("rl", "il", "chunks", "grid")


def steps_per_second(agent_name: str, penalty: str, fraction: float, gamma: float, steps: int, members: int = 0,
                     scan: bool = True, contraction: bool | None = None, **kw) -> float:
    """Update steps/s of one agent, or (``members > 0``) of a vmapped grid of that many (per member: aggregate / N):
    ``steps`` updates in one compiled ``scan``, or (``scan=False``) as many calls of one compiled update (the
    chunk and image tables, whose updates take seconds on a CPU: the same speed as a scan since every convolution is
    a matmul there, 2.03 vs 1.93 s per DP-Unet update at batch 256, with a third of the compile time).
    ``contraction``: whether the update computes L_c (default: ``gamma > 0``, as the sweep compiles it);
    ``kw``: :func:`benchmark_agent`'s."""
    agent, batch = benchmark_agent(agent_name, penalty, fraction, gamma, members, **kw)
    on = gamma > 0 if contraction is None else contraction
    update = ((lambda a, b, k: jax.vmap(lambda m: m.update(b, k, on))(a)) if members
              else (lambda a, b, k: a.update(b, k, on)))
    key = jax.random.PRNGKey(0)
    if scan:
        @jax.jit
        def run(agent, batch, key):    # the batch is an argument: an embedded constant is folded at compile time
            return jax.lax.scan(lambda a, k: update(a, batch, k), agent, jax.random.split(key, steps))[0]
    else:
        one = jax.jit(update)

        def run(agent, batch, key):
            for k in jax.random.split(key, steps):
                agent = one(agent, batch, k)[0]            # update returns (agent, metrics)
            return agent
    return steps / median_seconds(run, agent, batch, key, repeats=3 if steps < 20 else 5)


def benchmark_agent(agent_name: str, penalty: str, fraction: float, gamma: float, members: int = 0,
                    network: str = "dql", obs_dim: int = OBS, act_dim: int = ACT,
                    batch_size: int = BATCH, horizon: int = 1, num_probes: int = 0, batch_fraction: float = 1.0,
                    image: dict | None = None):
    """``(agent, batch)``: one agent (or ``members`` stacked) with the contraction settings and a random batch.
    ``image``: the
    ``diffusion.image`` fields of an image-conditioned denoiser (``obs_dim`` is then its flat layout's size)."""
    cfg = default_agent_config(agent_name)
    if "diffusion" in cfg:
        d = cfg.diffusion
        d.network, d.chunk_horizon, d.contraction.penalty = network, horizon, penalty
        d.contraction.low_noise_fraction, d.contraction.num_iters, d.contraction.num_probes = fraction, 5, num_probes
        d.contraction.batch_fraction = batch_fraction
        if image:
            d.image.update(image)
    key = jax.random.PRNGKey(0)
    create = lambda s: agent_class(agent_name).create(cfg, LossWeights(gamma=gamma), jax.random.PRNGKey(s), obs_dim,
                                                      act_dim)
    agent = jax.vmap(create)(jnp.arange(members)) if members else create(0)
    obs = jax.random.normal(key, (batch_size, obs_dim))
    batch = {"observations": obs,
             "actions": jnp.tanh(jax.random.normal(jax.random.fold_in(key, 1), (batch_size, act_dim))),
             "rewards": jnp.ones(batch_size), "next_observations": obs, "terminals": jnp.zeros(batch_size)}
    return agent, batch


def table(title: str, base: float, variants: list[tuple[str, float]]) -> list[dict]:
    rows = [dict(variant="gamma=0", steps_per_s=base, ratio=1.0)]
    rows += [dict(variant=name, steps_per_s=sps, ratio=base / sps) for name, sps in variants]
    print(f"\n{title}\n{'variant':44s} {'steps/s':>9s} {'time ratio':>10s}")
    for r in rows:
        print(f"{r['variant']:44s} {r['steps_per_s']:9.2f} {r['ratio']:10.2f}")
    return rows


def rl_rows(agent: str, steps: int) -> list[dict]:
    base = steps_per_second(agent, "frobenius", 0.1, 0.0, steps)
    variants = [(f"{penalty}, {label}", steps_per_second(agent, penalty, fraction, 0.1, steps))
                for penalty in ("frobenius", "hinge")
                for fraction, label in ((1.0, "all samples"), (0.1, "low-noise 10% sub-batch"))]
    return table(f"{agent} (Hopper shapes, DQL MLP)", base, variants)


def il_rows(steps: int) -> list[dict]:
    lift = dict(network="pearce", obs_dim=38, act_dim=7, batch_size=512)
    base = steps_per_second("dbc", "frobenius", 1.0, 0.0, steps, **lift)
    variants = [(f"frobenius, all t, {name}{sub}", steps_per_second("dbc", "frobenius", 1.0, 0.1, steps,
                                                                    num_probes=p, batch_fraction=f, **lift))
                for f, sub in ((1.0, ""), (0.1, ", 10% sub-batch"))
                for name, p in (("exact (7 JVPs)", 0), ("1 probe", 1), ("4 probes", 4))]
    return table("DBC / CDP-IL, official recipe on Lift shapes (Pearce MLP, batch 512)", base, variants)


def chunk_rows(steps: int, batch_size: int = 256, probes: tuple = (1, 4, 8), network: str = "unet") -> list[dict]:
    lift = dict(network=network, obs_dim=38, act_dim=16 * 7, batch_size=batch_size, horizon=16)
    base = steps_per_second("dbc", "frobenius", 1.0, 0.0, steps, scan=False, **lift)
    name = {"unet": "Unet", "dit": "DiT"}[network]
    variants = [(f"CDP-{name}, {p} probe{'s' * (p > 1)}", steps_per_second("dbc", "frobenius", 1.0, 0.1, steps,
                                                                           num_probes=p, scan=False, **lift))
                for p in probes]
    variants.append((f"CDP-{name}, 1 probe, 10% sub-batch", steps_per_second(
        "dbc", "frobenius", 1.0, 0.1, steps, num_probes=1, batch_fraction=0.1, scan=False, **lift)))
    return table(f"DP-{name} / CDP-{name} on Lift chunks (16 x 7, batch {batch_size})", base, variants)


def probe_spread(network: str = "unet", samples: int = 8, draws: int = 64) -> dict:
    """How noisy one probe is on a Lift chunk: the relative standard deviation of the single-probe estimate of
    ``mean((J_sym + 0.1 I)^2)`` per sample (over ``draws`` probes), against the exact value from 112 JVPs, at an
    initialised network and random levels."""
    agent, _ = benchmark_agent("dbc", "frobenius", 1.0, 0.1, network=network, obs_dim=38, act_dim=16 * 7,
                               batch_size=samples, horizon=16)
    den, key = agent.denoiser, jax.random.PRNGKey(1)
    x0 = jnp.tanh(jax.random.normal(key, (samples, 16 * 7)))
    obs = jax.random.normal(jax.random.fold_in(key, 1), (samples, 38))
    x_t, t, _ = den.noise(jax.random.fold_in(key, 2), x0)
    lin = contraction.linearize(lambda x: den.predict_x0(agent.params, x, t, obs), x_t)
    exact = contraction.batch_frobenius_penalty(lin)
    draws = jnp.stack([contraction.batch_frobenius_estimate(lin, k) for k in jax.random.split(key, draws)])
    spread = dict(one_probe_relative_std=float(jnp.mean(draws.std(0) / exact)),
                  exact_relative_spread_across_samples=float(exact.std() / exact.mean()))
    print(f"\none probe on a {network} chunk: relative std {spread['one_probe_relative_std']:.3f} per sample "
          f"(exact values vary by {spread['exact_relative_spread_across_samples']:.3f} across samples)")
    return spread


def grid_row(agent: str, steps: int, n: int) -> dict:
    off = steps_per_second(agent, "frobenius", 0.1, 0.0, steps, members=n)
    on = steps_per_second(agent, "frobenius", 0.1, 0.0, steps, members=n, contraction=True)
    print(f"\ngrid of {n} gamma = 0 members: {off:.1f} steps/s compiled without L_c (the sweep now), {on:.1f} with "
          f"L_c computed and multiplied by 0 (what a vmapped lax.cond on gamma did): the old way cost {off / on:.2f}x")
    return dict(grid_members=n, gamma0_static_off=off, gamma0_computed=on, ratio=off / on)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_list("parts", ["rl", "grid"], f"which tables, of {PARTS}", flag_values=fv)
    flags.DEFINE_integer("steps", 200, "update steps per timed call (chunks: a tenth)", flag_values=fv)
    flags.DEFINE_enum("agent", "dbc", ["dbc", "edp"], "backbone of the rl and grid parts", flag_values=fv)
    flags.DEFINE_integer("grid_members", 8, "size of the gamma = 0 grid comparison", flag_values=fv)
    flags.DEFINE_integer("chunk_batch", 256, "batch of the chunks part (DP: 256; a CPU run may use less)",
                         flag_values=fv)
    flags.DEFINE_list("probes", ["1", "4", "8"], "probe counts of the chunks part", flag_values=fv)
    flags.DEFINE_list("chunk_networks", ["unet"], "chunk backbones of the chunks part, of unet, dit", flag_values=fv)
    flags.DEFINE_string("out", "", "the result file, rewritten after each table (default: benchmarks/results/"
                        "contraction_cost_DEVICE_DATE.json)", flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    if set(args.parts) - set(PARTS):
        print(f"error: --parts names unknown parts {sorted(set(args.parts) - set(PARTS))}; choose from {PARTS}",
              file=sys.stderr)
        return 2
    figures = dict(device=jax.devices()[0].device_kind, steps_per_timed_call=args.steps)
    print(f"device {figures['device']}, {args.steps} steps per timed call")

    out = args.out or record.dated_path("contraction_cost")

    def save() -> None:
        record.write(out, figures)

    def chunks() -> None:                       # written table by table: each takes minutes
        figures["chunks"] = {}
        for net in args.chunk_networks:
            figures["chunks"][net] = chunk_rows(max(2, args.steps // 10), args.chunk_batch,
                                                tuple(int(p) for p in args.probes), net)
            save()
        figures["chunks"]["probe_spread"] = probe_spread()

    measure = {"rl": lambda: rl_rows(args.agent, args.steps), "il": lambda: il_rows(args.steps),
               "grid": lambda: grid_row(args.agent, args.steps, args.grid_members)}
    for part in args.parts:
        if part == "chunks":
            chunks()
        else:
            figures[part] = measure[part]()
        save()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    from cdp_jax.train.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.speed.contraction_cost", *sys.argv[1:]], __doc__, define_flags, main))
