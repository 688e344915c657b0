"""W&B beside TensorBoard: offline runs read back value for value, a resume continues the same runs without a
repeated step, online without a network logs offline, a missing package is one line."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest

from cdp_jax.train import config, results, wandb_runs
from cdp_jax.train.records import EVAL_SCALARS
from tests.tiny import run, tiny_config
from tests.wandb_files import config as run_config
from tests.wandb_files import history, run_files

wandb = pytest.importorskip("wandb", reason='the wandb extra: pip install -e ".[wandb]" (.ci/run installs it)')


@pytest.fixture(autouse=True)
def offline_env(monkeypatch):
    for name in ("WANDB_DIR", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.mark.slow
def test_offline_runs_hold_the_sweeps_scalars_and_a_resume_repeats_no_step(minari_root, tmp_path, monkeypatch):
    workdir = tmp_path / "sweep"
    real_write = results.write_csv

    def killed_before_results_csv(path, rows, *args, **kwargs):     # after the first interval's W&B log
        if str(path).endswith("results.csv"):
            raise KeyboardInterrupt("simulated kill")
        real_write(path, rows, *args, **kwargs)
    monkeypatch.setattr(results, "write_csv", killed_before_results_csv)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config(wandb="offline"), workdir)
    monkeypatch.setattr(results, "write_csv", real_write)
    saved = saved_runs(workdir)
    assert saved["logged_step"] == 20 and not os.path.exists(workdir / "results.csv")
    s, rows = run(tiny_config(wandb="offline"), workdir)        # evaluates the restored interval again, then trains
    members = s.grid.members
    metrics = results.read_csv(workdir / "train_metrics.csv")
    ids = saved_runs(workdir)["members"]
    assert saved["members"] == ids and len(set(ids)) == len(members) == 8
    for run_id, m in zip(ids, members):
        assert len(run_files(str(workdir), run_id)) == 2            # the first start and the resume: one run
        logged = history(str(workdir), run_id)
        assert [step for step, _ in logged] == [20, 40]           # no step twice, none missing
        mine = lambda table: {r["step"]: r for r in table
                              if all(r[k] == m[k] for k in ("seed", "data_fraction", "gamma"))}
        for step, values in logged:
            expected = {f"eval/{k}": mine(rows)[step][k] for k in EVAL_SCALARS}
            expected.update({f"train/{k}": v for k, v in mine(metrics)[step].items()
                             if k not in ("seed", "data_fraction", "gamma", "step")})
            expected = {k: v for k, v in expected.items() if math.isfinite(v)}
            assert values.keys() == expected.keys()
            for key, value in expected.items():
                assert values[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        cfg = run_config(str(workdir), run_id)
        assert (cfg["seed"], cfg["data_fraction"], cfg["gamma"], cfg["sweep.agent"]) == (
            m["seed"], m["data_fraction"], m["gamma"], "dbc")
    sweep_id = saved_runs(workdir)["sweep"]
    [summary_run] = run_files(str(workdir), sweep_id)
    files = os.path.join(os.path.dirname(summary_run), "files")
    with open(os.path.join(files, "summary.md")) as f, open(workdir / "summary.md") as g:
        assert f.read() == g.read()
    assert any(k.startswith("plots/") for _, values in history(str(workdir), sweep_id) for k in values)
    # wandb's own tool takes the files: every member's two starts and the summary run would be uploaded
    folders = sorted(glob.glob(str(workdir / "wandb" / "offline-run-*")))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "wandb"), "sync", "--dry-run", *folders],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"Would sync {2 * len(members) + 1} run(s)" in proc.stdout + proc.stderr, (
        proc.stdout + proc.stderr)[-2000:]


def saved_runs(workdir) -> dict:
    with open(workdir / wandb_runs.RUNS_FILE) as f:
        return json.load(f)


def test_online_without_a_network_logs_offline_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")             # nothing listens there
    members = [dict(seed=0, data_fraction=1.0, gamma=0.0)]
    runs = wandb_runs.WandbRuns(str(tmp_path), members, "online", "edp", {"eta": 1.0})
    runs.log(5, [{"train/loss": 0.5}])
    runs.close()
    out = capsys.readouterr().out
    assert "W&B: http://127.0.0.1:9 cannot be reached: logging offline; upload later with `wandb sync" in out
    assert history(str(tmp_path), runs.ids[0]) == [(5, {"train/loss": 0.5})]


def test_a_missing_wandb_or_a_bad_mode_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ValueError, match=r'--config.wandb needs the wandb package: pip install -e "\.\[wandb\]"'):
        config.validate(tiny_config(wandb="offline"))
    config.validate(tiny_config())                                           # off: wandb is not needed
    with pytest.raises(ValueError, match="wandb must be one of off, offline, online, got 'yes'"):
        config.validate(tiny_config(wandb="yes"))


def test_a_sweep_may_start_or_stop_logging_to_wandb_when_resumed(tmp_path):
    from cdp_jax.train.workdir import holds_config, record_config
    record_config(str(tmp_path), tiny_config().to_dict())
    assert holds_config(str(tmp_path), tiny_config(wandb="offline").to_dict(), overwrite=False)
    with pytest.raises(ValueError, match="different config"):
        holds_config(str(tmp_path), tiny_config(num_steps=60).to_dict(), overwrite=False)
