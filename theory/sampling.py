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

Tables shared by many cells (the phase-grid engine, ``sims.gaussian.engine``): when every cell
of a grid uses the same random numbers per (seed, generation), the group statistics can be
tabulated once over every possible group size m and looked up per cell:

- ``uniform_from_bits`` / ``normal_from_bits`` turn one block of ``jax.random.bits`` into
  uniforms and normals with the formulas of ``jax.random.uniform`` / ``jax.random.normal``
  (bit-identical), so one random call serves a whole (seed, generation);
- ``chisquare_table``: χ²_m for every integer m = 0..L as partial sums of L squared normals
  (exact for each m; different m are dependent, which no single cell ever sees);
- ``bartlett_table``: the Bartlett diagonal √χ²_{m−1−j} of Wishart_d(m − 1, I) for every group
  size m, from ``chisquare_table``;
- ``shared_inverse``: Binomial inversion K = #{j : CDF_c(j) < U} of N shared uniforms in C
  CDF tables at once, by sorting the uniforms once (O(N log N + C·(N + k))) instead of C·N
  binary searches; exactly equal to ``binomial_inverse``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = [
    "bartlett_table",
    "binomial_cdf",
    "binomial_inverse",
    "bits_dtype",
    "chisquare",
    "chisquare_table",
    "group_stats",
    "normal_from_bits",
    "shared_inverse",
    "uniform_from_bits",
    "wishart",
]

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


def bits_dtype(dtype) -> np.dtype:
    """The unsigned integer type whose ``jax.random.bits`` feed one float of ``dtype``."""
    return np.dtype(f"uint{jnp.finfo(dtype).bits}")


def uniform_from_bits(bits: Array, dtype, minval=0.0, maxval=1.0) -> Float[Array, "..."]:
    """Uniform[minval, maxval) floats from random bits, exactly as ``jax.random.uniform``.

    The mantissa is filled with the high bits and the exponent set to that of 1.0, giving
    [1, 2); subtracting 1 gives [0, 1). ``uniform_from_bits(jax.random.bits(key, shape,
    bits_dtype(dtype)), dtype)`` equals ``jax.random.uniform(key, shape, dtype)`` bit for bit.

    Args:
        bits: unsigned integers of ``bits_dtype(dtype)``.
        dtype: float32 or float64.
        minval, maxval: range (Python floats or arrays broadcastable to ``bits``).
    """
    dtype = jnp.dtype(dtype)
    finfo = jnp.finfo(dtype)
    udtype = bits_dtype(dtype)
    if bits.dtype != udtype:
        raise ValueError(f"{dtype} needs {udtype} bits; got {bits.dtype}")
    shift = jnp.asarray(finfo.bits - finfo.nmant, udtype)
    one = jnp.asarray(np.array(1.0, dtype).view(udtype), udtype)
    mantissa = jax.lax.bitwise_or(jax.lax.shift_right_logical(bits, shift), one)
    floats = jax.lax.bitcast_convert_type(mantissa, dtype) - jnp.asarray(1.0, dtype)
    lo, hi = jnp.asarray(minval, dtype), jnp.asarray(maxval, dtype)
    return jnp.maximum(lo, floats * (hi - lo) + lo)


