"""The paper's 2-D toy (Standard vs CDP).  python -m experiments.toy2d --outdir DIR [--config.num_steps=...]"""
from absl import app, flags
from ml_collections import config_flags

from cdp_jax.analysis import toy2d

_OUTDIR = flags.DEFINE_string("outdir", "runs/toy2d", "where toy2d.png and metrics.json go")
_CONFIG = config_flags.DEFINE_config_dict("config", toy2d.default_config())


def main(_):
    metrics = toy2d.run(_OUTDIR.value, _CONFIG.value)
    for name, m in metrics.items():
        print(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items()))
    print(f"wrote {_OUTDIR.value}/toy2d.png and {_OUTDIR.value}/metrics.json")


if __name__ == "__main__":
    app.run(main)
