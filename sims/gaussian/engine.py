"""The phase-grid engine: a whole batch of (λ, γ) cells × seeds × generations of the Gaussian
loop with π_γ, from random tables shared by every cell (default engine of
``sims.gaussian.sweep.grid``).

Paper: Algorithm 1, eq. (5), Def. 4.1. Each generation refits θ = (μ, Σ) on groups of points
known only by their size, mean and scatter: the base group (the real set, or for
``accumulate`` everything so far), the K points π_γ keeps from p_θ, K ~ Binomial(k,
1/(1+γ)), and the k − K it replaces by draws of p_θ* = N(0, I). A group of m points of
N(μ, Σ = R Rᵀ) has mean μ + R z/√m and scatter R W Rᵀ, W ~ Wishart_d(m − 1, I) = A Aᵀ
(Bartlett), independent (Cochran) — the law of ``sims.gaussian.loop`` with
``correction="ideal"`` and of ``sims.gaussian.sweep_stats``, tested against both.

Why it is fast (same law, other random numbers than ``sweep_stats``):

1. Randomness is drawn per (seed, generation), not per cell: cells share seed keys, so all
   of a generation's randomness is one block of ``jax.random.bits`` from
   ``fold_in(key, t)`` (one random call for the whole grid, vmapped; generation t is still
   reproducible on its own), turned into uniforms and normals with ``jax.random``'s own
   formulas (``theory.sampling.uniform_from_bits``/``normal_from_bits``).
2. The kept count K does not depend on the state: for every (cell, seed, generation) it is
   looked up before the scan by inverting the shared uniform in the cell's Binomial CDF
   (``theory.sampling.shared_inverse``, exactly the per-step inversion).
3. The group draws are tabulated over every group size m = 0..m_max per (seed, generation):
   the Bartlett diagonal √χ²_{m−1−j} as partial sums of squared normals
   (``theory.sampling.bartlett_table``: exact χ² with integer df, no rejection loop), while
   the off-diagonal and mean normals do not depend on m. A cell reads its row m = K (kept)
   and m = k − K (replaced) with a gather; the kept scatter is (R A)(R A)ᵀ with R = Σ^{1/2}.
4. d = 2 stores each symmetric 2 × 2 matrix as three arrays with cells last and writes the
   products out (no [..., 2, 2] einsum or matmul); Σ^{1/2} and W2 to N(0, I) are closed
   forms: W2² = ‖μ‖² + tr Σ + 2 − 2·tr Σ^{1/2}, tr Σ^{1/2} = √(tr Σ + 2√det Σ). Other d use
   [..., d, d] arrays with one ``eigh`` per run and generation (tested against d = 2).
5. ``CellStats`` are accumulated in the scan carry (window sums for the stationary W2,
   shifted sums for the lag-1 autocorrelation, first generation of divergence and collapse)
   and seed reductions per generation (means; medians by a sorting network), so no per-run
   trace is ever stored; a batch of cells is one vectorised scan.

Memory: the tables hold about 2·d·(m_max + 1) floats per (seed, generation) — 15 MB for the
default grid, about 300 MB at n = 1,000 with λ up to 2 (m_max = 2,000) — and a batch its
kept counts (generations × seeds × cells small integers) and ~40 arrays of seeds × cells.

Extending (the data workflows and corrector families of other experiments):

- A workflow is a ``Workflow`` rule in ``RULES``: which group starts the fit (real set or
  none), whether the fit becomes the next base group (accumulation) and how many synthetic
  points a generation draws. A workflow whose groups keep this shape (e.g. spending the
  corrector's k − K oracle draws on fresh real data instead: a target group of fixed size and
  no kept/replaced split) is a new rule plus its counts in ``_counts``.
- The affine imperfect correctors (``theory.operators.Affine``: biased, shrinking, noisy)
  are in: ``imperfect_batch`` takes their parameters per cell (traced) and draws the kept
  group from N(μ, Σ + σ₁²I) and the replaced one from N(c + s(μ − c), s²Σ + Σ₂), reading
  the same tables through those laws' square roots.
- Another corrector family changes the law of the two synthetic groups, per cell: the kept count
  (any law on 0..m_max: pass its CDF instead of the Binomial's), the kept group's map (e.g.
  shrinking x ↦ c + s(x − c) is mean ↦ c + s(mean − c), scatter ↦ s²·scatter; added noise
  σ is the root of Σ + σ²I), and the replaced group's source (a biased p_c = N(μ_c, Σ_c) is
  mean μ_c + R_c z/√m, scatter R_c W R_cᵀ). Per-cell parameters travel beside λ and γ as
  arrays shaped (cells,); ``_Two.model``/``_Two.target`` (and the dense twins) are the
  places to apply them. Pointwise correctors without a sufficient statistic (top-k
  selection) need ``sims.gaussian.loop``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from sims.gaussian.cellstats import (
    BLOWUP,
    SWEEP_WORKFLOWS,
    CellStats,
    StatsSpec,
    earliest,
    marriott_pope,
    transient_rate,
)
from theory import gaussian as gauss
from theory import linalg, sampling
from theory import operators as ops

__all__ = [
    "RULES",
    "Layout",
    "Moments",
    "Tables",
    "Traces",
    "Workflow",
    "batch",
    "imperfect_batch",
    "layout_for",
    "tables",
    "traces",
]


@dataclasses.dataclass(frozen=True)
class Workflow:
    """How a generation's fit is assembled from groups.

    Attributes:
        real_in_fit: the real set is a group of every fit (``augment``, ``accumulate``).
        accumulates: every synthetic set stays in the fit: the fit becomes the base group.
        own_count: a generation draws n synthetic points (``replace``), else k = ⌊λn⌋.
    """

    real_in_fit: bool
    accumulates: bool
    own_count: bool


RULES = {
    "augment": Workflow(real_in_fit=True, accumulates=False, own_count=False),
    "accumulate": Workflow(real_in_fit=True, accumulates=True, own_count=False),
    "replace": Workflow(real_in_fit=False, accumulates=False, own_count=True),
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Static layout of one (seed, generation)'s random words.

    Word 0 is the uniform of the kept count; then, for the kept group and the replaced group
    in turn, d rows of ``length`` normals (the Bartlett diagonal's χ² partial sums), the
    d(d−1)/2 below-diagonal normals and the d mean normals.

    Attributes:
        dim: d.
        m_max: largest group size.
        df_offset: 0; > 0 plants a wrong law (χ² with extra degrees of freedom) for the
            law tests to show they fail on it (``theory.sampling.bartlett_table``).
    """

    dim: int
    m_max: int
    df_offset: int = 0

    @property
    def length(self) -> int:
        return max(self.m_max - 1 + self.df_offset, 0)

    @property
    def n_off(self) -> int:
        return self.dim * (self.dim - 1) // 2

    @property
    def group_words(self) -> int:
        return self.dim * self.length + self.n_off + self.dim

    @property
    def words(self) -> int:
        return 1 + 2 * self.group_words


