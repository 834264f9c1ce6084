"""Exact samplers of Gaussian sufficient statistics (no per-point sampling).

A generation of the Gaussian loop with the ideal corrector π_γ only needs, for each group of
points (real, kept synthetic, replaced synthetic), the group's size, mean and scatter. For
m i.i.d. N(μ, Σ) points these are independent (Cochran's theorem):

    mean ~ N(μ, Σ/m),    scatter = Σ_i (x_i − x̄)(x_i − x̄)ᵀ ~ Wishart_d(m − 1, Σ),

and the number of synthetic points π_γ keeps from p_θ is Binomial(k, 1/(1+γ)) (Def. 4.1: each
point is kept with probability 1/(1+γ), otherwise replaced by a draw of p_θ*). Drawing these
instead of every point makes a 64 × 64 × 32-seed phase diagram over 300 generations cost
O(d²) random numbers per run and generation instead of O(k·d), with the same law.

Paper: Def. 4.1 (eq. 4), eq. (5); issue "phase diagrams", item 5.

JAX's ``random.gamma``/``random.binomial`` are general-purpose and slow on CPU for millions of
draws per step; here the Binomial is drawn by inversion of a per-cell CDF table (k and q are
fixed within a run, so the table is built once) and χ² by Marsaglia–Tsang with a few
candidates drawn up front and an exact rejection loop for the rare lanes that reject all of
them. Both are exact in law (up to floating-point rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

__all__ = ["binomial_cdf", "binomial_inverse", "chisquare", "group_stats", "wishart"]

_CANDIDATES = 3  # Marsaglia–Tsang acceptance is > 0.95 for shape >= 1: 3 up front is plenty


def binomial_cdf(k, q, k_max: int) -> Float[Array, " k1"]:
    """CDF table P(K ≤ j), j = 0..k_max, of K ~ Binomial(k, q) (zero mass beyond k).

    Built in log space (``lgamma``) so (1 − q)^k cannot underflow for k up to thousands.

    Args:
        k: number of trials (integer-valued, 0 ≤ k ≤ k_max; may be traced).
        q: success probability in [0, 1] (may be traced).
        k_max: static table length − 1.
    """
    dtype = jnp.result_type(float)
    j = jnp.arange(k_max + 1, dtype=dtype)
    k = jnp.asarray(k, dtype)
    q = jnp.asarray(q, dtype)
    inside = j <= k
    safe_rest = jnp.where(inside, k - j, 0.0)
    log_choose = jax.lax.lgamma(k + 1.0) - jax.lax.lgamma(j + 1.0) - jax.lax.lgamma(safe_rest + 1.0)
    # x·log(p) with the convention 0·log 0 = 0 (q ∈ {0, 1} give point masses).
    xlogy = lambda x, p: jnp.where(x == 0, 0.0, x * jnp.log(jnp.where(x == 0, 1.0, p)))  # noqa: E731
    log_pmf = log_choose + xlogy(j, q) + xlogy(safe_rest, 1.0 - q)
    pmf = jnp.where(inside, jnp.exp(log_pmf), 0.0)
    cdf = jnp.cumsum(pmf)
    return jnp.where(j >= k, 1.0, jnp.minimum(cdf, 1.0))


def binomial_inverse(key: jax.Array, cdf: Float[Array, " k1"]) -> Int[Array, ""]:
    """One Binomial draw by inversion of a ``binomial_cdf`` table: #{j : CDF(j) < U}."""
    u = jax.random.uniform(key, (), cdf.dtype)
    return jnp.sum(cdf < u).astype(jnp.int32)


