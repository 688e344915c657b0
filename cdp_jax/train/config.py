"""A sweep's config: the fields every sweep has (``base_config``), their validation, and the agent's merged config.

Static settings live in the ``ml_collections`` config; what varies across the grid (seed, data fraction, γ, η)
becomes pytree leaves in :mod:`cdp_jax.train.grid`. ``validate`` refuses a bad key or value in one line, before any
compute.
"""
from __future__ import annotations

import math

import ml_collections

from cdp_jax.train import wandb_runs
from cdp_jax import agents as agent_registry
from cdp_jax.datasets import GENERATORS
from cdp_jax.datasets.normalization import OBS_NORMALIZATIONS
from cdp_jax.datasets.robomimic_hdf5 import is_robomimic
from cdp_jax.datasets.windows import check_window
from cdp_jax.datasets.subsets import SUBSET_KINDS
from cdp_jax.agents.base import check_agent_config
from cdp_jax.core.diffusion import validate_config

# The γ values the official code sweeps per task (its best per task is what the paper reports); with 0 as the
# plain backbone. ``experiments/configs/d4rl_mujoco.py:TASK,gammas`` trains them all in one grid, and
# ``python -m experiments.select_gamma`` chooses one on held-out episodes.
OFFICIAL_GAMMAS = (0.0, 0.001, 0.01, 0.1, 0.5, 1.0, 10.0)
REQUIRED = ("dataset_id", "agent", "seeds", "data_fractions", "gammas", "num_steps", "eval_every", "eval_episodes")


def base_config(agent: str = "dbc") -> ml_collections.ConfigDict:
    """Fields every sweep config has, with ``agent``'s whole default config as ``agent_config``, so that
    ``config_flags`` parses, types and checks ``--config.agent_config.KEY=VALUE`` for every field of the agent;
    config files override them. ``seeds`` is a count or a tuple of seeds (``--config.seeds=5`` or
    ``--config.seeds='(0, 3, 7)'``)."""
    return ml_collections.ConfigDict(dict(
        dataset_id="local/pointmaze/umaze-v0", generate="", generate_steps=0, generate_image_size=0, agent=agent, agent_config=agent_registry.default_agent_config(agent),
        seeds=ml_collections.FieldReference(3, field_type=object), data_fractions=(1.0,), subset_kind="transitions", gammas=(0.0, 0.1), eta=1.0, num_steps=10_000,
        eval_every=2_000, eval_episodes=10, eval_max_steps=0, eval_return_clip=(), eval_seed=100_000, eval_workers=1, eval_max_envs=0, eval_overlap=False, progress_every=0, batch_size=256, obs_normalization="gaussian",
        sequence=dict(obs_steps=1, horizon=1, action_steps=1), obs_keys=(), demo_filter="", subset_seed=-1,
        consistency_states=64, consistency_samples=8, members_per_program=0, group_by_contraction=True, resume=True, overwrite=False, distributed=False,
        tensorboard=True, wandb="off"))


def seeds_of(cfg) -> list[int]:
    """``seeds`` may be a count (0..n-1) or an explicit list."""
    if isinstance(cfg.seeds, int):
        return list(range(cfg.seeds))
    if isinstance(cfg.seeds, (tuple, list)) and all(isinstance(s, int) for s in cfg.seeds):
        return [int(s) for s in cfg.seeds]
    raise ValueError(f"seeds must be a count or a tuple of integer seeds, got {cfg.seeds!r}")


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Refuses a bad config before any compute, with one line naming the field: the grid, the training and
    evaluation budget, the data, then the agent's own fields."""
    for name in REQUIRED:
        if name not in cfg:
            raise ValueError(f"config has no field {name!r}; every sweep config needs {REQUIRED}")
    agent_registry.agent_class(cfg.agent)
    _validate_grid(cfg)
    _validate_budget(cfg)
    _validate_data(cfg)
    agent_config(cfg)                                   # validates the agent's own fields