class Group(NamedTuple):
    """Draws of one group for every group size: Bartlett diagonal [..., d, m_max + 1],
    below-diagonal normals [..., d(d−1)/2] (row-major lower triangle), mean normals [..., d]."""

    diag: Array
    off: Array
    z: Array


class Tables(NamedTuple):
    """One grid's randomness, shared by every cell: leading axes (generation t = 1..T, seed).

    Attributes:
        u: uniform of the kept count.
        model: draws of the kept points (from p_θ, mapped by Σ^{1/2}).
        target: draws of the replaced points (from p_θ* = N(0, I)).
    """

    u: Array
    model: Group
    target: Group


def _split_group(layout: Layout, z: Array) -> Group:
    d, length = layout.dim, layout.length
    rows = z[..., : d * length].reshape(*z.shape[:-1], d, length)
    diag = sampling.bartlett_table(rows, layout.m_max, layout.df_offset)
    rest = z[..., d * length :]
    return Group(diag, rest[..., : layout.n_off], rest[..., layout.n_off :])


def _bits(keys: jax.Array, words: int, dtype) -> Array:
    """``words`` random words per key (any leading shape), one vmapped ``random.bits``."""
    udtype = sampling.bits_dtype(dtype)
    out = jax.vmap(lambda k: jax.random.bits(k, (words,), udtype))(keys.reshape(-1))
    return out.reshape(*keys.shape, words)


def _lower(diag: Array, off: Array, d: int) -> Array:
    """Lower-triangular [..., d, d] from its diagonal and row-major below-diagonal entries."""
    rows, cols = np.tril_indices(d, -1)
    a = jnp.zeros((*diag.shape[:-1], d, d), diag.dtype)
    a = a.at[..., np.arange(d), np.arange(d)].set(diag)
    return a.at[..., rows, cols].set(off) if rows.size else a


def _off_mask(count: Array, d: int) -> Array:
    """[..., d(d−1)/2]: below-diagonal entry (i, j) exists when the group has m ≥ j + 2."""
    _, cols = np.tril_indices(d, -1)
    return count[..., None] >= jnp.asarray(cols + 2)


def _real_words(d: int, n: int) -> int:
    return d * max(n - 1, 0) + d * (d - 1) // 2 + d


def tables(layout: Layout, keys: jax.Array, generations: int, n_real: int, dtype):
    """Every generation's draws and the real set, for every seed (``keys``: one per seed).

    Generation t = 1..T draws from ``fold_in(key, t)``, the real set from ``fold_in(key, 0)``,
    all in one vmapped ``random.bits`` call.

    Returns:
        ``Tables`` (leading axes (T, seeds)) and the real set of n draws of p_data = N(0, I)
        as (mean [S, d], scatter [S, d, d]).
    """
    d = layout.dim
    real_words = _real_words(d, n_real)
    ts = jnp.arange(generations + 1)
    gen_keys = jax.vmap(lambda t: jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t))(ts)
    bits = _bits(gen_keys, max(layout.words, real_words), dtype)
    u = sampling.uniform_from_bits(bits[1:, :, 0], dtype)
    z = sampling.normal_from_bits(bits[1:, :, 1 : layout.words], dtype)
    z = z.reshape(*z.shape[:-1], 2, layout.group_words)
    tabs = Tables(u, _split_group(layout, z[..., 0, :]), _split_group(layout, z[..., 1, :]))
    real = _real_set(sampling.normal_from_bits(bits[0, :, :real_words], dtype), d, n_real)
    return tabs, real


