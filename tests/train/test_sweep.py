"""The sweep driver: resumes, stops, evaluation, records (the command line, configs and bad input: test_sweep_cli.py)."""
import json
import os
import subprocess
import sys

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.train import records, results, sweep
from cdp_jax.io.checkpoint import Checkpoints
from tests.tiny import comparable, run, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def killed_after_first_checkpoint(config, workdir, monkeypatch):
    """Runs ``config`` in ``workdir`` until its first checkpoint is written, then kills it (before its evaluation)."""
    original = Checkpoints.save

    def crash_after_first(self, step, state):
        original(self, step, state)
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Checkpoints, "save", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        run(config, workdir)
    monkeypatch.setattr(Checkpoints, "save", original)


@pytest.mark.slow
def test_killed_sweep_resumes_to_identical_results(straight, tmp_path, monkeypatch):
    _, reference, _ = straight
    killed_after_first_checkpoint(tiny_config(), tmp_path / "crashed", monkeypatch)
    # Killed after the first chunk's checkpoint, before its evaluation: the rerun evaluates the restored chunk
    # (its train metrics kept beside the checkpoint) instead of training it again.
    assert results.read_csv(tmp_path / "crashed" / "results.csv") == []
    _, resumed = run(tiny_config(), tmp_path / "crashed")
    assert len(resumed) == len(reference)
    for a, b in zip(resumed, reference):
        for key in ("step", "return", "normalized_score", "action_std", "lambda_max"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
    metrics = lambda w: results.read_csv(w / "train_metrics.csv")
    assert metrics(tmp_path / "crashed") == metrics(straight[2])           # the restored chunk's metrics too
    finished, _ = run(tiny_config(), tmp_path / "crashed")                # resuming a finished sweep trains nothing
    assert finished.timing["train_s"] == 0.0
    restarted, rows = run(tiny_config(resume=False), tmp_path / "crashed")   # resume=False starts over
    assert restarted.timing["train_s"] > 0.0 and len(rows) == len(reference)
    assert [r["step"] for r in rows] == [r["step"] for r in reference]


@pytest.mark.slow
def test_overlapped_evaluation_writes_the_sequential_results(minari_root, tmp_path):
    """eval_overlap: interval k is evaluated on a second host device while interval k + 1 trains; results.csv, the
    training metrics and the final checkpoint equal the sequential run's, wall_time aside."""
    script = (
        "import sys, json; sys.path.insert(0, %r); from cdp_jax.train.eval_overlap import reserve_host_device; "
        "reserve_host_device(); from tests.tiny import tiny_config, run; "
        "s, rows = run(tiny_config(eval_overlap=True, num_steps=60), %r); print(json.dumps(s.timing))"
    ) % (ROOT, str(tmp_path / "overlap"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    timing = json.loads(proc.stdout.strip().splitlines()[-1])
    assert timing["eval_s"] > 0 and timing["eval_wait_s"] <= timing["wall_s"] and 0 <= timing["eval_share"] < 1
    sequential, _ = run(tiny_config(num_steps=60), tmp_path / "sequential")
    for name in ("results.csv", "train_metrics.csv"):
        a, b = (results.read_csv(tmp_path / w / name) for w in ("overlap", "sequential"))
        assert len(a) == len(b) == 8 * 3
        assert comparable(a) == comparable(b), name
    ckpt = Checkpoints(str(tmp_path / "overlap"))
    restored = ckpt.restore_latest({"agents": sequential.agents, "diverged": jnp.zeros(8, bool)})[1]
    ckpt.close()
    chex.assert_trees_all_equal(restored["agents"].params, sequential.agents.params)
    # The last interval's evaluation lost (its rows gone, its checkpoint and held metrics kept): the rerun with
    # overlap trains nothing, evaluates the restored interval on the evaluation device and records the same rows.
    for name in ("results.csv", "train_metrics.csv"):
        path = tmp_path / "overlap" / name
        columns = tuple(path.read_text().splitlines()[0].split(","))
        results.write_csv(str(path), [r for r in results.read_csv(path) if r["step"] < 60], columns)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["train_s"] == 0.0
    for name in ("results.csv", "train_metrics.csv"):
        a, b = (results.read_csv(tmp_path / w / name) for w in ("overlap", "sequential"))
        assert comparable(a) == comparable(b), name


@pytest.mark.slow
def test_progress_steps_do_not_change_the_results(minari_root, tmp_path):
    """A chunk of eval_every steps trained in one compiled call (the default for this short interval), or in calls
    of 5 or 2 steps between progress-bar updates, gives the same rows, metrics and parameters."""
    assert sweep.progress_steps(tiny_config()) == 20 and sweep.progress_steps(tiny_config(eval_every=2000)) == 200
    assert sweep.progress_steps(tiny_config(eval_every=1500)) == 150
    assert sweep.progress_steps(tiny_config(eval_every=997)) == 997          # a prime: one call
    runs = {n: run(tiny_config(progress_every=n), tmp_path / f"p{n}") for n in (20, 5, 2)}
    for name in ("results.csv", "train_metrics.csv"):
        tables = [[{k: v for k, v in r.items() if k != "wall_time"} for r in results.read_csv(tmp_path / f"p{n}" / name)]
                  for n in runs]
        for t in tables[1:]:
            assert len(t) == len(tables[0]) == 16
            for a, b in zip(t, tables[0]):
                assert a.keys() == b.keys()
                numbers = [k for k in a if isinstance(a[k], (int, float))]
                assert {k: a[k] for k in a if k not in numbers} == {k: b[k] for k in b if k not in numbers}
                np.testing.assert_allclose([a[k] for k in numbers], [b[k] for k in numbers], rtol=1e-5, atol=1e-6,
                                           err_msg=name)
    for n in (5, 2):
        chex.assert_trees_all_close(runs[n][0].agents.params, runs[20][0].agents.params, atol=1e-6)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(minari_root, tmp_path, capsys):
    _, reference = run(tiny_config(), tmp_path / "w")
    latest = tmp_path / "w" / "checkpoints" / "40"
    for root, _, files in os.walk(latest):
        for name in files:
            open(os.path.join(root, name), "r+b").truncate(7)             # every file of step 40 damaged
    capsys.readouterr()
    _, again = run(tiny_config(), tmp_path / "w")
    out = capsys.readouterr().out
    assert "checkpoint step(s) [40]" in out and "resuming from step 20, the newest intact one" in out
    assert comparable(again) == comparable(reference)


def _event_scalars(folder) -> dict:
    """``{(tag, step): value}`` from TensorBoard event files (TFRecord framing: length, crc, Event proto, crc)."""
    import struct
    from tensorboardX.proto import event_pb2
    out = {}
    for name in sorted(os.listdir(folder)):
        blob = open(os.path.join(folder, name), "rb").read()
        pos = 0
        while pos < len(blob):
            (length,) = struct.unpack("<Q", blob[pos:pos + 8])
            event = event_pb2.Event.FromString(blob[pos + 12:pos + 12 + length])
            pos += 16 + length
            for v in event.summary.value:
                out[(v.tag, event.step)] = v.simple_value
    return out


def test_tensorboard_scalars_per_member_match_the_results(straight, tmp_path):
    _, rows, workdir = straight
    runs = sorted(os.listdir(workdir / "tensorboard"))
    assert len(runs) == 8 and "seed1_frac0.5_gamma0.1" in runs
    scalars = _event_scalars(workdir / "tensorboard" / "seed1_frac0.5_gamma0.1")
    mine = [r for r in rows if (r["seed"], r["data_fraction"], r["gamma"]) == (1, 0.5, 0.1)]
    for r in mine:
        np.testing.assert_allclose(scalars[("eval/action_std", r["step"])], r["action_std"], rtol=1e-6)
        np.testing.assert_allclose(scalars[("eval/return", r["step"])], r["return"], rtol=1e-6)
    metrics = [m for m in results.read_csv(workdir / "train_metrics.csv")
               if (m["seed"], m["data_fraction"], m["gamma"]) == (1, 0.5, 0.1)]
    np.testing.assert_allclose(scalars[("train/loss", 40)], metrics[-1]["loss"], rtol=1e-6)
    run(tiny_config(tensorboard=False), tmp_path / "off")
    assert not os.path.exists(tmp_path / "off" / "tensorboard")


@pytest.mark.slow
def test_killed_between_the_results_and_the_train_metrics_of_the_last_chunk(straight, tmp_path, monkeypatch):
    """A kill after the last chunk's results.csv and before its train_metrics.csv: the rerun has nothing to train,
    and takes that chunk's metrics from the file kept beside its checkpoint (they were lost before)."""
    cfg, original = tiny_config(), results.write_csv

    def crash_before_last_metrics(path, rows, *args, **kwargs):
        if str(path).endswith("train_metrics.csv") and max(r["step"] for r in rows) == cfg.num_steps:
            raise KeyboardInterrupt("simulated kill")
        return original(path, rows, *args, **kwargs)

    monkeypatch.setattr(results, "write_csv", crash_before_last_metrics)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "crashed")
    monkeypatch.setattr(results, "write_csv", original)
    metrics = lambda w: results.read_csv(w / "train_metrics.csv")
    assert max(r["step"] for r in metrics(tmp_path / "crashed")) < cfg.num_steps
    finished, _ = run(tiny_config(), tmp_path / "crashed")
    assert finished.timing["train_s"] == 0.0
    assert metrics(tmp_path / "crashed") == metrics(straight[2])


def test_a_checkpoint_without_rows_or_train_metrics_is_one_line(minari_root, tmp_path, monkeypatch):
    killed_after_first_checkpoint(tiny_config(num_steps=20), tmp_path / "w", monkeypatch)
    os.remove(tmp_path / "w" / records.UNEVALUATED)
    with pytest.raises(ValueError, match="checkpoint of step 20 .* has no rows in results.csv and no train metrics"
                                         ".*--config.resume=False"):
        run(tiny_config(num_steps=20), tmp_path / "w")


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_is_one_line_and_the_rerun_resumes(straight, tmp_path, monkeypatch):
    import errno

    import orbax.checkpoint as ocp

    from cdp_jax.train.cli import one_line_errors
    _, reference, _ = straight
    original, calls = ocp.CheckpointManager.save, []

    def full_disk(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    with pytest.raises(SystemExit) as stop, one_line_errors():
        run(tiny_config(), tmp_path / "w")
    message = str(stop.value.code)
    assert "could not write the checkpoint of step 40" in message and "No space left on device" in message
    assert "rerun the same command" in message and "\n" not in message
    monkeypatch.setattr(ocp.CheckpointManager, "save", original)
    _, resumed = run(tiny_config(), tmp_path / "w")
    assert comparable(resumed) == comparable(reference)