def _validate_grid(cfg) -> None:
    """Seeds, data fractions, γ and η."""
    seeds = seeds_of(cfg)
    if not seeds or (isinstance(cfg.seeds, int) and cfg.seeds < 1):
        raise ValueError(f"seeds must be a positive count or a non-empty list, got {cfg.seeds}")
    for name, values in (("seeds", seeds), ("data_fractions", [float(f) for f in cfg.data_fractions]),
                         ("gammas", [float(g) for g in cfg.gammas])):
        if len(set(values)) != len(values):
            raise ValueError(f"{name} has repeated values {tuple(values)}: each grid member must be distinct")
    if not cfg.data_fractions:
        raise ValueError("data_fractions is empty; give at least one fraction in (0, 1]")
    for f in cfg.data_fractions:
        if not 0.0 < float(f) <= 1.0:
            raise ValueError(f"data_fractions must lie in (0, 1], got {f}")
    if not cfg.gammas:
        raise ValueError("gammas is empty; give at least one contraction weight >= 0 (0 is the plain backbone)")
    for g in cfg.gammas:
        if not float(g) >= 0.0 or not math.isfinite(float(g)):
            raise ValueError(f"gammas must be finite and >= 0, got {g}")
    if cfg.agent not in agent_registry.DIFFUSION and any(float(g) > 0 for g in cfg.gammas):
        raise ValueError(f"agent {cfg.agent!r} has no diffusion model, so gammas must be (0.0,)")
    if not (math.isfinite(float(cfg.eta)) and float(cfg.eta) >= 0):
        raise ValueError(f"eta (the Q-loss weight) must be finite and >= 0, got {cfg.eta}")


def _validate_budget(cfg) -> None:
    """Steps, intervals, batch, evaluation, the processes it runs in and where it logs."""
    mode = cfg.get("wandb", "off")
    if mode not in wandb_runs.MODES:
        raise ValueError(f"wandb must be one of {', '.join(wandb_runs.MODES)}, got {mode!r}")
    if mode != "off":
        wandb_runs.import_wandb()               # a missing package is one line before anything is written
    if int(cfg.get("eval_workers", 1)) < 0:
        raise ValueError(f"eval_workers must be >= 0 (0: one per CPU core, 1: in this process), got {cfg.eval_workers}")
    if int(cfg.get("eval_max_envs", 0)) < 0:
        raise ValueError(f"eval_max_envs must be >= 0 (0: as many as fit in half the available memory), "
                         f"got {cfg.eval_max_envs}")
    if cfg.get("eval_overlap", False) and cfg.get("distributed", False):
        raise ValueError("eval_overlap works in one process only; leave it False with distributed=True")
    for name in ("num_steps", "eval_every", "eval_episodes", "batch_size", "consistency_states"):
        if int(cfg[name]) < 1:
            raise ValueError(f"{name} must be >= 1, got {cfg[name]}")
    if int(cfg.consistency_samples) < 2:
        raise ValueError(f"consistency_samples must be >= 2 (the action spread is a standard deviation over them), "
                         f"got {cfg.consistency_samples}")
    for name, meaning in (("eval_seed", "the first evaluation reset seed"), ("members_per_program", "0: automatic"),
                          ("generate_steps", "0: the generator's default"),
                          ("generate_image_size", "0: low-dim demos")):
        if int(cfg.get(name, 0)) < 0:
            raise ValueError(f"{name} must be >= 0 ({meaning}), got {cfg[name]}")
    if cfg.num_steps % cfg.eval_every:
        raise ValueError(f"num_steps={cfg.num_steps} must be a multiple of eval_every={cfg.eval_every}")
    progress = int(cfg.get("progress_every", 0))
    if progress < 0 or (progress and cfg.eval_every % progress):
        raise ValueError(f"progress_every={progress} must divide eval_every={cfg.eval_every} (0: about ten progress "
                         f"updates per evaluation interval)")
    clip = tuple(cfg.get("eval_return_clip", ()))
    if clip and not (len(clip) == 2 and float(clip[0]) < float(clip[1])):
        raise ValueError(f"eval_return_clip must be () or (low, high) with low < high, got {clip}")


