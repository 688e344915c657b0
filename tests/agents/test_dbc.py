"""The DBC agent: learning, EMA, vmapping over a grid, and refusing bad configurations."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.agents import dbc
from cdp_jax.agents.base import LossWeights

OBS, ACT, B = 3, 2, 64


def small_config():
    cfg = dbc.default_config()
    cfg.diffusion.network, cfg.diffusion.hidden, cfg.diffusion.sampling_steps = "dql", 64, 10
    cfg.total_steps = 200
    return cfg


def batch(key):
    obs = jax.random.normal(key, (B, OBS))
    return {"observations": obs, "actions": jnp.tanh(obs[:, :ACT])}


def test_update_learns_and_tracks_ema():
    cfg = small_config()
    cfg.ema_rate = 0.9
    agent = dbc.DBCAgent.create(cfg, LossWeights(gamma=0.1), jax.random.PRNGKey(0), OBS, ACT)
    data = batch(jax.random.PRNGKey(1))
    first = None
    for i in range(200):
        agent, m = agent.update(data, jax.random.PRNGKey(i))
        first = first if first is not None else float(m["denoising_loss"])
    assert float(m["denoising_loss"]) < 0.5 * first and int(agent.step) == 200
    np.testing.assert_allclose(float(m["loss"]), float(m["denoising_loss"]) + 0.1 * float(m["contraction_loss"]), rtol=1e-5)
    chex.assert_trees_all_equal_shapes(agent.params, agent.ema_params)
    actions = agent.act(data["observations"], jax.random.PRNGKey(0))
    chex.assert_shape(actions, (B, ACT))
    assert float(jnp.mean(jnp.abs(actions - data["actions"]))) < 0.3


@pytest.mark.slow
def test_vmapped_grid_equals_members_run_alone():
    cfg = small_config()
    gammas = jnp.array([0.0, 0.5])
    data = batch(jax.random.PRNGKey(1))
    create = lambda g: dbc.DBCAgent.create(cfg, LossWeights(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
    grid = jax.vmap(create)(gammas)
    step = jax.jit(jax.vmap(lambda a, k: a.update(data, k), (0, None)))
    for i in range(3):
        grid, _ = step(grid, jax.random.PRNGKey(i))
    for g in range(2):
        alone = create(gammas[g])
        for i in range(3):
            alone, _ = alone.update(data, jax.random.PRNGKey(i))
        member = jax.tree.map(lambda x: x[g], grid)
        chex.assert_trees_all_close(member.params, alone.params, atol=1e-5)


@pytest.mark.slow
def test_gamma_zero_has_no_contraction_gradient_under_vmap_and_the_flag_off_drops_the_term():
    """γ is a leaf, so a vmapped γ = 0 member computes L_c and multiplies it by 0: its gradient must equal the one
    compiled without the term (the sweep's γ = 0 groups), while a γ > 0 member's must not."""
    cfg = small_config()
    data = batch(jax.random.PRNGKey(1))
    create = lambda g: dbc.DBCAgent.create(cfg, LossWeights(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
    grad = lambda a, on=True: jax.grad(lambda p: a.loss(p, data, jax.random.PRNGKey(3), on)[0])(a.params)
    grads = jax.vmap(grad)(jax.vmap(create)(jnp.array([0.0, 0.5])))
    plain = grad(create(0.0), False)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], grads), plain, atol=1e-6)
    diff = jax.tree.map(lambda x, y: float(jnp.abs(x[1] - y).max()), grads, plain)
    assert max(jax.tree.leaves(diff)) > 1e-4


@pytest.mark.slow
def test_gamma_drives_the_contraction_loss_down():
    """Trained from the same initialisation on the same batches, γ = 1 ends with a clearly smaller L_c than γ = 0."""
    cfg = small_config()
    data = batch(jax.random.PRNGKey(1))
    final = {}
    for gamma in (0.0, 1.0):
        agent = dbc.DBCAgent.create(cfg, LossWeights(gamma=gamma), jax.random.PRNGKey(0), OBS, ACT)
        for i in range(150):
            agent, m = agent.update(data, jax.random.PRNGKey(i))
        final[gamma] = float(agent.loss(agent.params, data, jax.random.PRNGKey(999))[1]["contraction_loss"])
    assert final[1.0] < 0.5 * final[0.0], final


@pytest.mark.parametrize("field,value,message", [
    ("diffusion.sampler", "euler", "unknown sampler"),
    ("diffusion.contraction.penalty", "nuclear", "unknown contraction penalty"),
    ("diffusion.sampling_steps", 51, "sampling_steps=51"),
    ("diffusion.prediction", "v", "unknown prediction"),
    ("diffusion.network", "transformer", "unknown network"),
    ("diffusion.network", "unet", "halves the chunk 2 times .* horizon 1 must be a multiple of 4"),
    ("diffusion.unet_dim_mult", (), "unet_dim_mult must be a non-empty tuple"),
    ("diffusion.unet_dim_mult", (1, 0), "unet_dim_mult must be a non-empty tuple"),
    ("diffusion.dit_depth", 0, "dit_heads and dit_depth must be >= 1"),
    ("lr", 0.0, r"agent_config.lr must be finite and > 0"),
    ("ema_rate", 1.5, r"agent_config.ema_rate must be in \[0, 1\]"),
    ("ema_every", 0, r"agent_config.ema_every must be >= 1"),
])
def test_bad_config_is_refused(field, value, message):
    cfg = small_config()
    node, leaf = cfg, field.split(".")
    for name in leaf[:-1]:
        node = node[name]
    node[leaf[-1]] = value
    with pytest.raises(ValueError, match=message):
        dbc.DBCAgent.create(cfg, LossWeights(), jax.random.PRNGKey(0), OBS, ACT)


def test_negative_gamma_is_refused():
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        dbc.DBCAgent.create(small_config(), LossWeights(gamma=-0.1), jax.random.PRNGKey(0), OBS, ACT)


def test_mismatched_shapes_are_refused():
    agent = dbc.DBCAgent.create(small_config(), LossWeights(), jax.random.PRNGKey(0), OBS, ACT)
    bad = {"observations": jnp.zeros((B, OBS + 1)), "actions": jnp.zeros((B, ACT))}
    with pytest.raises(ValueError, match="observations have width 4 but the agent was created for 3"):
        agent.update(bad, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="actions have width 3"):
        agent.update({"observations": jnp.zeros((B, OBS)), "actions": jnp.zeros((B, ACT + 1))}, jax.random.PRNGKey(0))


@pytest.mark.slow
def test_il_contraction_sub_batch_is_the_first_rows_of_the_denoising_samples():
    from cdp_jax.core import diffusion
    cfg = diffusion.default_config()
    cfg.hidden, cfg.contraction.low_noise_fraction = 16, 1.0
    den = diffusion.Denoiser.from_config(cfg, 2)
    params = den.init(jax.random.PRNGKey(0), 3)
    x0, obs = jnp.ones((8, 2)) * 0.3, jnp.arange(24.0).reshape(8, 3) / 24
    x_t, t, _ = den.noise(jax.random.PRNGKey(1), x0)
    key = jax.random.PRNGKey(2)
    full = den.contraction_loss(params, key, x0, obs, x_t, t)
    cfg.contraction.batch_fraction = 0.25
    part = diffusion.Denoiser.from_config(cfg, 2).contraction_loss(params, key, x0, obs, x_t, t)
    cfg.contraction.batch_fraction = 1.0
    expected = diffusion.Denoiser.from_config(cfg, 2).contraction_loss(params, key, x0[:2], obs[:2], x_t[:2], t[:2])
    np.testing.assert_allclose(part, expected, rtol=1e-6)
    assert abs(float(part) - float(full)) > 1e-7


def test_a_fixed_number_of_contraction_rows_is_the_first_rows_and_the_chunk_recipes_take_16():
    """``contraction.rows = k``: L_c on the first k rows, the same as a batch fraction that gives k rows; more rows
    than the batch take the whole batch; the chunk backbones' configs take 16, the Pearce MLP recipe all."""
    from cdp_jax.core import diffusion
    from experiments.configs.robomimic import get_config
    cfg = diffusion.default_config()
    cfg.hidden, cfg.contraction.low_noise_fraction = 16, 1.0
    den = lambda: diffusion.Denoiser.from_config(cfg, 2)
    params = den().init(jax.random.PRNGKey(0), 3)
    x0, obs = jnp.ones((8, 2)) * 0.3, jnp.arange(24.0).reshape(8, 3) / 24
    x_t, t, _ = den().noise(jax.random.PRNGKey(1), x0)
    key = jax.random.PRNGKey(2)
    whole = den().contraction_loss(params, key, x0, obs, x_t, t)
    cfg.contraction.batch_fraction = 0.25
    fraction = den().contraction_loss(params, key, x0, obs, x_t, t)
    cfg.contraction.batch_fraction, cfg.contraction.rows = 1.0, 2
    diffusion.validate_config(cfg)
    np.testing.assert_allclose(den().contraction_loss(params, key, x0, obs, x_t, t), fraction, rtol=1e-6)
    cfg.contraction.rows = 100
    np.testing.assert_allclose(den().contraction_loss(params, key, x0, obs, x_t, t), whole, rtol=1e-6)
    cfg.contraction.batch_fraction = 0.5
    with pytest.raises(ValueError, match="both pick the contraction rows; set one of them"):
        diffusion.validate_config(cfg)
    cfg.contraction.batch_fraction, cfg.contraction.rows = 1.0, -1
    with pytest.raises(ValueError, match="contraction.rows must be an integer >= 0"):
        diffusion.validate_config(cfg)
    rows = lambda arg: get_config(arg).agent_config.diffusion.contraction.rows
    assert (rows("lift,unet"), rows("lift,dit"), rows("lift-image,unet"), rows("lift")) == (16, 16, 16, 0)


@pytest.mark.parametrize("penalty, num_probes, batch_fraction", [
    ("frobenius", 0, 1.0), ("frobenius", 2, 1.0), ("hinge", 0, 1.0), ("frobenius", 1, 0.25), ("frobenius", 0, 0.3)])
@pytest.mark.slow
def test_one_linearisation_gives_the_denoising_and_contraction_losses_of_the_two_calls(penalty, num_probes,
                                                                                      batch_fraction):
    """The IL path shares the network's forward pass between both terms: same values and parameter gradients as
    :meth:`denoising_loss` + :meth:`contraction_loss`, which each run the network themselves; with a sub-batch
    (``batch_fraction``) the contraction rows' linearisation gives their denoising prediction and the other rows
    run the plain network."""
    from cdp_jax.core import diffusion
    cfg = diffusion.default_config()
    cfg.hidden, cfg.contraction.low_noise_fraction = 16, 1.0
    cfg.contraction.penalty, cfg.contraction.num_probes = penalty, num_probes
    cfg.contraction.batch_fraction = batch_fraction
    den = diffusion.Denoiser.from_config(cfg, 3)
    params = den.init(jax.random.PRNGKey(0), 4)
    x0, obs = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (8, 3))), jax.random.normal(jax.random.PRNGKey(2), (8, 4))
    x_t, t, eps = den.noise(jax.random.PRNGKey(3), x0)
    key = jax.random.PRNGKey(4)
    shared = lambda p: den.denoising_and_contraction_loss(p, key, x_t, t, eps, x0, obs)
    separate = lambda p: (den.denoising_loss(p, x_t, t, eps, x0, obs), den.contraction_loss(p, key, x0, obs, x_t, t))
    np.testing.assert_allclose(jnp.stack(shared(params)), jnp.stack(separate(params)), rtol=1e-5)
    total = lambda f: jax.grad(lambda p: f(p)[0] + 0.7 * f(p)[1])(params)
    chex.assert_trees_all_close(total(shared), total(separate), rtol=1e-4, atol=1e-6)
