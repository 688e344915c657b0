"""Denoisers over action chunks (flax.linen): Diffusion Policy's conditional 1-D UNet and a 1-D DiT.

Same interface as :mod:`cdp_jax.nn.networks`: ``(x_t [..., H * act_dim], t [...], obs [..., obs_dim]) -> [...,
H * act_dim]``, where the chunk is flattened (so the diffusion, sampler and contraction code see one vector per
sample) and ``obs`` is the flattened observation history. Each network reshapes the chunk to ``[..., H, act_dim]``.

* :class:`ChiUNet1d`: Chi et al.'s ``ConditionalUnet1D`` as CleanDiffuser's ``ChiUNet1d`` builds it (model_dim 256,
  time embedding 256, dim_mult (1, 2, 2), kernel 5, GroupNorm 8, Mish), FiLM conditioning of every residual block on
  ``[time embedding, obs history]``.
* :class:`DiT1d`: CleanDiffuser's ``DiT1d`` (d_model 384, 12 heads, depth 6): per-step tokens with fixed sinusoidal
  positions, adaLN-Zero blocks conditioned on time + observation embedding.
"""
from __future__ import annotations


import flax.linen as nn
import jax.numpy as jnp

from cdp_jax.nn.convolution import Conv as Conv1d, conv_general_dilated
from cdp_jax.nn.layers import mish, positional_embedding




class _Upsample1d(nn.Module):
    """Diffusion Policy's ``Upsample1d``, ``ConvTranspose1d(C, C, 4, stride 2, padding 1)``: ``[B, W, C_in]`` ->
    ``[B, 2W, features]``; the parameters of flax's ``nn.ConvTranspose(features, (4,), (2,), "SAME")`` and its
    output, computed as a convolution of the zero-dilated input (:func:`cdp_jax.nn.convolution.conv_general_dilated`;
    the gradient of ``nn.ConvTranspose`` took 144 ms instead of 10 on the CPU)."""

    features: int

    @nn.compact
    def __call__(self, h):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, h.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv_general_dilated(h, kernel, (1,), ((2, 2),), lhs_dilation=(2,)) + bias


