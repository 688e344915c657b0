"""Robomimic speed figures on this machine, as one JSON file rewritten after every figure.

    python -m benchmarks.speed.robomimic_throughput [--out=benchmarks/results/robomimic_cpu_DATE.json] [--demos=50]
        [--steps=20] [--members=8] [--episodes=1] [--eval_workers=1,2] [--parts=generate,train,eval]
        [--tasks=lift,can,square]

* ``generate``: per task of ``--tasks`` (default lift): seconds per successful scripted demo, the controller's
  success rate and the demos' mean length.
* ``train``: update steps/s of each Table 2 backbone at its batch size on Lift shapes (obs history 2 x 19):
  Pearce MLP (batch 512, one action), DP-Unet and DP-DiT (batch 256, chunk 16 x 7), BC-GMM (batch 512), γ = 0.
* ``eval``: environment steps/s of ``--members`` DBC members evaluated in lockstep (``--episodes`` Lift episodes
  each, the Pearce policy's 50-step sampler per step), with the environments stepped in this process and by each
  count of worker processes in ``--eval_workers`` (the sweep's ``eval_workers``), against raw robosuite stepping.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks.speed.contraction_cost import steps_per_second
from benchmarks import record
from cdp_jax.datasets.generators import robomimic_scripted
from cdp_jax.datasets.robomimic_hdf5 import read_demos
from cdp_jax.train import evaluation
from cdp_jax.envs import robomimic_env
from cdp_jax.agents import dbc
from cdp_jax.agents.base import LossWeights
from cdp_jax.datasets import Normalizer
from cdp_jax.datasets.loading import DatasetInfo

PARTS = ("generate", "train", "eval")


def generate_figures(demos: int, tasks: list[str]) -> dict:
    out = {}
    for task in tasks:
        with tempfile.TemporaryDirectory() as tmp:
            report = robomimic_scripted.generate(task, os.path.join(tmp, f"{task}.hdf5"), demos, seed=1,
                                                 progress=False)
            steps = read_demos(report["path"]).episode_lengths.mean()
        out.update({f"{task}_demos": demos, f"{task}_seconds_per_demo": report["seconds"] / demos,
                    f"{task}_controller_success": report["success_rate"], f"{task}_steps_per_demo": float(steps)})
    return out


def train_figures(steps: int) -> dict:
    lift = dict(obs_dim=38)
    out = {"pearce_batch512": steps_per_second("dbc", "frobenius", 1.0, 0.0, steps, network="pearce", act_dim=7,
                                               batch_size=512, **lift)}
    for net in ("dit", "unet"):                 # updates of seconds: calls of one compiled update, not a scan
        out[f"{net}_batch256_chunk16"] = steps_per_second("dbc", "frobenius", 1.0, 0.0, max(2, steps // 10),
                                                          scan=False, network=net, act_dim=112, batch_size=256,
                                                          horizon=16, **lift)
    out["bc_gmm_batch512"] = steps_per_second("bc_gmm", "frobenius", 1.0, 0.0, steps, act_dim=7, batch_size=512,
                                              **lift)
    return {"updates_per_s": out}


def eval_figures(members: int, episodes: int, worker_counts: list[int]) -> dict:
    args = robomimic_env.default_env_args("lift")
    spec = robomimic_env.gym_spec(args, robomimic_env.TASKS["lift"].obs_keys, obs_steps=2)
    box = np.ones(7, np.float32)
    info = DatasetInfo("lift", 38, 7, (("observation", 38),), -box, box, 0, 0, np.zeros(1), np.zeros(38),
                       np.ones(38), None, None, True, "none", spec)
    agents = jax.vmap(lambda s: dbc.DBCAgent.create(dbc.default_config(), LossWeights(), jax.random.PRNGKey(s), 38, 7))(
        jnp.arange(members))
    act = evaluation.grid_actor(lambda agent, obs, key: agent.act(obs, key))
    keys = jax.random.split(jax.random.PRNGKey(0), members)
    norm = Normalizer.from_info(info, "none")
    evaluation.evaluate(agents, act, info, norm, keys, episodes)           # compile at the timed calls' shapes
    grid = {}
    for workers in worker_counts:                                         # the same episodes each time
        start = time.perf_counter()
        evaluation.evaluate(agents, act, info, norm, keys, episodes, workers=workers)
        rate = members * episodes * robomimic_env.TASKS["lift"].horizon / (time.perf_counter() - start)
        grid.setdefault(workers, []).append(rate)                         # a count given twice: two rounds
    env = robomimic_env.make_env(args)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(200):
        env.step(np.zeros(7))
    raw = 200 / (time.perf_counter() - start)
    return dict(eval_members=members, eval_episodes=episodes, eval_env_steps_per_s_by_workers=grid,
                eval_env_steps_per_s=float(np.median(grid[worker_counts[0]])), raw_robosuite_steps_per_s=raw)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("out", "", "the result file, rewritten as figures arrive (default: benchmarks/results/"
                        "robomimic_DEVICE_DATE.json)", flag_values=fv)
    flags.DEFINE_integer("demos", 50, "scripted Lift demos to time", flag_values=fv)
    flags.DEFINE_integer("steps", 20, "update steps per timed call (chunk backbones: a tenth)", flag_values=fv)
    flags.DEFINE_integer("members", 8, "members evaluated in lockstep", flag_values=fv)
    flags.DEFINE_integer("episodes", 1, "evaluation episodes per member", flag_values=fv)
    flags.DEFINE_list("eval_workers", ["1"], "processes stepping the environments, each timed (1: in this "
                      "process, 0: one per CPU core)", flag_values=fv)
    flags.DEFINE_list("parts", list(PARTS), f"which figures, of {PARTS}", flag_values=fv)
    flags.DEFINE_list("tasks", ["lift"], "tasks of the generate part (lift, can, square)", flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    figures = dict(device=jax.devices()[0].device_kind, date=time.strftime("%Y-%m-%d"))
    measure = {"generate": lambda: generate_figures(args.demos, args.tasks), "train": lambda: train_figures(args.steps),
               "eval": lambda: eval_figures(args.members, args.episodes,
                                            [int(w) or os.cpu_count() for w in args.eval_workers])}
    for part in args.parts:
        figures.update(measure[part]())
        record.write(args.out or record.dated_path("robomimic"), figures)
        print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    from cdp_jax.train.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.speed.robomimic_throughput", *sys.argv[1:]], __doc__, define_flags, main))
