"""K-means per digit class in JAX, and the nearest-centroid corrector.

Paper: §4 "Digits toy": K-means (K = 16) per digit on the real images, computed once; each
synthetic image is replaced by the nearest centroid of its conditioning digit, rounded to
pixel values. We add partial correction: each image is replaced with probability γ/(1+γ)
(kept with 1/(1+γ), Def. 4.1), so γ is a real knob; γ = ∞ is the paper's corrector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from theory._checks import check_nonneg, check_positive_int
from theory.operators import Corrector, _keep_probability


def _sq_dists(x: Float[Array, "n d"], c: Float[Array, "k d"]) -> Float[Array, "n k"]:
    d = jnp.sum(x * x, 1)[:, None] - 2.0 * x @ c.T + jnp.sum(c * c, 1)[None, :]
    return jnp.maximum(d, 0.0)


def kmeans_pp(key: jax.Array, x: Float[Array, "n d"], w: Float[Array, " n"], k: int):
    """k-means++ seeding (Arthur & Vassilvitskii 2007) over rows with weight ``w`` > 0.

    Each new centre is drawn with probability ∝ w·D², D the distance to the nearest centre
    chosen so far (the first uniformly among weighted rows).
    """
    keys = jax.random.split(key, k)
    first = jax.random.categorical(keys[0], jnp.log(w))
    centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
    d2 = jnp.sum((x - x[first]) ** 2, 1)

    def body(i, carry):
        centres, d2 = carry
        p = w * d2
        # All mass on chosen centres (duplicate data): fall back to uniform over rows.
        logits = jnp.where(jnp.sum(p) > 0, jnp.log(p), jnp.log(w))
        j = jax.random.categorical(keys[i], logits)
        centres = centres.at[i].set(x[j])
        return centres, jnp.minimum(d2, jnp.sum((x - x[j]) ** 2, 1))

    centres, _ = jax.lax.fori_loop(1, k, body, (centres, d2))
    return centres


def lloyd(x: Float[Array, "n d"], w: Float[Array, " n"], centres: Float[Array, "k d"], iters: int):
    """Weighted Lloyd iterations; an empty cluster keeps its centre. Returns (centres, inertia)."""

    def body(_, c):
        assign = jax.nn.one_hot(jnp.argmin(_sq_dists(x, c), 1), c.shape[0], dtype=x.dtype)
        mass = (assign * w[:, None]).sum(0)
        sums = (assign * w[:, None]).T @ x
        return jnp.where(mass[:, None] > 0, sums / jnp.maximum(mass, 1e-12)[:, None], c)

    centres = jax.lax.fori_loop(0, iters, body, centres)
    inertia = jnp.sum(w * jnp.min(_sq_dists(x, centres), 1))
    return centres, inertia


def kmeans(
    key: jax.Array,
    x: Float[Array, "n d"],
    k: int,
    *,
    weights: Float[Array, " n"] | None = None,
    iters: int = 100,
    n_init: int = 4,
) -> tuple[Float[Array, "k d"], Float[Array, ""]]:
    """K-means (k-means++ then Lloyd), best of ``n_init`` restarts by inertia.

    Args:
        key: PRNG key.
        x: data rows.
        k: number of clusters (static).
        weights: optional row weights (0 masks a padding row).
        iters: Lloyd iterations (static; fixed count keeps it a compiled loop).
        n_init: restarts.

    Returns:
        (centres, inertia) of the best restart.
    """
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else weights.astype(x.dtype)

    def one(key):
        return lloyd(x, w, kmeans_pp(key, x, w, k), iters)

    cs, inertias = jax.vmap(one)(jax.random.split(key, n_init))
    best = jnp.argmin(inertias)
    return cs[best], inertias[best]


def class_centroids(
    key: jax.Array,
    x: Float[Array, "n ..."],
    labels: Int[Array, " n"],
    k: int = 16,
    *,
    n_classes: int = 10,
    iters: int = 100,
    n_init: int = 4,
) -> Float[Array, "c k ..."]:
    """K-means centroids of each class (vmapped over classes with padding masks).

    Paper: §4 "K-means (K = 16) per digit on the real images, computed once".
    """
    check_positive_int("k", k)
    x_np, y_np = np.asarray(x), np.asarray(labels)
    flat = x_np.reshape(len(x_np), -1)
    counts = np.bincount(y_np, minlength=n_classes)
    if counts.min() < k:
        raise ValueError(
            f"K-means needs >= k={k} images per class; smallest class has {counts.min()}"
        )
    m = counts.max()
    pad = np.zeros((n_classes, m, flat.shape[1]), np.float32)
    mask = np.zeros((n_classes, m), np.float32)
    for c in range(n_classes):
        rows = flat[y_np == c]
        pad[c, : len(rows)], mask[c, : len(rows)] = rows, 1.0
    keys = jax.random.split(key, n_classes)
    run = jax.jit(
        jax.vmap(lambda kk, xx, ww: kmeans(kk, xx, k, weights=ww, iters=iters, n_init=n_init)[0])
    )
    cents = run(keys, jnp.asarray(pad), jnp.asarray(mask))
    return cents.reshape(n_classes, k, *x_np.shape[1:])


def round_to_levels(x: Array, levels: int) -> Array:
    """Rounds [-1, 1] images to the pixel grid of ``levels`` + 1 grey values."""
    return jnp.round((x + 1.0) * (levels / 2.0)) * (2.0 / levels) - 1.0


def nearest_centroid(
    x: Float[Array, "n ..."],
    labels: Int[Array, " n"],
    centroids: Float[Array, "c k ..."],
    replacements: Float[Array, "c k ..."] | None = None,
) -> Float[Array, "n ..."]:
    """Each image → the nearest (L2) centroid of its own class (or that centroid's
    ``replacements`` entry, e.g. its rounded version)."""
    flat = x.reshape(x.shape[0], -1)
    c, k = centroids.shape[:2]
    cents = centroids.reshape(c, k, -1)[labels]  # n k d
    d2 = jnp.sum((flat[:, None, :] - cents) ** 2, -1)
    out = cents if replacements is None else replacements.reshape(c, k, -1)[labels]
    pick = jnp.take_along_axis(out, jnp.argmin(d2, 1)[:, None, None], 1)[:, 0]
    return pick.reshape(x.shape).astype(x.dtype)


def kmeans_corrector(
    centroids: Float[Array, "c k ..."], gamma=float("inf"), levels: int | None = None
) -> Corrector:
    """The paper's digit corrector with strength γ (project interface).

    Each image of class ``labels[i]`` is replaced by the nearest centroid of that class
    (rounded to ``levels`` grey levels if given) with probability γ/(1+γ), else kept.
    γ = ∞ (default) is the paper's corrector. Rows with ``mask`` False come back unchanged.

    Paper: §4 digits corrector; Def. 4.1 for the γ mixture.
    """
    check_nonneg("gamma", gamma)
    cents = jnp.asarray(centroids)
    # The nearest centroid is chosen among the unrounded centroids, then rounded (paper).
    snapped_cents = cents if levels is None else round_to_levels(cents, levels)

    def correct(key, x, labels=None, *, mask: Bool[Array, " n"] | None = None):
        if labels is None:
            raise ValueError("the K-means corrector needs the conditioning labels")
        snapped = nearest_centroid(x, labels, cents, snapped_cents)
        u = jax.random.uniform(key, (x.shape[0],), jnp.float32)
        replace = u >= _keep_probability(gamma).astype(jnp.float32)
        if mask is not None:
            replace = replace & mask
        return jnp.where(replace.reshape((-1,) + (1,) * (x.ndim - 1)), snapped, x)

    return correct
