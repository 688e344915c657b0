"""Train a grid of seeds x data fractions x gammas as one compiled program.

    python -m experiments.sweep --config=experiments/configs/quickstart.py --workdir=runs/quickstart \
        [--config.gammas='(0.0, 0.1, 1.0)' --config.seeds=5 ...]

Several processes (one per host; cdp_jax/distributed.py): add --config.distributed=True, under SLURM
`srun python -m experiments.sweep ...`, elsewhere --coordinator=HOST:PORT --num_processes=N --process_id=I.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from cdp_jax.cli import apply_agent_overrides, split_agent_overrides

# config_flags overrides only keys that the config file sets, and it reads them from sys.argv when the flag is
# defined: the agent's own fields (--config.agent_config.KEY=VALUE) are taken out first and set after parsing.
try:
    sys.argv, _AGENT_OVERRIDES = split_agent_overrides(sys.argv)
except ValueError as err:
    sys.exit(f"error: bad command line or config: {err}")
_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/quickstart.py", "sweep config file")
_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "where checkpoints, results.csv, summary.md, plots go")
_COORDINATOR = flags.DEFINE_string("coordinator", "", "distributed: HOST:PORT of process 0 (empty: SLURM detects it)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "distributed: how many processes (with --coordinator)")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "distributed: this process's index (with --coordinator)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from cdp_jax.cli import enable_compilation_cache, one_line_errors, prefer_wide_cpu_vectors
    prefer_wide_cpu_vectors()                   # before JAX's backend starts
    from cdp_jax.sweep import Sweep
    cfg = _CONFIG.value
    enable_compilation_cache()
    if cfg.get("eval_overlap", False):
        from cdp_jax.eval_overlap import reserve_host_device
        reserve_host_device()
    from cdp_jax import distributed
    if cfg.get("distributed", False):
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    with one_line_errors():
        Sweep(cfg, _WORKDIR.value).run()
    if distributed.is_primary():
        with open(os.path.join(_WORKDIR.value, "summary.md")) as f:
            print(f.read())
        print(f"results: {_WORKDIR.value}/results.csv   plots: {_WORKDIR.value}/plots/")


def parse_flags(argv):
    """absl flag parsing, with a bad config file, key or value reported in one line instead of a traceback."""
    if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
        from cdp_jax.cli import config_help
        print(__doc__ + "\n" + config_help(argv))
    try:
        argv, agent_overrides = split_agent_overrides(argv)      # (taken out of sys.argv already at import)
        rest = flags.FLAGS(argv)
        _CONFIG.value.keys()               # config_flags defers a file that is missing or does not parse
        apply_agent_overrides(_CONFIG.value, {**_AGENT_OVERRIDES, **agent_overrides})
        return rest
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError, SyntaxError, NameError,
            ImportError) as err:
        message = " ".join(str(err).strip().strip('"').split())
        last_line = ([line.strip() for line in str(err).splitlines() if line.strip()] or [""])[-1]
        if "Failed loading config file" in str(err) or "earlier failure to load" in str(err):
            message = f"cannot load the --config file: {last_line}"
        elif "Error whilst parsing config file" in str(err):       # get_config(ARG) raised: its message only
            flag = message.split(": Error whilst parsing", 1)[0].removeprefix("flag ")
            message = f"{flag}: {last_line.partition(': ')[2] or last_line}"
        if isinstance(err, (AttributeError, KeyError)):
            message = f"unknown config key {message}"
        sys.exit(f"error: bad command line or config: {message}. `python -m experiments.sweep --help` lists the "
                 f"config keys with their values")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
