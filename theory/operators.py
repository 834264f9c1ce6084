"""The correction operator π_γ and the retraining operator G_λ.

Paper: Def. 4.1 (eq. 4), eq. (5), Algorithm 1, §4 (the Gaussian toy's histogram corrector).

**One corrector interface** for the whole project, from the ideal π_γ to K-means and physics::

    corrector(key, x, labels=None, *, mask=None) -> x'

A batch of samples in, a corrected batch of the same shape out. ``mask`` (bool, one per
sample) marks the valid rows of a fixed-size buffer, so a sweep over λ compiles once;
correctors that use the batch's empirical law (the histograms) honour it, pointwise ones
ignore it, and invalid rows come back unchanged. Build correctors with ``make_corrector``
or the factories below; γ may be a traced array.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, Bool, Float

from theory import gaussian as gauss
from theory._checks import as_float, check_nonneg, is_traced

__all__ = [
    "CORRECTIONS",
    "IMPERFECT",
    "SELECTIONS",
    "Affine",
    "Corrector",
    "Family",
    "Selector",
    "affine",
    "band",
    "biased",
    "histogram",
    "histogram_reference",
    "ideal",
    "identity",
    "make_corrector",
    "make_selector",
    "n_candidates",
    "n_synthetic",
    "noisy",
    "retrain",
    "shrinking",
    "top_k",
    "validate_affine",
]

CORRECTIONS = ("ideal", "histogram", "histogram-reference", "identity")
# Not in CORRECTIONS (the CLI's --correction choices): they need parameters beyond γ, which
# no command exposes yet; ``make_corrector`` builds them from keyword arguments.
IMPERFECT = ("affine", "biased", "shrinking", "noisy")
SELECTIONS = ("top-k", "band")


class Corrector(Protocol):
    def __call__(
        self,
        key: jax.Array,
        x: Float[Array, "k d"],
        labels: Array | None = None,
        *,
        mask: Bool[Array, " k"] | None = None,
    ) -> Float[Array, "k d"]: ...


class Selector(Protocol):
    def __call__(
        self,
        key: jax.Array,
        x: Float[Array, "m d"],
        labels: Array | None = None,
        *,
        mask: Bool[Array, " m"] | None = None,
    ) -> Bool[Array, " m"]: ...


class Family(Protocol):
    """A parametric family usable by the loops: ``theory.gaussian`` is one."""

    def fit(self, x: Array, weights: Array | None = None): ...

    def sample(self, key: jax.Array, params, n: int) -> Array: ...

    def logpdf(self, params, x: Array) -> Array: ...


def _keep_probability(gamma) -> Array:
    """1/(1+γ): the weight of p_θ in π_γ p_θ (0 at γ = inf)."""
    return 1.0 / (1.0 + as_float(gamma))


def _valid(x: Array, mask: Array | None) -> Array:
    return jnp.ones(x.shape[0], bool) if mask is None else mask


def identity() -> Corrector:
    """No correction (γ = 0)."""

    def correct(key, x, labels=None, *, mask=None):
        del key, labels, mask
        return x

    return correct


def ideal(gamma, target: gauss.Gaussian) -> Corrector:
    """π_γ exactly: each sample kept with probability 1/(1+γ), else replaced by a draw of p_θ*.

    Paper: Def. 4.1, eq. (4); "a sample from π_γ p_θ is a sample of p_θ kept with probability
    1/(1+γ), otherwise replaced by a sample of p_θ*".
    """
    check_nonneg("gamma", gamma)

    def correct(key, x, labels=None, *, mask=None):
        del labels, mask
        k_keep, k_new = jax.random.split(key)
        keep = jax.random.uniform(k_keep, (x.shape[0],), x.dtype) < _keep_probability(gamma)
        fresh = gauss.sample(k_new, target, x.shape[0]).astype(x.dtype)
        return jnp.where(keep[:, None], x, fresh)

    return correct


def _histogram_edges(x: Array, valid: Array, bins: int) -> tuple[Array, Array]:
    """Per-dimension bin origin and width of ``np.histogram2d(x, bins)`` over valid rows.

    NumPy takes the range [min, max] of the data and widens a degenerate range to ±0.5.
    """
    lo = jnp.min(jnp.where(valid[:, None], x, jnp.inf), axis=0)
    hi = jnp.max(jnp.where(valid[:, None], x, -jnp.inf), axis=0)
    same = lo == hi
    lo, hi = jnp.where(same, lo - 0.5, lo), jnp.where(same, hi + 0.5, hi)
    return lo, (hi - lo) / bins


def _numpy_cells(x: Array, lo: Array, width: Array, bins: int) -> Array:
    """NumPy's bin index of each row: right-open bins, the maximum goes in the last bin."""
    idx = jnp.floor((x - lo[None, :]) / width[None, :]).astype(jnp.int32)
    idx = jnp.clip(idx, 0, bins - 1)
    # NumPy compares against edges lo + i·width: fix the rare round-off at a bin boundary.
    left = lo[None, :] + idx.astype(x.dtype) * width[None, :]
    idx = jnp.where(x < left, idx - 1, idx)
    idx = jnp.where(x >= left + width[None, :], idx + 1, idx)
    return jnp.clip(idx, 0, bins - 1)


