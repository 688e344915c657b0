"""Contraction regularizers on the symmetric Jacobian of a map ``fn: R^d -> R^d``.

Every function here works on ONE point ``x`` of shape ``[d]`` (callers ``jax.vmap`` over a batch)
and is differentiable with respect to whatever parameters ``fn`` closes over. Nothing here knows
about diffusion: ``fn`` is usually ``lambda a: x0_prediction(params, a, t, obs)``.

Conventions (see ``shared/paper/CDP.md`` section 2.6): the official code penalises the Jacobian of
the **x0 (data) prediction**. A DPM-Solver++ step has Jacobian
``(sigma_s/sigma_t) I + alpha_s (1 - e^{-h}) J_x``, which in the continuous limit contracts iff
``lambda_max(J_x^sym) < alpha_t``. That is the threshold :func:`hinge_penalty` uses by default
(``threshold="alpha"``); ``threshold="zero"`` pushes ``lambda_max`` below ``-beta`` as the code does.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

PENALTIES = ("frobenius", "hinge", "eigen_max")
EIGEN_METHODS = ("lanczos", "power")

Fn = Callable[[jax.Array], jax.Array]


def _check_square(fn: Fn, x: jax.Array) -> int:
    if x.ndim != 1:
        raise ValueError(f"contraction functions take one point x of shape [d] (vmap over batches); got shape {x.shape}")
    out = jax.eval_shape(fn, x)
    if out.shape != x.shape:
        raise ValueError(f"fn must map R^d to R^d: input shape {x.shape} but output shape {out.shape}")
    return x.shape[0]


def symmetric_jacobian(fn: Fn, x: jax.Array) -> jax.Array:
    """Exact ``J_sym = (J + J^T) / 2`` of ``fn`` at ``x`` ([d] -> [d, d]), from ``d`` forward-mode JVPs."""
    _check_square(fn, x)
    jac = jax.jacfwd(fn)(x)
    return 0.5 * (jac + jac.T)


def frobenius_penalty(fn: Fn, x: jax.Array, beta: float = 0.1) -> jax.Array:
    """The official code's loss: ``mean((J_sym + beta I)**2)`` over the ``d x d`` entries. Returns a scalar."""
    d = _check_square(fn, x)
    return jnp.mean((symmetric_jacobian(fn, x) + beta * jnp.eye(d, dtype=x.dtype)) ** 2)


def symmetric_matvec(fn: Fn, x: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """Returns ``v -> J_sym v`` without forming ``J``: half of one JVP plus one VJP per call."""
    _, jvp_fn = jax.linearize(fn, x)
    vjp_fn = jax.linear_transpose(jvp_fn, x)
    return lambda v: 0.5 * (jvp_fn(v) + vjp_fn(v)[0])


def _orthonormalise(w: jax.Array, basis: jax.Array, fallback: jax.Array) -> jax.Array:
    """Gram-Schmidt ``w`` against the rows of ``basis`` (twice, for stability); a vanishing ``w`` is
    replaced by ``fallback`` so the basis stays orthonormal when the Krylov space is invariant."""
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    norm = jnp.linalg.norm(w)
    scale = jnp.maximum(jnp.linalg.norm(basis), 1.0)
    w = jnp.where(norm > 1e-6 * scale, w, fallback)
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)


def _lanczos_max(matvec, d: int, key: jax.Array, num_iters: int, dtype) -> jax.Array:
    k = min(num_iters, d)
    noise = jax.random.normal(key, (k, d), dtype)
    basis = (noise[0] / jnp.linalg.norm(noise[0]))[None]
    images = []
    for i in range(k):
        v = jax.lax.stop_gradient(basis[i])
        images.append(matvec(v))
        if i + 1 < k:
            nxt = _orthonormalise(jax.lax.stop_gradient(images[-1]), basis, noise[i + 1])
            basis = jnp.concatenate([basis, nxt[None]])
    images = jnp.stack(images)                                  # [k, d] = J_sym v_i
    projected = basis @ images.T                                # [k, k] = V J_sym V^T
    projected = 0.5 * (projected + projected.T)
    _, vecs = jnp.linalg.eigh(jax.lax.stop_gradient(projected))
    ritz = jax.lax.stop_gradient(basis.T @ vecs[:, -1])         # top Ritz vector y, [d]
    # y^T J_sym y equals the top Ritz value; with y held fixed its gradient is the Hellmann-Feynman one.
    return ritz @ (images.T @ vecs[:, -1])


def _shifted_power_max(matvec, d: int, key: jax.Array, num_iters: int, dtype) -> jax.Array:
    k1, k2 = jax.random.split(key)

    def power(mv, key):
        v = jax.random.normal(key, (d,), dtype)
        v = v / jnp.linalg.norm(v)
        for _ in range(num_iters):
            w = mv(v)
            v = w / jnp.maximum(jnp.linalg.norm(w), 1e-30)
        return v @ mv(v)

    mu = power(matvec, k1)                                      # largest-magnitude eigenvalue
    shift = jax.lax.stop_gradient(jnp.abs(mu))
    return power(lambda v: matvec(v) + shift * v, k2) - shift   # J_sym + |mu| I is PSD: its top is lambda_max + |mu|


