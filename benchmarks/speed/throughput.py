"""Speed figures of cdp_jax as one JSON file, rewritten after every figure (a timeout loses nothing measured).

    python -m benchmarks.speed.throughput [--out=benchmarks/results/throughput_cpu_DATE.json] [--grids 1,8,64]
        [--dbc_grids 1,8,64] [--one_program_grids 4,16] [--steps 50] [--sweep_members 16]
        [--only edp,grids,sweep,dbc,sampler,eval]

Figures (Hopper shapes: obs 11, act 3, batch 256, T = 50, DQL MLP, 15-step DPM-Solver++ critic targets):
``edp_updates_per_s`` / ``cdp_updates_per_s`` of one run and their step-time ratio; ``edp_cdp_grid``: grids of N
members, half EDP (γ 0) and half CDP (γ 0.1), trained by the sweep's own ``make_train_steps``, against N separate
single runs (``edp_cdp_grid_one_program``: the same grids with all members in one program,
``--one_program_grids``); ``dbc_cdp_grid``: the same for DBC/CDP-IL members; sampler actions/s; evaluation
env-steps/s over a grid against raw gymnasium stepping; and ``sweep_eval_share``: the share of wall time that evaluation takes in a
real ``Sweep`` of ``--sweep_members`` EDP/CDP members on a generated PointMaze-UMaze dataset, sequential and with
``eval_overlap`` (``sweep_eval_share_overlapped``; the ``sweep`` part reserves the evaluation's host device).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks.speed.contraction_cost import steps_per_second
from benchmarks.speed.sweep_throughput import grid_seconds, synthetic_data
from benchmarks.speed.timing import median_seconds
from benchmarks import record
from cdp_jax.agents.base import LossWeights
from cdp_jax.agents.edp import EDPAgent, default_config
from cdp_jax.envs.pool import register_robotics_envs
from cdp_jax.train.eval_overlap import reserve_host_device, training_devices
from cdp_jax.envs.pool import EnvPool
from cdp_jax.train.config import base_config
from cdp_jax.train.sweep import Sweep

register_robotics_envs()

OBS, ACT = 11, 3
PARTS = ("edp", "grids", "sweep", "dbc", "sampler", "eval")


def sampler_actions_per_second(batch: int = 1000) -> float:
    agent = EDPAgent.create(default_config(), LossWeights(), jax.random.PRNGKey(0), OBS, ACT)
    obs = jax.random.normal(jax.random.PRNGKey(1), (batch, OBS))
    sample = jax.jit(lambda p, k: agent.denoiser.sample(p, k, obs))
    return batch / median_seconds(sample, agent.actor_ema, jax.random.PRNGKey(2))


def eval_env_steps_per_second(members: int = 8, envs: int = 5, steps: int = 100) -> tuple[float, float]:
    """(grid evaluation env-steps/s with EDP's 100-candidate policy, raw PointMaze random-action steps/s)."""
    env_id = "PointMaze_UMaze-v3"
    agents = jax.vmap(lambda s: EDPAgent.create(default_config(), LossWeights(), jax.random.PRNGKey(s), 6, 2))(
        jnp.arange(members))
    act = jax.jit(jax.vmap(lambda a, o, k: a.act(o, k), (0, 0, None)))
    layout = (("observation", 4), ("desired_goal", 2))
    with EnvPool(gym.spec(env_id), layout, members * envs) as pool:
        obs = pool.reset(np.zeros(members * envs))
        active = np.ones(members * envs, bool)
        jax.block_until_ready(act(agents, jnp.asarray(obs.reshape(members, envs, -1)), jax.random.PRNGKey(0)))
        start = time.perf_counter()
        for t in range(steps):
            actions = np.asarray(act(agents, jnp.asarray(obs.reshape(members, envs, -1)), jax.random.PRNGKey(t)))
            obs = pool.step(actions.reshape(members * envs, -1), active)[0]
        grid = members * envs * steps / (time.perf_counter() - start)
    env = gym.make(env_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(5000):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return grid, 5000 / (time.perf_counter() - start)


def sweep_eval_share(members: int, steps: int = 2000, episodes: int = 10, overlap: bool = False) -> dict:
    """Timing of a real EDP/CDP sweep of ``members`` members (seeds x γ ∈ {0, 0.1}) on a 100k-step PointMaze-UMaze
    dataset generated in a temporary Minari root: train, evaluation and write seconds, and the evaluation share
    (the wall time the training loop waits for evaluation). ``overlap``: evaluation overlapped with training."""
    root = tempfile.mkdtemp(prefix="cdp-bench-")
    os.environ["MINARI_DATASETS_PATH"] = os.path.join(root, "minari")
    cfg = base_config("edp")
    cfg.dataset_id, cfg.generate, cfg.generate_steps = "local/pointmaze/umaze-v0", "pointmaze-umaze", 100_000
    cfg.seeds, cfg.gammas, cfg.data_fractions = max(1, members // 2), (0.0, 0.1), (1.0,)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.eval_workers = steps, steps // 4, episodes, 0
    cfg.eval_overlap = overlap
    sweep = Sweep(cfg, os.path.join(root, "run"), progress=False)
    sweep.run()
    return dict(members=sweep.grid.size, steps=steps, eval_episodes=episodes, evaluations=4, eval_overlap=overlap,
                **sweep.timing)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("out", "", "the result file, rewritten as figures arrive (default: benchmarks/results/"
                        "throughput_DEVICE_DATE.json)", flag_values=fv)
    flags.DEFINE_list("grids", ["1", "8", "64"], "EDP+CDP grid sizes", flag_values=fv)
    flags.DEFINE_list("dbc_grids", ["1", "8", "64"], "DBC/CDP-IL grid sizes", flag_values=fv)
    flags.DEFINE_list("one_program_grids", [], "EDP+CDP grid sizes to measure again with all members in one "
                      "program (the sweep's group_by_contraction=False)", flag_values=fv)
    flags.DEFINE_integer("steps", 50, "update steps per timed call", flag_values=fv)
    flags.DEFINE_integer("sweep_members", 16, "members of the evaluation-share sweep", flag_values=fv)
    flags.DEFINE_list("only", list(PARTS), f"comma list of the parts to measure, of {PARTS}", flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    parts = set(args.only)
    if parts - set(PARTS):
        print(f"error: --only names unknown parts {sorted(parts - set(PARTS))}; choose from {PARTS}", file=sys.stderr)
        return 2
    if "sweep" in parts:                            # the overlapped sweep evaluates on a host device of its own
        reserve_host_device()
    figures = dict(device=f"{jax.devices()[0].device_kind} x{len(training_devices(False))}", jax=jax.__version__,
                   date=time.strftime("%Y-%m-%d"), steps_per_timed_call=args.steps)

    def keep(**kw):
        figures.update(kw)
        record.write(args.out or record.dated_path("throughput"), figures)
        print(json.dumps(kw), flush=True)

    if "edp" in parts:
        edp = steps_per_second("edp", "frobenius", 0.1, 0.0, args.steps)
        keep(edp_updates_per_s=edp)
        cdp = steps_per_second("edp", "frobenius", 0.1, 0.1, args.steps)
        keep(cdp_updates_per_s=cdp, cdp_over_edp_step_time=edp / cdp)
    data = synthetic_data(jax.random.PRNGKey(0))
    single = {}

    def grids(key, agent, gammas, sizes, split):
        rows = []
        for n in (int(x) for x in sizes):
            t = grid_seconds(n, args.steps, data, agent, gammas, by_contraction=split)
            if n == 1 and agent not in single:
                single[agent] = t
            rows.append(dict(N=n, aggregate_updates_per_s=n * args.steps / t,
                             speedup_vs_separate=n * single[agent] / t if agent in single else None))
            keep(**{key: rows})

    # In order of what a time-limited GPU call most needs: the RL grids and the evaluation share first.
    if "grids" in parts:
        grids("edp_cdp_grid", "edp", (0.0, 0.1), args.grids, True)
        grids("edp_cdp_grid_one_program", "edp", (0.0, 0.1), args.one_program_grids, False)
    if "sweep" in parts:
        keep(sweep_eval_share=sweep_eval_share(args.sweep_members))
        keep(sweep_eval_share_overlapped=sweep_eval_share(args.sweep_members, overlap=True))
    if "dbc" in parts:
        grids("dbc_cdp_grid", "dbc", (0.1,), args.dbc_grids, True)
    if "sampler" in parts:
        keep(sampler_actions_per_s_15step_dpm=sampler_actions_per_second())
    if "eval" in parts:
        grid_rate, raw_rate = eval_env_steps_per_second()
        keep(eval_grid_env_steps_per_s=grid_rate, raw_gymnasium_env_steps_per_s=raw_rate)
    return 0


if __name__ == "__main__":
    from cdp_jax.train.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.speed.throughput", *sys.argv[1:]], __doc__, define_flags, main))
