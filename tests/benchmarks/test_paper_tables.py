"""benchmarks.science.paper_tables on synthetic final rows: cells, seed-paired gains, the scarcity verdict, the paper's numbers
beside ours, and the files it writes (no training here; the presets' sweeps are the sweep tests' business)."""
import dataclasses
import math
import os

import numpy as np
import pytest
from scipy import stats

from benchmarks.science import paper_report as report
from benchmarks.science import paper_tables as pt

UMAZE = pt.Dataset("local/pointmaze/umaze-v0", "pointmaze-umaze", 1000)
HOPPER = pt.Dataset("local/mujoco/hopper/medium-v0", paper_row="hopper-medium", imitation=False)
BUDGET = pt.Budget(rl_steps=10, il_steps=10, seeds=3, eval_episodes=1, fractions=(1.0, 0.05))
EDP = {(1.0, 0): [10.0, 20.0, 30.0], (1.0, 1): [15.0, 24.0, 38.0],        # gains 5, 4, 8
       (0.05, 0): [5.0, 9.0, 1.0], (0.05, 1): [20.0, 30.0, 10.0]}         # gains 15, 21, 9


def rows_for(ds):
    rows = []
    for (frac, cdp), scores in EDP.items():
        for seed, score in enumerate(scores):
            rows.append(dict(dataset_id=ds.dataset_id, agent="edp", seed=float(seed), data_fraction=frac,
                             gamma=pt.CDP_GAMMA if cdp else 0.0, step=10.0, normalized_score=score, success=0.5))
    for agent in ("bc", "dql", "idql", "dbc"):
        for seed in range(3):
            rows.append(dict(dataset_id=ds.dataset_id, agent=agent, seed=float(seed), data_fraction=1.0, gamma=0.0,
                             step=10.0, normalized_score=40.0 + seed, success=0.2 * seed))
    return rows


def test_cells_are_means_with_t_intervals():
    mean, ci, n = report.cell(rows_for(UMAZE), UMAZE.dataset_id, "edp", 1.0, 0.0, "normalized_score")
    v = np.array(EDP[(1.0, 0)])
    assert (mean, n) == (20.0, 3)
    assert ci == pytest.approx(stats.t.ppf(0.975, 2) * v.std(ddof=1) / math.sqrt(3))


def test_gains_are_paired_by_seed_and_the_verdict_compares_them():
    rows = rows_for(UMAZE)
    assert report.seed_gains(rows, UMAZE.dataset_id, 1.0) == {0.0: 5.0, 1.0: 4.0, 2.0: 8.0}
    mean, ci, n = report.paired_gain(rows, UMAZE.dataset_id, 0.05)
    assert (mean, n) == (15.0, 3)
    verdict = report.scarcity_verdict(rows, [UMAZE], BUDGET)
    diffs = np.array([15 - 5, 21 - 4, 9 - 8], float)                   # per-seed gain at 5% minus gain at 100%
    assert f"difference {diffs.mean():+.1f} ± {stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3):.1f}" in verdict
    assert "holds" in verdict and "does not hold" not in verdict


def test_tables_put_the_paper_beside_ours_and_name_the_data(tmp_path):
    rows = rows_for(UMAZE) + rows_for(HOPPER)
    report.write_outputs(rows, [UMAZE, HOPPER], BUDGET, "offline", str(tmp_path))
    table1 = (tmp_path / "table1.md").read_text()
    hopper_line = next(line for line in table1.splitlines() if line.startswith("| hopper-medium"))
    assert "| 20.0 ± 24.8 (61.1) |" in hopper_line                      # ours (mean ± 95% CI), then the paper's EDP
    assert "(62.8)" in hopper_line and "not the D4RL data" in hopper_line
    table2 = (tmp_path / "table2.md").read_text()
    assert "pointmaze/umaze-v0" in table2 and "hopper" not in table2.split("The paper's Table 2")[0]
    assert os.path.getsize(tmp_path / "limited_data.png") > 10_000
    assert len(report.results.read_csv(str(tmp_path / "results.csv"))) == len(rows)


def test_robomimic_rows_go_to_table2_beside_the_paper(tmp_path):
    lift = pt.robomimic_datasets(("lift",))[0]
    rows = rows_for(UMAZE)
    for label, gammas in (("dbc:pearce", (0.0, pt.CDP_GAMMA)), ("bc_gmm", (0.0,))):
        for g in gammas:
            for seed in range(3):
                for frac, metric, value in ((1.0, "success", 0.2 * (seed + 1)), (0.1, "return", 100.0 * (seed + 1))):
                    rows.append({"dataset_id": lift.dataset_id, "agent": label, "seed": float(seed),
                                 "data_fraction": frac, "gamma": g, "step": 10.0, "normalized_score": math.nan,
                                 "success": value if metric == "success" else 0.0,
                                 "return": value if metric == "return" else 0.0})
    budget = dataclasses.replace(BUDGET, robomimic_backbones=("pearce", "bc_gmm"))
    report.write_outputs(rows, [UMAZE, lift], budget, "offline", str(tmp_path))
    table2 = (tmp_path / "table2.md").read_text()
    assert "### Lift" in table2 and "generated demos by `robomimic-lift`, not the PH data" in table2
    assert "| pearce | 0.1 | 0.40 ± 0.50 (–) | 200.0 ± 248.4 (284) |" in table2       # the paper's CDP at 10%
    assert "| bc_gmm | 0 | 0.40 ± 0.50 (–) | 200.0 ± 248.4 (188) |" in table2         # and its BC
    assert "robomimic" not in (tmp_path / "table1.md").read_text()


