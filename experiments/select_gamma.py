"""Choose γ per data fraction on held-out evaluation episodes of a finished sweep, report it on the sweep's own.

    python -m experiments.select_gamma --workdir=runs/hopper-gammas [--episodes=10]

Writes WORKDIR/gamma_selection.md and gamma_selection.csv (see cdp_jax/analysis/selection.py).
"""
import os
import sys

from absl import app, flags

from cdp_jax.analysis.selection import select_gamma

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "a finished sweep's workdir")
_EPISODES = flags.DEFINE_integer("episodes", 10, "held-out evaluation episodes per member")


def main(argv):
    del argv
    try:
        select_gamma(_WORKDIR.value, _EPISODES.value)
    except ValueError as err:
        sys.exit(f"error: {err}")
    with open(os.path.join(_WORKDIR.value, "gamma_selection.md")) as f:
        print(f.read())


if __name__ == "__main__":
    app.run(main)
