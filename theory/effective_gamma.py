"""A corrector's effective strength γ̂, estimated from samples only.

Paper: Def. 4.1 (π_γ p_θ = (p_θ + γ p_θ*)/(1+γ)), App. C (pointwise correctors, the
Def. C.1 criterion: the law of Π(X) must converge to π_γ p_θ; Example C.6).

``effective_gamma`` fits the law of a corrector's output to the mixture line
{w p_θ + (1−w) p_θ* : w ∈ [0, 1]} (w = 1/(1+γ)) with a bootstrap confidence interval, the fit
residual (a real corrector need not be any π_γ) and a permutation test for the
non-identifiable case p_θ = p_θ* (there every γ fits). Criteria: the energy distance
(any d; closed-form minimiser over w) and Kolmogorov–Smirnov (d = 1, sliced for d > 1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from theory._checks import as_float, as_samples, check_positive_int, is_traced

__all__ = ["CRITERIA", "EffectiveGamma", "effective_gamma", "energy_mixture_fit"]

CRITERIA = ("energy", "ks")


@partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "gamma",
        "ci",
        "weight",
        "weight_ci",
        "residual",
        "relative_residual",
        "identifiable",
        "p_value",
    ],
    meta_fields=["criterion", "level"],
)
@dataclasses.dataclass(frozen=True)
class EffectiveGamma:
    """Result of ``effective_gamma`` (a pytree: vmap/jit return it with batched leaves).

    Attributes:
        gamma: γ̂ = 1/ŵ − 1 (inf when ŵ = 0); NaN when not identifiable.
        ci: (low, high) percentile-bootstrap interval for γ (high may be inf).
        weight: ŵ ∈ [0, 1], the fitted weight of p_θ in w p_θ + (1−w) p_θ* (= 1/(1+γ̂)).
        weight_ci: (low, high) bootstrap interval for w.
        residual: criterion value at ŵ (energy: the U-statistic energy distance, which can
            be slightly negative by sampling noise; ks: sup-distance of CDFs).
        relative_residual: residual / criterion distance between model and target: ~0 means
            "is a π_γ", ~1 means "as far from the mixture line as the model from the target".
        identifiable: False when the permutation test cannot tell p_θ from p_θ*.
        p_value: permutation p-value of the energy two-sample test, model vs target.
        criterion: ``"energy"`` or ``"ks"``.
        level: the CI's nominal coverage.
    """

    gamma: Float[Array, "..."]
    ci: Float[Array, "... 2"]
    weight: Float[Array, "..."]
    weight_ci: Float[Array, "... 2"]
    residual: Float[Array, "..."]
    relative_residual: Float[Array, "..."]
    identifiable: Bool[Array, "..."]
    p_value: Float[Array, "..."]
    criterion: str
    level: float

    @property
    def message(self) -> str:
        """A sentence for reports; says why there is no number when not identifiable."""
        ident = np.asarray(self.identifiable)
        if ident.ndim:
            return f"{int(ident.sum())}/{ident.size} identifiable (batched result)"
        if not bool(ident):
            return (
                f"gamma not identifiable: model and target samples are indistinguishable "
                f"(permutation p = {float(self.p_value):.3g}); every gamma fits p_theta = "
                f"p_theta*, so no number is returned"
            )
        lo, hi = (float(v) for v in np.asarray(self.ci))
        return (
            f"gamma = {float(self.gamma):.4g}, {self.level:.0%} CI [{lo:.4g}, {hi:.4g}], "
            f"relative residual {float(self.relative_residual):.3g} ({self.criterion})"
        )


def _gamma_of_weight(w: Array) -> Array:
    """γ = 1/w − 1 (inf at w = 0), monotone decreasing; NaN stays NaN."""
    safe = jnp.where(w > 0, w, 1.0)
    return jnp.where(jnp.isnan(w), w, jnp.where(w > 0, 1.0 / safe - 1.0, jnp.inf))


def _pairwise(x: Float[Array, "n d"], y: Float[Array, "m d"]) -> Float[Array, "n m"]:
    """Euclidean distances; direct differences for small d (exact zeros), Gram form otherwise."""
    if x.shape[1] <= 16:
        return jnp.sqrt(jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1))
    sq = jnp.sum(x**2, axis=1)[:, None] + jnp.sum(y**2, axis=1)[None, :] - 2.0 * x @ y.T
    return jnp.sqrt(jnp.clip(sq, 0.0))


def _energy_terms(dist: dict, u: Array, v: Array) -> dict:
    """Weighted U-statistics of the six mean distances (u: paired rows, v: target rows).

    Σ_{i≠j} u_i u_j D_ij / Σ_{i≠j} u_i u_j for the within-sample terms and for C–M (corrected[i]
    is paired with model[i]; a kept point equals its model point, so the diagonal would bias
    A_m downward); plain weighted means for the independent C–T and M–T terms. With unit
    weights these are the ordinary U-statistics; with bootstrap counts, the bootstrap ones.
    """
    su, sv = jnp.sum(u), jnp.sum(v)
    pu = su * su - jnp.sum(u * u)
    pv = sv * sv - jnp.sum(v * v)
    cm_diag = jnp.sum(u * u * jnp.diagonal(dist["cm"]))
    return {
        "b_cc": u @ dist["cc"] @ u / pu,
        "a_m": (u @ dist["cm"] @ u - cm_diag) / pu,
        "b_mm": u @ dist["mm"] @ u / pu,
        "a_t": u @ dist["ct"] @ v / (su * sv),
        "b_mt": u @ dist["mt"] @ v / (su * sv),
        "b_tt": v @ dist["tt"] @ v / pv,
    }


def _energy_solve(t: dict) -> tuple[Array, Array, Array]:
    """ŵ, D(ŵ) and E_MT from the six terms (see ``energy_mixture_fit``)."""
    e_mt = 2.0 * t["b_mt"] - t["b_mm"] - t["b_tt"]
    safe = jnp.where(e_mt > 0, e_mt, 1.0)
    w_raw = (t["a_t"] - t["a_m"] + t["b_mt"] - t["b_tt"]) / safe
    w = jnp.where(e_mt > 0, jnp.clip(w_raw, 0.0, 1.0), jnp.nan)
    within = w * w * t["b_mm"] + 2.0 * w * (1.0 - w) * t["b_mt"] + (1.0 - w) ** 2 * t["b_tt"]
    resid = 2.0 * (w * t["a_m"] + (1.0 - w) * t["a_t"]) - t["b_cc"] - within
    return w, resid, e_mt


def _energy_distances(model, corrected, target) -> dict:
    return {
        "cc": _pairwise(corrected, corrected),
        "cm": _pairwise(corrected, model),
        "mm": _pairwise(model, model),
        "ct": _pairwise(corrected, target),
        "mt": _pairwise(model, target),
        "tt": _pairwise(target, target),
    }


def energy_mixture_fit(
    model_samples: Float[Array, "n d"],
    corrected_samples: Float[Array, "n d"],
    target_samples: Float[Array, "m d"],
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Closed-form energy-distance fit of corrected ≈ w·p_θ + (1−w)·p_θ*.

    Paper: App. C (criterion of a valid correction), with the energy distance as the
    multivariate surrogate of the sup-distance of CDFs. Let C, M, T be draws of the corrected,
    model and target laws and Y_w of the mixture. The energy distance

        D(w) = 2E|C − Y_w| − E|C − C'| − E|Y_w − Y_w'|
             = 2[w A_m + (1−w) A_t] − B_cc − [w² B_mm + 2w(1−w) B_mt + (1−w)² B_tt]

    with A_m = E|C−M|, A_t = E|C−T|, B_xy = E|X−Y| (within-sample: independent copies), is
    a quadratic in w with curvature E_MT = 2B_mt − B_mm − B_tt ≥ 0 (the energy distance of
    p_θ and p_θ*) and minimiser w* = (A_t − A_m + B_mt − B_tt)/E_MT, clipped to [0, 1]
    (D is convex, so clipping gives the constrained minimum). Expectations are U-statistics
    (diagonals excluded, including C–M's: corrected[i] is paired with model[i]).

    Returns:
        (ŵ, D(ŵ), E_MT); ŵ is NaN when E_MT ≤ 0 (model and target indistinguishable).
    """
    m = as_samples("model_samples", model_samples, 2)
    c = as_samples("corrected_samples", corrected_samples, 2)
    t = as_samples("target_samples", target_samples, 2)
    if not is_traced((m, c)) and m.shape != c.shape:
        raise ValueError(f"corrected_samples shape {c.shape} != model_samples shape {m.shape}")
    return _energy_fit(m, c, t)


