"""Frozen grid members: load_policy round trip, jax.export round trip in a fresh process, bad input."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.datasets import Normalizer, load_transitions
from cdp_jax.train.policy import load_policy
from tests.tiny import run, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def trained(minari_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("policy") / "sweep"
    s, _ = run(tiny_config(), workdir)
    return s, str(workdir)


@pytest.mark.slow
def test_load_policy_reproduces_the_sweep_evaluation_actions(trained):
    s, workdir = trained
    data, info = load_transitions("local/toy/reach-v0")
    norm = Normalizer.from_info(info)
    obs = np.asarray(data.observations[:7])
    key = jax.random.PRNGKey(3)
    index = next(i for i, m in enumerate(s.grid.members) if m == dict(seed=1, data_fraction=0.5, gamma=0.1))
    member = jax.tree.map(lambda x: x[index], s.agents)
    expected = norm.to_env_action(np.asarray(member.act(jnp.asarray(norm.obs(obs)), key)))
    policy = load_policy(workdir, seed=1, data_fraction=0.5, gamma=0.1)
    np.testing.assert_allclose(policy.act(obs, key), expected, atol=1e-6)
    np.testing.assert_allclose(load_policy(workdir, member=index).act(obs, key), expected, atol=1e-6)


@pytest.mark.slow
def test_exported_policy_runs_in_a_fresh_process_without_training_code(trained, tmp_path):
    _, workdir = trained
    policy = load_policy(workdir, member=2)
    path = policy.export(str(tmp_path / "policy.cdpx"))
    obs = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    script = (
        "import sys, numpy as np; from cdp_jax.exported import load_exported; "
        f"act = load_exported({path!r}); out = act(np.load({str(tmp_path / 'obs.npy')!r}), seed=11); "
        f"np.save({str(tmp_path / 'out.npy')!r}, out); "
        "bad = [m for m in sys.modules if m.startswith('cdp_jax') and m not in ('cdp_jax', 'cdp_jax.exported')]; "
        "assert not bad and 'flax' not in sys.modules and 'optax' not in sys.modules, bad"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), policy.act(obs, jax.random.PRNGKey(11)), atol=1e-6)


@pytest.mark.slow
def test_bad_input(trained, tmp_path):
    _, workdir = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no policy_meta.json; it is not a sweep workdir"):
        load_policy(str(empty))
    assert os.listdir(empty) == []                                   # nothing created
    with pytest.raises(ValueError, match="is not a sweep workdir"):
        load_policy(str(tmp_path / "missing"))
    assert not os.path.exists(tmp_path / "missing")
    from shutil import copy
    started = tmp_path / "started"                                  # a sweep that never reached its first checkpoint
    started.mkdir()
    copy(os.path.join(workdir, "policy_meta.json"), started)
    with pytest.raises(ValueError, match="no checkpoints folder"):
        load_policy(str(started))
    assert sorted(os.listdir(started)) == ["policy_meta.json"]
    with pytest.raises(ValueError, match="matches 4 members, not exactly one"):
        load_policy(workdir, gamma=0.1)
    with pytest.raises(ValueError, match="matches 0 members"):
        load_policy(workdir, seed=9)
    from cdp_jax.exported import ExportError, load_exported
    path = load_policy(workdir, member=0).export(str(tmp_path / "p.cdpx"))
    blob = open(path, "rb").read().replace(b'"format_version": 1', b'"format_version": 7')
    open(path, "wb").write(blob)
    with pytest.raises(ExportError, match="incompatible cdp_jax export format"):
        load_exported(path)
    with pytest.raises(ExportError, match="is a folder.*load_policy"):
        load_exported(workdir)                                        # a workdir given to the exported loader
    with pytest.raises(ValueError, match="is not a sweep workdir.*load_exported"):
        load_policy(path)                                             # an exported file given to load_policy
    (tmp_path / "random.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(ExportError, match="not a cdp_jax exported policy"):
        load_exported(str(tmp_path / "random.bin"))
    with pytest.raises(ExportError, match="cannot read exported policy"):
        load_exported(str(tmp_path / "nothing.cdpx"))
    good = load_policy(workdir, member=0).export(str(tmp_path / "q.cdpx"))
    open(good, "r+b").truncate(os.path.getsize(good) - 100)           # a partial copy
    with pytest.raises(ExportError, match="cannot be deserialised"):
        load_exported(good)


@pytest.mark.slow
def test_members_are_listed_with_the_index_load_policy_takes(trained):
    from cdp_jax.train.policy import members_table
    s, workdir = trained
    table = members_table(workdir)
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(s.grid.members)
    for i, m in enumerate(s.grid.members):
        cells = [c.strip() for c in rows[i].strip("|").split("|")]
        assert cells[:4] == [str(i), str(m["seed"]), f"{m['data_fraction']:g}", f"{m['gamma']:g}"]
        assert load_policy(workdir, member=i).member == m
    proc = subprocess.run([sys.executable, "-m", "experiments.members", f"--workdir={workdir}"],
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == table.strip()


def test_public_api_at_the_top_is_the_modules_own():
    import cdp_jax
    from cdp_jax.train import config, policy, sweep
    from cdp_jax import datasets
    assert cdp_jax.load_policy is policy.load_policy and cdp_jax.Sweep is sweep.Sweep
    assert cdp_jax.base_config is config.base_config and cdp_jax.generate_dataset is datasets.generate
    with pytest.raises(AttributeError, match="public API"):
        cdp_jax.nonexistent


def test_gamma_is_chosen_on_held_out_episodes_not_on_the_reported_ones():
    from cdp_jax.analysis.selection import choose
    holdout = [dict(seed=s, data_fraction=1.0, gamma=g, holdout_score=h)
               for s in (0, 1) for g, h in ((0.0, 0.0), (0.1, 30.0 + s), (1.0, 10.0 + s))]
    reported = [dict(seed=s, data_fraction=1.0, gamma=g, normalized_score=r)
                for s in (0, 1) for g, r in ((0.0, 5.0 + s), (0.1, 20.0 + 2 * s), (1.0, 50.0))]
    rows = {r["gamma"]: r for r in choose(holdout, reported)}
    assert rows[0.1]["chosen"] and not rows[1.0]["chosen"]          # held-out best, though 1.0 reports higher
    assert rows[0.1]["reported_score"] == 21.0 and rows[0.1]["gamma0_score"] == 5.5
    assert rows[0.1]["paired_gain"] == 15.5 and rows[0.1]["holdout_score"] == 30.5
    with pytest.raises(ValueError, match="no γ > 0 member"):
        choose([h for h in holdout if h["gamma"] == 0.0], reported)


def test_select_gamma_on_a_finished_sweep(trained):
    from cdp_jax.train import results
    from cdp_jax.analysis.selection import select_gamma
    _, workdir = trained
    rows = select_gamma(workdir, episodes=2)
    final = results.final_rows(results.read_csv(os.path.join(workdir, "results.csv")))
    assert [(r["data_fraction"], r["gamma"], r["chosen"]) for r in rows] == [(0.5, 0.1, True), (1.0, 0.1, True)]
    for r in rows:
        rep = [f["normalized_score"] for f in final if f["data_fraction"] == r["data_fraction"] and f["gamma"] == 0.1]
        np.testing.assert_allclose(r["reported_score"], np.mean(rep), rtol=1e-6)
        assert np.isfinite(r["holdout_score"])
    assert os.path.exists(os.path.join(workdir, "gamma_selection.md"))
    assert results.read_csv(os.path.join(workdir, "gamma_selection.csv"))[0]["gamma"] == 0.1
