"""List a sweep's grid members (the index that ``load_policy(workdir, member=i)`` takes) and their last scores.

    python -m experiments.members --workdir=runs/quickstart
"""
import sys

from absl import app, flags

from cdp_jax.train.policy import members_table

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "a sweep's workdir")


def main(argv):
    del argv
    try:
        print(members_table(_WORKDIR.value))
    except ValueError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main)
