"""The grid as one compiled program: a member equals itself alone, groups and shardings change nothing, a diverging
member is isolated, γ = 0 groups are compiled without the contraction term."""
import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.datasets import load_transitions
from cdp_jax.train import config, results
from cdp_jax.train.workdir import holds_config
from cdp_jax.train import grid as G
from tests.tiny import run, tiny_config
from tests.train.conftest import env_with_cpu_devices

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_grid_member_equals_member_alone(straight, tmp_path):
    grid, grid_rows, workdir = straight
    assert len(grid_rows) == 8 * 2
    alone, alone_rows = run(tiny_config(seeds=(1,), data_fractions=(0.5,), gammas=(0.1,)), tmp_path / "alone")
    index = next(i for i, m in enumerate(grid.grid.members) if m == dict(seed=1, data_fraction=0.5, gamma=0.1))
    member = jax.tree.map(lambda x: x[index], grid.agents)
    chex.assert_trees_all_close(member.params, jax.tree.map(lambda x: x[0], alone.agents.params), atol=1e-5)
    final = [r for r in grid_rows if r["seed"] == 1 and r["data_fraction"] == 0.5 and r["gamma"] == 0.1]
    assert len(final) == len(alone_rows) == 2
    for a, b in zip(final, alone_rows):
        assert a["action_std"] > 1e-3 and a["lambda_max"] != 0                    # values that can differ
        np.testing.assert_allclose([a["return"], a["action_std"], a["lambda_max"]],
                                   [b["return"], b["action_std"], b["lambda_max"]], rtol=1e-4, atol=1e-5)
    assert os.path.exists(workdir / "summary.md")
    for name in ("learning_curves.png", "score_vs_fraction.png", "gamma_sensitivity.png"):
        assert os.path.getsize(workdir / "plots" / name) > 5_000


@pytest.mark.slow
def test_nan_member_is_frozen_and_isolated(minari_root):
    """A NaN/inf loss, or a state that turns non-finite under finite losses: the member goes back to the chunk's
    start and is marked diverged; the other member trains as it would alone."""
    cfg = tiny_config(gammas=(0.0,), seeds=(0, 1), data_fractions=(1.0,))
    data, info = load_transitions(cfg.dataset_id)
    grid = G.build_grid(cfg, data.size, info.episode_starts)
    grid = G.Grid(grid.members, grid.weights.replace(gamma=jnp.array([0.0, jnp.inf])), grid.seeds, grid.subsets)
    acfg = config.agent_config(cfg)
    from cdp_jax.agents.dbc import DBCAgent
    agents = G.init_agents(DBCAgent, acfg, grid, info.obs_dim, info.act_dim)
    initial = jax.tree.map(lambda x: x[1], agents.params)
    chunk = G.make_train_steps(data, 32, 5)
    agents, diverged, _ = chunk(agents, jnp.zeros(2, bool), grid.subsets, grid.seeds, 0, contraction=False)
    np.testing.assert_array_equal(diverged, [False, True])
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x[1], agents.params), initial)     # frozen
    first = lambda tree: jax.tree.map(lambda x: x[:1], tree)
    alone = G.Grid(grid.members[:1], first(grid.weights), grid.seeds[:1], first(grid.subsets))
    solo = G.init_agents(DBCAgent, acfg, alone, info.obs_dim, info.act_dim)
    solo, solo_div, _ = G.make_train_steps(data, 32, 5)(solo, jnp.zeros(1, bool), alone.subsets, alone.seeds, 0,
                                                        contraction=False)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], agents.params), jax.tree.map(lambda x: x[0], solo.params),
                                atol=1e-6)
    # A state that turns non-finite under finite losses (member 1's EMA copy NaN; its loss reads the online
    # parameters) is caught too: marked diverged, back to its state at the chunk's start; member 0 trains on.
    grid = G.Grid(grid.members, grid.weights.replace(gamma=jnp.zeros(2)), grid.seeds, grid.subsets)
    agents = G.init_agents(DBCAgent, acfg, grid, info.obs_dim, info.act_dim)
    agents = agents.replace(actor_ema=jax.tree.map(lambda x: x.at[1].set(jnp.nan), agents.actor_ema))
    start = jax.tree.map(np.asarray, agents)
    agents, diverged, metrics = chunk(agents, jnp.zeros(2, bool), grid.subsets, grid.seeds, 0, contraction=False)
    np.testing.assert_array_equal(diverged, [False, True])
    assert np.isfinite(metrics["loss"]).all()
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x[1], agents), jax.tree.map(lambda x: x[1], start))
    assert not np.array_equal(jax.tree.leaves(agents.params)[0][0], jax.tree.leaves(start.params)[0][0])


