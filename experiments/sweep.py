"""Train a grid of seeds x data fractions x gammas as one compiled program.

    python -m experiments.sweep --config=experiments/configs/quickstart.py --workdir=runs/quickstart \
        [--config.gammas='(0.0, 0.1, 1.0)' --config.seeds=5 --config.agent_config.lr=1e-4 ...]

Several processes (one per host; cdp_jax/train/distributed.py): add --config.distributed=True, under SLURM
`srun python -m experiments.sweep ...`, elsewhere --coordinator=HOST:PORT --num_processes=N --process_id=I.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from cdp_jax.train import distributed
from cdp_jax.train.cli import (config_help, enable_compilation_cache, one_line_errors, prefer_wide_cpu_vectors,
                               refuse_bad_command_line)
from cdp_jax.train.eval_overlap import reserve_host_device
from cdp_jax.train.sweep import Sweep

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "where checkpoints, results.csv, summary.md, plots go")
_COORDINATOR = flags.DEFINE_string("coordinator", "", "distributed: HOST:PORT of process 0 (empty: SLURM detects it)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "distributed: how many processes (with --coordinator)")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "distributed: this process's index (with --coordinator)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    prefer_wide_cpu_vectors()                   # before JAX's backend starts
    cfg = _CONFIG.value
    enable_compilation_cache()
    if cfg.get("eval_overlap", False):
        reserve_host_device()
    if cfg.get("distributed", False):
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    with one_line_errors():
        Sweep(cfg, _WORKDIR.value).run()
    if distributed.is_primary():
        with open(os.path.join(_WORKDIR.value, "summary.md")) as f:
            print(f.read())
        print(f"results: {_WORKDIR.value}/results.csv   plots: {_WORKDIR.value}/plots/")


def parse_flags(argv):
    helps = ("--help", "-h", "--helpfull")
    with refuse_bad_command_line("python -m experiments.sweep --help"):
        rest = flags.FLAGS([a for a in argv if a not in helps])
        cfg = _CONFIG.value
        cfg.keys()                         # config_flags defers a file that is missing or does not parse
    if any(a in helps for a in argv[1:]):
        print(__doc__ + "\n" + config_help(cfg) + "\n" + flags.FLAGS.main_module_help())
        sys.exit(0)
    return rest


if __name__ == "__main__":
    # config_flags reads --config.KEY overrides as it defines the flag: a bad one fails here, in one line
    with refuse_bad_command_line("python -m experiments.sweep --help"):
        _CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/quickstart.py", "sweep config file")
    app.run(main, flags_parser=parse_flags)