def _pick(u: Float[Array, " num"], weights: Float[Array, " w"]) -> Array:
    """Indices into ``weights`` drawn ∝ weights, one per uniform in ``u`` (inverse CDF).

    Zero-weight entries are never drawn; the vector is short (a batch of rows plus one), so
    comparing every draw with the whole CDF is cheaper than a sort or a search.
    """
    cdf = jnp.cumsum(weights)
    hits = jnp.sum(cdf[None, :] <= (u * cdf[-1])[:, None], axis=1)
    return jnp.minimum(hits, weights.shape[0] - 1)


def _row_or_target(u, valid: Array, row_weights: Array, keep) -> Array:
    """Mixture component of one draw per uniform in ``u``: a valid row ∝ ``row_weights``,
    with total probability ∝ ``keep`` · Σ row_weights / #valid, else index ``len(valid)``
    (the target), with probability ∝ 1 − keep."""
    n_valid = jnp.maximum(jnp.sum(valid), 1).astype(row_weights.dtype)
    rows = jnp.where(valid, keep * row_weights / n_valid, 0.0)
    return _pick(u, jnp.append(rows, 1.0 - keep))


def _standard_normal(u: Array) -> Array:
    """N(0, 1) draws from ``jax.random.uniform`` draws (a grid of spacing eps in [0, 1)),
    through the normal quantile at each grid cell's midpoint, so none is infinite.

    Lets a corrector take all of one round's randomness from a single ``uniform`` call: on
    XLA:CPU each call of the default PRNG is a loop of its own (dozens of small kernels).
    """
    return ndtri(u + 0.5 * jnp.finfo(u.dtype).eps)


def histogram(gamma, target: gauss.Gaussian, bins: int = 10) -> Corrector:
    """The toy's corrector sampled exactly: fresh draws of (1−t)·hist + t·p_θ*, t = γ/(1+γ).

    Paper: §4 Gaussian toy. ``hist`` is the density histogram of the (valid) input batch,
    ``bins`` bins per dimension over its range, as ``np.histogramdd``. One categorical draw
    per output picks the target (probability t) or a valid input row (each (1−t)/#valid, so
    a bin with its count's probability); a row's draw is a uniform point of its bin. No
    rejection loop.
    """
    check_nonneg("gamma", gamma)

    def correct(key, x, labels=None, *, mask=None):
        del labels
        valid = _valid(x, mask)
        n = x.shape[0]
        u = jax.random.uniform(key, (n, 1 + x.shape[1]), x.dtype)
        lo, width = _histogram_edges(x, valid, bins)
        cells = _numpy_cells(x, lo, width, bins).astype(x.dtype)
        keep = _keep_probability(gamma).astype(x.dtype)
        choice = _row_or_target(u[:, 0], valid, jnp.ones(n, x.dtype), keep)
        # A draw is either a point of a bin or of the target: both use the same uniforms.
        from_hist = lo[None, :] + (cells[jnp.minimum(choice, n - 1)] + u[:, 1:]) * width[None, :]
        from_target = gauss.from_standard(target, _standard_normal(u[:, 1:])).astype(x.dtype)
        out = jnp.where((choice < n)[:, None], from_hist, from_target)
        return jnp.where(valid[:, None], out, x)

    return correct