def _to_chunk(x, horizon: int):
    lead = x.shape[:-1]
    return x.reshape((-1, horizon, x.shape[-1] // horizon)), lead


class _ConvBlock(nn.Module):
    """Conv1d (same padding) -> GroupNorm(8) -> Mish on ``[B, H, C]``."""

    features: int
    kernel: int = 5

    @nn.compact
    def __call__(self, h):
        h = Conv1d(self.features, (self.kernel,), padding="SAME")(h)
        return mish(nn.GroupNorm(num_groups=8)(h))


class _FiLMResBlock(nn.Module):
    """Diffusion Policy's ``ConditionalResidualBlock1D``: two conv blocks, the first output scaled and shifted by
    ``Linear(Mish(cond))``, plus a 1x1-conv residual when the width changes."""

    features: int
    kernel: int = 5

    @nn.compact
    def __call__(self, h, cond):
        out = _ConvBlock(self.features, self.kernel)(h)
        film = nn.Dense(2 * self.features)(mish(cond))[:, None, :]
        scale, bias = jnp.split(film, 2, axis=-1)
        out = _ConvBlock(self.features, self.kernel)(scale * out + bias)
        skip = h if h.shape[-1] == self.features else Conv1d(self.features, (1,))(h)
        return out + skip


class ChiUNet1d(nn.Module):
    """``(x_t [..., H * a], t [...], obs [..., obs_dim]) -> [..., H * a]``; ``H`` a multiple of
    ``2 ** (len(dim_mult) - 1)`` (one halving per level after the first: 4 for Diffusion Policy's three levels)."""

    act_dim: int                  # flattened chunk width, horizon * per-step action dim
    horizon: int
    model_dim: int = 256
    emb_dim: int = 256
    dim_mult: tuple = (1, 2, 2)
    kernel: int = 5
    time_embedding: str = "float"

    @nn.compact
    def __call__(self, x, t, obs):
        h, lead = _to_chunk(x, self.horizon)
        t = jnp.asarray(t, jnp.float32).reshape(-1)
        temb = positional_embedding(t, self.emb_dim, kind=self.time_embedding)
        temb = nn.Dense(self.emb_dim)(mish(nn.Dense(4 * self.emb_dim)(temb)))
        cond = jnp.concatenate([temb, obs.reshape(h.shape[0], -1)], axis=-1)
        dims = [self.model_dim * m for m in self.dim_mult]
        skips = []
        for level, dim in enumerate(dims):
            h = _FiLMResBlock(dim, self.kernel)(h, cond)
            h = _FiLMResBlock(dim, self.kernel)(h, cond)
            skips.append(h)
            if level < len(dims) - 1:
                h = Conv1d(dim, (3,), strides=(2,), padding=((1, 1),))(h)            # Downsample1d
        for _ in range(2):
            h = _FiLMResBlock(dims[-1], self.kernel)(h, cond)
        for level in reversed(range(len(dims) - 1)):        # the first skip stays unused, as in Diffusion Policy
            h = jnp.concatenate([h, skips.pop()], axis=-1)
            h = _FiLMResBlock(dims[level], self.kernel)(h, cond)
            h = _FiLMResBlock(dims[level], self.kernel)(h, cond)
            h = _Upsample1d(dims[level])(h)
        h = _ConvBlock(dims[0], self.kernel)(h)
        out = Conv1d(x.shape[-1] // self.horizon, (1,))(h)
        return out.reshape(lead + (x.shape[-1],))


class _DiTBlock(nn.Module):
    d_model: int
    heads: int

    @nn.compact
    def __call__(self, h, c):
        mod = nn.Dense(6 * self.d_model, kernel_init=nn.initializers.zeros)(nn.silu(c))[:, None, :]
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
        a = nn.LayerNorm(use_scale=False, use_bias=False)(h) * (1 + scale1) + shift1
        h = h + gate1 * nn.MultiHeadDotProductAttention(num_heads=self.heads)(a, a)
        m = nn.LayerNorm(use_scale=False, use_bias=False)(h) * (1 + scale2) + shift2
        m = nn.Dense(self.d_model)(nn.gelu(nn.Dense(4 * self.d_model)(m), approximate=True))
        return h + gate2 * m


class DiT1d(nn.Module):
    """``(x_t [..., H * a], t [...], obs [..., obs_dim]) -> [..., H * a]``: one token per chunk step."""

    act_dim: int                  # flattened chunk width
    horizon: int
    d_model: int = 384
    heads: int = 12
    depth: int = 6
    time_embedding: str = "float"
    emb_dim: int = 256

    @nn.compact
    def __call__(self, x, t, obs):
        h, lead = _to_chunk(x, self.horizon)
        h = nn.Dense(self.d_model)(h) + positional_embedding(jnp.arange(self.horizon), self.d_model)
        t = jnp.asarray(t, jnp.float32).reshape(-1)
        temb = positional_embedding(t, self.emb_dim, kind=self.time_embedding)
        c = nn.Dense(self.d_model)(mish(nn.Dense(self.d_model)(temb)))
        c = c + nn.Dense(self.d_model)(nn.relu(nn.Dense(256)(obs.reshape(h.shape[0], -1))))    # MLPCondition
        for _ in range(self.depth):
            h = _DiTBlock(self.d_model, self.heads)(h, c)
        shift, scale = jnp.split(nn.Dense(2 * self.d_model, kernel_init=nn.initializers.zeros)(nn.silu(c))[:, None],
                                 2, axis=-1)
        h = nn.LayerNorm(use_scale=False, use_bias=False)(h) * (1 + scale) + shift
        out = nn.Dense(x.shape[-1] // self.horizon, kernel_init=nn.initializers.zeros)(h)
        return out.reshape(lead + (x.shape[-1],))
