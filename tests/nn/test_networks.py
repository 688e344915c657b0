"""Network building blocks against their library references."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.nn.layers import mish


def test_mish_equals_jax_nn_mish_and_its_gradient():
    x = jnp.concatenate([jnp.linspace(-40.0, 40.0, 4001), jnp.array([-1e-6, 0.0, 1e-6, 19.99, 20.0, 20.01])])
    np.testing.assert_allclose(mish(x), jax.nn.mish(x), rtol=2e-6, atol=1e-6)
    grad = jax.vmap(jax.grad(mish))(x)
    ref = jax.vmap(jax.grad(jax.nn.mish))(x)
    np.testing.assert_allclose(grad, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("time_embedding", ["float", "cleandiffuser"])
def test_dql_mlp_sampler_form_equals_the_network(time_embedding):
    """The sampler's split first layer (observation part once, level part per step) is the same function."""
    from cdp_jax.nn.networks import DQLMlp
    net = DQLMlp(3, time_embedding=time_embedding)
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 3))
    obs = jax.random.normal(jax.random.PRNGKey(1), (7, 11))
    params = net.init(jax.random.PRNGKey(2), x, jnp.zeros(7), obs)
    for level in (0, 13, 49):
        bias = net.apply(params, obs, method="observation_bias") + net.apply(params, jnp.asarray(level),
                                                                              method="level_bias")
        np.testing.assert_allclose(net.apply(params, x, bias, method="from_biases"),
                                   net.apply(params, x, jnp.full(7, level), obs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prediction", ["x0", "eps"])
def test_sampling_with_the_split_network_equals_sampling_through_predict_x0(prediction):
    from cdp_jax.core import diffusion, samplers
    cfg = diffusion.default_config()
    cfg.prediction = prediction
    den = diffusion.Denoiser.from_config(cfg, 3)
    params = den.init(jax.random.PRNGKey(0), 11)
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 11))
    key = jax.random.PRNGKey(2)
    reference = samplers.sample(lambda x, t: den.predict_x0(params, x, jnp.full(x.shape[:-1], t), obs), den.schedule,
                                key, (64, 3), method=cfg.sampler, num_steps=cfg.sampling_steps,
                                temperature=cfg.temperature, clip=cfg.clip or None)
    np.testing.assert_allclose(den.sample(params, key, obs), reference, atol=2e-5)


@pytest.mark.parametrize("spatial, kernel, strides, padding, dilation", [
    ((4,), (5,), (1,), ((2, 2),), (1,)), ((2,), (5,), (1,), ((2, 2),), (1,)), ((8,), (3,), (2,), ((1, 1),), (1,)),
    ((4,), (4,), (1,), ((2, 2),), (2,)), ((8,), (1,), (1,), "SAME", (1,)),                        # the UNet's
    ((9, 9), (7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1)), ((5, 6), (3, 3), (1, 1), "SAME", (1, 1)),   # the ResNet's
    ((6, 6), (1, 1), (2, 2), "VALID", (1, 1))])
@pytest.mark.slow
def test_convolutions_equal_lax_with_their_gradients_and_run_as_matmuls_on_the_cpu(spatial, kernel, strides, padding,
                                                                                     dilation):
    """cdp_jax's convolution (a matmul over shifted copies on the CPU, where XLA's convolution in a scan is 25-80x
    slower) gives lax.conv_general_dilated's values and gradients, and traces to no convolution on the CPU."""
    import flax.linen as nn
    from cdp_jax.nn.chunk_networks import _Upsample1d
    from cdp_jax.nn.convolution import conv_general_dilated
    x = jax.random.normal(jax.random.PRNGKey(0), (3, *spatial, 6))
    w = jax.random.normal(jax.random.PRNGKey(1), (*kernel, 6, 5))
    dn = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}[len(spatial)]
    ours = lambda x, w: conv_general_dilated(x, w, strides, padding, lhs_dilation=dilation, dimension_numbers=dn)
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=dilation,
                                                    dimension_numbers=dn)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
    loss = lambda f: jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(x, w)
    for got, want in zip(loss(ours), loss(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(ours)(x, w))
    if dilation == (2,):    # Upsample1d: flax's ConvTranspose(features, (4,), (2,), "SAME"), its parameters too
        params = _Upsample1d(5).init(jax.random.PRNGKey(2), x)
        flax_out = nn.ConvTranspose(5, (4,), (2,), padding="SAME").apply(params, x)
        chex.assert_shape(flax_out, (3, 2 * spatial[0], 5))
        np.testing.assert_allclose(_Upsample1d(5).apply(params, x), flax_out, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_chunk_networks_map_flattened_chunks_and_use_the_observation():
    from cdp_jax.nn.chunk_networks import ChiUNet1d, DiT1d
    horizon, act, obs_dim = 8, 3, 10
    x = jax.random.normal(jax.random.PRNGKey(0), (5, horizon * act))
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, obs_dim))
    t = jnp.arange(5)
    for net in (ChiUNet1d(horizon * act, horizon, model_dim=16, emb_dim=16), DiT1d(horizon * act, horizon, 32, 4, 2)):
        params = jax.jit(net.init)(jax.random.PRNGKey(2), x, t, obs)     # one compilation, not one per operation
        if isinstance(net, DiT1d):      # adaLN-Zero: the output starts at exactly zero; perturb the zero layers
            params = jax.tree.map(lambda p: p + 0.01, params)
        apply = jax.jit(net.apply)                      # one shape, one compilation per network
        out = apply(params, x, t, obs)
        chex.assert_shape(out, (5, horizon * act))
        other = apply(params, x.at[0].set(3.0 * x[0] + 1.0), t.at[0].set(4), obs.at[0].set(-obs[0]))
        np.testing.assert_allclose(other[1:], out[1:], atol=1e-5)     # rows independent: row 0 moved, no other
        assert float(jnp.abs(other[0] - out[0]).max()) > 1e-4
        assert float(jnp.abs(apply(params, x, t, obs + 1.0) - out).max()) > 1e-4
        assert float(jnp.abs(apply(params, x, t + 3, obs) - out).max()) > 1e-4
    from cdp_jax.nn.networks import make_denoiser_network
    with pytest.raises(ValueError, match="multiple of 4"):
        make_denoiser_network("unet", 6 * act, chunk_horizon=6)
    two_levels = make_denoiser_network("unet", 6 * act, 8, chunk_horizon=6, unet_dim_mult=(1, 3))    # halves once
    params = jax.eval_shape(two_levels.init, jax.random.PRNGKey(0), jnp.zeros((1, 6 * act)), jnp.zeros(1),
                            jnp.zeros((1, 2)))
    blocks = sorted(k for k in params["params"] if k.startswith("_FiLMResBlock"))
    assert len(blocks) == 2 * 2 + 2 + 2                         # two levels down, the middle, one level up
    assert "_Upsample1d_0" in params["params"] and "_Upsample1d_1" not in params["params"]
    widths = {k.shape[-1] for k in jax.tree.leaves(params["params"]["_FiLMResBlock_2"])}
    assert max(widths) == 2 * 8 * 3, widths                    # level 1: 8 x 3 channels (FiLM: scale and shift)
    dit = make_denoiser_network("dit", 2 * act, 16, chunk_horizon=2, dit_heads=4, dit_depth=3)
    assert (dit.heads, dit.depth) == (4, 3)
    with pytest.raises(ValueError, match="multiple of the chunk horizon"):
        make_denoiser_network("dit", 7, chunk_horizon=2)


