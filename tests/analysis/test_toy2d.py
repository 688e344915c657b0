"""The 2-D toy: contraction lowers lambda_max at low noise and removes samples stranded between modes."""
import json
import os

import numpy as np
import pytest

from cdp_jax.analysis import toy2d


@pytest.mark.slow
def test_cdp_is_more_contractive_and_keeps_samples_on_modes(tmp_path):
    cfg = toy2d.default_config()
    cfg.num_steps, cfg.num_snapshots, cfg.num_samples = 2000, 2, 2000
    metrics = toy2d.run(str(tmp_path), cfg)
    std, cdp = metrics["gamma=0"], metrics["gamma=0.1"]
    assert cdp["lambda_max_low_noise"] < std["lambda_max_low_noise"] - 0.2
    assert cdp["far_fraction"] < std["far_fraction"]
    assert std["far_fraction"] > 0.01                     # the standard policy does leave stray samples
    assert os.path.getsize(tmp_path / "toy2d.png") > 10_000
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_mode_metrics_reference_values():
    on_modes = np.repeat(toy2d.CENTRES, 5, axis=0)
    m = toy2d.mode_metrics(on_modes, 0.08)
    assert m["mean_nearest_mode_distance"] == 0.0 and m["far_fraction"] == 0.0
    centre = np.zeros((4, 2), np.float32)
    m = toy2d.mode_metrics(centre, 0.08)
    np.testing.assert_allclose(m["mean_nearest_mode_distance"], 0.6 * np.sqrt(2), rtol=1e-6)
    assert m["far_fraction"] == 1.0
