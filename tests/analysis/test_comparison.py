"""Seed-paired comparisons over one sweep or several pooled (cdp_jax/analysis/comparison.py, experiments/compare.py),
checked against scipy's own paired tests and exact small-sample values."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from cdp_jax.analysis import comparison

from cdp_jax.train import results
from experiments.compare import compare

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = {"dataset_id": "toy", "agent": "dbc", "num_steps": 20, "seeds": 3, "gammas": [0.0, 1.0],
          "data_fractions": [0.1], "agent_config": {"lr": 1e-4}}


def sweep_dir(path, member_seeds, scores, fraction=0.1, **config):
    """A finished sweep's workdir: ``scores[gamma][i]`` is seed ``member_seeds[i]``'s return at steps 10 and 20
    (``fraction`` of the data; ``fraction=None``: ``scores`` is ``{fraction: {gamma: [...]}}``)."""
    os.makedirs(path)
    with open(path / "config.json", "w") as f:
        json.dump({**CONFIG, **config}, f)
    by_fraction = scores if fraction is None else {fraction: scores}
    rows = [dict(dataset_id="toy", agent="dbc", seed=s, data_fraction=f, gamma=g, step=step, normalized_score=np.nan,
                 success=float(v > 100), action_std=0.1, lambda_max=0.5, diverged=0, wall_time=1.0,
                 **{"return": v + (step - 20)})
            for f, fscores in by_fraction.items() for g, vals in fscores.items() for s, v in zip(member_seeds, vals)
            for step in (10, 20)]
    results.write_csv(str(path / "results.csv"), rows)
    return str(path)


def test_pooled_paired_differences_match_scipy(tmp_path):
    base, cdp = [100.0, 150.0, 90.0, 130.0, 120.0, 160.0], [180.0, 140.0, 95.0, 200.0, 175.0, 150.0]
    a = sweep_dir(tmp_path / "a", [0, 1, 2], {0.0: base[:3], 1.0: cdp[:3]})
    b = sweep_dir(tmp_path / "b", [3, 4, 5], {0.0: base[3:], 1.0: cdp[3:]}, seeds=[3, 4, 5])
    rows = comparison.pooled_rows([a, b])
    assert len(rows) == 2 * 2 * 6
    final = [r for r in comparison.paired_differences(rows, "return") if r["step"] == 20]
    assert len(final) == 1
    r = final[0]
    diff = np.array(cdp) - np.array(base)
    ref = stats.ttest_rel(cdp, base)
    assert r["seeds"] == 6 and r["gamma"] == 1.0 and r["wins"] == 4
    assert r["difference"] == pytest.approx(diff.mean()) and r["difference_std"] == pytest.approx(diff.std(ddof=1))
    assert r["t"] == pytest.approx(ref.statistic) and r["p_t"] == pytest.approx(ref.pvalue)
    assert r["difference_ci95"] == pytest.approx(stats.t.ppf(0.975, 5) * diff.std(ddof=1) / np.sqrt(6))
    assert r["p_wilcoxon"] == pytest.approx(stats.wilcoxon(cdp, base).pvalue)
    assert r["base_mean"] == pytest.approx(np.mean(base)) and r["mean"] == pytest.approx(np.mean(cdp))


def test_wilcoxon_is_exact_for_small_samples(tmp_path):
    """All six differences positive: the two-sided exact signed-rank p is 2 / 2^6 (enumerated here)."""
    a = sweep_dir(tmp_path / "a", range(6), {0.0: [1, 2, 3, 4, 5, 6], 1.0: [2, 4, 6, 8, 10, 12]}, seeds=6)
    r = comparison.paired_differences(comparison.pooled_rows([a]), "return")[-1]
    ranks = np.arange(1, 7)
    w = [sum(ranks[list(signs)]) for k in range(7) for signs in itertools.combinations(range(6), k)]
    assert r["p_wilcoxon"] == pytest.approx(2 * np.mean(np.array(w) >= 21)) == pytest.approx(2 / 64)
    assert r["wins"] == 6


def test_only_seeds_evaluated_under_both_gammas_pair_and_constant_differences_have_no_test(tmp_path):
    a = sweep_dir(tmp_path / "a", [0, 1, 2], {0.0: [1.0, 2.0, 3.0], 1.0: [2.0, 3.0, 4.0]})
    rows = [r for r in comparison.pooled_rows([a]) if not (r["seed"] == 2 and r["gamma"] == 1.0)]
    r = comparison.paired_differences(rows, "return")[-1]
    assert r["seeds"] == 2 and r["difference"] == 1.0 and r["difference_std"] == 0.0
    assert np.isnan(r["t"]) and np.isnan(r["p_t"]) and r["p_wilcoxon"] == pytest.approx(0.5)


def test_scarcity_is_the_per_seed_gain_at_a_fraction_minus_the_gain_at_all_data(tmp_path):
    full = {0.0: [100.0, 200.0, 150.0, 120.0], 1.0: [110.0, 205.0, 140.0, 150.0]}        # gains 10, 5, -10, 30
    tenth = {0.0: [50.0, 60.0, 70.0, 80.0], 1.0: [90.0, 70.0, 75.0, 95.0]}             # gains 40, 10, 5, 15
    a = sweep_dir(tmp_path / "a", [0, 1, 2, 3], {1.0: full, 0.1: tenth}, fraction=None)
    rows = [r for r in comparison.pooled_rows([a]) if not (r["seed"] == 3 and r["data_fraction"] == 1.0)]
    table = comparison.scarcity_differences(rows, "return")
    assert [(r["data_fraction"], r["step"], r["gamma"]) for r in table] == [(0.1, 10, 1.0), (0.1, 20, 1.0)]
    r = table[-1]
    per_seed = np.array([40 - 10, 10 - 5, 5 + 10])                 # seed 3 lacks its gain at 1.0: left out
    ref = stats.ttest_1samp(per_seed, 0.0)
    assert r["seeds"] == 3 and r["wins"] == 3
    assert r["gain_small"] == pytest.approx(55 / 3) and r["gain_full"] == pytest.approx(5 / 3)
    assert r["difference"] == pytest.approx(per_seed.mean()) and r["t"] == pytest.approx(ref.statistic)
    assert r["p_t"] == pytest.approx(ref.pvalue) and r["p_wilcoxon"] == pytest.approx(0.25)   # 2 / 2^3
    text = compare([a], "", metric="return")
    assert "# Data scarcity, return" in text and (tmp_path / "a" / "scarcity.csv").exists()


def test_pooling_refuses_clashes_other_settings_and_missing_runs(tmp_path):
    a = sweep_dir(tmp_path / "a", [0, 1], {0.0: [1, 2], 1.0: [3, 4]})
    same_seeds = sweep_dir(tmp_path / "b", [1, 2], {0.0: [1, 2], 1.0: [3, 4]})
    other = sweep_dir(tmp_path / "c", [5, 6], {0.0: [1, 2], 1.0: [3, 4]}, num_steps=40, agent_config={"lr": 1e-3})
    with pytest.raises(ValueError, match=r"seed 1 \(γ 0, fraction 0.1, step 10\) is in both .*a and .*b"):
        comparison.pooled_rows([a, same_seeds])
    with pytest.raises(ValueError, match=r'agent_config: \{"lr": 0.0001\} vs \{"lr": 0.001\}; num_steps: 20 vs 40.*'
                                         r"--allow=agent_config,num_steps"):
        comparison.pooled_rows([a, other])
    assert len(comparison.pooled_rows([a, other], allowed=("agent_config", "num_steps"))) == 16
    # A field added after a sweep ran (its config.json lacks it) counts as its default: it ran as the default does.
    newer = sweep_dir(tmp_path / "d", [7, 8], {0.0: [1, 2], 1.0: [3, 4]}, eval_seed=100_000)
    assert len(comparison.pooled_rows([a, newer])) == 16
    changed = sweep_dir(tmp_path / "e", [9, 10], {0.0: [1, 2], 1.0: [3, 4]}, eval_seed=7)
    with pytest.raises(ValueError, match="eval_seed: 100000 vs 7"):
        comparison.pooled_rows([a, changed])
    split_otherwise = sweep_dir(tmp_path / "f", [11, 12], {0.0: [1, 2], 1.0: [3, 4]}, group_by_contraction=False)
    assert len(comparison.pooled_rows([a, split_otherwise])) == 16      # how the work was split, not what it did
    with pytest.raises(ValueError, match="listed twice"):
        comparison.pooled_rows([a, str(tmp_path / "a" / ".")])
    with pytest.raises(ValueError, match="has no config.json"):
        comparison.pooled_rows([str(tmp_path / "nothing")])
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(ValueError, match="no results.csv rows yet"):
        comparison.pooled_rows([str(tmp_path / "empty")])
    (tmp_path / "empty" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        comparison.pooled_rows([str(tmp_path / "empty")])


def test_compare_writes_the_pooled_sweep_and_never_over_a_pooled_one(tmp_path):
    a = sweep_dir(tmp_path / "a", [0, 1], {0.0: [90, 120], 1.0: [130, 140]})
    b = sweep_dir(tmp_path / "b", [2, 3], {0.0: [80, 110], 1.0: [150, 100]}, seeds=[2, 3])
    text = compare([a, b], str(tmp_path / "pooled"))
    out = tmp_path / "pooled"
    assert "# Seed-paired success" in text and "# Seed-paired return" in text          # robomimic: both metrics
    assert len(results.read_csv(str(out / "results.csv"))) == 16
    assert "| 0.1 | 1 | 20 | 4 |" in (out / "summary.md").read_text()              # 4 seeds per cell
    assert (out / "plots" / "learning_curves.png").exists() and (out / "plots" / "return").is_dir()
    paired = results.read_csv(str(out / "paired.csv"))
    assert [(r["metric"], r["step"]) for r in paired] == [("success", 10), ("success", 20), ("return", 10), ("return", 20)]
    assert paired[-1]["difference"] == pytest.approx(np.mean([40, 20, 70, -10]))
    with pytest.raises(ValueError, match="is one of the pooled sweeps"):
        compare([a, b], a)
    with pytest.raises(ValueError, match="--out"):
        compare([a, b], "")
    compare([a], "", metric="lambda_max")                           # one sweep: its own paired files only
    assert (tmp_path / "a" / "paired.md").exists() and not (tmp_path / "a" / "summary.md").exists()


def test_the_command_line_gives_one_line_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.compare", f"--workdirs={tmp_path}/x,{tmp_path}/y"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: several workdirs are pooled into a new folder: name it with --out=runs/pooled"


def test_summary_interval_is_the_student_t_interval():
    """``results.mean_ci`` against the tabulated t quantile t(0.975, df = 4) = 2.776445 and numpy's sample std."""
    v = [1.0, 2.0, 4.0, 8.0, 16.0]
    mean, std, half, n = results.mean_ci(v + [float("nan")])           # non-finite values are left out
    assert (mean, n) == (6.2, 5) and std == pytest.approx(np.std(v, ddof=1))
    assert half == pytest.approx(2.776445105 * np.std(v, ddof=1) / np.sqrt(5), rel=1e-9)
    assert results.mean_ci([3.0])[:3] == (3.0, 0.0, pytest.approx(float("nan"), nan_ok=True))
