import os
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")          # CI has no network: fail at once, not after retries
os.environ.setdefault("CDP_JAX_CACHE", tempfile.mkdtemp(prefix="cdp-jax-cache-"))   # CLI runs share compilations
# XLA's CPU backend at optimisation level 1, here and in every CLI subprocess the tests start: compiling is most of
# the suite's time and level 1 compiles a third faster at the same step time (docs/testing.md); a level set in the
# caller's XLA_FLAGS is kept. And the CLI's 512-bit vectors on AVX-512 CPUs, so tests and CLI runs compute alike.
from cdp_jax.train.cli import add_xla_flag, prefer_wide_cpu_vectors  # noqa: E402

add_xla_flag("xla_backend_optimization_level", "1")
prefer_wide_cpu_vectors()


@pytest.hookimpl(optionalhook=True)              # known only where xdist is loaded (not with -p no:xdist)
def pytest_xdist_auto_num_workers(config):
    """One xdist worker more than cores (``numprocesses=auto``; setup.cfg caps it at 4): a worker leaves its cores
    idle much of the time (XLA compiles on one thread, CLI subprocesses are awaited), so a third worker on two cores
    finishes the suite sooner (docs/testing.md). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides."""
    if not os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return len(os.sched_getaffinity(0)) + 1


# Test files, slowest first: the workers take whole files in this order (setup.cfg: --dist=loadfile), so the long
# ones start first and the short ones fill the end. Files not named here follow in their collection order.
SLOWEST_FIRST = ("test_sweep.py", "test_reliability.py", "test_networks.py", "test_images.py", "test_robomimic.py",
                 "test_mujoco_datasets.py", "test_edp.py", "test_distributed.py", "test_dbc.py", "test_contraction.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))        # stable: a file's tests keep their order


def pytest_configure(config):
    """The test processes share the CLI runs' persistent compilation cache: the suite compiles the same tiny
    sweeps many times over."""
    from cdp_jax.train.cli import enable_compilation_cache
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
    from cdp_jax.io.checkpoint import _drop_abandoned_reads
    _drop_abandoned_reads()