def histogram_reference(
    gamma,
    target: gauss.Gaussian,
    bins: int = 10,
    proposals_per_slot: int = 2,
    max_rounds: int = 256,
) -> Corrector:
    """The official Fig. 2 rejection sampler's accepted law (the figure as published).

    Paper: §4; official ``gaussian_toy_example.py``. The official loop draws proposals
    c ~ φ = p_θ* (= N(0, I) in the paper) one after another and accepts c when
    f̃(c)/(M φ(c)) > u, u ~ U(0, 1), with f̃ = (1−t)·H̃ + t·φ, t = γ/(1+γ), and the envelope
    M = ((1−t)·max hist + t·φ(m*))/φ(m*), which is not a bound on f̃/φ in the tails. H̃ is
    the histogram (``bins`` per axis over the batch's range, density) read at bin
    ``int((c − edge₀)/width)`` (truncation toward zero: bin 0 of each axis also covers the
    width below edge₀; indices outside [0, bins) read 0). The set it returns is k i.i.d.
    draws of the accepted law, density ∝ φ·min(1, f̃/(Mφ)) = min(φ, f̃/M), not f. (The
    official code evaluates φ at [0, 0], the mode when m* = 0.)

    We draw the *same law* with a proposal that wastes less: c ~ g ∝ f̃ (a mixture of φ
    and H̃, whose bin-0 cells are twice as wide per axis), accepted when u·f̃(c) < M φ(c).
    The accepted density is then ∝ f̃·min(1, Mφ/f̃) = min(f̃, Mφ) ∝ min(φ, f̃/M), exactly the
    official one, while the acceptance rate is ∫min(f̃, Mφ)/∫f̃ (0.65–0.98 for batches of 25
    from N(0, σ²I), σ ∈ {0.6, 1}, γ ∈ [0, 5]) instead of ∫min(φ, f̃/M) (0.10–0.67). Under
    ``vmap`` a rejection loop costs its slowest member's rounds, so this is what makes the
    published protocol fast; the law is checked against quadrature of min(φ, f̃/M) cell by
    cell in ``tests/theory/test_operators.py``, and the official one-candidate sampler is
    ``benchmarks/baselines_numpy.py``.

    Each round draws ``proposals_per_slot`` × k proposals and keeps the accepted ones in
    order until every valid slot is filled. Slots still empty after ``max_rounds`` rounds
    are NaN (a divergence the loops report), never silently filled.
    """
    check_nonneg("gamma", gamma)

    def correct(key, x, labels=None, *, mask=None):
        del labels
        valid = _valid(x, mask)
        k, d = x.shape
        if bins**d > 2**20:
            raise ValueError(f"histogram-reference needs bins**d <= 2**20; got {bins}**{d}")
        n_valid = jnp.sum(valid)
        lo, width = _histogram_edges(x, valid, bins)
        strides = bins ** jnp.arange(d, dtype=jnp.int32)
        cells = _numpy_cells(x, lo, width, bins)
        counts = valid.astype(x.dtype) @ jax.nn.one_hot(cells @ strides, bins**d, dtype=x.dtype)
        density = counts / (n_valid.astype(x.dtype) * jnp.prod(width))
        keep = _keep_probability(gamma).astype(x.dtype)
        proposal = gauss.factorize(target)  # factorised once, reused by every round
        phi_mode = jnp.exp(proposal.log_norm)
        envelope = (keep * jnp.max(density) + (1.0 - keep) * phi_mode) / phi_mode
        # Under the truncating lookup a cell whose index is 0 on an axis spans 2 widths there.
        first = cells == 0
        start = jnp.where(first, -1, cells).astype(x.dtype)
        span = jnp.where(first, 2.0, 1.0).astype(x.dtype)
        volume = jnp.prod(span, axis=1)
        n_prop = proposals_per_slot * k

        def body(carry):
            r, out, filled = carry
            u = jax.random.uniform(jax.random.fold_in(key, r), (n_prop, 2 + d), x.dtype)
            choice = _row_or_target(u[:, 0], valid, volume, keep)
            row = jnp.minimum(choice, k - 1)
            # A proposal is either a point of a cell or of φ: both use the same uniforms.
            from_hist = lo[None, :] + (start[row] + span[row] * u[:, 2:]) * width[None, :]
            from_target = gauss.from_standard(proposal, _standard_normal(u[:, 2:]))
            c = jnp.where((choice < k)[:, None], from_hist, from_target.astype(x.dtype))
            idx = jnp.trunc((c - lo[None, :]) / width[None, :]).astype(jnp.int32)  # official lookup
            inside = jnp.all((idx >= 0) & (idx < bins), axis=-1)
            emp = jnp.where(inside, density[jnp.clip(idx, 0, bins - 1) @ strides], 0.0)
            phi = jnp.exp(gauss.logpdf(proposal, c))
            accept = u[:, 1] * (keep * emp + (1.0 - keep) * phi) < envelope * phi
            slot = filled + jnp.cumsum(accept) - 1
            slot = jnp.where(accept & (slot < n_valid), slot, k)  # k: dropped
            out = out.at[slot].set(c, mode="drop")
            return r + 1, out, jnp.minimum(filled + jnp.sum(accept), n_valid)

        def not_done(carry):
            r, _, filled = carry
            return (r < max_rounds) & (filled < n_valid)

        init = (jnp.zeros((), jnp.int32), jnp.full_like(x, jnp.nan), jnp.zeros((), n_valid.dtype))
        _, compact, _ = jax.lax.while_loop(not_done, body, init)
        rank = jnp.cumsum(valid) - 1  # valid row i takes the rank-th accepted point
        return jnp.where(valid[:, None], compact[jnp.clip(rank, 0, k - 1)], x)

    return correct


