import os
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")          # CI has no network: fail at once, not after retries
os.environ.setdefault("CDP_JAX_CACHE", tempfile.mkdtemp(prefix="cdp-jax-cache-"))   # CLI runs share compilations


def pytest_configure(config):
    """The test processes share the CLI runs' persistent compilation cache: the suite compiles the same tiny
    sweeps many times over (4 test_sweep tests: 236 s without, 175 s with, on a 2-core AVX2 EPYC)."""
    from cdp_jax.cli import enable_compilation_cache
    enable_compilation_cache()


@pytest.fixture(scope="session")
def minari_root(tmp_path_factory):
    """A private MINARI_DATASETS_PATH holding a 3000-step pointmaze-umaze and a 600-step toy-reach dataset."""
    from cdp_jax.datasets import generate

    root = tmp_path_factory.mktemp("minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    generate("pointmaze-umaze", num_steps=3000, progress=False)
    generate("toy-reach", num_steps=600, progress=False)
    yield root
    if old is None:
        os.environ.pop("MINARI_DATASETS_PATH")
    else:
        os.environ["MINARI_DATASETS_PATH"] = old


@pytest.fixture(scope="module", autouse=True)
def collect_abandoned_checkpoint_reads():
    """After each module: collect, quietly, the read coroutines that orbax abandons when a restore fails on
    purpose (a checkpoint from another run), so that they are not reported against an unrelated later test."""
    yield
    from cdp_jax.checkpoint import _drop_abandoned_reads
    _drop_abandoned_reads()
