"""Agents: one backbone per module, each a ``flax.struct.PyTreeNode`` with ``create``, ``update`` and ``act``."""
from __future__ import annotations

import ml_collections

from cdp_jax.agents import bc, bc_gmm, dbc, dql, edp, idql

AGENTS = {"dbc": (dbc.DBCAgent, dbc.default_config), "edp": (edp.EDPAgent, edp.default_config),
          "dql": (dql.DQLAgent, dql.default_config), "idql": (idql.IDQLAgent, idql.default_config),
          "bc": (bc.BCAgent, bc.default_config), "bc_gmm": (bc_gmm.BCGMMAgent, bc_gmm.default_config)}
DIFFUSION = frozenset({"dbc", "edp", "dql", "idql"})  # agents on which gamma > 0 means something
OFFLINE_RL = frozenset({"edp", "dql", "idql"})   # agents that need rewards


def agent_class(name: str):
    """The agent class by name; ValueError names the known ones."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of {sorted(AGENTS)}")
    return AGENTS[name][0]


def default_agent_config(name: str) -> ml_collections.ConfigDict:
    agent_class(name)
    return AGENTS[name][1]()