def _real_set(z: Array, d: int, n: int) -> tuple[Array, Array]:
    """Mean z̄/√n and Bartlett scatter A Aᵀ ~ Wishart_d(n − 1, I) of n standard points."""
    length = max(n - 1, 0)
    rows = z[..., : d * length].reshape(*z.shape[:-1], d, length)
    df = np.maximum(n - 1 - np.arange(d), 0)
    use = np.arange(length)[None, :] < df[:, None]  # row j sums its first n − 1 − j squares
    diag = jnp.sqrt(jnp.sum(jnp.where(use, rows * rows, 0.0), axis=-1))
    rest = z[..., d * length :]
    n_off = d * (d - 1) // 2
    off = jnp.where(_off_mask(jnp.full(z.shape[:-1], n), d), rest[..., :n_off], 0.0)
    a = _lower(diag, off, d)
    return rest[..., n_off:] / np.sqrt(n), a @ jnp.swapaxes(a, -1, -2)


# ---------------------------------------------------------------------------------------
# State algebra. A state θ = (mean, cov); per run and cell, arrays shaped (seeds, cells).


class Obs(NamedTuple):
    """Per-run observations of one θ: coordinates of μ (a list of d arrays), W2(θ, θ*),
    ‖θ − θ*‖, λ_min(Σ), log|det Σ|, finite and not exploded."""

    mu: list
    w2: Array
    err: Array
    min_eig: Array
    log_det: Array
    finite: Array


class _Two:
    """d = 2: θ = ((μ₀, μ₁), (a, b, c)) with Σ = [[a, b], [b, c]], every product written out."""

    @staticmethod
    def from_dense(mean: Array, cov: Array):
        return (mean[..., 0], mean[..., 1]), (cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1])

    @staticmethod
    def coords(mean) -> list:
        return list(mean)

    @staticmethod
    def _sqrt_parts(cov):
        """(Σ^{1/2}, det Σ, tr Σ^{1/2}): Σ^{1/2} = (Σ + √det·I)/tr Σ^{1/2}."""
        a, b, c = cov
        det = a * c - b * b
        sd = jnp.sqrt(jnp.maximum(det, 0.0))
        tq = jnp.sqrt(jnp.maximum(a + c + 2.0 * sd, 0.0))  # tr Σ^{1/2}
        inv = jnp.where(tq > 0, 1.0 / jnp.where(tq > 0, tq, 1.0), 0.0)
        return ((a + sd) * inv, b * inv, (c + sd) * inv), det, tq

    @staticmethod
    def sqrt(cov):
        return _Two._sqrt_parts(cov)[0]

    @staticmethod
    def var0(theta):
        return theta[1][0]

    @staticmethod
    def affine(theta, corr: ops.Affine):
        """Laws of the kept and the moved points under a per-cell ``Affine`` corrector:
        N(μ, Σ + σ₁²I) and N(c + s(μ − c), s²Σ + Σ₂) (``theory.operators.Affine``)."""
        (m0, m1), (a, b, c) = theta
        v, s = corr.noise_var, corr.shrink
        c0, c1 = corr.center[..., 0], corr.center[..., 1]
        r = corr.replace_cov
        kept = ((m0, m1), (a + v, b, c + v))
        moved_mean = (c0 + s * (m0 - c0), c1 + s * (m1 - c1))
        s2 = s * s
        moved = (moved_mean, (s2 * a + r[..., 0, 0], s2 * b + r[..., 0, 1], s2 * c + r[..., 1, 1]))
        return kept, moved

    @staticmethod
    def analyse(theta):
        """Σ^{1/2} = (Σ + √det·I)/tr Σ^{1/2} and the observations, sharing the square roots."""
        (m0, m1), (a, b, c) = theta
        root, det, tq = _Two._sqrt_parts((a, b, c))
        tr = a + c
        norm2 = m0 * m0 + m1 * m1
        big = jnp.maximum(jnp.maximum(jnp.abs(a), jnp.abs(b)), jnp.abs(c))
        obs = Obs(
            mu=[m0, m1],
            w2=jnp.sqrt(jnp.maximum(norm2 + tr + 2.0 - 2.0 * tq, 0.0)),
            err=jnp.sqrt(norm2 + (a - 1.0) ** 2 + 2.0 * b * b + (c - 1.0) ** 2),
            min_eig=0.5 * tr - jnp.sqrt(jnp.maximum(0.25 * tr * tr - det, 0.0)),
            log_det=jnp.log(jnp.abs(det)),
            finite=jnp.isfinite(m0 + m1 + a + b + c) & (big < BLOWUP),
        )
        return root, obs

    @staticmethod
    def model(theta, root, diag, off, z, count):
        """Mean μ + R z and scatter (R A)(R A)ᵀ of the kept points, A = [[a0, 0], [o, a1]]."""
        (m0, m1), _ = theta
        r00, r01, r11 = root
        a0, a1 = diag
        o = jnp.where(count >= 2, off[..., 0], 0.0)
        b00, b01 = r00 * a0 + r01 * o, r01 * a1
        b10, b11 = r01 * a0 + r11 * o, r11 * a1
        z0, z1 = z
        mean = (m0 + r00 * z0 + r01 * z1, m1 + r01 * z0 + r11 * z1)
        return mean, (b00 * b00 + b01 * b01, b00 * b10 + b01 * b11, b10 * b10 + b11 * b11)

    @staticmethod
    def target(diag, off, z, count):
        """Mean z and scatter A Aᵀ of the replaced points (p_θ* = N(0, I))."""
        a0, a1 = diag
        o = jnp.where(count >= 2, off[..., 0], 0.0)
        return tuple(z), (a0 * a0, a0 * o, o * o + a1 * a1)

    @staticmethod
    def merge(groups):
        """MLE of the union of (count, mean, scatter) groups (Chan et al.'s parallel merge,
        as ``theory.gaussian.fit_groups``)."""
        total = sum(g[0] for g in groups)
        mean = tuple(sum(g[0] * g[1][i] for g in groups) / total for i in range(2))
        s00 = s01 = s11 = 0.0
        for count, m, (a, b, c) in groups:
            d0, d1 = m[0] - mean[0], m[1] - mean[1]
            s00 = s00 + a + count * d0 * d0
            s01 = s01 + b + count * d0 * d1
            s11 = s11 + c + count * d1 * d1
        return mean, (s00 / total, s01 / total, s11 / total)

    @staticmethod
    def scatter(theta, count):
        mean, cov = theta
        return mean, tuple(count * s for s in cov)


