"""Each behaviour of the official code that cdp_jax matches by default or puts behind a switch (docs/fidelity.md),
checked against an independent transcription of what the official code computes."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.core import contraction as C
from cdp_jax.core import diffusion
from cdp_jax.agents import dbc, edp
from cdp_jax.agents.base import LossWeights
from cdp_jax.nn.layers import positional_embedding

OBS, ACT, B = 4, 2, 16


def cleandiffuser_positional_embedding(t_int: np.ndarray, dim: int, max_positions: int = 10000) -> np.ndarray:
    """CleanDiffuser's ``PositionalEmbedding.forward`` transcribed to numpy, for an integer (int64) level tensor:
    ``freqs = (1 / max_positions) ** (arange(dim // 2) / (dim // 2)); x = x.ger(freqs.to(x.dtype));
    cat([x.cos(), x.sin()], 1)``."""
    freqs = np.arange(dim // 2, dtype=np.float32) / (dim // 2)
    freqs = (np.float32(1.0) / max_positions) ** freqs
    x = np.outer(t_int.astype(np.int64), freqs.astype(np.int64))       # freqs.to(torch.int64) truncates
    return np.concatenate([np.cos(x), np.sin(x)], axis=1)


def float_positional_embedding(t: np.ndarray, dim: int, max_positions: int = 10000) -> np.ndarray:
    freqs = (1.0 / max_positions) ** (np.arange(dim // 2) / (dim // 2))
    x = np.outer(t.astype(np.float64), freqs)
    return np.concatenate([np.cos(x), np.sin(x)], axis=1)


def test_time_embeddings_match_their_transcriptions():
    t = np.arange(50)
    ours = np.asarray(positional_embedding(jnp.asarray(t, jnp.float32), 64, kind="cleandiffuser"))
    np.testing.assert_allclose(ours, cleandiffuser_positional_embedding(t, 64), atol=1e-6)
    np.testing.assert_array_equal(ours[:, 1:32], 1.0)               # only the first frequency survives
    np.testing.assert_array_equal(ours[:, 33:], 0.0)
    np.testing.assert_allclose(np.asarray(positional_embedding(jnp.asarray(t, jnp.float32), 64)),
                               float_positional_embedding(t, 64), atol=2e-5)
    with pytest.raises(ValueError, match="unknown time_embedding"):
        positional_embedding(jnp.zeros(3), 8, kind="learned")


@pytest.mark.slow
@pytest.mark.parametrize("network", ["dql", "pearce"])
def test_time_embedding_switch_reaches_the_network(network):
    cfg = diffusion.default_config()
    cfg.network, cfg.hidden = network, 32
    outs = {}
    for kind in ("float", "cleandiffuser"):
        cfg.time_embedding = kind
        den = diffusion.Denoiser.from_config(cfg, ACT)
        assert den.network.time_embedding == kind
        params = den.init(jax.random.PRNGKey(0), OBS)
        x, obs = jnp.ones((3, ACT)), jnp.ones((3, OBS))
        outs[kind] = den.predict_x0(params, x, jnp.array([0, 7, 44]), obs)
    assert float(jnp.abs(outs["float"] - outs["cleandiffuser"]).max()) > 1e-4
    cfg.time_embedding = "learned"
    with pytest.raises(ValueError, match="unknown time_embedding"):
        diffusion.Denoiser.from_config(cfg, ACT)


def edp_agent(**overrides):
    cfg = edp.default_config()
    cfg.diffusion.hidden, cfg.diffusion.sampling_steps, cfg.critic_hidden, cfg.num_candidates = 32, 3, 32, 4
    cfg.update(overrides)
    return edp.EDPAgent.create(cfg, LossWeights(gamma=0.0, eta=1.0), jax.random.PRNGKey(0), OBS, ACT)


@pytest.mark.slow
def test_edp_q_term_action_is_unclipped_by_default():
    obs = jax.random.normal(jax.random.PRNGKey(1), (B, OBS))
    act = jnp.tanh(obs[:, :ACT])
    key = jax.random.PRNGKey(2)
    for clip in (False, True):
        agent = edp_agent(q_action_clip=clip)
        params = jax.tree.map(lambda p: p + 3.0 if p.ndim == 1 else p, agent.actor_params)   # push x0 outside
        x_a, t_a, _ = agent.denoiser.noise(key, act)
        x0 = agent.denoiser.predict_x0(params, x_a, t_a, obs)
        assert float(jnp.abs(x0).max()) > 1.5
        got = agent.policy_action(params, obs, act, key)
        np.testing.assert_array_equal(got, jnp.clip(x0, -1, 1) if clip else x0)
    assert edp.default_config().q_action_clip is False


@pytest.mark.slow
def test_ema_stays_at_the_initial_weights_until_ema_start():
    obs = jax.random.normal(jax.random.PRNGKey(1), (B, OBS))
    batch = {"observations": obs, "actions": jnp.tanh(obs[:, :ACT]), "rewards": jnp.ones(B),
             "next_observations": obs, "terminals": jnp.zeros(B)}
    for before in ("init", "copy"):
        agent = edp_agent(ema_start=4, ema_every=1, ema_rate=0.5, ema_before_start=before)
        init = agent.actor_params
        for i in range(3):                                     # steps 1..3 < ema_start
            agent, _ = agent.update(batch, jax.random.PRNGKey(i))
        expected = init if before == "init" else agent.actor_params
        chex.assert_trees_all_equal(agent.actor_ema, expected)
        assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(agent.actor_params), jax.tree.leaves(init)))
        prev = agent.actor_ema
        agent, _ = agent.update(batch, jax.random.PRNGKey(9))  # step 4: the first blend, 0.5 old + 0.5 new
        chex.assert_trees_all_close(agent.actor_ema, jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, prev,
                                                                  agent.actor_params), rtol=1e-6)
    assert edp.default_config().ema_before_start == "init" and edp.default_config().ema_start == 1000
    with pytest.raises(ValueError, match="unknown ema_before_start"):
        edp_agent(ema_before_start="zero")


def test_eigen_avg_is_the_mean_eigenvalue():
    a = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)
    x = jnp.ones((5, 3))
    got = C.batch_penalty("eigen_avg", C.linearize(lambda v: v @ a.T, x), jax.random.PRNGKey(0))
    exact = np.linalg.eigvalsh(0.5 * (np.asarray(a) + np.asarray(a).T)).mean()
    np.testing.assert_allclose(got, np.full(5, exact), rtol=1e-5)
    np.testing.assert_allclose(exact, np.trace(np.asarray(a)) / 3, rtol=1e-5)
    cfg = dbc.default_config()
    cfg.diffusion.contraction.penalty = "eigen_avg"
    diffusion.validate_config(cfg.diffusion)


def test_paper_configs_evaluate_50_episodes_and_clip_returns_as_the_official_code():
    from experiments.configs import d4rl_antmaze, d4rl_kitchen, d4rl_mujoco
    assert d4rl_mujoco.rl_config("x", 1.0, 1.0).eval_episodes == 50
    assert tuple(d4rl_kitchen.get_config("complete").eval_return_clip) == (0.0, 4.0)
    assert tuple(d4rl_antmaze.get_config("medium-play").eval_return_clip) == (0.0, 1.0)
    assert tuple(d4rl_mujoco.rl_config("x", 1.0, 1.0).eval_return_clip) == ()


def test_evaluation_clips_returns_before_the_normalised_score(minari_root):
    from cdp_jax.train import evaluation
    from cdp_jax.datasets import Normalizer, load_transitions
    _, info = load_transitions("local/toy/reach-v0")
    act = evaluation.grid_actor(lambda agent, obs, key: jnp.zeros(obs.shape[:-1] + (info.action_space.shape[0],)))
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    norm = Normalizer.from_info(info, "none")
    raw = evaluation.evaluate(jnp.zeros(1), act, info, norm, keys, 2)
    low, high = float(raw["return"][0]) - 5.0, float(raw["return"][0]) - 1.0
    clipped = evaluation.evaluate(jnp.zeros(1), act, info, norm, keys, 2, return_clip=(low, high))
    np.testing.assert_allclose(clipped["return"], raw["return"])                    # the raw return is kept
    np.testing.assert_allclose(clipped["normalized_score"], info.normalized_score(np.array([high])), rtol=1e-6)


def test_baselines_and_the_il_recipe_are_the_official_ones():
    from cdp_jax.agents import dql, idql
    d = dql.default_config()
    assert (d.diffusion.diffusion_steps, d.diffusion.sampler, d.diffusion.sampling_steps, d.num_candidates,
            d.candidate_temperature) == (10, "ddim", 5, 100, 0.5)
    i = idql.default_config()
    assert (i.diffusion.network, i.weight_decay, i.ema_every) == ("idql", 0.01, 5)
    from experiments.configs.pointmaze import get_config
    from cdp_jax.train.config import agent_config
    cfg = get_config()
    a = agent_config(cfg)
    assert (cfg.batch_size, cfg.obs_normalization, a.lr, a.cosine_lr, a.diffusion.network, a.diffusion.sampling_steps,
            a.diffusion.contraction.low_noise_fraction, a.ema_every, a.ema_rate) == (
        512, "minmax", 1e-3, False, "pearce", 50, 1.0, 1, 0.995)


@pytest.mark.slow
def test_idql_dropout_is_active_only_in_the_denoising_loss():
    cfg = diffusion.default_config()
    cfg.network, cfg.hidden = "idql", 32
    den = diffusion.Denoiser.from_config(cfg, ACT)
    params = den.init(jax.random.PRNGKey(0), OBS)
    x0, obs = jnp.ones((8, ACT)) * 0.2, jnp.ones((8, OBS))
    x_t, t, eps = den.noise(jax.random.PRNGKey(1), x0)
    losses = [float(den.denoising_loss(params, x_t, t, eps, x0, obs, dropout_key=jax.random.PRNGKey(k)))
              for k in (2, 3)]
    assert losses[0] != losses[1]                                    # dropout masks differ
    np.testing.assert_array_equal(den.predict_x0(params, x_t, t, obs), den.predict_x0(params, x_t, t, obs))


def test_minmax_normalisation_maps_the_dataset_range_to_the_unit_box():
    import types
    from cdp_jax.datasets import Normalizer
    info = types.SimpleNamespace(action_low=-np.ones(1), action_high=np.ones(1), act_dim=1, obs_dim=3,
                                 obs_min=np.array([0.0, -2.0, 5.0]), obs_max=np.array([4.0, 2.0, 5.0]),
                                 obs_mean=np.zeros(3), obs_std=np.ones(3))
    norm = Normalizer.from_info(info, "minmax")
    np.testing.assert_allclose(norm.obs(np.array([[0.0, -2.0, 5.0], [4.0, 2.0, 5.0]])),
                               [[-1, -1, -1], [1, 1, -1]])                # constant dims map to -1, as CleanDiffuser
    with pytest.raises(ValueError, match="unknown obs_normalization"):
        Normalizer.from_info(info, "zscore")
