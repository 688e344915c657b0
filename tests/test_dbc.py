"""The DBC agent: learning, EMA, vmapping over a grid, and refusing bad configurations."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cdp_jax.agents import dbc
from cdp_jax.agents.base import HParams

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
    agent = dbc.DBCAgent.create(cfg, HParams(gamma=0.1), jax.random.PRNGKey(0), OBS, ACT)
    data = batch(jax.random.PRNGKey(1))
    first = None
    for i in range(200):
        agent, m = agent.update(data, jax.random.PRNGKey(i))
        first = first if first is not None else float(m["bc_loss"])
    assert float(m["bc_loss"]) < 0.5 * first and int(agent.step) == 200
    np.testing.assert_allclose(float(m["loss"]), float(m["bc_loss"]) + 0.1 * float(m["contraction_loss"]), rtol=1e-5)
    chex.assert_trees_all_equal_shapes(agent.params, agent.ema_params)
    actions = agent.act(data["observations"], jax.random.PRNGKey(0))
    chex.assert_shape(actions, (B, ACT))
    assert float(jnp.mean(jnp.abs(actions - data["actions"]))) < 0.3


def test_vmapped_grid_equals_members_run_alone():
    cfg = small_config()
    gammas = jnp.array([0.0, 0.5])
    data = batch(jax.random.PRNGKey(1))
    create = lambda g: dbc.DBCAgent.create(cfg, HParams(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
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


def test_gamma_zero_has_no_contraction_gradient_under_vmap_and_the_flag_off_drops_the_term():
    """γ is a leaf, so a vmapped γ = 0 member computes L_c and multiplies it by 0: its gradient must equal the one
    compiled without the term (the sweep's γ = 0 groups), while a γ > 0 member's must not."""
    from cdp_jax.grid import with_contraction
    cfg = small_config()
    data = batch(jax.random.PRNGKey(1))
    create = lambda g: dbc.DBCAgent.create(cfg, HParams(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
    grad = lambda a: jax.grad(lambda p: a.loss(p, data, jax.random.PRNGKey(3))[0])(a.params)
    grads = jax.vmap(grad)(jax.vmap(create)(jnp.array([0.0, 0.5])))
    plain = grad(with_contraction(create(0.0), False))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], grads), plain, atol=1e-6)
    diff = jax.tree.map(lambda x, y: float(jnp.abs(x[1] - y).max()), grads, plain)
    assert max(jax.tree.leaves(diff)) > 1e-4


def test_lazy_contraction_is_the_term_on_every_kth_update_with_weight_k():
    """``contraction.every = 3``: updates 0 and 3 are the agent's own update at γ·3, the others its update compiled
    without the term (built here from ``update`` and ``with_contraction``, not from ``lazy_update``); in a vmapped
    grid, with the step index shared by the members."""
    from cdp_jax.datasets import Subsets, Transitions
    from cdp_jax.grid import lazy_update, make_train_chunk, with_contraction
    cfg = small_config()
    cfg.diffusion.contraction.every = 3
    data = batch(jax.random.PRNGKey(1))
    create = lambda g: dbc.DBCAgent.create(cfg, HParams(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
    lazy = jax.jit(jax.vmap(lazy_update, (0, None, None, None)))
    grid, expected = jax.vmap(create)(jnp.array([0.5, 2.0])), [create(0.5), create(2.0)]
    for step in range(6):
        key = jax.random.PRNGKey(step)
        grid, m = lazy(grid, data, key, step)
        assert np.isnan(np.asarray(m["contraction_loss"])).all() == (step % 3 != 0)
        for i, a in enumerate(expected):
            if step % 3 == 0:
                new, _ = a.replace(hp=HParams(gamma=a.hp.gamma * 3)).update(data, key)
                expected[i] = new.replace(hp=a.hp)
            else:
                expected[i] = with_contraction(a, False).update(data, key)[0].replace(config=a.config)
    for i, a in enumerate(expected):
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], grid.params), a.params, atol=1e-6)
    # The sweep's chunk: a chunk's mean L_c is over the updates that computed it, and the schedule follows the step.
    zeros = jnp.zeros(B)
    rows = Transitions(data["observations"], data["actions"], zeros, data["observations"], zeros, zeros, zeros)
    subsets = Subsets(idx=jnp.tile(jnp.arange(B, dtype=jnp.int32), (2, 1)), count=jnp.full(2, B, jnp.int32))
    chunk = make_train_chunk(rows, 16, 2)
    _, _, at0 = chunk(jax.vmap(create)(jnp.array([0.5, 2.0])), jnp.zeros(2, bool), subsets, jnp.arange(2), 0)
    _, _, at1 = chunk(jax.vmap(create)(jnp.array([0.5, 2.0])), jnp.zeros(2, bool), subsets, jnp.arange(2), 1)
    assert np.isfinite(np.asarray(at0["contraction_loss"])).all()              # step 0 computed it
    assert np.isnan(np.asarray(at1["contraction_loss"])).all()                 # steps 1 and 2 did not


def test_held_lazy_contraction_adds_the_last_computed_term_gradient_to_every_update():
    """``contraction.every = 3, lazy = "hold"``: on updates 0 and 3, γ∇L_c is computed (here as the gradient of
    the loss with the term minus the loss without it, on the same draw) and kept; every update applies the γ = 0
    loss's gradient plus the kept one through the optimizer (built here from ``loss`` and ``optimizer``, not from
    ``lazy_update``); in a vmapped grid with the step index shared."""
    from cdp_jax.grid import lazy_update, with_contraction
    cfg = small_config()
    cfg.diffusion.contraction.every, cfg.diffusion.contraction.lazy = 3, "hold"
    data = batch(jax.random.PRNGKey(1))
    create = lambda g: dbc.DBCAgent.create(cfg, HParams(gamma=g), jax.random.PRNGKey(0), OBS, ACT)
    chex.assert_trees_all_equal(create(0.5).held_contraction, jax.tree.map(jnp.zeros_like, create(0.5).params))
    lazy = jax.jit(jax.vmap(lazy_update, (0, None, None, None)))
    grid = jax.vmap(create)(jnp.array([0.5, 2.0]))
    tx = dbc.DBCAgent.optimizer(cfg)
    refs = [dict(agent=create(g), params=create(g).params, opt=create(g).opt_state, held=None) for g in (0.5, 2.0)]
    # The reference steps, each jitted (not the sweep's code; eager they took 30 s of op-by-op dispatch).
    term_grad = jax.jit(jax.grad(lambda p, on, off, k: on.loss(p, data, k)[0] - off.loss(p, data, k)[0]))
    off_grad = jax.jit(jax.grad(lambda p, off, k: off.loss(p, data, k)[0]))
    apply = jax.jit(lambda g, opt, p: (lambda u, o: (optax.apply_updates(p, u), o))(*tx.update(g, opt, p)))
    for step in range(6):
        key = jax.random.PRNGKey(step)
        grid, m = lazy(grid, data, key, step)
        assert np.isnan(np.asarray(m["contraction_loss"])).all() == (step % 3 != 0)
        for r in refs:
            on, off = r["agent"], with_contraction(r["agent"], False).replace(held_contraction=None)
            if step % 3 == 0:
                r["held"] = term_grad(r["params"], on, off, jax.random.fold_in(key, 7))
            g = jax.tree.map(jnp.add, off_grad(r["params"], off, key), r["held"])
            r["params"], r["opt"] = apply(g, r["opt"], r["params"])
    for i, r in enumerate(refs):
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], grid.params), r["params"], atol=1e-5)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], grid.held_contraction), r["held"], atol=1e-6)
    assert float(jnp.abs(jax.tree.leaves(refs[1]["held"])[0]).max()) > 1e-4     # the term is not empty


def test_the_held_contraction_gradient_is_checkpointed(tmp_path):
    """A resumed "hold" run needs the kept γ∇L_c (the next update may not recompute it): it is part of the state
    that :class:`cdp_jax.checkpoint.Checkpoints` saves and restores into a new agent's structure."""
    from cdp_jax.checkpoint import Checkpoints
    from cdp_jax.grid import lazy_update
    cfg = small_config()
    cfg.diffusion.contraction.every, cfg.diffusion.contraction.lazy = 3, "hold"
    agent = dbc.DBCAgent.create(cfg, HParams(gamma=2.0), jax.random.PRNGKey(0), OBS, ACT)
    trained = lazy_update(agent, batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), 0)[0]
    assert float(jnp.abs(jax.tree.leaves(trained.held_contraction)[0]).max()) > 0
    Checkpoints(str(tmp_path)).save(1, trained)
    restored = Checkpoints(str(tmp_path)).restore(1, agent)
    chex.assert_trees_all_equal(restored.held_contraction, trained.held_contraction)