def test_presets():
    offline = pt.preset_datasets("offline", {"local/mujoco/hopper/medium-v0"}, 1000)
    assert [d.dataset_id for d in offline] == ["local/pointmaze/umaze-v0", "local/pointmaze/medium-v0",
                                               "local/mujoco/hopper/medium-v0", "robomimic/lift/scripted/low_dim.hdf5"]
    full = pt.preset_datasets("full", set(), 0)
    assert all(not d.dataset_id.startswith("local/") for d in full)
    jobs = pt.jobs_for(offline, pt.BUDGETS["offline"])
    assert {j.agent for j in jobs} == {"edp", "bc", "dql", "idql", "dbc", "bc_gmm"}
    robo = [j for j in jobs if j.backbone]
    assert [(j.backbone, j.gammas) for j in robo] == [("pearce", (0.0, pt.CDP_GAMMA)), ("bc_gmm", (0.0,))]
    cfg = pt.sweep_config(robo[0], pt.BUDGETS["offline"])
    assert (cfg.agent, cfg.sequence.obs_steps, cfg.subset_seed, cfg.batch_size) == ("dbc", 2, 42, 512)
    assert cfg.data_fractions == (1.0, 0.1) and cfg.num_steps == pt.BUDGETS["offline"].il_steps
    full = pt.jobs_for(pt.preset_datasets("full", set(), 0), pt.BUDGETS["full"])
    assert {j.backbone for j in full if j.backbone} == {"pearce", "unet", "dit", "bc_gmm"}
    cfg = pt.sweep_config(jobs[0], pt.BUDGETS["offline"])
    assert cfg.gammas == (0.0, pt.CDP_GAMMA) and cfg.seeds == 3 and 0.05 in cfg.data_fractions


def test_full_preset_has_the_image_rows_of_table2():
    images = [d for d in pt.preset_datasets("full", set(), 0) if d.robomimic.endswith("-image")]
    assert [d.dataset_id for d in images] == ["robomimic/lift/scripted/image.hdf5", "robomimic/can/scripted/image.hdf5"]
    jobs = pt.jobs_for(images, pt.BUDGETS["full"])
    assert [j.backbone for j in jobs] == ["pearce", "unet", "dit"] * 2             # no BC-GMM on pixels
    cfg = pt.sweep_config(jobs[1], pt.BUDGETS["full"])
    assert (cfg.batch_size, cfg.generate_image_size, cfg.agent_config.diffusion.network) == (64, 84, "unet")
    assert "agentview_image" in cfg.obs_keys and cfg.agent_config.diffusion.image.crop == 76
    dit = pt.sweep_config(jobs[2], pt.BUDGETS["full"]).agent_config.diffusion     # the official image DiT
    assert (dit.network, dit.hidden, dit.dit_heads, dit.dit_depth, dit.image.emb_dim) == ("dit", 320, 10, 2, 256)
    lines = pt.robomimic_jobs.table([], images[0].dataset_id, "lift-image", "generated", {},
                                    ("pearce",), lambda *a: (math.nan, math.nan), lambda *a: "–", lambda *a: math.nan)
    assert lines[0] == "### Lift-H (2 cameras): generated" and len(lines) == 7       # heading, header, 2 rows


def test_table2_on_robomimics_ph_files():
    """``--robomimic_data=ph``: the released files' places (downloaded on first use), Transport included, and the
    tables name the PH data, not generated demos."""
    ph = [d for d in pt.preset_datasets("full", set(), 0, "ph") if d.robomimic]
    assert [d.dataset_id for d in ph] == [
        f"robomimic/{t}/ph/{o}_v15.hdf5" for t, o in (("lift", "low_dim"), ("can", "low_dim"), ("square", "low_dim"),
                                                      ("lift", "image"), ("can", "image"), ("transport", "low_dim"),
                                                      ("transport", "image"))]
    assert all(d.generate == "" and d.provenance.endswith("(robomimic PH file)") for d in ph)
    cfg = pt.sweep_config(pt.jobs_for(ph[-2:-1], pt.BUDGETS["full"])[0], pt.BUDGETS["full"])
    assert (cfg.dataset_id, cfg.generate, cfg.sequence.obs_steps) == ("robomimic/transport/ph/low_dim_v15.hdf5", "", 2)
    assert [d.dataset_id for d in pt.preset_datasets("offline", set(), 0, "ph") if d.robomimic] == [
        "robomimic/lift/ph/low_dim_v15.hdf5"]
