"""Load any trained grid member of a sweep as a frozen, standalone policy; export it with ``jax.export``.

    policy = load_policy("runs/quickstart", seed=0, data_fraction=1.0, gamma=0.1)   # or member=3
    actions = policy.act(obs, key)            # raw observations [B, obs_dim] -> environment actions [B, act_dim]
    policy.export("policy.cdpx")              # run anywhere with cdp_jax.exported.load_exported
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from cdp_jax import agents as agent_registry
from cdp_jax.agents.base import LossWeights
from cdp_jax.io.checkpoint import Checkpoints
from cdp_jax.train.config import flatten
from cdp_jax.datasets.normalization import Normalizer
from cdp_jax.exported import FORMAT, FORMAT_VERSION, MAGIC
from cdp_jax.io import atomic_write_bytes, atomic_write_text
from cdp_jax.train import results

META = "policy_meta.json"


def write_policy_meta(workdir: str, *, agent: str, agent_config: dict, members: list, obs_dim: int, act_dim: int,
                      normalizer: Normalizer, dataset_id: str) -> None:
    meta = dict(agent=agent, agent_config=agent_config, members=members, obs_dim=obs_dim, act_dim=act_dim,
                dataset_id=dataset_id, **normalizer.as_meta())
    atomic_write_text(os.path.join(workdir, META), json.dumps(meta))


def write_exported(path: str, serialized: bytes, header: dict) -> None:
    """``MAGIC | header length (8 bytes) | JSON header | jax.export bytes``, written atomically."""
    head = json.dumps(dict(header, format=FORMAT, format_version=FORMAT_VERSION, jax_version=jax.__version__)).encode()
    atomic_write_bytes(path, MAGIC + len(head).to_bytes(8, "little") + head + serialized)


class TrainedPolicy:
    """A frozen grid member: ``act(obs [B, obs_dim], key) -> [B, act_dim]`` in environment units (jitted)."""

    def __init__(self, agent, meta: dict, member: dict, step: int):
        self.agent, self.meta, self.member, self.step = agent, meta, member, step
        self.normalizer = Normalizer.from_meta(meta)
        self._act = jax.jit(self._forward)

    def _forward(self, agent, obs, key):
        return self.normalizer.to_env_action(agent.act(self.normalizer.obs(obs), key))

    def act(self, obs, key) -> jax.Array:
        obs = jnp.asarray(obs, jnp.float32)
        if obs.ndim != 2 or obs.shape[1] != self.meta["obs_dim"]:
            raise ValueError(f"observations must have shape [B, {self.meta['obs_dim']}], got {obs.shape}")
        return self._act(self.agent, obs, key)

    def export(self, path: str, batch_size: int | None = None) -> str:
        """Serialises the inference function with ``jax.export`` (parameters baked in). With ``batch_size=None``
        the batch dimension is symbolic. The file runs with :func:`cdp_jax.exported.load_exported`."""
        obs_dim = self.meta["obs_dim"]
        batch = jax.export.symbolic_shape("b")[0] if batch_size is None else int(batch_size)
        fn = jax.jit(lambda obs, key: self._forward(self.agent, obs, key))      # key: raw uint32[2]
        exported = jax.export.export(fn)(jax.ShapeDtypeStruct((batch, obs_dim), jnp.float32),
                                         jax.ShapeDtypeStruct((2,), jnp.uint32))
        header = dict(obs_dim=obs_dim, act_dim=self.meta["act_dim"], member=self.member, step=self.step,
                      agent=self.meta["agent"], dataset_id=self.meta["dataset_id"], batch_size=batch_size)
        write_exported(path, exported.serialize(), header)
        return path


def _select(members: list, member, **selector) -> int:
    if member is not None:
        if not 0 <= int(member) < len(members):
            raise ValueError(f"member {member} is out of range: the grid has {len(members)} members")
        return int(member)
    given = {k: v for k, v in selector.items() if v is not None}
    hits = [i for i, m in enumerate(members) if all(np.isclose(m[k], v) for k, v in given.items())]
    if len(hits) != 1:
        listing = ", ".join(f"{i}: {m}" for i, m in enumerate(members))
        raise ValueError(f"selector {given} matches {len(hits)} members, not exactly one; the grid is [{listing}]")
    return hits[0]


def load_grid(workdir: str, step: int | None = None):
    """``(stacked agents [G], meta, step)`` of a sweep's latest finished checkpoint (or ``step``)."""
    meta_path = os.path.join(workdir, META)
    if not os.path.isdir(workdir):
        hint = "; an exported .cdpx file loads with cdp_jax.exported.load_exported" if os.path.isfile(workdir) else ""
        raise ValueError(f"{workdir!r} is not a sweep workdir (a folder written by experiments.sweep){hint}")
    if not os.path.exists(meta_path):
        raise ValueError(f"{workdir!r} holds no {META}; it is not a sweep workdir, or its sweep never started")
    ckpt = Checkpoints(workdir, read_only=True)
    latest = ckpt.latest_step()
    if latest is None:
        raise ValueError(f"{workdir!r} holds no finished sweep checkpoint; run experiments.sweep there first")
    with open(meta_path) as f:
        meta = json.load(f)
    cls = agent_registry.agent_class(meta["agent"])
    cfg = agent_registry.default_agent_config(meta["agent"])    # keys added since that sweep ran keep their defaults
    cfg.update_from_flattened_dict(flatten(meta["agent_config"]))
    n = len(meta["members"])
    like = jax.eval_shape(lambda: {"agents": jax.vmap(lambda g: cls.create(cfg, LossWeights(gamma=g), jax.random.PRNGKey(0),
                                                                          meta["obs_dim"], meta["act_dim"]))(jnp.zeros(n)),
                                   "diverged": jnp.zeros(n, bool)})
    state = ckpt.restore(step or latest, like)
    ckpt.close()
    return state["agents"], meta, int(step or latest)


