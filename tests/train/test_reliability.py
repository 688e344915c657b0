"""Crashes lose nothing, stops are clean, one workdir has one writer: the sweep CLI killed, stopped and doubled."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cdp_jax.train import results, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, EVAL_EVERY = 400, 10                        # 40 chunks
CONFIG = f"""
from tests.tiny import tiny_config
def get_config():
    return tiny_config(num_steps={STEPS}, eval_every={EVAL_EVERY})
"""


def cli(config, workdir):
    return [sys.executable, "-m", "experiments.sweep", f"--config={config}", f"--workdir={workdir}"]


def start(config, workdir):
    return subprocess.Popen(cli(config, workdir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def outputs(workdir):
    """The files a finished sweep leaves, wall_time (seconds, never reproducible) dropped."""
    read = lambda name: open(os.path.join(workdir, name)).read()
    wall = read("results.csv").splitlines()[0].split(",").index("wall_time")
    strip = lambda text: [",".join(c for i, c in enumerate(line.split(",")) if i != wall) for line in text.splitlines()]
    return {"results.csv": strip(read("results.csv")), "train_metrics.csv": read("train_metrics.csv"),
            "summary.md": read("summary.md")}


def kill_group(proc) -> None:
    """SIGKILLs a run's whole process group and waits until every member is gone: the parent is reaped at once,
    but a child that shares the workdir lock's open file can outlive it by a moment."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def wait_for_results(proc, workdir, since: float, timeout: float = 300) -> bool:
    """Waits until ``results.csv`` is rewritten after ``since`` (True) or the process ends (False)."""
    path, deadline = os.path.join(workdir, "results.csv"), time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getmtime(path) > since:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise TimeoutError(f"no results in {workdir} after {timeout} s")


@pytest.fixture(scope="module")
def reference(minari_root, tmp_path_factory):
    """An uninterrupted run's files, and its seconds per chunk after the first (which compiles and fills the
    compilation cache that every later run here reads)."""
    base = tmp_path_factory.mktemp("reliability")
    config = base / "tiny_config.py"
    config.write_text(CONFIG)
    proc = subprocess.run(cli(config, base / "reference"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wall = {r["step"]: r["wall_time"] for r in results.read_csv(base / "reference" / "results.csv")}
    assert sorted(wall) == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    return config, outputs(base / "reference"), (wall[STEPS] - wall[EVAL_EVERY]) / (STEPS // EVAL_EVERY - 1)


@pytest.mark.slow
def test_random_sigkills_then_the_same_command_give_the_uninterrupted_files(reference, tmp_path):
    """Six SIGKILLs, each at a random moment after a run has made progress: uniform over two chunks, so they land
    in training, evaluation, the CSV writes and the checkpoint save alike. A cycle advances at most three of the
    run's 40 chunks, so all six land before it ends, however the machine's load changes the chunks' time. (Ten
    kills took 175 s of the suite; each cycle is a CLI start, about 9 s, most of it before the first chunk.)"""
    config, expected, chunk_seconds = reference
    workdir, rng, kills = tmp_path / "killed", np.random.default_rng(12), 0
    while kills < 6:
        proc = start(config, workdir)
        if not wait_for_results(proc, workdir, time.time()):
            break                                                      # finished before it could be killed
        time.sleep(rng.uniform(0.0, 2.0) * chunk_seconds)
        kill_group(proc)
        kills += 1
    assert kills == 6
    proc = subprocess.run(cli(config, workdir), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert outputs(workdir) == expected
    assert not [p for p in os.listdir(workdir / "checkpoints") if "tmp" in p]


@pytest.mark.slow
def test_sigterm_stops_at_a_clean_point_and_the_rerun_finishes_the_same(reference, tmp_path):
    config, expected, _ = reference
    workdir = tmp_path / "stopped"
    proc = start(config, workdir)
    deadline = time.time() + 300
    while not os.path.exists(workdir / "results.csv") and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert "rerun the same command to resume" in err and "Traceback" not in err
    done = max(r["step"] for r in results.read_csv(workdir / "results.csv"))
    assert EVAL_EVERY <= done < STEPS
    assert subprocess.run(cli(config, workdir), cwd=ROOT, capture_output=True, timeout=600).returncode == 0
    assert outputs(workdir) == expected


@pytest.mark.slow
def test_a_second_writer_is_refused_at_once_and_the_first_is_undisturbed(reference, tmp_path):
    from tests.tiny import tiny_config
    config, expected, _ = reference
    workdir = tmp_path / "shared"
    first = start(config, workdir)
    deadline = time.time() + 300
    while not (workdir / ".lock").exists() or not (workdir / ".lock").read_text():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.05)
    t0 = time.time()
    with pytest.raises(ValueError, match=f"in use by a running sweep \\(pid {first.pid}\\)"):
        sweep.Sweep(tiny_config(num_steps=STEPS, eval_every=EVAL_EVERY), str(workdir))
    assert time.time() - t0 < 5
    second = subprocess.run(cli(config, workdir), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode != 0 and "in use by a running sweep" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert outputs(workdir) == expected
    proc = start(config, workdir)                 # a killed holder leaves no stuck lock
    time.sleep(3)
    kill_group(proc)
    sweep.Sweep(tiny_config(num_steps=STEPS, eval_every=EVAL_EVERY), str(workdir)).lock.release()


def test_atomic_writes_honour_the_umask_and_leave_no_temporary(tmp_path):
    """results.csv, summary.md, config.json, robomimic files: readable as a plain ``open`` would make them."""
    import stat

    from cdp_jax.io import atomic_write_bytes
    path = tmp_path / "run" / "results.csv"
    old = os.umask(0o027)
    try:
        atomic_write_bytes(str(path), b"a,b\n")
        atomic_write_bytes(str(path), b"a,b\n1,2\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and path.read_bytes() == b"a,b\n1,2\n"
    assert os.listdir(path.parent) == ["results.csv"]


@pytest.mark.slow
def test_a_sigterm_while_the_sweep_makes_its_dataset_stops_within_seconds(tmp_path):
    config = tmp_path / "generating.py"
    config.write_text("from tests.tiny import tiny_config\ndef get_config():\n    cfg = tiny_config()\n"
                      "    cfg.dataset_id, cfg.generate, cfg.generate_steps = 'local/pointmaze/umaze-v0', "
                      "'pointmaze-umaze', 1_000_000\n    return cfg\n")
    env = dict(os.environ, MINARI_DATASETS_PATH=str(tmp_path / "datasets"))
    proc = subprocess.Popen(cli(config, tmp_path / "w"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = ""
    while "generating it" not in line and proc.poll() is None:
        line = proc.stdout.readline()
    time.sleep(1.0)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.time() - sent < 10, err[-2000:]
    assert err.strip().splitlines()[-1] .startswith(
        "SIGTERM: stopped making dataset local/pointmaze/umaze-v0; rerun the same command to continue")
    assert "Traceback" not in err and not os.path.exists(tmp_path / "datasets" / "local" / "pointmaze" / "umaze")
