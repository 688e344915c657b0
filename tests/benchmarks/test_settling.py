"""The settling experiment's arms, presets and seed-paired table (benchmarks/science/settling.py)."""
import numpy as np
import pytest

from benchmarks.science import settling as S
from cdp_jax.train import config


def member(score, lam_low=0.2, lam_high=0.3, step=4000):
    return dict(normalized_score=score, success=float(score > 50), candidate_std=score / 100, lambda_low=lam_low,
                lambda_high=lam_high, step=step)


def test_each_cdp_arm_is_paired_with_gamma_zero_of_its_own_embedding():
    arms = S.PRESETS["cpu"].arms
    rng = np.random.default_rng(0)
    base = {s: rng.uniform(40, 90) for s in range(5)}
    members = {
        "A": {**{(s, f, 0.0): member(base[s]) for s in range(5) for f in (1.0, 0.1)},
              **{(s, f, 0.1): member(base[s] + 3 + s) for s in range(5) for f in (1.0, 0.1)}},
        "B": {(s, 0.1, 0.1): member(base[s] - 10 + rng.normal(), lam_high=0.1) for s in range(5)},
        "C": {**{(s, f, 0.0): member(base[s] + 1) for s in range(5) for f in (1.0, 0.1)},
              **{(s, f, 0.1): member(base[s] + 1 - s) for s in range(4) for f in (1.0, 0.1)}},   # seed 4 missing
    }
    rows = S.paired_rows(arms, members)
    score = {(r["comparison"], r["data_fraction"]): r for r in rows if r["metric"] == "normalized_score"}
    assert list(dict.fromkeys(k[0] for k in score)) == ["A γ 0.1", "C γ 0.1", "B γ 0.1",
                                                         "C γ 0 vs A γ 0 (embedding alone)"]
    a = score["A γ 0.1", 1.0]
    diff = np.array([3 + s for s in range(5)])
    assert a["difference"] == pytest.approx(diff.mean()) and a["seeds"] == 5 and a["wins"] == 5
    assert a["difference_ci95"] == pytest.approx(2.776445 * diff.std(ddof=1) / np.sqrt(5), rel=1e-5)
    b = score["B γ 0.1", 0.1]                                  # B's reference: A's γ 0 members, same seeds
    expected = np.array([members["B"][s, 0.1, 0.1]["normalized_score"] - base[s] for s in range(5)])
    assert b["difference"] == pytest.approx(expected.mean()) and ("B γ 0.1", 1.0) not in score
    c = score["C γ 0.1", 0.1]                                  # C's reference: C's own γ 0; only seeds in both
    assert c["seeds"] == 4 and c["difference"] == pytest.approx(-np.arange(4).mean())
    e = score["C γ 0 vs A γ 0 (embedding alone)", 1.0]
    assert e["difference"] == pytest.approx(1.0) and e["reference_mean"] == pytest.approx(np.mean(list(base.values())))
    lam = [r for r in rows if r["comparison"] == "B γ 0.1" and r["metric"] == "lambda_high"][0]
    assert lam["difference"] == pytest.approx(-0.2)
    members["B"][0, 0.5, 0.1] = member(50.0)                   # a fraction the reference never ran: no row
    assert S.paired_rows(arms, members) == rows
    assert "| B γ 0.1 | 0.1 | 4000 | normalized_score |" in S.markdown(rows, dict(
        commit="abc", date="d", device="cpu", jax="0", command="c"), "cpu")


@pytest.mark.parametrize("preset", sorted(S.PRESETS))
def test_every_preset_sweep_validates(preset):
    p = S.PRESETS[preset]
    for arm in p.arms.values():
        cfg = S.sweep_config(p, arm, p.steps, p.seeds, p.eval_episodes)
        config.validate(cfg)
        assert cfg.agent == "edp" and cfg.agent_config.diffusion.time_embedding == arm.embedding
        assert cfg.agent_config.diffusion.contraction.low_noise_fraction == arm.low_noise_fraction


def test_the_gpu_preset_is_the_issues_a_and_c_arms():
    p = S.PRESETS["gpu"]
    assert list(p.arms) == ["A", "C"] and p.seeds == 10 and p.steps == 20_000 and p.eval_episodes == 50
    assert p.arms["A"].gammas == (0.0, 0.01, 0.1) and p.arms["C"].gammas == (0.0, 0.1)
    assert p.fractions == (1.0, 0.1) and p.dataset_id == "local/pointmaze/medium-v0"
    assert sum(len(a.gammas) * len(a.fractions or p.fractions) * p.seeds for a in p.arms.values()) == 100