@pytest.mark.slow
def test_a_dbc_update_runs_on_a_unet_chunk_with_probe_contraction():
    from cdp_jax.agents import dbc
    from cdp_jax.agents.base import LossWeights
    cfg = dbc.default_config()
    d = cfg.diffusion
    d.network, d.hidden, d.chunk_horizon, d.diffusion_steps, d.sampling_steps = "unet", 8, 4, 10, 1
    d.unet_dim_mult = (1, 2)             # two levels: every block kind, a third less to compile than three
    d.contraction.num_probes = 1
    agent = dbc.DBCAgent.create(cfg, LossWeights(gamma=0.1), jax.random.PRNGKey(0), 6, 4 * 2)
    batch = {"observations": jnp.ones((8, 6)), "actions": jnp.zeros((8, 8))}
    agent, metrics = agent.update(batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(float(metrics["loss"]), float(metrics["denoising_loss"])
                               + 0.1 * float(metrics["contraction_loss"]), rtol=1e-5)
    assert float(metrics["contraction_loss"]) > 0            # the probe estimate ran (a zero would mean it was off)


@pytest.mark.slow
@pytest.mark.parametrize("network, horizon", [("unet", 4), ("dit", 4), ("pearce", 2)])
def test_backbones_treat_rows_independently_so_a_sub_batch_shares_its_forward_pass(network, horizon):
    """``batch_fraction < 1`` takes the contraction rows' denoising prediction from their linearisation and runs
    the other rows apart (:meth:`Denoiser.denoising_and_contraction_loss`); that is exact only if no row sees
    another (no batch statistics): the two losses equal the separate calls' on the UNet, the DiT and the Pearce
    MLP (the DQL MLP: tests/test_dbc.py)."""
    from cdp_jax.core import diffusion
    cfg = diffusion.default_config()
    cfg.network, cfg.hidden, cfg.chunk_horizon, cfg.diffusion_steps, cfg.sampling_steps = network, 8, horizon, 10, 1
    cfg.unet_dim_mult, cfg.dit_heads, cfg.dit_depth = (1, 2), 2, 2
    cfg.contraction.low_noise_fraction, cfg.contraction.batch_fraction, cfg.contraction.num_probes = 1.0, 0.25, 1
    den = diffusion.Denoiser.from_config(cfg, horizon * 2)
    params = den.init(jax.random.PRNGKey(0), 6)
    x0 = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (8, horizon * 2)))
    obs = jax.random.normal(jax.random.PRNGKey(2), (8, 6))
    x_t, t, eps = den.noise(jax.random.PRNGKey(3), x0)
    key = jax.random.PRNGKey(4)
    shared = jax.jit(lambda p: jnp.stack(den.denoising_and_contraction_loss(p, key, x_t, t, eps, x0, obs)))
    separate = jax.jit(lambda p: jnp.stack([den.denoising_loss(p, x_t, t, eps, x0, obs),
                                            den.contraction_loss(p, key, x0, obs, x_t, t)]))
    np.testing.assert_allclose(shared(params), separate(params), rtol=1e-5)
