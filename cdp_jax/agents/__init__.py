"""Agents: one backbone per module, each a ``flax.struct.PyTreeNode`` with ``create``, ``update`` and ``act``."""