@pytest.mark.slow
def test_two_devices_shard_the_grid_and_agree(straight, tmp_path):
    script = (
        "import os, sys, jax; sys.path.insert(0, %r); from tests.tiny import tiny_config, run; "
        "assert jax.device_count() == 2; s, rows = run(tiny_config(), %r); "
        "import numpy as np; np.save(%r, np.array([r['action_std'] for r in rows]))"
    ) % (ROOT, str(tmp_path / "sharded"), str(tmp_path / "sharded.npy"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env_with_cpu_devices(2), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, rows, _ = straight
    np.testing.assert_allclose(np.load(tmp_path / "sharded.npy"), [r["action_std"] for r in rows], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_grid_split_into_equal_groups_gives_the_same_results(straight, tmp_path):
    whole, whole_rows, _ = straight
    chunked, chunked_rows = run(tiny_config(members_per_program=3), tmp_path / "chunked")   # 4 + 4 members -> 2 + 2 groups
    assert [len(m) for m, _ in G.GridLayout.plan([m["gamma"] for m in chunked.grid.members], 3).groups] == [3, 3, 3, 3]
    chex.assert_trees_all_close(whole.agents.params, chunked.agents.params, atol=1e-6)
    assert len(whole_rows) == len(chunked_rows) == 16
    for a, b in zip(whole_rows, chunked_rows):
        np.testing.assert_allclose([a["action_std"], a["lambda_max"]], [b["action_std"], b["lambda_max"]], rtol=1e-5)


@pytest.mark.slow
def test_one_program_for_both_gamma_classes_gives_the_same_results(straight, tmp_path):
    whole, whole_rows, workdir = straight
    one, one_rows = run(tiny_config(group_by_contraction=False), tmp_path / "one")
    for path, computed in ((workdir, False), (tmp_path / "one", True)):      # did γ = 0 members compute L_c?
        gamma0 = [r for r in results.read_csv(str(path / "train_metrics.csv")) if r["gamma"] == 0]
        assert all((r["contraction_loss"] > 0) == computed for r in gamma0) and gamma0
    chex.assert_trees_all_close(whole.agents.params, one.agents.params, atol=1e-4)
    assert len(whole_rows) == len(one_rows) == 16
    for a, b in zip(whole_rows, one_rows):
        np.testing.assert_allclose([a["action_std"], a["lambda_max"]], [b["action_std"], b["lambda_max"]], rtol=1e-3)
    # A workdir recorded before the field existed resumes: the missing field counts as its default.
    stored = json.loads((workdir / "config.json").read_text())
    del stored["group_by_contraction"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(stored))
    assert holds_config(str(tmp_path / "old"), tiny_config().to_dict(), overwrite=False)
    with pytest.raises(ValueError, match="holds a sweep with a different config"):
        holds_config(str(tmp_path / "old"), tiny_config(group_by_contraction=False).to_dict(), overwrite=False)


@pytest.mark.slow
def test_gamma_zero_members_are_compiled_without_the_contraction_term():
    layout = G.GridLayout.plan([0.0, 0.1, 0.0, 0.1, 0.1], per_program=2)
    assert layout.groups == (((0, 2), False), ((1, 3), True), ((4, 4), True))
    one_class = G.GridLayout.plan([0.0, 0.1, 0.0, 0.1, 0.1], per_program=2, by_contraction=False)
    assert one_class.groups == (((0, 1), True), ((2, 3), True), ((4, 4), True))
    assert G.GridLayout.plan([0.0, 0.0], per_program=2, by_contraction=False).groups == (((0, 1), False),)
    tree = {"x": jnp.arange(5.0) * 10}
    parts = [layout.group(tree, k) for k in range(layout.num_groups)]
    np.testing.assert_array_equal(parts[2]["x"], [40.0, 40.0])                    # the padded group
    np.testing.assert_array_equal(layout.join(parts)["x"], tree["x"])             # back in member order
    from cdp_jax.agents.base import LossWeights
    from cdp_jax.agents.dbc import DBCAgent, default_config
    agent = DBCAgent.create(default_config(), LossWeights(gamma=0.0), jax.random.PRNGKey(0), 3, 2)
    batch = {"observations": jnp.ones((16, 3)), "actions": jnp.zeros((16, 2))}
    key = jax.random.PRNGKey(1)
    update_on, update_off = (DBCAgent.update.lower(agent, batch, key, contraction=on).compile()   # compiled once
                             for on in (True, False))
    cost_on, cost_off = (f["flops"] if isinstance(f, dict) else f[0]["flops"]
                         for f in (update_on.cost_analysis(), update_off.cost_analysis()))
    assert cost_off < 0.6 * cost_on, (cost_off, cost_on)                          # the d JVPs are gone
    (_, m_on), (_, m_off) = update_on(agent, batch, key), update_off(agent, batch, key)
    assert float(m_off["contraction_loss"]) == 0.0
    np.testing.assert_allclose(float(m_on["loss"]), float(m_on["denoising_loss"]), rtol=1e-6)     # γ = 0: L_c adds nothing
    # γ = 0: the same gradient either way (with L_c on, the denoising term is read off the contraction's
    # linearisation: the two compiled programs agree to float rounding, 3e-8 measured). Compared before Adam, whose
    # first step lr·g/(|g| + ε) would turn that rounding on near-zero entries into lr-sized differences.
    grad = lambda on: jax.jit(jax.grad(lambda p: agent.loss(p, batch, jax.random.PRNGKey(1), on)[0]))(agent.params)
    chex.assert_trees_all_close(grad(True), grad(False), atol=1e-6)