@jax.jit
def _energy_fit(m, c, t):
    dist = _energy_distances(m, c, t)
    terms = _energy_terms(dist, jnp.ones(m.shape[0], m.dtype), jnp.ones(t.shape[0], t.dtype))
    return _energy_solve(terms)


def _ks_positions(z_c, z_m, z_t):
    """Each sample's position among the sorted pooled points (its ECDF jump location).

    With ``side="left"`` a point sits at the first pooled index of its value, so the cumulative
    sum of weights at pooled index k counts exactly the points ≤ pooled[k] (ties included).
    """
    pooled = jnp.sort(jnp.concatenate([z_c, z_m, z_t]))
    return tuple(jnp.searchsorted(pooled, z, side="left") for z in (z_c, z_m, z_t))


def _ks_curves(k: int, pos, u: Array, v: Array) -> tuple[Array, Array]:
    """a = F_C − F_T and b = F_T − F_M at the pooled points (one direction)."""

    def ecdf(p, wts):
        return jnp.cumsum(jnp.zeros(k, wts.dtype).at[p].add(wts)) / jnp.sum(wts)

    f_c, f_m, f_t = ecdf(pos[0], u), ecdf(pos[1], u), ecdf(pos[2], v)
    return f_c - f_t, f_t - f_m


def _ks_solve(a: Float[Array, "r k"], b: Float[Array, "r k"], iters: int = 48):
    """min over w ∈ [0, 1] of h(w) = mean_r max_k |a_rk + w b_rk| by golden-section search.

    h is convex (a mean of maxima of absolute values of affine functions), so the search
    keeps a global minimiser in its bracket (plateaus included); the bracket shrinks by
    0.618 per evaluation, to ~1e-10 after 48.
    """

    def h(w):
        return jnp.mean(jnp.max(jnp.abs(a + w * b), axis=-1))

    ratio = (math.sqrt(5.0) - 1.0) / 2.0

    def body(_, state):
        lo, hi, x1, x2, f1, f2 = state
        left = f1 <= f2  # minimiser in [lo, x2]: x1 becomes the new x2
        lo, hi = jnp.where(left, lo, x1), jnp.where(left, x2, hi)
        new = jnp.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
        f_new = h(new)
        x1, x2 = jnp.where(left, new, x2), jnp.where(left, x1, new)
        f1, f2 = jnp.where(left, f_new, f2), jnp.where(left, f1, f_new)
        return lo, hi, x1, x2, f1, f2

    lo, hi = jnp.zeros((), a.dtype), jnp.ones((), a.dtype)
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    lo, hi, *_ = jax.lax.fori_loop(0, iters, body, (lo, hi, x1, x2, h(x1), h(x2)))
    w = 0.5 * (lo + hi)
    dist_mt = jnp.mean(jnp.max(jnp.abs(b), axis=-1))
    return w, h(w), dist_mt


