"""The convolution every network of cdp_jax uses: ``lax.conv_general_dilated``, computed on the CPU as one matmul.

XLA:CPU runs a convolution inside a ``while`` loop (every ``lax.scan``: the sweep's training steps, the samplers)
25-80x slower than the same convolution outside one (jax 0.10.2, measured: a 1-D kernel-5, 128-channel gradient at
batch 64, 2.6 ms unrolled vs 193 ms in a scan; a 3 x 3, 64-channel 2-D one, 44 ms vs 1091 ms; upstream:
jax-ml/jax#12868), and outside loops it is also slow for an output shorter than its kernel or an input dilation.
A matmul over the kernel's shifted copies of the (zero-dilated, padded) input computes the same sums at the matmul
rate in and out of loops, so on the CPU every convolution is computed that way (im2col); on other backends
``lax.conv_general_dilated`` is used as is. ``Conv`` is flax's ``nn.Conv`` with this convolution (same parameter
names, shapes and initialisation).
"""
from __future__ import annotations

import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated``'s signature and result for channels-last convolutions ``[B, *S, C_in] *
    [*K, C_in, C_out] -> [B, *S', C_out]`` (flax's layout, and the default here); as a matmul over the ``prod(K)``
    shifted copies of the input on the CPU, ``lax.conv_general_dilated`` otherwise (and for grouped or
    kernel-dilated convolutions)."""
    nd = lhs.ndim - 2
    lhs_dilation = tuple(lhs_dilation or (1,) * nd)
    spatial = tuple(range(1, nd + 1))
    channels_last = lax.ConvDimensionNumbers((0, nd + 1) + spatial, (nd + 1, nd) + tuple(range(nd)),
                                             (0, nd + 1) + spatial)
    if dimension_numbers is None:                   # channels-last unless told otherwise (lax's default is NCW)
        dimension_numbers = channels_last
    if (jax.default_backend() != "cpu" or feature_group_count != 1 or kwargs.get("batch_group_count", 1) != 1
            or tuple(rhs_dilation or (1,) * nd) != (1,) * nd
            or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != channels_last):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                        feature_group_count=feature_group_count, precision=precision, **kwargs)
    kernel, strides = rhs.shape[:nd], tuple(window_strides)
    dilated = tuple((n - 1) * d + 1 for n, d in zip(lhs.shape[1:-1], lhs_dilation))
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(dilated, kernel, strides, padding)
    config = [(0, 0, 0)] + [(lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation)] + [(0, 0, 0)]
    padded = lax.pad(lhs, jnp.zeros((), lhs.dtype), config)        # zero-dilated and padded in one op
    out = tuple((p - k) // s + 1 for p, k, s in zip(padded.shape[1:-1], kernel, strides))
    windows = [lax.slice(padded, (0, *offset, 0),
                         (padded.shape[0], *(o + (n - 1) * s + 1 for o, n, s in zip(offset, out, strides)),
                          padded.shape[-1]), (1, *strides, 1))
               for offset in itertools.product(*(range(k) for k in kernel))]          # row-major, as rhs is
    stacked = jnp.concatenate(windows, axis=-1)                                          # [B, *S', prod(K) * C_in]
    return jnp.dot(stacked, rhs.reshape(-1, rhs.shape[-1]), precision=precision)


Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)
