"""Denoiser networks (flax.linen). Each maps ``(x_t [..., act_dim], t [...], obs [..., obs_dim])`` to
``[..., act_dim]``; whether the output is read as x0 or eps is the job of :mod:`cdp_jax.core.diffusion`.

``t`` is the integer noise-level index ``0..T-1`` (as a float), as the official code feeds it. The time embedding
is selectable (``time_embedding``): ``"float"`` (default) is the sinusoidal embedding the official networks mean to
compute; ``"cleandiffuser"`` is what they compute (see :func:`positional_embedding`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp

from cdp_jax.nn.chunk_networks import ChiUNet1d, DiT1d
from cdp_jax.nn.layers import mish, positional_embedding

if TYPE_CHECKING:          # imported on use below
    import distrax

NETWORKS = ("dql", "pearce", "idql", "unet", "dit")


class DQLMlp(nn.Module):
    """Diffusion-QL / EDP actor: time MLP (emb -> 2 emb -> emb, Mish) and a 3 x ``hidden`` Mish trunk over
    ``[x_t, t_emb, obs]``."""

    act_dim: int
    hidden: int = 256
    emb_dim: int = 64
    time_embedding: str = "float"

    @nn.compact
    def __call__(self, x, t, obs):
        temb = positional_embedding(t, self.emb_dim, kind=self.time_embedding)
        temb = nn.Dense(self.emb_dim)(mish(nn.Dense(2 * self.emb_dim)(temb)))
        h = jnp.concatenate([x, temb, obs], axis=-1)
        for _ in range(3):
            h = mish(nn.Dense(self.hidden)(h))
        return nn.Dense(self.act_dim)(h)

    # The sampler's form of ``__call__`` (``Denoiser.sample``): the first trunk layer ``Dense_2`` over
    # ``[x, t_emb, obs]`` is ``x W_x + (t_emb W_t) + (obs W_o + b)``; the observation part is computed once per
    # sampling call and the level part once per solver step for the whole batch, which removes the time MLP and all
    # but the action's rows of the first layer from every step. Equal to ``__call__`` up to float rounding (the sum's order;
    # tests/test_networks.py). The layer names are flax's: ``Dense_0`` is the time MLP's outer layer (created
    # first), ``Dense_1`` its inner one.

    def observation_bias(self, obs):
        """``obs [..., obs_dim]`` -> ``obs W_o + b [..., hidden]``."""
        first = self.variables["params"]["Dense_2"]
        return obs @ first["kernel"][self.act_dim + self.emb_dim:] + first["bias"]

    def level_bias(self, t):
        """``t [...]`` -> ``t_emb(t) W_t [..., hidden]``."""
        p = self.variables["params"]
        temb = positional_embedding(t, self.emb_dim, kind=self.time_embedding)
        temb = _dense(p["Dense_0"], mish(_dense(p["Dense_1"], temb)))
        return temb @ p["Dense_2"]["kernel"][self.act_dim:self.act_dim + self.emb_dim]

    def from_biases(self, x, bias):
        """``x [..., act_dim]`` and ``bias`` = observation_bias + level_bias (broadcast) -> ``[..., act_dim]``."""
        p = self.variables["params"]
        h = mish(x @ p["Dense_2"]["kernel"][:self.act_dim] + bias)
        for name in ("Dense_3", "Dense_4"):
            h = mish(_dense(p[name], h))
        return _dense(p["Dense_5"], h)


def _dense(layer: dict, h: jax.Array) -> jax.Array:
    """``nn.Dense``'s computation from its parameter dict."""
    return h @ layer["kernel"] + layer["bias"]


class _FCBlock(nn.Module):
    features: int

    @nn.compact
    def __call__(self, h):
        h = nn.Dense(self.features)(h)
        lead = h.shape[:-1]
        h = nn.GroupNorm(num_groups=8)(h.reshape(-1, self.features)).reshape(*lead, self.features)
        return nn.gelu(h)


class PearceMlp(nn.Module):
    """Pearce et al. residual MLP (CleanDiffuser ``PearceMlp``): embeddings of x, t and obs enter the
    first block; raw ``x`` and ``t`` are re-injected into every block; residuals are scaled by 1/1.414."""

    act_dim: int
    hidden: int = 512
    emb_dim: int = 128
    time_embedding: str = "float"

    @nn.compact
    def __call__(self, x, t, obs):
        temb = positional_embedding(t, self.emb_dim, kind=self.time_embedding)
        tcol = jnp.asarray(t, jnp.float32)[..., None] / 1000.0
        xemb = nn.Dense(self.emb_dim)(x)
        oemb = nn.Dense(self.emb_dim)(obs)
        h1 = _FCBlock(self.hidden)(jnp.concatenate([xemb, temb, oemb], -1))
        h2 = _FCBlock(self.hidden)(jnp.concatenate([h1 / 1.414, x, tcol], -1)) + h1 / 1.414
        h3 = _FCBlock(self.hidden)(jnp.concatenate([h2 / 1.414, x, tcol], -1)) + h2 / 1.414
        return nn.Dense(self.act_dim)(jnp.concatenate([h3, x, tcol], -1))


class IDQLMlp(nn.Module):
    """IDQL's residual MLP (CleanDiffuser ``IDQLMlp``): time MLP as DQL's, ``Dense(hidden)`` over
    ``[x_t, t_emb, obs]``, ``num_blocks`` residual blocks ``h + Dense(Mish(Dense_4h(LayerNorm(Dropout(h)))))``,
    and ``Dense(act_dim)(relu(h))``. Dropout is active only with ``train=True`` (the denoising loss)."""

    act_dim: int
    hidden: int = 256
    emb_dim: int = 64
    num_blocks: int = 3
    dropout: float = 0.1
    time_embedding: str = "float"

    @nn.compact
    def __call__(self, x, t, obs, train: bool = False):
        temb = positional_embedding(t, self.emb_dim, kind=self.time_embedding)
        temb = nn.Dense(self.emb_dim)(mish(nn.Dense(2 * self.emb_dim)(temb)))
        h = nn.Dense(self.hidden)(jnp.concatenate([x, temb, obs], axis=-1))
        for _ in range(self.num_blocks):
            r = nn.LayerNorm()(nn.Dropout(self.dropout, deterministic=not train)(h))
            h = h + nn.Dense(self.hidden)(mish(nn.Dense(4 * self.hidden)(r)))
        return nn.Dense(self.act_dim)(nn.relu(h))


def make_denoiser_network(name: str, act_dim: int, hidden: int | None = None, time_embedding: str = "float",
                          chunk_horizon: int = 1, unet_dim_mult: tuple = (1, 2, 2), dit_heads: int = 12,
                          dit_depth: int = 6) -> nn.Module:
    """The denoiser network by name, with its paper defaults unless ``hidden`` is given: ``"dql"``, ``"pearce"``,
    ``"idql"`` (one action), ``"unet"`` (channels ``hidden * unet_dim_mult`` per level) and ``"dit"``
    (``dit_heads`` heads, ``dit_depth`` blocks) on chunks of ``chunk_horizon`` actions flattened into ``act_dim``
    (:mod:`cdp_jax.nn.chunk_networks`)."""
    if name in ("unet", "dit"):
        if act_dim % chunk_horizon:
            raise ValueError(f"network {name!r} needs act_dim {act_dim} to be a multiple of the chunk horizon "
                             f"{chunk_horizon}")
        halvings = len(unet_dim_mult) - 1
        if name == "unet" and chunk_horizon % 2 ** halvings:
            raise ValueError(f"the UNet halves the chunk {halvings} times (unet_dim_mult {tuple(unet_dim_mult)}): the "
                             f"horizon {chunk_horizon} must be a multiple of {2 ** halvings} (Diffusion Policy: 16; "
                             f"set --config.sequence.horizon)")
        if name == "unet":
            return ChiUNet1d(act_dim, chunk_horizon, hidden or 256, dim_mult=tuple(unet_dim_mult),
                             time_embedding=time_embedding)
        return DiT1d(act_dim, chunk_horizon, hidden or 384, dit_heads, dit_depth, time_embedding=time_embedding)
    if name == "dql":
        return DQLMlp(act_dim, hidden or 256, time_embedding=time_embedding)
    if name == "pearce":
        return PearceMlp(act_dim, hidden or 512, time_embedding=time_embedding)
    if name == "idql":
        return IDQLMlp(act_dim, hidden or 256, time_embedding=time_embedding)
    raise ValueError(f"unknown denoiser network {name!r}; choose one of {NETWORKS}")


class QNetwork(nn.Module):
    """One DQL critic head: Linear -> LayerNorm -> Tanh, then 2 x [Linear -> LayerNorm -> Mish], Linear(1).
    ``(obs [..., obs_dim], act [..., act_dim]) -> [...]``."""

    hidden: int = 256

    @nn.compact
    def __call__(self, obs, act):
        h = jnp.tanh(nn.LayerNorm()(nn.Dense(self.hidden)(jnp.concatenate([obs, act], -1))))
        for _ in range(2):
            h = mish(nn.LayerNorm()(nn.Dense(self.hidden)(h)))
        return nn.Dense(1)(h)[..., 0]


class TwinQ(nn.Module):
    """Two independent :class:`QNetwork` heads: ``(obs, act) -> (q1, q2)``, each ``[...]``."""

    hidden: int = 256

    @nn.compact
    def __call__(self, obs, act):
        return QNetwork(self.hidden, name="q1")(obs, act), QNetwork(self.hidden, name="q2")(obs, act)


class ValueNetwork(nn.Module):
    """State value ``obs [..., obs_dim] -> [...]``: 3 x [Linear -> LayerNorm -> Mish], Linear(1)."""

    hidden: int = 256

    @nn.compact
    def __call__(self, obs):
        h = obs
        for _ in range(3):
            h = mish(nn.LayerNorm()(nn.Dense(self.hidden)(h)))
        return nn.Dense(1)(h)[..., 0]


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class GaussianActor(nn.Module):
    """``obs [..., obs_dim] -> (mean, log_std)``, each ``[..., act_dim]``; ``num_layers`` ReLU layers (BC: 3, SAC: 2)."""

    act_dim: int
    hidden: int = 256
    num_layers: int = 3

    @nn.compact
    def __call__(self, obs):
        h = obs
        for _ in range(self.num_layers):
            h = nn.relu(nn.Dense(self.hidden)(h))
        mean = nn.Dense(self.act_dim)(h)
        log_std = jnp.clip(nn.Dense(self.act_dim)(h), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


def tanh_gaussian(mean, log_std) -> distrax.Distribution:
    """The tanh-squashed diagonal Gaussian on (-1, 1)^act_dim."""
    import distrax          # on use: it loads TFP's JAX substrate, 0.4 s of every CLI start that never needs it
    return distrax.Transformed(distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1))
