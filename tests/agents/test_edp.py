"""EDP / CDP-RL against hand-computed values, and its refusals."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.agents import edp
from cdp_jax.agents.base import LossWeights

OBS, ACT, B = 3, 2, 32


def test_critic_target_single_sample_and_max_over_samples():
    r = jnp.array([1.0, 0.5])
    done = jnp.array([0.0, 1.0])
    q1 = jnp.array([[2.0], [7.0]])
    q2 = jnp.array([[3.0], [1.0]])
    # row 0: 1 + 0.9 * min(2, 3) = 2.8; row 1 terminal: 0.5
    np.testing.assert_allclose(edp.critic_target(r, done, q1, q2, 0.9), [2.8, 0.5], rtol=1e-6)
    q1 = jnp.array([[2.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    q2 = jnp.array([[4.0, 3.0, 6.0], [0.0, 0.0, 0.0]])
    # max over samples first: max Q1' = 5, max Q2' = 6, min = 5 -> 1 + 0.9 * 5 = 5.5
    np.testing.assert_allclose(edp.critic_target(r, jnp.zeros(2), q1, q2, 0.9), [5.5, 0.5], rtol=1e-6)


def test_normalized_q_loss_and_its_gradient():
    q1 = jnp.array([1.0, 3.0])
    q2 = jnp.array([-2.0, 4.0])
    np.testing.assert_allclose(edp.normalized_q_loss(q1, q2, False), -2.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(edp.normalized_q_loss(q1, q2, True), -1.0 / 2.0, rtol=1e-6)
    # the |Q| denominator is held fixed: d/dq1 of -mean(q1)/mean|q2| is -1/(2 * 3)
    np.testing.assert_allclose(jax.grad(lambda a: edp.normalized_q_loss(a, q2, False))(q1), [-1 / 6, -1 / 6], rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda b: edp.normalized_q_loss(q1, b, False))(q2), [0.0, 0.0])


def test_candidate_selection_follows_softmax_of_q():
    cands = jnp.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    q = jnp.array([[0.0, jnp.log(2.0), jnp.log(7.0)]])           # softmax = (1, 2, 7) / 10
    picks = jax.vmap(lambda k: edp.select_candidates(k, cands, q, 1.0))(jax.random.split(jax.random.PRNGKey(0), 20000))
    freq = np.bincount(np.asarray(picks[:, 0, 0]).astype(int), minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.015)
    greedy = edp.select_candidates(jax.random.PRNGKey(1), cands, q, 1e4)
    np.testing.assert_array_equal(greedy, [[2.0, 2.0]])


def small_config():
    cfg = edp.default_config()
    cfg.diffusion.hidden, cfg.diffusion.sampling_steps, cfg.critic_hidden = 32, 5, 32
    cfg.num_candidates, cfg.ema_start, cfg.total_steps = 8, 0, 100
    return cfg


def batch(key):
    obs = jax.random.normal(key, (B, OBS))
    act = jnp.tanh(obs[:, :ACT])
    return {"observations": obs, "actions": act, "rewards": -jnp.sum((act - 0.5) ** 2, -1),
            "next_observations": obs, "terminals": jnp.zeros(B)}


def test_update_runs_learns_the_critic_and_acts():
    agent = edp.EDPAgent.create(small_config(), LossWeights(gamma=0.1, eta=1.0), jax.random.PRNGKey(0), OBS, ACT)
    data = batch(jax.random.PRNGKey(1))
    first = None
    for i in range(100):
        agent, m = agent.update(data, jax.random.PRNGKey(i))
        first = first if first is not None else float(m["critic_loss"])
    np.testing.assert_allclose(float(m["actor_loss"]), float(m["denoising_loss"]) + 1.0 * float(m["q_loss"])
                               + 0.1 * float(m["contraction_loss"]), rtol=1e-5)      # η = 1, γ = 0.1
    assert float(m["critic_loss"]) < first
    act = agent.act(data["observations"], jax.random.PRNGKey(0))
    chex.assert_shape(act, (B, ACT))
    assert float(jnp.mean(jnp.abs(act) > 0.999)) < 0.5 and float(act.std(0).min()) > 1e-3   # not stuck at the clip


@pytest.mark.slow
def test_grid_of_edp_agents_vmaps():
    cfg = small_config()
    create = lambda g: edp.EDPAgent.create(cfg, LossWeights(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
    grid = jax.vmap(create)(jnp.array([0.0, 0.1]))
    grid, m = jax.jit(jax.vmap(lambda a, k: a.update(batch(jax.random.PRNGKey(1)), k), (0, None)))(grid, jax.random.PRNGKey(0))
    chex.assert_shape(m["loss"], (2,))
    alone, _ = create(0.1).update(batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(0))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], grid.actor_params), alone.actor_params, atol=1e-5)


def test_rl_agent_refuses_reward_free_and_discrete_datasets(minari_root, tmp_path):
    import gymnasium as gym
    import minari
    from cdp_jax.train import config, sweep
    from cdp_jax.datasets.generators.writing import episode_buffer

    def cfg(dataset_id):
        c = config.base_config()
        c.dataset_id, c.agent, c.seeds, c.num_steps, c.eval_every = dataset_id, "edp", 1, 10, 10
        return c

    env = gym.make("CartPole-v1")
    obs = np.zeros((6, 4), np.float32)
    minari.create_dataset_from_buffers("local/test/cartpole-v0", [episode_buffer(obs, np.zeros(5, np.int64), np.ones(5),
                                       np.zeros(5), np.ones(5))], env=env)
    with pytest.raises(ValueError, match="needs a continuous \\(Box\\) action space"):
        sweep.Sweep(cfg("local/test/cartpole-v0"), str(tmp_path / "a")).run()
    mountain = gym.make("MountainCarContinuous-v0")
    minari.create_dataset_from_buffers("local/test/mcc-v0", [episode_buffer(np.zeros((6, 2), np.float32), np.zeros((5, 1)),
                                       np.zeros(5), np.zeros(5), np.ones(5))], env=mountain)
    with pytest.raises(ValueError, match="offline-RL agent but dataset .* has no rewards"):
        sweep.Sweep(cfg("local/test/mcc-v0"), str(tmp_path / "b")).run()


@pytest.mark.slow
def test_dql_differentiates_through_the_whole_chain():
    """DQL's Q-term action is the full reverse chain (not EDP's one-step approximation: ``act`` is ignored), and
    its gradient is the true derivative of that chain: float64 central differences along a random direction."""
    from cdp_jax.agents import dql
    cfg = dql.default_config()
    cfg.diffusion.hidden, cfg.critic_hidden, cfg.num_candidates, cfg.total_steps = 32, 32, 8, 50
    agent = dql.DQLAgent.create(cfg, LossWeights(gamma=0.1), jax.random.PRNGKey(0), OBS, ACT)
    data = batch(jax.random.PRNGKey(1))
    obs, key = data["observations"], jax.random.PRNGKey(2)
    chain = jnp.clip(agent.denoiser.sample(agent.actor_params, key, obs), -1.0, 1.0)
    np.testing.assert_array_equal(agent.policy_action(agent.actor_params, obs, data["actions"] + 5.0, key), chain)
    w = jax.random.normal(jax.random.PRNGKey(5), (B, ACT))
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda x: x.astype(jnp.float64), agent.actor_params)
        f = lambda p: jnp.sum(agent.policy_action(p, obs.astype(jnp.float64), None, key) * w)
        leaves, tree = jax.tree.flatten(p64)
        d = jax.tree.unflatten(tree, [jax.random.normal(jax.random.PRNGKey(7 + i), x.shape, jnp.float64)
                                      for i, x in enumerate(leaves)])
        analytic = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(jax.grad(f)(p64)), jax.tree.leaves(d)))
        shift = lambda s: jax.tree.map(lambda p, v: p + s * v, p64, d)
        numeric = (f(shift(1e-5)) - f(shift(-1e-5))) / 2e-5
    np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-4)
    for i in range(20):
        agent, m = agent.update(data, jax.random.PRNGKey(i))
    assert np.isfinite(float(m["loss"]))
    chex.assert_shape(agent.act(data["observations"], jax.random.PRNGKey(0)), (B, ACT))


@pytest.mark.slow
def test_bc_fits_the_maximum_likelihood_tanh_gaussian():
    """On one state, the tanh-Gaussian's mode ``tanh(mu)`` converges to the maximum-likelihood location
    ``tanh(mean(atanh(a)))`` of the data (measured: equal to 1e-6; asserted to 1e-3)."""
    from cdp_jax.agents import bc
    rng = np.random.default_rng(0)
    obs = jnp.ones((512, OBS), jnp.float32)
    actions = jnp.tanh(0.3 + 0.2 * jnp.asarray(rng.normal(size=(512, ACT)), jnp.float32))
    cfg = bc.default_config()
    cfg.lr, cfg.total_steps = 3e-3, 400
    agent = bc.BCAgent.create(cfg, LossWeights(), jax.random.PRNGKey(0), OBS, ACT)
    for i in range(400):
        agent, m = agent.update({"observations": obs, "actions": actions}, jax.random.PRNGKey(i))
    mode = np.asarray(agent.act(obs[:1], jax.random.PRNGKey(0)))[0]
    np.testing.assert_allclose(mode, np.tanh(np.arctanh(np.asarray(actions, np.float64)).mean(0)), rtol=1e-3)
    with pytest.raises(ValueError, match="no diffusion model, so gamma must be 0"):
        bc.BCAgent.create(cfg, LossWeights(gamma=0.1), jax.random.PRNGKey(0), OBS, ACT)


@pytest.mark.slow
def test_idql_expectile_and_weights_by_hand():
    from cdp_jax.agents import idql
    diff = jnp.array([1.0, -2.0])
    np.testing.assert_allclose(idql.expectile_loss(diff, 0.7), (0.7 * 1.0 + 0.3 * 4.0) / 2, rtol=1e-6)
    w = idql.implicit_weights(jnp.array([[1.0, 3.0]]), jnp.array([2.0]), 0.7)
    np.testing.assert_allclose(w, [[0.3, 0.7]], rtol=1e-6)
    cfg = idql.default_config()
    cfg.diffusion.hidden, cfg.critic_hidden, cfg.num_candidates = 32, 32, 8
    agent = idql.IDQLAgent.create(cfg, LossWeights(gamma=0.1), jax.random.PRNGKey(0), OBS, ACT)
    data = batch(jax.random.PRNGKey(1))
    for i in range(30):
        agent, m = agent.update(data, jax.random.PRNGKey(i))
    assert np.isfinite(float(m["loss"])) and float(m["contraction_loss"]) > 0
    chex.assert_shape(agent.act(data["observations"], jax.random.PRNGKey(0)), (B, ACT))


@pytest.mark.slow
def test_bc_gmm_log_likelihood_matches_numpy_and_it_keeps_both_modes():
    from cdp_jax.agents import bc_gmm
    cfg = bc_gmm.default_config()
    cfg.hidden, cfg.lr, cfg.num_modes = 64, 3e-3, 3
    agent = bc_gmm.BCGMMAgent.create(cfg, LossWeights(), jax.random.PRNGKey(0), 2, 1)
    obs = jnp.ones((4, 2))
    acts = jnp.array([[0.5], [-0.5], [0.5], [-0.5]])
    logits, means, scales = agent.head.apply(agent.params, obs)
    w = np.exp(np.asarray(logits) - np.asarray(logits).max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    m, s, a = np.asarray(means)[..., 0], np.asarray(scales)[..., 0], np.asarray(acts)
    dens = (w * np.exp(-0.5 * ((a - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))).sum(-1)
    np.testing.assert_allclose(float(agent.loss(agent.params, {"observations": obs, "actions": acts})[0]),
                               -np.log(dens).mean(), rtol=1e-5)
    for i in range(400):
        agent, _ = agent.update({"observations": obs, "actions": acts}, jax.random.PRNGKey(i))
    samples = np.asarray(jax.vmap(lambda k: agent.act(obs[:1], k))(jax.random.split(jax.random.PRNGKey(9), 200)))
    near = lambda v: np.mean(np.abs(samples - v) < 0.1)
    assert near(0.5) > 0.25 and near(-0.5) > 0.25                   # both modes, not their average
    assert near(0.0) < 0.05


def test_candidate_spread_is_measured_before_the_selection():
    """``candidate_std`` is the std across an RL agent's candidates at each state (what softmax(Q) selects from),
    computed here from the agent's own candidates; NaN for an agent that does not select (DBC)."""
    from cdp_jax.agents import dbc
    from cdp_jax.train.evaluation import candidate_spread
    cfg = small_config()
    grid = jax.vmap(lambda g: edp.EDPAgent.create(cfg, LossWeights(gamma=g), jax.random.PRNGKey(0), OBS, ACT))(
        jnp.array([0.0, 0.1]))
    states, key = batch(jax.random.PRNGKey(1))["observations"][:8], jax.random.PRNGKey(2)
    got = candidate_spread(grid, states, key)
    for i in range(2):
        member = jax.tree.map(lambda x: x[i], grid)
        _, cands = member.candidates(states, key, cfg.num_candidates, cfg.candidate_temperature)
        chex.assert_shape(cands, (8, cfg.num_candidates, ACT))
        np.testing.assert_allclose(got[i], np.mean(np.std(np.asarray(cands), axis=1)), rtol=1e-5)
    assert got[0] > 0
    plain = jax.vmap(lambda s: dbc.DBCAgent.create(dbc.default_config(), LossWeights(), jax.random.PRNGKey(s), OBS,
                                                   ACT))(jnp.arange(2))
    assert np.isnan(candidate_spread(plain, states, key)).all()