def _bootstrap_weights(key, n_boot: int, n: int, dtype) -> Float[Array, "b n"]:
    """Multinomial(n; 1/n, …) counts of n draws with replacement, one row per replicate."""
    u = jax.random.uniform(key, (n_boot, n), dtype)  # floor(u·n): compiles faster than randint
    idx = jnp.clip(jnp.floor(u * n).astype(jnp.int32), 0, n - 1)
    return jax.vmap(lambda i: jnp.zeros(n, dtype).at[i].add(1.0))(idx)


def _permutation_p_value(key, dist: dict, n_perm: int) -> Array:
    """Energy two-sample permutation test of model vs target: (1 + #{E_π ≥ E})/(1 + n_perm)."""
    n, m = dist["mm"].shape[0], dist["tt"].shape[0]
    pooled = jnp.block([[dist["mm"], dist["mt"]], [dist["mt"].T, dist["tt"]]])
    row = jnp.sum(pooled, axis=1)
    s_all = jnp.sum(row)

    def stat(a):
        s_x1 = a @ row
        s_xx = a @ pooled @ a
        s_xy = s_x1 - s_xx
        s_yy = s_all - 2.0 * s_x1 + s_xx
        return 2.0 * s_xy / (n * m) - s_xx / (n * (n - 1)) - s_yy / (m * (m - 1))

    observed = stat((jnp.arange(n + m) < n).astype(pooled.dtype))
    # a uniformly random n-subset per permutation: the n smallest of i.i.d. uniforms
    u = jax.random.uniform(key, (n_perm, n + m), pooled.dtype)
    subsets = (u <= jnp.sort(u, axis=1)[:, n - 1 : n]).astype(pooled.dtype)
    null = jax.vmap(stat)(subsets)
    exceed = jnp.sum((null >= observed).astype(pooled.dtype))
    return (1.0 + exceed) / (1.0 + n_perm)


