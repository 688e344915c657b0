"""What every command-line entry point shares: the persistent compilation cache, XLA:CPU's vector width, one-line
errors, config help."""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import sys
from typing import Callable

from absl import flags

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
    (README, "Results"). Must run before JAX's backend starts; a width the caller's ``XLA_FLAGS`` sets is kept,
    and other CPUs are left alone. Returns whether it set the flag."""
    return "avx512f" in cpu_model_and_flags()[1] and add_xla_flag("xla_cpu_prefer_vector_width", "512")


@contextlib.contextmanager
def one_line_errors():
    """Turns the failures a user can fix into one line on stderr and a non-zero exit, never a traceback:
    bad input (``ValueError``, which dataset and checkpoint errors are), OS errors (a full disk, a lost folder),
    and a stop on request (exit 130 for SIGINT, 143 for SIGTERM)."""
    from cdp_jax.sweep import SweepStopped
    try:
        yield
    except SweepStopped as err:
        print(str(err), file=sys.stderr)
        sys.exit(130 if err.signal_name == "SIGINT" else 143)
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


AGENT_OVERRIDE = "--config.agent_config."


def split_agent_overrides(argv: list[str]) -> tuple[list[str], dict]:
    """``argv`` without its ``--config.agent_config.KEY=VALUE`` (or ``... KEY VALUE``) items, and those items as
    ``{"KEY": value}``, each value read as a Python literal, else kept as text. config_flags overrides only the keys
    that the config file sets, while an agent has many more (``q_action_clip``, ``diffusion.time_embedding``, ...)
    and which agent runs is known only once every flag is read: :func:`apply_agent_overrides` sets them after
    parsing, and :func:`cdp_jax.config.agent_config` refuses, in one line, a key the agent does not know."""
    rest, overrides, items = [], {}, iter(argv)
    for item in items:
        if not item.startswith(AGENT_OVERRIDE):
            rest.append(item)
            continue
        key, eq, text = item[len(AGENT_OVERRIDE):].partition("=")
        if not eq:
            text = next(items, None)
            if text is None:
                raise ValueError(f"{item} has no value: write {item}=VALUE")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return rest, overrides


def apply_agent_overrides(cfg, overrides: dict) -> None:
    """Sets ``cfg.agent_config.KEY`` (dotted ``KEY``, sub-dicts made as needed) for each of ``overrides``; a value
    of another type than the file's is one-line ``ValueError``."""
    import ml_collections
    for key, value in overrides.items():
        node, (*path, leaf) = cfg.agent_config, key.split(".")
        with cfg.agent_config.unlocked():                   # config_flags locks the loaded config
            for name in path:
                if name not in node:
                    node[name] = ml_collections.ConfigDict()
                node = node[name]
            try:
                node[leaf] = value
            except TypeError as err:
                raise ValueError(f"--config.agent_config.{key}={value!r}: {err}") from None


def config_help(argv: list[str], default: str = "experiments/configs/quickstart.py") -> str:
    """The keys of the ``--config`` file named in ``argv`` (or ``default``) with their values, as overrides."""
    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), default)
    path, _, arg = path.partition(":")
    try:
        spec = importlib.util.spec_from_file_location("cdp_config_help", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cfg = module.get_config(arg) if arg else module.get_config()
    except Exception as err:  # noqa: BLE001 - help must not fail
        return f"(cannot read config {path!r}: {type(err).__name__}: {err})"
    lines = [f"Config keys of {path}{':' + arg if arg else ''} (override any with --config.KEY=VALUE):"]
    from cdp_jax.config import agent_config, flatten
    lines += [f"  --config.{k}={v!r}" for k, v in flatten(cfg.to_dict()).items() if not k.startswith("agent_config.")]
    try:
        agent = flatten(agent_config(cfg).to_dict())
    except Exception as err:  # noqa: BLE001 - help must not fail
        return "\n".join(lines) + f"\n(cannot resolve the agent's config: {type(err).__name__}: {err})\n"
    lines.append(f"Agent {cfg.agent!r}, with this file's values (override any with --config.agent_config.KEY=VALUE; "
                 f"total_steps follows num_steps):")
    lines += [f"  --config.agent_config.{k}={v!r}" for k, v in agent.items() if k not in ("agent", "total_steps")]
    return "\n".join(lines) + "\n"


def run_flags_cli(argv: list[str], doc: str, define: Callable[[flags.FlagValues], None],
                  main: Callable[[list[str], flags.FlagValues], int]) -> int:
    """Runs a command-line tool written with absl flags: ``define(fv)`` declares its flags on a private
    ``FlagValues`` (so several tools can share flag names in one process, as the tests do), ``argv`` (program name
    first) is parsed into it, and ``main(positional arguments, fv)`` returns the exit code. ``--help`` prints ``doc``
    and the flags; a bad flag is one line on stderr and exit code 2."""
    fv = flags.FlagValues()
    define(fv)
    if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
        listing = [f"  --{name}={fv[name].default!r}: {fv[name].help}" for name in sorted(fv) if name != "undefok"]
        print(doc.strip() + "\n\nflags (default shown):\n" + "\n".join(listing))
        return 0
    try:
        rest = fv(list(argv))
    except flags.Error as err:
        message = " ".join(str(err).split()).replace(" ?", "?")
        print(f"error: {message} (`{argv[0]} --help` lists the flags)", file=sys.stderr)
        return 2
    return main(rest[1:], fv)