def _validate_data(cfg) -> None:
    """Normalisation, subsets, generators, and the settings that apply to robomimic files only."""
    if cfg.obs_normalization not in OBS_NORMALIZATIONS:
        raise ValueError(f"unknown obs_normalization {cfg.obs_normalization!r}; choose one of {OBS_NORMALIZATIONS}")
    seq = cfg.sequence
    check_window(seq.horizon, seq.obs_steps, seq.action_steps)
    robomimic = is_robomimic(cfg.dataset_id)
    if (seq.obs_steps, seq.horizon, seq.action_steps) != (1, 1, 1) and not robomimic:
        raise ValueError("sequence settings (observation history, action chunks) apply to robomimic files "
                         "(dataset ids ending in .hdf5) only; leave them at 1 for Minari datasets")
    if cfg.eval_max_steps < 0 or (cfg.eval_max_steps and not robomimic):
        raise ValueError(f"eval_max_steps={cfg.eval_max_steps}: a shorter robomimic evaluation episode (> 0; 0 "
                         f"keeps the task's horizon) applies to robomimic files only")
    if tuple(cfg.obs_keys) and not robomimic:
        raise ValueError("obs_keys (robomimic observation keys) apply to robomimic files only; leave it () for "
                         "Minari datasets")
    if cfg.get("demo_filter", "") and not robomimic:
        raise ValueError("demo_filter (a robomimic file's mask/<key> demo list) applies to robomimic files only; "
                         "leave it '' for Minari datasets")
    if cfg.subset_kind not in SUBSET_KINDS:
        raise ValueError(f"unknown subset_kind {cfg.subset_kind!r}; choose one of {SUBSET_KINDS}")
    if cfg.generate and cfg.generate not in GENERATORS:
        raise ValueError(f"unknown generator {cfg.generate!r}; choose one of {sorted(GENERATORS)} or ''")


def agent_config(cfg, image_layout: dict | None = None) -> ml_collections.ConfigDict:
    """The agent's defaults updated by ``cfg.agent_config``; ``total_steps`` follows ``num_steps``; a dataset of
    image observations (``image_layout``, from its ``DatasetInfo``) fills ``diffusion.image``.

    ``cfg.agent_config`` holds the config file's agent (its ``agent`` field); where ``--config.agent`` names another,
    the new agent takes the fields that differ from the file agent's defaults (what the file or the command line
    changed), and a changed field the new agent lacks is refused."""
    out = agent_registry.default_agent_config(cfg.agent)
    given, known = flatten(cfg.agent_config.to_dict()), flatten(out.to_dict())
    written_for = given.pop("agent", cfg.agent)
    if written_for != cfg.agent:
        defaults = flatten(agent_registry.default_agent_config(written_for).to_dict())
        given = {k: v for k, v in given.items() if k not in defaults or defaults[k] != v}
    unknown = [k for k in given if k not in known]
    if unknown:
        raise ValueError(f"agent {cfg.agent!r} has no config field {', '.join(unknown)} (agent_config."
                         f"{unknown[0]}); `python -m experiments.sweep --config=... --help` lists its fields")
    try:
        out.update_from_flattened_dict(given)
    except TypeError as err:                # a value of another type than the field's (5 for a bool, text for a number)
        raise ValueError(f"agent_config: {err}") from None
    check_agent_config(out)
    out.total_steps = int(cfg.num_steps)
    if "diffusion" in out:
        out.diffusion.chunk_horizon = int(cfg.sequence.horizon)      # chunk networks reshape [H * act_dim]
    if image_layout is not None:
        if cfg.agent != "dbc":
            raise ValueError(f"agent {cfg.agent!r} cannot take image observations (dataset {cfg.dataset_id!r} has "
                             f"cameras {list(image_layout['cameras'])}); use agent 'dbc' (DBC/CDP-IL, DP-Unet, "
                             f"DP-DiT with --config.agent_config.diffusion.network)")
        out.diffusion.image.update(dict(image_layout, cameras=tuple(image_layout["cameras"])))
    if "diffusion" in out:
        validate_config(out.diffusion)
    return out


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}} -> {"a.b": 1}``: the dotted keys that ``--config.a.b=...`` overrides use."""
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat
