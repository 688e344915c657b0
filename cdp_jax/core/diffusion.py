"""A state-conditioned diffusion model of actions: noising, the denoising loss, x0/eps conversions,
the contraction term and sampling, all for one static configuration.

A :class:`Denoiser` is cheap, static and built from an ``ml_collections`` config inside the functions
that need it; parameters are always passed explicitly, so everything vmaps over a grid of agents.

Config fields read here (see :func:`default_config`): ``network, hidden, prediction, schedule,
diffusion_steps, sampler, sampling_steps, temperature, clip``, the sub-config ``contraction`` with
``penalty, beta, num_iters, eigen_method, threshold, low_noise_fraction`` and the sub-config ``image`` (cameras
empty: a low-dim observation; otherwise :mod:`cdp_jax.nn.image_encoder`'s layout and encoder).

The network sees a conditioning vector ``cond``: the observation itself for low-dim networks, the image encoder's
output otherwise (:meth:`Denoiser.encode`). Methods that take ``cond`` say so; :meth:`Denoiser.sample` takes the
raw observation and encodes it once.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from cdp_jax.core import contraction, samplers
from cdp_jax.nn.layers import TIME_EMBEDDINGS
from cdp_jax.nn.networks import NETWORKS, make_denoiser_network
from cdp_jax.core.schedules import VPSchedule, make_schedule
from cdp_jax.nn.image_encoder import ImageLayout
from cdp_jax.nn.image_encoder import ImageConditioned

PREDICTIONS = ("x0", "eps")
THRESHOLDS = ("zero", "alpha")


def default_config() -> ml_collections.ConfigDict:
    """The diffusion-policy defaults of the official CDP RL code (EDP actor)."""
    return ml_collections.ConfigDict(dict(
        network="dql", hidden=0, time_embedding="float", chunk_horizon=1, unet_dim_mult=(1, 2, 2), dit_heads=12,
        dit_depth=6, prediction="x0", schedule="cosine", diffusion_steps=50,
        sampler="dpm_solver_2m", sampling_steps=15, temperature=1.0, clip=1.0,
        contraction=dict(penalty="frobenius", normalize="entries", beta=0.1, num_iters=5, eigen_method="lanczos",
                         threshold="zero", low_noise_fraction=0.1, num_probes=0, batch_fraction=1.0, rows=0),
        image=dict(cameras=(), height=84, width=84, crop=76, low_dim=0, obs_steps=1, emb_dim=256),
    ))


def image_layout(cfg: ml_collections.ConfigDict):
    """The :class:`cdp_jax.nn.image_encoder.ImageLayout` of a diffusion config, or None for low-dim observations."""
    im = cfg.get("image")
    if im is None or not im.cameras:
        return None
    return ImageLayout(int(im.obs_steps), int(im.low_dim), tuple(im.cameras), int(im.height), int(im.width),
                       int(im.crop))


def x0_from_eps(x_t, eps, alpha, sigma):
    """``x0 = (x_t - sigma * eps) / alpha``."""
    return (x_t - sigma * eps) / alpha


def validate_config(cfg: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the bad field of a diffusion config."""
    choices = dict(prediction=PREDICTIONS, sampler=samplers.SAMPLERS, network=NETWORKS,
                   time_embedding=TIME_EMBEDDINGS, schedule=("cosine", "linear"))
    for field, allowed in choices.items():
        if cfg[field] not in allowed:
            raise ValueError(f"unknown {field} {cfg[field]!r}; choose one of {allowed}")
    mult = cfg.unet_dim_mult
    if not mult or not all(isinstance(m, int) and m >= 1 for m in mult):
        raise ValueError(f"unet_dim_mult must be a non-empty tuple of positive integers (channels per UNet level, "
                         f"as multiples of hidden; Diffusion Policy: (1, 2, 2)), got {mult!r}")
    if cfg.dit_heads < 1 or cfg.dit_depth < 1:
        raise ValueError(f"dit_heads and dit_depth must be >= 1, got {cfg.dit_heads}, {cfg.dit_depth}")
    if cfg.network == "dit" and (cfg.hidden or 384) % cfg.dit_heads:
        raise ValueError(f"the DiT's width hidden={cfg.hidden or 384} must be a multiple of dit_heads="
                         f"{cfg.dit_heads}")
    if not 1 <= cfg.sampling_steps <= cfg.diffusion_steps:
        raise ValueError(f"sampling_steps={cfg.sampling_steps} must be in [1, diffusion_steps={cfg.diffusion_steps}]")
    c = cfg.contraction
    if c.penalty not in contraction.PENALTIES:
        raise ValueError(f"unknown contraction penalty {c.penalty!r}; choose one of {contraction.PENALTIES}")
    if c.normalize not in contraction.NORMALIZATIONS:
        raise ValueError(f"unknown contraction.normalize {c.normalize!r}; choose one of {contraction.NORMALIZATIONS}")
    if c.normalize != "entries" and c.penalty != "frobenius":
        raise ValueError(f"contraction.normalize={c.normalize!r} applies to the frobenius penalty only, not to "
                         f"{c.penalty!r}; leave it 'entries'")
    if c.threshold not in THRESHOLDS:
        raise ValueError(f"unknown contraction threshold {c.threshold!r}; choose one of {THRESHOLDS}")
    if c.eigen_method not in contraction.EIGEN_METHODS:
        raise ValueError(f"unknown eigen_method {c.eigen_method!r}; choose one of {contraction.EIGEN_METHODS}")
    if not 0.0 < c.low_noise_fraction <= 1.0:
        raise ValueError(f"contraction.low_noise_fraction must be in (0, 1], got {c.low_noise_fraction}")
    if not 0.0 < c.batch_fraction <= 1.0:
        raise ValueError(f"contraction.batch_fraction must be in (0, 1], got {c.batch_fraction}")
    if not isinstance(c.rows, int) or c.rows < 0:
        raise ValueError(f"contraction.rows must be an integer >= 0 (0: batch_fraction decides), got {c.rows!r}")
    if c.rows and c.batch_fraction < 1.0:
        raise ValueError(f"contraction.rows={c.rows} and contraction.batch_fraction={c.batch_fraction} both pick "
                         f"the contraction rows; set one of them")
    if c.num_probes < 0:
        raise ValueError(f"contraction.num_probes must be >= 0 (0: the exact Jacobian), got {c.num_probes}")
    if c.beta < 0 or c.num_iters < 1:
        raise ValueError(f"contraction.beta must be >= 0 and num_iters >= 1, got {c.beta}, {c.num_iters}")


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """A diffusion model of ``act_dim`` actions. Shapes: ``x [B, act_dim]``, ``t [B]`` int, ``obs [B, obs_dim]``."""

    cfg: ml_collections.ConfigDict
    act_dim: int
    network: nn.Module
    schedule: VPSchedule

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, act_dim: int) -> "Denoiser":
        validate_config(cfg)
        network = make_denoiser_network(cfg.network, act_dim, cfg.hidden or None, cfg.time_embedding,
                                        cfg.chunk_horizon, tuple(cfg.unet_dim_mult), cfg.dit_heads,
                                        cfg.dit_depth)
        layout = image_layout(cfg)
        if layout is not None:
            network = ImageConditioned(network, layout, int(cfg.image.emb_dim))
        return cls(cfg, act_dim, network, make_schedule(cfg.schedule, cfg.diffusion_steps))

    @property
    def _has_dropout(self) -> bool:
        return self.cfg.network == "idql"

    @property
    def has_encoder(self) -> bool:
        return hasattr(self.network, "encode")

    def init(self, key: jax.Array, obs_dim: int):
        if self.has_encoder and obs_dim != self.network.layout.size:
            raise ValueError(f"the image layout needs observations of {self.network.layout.size} numbers, the data "
                             f"has {obs_dim}: check diffusion.image (cameras, height, width, low_dim, obs_steps)")
        # jitted: one compilation instead of one per operation (a UNet: 15 s instead of 28 s on a 2-core CPU)
        return jax.jit(self.network.init)(key, jnp.zeros((1, self.act_dim)), jnp.zeros((1,)),
                                          jnp.zeros((1, obs_dim)))

    def encode(self, params, obs, key=None):
        """The conditioning of observations ``obs [B, obs_dim]``: ``obs`` itself for a low-dim network, the image
        encoder's ``[B, obs_steps * emb_dim]`` otherwise (random crops with ``key``, the centre crop without)."""
        if not self.has_encoder:
            return obs
        train = dict(train=True, rngs={"crop": key}) if key is not None else {}
        return self.network.apply(params, obs, method="encode", **train)

    def _apply(self, params, x_t, t, cond, **train):
        if self.has_encoder:
            return self.network.apply(params, x_t, t, cond, method="denoise")
        return self.network.apply(params, x_t, t, cond, **train)

    def predict_x0(self, params, x_t, t, cond):
        """The network's clean-action prediction ``[..., act_dim]`` whatever it was trained to output
        (``cond``: :meth:`encode` of the observations)."""
        out = self._apply(params, x_t, t, cond)
        if self.cfg.prediction == "x0":
            return out
        t = jnp.asarray(t)
        return x0_from_eps(x_t, out, self.schedule.alpha_at(t)[..., None], self.schedule.sigma_at(t)[..., None])

    def _x0_at_level(self, params, cond):
        """The sampler's predictor ``(x_t [B, act_dim], t scalar) -> x0 [B, act_dim]``: every sample at one level.
        Networks with ``observation_bias``/``level_bias``/``from_biases`` (the DQL MLP) compute the observation's
        share of the first layer once and the level's once per step (:class:`cdp_jax.nn.networks.DQLMlp`); the
        result equals :meth:`predict_x0`'s up to float rounding."""
        if self.has_encoder or not hasattr(self.network, "from_biases"):
            return lambda x, t: self.predict_x0(params, x, jnp.full(x.shape[:-1], t), cond)
        obs_bias = self.network.apply(params, cond, method="observation_bias")

        def x0_fn(x, t):
            bias = obs_bias + self.network.apply(params, t, method="level_bias")
            out = self.network.apply(params, x, bias, method="from_biases")
            if self.cfg.prediction == "x0":
                return out
            return x0_from_eps(x, out, self.schedule.alpha_at(t), self.schedule.sigma_at(t))
        return x0_fn

    def q_sample(self, x0, t, eps):
        """Forward noising ``x_t = alpha_t x0 + sigma_t eps`` at integer levels ``t`` (shape ``x0.shape[:-1]``)."""
        return self.schedule.alpha_at(t)[..., None] * x0 + self.schedule.sigma_at(t)[..., None] * eps

    def noise(self, key, x0):
        """Draws ``t ~ U{0..T-1}`` and ``eps``; returns ``(x_t, t, eps)``."""
        k_t, k_e = jax.random.split(key)
        t = jax.random.randint(k_t, x0.shape[:-1], 0, self.schedule.num_steps)
        eps = jax.random.normal(k_e, x0.shape)
        return self.q_sample(x0, t, eps), t, eps

    def denoising_loss(self, params, x_t, t, eps, x0, cond, dropout_key=None):
        """MSE against the network's own target (x0 or eps), averaged over batch and action dims (``cond``:
        :meth:`encode` of the observations). A network with dropout (``"idql"``) runs it in training mode with
        ``dropout_key``; everywhere else it is off."""
        train = dict(train=True, rngs={"dropout": dropout_key}) if self._has_dropout else {}
        out = self._apply(params, x_t, t, cond, **train)
        target = x0 if self.cfg.prediction == "x0" else eps
        return jnp.mean((out - target) ** 2)

    def contraction_loss(self, params, key, x0, cond, x_t=None, t=None):
        """The batch contraction term ``L_c`` (scalar) on ``J_sym`` of the x0 prediction with respect to the
        noisy action (the official code's sign convention; docs/contraction.md);
        ``cond``: :meth:`encode` of the observations.

        With ``low_noise_fraction < 1`` it is computed on a fixed sub-batch of ``ceil(fraction * B)`` samples with
        fresh noise at levels ``t < fraction * T`` (the official RL recipe). With fraction 1 it reuses the
        denoising loss's ``(x_t, t)`` when given (the official IL recipe), all of them, or with
        ``batch_fraction < 1`` the first ``ceil(batch_fraction * B)``, or with ``rows > 0`` the first ``rows`` (a
        uniform sub-batch, since batches are drawn at random; cheaper than the official whole batch).
        """
        x_t, t, cond, k_pen, _ = self._contraction_rows(key, x0, cond, x_t, t)
        return self._penalty(self._linearize_x0(params, x_t, t, cond), k_pen, t)

    def _contraction_rows(self, key, x0, cond, x_t, t):
        """``(x_t, t, cond, penalty key, shared)``: the rows :meth:`contraction_loss` takes, and whether they are the
        given denoising samples' leading rows (all of them, or the ``batch_fraction`` sub-batch)."""
        c = self.cfg.contraction
        k_sub, k_noise, k_pen = jax.random.split(key, 3)
        if c.low_noise_fraction < 1.0 or x_t is None:
            idx, t = contraction.low_noise_subbatch(k_sub, x0.shape[0], self.schedule.num_steps, c.low_noise_fraction)
            x0, cond = x0[idx], cond[idx]
            eps = jax.random.normal(k_noise, x0.shape)
            return self.q_sample(x0, t, eps), t, cond, k_pen, False
        if c.rows or c.batch_fraction < 1.0:            # the first rows of the (random) batch only
            rows = min(c.rows, x_t.shape[0]) if c.rows else max(1, math.ceil(c.batch_fraction * x_t.shape[0]))
            return x_t[:rows], t[:rows], cond[:rows], k_pen, True
        return x_t, t, cond, k_pen, True

    def loss_terms(self, params, obs, act, key, contraction: bool = True):
        """``(denoising loss, L_c)`` of ``obs [B, obs_dim]``, ``act [B, act_dim]`` at random levels: the two terms
        that an agent's objective weighs (``denoising + gamma * contraction``). ``contraction`` is static: False
        skips L_c (0), as the sweep compiles its gamma = 0 members, so they pay nothing for it."""
        k_noise, k_c = jax.random.split(key)
        x_t, t, eps = self.noise(k_noise, act)
        cond = self.encode(params, obs, jax.random.fold_in(key, 2))    # image encoders crop at random, once
        dropout_key = jax.random.fold_in(key, 1)
        if not contraction:
            return self.denoising_loss(params, x_t, t, eps, act, cond, dropout_key), jnp.zeros(())
        return self.denoising_and_contraction_loss(params, k_c, x_t, t, eps, act, cond, dropout_key)

    def denoising_and_contraction_loss(self, params, key, x_t, t, eps, x0, cond, dropout_key=None):
        """``(denoising loss, L_c)``: :meth:`denoising_loss` and :meth:`contraction_loss` on the denoising samples.
        When ``L_c`` is taken on those very samples (the IL recipe: ``low_noise_fraction`` 1), or on their first
        ``ceil(batch_fraction * B)`` rows, by an x0-predicting network without dropout, the linearisation at those
        rows also gives their denoising prediction, and only the other rows run the plain network: every row runs
        forward (and, under ``jax.grad``, backward) once instead of the contraction rows twice (rows are
        independent in every backbone: no batch statistics). Same values as the two calls."""
        rows_x, rows_t, rows_cond, k_pen, shared = self._contraction_rows(key, x0, cond, x_t, t)
        if not shared or self.cfg.prediction != "x0" or self._has_dropout:
            return (self.denoising_loss(params, x_t, t, eps, x0, cond, dropout_key),
                    self._penalty(self._linearize_x0(params, rows_x, rows_t, rows_cond), k_pen, rows_t))
        lin = self._linearize_x0(params, rows_x, rows_t, rows_cond)
        rows = rows_x.shape[0]
        pred = lin.value
        if rows < x_t.shape[0]:
            pred = jnp.concatenate([pred, self.predict_x0(params, x_t[rows:], t[rows:], cond[rows:])])
        return jnp.mean((pred - x0) ** 2), self._penalty(lin, k_pen, rows_t)

    def _linearize_x0(self, params, x_t, t, cond) -> contraction.Linearized:
        return contraction.linearize(lambda x: self.predict_x0(params, x, t, cond), x_t)

    def _penalty(self, lin: contraction.Linearized, key, t):
        c = self.cfg.contraction
        threshold = self.schedule.alpha_at(t) if c.threshold == "alpha" else 0.0
        return jnp.mean(contraction.batch_penalty(c.penalty, lin, key, beta=c.beta, num_iters=c.num_iters,
                                                  threshold=threshold, method=c.eigen_method,
                                                  num_probes=c.num_probes, normalize=c.normalize))

    def max_eigenvalue(self, params, key, x_t, t, obs, num_iters: int | None = None):
        """``lambda_max(J_sym)`` of the x0 prediction per sample: ``[B]``. Exact (eigvalsh) unless ``num_iters`` is given."""
        lin = self._linearize_x0(params, x_t, t, self.encode(params, obs))
        if num_iters is None:
            return jnp.linalg.eigvalsh(contraction.batch_symmetric_jacobian(lin))[:, -1]
        return contraction.batch_max_eigenvalue(lin, key, num_iters)

    def sample(self, params, key, obs, *, num_steps: int | None = None, temperature: float | None = None,
               method: str | None = None, x_init=None):
        """Actions ``[B, act_dim]`` for observations ``obs [B, obs_dim]``."""
        cfg = self.cfg
        x0_fn = self._x0_at_level(params, self.encode(params, obs))
        return samplers.sample(
            x0_fn, self.schedule, key, obs.shape[:-1] + (self.act_dim,), method=method or cfg.sampler,
            num_steps=num_steps or cfg.sampling_steps,
            temperature=cfg.temperature if temperature is None else temperature,
            clip=cfg.clip if cfg.clip else None, x_init=x_init)
