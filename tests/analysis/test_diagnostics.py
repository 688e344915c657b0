"""Diagnostics against closed forms, and the diagnose command on a finished sweep."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.analysis import diagnostics

from cdp_jax.core import samplers
from cdp_jax.core.schedules import make_schedule


@pytest.mark.parametrize("steps", [5, 15, 50])
def test_sampler_lipschitz_matches_product_of_linear_steps(steps):
    sched = make_schedule("cosine", 50)
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 3)) * 0.5
    gain = lambda t: sched.alpha_at(t) / (sched.alpha_at(t) ** 2 + sched.sigma_at(t) ** 2)
    x0_fn = lambda x, t: gain(t) * (x @ jnp.asarray(m, jnp.float32).T) + 0.1
    sample = lambda x_T: samplers.sample(x0_fn, sched, jax.random.PRNGKey(0), x_T.shape, method="ddim",
                                         num_steps=steps, x_init=x_T)
    est = diagnostics.sampler_lipschitz(sample, jnp.zeros((4, 3)), jax.random.PRNGKey(1), num_iters=50)
    coef = samplers._coefficients(sched, "ddim", steps)
    total = np.eye(3)
    for i, t in enumerate(coef["t_idx"]):
        a, s = float(sched.alpha[t]), float(sched.sigma[t])
        step = coef["c_x"][i] * np.eye(3) + coef["c_d"][i] * (a / (a**2 + s**2)) * m
        total = step @ total
    np.testing.assert_allclose(est, np.full(4, np.linalg.norm(total, 2)), rtol=0.01)


def test_action_statistics_reference_values():
    samples = jnp.array([[[0.0, 0.0]], [[2.0, 0.0]]])                 # K=2 noises, S=1 state
    data = jnp.array([[1.0, 0.0]])
    neighbours = jnp.array([[[1.0, 0.0], [2.0, 0.0]]])
    out = diagnostics.action_statistics(samples, data, neighbours)
    np.testing.assert_allclose(out["action_spread"], 0.5)             # std over noises: (1, 0) averaged over dims
    np.testing.assert_allclose(out["distance_to_data_action"], 1.0)
    np.testing.assert_allclose(out["distance_to_nearest_action"], 0.5)  # (1 + 0) / 2


@pytest.mark.slow
def test_diagnose_command_on_a_sweep(minari_root, tmp_path):
    from tests.tiny import run, tiny_config
    run(tiny_config(), tmp_path / "sweep")
    rows = diagnostics.diagnose_sweep(str(tmp_path / "sweep"), num_states=16, num_noises=4, num_levels=4)
    metrics = {r["metric"] for r in rows}
    assert metrics == {"lambda_max", "sampler_lipschitz", "action_spread", "distance_to_data_action",
                       "distance_to_nearest_action"}
    assert all(np.isfinite(r["value"]) for r in rows)
    levels = sorted({r["t"] for r in rows if r["metric"] == "lambda_max"})
    assert levels == [0, 3, 6, 9]                                    # 4 levels spread over T = 10
    assert len(rows) == 8 * (len(levels) + 4)                        # 8 members x (λmax curve + 4 scalars)
    for r in rows:
        if r["metric"] != "lambda_max":
            assert r["value"] >= 0.0 and r["t"] == -1, r             # norms, stds and distances
    assert os.path.getsize(tmp_path / "sweep" / "plots" / "diagnostics_lambda_max.png") > 5000
    from cdp_jax.train import results
    assert results.read_csv(tmp_path / "sweep" / "diagnostics.csv") == rows


def test_zero_states_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="num_states must be >= 1"):
        diagnostics.diagnose_sweep(str(tmp_path / "anything"), num_states=0)
    assert not os.path.exists(tmp_path / "anything")