def _marsaglia_tsang(key: jax.Array, shape: Float[Array, "..."]) -> Float[Array, "..."]:
    """Gamma(shape, 1) for shape ≥ 1 (Marsaglia & Tsang 2000), exact rejection sampler."""
    d = shape - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)

    def attempt(k):
        kx, ku = jax.random.split(k)
        x = jax.random.normal(kx, shape.shape, shape.dtype)
        u = jax.random.uniform(ku, shape.shape, shape.dtype)
        v = (1.0 + c * x) ** 3
        log_v = jnp.log(jnp.where(v > 0, v, 1.0))
        ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        return ok, d * v

    keys = jax.random.split(key, _CANDIDATES + 1)
    oks, vals = jax.vmap(attempt)(keys[:_CANDIDATES])
    first = jnp.argmax(oks, axis=0)
    value = jnp.take_along_axis(vals, first[None], axis=0)[0]
    done = jnp.any(oks, axis=0)

    def cond(state):
        return ~jnp.all(state[1])

    def body(state):
        value, done, k = state
        k, sub = jax.random.split(k)
        ok, val = attempt(sub)
        take = ~done & ok
        return jnp.where(take, val, value), done | ok, k

    value, _, _ = jax.lax.while_loop(cond, body, (value, done, keys[-1]))
    return value


def chisquare(key: jax.Array, df: Float[Array, "..."]) -> Float[Array, "..."]:
    """χ²_df draws for real df ≥ 0 (df = 0 gives 0): 2·Gamma(df/2), boosted below shape 1.

    Gamma(a) = Gamma(a + 1)·U^{1/a} for a < 1 (Marsaglia & Tsang 2000, §6).
    """
    df = jnp.asarray(df)
    a = 0.5 * df
    boost = a < 1.0
    kg, ku = jax.random.split(key)
    g = _marsaglia_tsang(kg, jnp.where(boost, a + 1.0, a))
    u = jax.random.uniform(ku, df.shape, df.dtype, minval=jnp.finfo(df.dtype).tiny)
    safe_a = jnp.where(a > 0, a, 1.0)
    g = jnp.where(boost, g * jnp.exp(jnp.log(u) / safe_a), g)
    return jnp.where(df > 0, 2.0 * g, 0.0)


def wishart(key: jax.Array, df, root: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """Wishart_d(df, R Rᵀ) by the Bartlett decomposition, valid for every integer df ≥ 0.

    W = R A Aᵀ Rᵀ with A lower triangular, A_jj² ~ χ²_{df − j} and A_ij ~ N(0, 1) for i > j,
    keeping only the columns j < df: for df < d this is the LQ factor of a d × df Gaussian
    matrix, so W is the (singular) scatter of df + 1 points. Any R with R Rᵀ = Σ works.

    Args:
        key: PRNG key.
        df: degrees of freedom (integer-valued, may be traced).
        root: a square root R of the scale matrix Σ.
    """
    d = root.shape[-1]
    dtype = root.dtype
    df = jnp.asarray(df, dtype)
    col = jnp.arange(d, dtype=dtype)
    k_diag, k_off = jax.random.split(key)
    diag = jnp.sqrt(chisquare(k_diag, jnp.maximum(df - col, 0.0)))
    off = jax.random.normal(k_off, (d, d), dtype)
    lower = jnp.tril(off, -1) + jnp.diag(diag)
    a = jnp.where((col < df)[None, :], lower, 0.0)
    ra = root @ a
    return ra @ ra.T


def group_stats(
    key: jax.Array, mean: Float[Array, " d"], root: Float[Array, "d d"], count
) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
    """Mean and scatter of ``count`` i.i.d. N(mean, R Rᵀ) points, drawn exactly.

    Sample mean ~ N(μ, Σ/m) and scatter ~ Wishart(m − 1, Σ), independent. For m = 0 the
    mean is returned as μ and the scatter as 0 (an empty group; give it weight 0).
    """
    k_mean, k_scatter = jax.random.split(key)
    dtype = root.dtype
    m = jnp.asarray(count, dtype)
    z = jax.random.normal(k_mean, mean.shape, dtype)
    centre = mean + (root @ z) / jnp.sqrt(jnp.maximum(m, 1.0))
    scatter = wishart(k_scatter, jnp.maximum(m - 1.0, 0.0), root)
    return centre, scatter
