"""What every command-line entry point shares: the persistent compilation cache, XLA:CPU's vector width, one-line
errors, config help."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from absl import flags

from cdp_jax.io import stopping
from cdp_jax.io.stopping import Stopped
from cdp_jax.train.config import flatten

CACHE_ENV = "CDP_JAX_CACHE"


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache, so a second run skips compilation. The folder is
    ``$CDP_JAX_CACHE`` (an empty value turns the cache off), else ``~/.cache/cdp_jax/jax``. Returns it."""
    import jax
    path = os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "cdp_jax", "jax"))
    if not path:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """The first CPU's model name and instruction-set flags from /proc/cpuinfo (``("unknown", set())`` elsewhere)."""
    model, flags_set = "unknown", set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif name.strip() == "flags" and not flags_set:
                    flags_set = set(value.split())
    return model, flags_set


def add_xla_flag(name: str, value: str) -> bool:
    """Appends ``--name=value`` to ``XLA_FLAGS`` unless the caller's ``XLA_FLAGS`` already sets ``name`` (theirs
    wins); must run before JAX's backend starts. Returns whether it added the flag."""
    flags_now = os.environ.get("XLA_FLAGS", "")
    if name in flags_now:
        return False
    os.environ["XLA_FLAGS"] = f"{flags_now} --{name}={value}".strip()
    return True


def prefer_wide_cpu_vectors() -> bool:
    """On a CPU with AVX-512, lets XLA:CPU emit 512-bit vectors (``--xla_cpu_prefer_vector_width=512`` in
    ``XLA_FLAGS``; its default prefers 256): the EDP and CDP updates ran 8-17% faster on a 2-core AVX-512 Xeon
    (docs/performance.md). Must run before JAX's backend starts; a width the caller's ``XLA_FLAGS`` sets is kept,
    and other CPUs are left alone. Returns whether it set the flag."""
    return "avx512f" in cpu_model_and_flags()[1] and add_xla_flag("xla_cpu_prefer_vector_width", "512")


@contextlib.contextmanager
def one_line_errors():
    """Turns the failures a user can fix into one line on stderr and a non-zero exit, never a traceback:
    bad input (``ValueError``, which dataset and checkpoint errors are), OS errors (a full disk, a lost folder),
    and a stop on request (exit 130 for SIGINT, 143 for SIGTERM)."""
    try:
        yield
    except Stopped as err:
        sys.exit(stopping.report(err))
    except KeyboardInterrupt:
        print("stopped at once; the workdir keeps its last complete checkpoint: rerun the same command to resume",
              file=sys.stderr)
        sys.exit(130)
    except ValueError as err:
        sys.exit(f"error: {err}")
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        sys.exit(f"error: {err.strerror or err}{where}; fix it (free disk space, permissions) and rerun the same "
                 f"command: it resumes from the last complete checkpoint")


@contextlib.contextmanager
def refuse_bad_command_line(help_command: str):
    """Turns a bad flag, config file, config key or value (as ``config_flags`` and absl raise them) into one line on
    stderr, naming the command that lists the keys, and exit code 2."""
    try:
        yield
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError, SyntaxError, NameError,
            ImportError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        if isinstance(err, (AttributeError, KeyError)):        # config_flags names the missing key's last part only
            key = lines[0].strip("\"'")
            given = [a.split("=")[0] for a in sys.argv if a.startswith("--config.") and
                     key in a.split("=")[0].split(".")]
            message = f"unknown config key {given[0] if given else key}"
        else:
            message = lines[0] + (f" ({lines[-1]})" if len(lines) > 1 else "")
        print(f"error: bad command line or config: {message}; `{help_command}` lists the config keys with their "
              f"values", file=sys.stderr)
        sys.exit(2)


def config_help(cfg) -> str:
    """Every key of a loaded sweep config, the agent's included, with its value, as the override that sets it."""
    try:
        items = flatten(cfg.to_dict()).items()
    except Exception as err:  # noqa: BLE001 - help must not fail
        return f"(cannot read the config: {type(err).__name__}: {err})\n"
    return ("Config keys (override any with --config.KEY=VALUE; agent_config.total_steps follows num_steps):\n"
            + "\n".join(f"  --config.{k}={v!r}" for k, v in items) + "\n")


def run_flags_cli(argv: list[str], doc: str, define: Callable[[flags.FlagValues], None],
                  main: Callable[[list[str], flags.FlagValues], int]) -> int:
    """Runs a command-line tool written with absl flags: ``define(fv)`` declares its flags on a private
    ``FlagValues`` (so several tools can share flag names in one process, as the tests do), ``argv`` (program name
    first) is parsed into it, and ``main(positional arguments, fv)`` returns the exit code. ``--help`` prints ``doc``
    and the flags (after checking the rest of the command line); a bad flag is one line on stderr and exit code 2."""
    fv = flags.FlagValues()
    define(fv)
    helps = ("--help", "-h", "--helpfull")
    try:
        rest = fv([a for a in argv if a not in helps])
    except flags.Error as err:
        message = " ".join(str(err).split()).replace(" ?", "?")
        print(f"error: {message} (`{argv[0]} --help` lists the flags)", file=sys.stderr)
        return 2
    if any(a in helps for a in argv[1:]):
        listing = [f"  --{name}={fv[name].default!r}: {fv[name].help}" for name in sorted(fv) if name != "undefok"]
        print(doc.strip() + "\n\nflags (default shown):\n" + "\n".join(listing))
        return 0
    return main(rest[1:], fv)
