import os
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")          # CI has no network: fail at once, not after retries
os.environ.setdefault("CDP_JAX_CACHE", tempfile.mkdtemp(prefix="cdp-jax-cache-"))   # CLI runs share compilations
# XLA's CPU backend at optimisation level 1 instead of 2, here and in every CLI subprocess the tests start:
# compiling is most of the suite's time, and level 1 compiles a UNet update in 45 s instead of 69 s while the steps
# run as fast (2-core AVX2 EPYC: SAC update 6.1 vs 6.9 ms, EDP make_train_chunk 32.5 vs 33.2 ms, the toy2d test
# 39 vs 42 s). A level set in the caller's XLA_FLAGS is kept. And the CLI's 512-bit vectors on AVX-512 CPUs
# (cdp_jax.cli.prefer_wide_cpu_vectors), so the tests and the CLI runs they start compute alike.
from cdp_jax.cli import add_xla_flag, prefer_wide_cpu_vectors  # noqa: E402

add_xla_flag("xla_backend_optimization_level", "1")
prefer_wide_cpu_vectors()


@pytest.hookimpl(optionalhook=True)              # known only where xdist is loaded (not with -p no:xdist)
def pytest_xdist_auto_num_workers(config):
    """One xdist worker more than cores (``numprocesses=auto``; setup.cfg caps it at 4): a worker leaves its cores
    idle much of the time (XLA compiles on one thread, small steps do not fill two cores, CLI subprocesses are
    awaited, robosuite steps on one core), so a third worker on two cores finishes the suite sooner. Measured
    one after another on a 2-core AVX-512 Xeon, 2026-12-05: 2 workers 1021 s, 3 workers 767 s, 4 workers 726 s
    (but 14 GB of memory at its peak, and test_sweep.py alone, one worker's file, then takes 570 s of it).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides."""
    if not os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return len(os.sched_getaffinity(0)) + 1


# Test files, slowest first (worker-seconds on a 2-core AVX2 EPYC): the workers take whole files in this order
# (setup.cfg: --dist=loadfile --no-loadscope-reorder), so the long ones start first and the short ones fill the
# end, instead of xdist's default order by number of tests, which left the 2-minute distributed test for last.
# Files not named here follow in their collection order.
SLOWEST_FIRST = ("test_sweep.py", "test_reliability.py", "test_networks.py", "test_images.py", "test_robomimic.py",
                 "test_mujoco_datasets.py", "test_edp.py", "test_distributed.py", "test_dbc.py", "test_contraction.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))        # stable: a file's tests keep their order


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
