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

from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from theory import gaussian as gauss
from theory._checks import as_float, check_nonneg

__all__ = [
    "CORRECTIONS",
    "Corrector",
    "Family",
    "histogram",
    "histogram_reference",
    "ideal",
    "identity",
    "make_corrector",
    "n_synthetic",
    "retrain",
]

CORRECTIONS = ("ideal", "histogram", "histogram-reference", "identity")


class Corrector(Protocol):
    def __call__(
        self,
        key: jax.Array,
        x: Float[Array, "k d"],
        labels: Array | None = None,
        *,
        mask: Bool[Array, " k"] | None = None,
    ) -> Float[Array, "k d"]: ...


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


def histogram(gamma, target: gauss.Gaussian, bins: int = 10) -> Corrector:
    """The toy's corrector sampled exactly: fresh draws of (1−t)·hist + t·p_θ*, t = γ/(1+γ).

    Paper: §4 Gaussian toy. ``hist`` is the density histogram of the (valid) input batch,
    ``bins`` bins per dimension over its range, as ``np.histogramdd``. A histogram draw
    picks a valid input row uniformly (so a bin with its count's probability) and returns a
    uniform point of that row's bin; no rejection loop.
    """
    check_nonneg("gamma", gamma)

    def correct(key, x, labels=None, *, mask=None):
        del labels
        valid = _valid(x, mask)
        k_mix, k_row, k_box, k_tgt = jax.random.split(key, 4)
        lo, width = _histogram_edges(x, valid, bins)
        cells = _numpy_cells(x, lo, width, bins)
        n = x.shape[0]
        valid_first = jnp.argsort(~valid, stable=True)  # valid row indices, in order
        pick = jax.random.uniform(k_row, (n,), x.dtype) * jnp.sum(valid).astype(x.dtype)
        rows = valid_first[jnp.clip(pick.astype(jnp.int32), 0, n - 1)]
        offset = jax.random.uniform(k_box, x.shape, x.dtype)
        from_hist = lo[None, :] + (cells[rows].astype(x.dtype) + offset) * width[None, :]
        from_target = gauss.sample(k_tgt, target, n).astype(x.dtype)
        use_hist = jax.random.uniform(k_mix, (n,), x.dtype) < _keep_probability(gamma)
        out = jnp.where(use_hist[:, None], from_hist, from_target)
        return jnp.where(valid[:, None], out, x)

    return correct


def histogram_reference(
    gamma,
    target: gauss.Gaussian,
    bins: int = 10,
    proposals_per_slot: int = 4,
    max_rounds: int = 256,
) -> Corrector:
    """Vectorised emulation of the official Fig. 2 rejection sampler (as published).

    Paper: §4; official ``gaussian_toy_example.py``. Proposals c ~ p_θ* (= N(0, I) in the
    paper) are drawn one after another and accepted when f(c)/(M φ(c)) > u, u ~ U(0, 1),
    with f = (1−t)·hist + t·φ, t = γ/(1+γ), and the envelope
    M = ((1−t)·max hist + t·φ(m*))/φ(m*), which is not a bound on f/φ in the tails: the
    accepted law has density ∝ min(φ(c), f(c)/M), not f. The histogram (``bins`` per axis
    over the batch's range, density) is read at bin ``int((c − edge₀)/width)`` (truncation
    toward zero), so bin 0 of each axis also covers the width below edge₀; indices outside
    [0, bins) read 0. (The official code evaluates φ at [0, 0], the mode when m* = 0.)

    Vectorised: each round draws ``proposals_per_slot`` × k proposals in sequence and keeps
    the accepted ones in order, exactly like the sequential loop, until every valid slot is
    filled. Slots still empty after ``max_rounds`` rounds are NaN (a divergence the loops
    report), never silently filled.
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
        strides = bins ** jnp.arange(d)
        flat = _numpy_cells(x, lo, width, bins) @ strides
        counts = valid.astype(x.dtype) @ jax.nn.one_hot(flat, bins**d, dtype=x.dtype)
        density = counts / (n_valid * jnp.prod(width))
        keep = _keep_probability(gamma)
        proposal = gauss.factorize(target)  # factorised once, reused by every round
        phi_mode = jnp.exp(proposal.log_norm)
        envelope = (keep * jnp.max(density) + (1.0 - keep) * phi_mode) / phi_mode
        n_prop = proposals_per_slot * k

        def body(carry):
            r, out, filled = carry
            k_c, k_u = jax.random.split(jax.random.fold_in(key, r))
            c = gauss.sample(k_c, proposal, n_prop).astype(x.dtype)
            u = jax.random.uniform(k_u, (n_prop,), x.dtype)
            idx = jnp.trunc((c - lo) / width).astype(jnp.int32)  # official lookup
            inside = jnp.all((idx >= 0) & (idx < bins), axis=-1)
            emp = jnp.where(inside, density[jnp.clip(idx, 0, bins - 1) @ strides], 0.0)
            phi = jnp.exp(gauss.logpdf(proposal, c))
            accept = (keep * emp + (1.0 - keep) * phi) / (envelope * phi) > u
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


def make_corrector(name: str, gamma, target: gauss.Gaussian, **kwargs) -> Corrector:
    """Corrector by name: one of ``CORRECTIONS``.

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
    if name not in factories:
        raise ValueError(f"correction must be one of {CORRECTIONS}; got {name!r}")
    return factories[name](gamma, target, **kwargs)


def n_synthetic(lam, n_real: int) -> Array:
    """⌊λn⌋, the number of synthetic samples per generation (int32, traceable).

    A 1e-6 tolerance absorbs float round-off (0.29 × 100 = 28.999… gives 29).
    """
    return jnp.floor(as_float(lam) * n_real + 1e-6).astype(jnp.int32)


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
            (jnp.arange(synthetic.shape[0]) < k).astype(real.dtype),
        ]
    )
    return gauss.fit(jnp.concatenate([real, synthetic]), weights)