@partial(jax.jit, static_argnames=("criterion", "n_boot", "level", "n_perm", "n_directions"))
def _estimate(
    key, model, corrected, target, p_threshold, *, criterion, n_boot, level, n_perm, n_directions
) -> EffectiveGamma:
    k_boot_u, k_boot_v, k_perm, k_dir = jax.random.split(key, 4)
    n, m = model.shape[0], target.shape[0]
    dtype = model.dtype
    ones_u, ones_v = jnp.ones(n, dtype), jnp.ones(m, dtype)
    boot_u = _bootstrap_weights(k_boot_u, n_boot, n, dtype)
    boot_v = _bootstrap_weights(k_boot_v, n_boot, m, dtype)
    dist = _energy_distances(model, corrected, target)

    if criterion == "energy":

        def fit(u, v):
            return _energy_solve(_energy_terms(dist, u, v))

    else:
        d = model.shape[1]
        if d == 1:
            dirs = jnp.ones((1, 1), dtype)
        else:
            raw = jax.random.normal(k_dir, (n_directions, d), dtype)
            dirs = raw / jnp.linalg.norm(raw, axis=1, keepdims=True)
        proj = [x @ dirs.T for x in (corrected, model, target)]  # (rows, r)
        pos = jax.vmap(_ks_positions, in_axes=1)(*proj)  # three (r, rows) index arrays
        k_pool = n + n + m

        def fit(u, v):
            a, b = jax.vmap(lambda p0, p1, p2: _ks_curves(k_pool, (p0, p1, p2), u, v))(*pos)
            return _ks_solve(a, b)

    w_hat, resid, dist_mt = fit(ones_u, ones_v)
    w_boot, _, _ = jax.vmap(fit)(boot_u, boot_v)
    q = jnp.asarray([(1.0 - level) / 2.0, (1.0 + level) / 2.0], dtype)
    w_ci = jnp.nanquantile(w_boot, q)
    p_value = _permutation_p_value(k_perm, dist, n_perm)
    e_mt = 2.0 * jnp.mean(dist["mt"]) - jnp.sum(dist["mm"]) / (n * (n - 1))
    e_mt = e_mt - jnp.sum(dist["tt"]) / (m * (m - 1))
    identifiable = (p_value <= p_threshold) & (e_mt > 0) & (dist_mt > 0)
    nan = jnp.full((), jnp.nan, dtype)
    w_hat = jnp.where(identifiable, w_hat, nan)
    w_ci = jnp.where(identifiable, w_ci, nan)
    resid = jnp.where(identifiable, resid, nan)
    return EffectiveGamma(
        gamma=_gamma_of_weight(w_hat),
        ci=_gamma_of_weight(w_ci[::-1]),
        weight=w_hat,
        weight_ci=w_ci,
        residual=resid,
        relative_residual=resid / jnp.where(dist_mt > 0, dist_mt, 1.0),
        identifiable=identifiable,
        p_value=p_value,
        criterion=criterion,
        level=level,
    )


