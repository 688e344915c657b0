"""Speed figures of cdp_jax as one JSON file.

    python -m benchmarks.throughput [--out benchmarks/results/throughput_cpu.json] [--grids 1,8,64] [--steps 50]

Figures: updates/s of one EDP run and of EDP/CDP grids of N members (DBC-sized grids come from
``benchmarks.sweep_throughput``); the CDP/EDP step-time ratio; sampler actions/s (15-step DPM-Solver++ on the
Hopper-sized actor); and evaluation env-steps/s over a whole grid (batched sampler + PointMaze stepping) against raw
gymnasium stepping with random actions.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import gymnasium_robotics  # noqa: F401  (registers PointMaze)
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.contraction_cost import steps_per_second
from benchmarks.sweep_throughput import grid_seconds, synthetic_data
from benchmarks.timing import median_seconds
from cdp_jax.agents.base import HParams
from cdp_jax.agents.edp import EDPAgent, default_config
from cdp_jax.io import atomic_write_text

OBS, ACT = 11, 3


def sampler_actions_per_second(batch: int = 1000) -> float:
    agent = EDPAgent.create(default_config(), HParams(), jax.random.PRNGKey(0), OBS, ACT)
    obs = jax.random.normal(jax.random.PRNGKey(1), (batch, OBS))
    sample = jax.jit(lambda p, k: agent.denoiser.sample(p, k, obs))
    return batch / median_seconds(sample, agent.actor_ema, jax.random.PRNGKey(2))


def eval_env_steps_per_second(members: int = 8, envs: int = 5, steps: int = 100) -> tuple[float, float]:
    """(grid evaluation env-steps/s with EDP's 100-candidate policy, raw PointMaze random-action steps/s)."""
    env_id = "PointMaze_UMaze-v3"
    agents = jax.vmap(lambda s: EDPAgent.create(default_config(), HParams(), jax.random.PRNGKey(s), 6, 2))(
        jnp.arange(members))
    act = jax.jit(jax.vmap(lambda a, o, k: a.act(o, k), (0, 0, None)))
    pool = [[gym.make(env_id) for _ in range(envs)] for _ in range(members)]
    obs = np.zeros((members, envs, 6), np.float32)
    for row in pool:
        for e in row:
            e.reset(seed=0)
    jax.block_until_ready(act(agents, jnp.asarray(obs), jax.random.PRNGKey(0)))
    start = time.perf_counter()
    for t in range(steps):
        actions = np.asarray(act(agents, jnp.asarray(obs), jax.random.PRNGKey(t)))
        for m, row in enumerate(pool):
            for e, env in enumerate(row):
                o, *_ = env.step(actions[m, e])
                obs[m, e] = np.concatenate([o["observation"], o["desired_goal"]])
    grid = members * envs * steps / (time.perf_counter() - start)
    env = gym.make(env_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(5000):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return grid, 5000 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/throughput_cpu.json")
    parser.add_argument("--grids", default="1,8,64")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    figures = dict(device=f"{jax.devices()[0].device_kind} x{jax.device_count()}", jax=jax.__version__)
    edp = steps_per_second("edp", "frobenius", 0.1, 0.0, args.steps)
    cdp = steps_per_second("edp", "frobenius", 0.1, 0.1, args.steps)
    figures.update(edp_updates_per_s=edp, cdp_updates_per_s=cdp, cdp_over_edp_step_time=edp / cdp)
    data = synthetic_data(jax.random.PRNGKey(0))
    single = grid_seconds(1, args.steps, data)
    figures["dbc_cdp_grid"] = [dict(N=n, aggregate_updates_per_s=n * args.steps / t, speedup_vs_separate=n * single / t)
                               for n in (int(x) for x in args.grids.split(","))
                               for t in [single if n == 1 else grid_seconds(n, args.steps, data)]]
    figures["sampler_actions_per_s_15step_dpm"] = sampler_actions_per_second()
    grid_rate, raw_rate = eval_env_steps_per_second()
    figures.update(eval_grid_env_steps_per_s=grid_rate, raw_gymnasium_env_steps_per_s=raw_rate)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    atomic_write_text(args.out, json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