def load_policy(workdir: str, member: int | None = None, *, seed: int | None = None,
                data_fraction: float | None = None, gamma: float | None = None, step: int | None = None) -> TrainedPolicy:
    """The grid member ``member`` (an index), or the one matching ``seed``/``data_fraction``/``gamma``, at the
    latest finished checkpoint (or ``step``)."""
    agents, meta, step = load_grid(workdir, step)
    index = _select(meta["members"], member, seed=seed, data_fraction=data_fraction, gamma=gamma)
    return TrainedPolicy(jax.tree.map(lambda x: x[index], agents), meta, meta["members"][index], step)


def members_table(workdir: str) -> str:
    """A Markdown table of a sweep's grid members: the index ``load_policy(workdir, member=i)`` takes, seed,
    data fraction, γ, and the last evaluated step and score in ``results.csv`` (the summary's headline metric:
    the normalised score, or robomimic's success rate and average return)."""
    meta_path = os.path.join(workdir, META)
    if not os.path.exists(meta_path):
        raise ValueError(f"{workdir!r} holds no {META}; it is not a sweep workdir, or its sweep never started")
    with open(meta_path) as f:
        meta = json.load(f)
    final = results.final_rows(results.read_csv(os.path.join(workdir, "results.csv")))
    last = {(r["seed"], r["data_fraction"], r["gamma"]): r for r in final}
    metrics = results.reported_metrics(final) if final else ["normalized_score"]
    names = " | ".join(m.replace("normalized_score", "normalised score") for m in metrics)
    lines = [f"Members of {workdir} ({meta['agent']} on {meta['dataset_id']}):", "",
             f"| member | seed | data fraction | γ | last step | {names} |", "|---|---|---|---|---|" + "---|" * len(metrics)]
    for i, m in enumerate(meta["members"]):
        r = last.get((m["seed"], m["data_fraction"], m["gamma"]))
        cells = [str(r["step"]) if r else "–"] + [results.fmt_number(r[k], 2 if k == "success" else 1) if r else "–"
                                                  for k in metrics]
        lines.append(f"| {i} | {m['seed']} | {m['data_fraction']:g} | {m['gamma']:g} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