def max_eigenvalue(fn: Fn, x: jax.Array, key: jax.Array, num_iters: int = 5, method: str = "lanczos") -> jax.Array:
    """Matrix-free estimate of the largest ALGEBRAIC eigenvalue of ``J_sym`` of ``fn`` at ``x`` ([d] -> scalar).

    Plain power iteration (the paper's estimator) converges to the eigenvalue of largest magnitude,
    which is the wrong one when ``J_sym`` has a large negative eigenvalue. Two fixes:

    * ``method="lanczos"`` (default): ``min(num_iters, d)`` Lanczos steps with full
      re-orthogonalisation, each one symmetric matvec (one JVP + one VJP), then Rayleigh-Ritz on the
      Krylov basis. The top Ritz value never exceeds ``lambda_max``, converges much faster than power
      iteration, and is exact once ``num_iters >= d`` (all action spaces up to 5-D with the default 5).
      Its gradient is the Hellmann-Feynman gradient ``y^T dJ_sym y`` at the top Ritz vector ``y``.
    * ``method="power"``: power iteration for the largest-magnitude eigenvalue ``mu``, then power
      iteration on the positive semi-definite ``J_sym + |mu| I``, whose top eigenvalue is
      ``lambda_max + |mu|`` (``2 * num_iters`` matvecs). Gradients flow through all iterations as in the
      official code. Needs more iterations than Lanczos for the same accuracy.
    """
    if method not in EIGEN_METHODS:
        raise ValueError(f"unknown eigenvalue method {method!r}; choose one of {EIGEN_METHODS}")
    if int(num_iters) < 1:
        raise ValueError(f"num_iters must be >= 1, got {num_iters}")
    d = _check_square(fn, x)
    estimator = _lanczos_max if method == "lanczos" else _shifted_power_max
    return estimator(symmetric_matvec(fn, x), d, key, int(num_iters), x.dtype)


def hinge_penalty(lam_max: jax.Array, threshold: jax.Array | float, beta: float = 0.1) -> jax.Array:
    """The paper's per-sample hinge ``max(-beta, lam_max - threshold)``: zero gradient once the top
    eigenvalue sits ``beta`` below the threshold, so the loss does not over-contract."""
    return jnp.maximum(-beta, lam_max - threshold)


def penalty(kind: str, fn: Fn, x: jax.Array, key: jax.Array, *, beta: float = 0.1, num_iters: int = 5,
            threshold: jax.Array | float = 0.0, method: str = "lanczos") -> jax.Array:
    """One sample's contraction loss by name ([d] -> scalar).

    ``"frobenius"``: the official code's default, ``mean((J_sym + beta I)^2)``.
    ``"hinge"``: the paper's ``max(-beta, lambda_max - threshold)``.
    ``"eigen_max"``: the code's ``eigen_max`` option, ``lambda_max`` added linearly.
    """
    if kind == "frobenius":
        return frobenius_penalty(fn, x, beta)
    if kind == "hinge":
        return hinge_penalty(max_eigenvalue(fn, x, key, num_iters, method), threshold, beta)
    if kind == "eigen_max":
        return max_eigenvalue(fn, x, key, num_iters, method)
    raise ValueError(f"unknown contraction penalty {kind!r}; choose one of {PENALTIES}")


def low_noise_subbatch(key: jax.Array, batch_size: int, num_timesteps: int, fraction: float,
                       size: int | None = None) -> tuple[jax.Array, jax.Array]:
    """A fixed-size sub-batch for a penalty restricted to low-noise levels ``t < fraction * T``.

    The official RL code evaluates the penalty on the ~``fraction * B`` samples whose uniformly drawn
    level falls below ``int(fraction * T)`` and averages over them. Drawing ``size`` batch members and
    levels uniform on ``{0, ..., int(fraction * T) - 1}`` has the same expectation with a static shape,
    so the penalty costs only the samples it uses.

    Returns:
      ``(idx, t)``: int32 arrays of shape ``[size]``; ``size`` defaults to ``ceil(fraction * B)``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the low-noise fraction must be in (0, 1], got {fraction}")
    size = int(size) if size is not None else max(1, math.ceil(fraction * batch_size))
    num_levels = max(1, int(num_timesteps * fraction))
    k_idx, k_t = jax.random.split(key)
    idx = jax.random.choice(k_idx, batch_size, (size,), replace=size > batch_size)
    t = jax.random.randint(k_t, (size,), 0, num_levels)
    return idx.astype(jnp.int32), t.astype(jnp.int32)