def _apply_corrector(key, corrector, model, labels, batch_size):
    if batch_size is None:
        return corrector(key, model, labels)
    n_batches = model.shape[0] // batch_size
    xs = model.reshape(n_batches, batch_size, model.shape[1])
    keys = jax.random.split(key, n_batches)
    if labels is None:
        out = jax.vmap(lambda k, x: corrector(k, x, None))(keys, xs)
    else:
        lab = labels.reshape(n_batches, batch_size, *labels.shape[1:])
        out = jax.vmap(corrector)(keys, xs, lab)
    return out.reshape(model.shape)


def effective_gamma(
    key: jax.Array,
    corrector: Callable,
    model_samples: Float[Array, "n d"],
    target_samples: Float[Array, "m d"],
    labels: Array | None = None,
    *,
    criterion: str = "energy",
    n_boot: int = 200,
    level: float = 0.95,
    batch_size: int | None = None,
    n_perm: int = 199,
    p_threshold: float = 0.01,
    n_directions: int = 32,
) -> EffectiveGamma:
    """Effective correction strength γ̂ of a pointwise corrector, with CI and fit residual.

    Paper: App. C. A map Π on samples is a valid correction of strength γ for p_θ when the
    law of Π(X), X ~ p_θ, is π_γ p_θ = (p_θ + γ p_θ*)/(1+γ) (Def. 4.1). We fit w = 1/(1+γ)
    ∈ [0, 1] so that the law of ``corrected = corrector(key, model_samples, labels)`` best
    matches w p_θ + (1−w) p_θ*, with p_θ and p_θ* represented by ``model_samples`` and
    ``target_samples`` (samples only: works in any feature space).

    Criteria:
    - ``"energy"`` (default, any d): the energy distance, a metric on laws with finite first
      moments; D(w) is a smooth quadratic with a closed-form minimiser
      (``energy_mixture_fit``), so ŵ is a smooth function of U-statistics and the percentile
      bootstrap is asymptotically justified (away from the clip at w ∈ {0, 1}).
    - ``"ks"`` (App. C's own criterion): sup_x |F̂_C − w F̂_M − (1−w) F̂_T| in 1-D, convex
      piecewise linear in w, minimised exactly up to 1e-10 by ternary search; for d > 1 the
      mean over ``n_directions`` random unit directions (drawn from ``key``) of the 1-D
      statistic of the projections (sliced Kolmogorov), a surrogate: it is zero for any law
      whose projections on those directions match. Being a non-smooth argmin, its bootstrap
      CI has no general guarantee (coverage measured in the tests).

    CI: the (model[i], corrected[i]) pairs are resampled jointly and the target rows
    independently, ``n_boot`` times (bootstrap counts as weights of precomputed distance
    matrices: weighted U-statistics Σ_{i≠j} u_i u_j D_ij / Σ_{i≠j} u_i u_j); percentile
    interval on w mapped to γ = 1/w − 1 (monotone; w = 0 gives γ = inf). The corrector is
    applied once (its randomness is not resampled). With ``batch_size``, outputs within a
    batch are dependent through the batch's law (the histogram corrector), which the i.i.d.
    pair bootstrap ignores; for batches much smaller than n the effect is small, but the
    interval is then not guaranteed (a block bootstrap over batches would be).

    Identifiability: when p_θ = p_θ* every γ fits. An energy-distance permutation test of
    ``model_samples`` vs ``target_samples`` (``n_perm`` permutations from ``key``) gives
    ``p_value``; if p_value > ``p_threshold`` the result has ``identifiable = False`` and NaN
    for γ̂, its CI and the residual (see ``.message``). With n_perm permutations the smallest
    possible p-value is 1/(1 + n_perm): keep n_perm ≥ 1/p_threshold.

    Cost: O((n + m)² d) memory and time for the distance matrices, O(n_boot (n + m)²) for the
    energy bootstrap and O(n_perm (n + m)²) for the test; ``_estimate`` is jitted, and the
    whole function is traceable (jit/vmap over keys, samples or a traced γ of the corrector)
    when the corrector is.

    Args:
        key: PRNG key (corrector, bootstrap, permutations and slicing directions).
        corrector: ``corrector(key, x, labels) -> x'`` (theory.operators interface).
        model_samples: draws of p_θ, (n, d) or (n,) for 1-D.
        target_samples: draws of p_θ*, (m, d) or (m,); independent of the model samples.
        labels: optional labels passed to the corrector (one per model row).
        criterion: one of ``CRITERIA``.
        n_boot: bootstrap replicates (≥ 1).
        level: CI coverage in (0, 1).
        batch_size: if given, the corrector sees consecutive batches of this size (vmapped;
            e.g. 25 for the Gaussian toy, whose histogram corrector uses its batch's law);
            must divide n.
        n_perm: permutations of the identifiability test (≥ 1).
        p_threshold: p-values above it mean "not identifiable" (in (0, 1)).
        n_directions: slicing directions for ``"ks"`` with d > 1.

    Returns:
        ``EffectiveGamma``.

    Raises:
        ValueError: bad shapes (fewer than 2 rows, mismatched d), n_boot/n_perm < 1, level or
            p_threshold outside (0, 1), unknown criterion, batch_size not dividing n, or a
            corrector that changes the shape; all before the estimation starts.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    check_positive_int("n_boot", n_boot)
    check_positive_int("n_perm", n_perm)
    check_positive_int("n_directions", n_directions)
    if not (isinstance(level, int | float) and 0.0 < level < 1.0):
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if not is_traced(p_threshold) and not (0.0 < float(p_threshold) < 1.0):
        raise ValueError(f"p_threshold must lie in (0, 1); got {p_threshold!r}")
    model = as_samples("model_samples", model_samples, 2)
    target = as_samples("target_samples", target_samples, 2)
    if model.shape[1] != target.shape[1]:
        raise ValueError(
            f"model_samples and target_samples must have the same dimension; got "
            f"{model.shape[1]} and {target.shape[1]}"
        )
    if labels is not None and np.shape(labels)[:1] != model.shape[:1]:
        raise ValueError(f"labels must have one row per model sample; got {np.shape(labels)}")
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
        if model.shape[0] % batch_size:
            raise ValueError(
                f"batch_size must divide the number of model samples ({model.shape[0]}); "
                f"got {batch_size}"
            )
    k_corr, k_est = jax.random.split(key)
    corrected = as_float(_apply_corrector(k_corr, corrector, model, labels, batch_size))
    if corrected.shape != model.shape:
        raise ValueError(
            f"corrector must return the input's shape {model.shape}; got {corrected.shape}"
        )
    return _estimate(
        k_est,
        model,
        corrected,
        target,
        as_float(p_threshold),
        criterion=criterion,
        n_boot=n_boot,
        level=float(level),
        n_perm=n_perm,
        n_directions=n_directions,
    )