def test_gamma_drives_the_contraction_loss_down():
    """Trained from the same initialisation on the same batches, γ = 1 ends with a clearly smaller L_c than γ = 0."""
    cfg = small_config()
    data = batch(jax.random.PRNGKey(1))
    final = {}
    for gamma in (0.0, 1.0):
        agent = dbc.DBCAgent.create(cfg, HParams(gamma=gamma), jax.random.PRNGKey(0), OBS, ACT)
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
    ("diffusion.contraction.every", 0, "contraction.every must be an integer >= 1"),
    ("diffusion.contraction.lazy", "sometimes", "unknown contraction.lazy 'sometimes'"),
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
        dbc.DBCAgent.create(cfg, HParams(), jax.random.PRNGKey(0), OBS, ACT)


def test_negative_gamma_is_refused():
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        dbc.DBCAgent.create(small_config(), HParams(gamma=-0.1), jax.random.PRNGKey(0), OBS, ACT)


def test_mismatched_shapes_are_refused():
    agent = dbc.DBCAgent.create(small_config(), HParams(), jax.random.PRNGKey(0), OBS, ACT)
    bad = {"observations": jnp.zeros((B, OBS + 1)), "actions": jnp.zeros((B, ACT))}
    with pytest.raises(ValueError, match="observations have width 4 but the agent was created for 3"):
        agent.update(bad, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="actions have width 3"):
        agent.update({"observations": jnp.zeros((B, OBS)), "actions": jnp.zeros((B, ACT + 1))}, jax.random.PRNGKey(0))


def test_il_contraction_sub_batch_is_the_first_rows_of_the_denoising_samples():
    from cdp_jax import diffusion
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


@pytest.mark.parametrize("penalty, num_probes, batch_fraction", [
    ("frobenius", 0, 1.0), ("frobenius", 2, 1.0), ("hinge", 0, 1.0), ("frobenius", 1, 0.25), ("frobenius", 0, 0.3)])
def test_one_linearisation_gives_the_denoising_and_contraction_losses_of_the_two_calls(penalty, num_probes,
                                                                                      batch_fraction):
    """The IL path shares the network's forward pass between both terms: same values and parameter gradients as
    :meth:`denoising_loss` + :meth:`contraction_loss`, which each run the network themselves; with a sub-batch
    (``batch_fraction``) the contraction rows' linearisation gives their denoising prediction and the other rows
    run the plain network."""
    from cdp_jax import diffusion
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
