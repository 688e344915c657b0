"""cdp_jax: Contractive Diffusion Policies in JAX, trained as vmapped grids of seeds x data fractions x γ.

The public API, imported on first use (so that ``cdp_jax.exported`` stays free of training code)::

    cdp_jax.base_config()            # a sweep config (ml_collections), cdp_jax.train.config
    cdp_jax.Sweep(cfg, workdir).run()
    cdp_jax.load_policy(workdir, seed=0, data_fraction=0.05, gamma=0.1)
    cdp_jax.load_exported("policy.cdpx")
    cdp_jax.load_transitions("local/pointmaze/umaze-v0"), cdp_jax.Normalizer, cdp_jax.generate_dataset(...)
"""
import importlib

_EXPORTS = {"base_config": "cdp_jax.train.config", "Sweep": "cdp_jax.train.sweep", "load_policy": "cdp_jax.train.policy",
            "members_table": "cdp_jax.train.policy", "load_exported": "cdp_jax.exported",
            "load_transitions": "cdp_jax.datasets", "Normalizer": "cdp_jax.datasets", "generate_dataset": "cdp_jax.datasets"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cdp_jax' has no attribute {name!r}; the public API is {__all__}")
    module = importlib.import_module(_EXPORTS[name])
    return getattr(module, "generate" if name == "generate_dataset" else name)
