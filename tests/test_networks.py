"""Network building blocks against their library references."""
import jax
import jax.numpy as jnp
import numpy as np

from cdp_jax.networks import mish


def test_mish_equals_jax_nn_mish_and_its_gradient():
    x = jnp.concatenate([jnp.linspace(-40.0, 40.0, 4001), jnp.array([-1e-6, 0.0, 1e-6, 19.99, 20.0, 20.01])])
    np.testing.assert_allclose(mish(x), jax.nn.mish(x), rtol=2e-6, atol=1e-6)
    grad = jax.vmap(jax.grad(mish))(x)
    ref = jax.vmap(jax.grad(jax.nn.mish))(x)
    np.testing.assert_allclose(grad, ref, rtol=1e-5, atol=1e-5)
