"""One sweep over two local CPU processes (jax.distributed, coordinator on 127.0.0.1): the same results as one
process, member for member; only process 0 writes; a resume after killing both reproduces them."""
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from cdp_jax.train import results
from tests.train.test_reliability import ROOT, kill_group
from tests.train.conftest import env_with_cpu_devices

TINY = """
from tests.tiny import tiny_config
def get_config():
    return tiny_config(num_steps=40, eval_every=20{extra})
"""
DISTRIBUTED, SINGLE = TINY.format(extra=", distributed=True"), TINY.format(extra="")


def outputs(workdir) -> dict:
    """results.csv and train_metrics.csv rows (wall_time dropped)."""
    read = lambda name: [{k: v for k, v in r.items() if k != "wall_time"}
                         for r in results.read_csv(os.path.join(workdir, name))]
    return {"results.csv": read("results.csv"), "train_metrics.csv": read("train_metrics.csv")}


def assert_same(got: dict, want: dict) -> None:
    """Member for member, the same rows; numbers equal to float32 rounding (the SPMD program over two processes
    groups the members differently from the one-device program, so the last bits of a sum may differ)."""
    for name in want:
        assert len(got[name]) == len(want[name]) and len(want[name]) > 0, name
        for g, w in zip(got[name], want[name]):
            assert g.keys() == w.keys()
            for key, value in w.items():
                if isinstance(value, str):
                    assert g[key] == value, (name, key)
                else:
                    np.testing.assert_allclose(g[key], value, rtol=2e-5, atol=1e-6, err_msg=f"{name} {key}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config, workdir, port):
    env = dict(env_with_cpu_devices(1), JAX_PLATFORMS="cpu")
    return [subprocess.Popen([sys.executable, "-m", "experiments.sweep", f"--config={config}", f"--workdir={workdir}",
                              f"--coordinator=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True) for i in range(2)]


def finish(procs, timeout=400):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    return outs


@pytest.fixture(scope="module")
def configs(tmp_path_factory, minari_root):
    root = tmp_path_factory.mktemp("distributed")
    (root / "single.py").write_text(SINGLE)
    (root / "two.py").write_text(DISTRIBUTED)
    single = root / "single"
    proc = subprocess.run([sys.executable, "-m", "experiments.sweep", f"--config={root / 'single.py'}",
                           f"--workdir={single}"], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, outputs(str(single))


@pytest.mark.slow
def test_two_processes_killed_then_resumed_give_the_single_process_results(configs):
    """Both processes are killed after the first checkpoint; the same command resumes and finishes with the
    single-process results (so the two-process run and its resume are checked at once)."""
    root, reference = configs
    workdir = root / "killed"
    procs = launch(root / "two.py", workdir, free_port())
    deadline = time.time() + 300
    while not os.path.isdir(workdir / "checkpoints" / "20") and time.time() < deadline:
        time.sleep(0.2)
    assert os.path.isdir(workdir / "checkpoints" / "20"), "no first checkpoint"
    for p in procs:
        kill_group(p)
    outs = finish(launch(root / "two.py", workdir, free_port()))
    assert_same(outputs(str(workdir)), reference)
    assert "results:" in outs[0][0] and "results:" not in outs[1][0]       # only process 0 reports
    steps = sorted(os.listdir(workdir / "checkpoints"))
    assert steps[-1] == "40" and not any("tmp" in s for s in steps)