class _Dense:
    """Any d: θ = (μ [..., d], Σ [..., d, d]); one ``eigh`` per run and generation."""

    @staticmethod
    def from_dense(mean: Array, cov: Array):
        return mean, cov

    @staticmethod
    def coords(mean) -> list:
        return [mean[..., i] for i in range(mean.shape[-1])]

    @staticmethod
    def analyse(theta):
        mean, cov = theta
        w, v = linalg.eigh(cov)
        sq = jnp.sqrt(jnp.maximum(w, 0.0))
        root = jnp.einsum("...ij,...j,...kj->...ik", v, sq, v)
        d = mean.shape[-1]
        norm2 = jnp.sum(mean * mean, axis=-1)
        tr = jnp.trace(cov, axis1=-2, axis2=-1)
        eye = jnp.eye(d, dtype=cov.dtype)
        big = jnp.max(jnp.abs(cov), axis=(-2, -1))
        obs = Obs(
            mu=_Dense.coords(mean),
            w2=jnp.sqrt(jnp.maximum(norm2 + tr + d - 2.0 * jnp.sum(sq, axis=-1), 0.0)),
            err=jnp.sqrt(norm2 + jnp.sum((cov - eye) ** 2, axis=(-2, -1))),
            min_eig=w[..., 0],
            log_det=jnp.sum(jnp.log(jnp.abs(w)), axis=-1),
            finite=jnp.all(jnp.isfinite(mean), axis=-1)
            & jnp.all(jnp.isfinite(cov), axis=(-2, -1))
            & (big < BLOWUP),
        )
        return root, obs

    @staticmethod
    def sqrt(cov):
        return jnp.vectorize(gauss.sqrtm_psd, signature="(d,d)->(d,d)")(cov)

    @staticmethod
    def var0(theta):
        return theta[1][..., 0, 0]

    @staticmethod
    def affine(theta, corr: ops.Affine):
        mean, cov = theta
        d = mean.shape[-1]
        eye = jnp.eye(d, dtype=cov.dtype)
        s = corr.shrink[..., None]
        kept = (mean, cov + corr.noise_var[..., None, None] * eye)
        moved_mean = corr.center + s * (mean - corr.center)
        moved = (moved_mean, (s * s)[..., None] * cov + corr.replace_cov)
        return kept, moved

    @staticmethod
    def model(theta, root, diag, off, z, count):
        mean, _ = theta
        d = mean.shape[-1]
        a = _lower(jnp.stack(diag, axis=-1), jnp.where(_off_mask(count, d), off, 0.0), d)
        ra = root @ a
        return mean + jnp.einsum("...ij,...j->...i", root, z), ra @ jnp.swapaxes(ra, -1, -2)

    @staticmethod
    def target(diag, off, z, count):
        d = z.shape[-1]
        a = _lower(jnp.stack(diag, axis=-1), jnp.where(_off_mask(count, d), off, 0.0), d)
        return z, a @ jnp.swapaxes(a, -1, -2)

    @staticmethod
    def merge(groups):
        total = sum(g[0] for g in groups)
        mean = sum(g[0][..., None] * g[1] for g in groups) / total[..., None]
        scatter = 0.0
        for count, m, s in groups:
            dev = m - mean
            scatter = scatter + s + count[..., None, None] * dev[..., :, None] * dev[..., None, :]
        return mean, scatter / total[..., None, None]

    @staticmethod
    def scatter(theta, count):
        mean, cov = theta
        return mean, count[..., None, None] * cov