def normal_from_bits(bits: Array, dtype) -> Float[Array, "..."]:
    """Standard normals from random bits, exactly as ``jax.random.normal``: √2·erfinv(U),
    U uniform on (−1, 1) (the open lower end keeps erfinv finite)."""
    dtype = jnp.dtype(dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = uniform_from_bits(bits, dtype, lo, 1.0)
    return jnp.asarray(np.sqrt(2.0), dtype) * jax.lax.erf_inv(u)


def chisquare_table(z: Float[Array, "... L"]) -> Float[Array, "... L1"]:
    """χ²_m for m = 0..L from L standard normals: the partial sums Σ_{i<m} z_i².

    Each entry is exactly χ²_m in law (a sum of m squared independent normals); entries for
    different m share terms, so use one entry per cell and draw (as a tabulated sampler).
    """
    length = z.shape[-1]
    # Partial sums as one product with a triangular 0/1 matrix: a single dot instead of the
    # log-depth scan ``cumsum`` lowers to on CPU, which costs far more to compile.
    upper = jnp.asarray(np.arange(length)[:, None] < np.arange(length + 1)[None, :], z.dtype)
    return jnp.matmul(z * z, upper, precision=jax.lax.Precision.HIGHEST)


def bartlett_table(
    z: Float[Array, "... d L"], m_max: int, df_offset: int = 0
) -> Float[Array, "... d m1"]:
    """Bartlett diagonal of a standard Wishart scatter for every group size m = 0..m_max.

    The scatter of m i.i.d. N(0, I_d) points is Wishart_d(m − 1, I) = A Aᵀ with A lower
    triangular, A_jj = √χ²_{m−1−j} and A_ij ~ N(0, 1) below the diagonal, columns j ≥ m − 1
    zero (see ``wishart``). Entry [..., j, m] is A_jj for a group of m points, from the
    j-th row of normals (one independent row per diagonal entry). The off-diagonal normals
    do not depend on m: draw them once and mask column j unless m ≥ j + 2.

    Args:
        z: standard normals, one row of L ≥ m_max − 1 + df_offset per diagonal entry.
        m_max: largest group size.
        df_offset: 0 for the exact law. A positive value draws χ² with that many extra
            degrees of freedom: a deliberately wrong law with which the law tests show
            they can fail. Never set it for results.
    """
    d, length = z.shape[-2], z.shape[-1]
    if length < m_max - 1 + df_offset:
        raise ValueError(f"need >= {m_max - 1 + df_offset} normals per row; got {length}")
    chi = jnp.sqrt(chisquare_table(z))  # [..., j, df]
    rows = []
    for j in range(d):
        # m ≤ j + 1: df = m − 1 − j ≤ 0, the column is dropped (zero); m ≥ j + 2: df ≥ 1.
        zeros = jnp.zeros((*z.shape[:-2], min(j + 2, m_max + 1)), z.dtype)
        rows.append(
            jnp.concatenate([zeros, chi[..., j, 1 + df_offset : m_max - j + df_offset]], -1)
        )
    return jnp.stack(rows, axis=-2)


def shared_inverse(cdf: Float[Array, "c k1"], u: Float[Array, " N"]) -> Int[Array, "N c"]:
    """K[i, c] = #{j : cdf[c, j] < u[i]}: Binomial (or any) inversion of N uniforms in C tables.

    Equal to ``binomial_inverse`` per entry. The uniforms are sorted once; for each table
    the position p_j of each CDF value among the sorted uniforms (``searchsorted``, side
    right) gives cdf[c, j] < u ⇔ p_j ≤ rank(u), so K at sorted position r is the number of
    p_j ≤ r: a histogram of the p_j, accumulated along r by a scan, then unsorted. Cost
    O(N log N + C·k log N + N·C) and memory N·C small integers, against C·N binary searches.

    Args:
        cdf: nondecreasing rows (e.g. ``binomial_cdf``), k1 ≤ 65535 entries.
        u: uniforms in [0, 1).

    Returns:
        uint8 counts when k1 ≤ 255, else uint16, shaped (N, C).
    """
    n, (c, k1) = u.shape[0], cdf.shape
    out = jnp.uint8 if k1 <= 255 else jnp.uint16
    if k1 > 65535:
        raise ValueError(f"at most 65535 CDF entries; got {k1}")
    order = jnp.argsort(u)
    pos = jnp.searchsorted(u[order], cdf.reshape(-1), side="right").reshape(c, k1)  # in 0..n
    cols = jnp.broadcast_to(jnp.arange(c)[:, None], pos.shape)
    hist = jnp.zeros((n + 1, c), out).at[pos, cols].add(jnp.ones((), out))

    def accumulate(total, row):
        total = total + row
        return total, total

    _, by_rank = jax.lax.scan(accumulate, jnp.zeros((c,), out), hist[:n])
    return jnp.zeros((n, c), out).at[order].set(by_rank)
