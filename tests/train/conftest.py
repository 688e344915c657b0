import os

import pytest

from tests.tiny import run, tiny_config


def env_with_cpu_devices(n: int) -> dict:
    """``os.environ`` for a subprocess whose host platform is ``n`` CPU devices (conftest's XLA flags kept)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
    return dict(os.environ, XLA_FLAGS=flags)


@pytest.fixture(scope="module")
def straight(minari_root, tmp_path_factory):
    """One uninterrupted run of ``tiny_config()``: ``(sweep, rows, workdir)``, the reference that the tests of
    resumes, shardings, group splits and TensorBoard compare against (read only)."""
    workdir = tmp_path_factory.mktemp("straight")
    s, rows = run(tiny_config(), workdir)
    return s, rows, workdir
