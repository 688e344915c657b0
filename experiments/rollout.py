"""Watch a trained grid member act: its episodes rendered to an animated GIF, with returns and success.

    python -m experiments.rollout --workdir=runs/quickstart --member=3 [--episodes=2] [--out=rollout.gif]

``python -m experiments.members --workdir=...`` lists the member indices. See cdp_jax/analysis/rollout.py.
"""
import sys

from absl import app, flags, logging

from cdp_jax.analysis.rollout import rollout

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "a sweep's workdir (its latest checkpoint is used)")
_MEMBER = flags.DEFINE_integer("member", 0, "the grid member's index (python -m experiments.members)")
_EPISODES = flags.DEFINE_integer("episodes", 1, "episodes to record, one after the other")
_OUT = flags.DEFINE_string("out", "", "the GIF (default WORKDIR/rollouts/member{M}_step{S}.gif)")
_FPS = flags.DEFINE_float("fps", 20.0, "frames per second of the GIF")
_SIZE = flags.DEFINE_integer("size", 256, "frame width in pixels (robomimic: the camera's square size)")
_CAMERA = flags.DEFINE_string("camera", "agentview", "robomimic: the robosuite camera to render")
_SEED = flags.DEFINE_integer("seed", None, "first reset seed (default: the sweep's eval_seed, its first episode)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if _EPISODES.value < 1 or _SIZE.value < 16 or _FPS.value <= 0:
        sys.exit(f"error: --episodes must be >= 1, --size >= 16 and --fps > 0; got {_EPISODES.value}, "
                 f"{_SIZE.value}, {_FPS.value}")
    try:
        got = rollout(_WORKDIR.value, _MEMBER.value, _EPISODES.value, _OUT.value, _FPS.value, _SIZE.value,
                      _CAMERA.value, _SEED.value)
    except ValueError as err:
        sys.exit(f"error: {err}")
    m = got["member"]
    print(f"member {_MEMBER.value} (seed {m['seed']}, data fraction {m['data_fraction']:g}, γ {m['gamma']:g}) at "
          f"step {got['step']}: returns {[round(r, 2) for r in got['returns']]}, success {got['success']}")
    print(f"wrote {got['path']} ({got['frames']} frames)")


if __name__ == "__main__":
    app.run(main)