# ---------------------------------------------------------------------------------------
# imperfect correctors: the affine family


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["center", "shrink", "replace_cov", "noise_var"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Affine:
    """Parameters of an affine imperfect corrector (every leaf may be traced).

    A sample x of p_θ is kept with probability q = 1/(1+γ), as x + ξ₁ with
    ξ₁ ~ N(0, σ₁² I); otherwise it becomes c + s(x − c) + ξ₂ with ξ₂ ~ N(0, Σ₂), independent
    of x. The corrected law of x ~ N(μ, Σ) is therefore the two-component mixture

        q N(μ, Σ + σ₁² I) + (1 − q) N(c + s(μ − c), s² Σ + Σ₂),

    whose moments give every closed form of ``theory.imperfect``. Special cases (the
    constructors): the ideal π_γ of Def. 4.1 (s = 0, c = m*, Σ₂ = Σ*, σ₁ = 0); a *biased* π_γ
    replacing from p_c = N(μ_c, Σ_c) (s = 0, c = μ_c, Σ₂ = Σ_c); a *shrinking* corrector
    x ↦ c + s(x − c) applied with probability γ/(1+γ) (Σ₂ = 0); a *noisy* corrector, the
    ideal π_γ followed by N(0, σ_c² I) on every output (σ₁² = σ_c², Σ₂ = Σ* + σ_c² I).
    Noise on the replacements only is the biased family with Σ_c = Σ* + σ_c² I.

    Attributes:
        center: c, shape (d,).
        shrink: s ≥ 0 (s < 1 contracts toward c, s > 1 expands).
        replace_cov: Σ₂ (d × d, PSD).
        noise_var: σ₁² ≥ 0, isotropic noise on the kept samples.
    """

    center: Float[Array, " d"]
    shrink: Float[Array, ""]
    replace_cov: Float[Array, "d d"]
    noise_var: Float[Array, ""]

    @staticmethod
    def ideal(target: gauss.Gaussian) -> Affine:
        """π_γ toward p_θ* = ``target`` (Def. 4.1)."""
        m = jnp.asarray(target.mean)
        return Affine(m, _zero(m), jnp.asarray(target.cov), _zero(m))

    @staticmethod
    def biased(corrector_law: gauss.Gaussian) -> Affine:
        """π_γ whose replacements come from p_c = ``corrector_law`` instead of p_θ*."""
        m = jnp.asarray(corrector_law.mean)
        return Affine(m, _zero(m), jnp.asarray(corrector_law.cov), _zero(m))

    @staticmethod
    def shrinking(center, shrink) -> Affine:
        """x ↦ c + s(x − c) with probability γ/(1+γ): a non-idempotent pointwise corrector."""
        c = jnp.asarray(center, dtype=jnp.result_type(float))
        d = c.shape[-1]
        return Affine(c, jnp.asarray(shrink, c.dtype), jnp.zeros((d, d), c.dtype), _zero(c))

    @staticmethod
    def noisy(target: gauss.Gaussian, noise_var) -> Affine:
        """The ideal π_γ plus independent N(0, σ_c² I) on every output (σ_c² = noise_var)."""
        m = jnp.asarray(target.mean)
        v = jnp.asarray(noise_var, m.dtype)
        eye = jnp.eye(m.shape[-1], dtype=m.dtype)
        return Affine(m, _zero(m), jnp.asarray(target.cov) + v * eye, v)


def _zero(like: Array) -> Array:
    return jnp.zeros((), jnp.asarray(like).dtype)


def validate_affine(params: Affine, name: str = "params") -> None:
    """Raises ValueError for s < 0, σ₁² < 0, a non-PSD Σ₂ or a shape mismatch (concrete only)."""
    if is_traced(params):
        return
    check_nonneg(f"{name}.shrink", params.shrink, allow_inf=False)
    check_nonneg(f"{name}.noise_var", params.noise_var, allow_inf=False)
    if np.ndim(params.shrink) != 0 or np.ndim(params.noise_var) != 0:
        raise ValueError(f"{name}.shrink and {name}.noise_var must be scalars")
    gauss.validate(gauss.Gaussian(params.center, params.replace_cov), f"{name}.replace")


def affine(gamma, params: Affine) -> Corrector:
    """The affine imperfect corrector: keep x (+ ξ₁) w.p. 1/(1+γ), else c + s(x − c) + ξ₂.

    Paper: Def. 4.1 (eq. 4) is the case ``Affine.ideal``. γ and every leaf of ``params``
    may be traced. Exact population maps, fixed points and rates: ``theory.imperfect``.
    """
    check_nonneg("gamma", gamma)
    validate_affine(params)

    def correct(key, x, labels=None, *, mask=None):
        del labels
        valid = _valid(x, mask)
        n, d = x.shape
        # One random call (each is a loop of its own on XLA:CPU): the keep coin is a normal
        # below Φ⁻¹(q), i.e. a Bernoulli(q) (Φ⁻¹(0) = −inf, Φ⁻¹(1) = +inf).
        z = jax.random.normal(key, (n, 2 * d + 1), x.dtype)
        keep = z[:, 0] < ndtri(_keep_probability(gamma).astype(x.dtype))
        c = params.center.astype(x.dtype)
        kept = x + jnp.sqrt(params.noise_var).astype(x.dtype) * z[:, 1 : d + 1]
        root = gauss.sqrtm_psd(params.replace_cov.astype(x.dtype))
        moved = c[None, :] + params.shrink.astype(x.dtype) * (x - c[None, :]) + z[:, d + 1 :] @ root
        out = jnp.where(keep[:, None], kept, moved)
        return jnp.where(valid[:, None], out, x)

    return correct


def biased(gamma, corrector_law: gauss.Gaussian) -> Corrector:
    """π_γ with replacements from p_c = N(μ_c, Σ_c) ≠ p_θ* (``Affine.biased``)."""
    return affine(gamma, Affine.biased(corrector_law))


def shrinking(gamma, center, shrink) -> Corrector:
    """x ↦ c + s(x − c) with probability γ/(1+γ), else x unchanged (``Affine.shrinking``)."""
    return affine(gamma, Affine.shrinking(center, shrink))


def noisy(gamma, target: gauss.Gaussian, noise_var) -> Corrector:
    """The ideal π_γ plus N(0, σ_c² I) on every output, σ_c² = ``noise_var``."""
    return affine(gamma, Affine.noisy(target, noise_var))


# ---------------------------------------------------------------------------------------
# selectors: a verifier keeps some of the candidates


def n_candidates(k, alpha) -> Array:
    """⌈k/α⌉ candidates for a top-k selection that keeps the fraction α (int32, traceable).

    A 1e-6 tolerance absorbs round-off, as in ``n_synthetic`` (k = 10, α = 0.1 gives 100).
    Concrete inputs are computed in NumPy (float64) and checked: α ∈ (0, 1], k ≥ 0.
    """
    if is_traced(k) or is_traced(alpha):
        k_f = as_float(k)
        return jnp.ceil(k_f / as_float(alpha) - 1e-6).astype(jnp.int32)
    check_nonneg("k", k, allow_inf=False)
    a = np.asarray(alpha, np.float64)
    if np.any(~(a > 0) | (a > 1)):
        raise ValueError(f"alpha must lie in (0, 1]; got {a.ravel()[:3].tolist()}")
    return np.ceil(np.asarray(k, np.float64) / a - 1e-6).astype(np.int32)


def _scores(x: Array, center) -> Array:
    """The verifier's score −‖x − c‖² (higher is better)."""
    c = jnp.asarray(center).astype(x.dtype)
    return -jnp.sum((x - c[None, :]) ** 2, axis=-1)


def top_k(k, center) -> Selector:
    """Qiao-style top-k selection: keep the k valid candidates closest to the verifier centre c.

    Draw ⌈k/α⌉ candidates of p_θ (``n_candidates``) to keep the fraction α; c ≠ m* is a biased
    verifier. Ties are broken by row order. As the number of candidates grows at fixed α, the
    kept law tends to p_θ restricted to the ball {‖x − c‖ ≤ r_α} of p_θ-mass α
    (``theory.imperfect.top_alpha_law`` in 1-D). ``k`` and ``center`` may be traced.
    """
    check_nonneg("k", k, allow_inf=False)

    def select(key, x, labels=None, *, mask=None):
        del key, labels
        valid = _valid(x, mask)
        score = jnp.where(valid, _scores(x, center), -jnp.inf)
        order = jnp.argsort(-score, stable=True)
        rank = (
            jnp.zeros(x.shape[0], jnp.int32).at[order].set(jnp.arange(x.shape[0], dtype=jnp.int32))
        )
        return valid & (rank < jnp.asarray(k).astype(jnp.int32))

    return select


def band(center, width) -> Selector:
    """Yi et al.'s acceptance band: keep a candidate iff ‖x − c‖ ≤ width/2.

    In 1-D with c = m* + bias this is the band [m* + bias − width/2, m* + bias + width/2];
    the kept law is p_θ truncated to it (``theory.imperfect.truncated_moments``). The number
    kept is random: Binomial(m, P_θ(band)) of m candidates. Parameters may be traced.
    """
    check_nonneg("width", width, allow_inf=False)

    def select(key, x, labels=None, *, mask=None):
        del key, labels
        valid = _valid(x, mask)
        half = 0.5 * jnp.asarray(width).astype(x.dtype)
        return valid & (-_scores(x, center) <= half**2)

    return select


def make_selector(name: str, **kwargs) -> Selector:
    """Selector by name: one of ``SELECTIONS`` (``top-k``: k, center; ``band``: center, width).

    Raises:
        ValueError: unknown name.
    """
    if name == "top-k":
        return top_k(**kwargs)
    if name == "band":
        return band(**kwargs)
    raise ValueError(f"selection must be one of {SELECTIONS}; got {name!r}")


# ---------------------------------------------------------------------------------------


def make_corrector(name: str, gamma, target: gauss.Gaussian, **kwargs) -> Corrector:
    """Corrector by name: one of ``CORRECTIONS`` or ``IMPERFECT``.

    The imperfect families take keyword arguments (traced or not): ``affine``: ``params``
    (an ``Affine``); ``biased``: ``corrector_law`` (p_c); ``shrinking``: ``shrink`` and
    ``center`` (default m*); ``noisy``: ``noise_var``. ``target`` is p_θ*.

    Raises:
        ValueError: unknown name (before any tracing).
    """
    factories: dict[str, Callable[..., Corrector]] = {
        "ideal": ideal,
        "histogram": histogram,
        "histogram-reference": histogram_reference,
    }
    if name == "identity":
        return identity()
    if name == "affine":
        return affine(gamma, **kwargs)
    if name == "biased":
        return biased(gamma, **kwargs)
    if name == "shrinking":
        return shrinking(gamma, kwargs.pop("center", target.mean), **kwargs)
    if name == "noisy":
        return noisy(gamma, target, **kwargs)
    if name not in factories:
        raise ValueError(f"correction must be one of {CORRECTIONS + IMPERFECT}; got {name!r}")
    return factories[name](gamma, target, **kwargs)


def n_synthetic(lam, n_real: int) -> Array:
    """⌊λn⌋, the number of synthetic samples per generation (int32, traceable).

    A 1e-6 tolerance absorbs float round-off (0.29 × 100 = 28.999… gives 29). Concrete λ is
    computed in NumPy (float64): a config check then costs no JAX dispatch or compilation.
    """
    xp, lam = (jnp, as_float(lam)) if is_traced(lam) else (np, np.asarray(lam, np.float64))
    return xp.floor(lam * n_real + 1e-6).astype(xp.int32)


def retrain(real: Float[Array, "n d"], synthetic: Float[Array, "k d"], lam) -> gauss.Gaussian:
    """G_λ only: the MLE fit on real ∪ the first ⌊λn⌋ rows of ``synthetic``.

    Paper: eq. (5) / Algorithm 1 ("fine-tune on D_real ∪ D_synth"): every point has weight
    one, so the synthetic term carries weight ⌊λn⌋/n ≈ λ. ``synthetic`` is a fixed-size
    buffer; rows past ⌊λn⌋ are masked out, so λ may be traced.
    """
    k = n_synthetic(lam, real.shape[0])
    weights = jnp.concatenate(
        [
            jnp.ones(real.shape[0], real.dtype),
            (jnp.arange(synthetic.shape[0], dtype=jnp.int32) < k).astype(real.dtype),
        ]
    )
    return gauss.fit(jnp.concatenate([real, synthetic]), weights)