def _algebra(d: int):
    return _Two if d == 2 else _Dense


# ---------------------------------------------------------------------------------------
# Seed medians by a sorting network (XLA's CPU sort calls a comparator per comparison).

_NETWORK_MAX = 64  # larger seed counts use jnp.median (a network would bloat compilation)


@functools.cache
def _batcher(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators of Batcher's odd–even merge sort of n = 2^p inputs."""
    pairs: list[tuple[int, int]] = []

    def merge(lo, hi, r):
        step = 2 * r
        if step < hi - lo:
            merge(lo, hi, step)
            merge(lo + r, hi, step)
            pairs.extend((i, i + r) for i in range(lo + r, hi - r, step))
        else:
            pairs.append((lo, lo + r))

    def sort(lo, hi):
        if hi - lo >= 1:
            mid = lo + (hi - lo) // 2
            sort(lo, mid)
            sort(mid + 1, hi)
            merge(lo, hi, 1)

    sort(0, n - 1)
    return tuple(pairs)


def seed_median(x: Array) -> Array:
    """Median over the leading (seed) axis, NaN where any entry is NaN (as ``jnp.median``).

    Up to 64 seeds: a sorting network padded to a power of two with ∓inf at the ends;
    ``min``/``max`` propagate NaN and every output of a sorting network depends on every
    input. Unused comparators are removed by XLA's dead-code elimination.
    """
    s = x.shape[0]
    if s > _NETWORK_MAX:
        return jnp.median(x, axis=0)
    size = 1 << max(s - 1, 0).bit_length()
    lo_pad = (size - s) // 2
    inf = jnp.full(x.shape[1:], jnp.inf, x.dtype)
    rows = [-inf] * lo_pad + [x[i] for i in range(s)] + [inf] * (size - s - lo_pad)
    for i, j in _batcher(size):
        rows[i], rows[j] = jnp.minimum(rows[i], rows[j]), jnp.maximum(rows[i], rows[j])
    return 0.5 * (rows[lo_pad + (s - 1) // 2] + rows[lo_pad + s // 2])


# ---------------------------------------------------------------------------------------
# One batch of cells.


def _counts(spec: StatsSpec, own, lams: Array, gammas: Array, m_max: int, dtype):
    """Per cell: synthetic count k (float) and the CDF of the kept count K ~ Bin(k, 1/(1+γ)).

    ``own``: the workflow draws n points (replace), a Python bool or one flag per cell."""
    k = jnp.minimum(ops.n_synthetic(lams, spec.n_real), spec.k_max).astype(dtype)
    k = jnp.where(own, jnp.asarray(spec.n_real, dtype), k)
    q = 1.0 / (1.0 + gammas.astype(dtype))
    cdf = jax.vmap(sampling.binomial_cdf, in_axes=(0, 0, None))(k, q, m_max)
    return k, cdf


def _gather(diag: Array, index: Array) -> list:
    """Row ``index`` [S, C] of each Bartlett diagonal table [S, d, m1] → d arrays [S, C]."""
    return [jnp.take_along_axis(diag[:, j, :], index, axis=1) for j in range(diag.shape[1])]


def _rule(spec: StatsSpec, codes):
    """(real_in_fit, accumulates, own_count): Python bools for ``spec.workflow``, or with
    ``codes`` (an index into ``SWEEP_WORKFLOWS`` per cell) boolean arrays shaped (cells,)."""
    if codes is None:
        rule = RULES[spec.workflow]
        return rule.real_in_fit, rule.accumulates, rule.own_count
    flags = [
        jnp.asarray([getattr(RULES[w], f) for w in SWEEP_WORKFLOWS])
        for f in ("real_in_fit", "accumulates", "own_count")
    ]
    return tuple(f[codes] for f in flags)


def _simulate(
    spec, layout, tabs: Tables, real, lams, gammas, codes=None, *, trace, alg=None, corr=None
):
    """Scans generations 1..T for every (seed, cell) of the batch.

    Returns per generation t = 0..T either seed reductions (``trace=False``) or per-run
    observations, plus the per-run accumulators and θ_T's observations. ``codes`` (one
    ``SWEEP_WORKFLOWS`` index per cell) mixes workflows in one compilation: the base group is then
    carried for every cell (empty for replace, updated only for accumulate) instead of being
    specialised away. ``alg`` forces the state algebra (default: the closed forms for d = 2,
    dense otherwise; tests compare them). ``corr``: None (the ideal π_γ toward N(0, I)) or an
    ``theory.operators.Affine`` whose leaves carry a leading cell axis: the kept group is
    then drawn from N(μ, Σ + σ₁²I) and the replaced one from N(c + s(μ − c), s²Σ + Σ₂)
    (the same tables, mapped by those laws' square roots), and the accumulators also sum
    μ₀, μ₀² and Σ₀₀ over the stationary window (``imperfect_batch``).
    """
    dtype = tabs.u.dtype
    d, n, start = spec.dim, spec.n_real, spec.start
    real_in, accumulates, own = _rule(spec, codes)
    mixed = codes is not None
    alg = _algebra(d) if alg is None else alg
    n_gen, n_seed = tabs.u.shape
    n_cell = lams.shape[0]
    lane = (n_seed, n_cell)
    k, cdf = _counts(spec, own, lams, gammas, layout.m_max, dtype)
    kept = sampling.shared_inverse(cdf, tabs.u.reshape(-1)).reshape(n_gen, n_seed, n_cell)
    k_lane = jnp.broadcast_to(k[None, :], lane)
    k_int = k_lane.astype(jnp.int32)

    real_mean, real_scatter = real
    start_mean = real_mean.at[:, 0].add(spec.displacement)
    theta0 = alg.from_dense(
        jnp.broadcast_to(start_mean[:, None], (*lane, d)),
        jnp.broadcast_to(real_scatter[:, None] / n, (*lane, d, d)),
    )
    base = None
    carry_base = mixed or accumulates  # the base changes every generation: carry it per lane
    if mixed or real_in:
        base_mean, base_scatter = alg.from_dense(real_mean[:, None], real_scatter[:, None])
        base = (jnp.full((n_seed, 1), float(n), dtype), base_mean, base_scatter)
        if carry_base:
            base = jax.tree.map(lambda a: jnp.broadcast_to(a, lane + a.shape[2:]), base)
        if mixed:  # no real group in replace: weight 0, scatter 0
            weight = jnp.broadcast_to(real_in.astype(dtype)[None, :], lane)
            base = (base[0] * weight, *alg.scatter(base[1:], weight))

    zeros = jnp.zeros(lane, dtype)
    never = jnp.full(lane, -1, jnp.int32)
    acc0 = {
        "w2": zeros,
        "ref": [zeros] * d,
        "sum": [zeros] * d,
        "sq": [zeros] * d,
        "lag": [zeros] * d,
        "diverged": never,
        "collapsed": never,
    }
    if corr is not None:
        acc0.update(m1=zeros, m2=zeros, v0=zeros)

    def observe(acc, obs, g, new_mu, var0=None):
        """Adds θ_g's observations to the accumulators (new_mu: μ_{g+1}, unused at g = T)."""
        at_start, inside = g == start, g >= start
        ref = [jnp.where(at_start, m, r) for m, r in zip(obs.mu, acc["ref"], strict=True)]
        v = [m - r for m, r in zip(obs.mu, ref, strict=True)]
        keep = lambda x: jnp.where(inside, x, 0.0)  # noqa: E731
        out = {
            "w2": acc["w2"] + keep(obs.w2),
            "ref": ref,
            "sum": [s + keep(x) for s, x in zip(acc["sum"], v, strict=True)],
            "sq": [s + keep(x * x) for s, x in zip(acc["sq"], v, strict=True)],
            "lag": acc["lag"],
            "diverged": jnp.where((acc["diverged"] < 0) & ~obs.finite, g, acc["diverged"]),
            "collapsed": jnp.where(
                (acc["collapsed"] < 0) & (obs.min_eig < spec.collapse_tol), g, acc["collapsed"]
            ),
        }
        if var0 is not None:
            m = obs.mu[0]
            out.update(
                m1=acc["m1"] + keep(m), m2=acc["m2"] + keep(m * m), v0=acc["v0"] + keep(var0)
            )
        nxt = [m - r for m, r in zip(new_mu, ref, strict=True)]
        pair = inside & (g < n_gen)
        out["lag"] = [
            s + jnp.where(pair, x * y, 0.0) for s, x, y in zip(acc["lag"], v, nxt, strict=True)
        ]
        return out

    def emit(obs):
        if trace:
            return obs
        m0 = obs.mu[0]
        mean0 = jnp.mean(m0, axis=0)
        dev = m0 - mean0[None]
        se = jnp.sqrt(jnp.sum(dev * dev, axis=0) / (n_seed - 1) / n_seed)
        return {
            "mean0": mean0,
            "se0": se,
            "w2_mean": jnp.mean(obs.w2, axis=0),
            # One sorting network for both medians (compilation grows with its size).
            "medians": seed_median(jnp.stack([obs.w2, obs.min_eig], axis=1)),
            "err_mean": jnp.mean(obs.err, axis=0),
            "log_det_mean": jnp.mean(obs.log_det, axis=0),
        }

    fixed = None if carry_base else base

    def step(carry, xs):
        theta, carried, acc = carry
        base_t = carried if carry_base else fixed
        count, model_t, target_t, t = xs
        kc = count.astype(jnp.int32)
        rc = k_int - kc
        kf, rf = kc.astype(dtype), rc.astype(dtype)
        root, obs = alg.analyse(theta)
        inv_k, inv_r = jax.lax.rsqrt(jnp.maximum(kf, 1.0)), jax.lax.rsqrt(jnp.maximum(rf, 1.0))
        zk = [model_t.z[:, None, i] * inv_k for i in range(d)]
        zr = [target_t.z[:, None, i] * inv_r for i in range(d)]
        if alg is _Dense:
            zk, zr = jnp.stack(zk, -1), jnp.stack(zr, -1)
        off_k, off_r = model_t.off[:, None, :], target_t.off[:, None, :]
        if corr is None:
            mk, sk = alg.model(theta, root, _gather(model_t.diag, kc), off_k, zk, kc)
            mr, sr = alg.target(_gather(target_t.diag, rc), off_r, zr, rc)
        else:
            kept_law, moved_law = alg.affine(theta, corr)
            root_k = alg.sqrt(kept_law[1])
            mk, sk = alg.model(kept_law, root_k, _gather(model_t.diag, kc), off_k, zk, kc)
            root_m = alg.sqrt(moved_law[1])
            mr, sr = alg.model(moved_law, root_m, _gather(target_t.diag, rc), off_r, zr, rc)
        groups = [(kf, mk, sk), (rf, mr, sr)]
        if base_t is not None:
            groups.insert(0, base_t)
        new = alg.merge(groups)
        if carry_base:
            total = base_t[0] + k_lane
            grown = (total, *alg.scatter(new, total))
            if mixed:
                keep = accumulates[None, :]
                grown = jax.tree.map(
                    lambda a, b: jnp.where(keep.reshape(keep.shape + (1,) * (a.ndim - 2)), a, b),
                    grown,
                    base_t,
                )
            carried = grown
        var0 = None if corr is None else alg.var0(theta)
        acc = observe(acc, obs, t - 1, alg.coords(new[0]), var0)
        new = jax.tree.map(lambda a, b: jnp.where(t > n_gen, a, b), theta, new)
        return (new, carried, acc), emit(obs)

    # T + 1 steps: step t observes θ_{t−1}, so the last one observes θ_T (its update is
    # discarded and θ_T kept); emit and its sorting network are traced once, in the scan.
    pad = lambda a: jnp.concatenate([a, a[-1:]])  # noqa: E731
    xs = (
        pad(kept),
        jax.tree.map(pad, tabs.model),
        jax.tree.map(pad, tabs.target),
        jnp.arange(1, n_gen + 2, dtype=jnp.int32),
    )
    carry = (theta0, base if carry_base else None, acc0)
    (theta_t, _, acc), ys = jax.lax.scan(step, carry, xs)
    _, last = alg.analyse(theta_t)
    return ys, acc, last


def _finish(spec: StatsSpec, ys: dict, acc: dict, last: Obs) -> CellStats:
    """``CellStats`` (leaves with a leading cell axis) from the scan's reductions."""
    start, n_gen = spec.start, spec.generations
    mean0 = ys["mean0"].T  # (C, T + 1)
    se = ys["se0"].T
    d_t = mean0 - jnp.mean(mean0[:, start:], axis=1, keepdims=True)
    rate, points = jax.vmap(transient_rate, in_axes=(0, 0, None))(d_t, se, start)
    ac = _autocorr(acc, last, n_gen - start)
    diverged, collapsed = acc["diverged"], acc["collapsed"]
    healthy = (diverged < 0) & (collapsed < 0)
    ac = jnp.sum(jnp.where(healthy, ac, 0.0), axis=0) / jnp.sum(healthy, axis=0)
    stat_w2 = acc["w2"] / (n_gen - start + 1)
    # Once per batch: XLA's sort costs less to compile here than a second sorting network.
    stat_median, final_median = jnp.median(jnp.stack([stat_w2, last.w2], axis=1), axis=0)
    frac = lambda flags: jnp.mean(flags.astype(stat_w2.dtype), axis=0)  # noqa: E731
    curve = lambda name: ys[name].T  # noqa: E731
    return CellStats(
        transient=d_t,
        transient_se=se,
        w2_mean=curve("w2_mean"),
        w2_median=ys["medians"][:, 0].T,
        err_mean=curve("err_mean"),
        min_eig_median=ys["medians"][:, 1].T,
        log_det_mean=curve("log_det_mean"),
        rate_transient=rate,
        rate_points=points,
        rate_autocorr=ac,
        stationary_w2_mean=jnp.mean(stat_w2, axis=0),
        stationary_w2_median=stat_median,
        final_w2_mean=jnp.mean(last.w2, axis=0),
        final_w2_median=final_median,
        diverged_frac=frac(diverged >= 0),
        diverged_at=earliest(diverged, axis=0),
        collapsed_frac=frac(collapsed >= 0),
        collapsed_at=earliest(collapsed, axis=0),
    )


def _autocorr(acc: dict, last: Obs, pairs: int) -> Array:
    """Per run: lag-1 autocorrelation of μ_t over t ≥ start, averaged over coordinates.

    The scan kept, per coordinate, sums of v_t = μ_t − μ_start over t = start..T (values and
    squares) and of v_t v_{t+1} over t = start..T−1 (shifted sums stay precise in float32).
    Pairs are x = v_start..v_{T−1} and y = v_{start+1}..v_T; v_start = 0 exactly.
    """
    out = 0.0
    for ref, total, sq, lag, mu_t in zip(
        acc["ref"], acc["sum"], acc["sq"], acc["lag"], last.mu, strict=True
    ):
        v_t = mu_t - ref
        sx, sxx = total - v_t, sq - v_t * v_t
        sy, syy = total, sq
        cxx = sxx - sx * sx / pairs
        cyy = syy - sy * sy / pairs
        cxy = lag - sx * sy / pairs
        out = out + marriott_pope(cxy / jnp.sqrt(cxx * cyy), pairs)
    return out / len(acc["ref"])


def batch(
    spec: StatsSpec, layout: Layout, tabs: Tables, real, lams, gammas, codes=None
) -> CellStats:
    """``CellStats`` of a batch of cells (``lams``, ``gammas``: one entry per cell, shape
    (C,); ``codes``: optional ``SWEEP_WORKFLOWS`` index per cell, else ``spec.workflow``), every
    seed of ``tabs``; leaves with a leading cell axis."""
    ys, acc, last = _simulate(spec, layout, tabs, real, lams, gammas, codes, trace=False)
    return _finish(spec, ys, acc, last)


class Moments(NamedTuple):
    """Stationary moments of coordinate 0 per cell: seed means of each run's averages over
    the window t = start..T, and their standard errors (SE over seeds). With p_data = N(0, I)
    and a corrector acting coordinate-wise, coordinate 0 of the d-dimensional loop *is* the
    1-D loop, so these are ``theory.chains.augment_stationary``'s (E μ, E(μ − m*)², E σ²).

    Attributes:
        mean, mean_se: E μ₀.
        msq, msq_se: E μ₀² (m* = 0: the mean's stationary MSE).
        var, var_se: E Σ₀₀.
    """

    mean: Array
    mean_se: Array
    msq: Array
    msq_se: Array
    var: Array
    var_se: Array


def _moments(spec: StatsSpec, acc: dict) -> Moments:
    count = spec.generations - spec.start + 1
    out = []
    for name in ("m1", "m2", "v0"):
        per_run = acc[name] / count  # (S, C)
        s = per_run.shape[0]
        out += [jnp.mean(per_run, axis=0), jnp.std(per_run, axis=0, ddof=1) / np.sqrt(s)]
    return Moments(*out)


def imperfect_batch(
    spec: StatsSpec, layout: Layout, tabs: Tables, real, lams, gammas, corr: ops.Affine, codes=None
) -> tuple[CellStats, Moments]:
    """``batch`` with a per-cell affine corrector (``theory.operators.Affine``, leaves with a
    leading cell axis: center (C, d), shrink (C,), replace_cov (C, d, d), noise_var (C,)):
    its parameters are traced like λ and γ, so a map over them compiles once. p_data stays
    N(0, I) (``real`` may be any real set's (mean, scatter)); ``Affine.ideal`` of N(0, I) is
    ``batch``'s law. ``codes`` (one ``SWEEP_WORKFLOWS`` index per cell) mixes workflows in
    one compilation, as in ``batch``."""
    ys, acc, last = _simulate(spec, layout, tabs, real, lams, gammas, codes, trace=False, corr=corr)
    return _finish(spec, ys, acc, last), _moments(spec, acc)


def layout_for(spec: StatsSpec, df_offset: int = 0, workflows=None) -> Layout:
    """The draws' layout: groups up to the largest size any of ``workflows`` (default
    ``spec.workflow``) draws."""
    names = (spec.workflow,) if workflows is None else workflows
    m_max = max(dataclasses.replace(spec, workflow=w).group_max for w in names)
    return Layout(spec.dim, m_max, df_offset)


class Traces(NamedTuple):
    """Per-run observations for generations 0..T: leaves shaped (cells, seeds, T + 1[, d])."""

    mu: Array
    w2: Array
    err: Array
    min_eig: Array
    log_det: Array
    finite: Array


@functools.partial(jax.jit, static_argnames=("spec", "df_offset"))
def traces(
    spec: StatsSpec,
    keys: jax.Array,
    lams: Float[Array, " c"],
    gammas: Float[Array, " c"],
    df_offset: int = 0,
    corr: ops.Affine | None = None,
) -> Traces:
    """Every run's trajectory for a few cells (law tests; a grid keeps only ``CellStats``).

    Args:
        spec: static sweep description.
        keys: one key per run (seed).
        lams, gammas: one entry per cell.
        df_offset: 0; > 0 plants the wrong law of ``Layout`` (tests only).
        corr: None (ideal π_γ) or a per-cell ``theory.operators.Affine`` (``imperfect_batch``).
    """
    dtype = jnp.result_type(float)
    layout = layout_for(spec, df_offset)
    tabs, real = tables(layout, keys, spec.generations, spec.n_real, dtype)
    lams, gammas = jnp.asarray(lams, dtype), jnp.asarray(gammas, dtype)
    if corr is not None:
        corr = jax.tree.map(lambda a: jnp.asarray(a, dtype), corr)
    obs, _, _ = _simulate(spec, layout, tabs, real, lams, gammas, trace=True, corr=corr)
    per_run = lambda a: jnp.moveaxis(a, 0, -1)  # (T1, S, C) → (S, C, T1)  # noqa: E731
    cells_first = lambda a: jnp.swapaxes(per_run(a), 0, 1)  # noqa: E731
    mu = jnp.stack([cells_first(m) for m in obs.mu], axis=-1)
    return Traces(
        mu, *(cells_first(getattr(obs, f)) for f in ("w2", "err", "min_eig", "log_det", "finite"))
    )
