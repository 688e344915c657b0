"""What the member axis costs by itself: one MLP gradient step (3 x 256 Mish, batch 256, input 32), as a
``steps``-step ``scan``, bare against N members vmapped (each with its own batch, as the grid samples them, and
with one batch shared by all members, an unbatched operand of every first-layer dot), a Python loop over the
members in one program, and ``lax.map``. Each ratio is seconds per member-update over the bare update's.

    python -m benchmarks.speed.vmap_member_cost [--members 2,8] [--steps 200]

It isolates XLA's batched dot from everything else a grid adds (see ``sweep_throughput --overhead``).
"""
from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks.speed.timing import median_seconds

DIMS = (32, 256, 256, 256, 3)
BATCH = 256
flags.DEFINE_list("members", ["2", "8"], "grid sizes N")
flags.DEFINE_integer("steps", 200, "updates per timed scan")


def init(key) -> list:
    """``[w_1 [32, 256], ..., w_4 [256, 3]]``."""
    return [0.05 * jax.random.normal(jax.random.fold_in(key, i), shape)
            for i, shape in enumerate(zip(DIMS[:-1], DIMS[1:]))]


def sgd_step(params: list, x):
    """One SGD step on ``mean(mlp(x)^2)`` for ``x [BATCH, 32]``."""
    def loss(p):
        h = x
        for w in p[:-1]:
            h = jax.nn.mish(h @ w)
        return jnp.mean((h @ p[-1]) ** 2)
    return [w - 1e-3 * g for w, g in zip(params, jax.grad(loss)(params))]


def scanned(step, steps: int):
    return jax.jit(lambda p, x: jax.lax.scan(lambda p, _: (step(p, x), None), p, None, length=steps)[0])


def main(_):
    steps, key = flags.FLAGS.steps, jax.random.PRNGKey(0)
    x = jax.random.normal(key, (BATCH, DIMS[0]))
    bare = median_seconds(scanned(sgd_step, steps), init(key), x)
    print(f"device: {jax.devices()[0].platform}; bare update {1e3 * bare / steps:.3f} ms")
    out = {"bare_ms": 1e3 * bare / steps}
    for n in map(int, flags.FLAGS.members):
        params = jax.vmap(init)(jax.random.split(key, n))
        xs = x + 0.01 * jnp.arange(n)[:, None, None]

        def python_loop(p, xs, n=n):
            new = [sgd_step(jax.tree.map(lambda a: a[i], p), xs[i]) for i in range(n)]
            return jax.tree.map(lambda *a: jnp.stack(a), *new)

        variants = {
            "vmap, own batches": (jax.vmap(sgd_step), xs),
            "vmap, one shared batch": (jax.vmap(sgd_step, in_axes=(0, None)), x),
            "python loop over members": (python_loop, xs),
            "lax.map over members": (lambda p, xs: jax.lax.map(lambda a: sgd_step(*a), (p, xs)), xs),
        }
        for name, (step, data) in variants.items():
            ratio = median_seconds(scanned(step, steps), params, data) / n / bare
            out[f"N={n}, {name}"] = ratio
            print(f"N={n:3d}  {name:28s} {ratio:5.2f}x per member")
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    app.run(main)
