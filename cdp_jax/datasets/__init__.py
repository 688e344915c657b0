"""Dataset generators that write real Minari datasets offline, and their CLI (``python -m cdp_jax.datasets``).

Generators by name (see :data:`GENERATORS`): ``pointmaze-{open,umaze,medium,large}`` (the D4RL/Minari maze2d
recipe) and ``toy-reach`` (a tiny 2-D task with bimodal demonstrations, for tests).
"""
from cdp_jax.datasets.registry import GENERATORS, generate

__all__ = ["GENERATORS", "generate"]
