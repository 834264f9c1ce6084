"""Exact finite-sample chains of self-consuming loops on Gaussians, for every γ ≥ 0.

Paper: Def. 4.1 (π_γ), eq. (5) (G^n_λ), Assumption 3 (τ_n(δ)); ``docs/paper.md``, "Beyond
the paper" ("exact finite-sample chains"). Bertrand et al. (ICLR 2024) is the case γ = 0.

Notation. The ideal corrector π_γ keeps each synthetic point of p_θ with probability
q = 1/(1+γ) and otherwise replaces it by a fresh draw of p_θ* (``theory.operators.ideal``);
q = 0 at γ = inf. k = ⌊λn⌋ synthetic points per generation (``theory.operators.n_synthetic``,
floor with a 1e-6 tolerance). In one dimension θ* = (m*, v*) and e = μ − m* is the error of
the mean. Three data workflows, as in ``sims.gaussian.loop``:

- ``augment`` (the paper's Algorithm 1): a fixed real set of n points plus k fresh corrected
  synthetic points per generation (``mean_chain``, ``mean_chain_moments``; the full
  (μ, Σ) family's one-step deviation ``mean_deviation`` and the bound ``tau_upper``);
- ``replace``: refit on n own corrected samples, no real data (``replace_moments``,
  ``replace_stationary``, ``replace_log_variance``, ``collapse_rates``);
- ``accumulate``: the real set plus every corrected synthetic set drawn so far
  (``accumulate_moments``, ``accumulate_variance_limit``).

Every chain here is exact: a finite linear recursion for the first two moments, solved by
repeated squaring (any t, traced or not) or scanned, never a large-n approximation. Inputs
broadcast (NumPy rules, explicitly, so strict rank promotion is fine); sizes n are Python
integers. Invalid concrete inputs raise ``ValueError`` naming the parameter before any work;
traced inputs are not checked.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theory import gaussian as gauss
from theory import linalg
from theory._checks import (
    as_float,
    check_nonneg,
    check_nonneg_int,
    check_positive_int,
    is_traced,
)
from theory.operators import n_synthetic

__all__ = [
    "accumulate_moments",
    "accumulate_variance_limit",
    "augment_moments",
    "augment_stationary",
    "collapse_rates",
    "mean_chain",
    "mean_chain_moments",
    "mean_deviation",
    "replace_log_det_drift",
    "replace_log_variance",
    "replace_moments",
    "replace_stationary",
    "tau_upper",
]


# ---------------------------------------------------------------------------------------
# helpers


def _check_finite(name: str, x) -> None:
    """Raises ValueError unless every entry of ``x`` is a finite real number."""
    if is_traced(x):
        return
    a = np.atleast_1d(np.asarray(x, dtype=float))
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got {a[~np.isfinite(a)].ravel()[:3].tolist()}")


def _check_open_unit(name: str, x) -> None:
    """Raises ValueError unless the scalar ``x`` lies in the open interval (0, 1)."""
    if is_traced(x):
        return
    v = float(x)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie in (0, 1); got {v!r}")


def _keep(gamma) -> Array:
    """q = 1/(1+γ), the keep probability of π_γ (exactly 0 at γ = inf)."""
    return 1.0 / (1.0 + as_float(gamma))


def _broadcast(*xs) -> list[Array]:
    """Explicit NumPy broadcasting (allowed under ``jax_numpy_rank_promotion='raise'``)."""
    shape = np.broadcast_shapes(*(jnp.shape(x) for x in xs))
    return [jnp.broadcast_to(x, shape) for x in xs]


def _apply_power(m: Float[Array, "... p p"], x0: Float[Array, "... p"], t) -> Array:
    """M^t x₀ by repeated squaring (64 bits of t), t a non-negative integer array.

    The powers M^(2^j) commute, so the vector is multiplied by the ones whose bit is set in
    any order. Used for the homogeneous affine recursions below (the last coordinate of the
    state is the constant 1), whose matrices have spectral radius ≤ 1: no overflow.
    """
    e = jnp.asarray(t).astype(jnp.result_type(int))

    def body(_, carry):
        x, p, e = carry
        px = jnp.einsum("...ij,...j->...i", p, x)
        x = jnp.where(((e & 1) == 1)[..., None], px, x)
        return x, jnp.einsum("...ij,...jk->...ik", p, p), e >> 1

    x, _, _ = jax.lax.fori_loop(0, 64, body, (x0, m, e))
    return x


# ---------------------------------------------------------------------------------------
# augment: fixed real set + fresh corrected synthetic points, mean-only model


def _imperfect_defaults(target_mean, sigma2, center, replace_var):
    """c = m* and v₂ = σ² unless given: the ideal π_γ replaces from N(m*, σ²)."""
    return (target_mean if center is None else center), (
        sigma2 if replace_var is None else replace_var
    )


def _mean_chain_terms(n: int, lam, gamma, real_mean, target_mean, sigma2, imperfect=None):
    """(A, B, g, h, b) of the augment mean chain; see ``mean_chain``.

    ``imperfect`` = (c, s, v₂, σ₁², m): the affine corrector's centre, shrink, replacement
    noise variance and kept-sample noise variance, and the fresh real points per generation;
    None is the ideal π_γ without fresh points.
    """
    if imperfect is None:
        imperfect = (target_mean, 0.0, sigma2, 0.0, 0.0)
    center, shrink, replace_var, noise_var, n_fresh = (as_float(v) for v in imperfect)
    k = as_float(n_synthetic(lam, n))
    q = _keep(gamma)
    c = n + k + n_fresh
    delta = as_float(real_mean) - as_float(target_mean)
    b = center - as_float(target_mean)
    sigma2 = as_float(sigma2)
    pull = (1.0 - q) * (1.0 - shrink)  # the weight of the corrector's centre per synthetic point
    a = k * (q + (1.0 - q) * shrink) / c
    beta = (n * delta + k * pull * b) / c
    g = k * q * (1.0 - q) * (1.0 - shrink) ** 2 / c**2
    kept_var, moved_var = sigma2 + noise_var, shrink**2 * sigma2 + replace_var
    h = (k * (q * kept_var + (1.0 - q) * moved_var) + n_fresh * sigma2) / c**2
    return a, beta, g, h, b


def _check_mean_chain(
    n,
    lam,
    gamma,
    real_mean,
    target_mean,
    sigma2,
    center=None,
    shrink=0.0,
    replace_var=None,
    noise_var=0.0,
    n_fresh=0,
) -> None:
    check_positive_int("n", n)
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    _check_finite("real_mean", real_mean)
    _check_finite("target_mean", target_mean)
    check_nonneg("sigma2", sigma2, allow_inf=False)
    if center is not None:
        _check_finite("center", center)
    check_nonneg("shrink", shrink, allow_inf=False)
    if replace_var is not None:
        check_nonneg("replace_var", replace_var, allow_inf=False)
    check_nonneg("noise_var", noise_var, allow_inf=False)
    check_nonneg_int("n_fresh", n_fresh)


def mean_chain(
    n: int,
    lam,
    gamma,
    real_mean,
    target_mean=0.0,
    sigma2=1.0,
    *,
    center=None,
    shrink=0.0,
    replace_var=None,
    noise_var=0.0,
    n_fresh=0,
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Fixed point and stationary variance of the ``augment`` mean chain (1-D, known σ²).

    Paper: eq. (5) with the ideal π_γ of Def. 4.1, for the family {N(μ, σ²)} with σ² known;
    data and target share σ². The real set (n points, mean m̄ = ``real_mean``) is fixed; each
    generation draws k = ⌊λn⌋ points y_i of π_γ p_{μ_t} and refits
    μ_{t+1} = (n m̄ + Σ y_i)/(n + k).

    Derivation. With e = μ − m*, δ = m̄ − m*, c = n + k and K ~ Binomial(k, q) the number of
    kept points, the kept points are N(μ_t, σ²) and the replaced ones N(m*, σ²), so
    Σ y_i − k m* = K e_t + σ√k Z (Z ~ N(0, 1), independent of K) and

        e_{t+1} = (nδ + K e_t + σ√k Z)/c.

    Mean: E e_{t+1} = (nδ + kq E e_t)/c, a contraction with a = kq/c (= λ/((1+λ)(1+γ)),
    the population rate of Lemma A.7, when λn is an integer) and fixed point
    e* = nδ/(n + k(1 − q)). Variance (law of total variance, K, Z independent of e_t):
    Var(e_{t+1} | e_t) = (kq(1−q) e_t² + σ²k)/c², so with m_t = E e_t, V_t = Var e_t,

        V_{t+1} = [kq(1−q)(V_t + m_t²) + σ²k]/c² + a² V_t,

    and at the fixed point V = (σ²k + kq(1−q) e*²)/(c² − kq(1−q) − k²q²). The term
    kq(1−q)e*² is the mixture-sampling variance: the random number of kept points moves the
    synthetic mean by an amount proportional to the distance e* between the chain's fixed
    point and θ*. It vanishes at γ = 0 (q = 1), at γ = inf (q = 0) and when m̄ = m*. The
    denominator is ≥ c² − k ≥ 2k + 1 > 0 since n ≥ 1. The variance is conditional on the
    real set (m̄ fixed).

    **Imperfect correctors and fresh data** (keyword arguments; ``theory.operators.Affine``
    in 1-D). A replaced point is c + s(x − c) + ξ₂ (ξ₂ ~ N(0, v₂), v₂ = ``replace_var``) and a
    kept one x + ξ₁ (ξ₁ ~ N(0, σ₁²), σ₁² = ``noise_var``); ``n_fresh`` = m fresh points of
    N(m*, σ²) join every generation (the ``fresh`` workflow, with γ = 0). With b = c − m*,
    the replaced mean is c + s(μ − c) − m* = (1−s)b + s e, so

        Σ(y_i − m*) = k((1−s)b + s e) + K(1−s)(e − b) + noise,
        noise | K ~ N(0, K(σ² + σ₁²) + (k − K)(s²σ² + v₂)),

    and with c = n + k + m: A = k(q + (1−q)s)/c, B = (nδ + k(1−q)(1−s)b)/c,
    g = kq(1−q)(1−s)²/c², h = [k(q(σ² + σ₁²) + (1−q)(s²σ² + v₂)) + mσ²]/c²:

        m_{t+1} = A m_t + B,   V_{t+1} = (A² + g) V_t + g (m_t − b)² + h,

    fixed point m* + B/(1 − A) and stationary V = (g (e* − b)² + h)/(1 − A² − g). The
    mixture term is now g(e* − b)²: it measures the distance between the chain's fixed point
    and the corrector's centre. The defaults (c = m*, s = 0, v₂ = σ², σ₁² = 0, m = 0) give
    the ideal formulas above; a biased π_γ (replacements N(m* + b, v_c)) is
    ``center=m* + b, replace_var=v_c``; ``theory.imperfect.stationary_mse`` averages over
    the real set.

    Args:
        n: real set size (≥ 1).
        lam: λ ≥ 0 (k = ⌊λn⌋).
        gamma: γ ≥ 0, inf allowed.
        real_mean: mean m̄ of the fixed real set.
        target_mean: m* (the mean of p_θ*).
        sigma2: the known variance σ² ≥ 0 of data, model and target.
        center: the corrector's centre c (default m*).
        shrink: s ≥ 0 (0: replacements independent of x).
        replace_var: v₂ ≥ 0 (default σ²).
        noise_var: σ₁² ≥ 0.
        n_fresh: m ≥ 0 fresh real points per generation.

    Returns:
        (fixed point m* + e* of E μ_t, stationary Var μ_t), broadcast over the inputs.
    """
    opts = (center, shrink, replace_var, noise_var, n_fresh)
    _check_mean_chain(n, lam, gamma, real_mean, target_mean, sigma2, *opts)
    center, replace_var = _imperfect_defaults(target_mean, sigma2, center, replace_var)
    args = _broadcast(
        *(
            as_float(x)
            for x in (lam, gamma, real_mean, target_mean, sigma2, center, shrink, replace_var)
        ),
        as_float(noise_var),
        as_float(n_fresh),
    )
    lam, gamma, real_mean, target_mean, sigma2, *imperfect = args
    a, beta, g, h, b = _mean_chain_terms(n, lam, gamma, real_mean, target_mean, sigma2, imperfect)
    e_star = beta / (1.0 - a)
    var = (h + g * (e_star - b) ** 2) / (1.0 - g - a**2)
    return target_mean + e_star, var


def mean_chain_moments(
    t,
    n: int,
    lam,
    gamma,
    real_mean,
    mu0,
    target_mean=0.0,
    sigma2=1.0,
    *,
    center=None,
    shrink=0.0,
    replace_var=None,
    noise_var=0.0,
    n_fresh=0,
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Exact transient (E μ_t, Var μ_t) of the ``augment`` mean chain from μ₀ = ``mu0``.

    Paper: as ``mean_chain``. The state s = (m, m², V, 1), m = E e_t, V = Var e_t, obeys the
    linear recursion (A, B, g, h as in ``mean_chain``; A = a = kq/c, B = β = nδ/c,
    g = kq(1−q)/c², h = σ²k/c² for the ideal π_γ, b = c − m* the corrector's offset):

        m' = A m + B,   m'² = A² m² + 2AB m + B²,   V' = (A² + g) V + g (m² − 2bm + b²) + h,

    so s_t = M^t s_0 with s_0 = (e₀, e₀², 0, 1), computed by repeated squaring (exact for
    every t, O(log t)). Tracking V itself, not E e², avoids cancellation when e* is large.
    As t → ∞ it tends to ``mean_chain`` (eigenvalues A, A², A² + g < 1).

    Args:
        t: generation, non-negative integer(s).
        n: real set size (≥ 1).
        lam: λ ≥ 0.
        gamma: γ ≥ 0, inf allowed.
        real_mean: mean m̄ of the fixed real set.
        mu0: initial model mean μ₀ (deterministic).
        target_mean: m*.
        sigma2: known variance σ² ≥ 0.
        center, shrink, replace_var, noise_var, n_fresh: the imperfect corrector and the
            fresh points, as in ``mean_chain``.

    Returns:
        (E μ_t, Var μ_t), broadcast over all inputs.
    """
    check_nonneg_int("t", t)
    opts = (center, shrink, replace_var, noise_var, n_fresh)
    _check_mean_chain(n, lam, gamma, real_mean, target_mean, sigma2, *opts)
    _check_finite("mu0", mu0)
    center, replace_var = _imperfect_defaults(target_mean, sigma2, center, replace_var)
    return _mean_chain_moments(
        t, int(n), lam, gamma, real_mean, mu0, target_mean, sigma2,
        center, shrink, replace_var, noise_var, n_fresh,
    )  # fmt: skip


@partial(jax.jit, static_argnames=("n",))
def _mean_chain_moments(
    t, n, lam, gamma, real_mean, mu0, target_mean, sigma2, center, shrink, replace_var,
    noise_var, n_fresh,
):  # fmt: skip
    t, lam, gamma, real_mean, mu0, target_mean, sigma2, *imperfect = _broadcast(
        jnp.asarray(t),
        *(as_float(x) for x in (lam, gamma, real_mean, mu0, target_mean, sigma2, center, shrink)),
        *(as_float(x) for x in (replace_var, noise_var, n_fresh)),
    )
    a, beta, g, h, b = _mean_chain_terms(n, lam, gamma, real_mean, target_mean, sigma2, imperfect)
    zero, one = jnp.zeros_like(a), jnp.ones_like(a)
    rows = [
        [a, zero, zero, beta],
        [2.0 * a * beta, a**2, zero, beta**2],
        [-2.0 * g * b, g, a**2 + g, g * b**2 + h],
        [zero, zero, zero, one],
    ]
    m = jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)
    e0 = mu0 - target_mean
    s = _apply_power(m, jnp.stack([e0, e0**2, zero, one], axis=-1), t)
    return target_mean + s[..., 0], s[..., 2]


# ---------------------------------------------------------------------------------------
# augment, both moments fitted (1-D): exact first moments of (μ_t, σ_t²)


def _check_augment(n, lam, gamma, data_mean, data_var, real, theta0, opts) -> None:
    check_positive_int("n", n)
    for name, v in (("lam", lam), ("gamma", gamma), ("data_mean", data_mean)):
        if is_traced(v):
            continue
        if np.ndim(v) != 0:
            raise ValueError(f"{name} must be a scalar (vmap for grids); got shape {np.shape(v)}")
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    _check_finite("data_mean", data_mean)
    check_nonneg("data_var", data_var, allow_inf=False)
    if real is not None:
        _check_finite("real[0] (real mean)", real[0])
        check_nonneg("real[1] (real variance)", real[1], allow_inf=False)
    if theta0 is not None:
        _check_finite("theta0[0] (mu0)", theta0[0])
        check_nonneg("theta0[1] (var0)", theta0[1], allow_inf=False)
    center, shrink, replace_var, noise_var, n_fresh = opts
    if center is not None:
        _check_finite("center", center)
    check_nonneg("shrink", shrink, allow_inf=False)
    if replace_var is not None:
        check_nonneg("replace_var", replace_var, allow_inf=False)
    check_nonneg("noise_var", noise_var, allow_inf=False)
    check_nonneg_int("n_fresh", n_fresh)


def _augment_system(n, lam, gamma, data_mean, data_var, real, theta0, opts):
    """(M, s₀) of the exact linear recursion s_{t+1} = M s_t; see ``augment_moments``."""
    center, shrink, replace_var, noise_var, n_fresh = opts
    m_star, v_d = as_float(data_mean), as_float(data_var)
    center = m_star if center is None else as_float(center)
    replace_var = v_d if replace_var is None else as_float(replace_var)
    s_, v1, v2, m = (as_float(x) for x in (shrink, noise_var, replace_var, n_fresh))
    k = as_float(n_synthetic(lam, n))
    q = _keep(gamma)
    big_n = n + k + m
    b = center - m_star
    if real is None:  # averaged over real sets: E δ = 0, E δ² = v/n, E S_real = (n−1)v
        d1, d2, scatter = jnp.zeros_like(v_d), v_d / n, (n - 1) * v_d
    else:
        d1 = as_float(real[0]) - m_star
        d2, scatter = d1**2, n * as_float(real[1])
    a1 = q + (1.0 - q) * s_  # E[y − m* | θ] = a1 e + b1
    b1 = (1.0 - q) * (1.0 - s_) * b
    r2 = q + (1.0 - q) * s_**2  # Var[y | θ] = r2 σ² + w0 + G (e − b)²
    w0 = q * v1 + (1.0 - q) * v2
    mix = q * (1.0 - q) * (1.0 - s_) ** 2

    def step(state):
        e, e2, de, v, one = state
        var_y = r2 * v + w0 * one + mix * (e2 - 2.0 * b * e + b**2 * one)
        sq_y = a1**2 * e2 + 2.0 * a1 * b1 * e + b1**2 * one  # E (a1 e + b1)²
        d_y = a1 * de + b1 * d1 * one  # E δ (a1 e + b1)
        spread = k * var_y + m * v_d * one  # Σ over random points of their variance
        sum_sq = n**2 * d2 * one + 2.0 * n * k * d_y + k**2 * sq_y  # E (nδ + k a_Y)²
        e_new = (n * d1 * one + k * (a1 * e + b1 * one)) / big_n
        e2_new = (sum_sq + spread) / big_n**2
        de_new = (n * d2 * one + k * d_y) / big_n
        between = n * d2 * one + k * sq_y - sum_sq / big_n
        v_new = (scatter * one + (1.0 - 1.0 / big_n) * spread + between) / big_n
        return jnp.stack([e_new, e2_new, de_new, v_new, one])

    matrix = jax.jacfwd(step)(jnp.zeros(5, v_d.dtype))  # exact: step is linear
    if theta0 is None:  # generation 0 is the MLE on the real set
        if real is None:
            s0 = jnp.stack([d1, d2, d2, scatter / n, jnp.ones_like(d1)])
        else:
            s0 = jnp.stack([d1, d2, d2, as_float(real[1]), jnp.ones_like(d1)])
    else:
        e0 = as_float(theta0[0]) - m_star
        s0 = jnp.stack([e0, e0**2, d1 * e0, as_float(theta0[1]), jnp.ones_like(e0)])
    return matrix, s0


def augment_moments(
    t,
    n: int,
    lam,
    gamma,
    data_mean=0.0,
    data_var=1.0,
    *,
    real=None,
    theta0=None,
    center=None,
    shrink=0.0,
    replace_var=None,
    noise_var=0.0,
    n_fresh=0,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Exact (E μ_t, E (μ_t − m*)², E σ_t²) of the 1-D ``augment`` loop, both moments fitted.

    Paper: eq. (5) / Algorithm 1 for the family {N(μ, σ²)}, with the ideal π_γ (Def. 4.1) or
    an affine imperfect corrector (``theory.operators.Affine``: kept x + ξ₁, ξ₁ ~ N(0, σ₁²);
    replaced c + s(x − c) + ξ₂, ξ₂ ~ N(0, v₂)), plus m = ``n_fresh`` fresh real points per
    generation (the equal-budget ``fresh`` workflow). This is what ``sims.gaussian.loop``
    simulates in 1-D.

    Setting. p_data has mean m* and variance v (any law: the Gaussian MLE sees only these,
    so θ* = (m*, v) also for misspecified, non-Gaussian data); p_θ* = N(m*, v). A real set of
    n points (mean m̄, δ = m̄ − m*, scatter S = Σ(x − m̄)²) is fixed; each generation draws
    k = ⌊λn⌋ points of p_θ, corrects them, adds m fresh points of p_data, and refits the MLE
    (mean, 1/N variance) on all N = n + k + m points.

    Derivation. Given θ = (μ, σ²), e = μ − m*, each corrected point y is i.i.d. with
    (Affine mixture moments, b = c − m*)

        E[y − m* | θ] = a₁ e + b₁,          a₁ = q + (1−q)s,   b₁ = (1−q)(1−s)b,
        Var[y | θ] = W = r₂ σ² + w₀ + G (e − b)²,   r₂ = q + (1−q)s², w₀ = qσ₁² + (1−q)v₂,
                                                     G = q(1−q)(1−s)².

    For groups g (real: fixed offset δ, no variance; synthetic: k points, offset a₁e + b₁,
    variance W; fresh: m points, offset 0, variance v) with counts n_g, offsets o_g and
    per-point variances u_g, the MLE satisfies

        E[e' | θ] = Σ n_g o_g / N,   Var[e' | θ] = Σ n_g u_g / N²,
        E[N σ²' | θ] = S + (1 − 1/N) Σ n_g u_g + Σ n_g o_g² − (Σ n_g o_g)²/N

    (within-group scatter (n_g − 1)u_g plus the between-group sum of squares, whose
    expectation adds u_g(1 − n_g/N) per random group). Every right-hand side is linear in
    the monomials (e, e², δe, σ², 1), so s = (E e, E e², E δe, E σ², 1) obeys an exact
    linear recursion s_{t+1} = M s_t: conditional on the real set (``real`` = (m̄, S/n)),
    δ is a constant; averaged over real sets (``real=None``, n i.i.d. points of p_data) δ and
    S are random with E δ = 0, E δ² = v/n, E S = (n−1)v, and E δe enters through
    E[(nδ + k(a₁e + b₁))²]. M is built as the Jacobian of that linear step (exact) and
    M^t s₀ by repeated squaring. At the ideal π_γ with γ = 0 and m = 0 this is the
    uncorrected loop of Bertrand et al.

    Args:
        t: generation(s), non-negative integers.
        n: real set size (≥ 1).
        lam: λ ≥ 0 (scalar; vmap for grids).
        gamma: γ ≥ 0, inf allowed (scalar).
        data_mean: m* (= the mean of p_data and of p_θ*).
        data_var: v ≥ 0 (the variance of p_data and of p_θ*).
        real: None (average over real sets) or (m̄, S/n), the fixed real set's mean and MLE
            variance.
        theta0: (μ₀, σ₀²), or None for the MLE on the real set (generation 0).
        center, shrink, replace_var, noise_var: the affine corrector (defaults: the ideal
            π_γ, c = m*, s = 0, v₂ = v, σ₁² = 0).
        n_fresh: m ≥ 0 fresh real points per generation.

    Returns:
        (E μ_t, E (μ_t − m*)², E σ_t²).
    """
    check_nonneg_int("t", t)
    opts = (center, shrink, replace_var, noise_var, n_fresh)
    _check_augment(n, lam, gamma, data_mean, data_var, real, theta0, opts)
    return _augment_moments(
        jnp.asarray(t), as_float(n), lam, gamma, data_mean, data_var, real, theta0, opts
    )


@jax.jit  # n is traced too: one compilation serves every size
def _augment_moments(t, n, lam, gamma, data_mean, data_var, real, theta0, opts):
    matrix, s0 = _augment_system(n, lam, gamma, data_mean, data_var, real, theta0, opts)
    s = _apply_power(
        jnp.broadcast_to(matrix, (*t.shape, 5, 5)), jnp.broadcast_to(s0, (*t.shape, 5)), t
    )
    return as_float(data_mean) + s[..., 0], s[..., 1], s[..., 3]


def augment_stationary(
    n: int,
    lam,
    gamma,
    data_mean=0.0,
    data_var=1.0,
    *,
    real=None,
    center=None,
    shrink=0.0,
    replace_var=None,
    noise_var=0.0,
    n_fresh=0,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Stationary (E μ, E (μ − m*)², E σ², rate) of the 1-D ``augment`` loop.

    Paper: as ``augment_moments``; the fixed point of s = M s, i.e. the solution of
    (I − M₄) x = M's constant column over the four moments (independent of θ₀). ``rate`` is
    the spectral radius of M₄, the per-generation contraction of the moments; the stationary
    law exists iff rate < 1 (always for s ≤ 1: the real set anchors the fit).

    Returns:
        (E μ_∞, E (μ_∞ − m*)², E σ²_∞, spectral radius of M₄).
    """
    opts = (center, shrink, replace_var, noise_var, n_fresh)
    _check_augment(n, lam, gamma, data_mean, data_var, real, None, opts)
    return _augment_stationary(as_float(n), lam, gamma, data_mean, data_var, real, opts)


@jax.jit
def _augment_stationary(n, lam, gamma, data_mean, data_var, real, opts):
    matrix, _ = _augment_system(n, lam, gamma, data_mean, data_var, real, None, opts)
    m4, const = matrix[:4, :4], matrix[:4, 4]
    x = linalg.solve(jnp.eye(4, dtype=m4.dtype) - m4, const)
    return as_float(data_mean) + x[0], x[1], x[3], _augment_rate(m4)


def _augment_rate(m4: Float[Array, "4 4"]) -> Float[Array, ""]:
    """Spectral radius of M₄ without a general eigensolver (none on GPU).

    In the order (e, e², δe, σ²) the rows of e and δe involve only themselves, with the
    same coefficient A (the mean rate), so the eigenvalues are A, A and those of the 2 × 2
    block on (e², σ²): (τ ± sqrt(τ² − 4Δ))/2, of modulus sqrt(Δ) when complex.
    """
    block = m4[jnp.array([1, 3])][:, jnp.array([1, 3])]
    tr, det = jnp.trace(block), linalg.det(block)
    disc = tr**2 - 4.0 * det
    root = jnp.sqrt(jnp.abs(disc))
    radius = jnp.where(disc >= 0, 0.5 * (jnp.abs(tr) + root), jnp.sqrt(jnp.abs(det)))
    return jnp.maximum(jnp.abs(m4[0, 0]), radius)


# ---------------------------------------------------------------------------------------
# replace: refit (μ, σ²) on n own corrected samples, no real data


def replace_moments(
    t, n: int, gamma, mu0, var0, target_mean=0.0, target_var=1.0
) -> tuple[Float[Array, "..."], Float[Array, "..."], Float[Array, "..."]]:
    """Exact (E μ_t, E (μ_t − m*)², E σ_t²) of the ``replace`` chain with both moments fitted.

    Paper: Def. 4.1 and eq. (5) without real data (``docs/paper.md``, "replace-only"); γ = 0 is
    Bertrand et al.'s collapsing loop. Each generation draws n i.i.d. points of the mixture
    π_γ p_θ = q N(μ_t, σ_t²) + (1−q) N(m*, v*) and refits by MLE (sample mean, 1/n variance).

    Derivation. Given θ_t the mixture has mean m* + q e_t and variance
    s_t = q σ_t² + (1−q) v* + q(1−q) e_t². The sample mean of n i.i.d. points has mean
    m* + q e_t and variance s_t/n; the 1/n sample variance has mean (n−1)/n · s_t for any
    i.i.d. law. Hence, with r = (n−1)/n,

        E[e' | θ] = q e,
        E[e'² | θ] = q² e² + s/n = (q² + q(1−q)/n) e² + (q/n) σ² + (1−q) v*/n,
        E[σ²' | θ] = r s = r q(1−q) e² + r q σ² + r(1−q) v*,

    linear in (e, e², σ², 1): the expectations (E e, E e², E σ², 1) follow s_{t+1} = M s_t
    exactly, solved by repeated squaring from the deterministic start (e₀, e₀², σ₀², 1).
    At γ = 0: E σ_t² = r^t σ₀² (collapse in expectation) and E e_t² = e₀² + σ₀²(1 − r^t)
    (since n(1 − r) = 1); see ``replace_log_variance`` for the much faster typical decay.

    Args:
        t: generation, non-negative integer(s).
        n: samples per generation (≥ 1).
        gamma: γ ≥ 0, inf allowed.
        mu0: initial mean μ₀.
        var0: initial variance σ₀² ≥ 0.
        target_mean: m*.
        target_var: v* ≥ 0.

    Returns:
        (E μ_t, E (μ_t − m*)², E σ_t²), broadcast over the inputs.
    """
    check_nonneg_int("t", t)
    check_positive_int("n", n)
    check_nonneg("gamma", gamma)
    _check_finite("mu0", mu0)
    check_nonneg("var0", var0, allow_inf=False)
    _check_finite("target_mean", target_mean)
    check_nonneg("target_var", target_var, allow_inf=False)
    return _replace_moments(t, int(n), gamma, mu0, var0, target_mean, target_var)


@partial(jax.jit, static_argnames=("n",))
def _replace_moments(t, n, gamma, mu0, var0, target_mean, target_var):
    t, gamma, mu0, var0, target_mean, target_var = _broadcast(
        jnp.asarray(t), *(as_float(x) for x in (gamma, mu0, var0, target_mean, target_var))
    )
    q = _keep(gamma)
    r = (n - 1) / n
    zero, one = jnp.zeros_like(q), jnp.ones_like(q)
    rows = [
        [q, zero, zero, zero],
        [zero, q**2 + q * (1.0 - q) / n, q / n, (1.0 - q) * target_var / n],
        [zero, r * q * (1.0 - q), r * q, r * (1.0 - q) * target_var],
        [zero, zero, zero, one],
    ]
    m = jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)
    e0 = mu0 - target_mean
    s = _apply_power(m, jnp.stack([e0, e0**2, var0, one], axis=-1), t)
    return target_mean + s[..., 0], s[..., 1], s[..., 2]


def replace_stationary(
    n: int, gamma, target_var=1.0
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Stationary (E (μ − m*)², E σ²) of the ``replace`` chain for γ > 0 (E μ → m*).

    Paper: as ``replace_moments``. Setting s_{t+1} = s_t in its recursion (q < 1, so the
    2 × 2 block for (E e², E σ²) has spectral radius < 1) and using n r² + r = n − 1:

        E e²_∞ = v*/(n − q²(n−1)),    E σ²_∞ = r(1−q)(q E e²_∞ + v*)/(1 − rq).

    Checks: q = 0 (γ = inf) gives v*/n and r v*, the sample mean and 1/n variance of n
    draws of p_θ*. Correction removes the collapse for every γ > 0; as γ → 0 the limit
    (v*, 0) is approached ever more slowly (rate → 1). At γ = 0 itself there is no
    stationary law: E e_t² → e₀² + σ₀² depends on the start and E σ_t² → 0.

    Args:
        n: samples per generation (≥ 1).
        gamma: γ > 0, inf allowed.
        target_var: v* ≥ 0.

    Returns:
        (E e²_∞, E σ²_∞), broadcast over the inputs.
    """
    check_positive_int("n", n)
    check_nonneg("gamma", gamma)
    if not is_traced(gamma) and np.any(np.asarray(gamma, dtype=float) == 0.0):
        raise ValueError("gamma must lie in (0, inf] (no stationary law at gamma = 0); got 0")
    check_nonneg("target_var", target_var, allow_inf=False)
    gamma, v = _broadcast(as_float(gamma), as_float(target_var))
    q = _keep(gamma)
    r = (n - 1) / n
    sq_error = v / (n - q**2 * (n - 1))
    var = r * (1.0 - q) * (q * sq_error + v) / (1.0 - r * q)
    return sq_error, var


def replace_log_variance(t, n: int, var0=1.0) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """Exact (E log σ_t², Var log σ_t²) of the uncorrected ``replace`` chain (γ = 0).

    Paper: ``docs/paper.md`` ("the variance shrinks geometrically in expectation, the median
    much faster"); Bertrand et al.'s γ = 0. Derivation: given σ_t², n σ²_{t+1}/σ_t² ~ χ²_{n−1},
    independently of the past and of μ_t (Cochran), so log σ_t² = log σ₀² + Σ_{s<t} log ξ_s
    with ξ_s i.i.d. χ²_{n−1}/n. With E log χ²_ν = ψ(ν/2) + log 2 and Var log χ²_ν = ψ'(ν/2):

        E log σ_t² = log σ₀² + t (ψ((n−1)/2) + log(2/n)),   Var log σ_t² = t ψ'((n−1)/2).

    log σ_t² is a sum of i.i.d. terms, so the median of σ_t² decays at the per-generation
    rate exp(ψ((n−1)/2) + log(2/n)) (``collapse_rates``), faster than the mean's (n−1)/n.

    Args:
        t: generation, non-negative integer(s).
        n: samples per generation (≥ 2; n = 1 collapses to σ² = 0 in one step).
        var0: σ₀² > 0.

    Returns:
        (E log σ_t², Var log σ_t²), broadcast over the inputs.
    """
    check_nonneg_int("t", t)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    check_nonneg("var0", var0, allow_inf=False)
    if not is_traced(var0) and np.any(np.asarray(var0, dtype=float) == 0.0):
        raise ValueError("var0 must lie in (0, inf); got 0")
    half = as_float((n - 1) / 2)
    drift = jax.scipy.special.digamma(half) + jnp.log(2.0 / n)
    spread = jax.scipy.special.polygamma(1, half)
    tf = as_float(t)
    return jnp.log(as_float(var0)) + tf * drift, tf * spread


def replace_log_det_drift(n: int, d: int) -> Float[Array, ""]:
    """Exact per-generation drift of E log det Σ_t in the uncorrected ``replace`` loop, d ≥ 1.

    Paper: ``docs/paper.md`` (collapse without real data). Given Σ_t,
    n Σ_{t+1} = Σ_t^{1/2} W Σ_t^{1/2} with W ~ Wishart_d(n − 1, I) independent of the past,
    and by the Bartlett decomposition det W = Π_{i<d} χ²_{n−1−i} (independent), so

        E log det Σ_{t+1} − E log det Σ_t = Σ_{i<d} ψ((n−1−i)/2) + d log(2/n)

    exactly, for every t. d = 1 is ``replace_log_variance``'s drift. The geometric-mean
    variance det(Σ_t)^{1/d} therefore decays like exp(t·drift/d) (in median as well, since
    log det Σ_t is a sum of i.i.d. terms).

    Args:
        n: samples per generation (≥ d + 1, else Σ is singular after one step).
        d: dimension.
    """
    for name, v in (("n", n), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    if n < d + 1:
        raise ValueError(f"n must be >= d + 1 = {d + 1} (else Σ is singular); got {n}")
    half = as_float((n - 1 - np.arange(d)) / 2)
    return jnp.sum(jax.scipy.special.digamma(half)) + d * jnp.log(as_float(2.0 / n))


def collapse_rates(n: int) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Per-generation decay of the uncorrected ``replace`` variance: (mean, median) rate.

    Paper: as ``replace_log_variance``. E σ²_{t+1} = ((n−1)/n) E σ_t², while the median (and
    the geometric mean) of σ_t² decays like exp(t(ψ((n−1)/2) + log(2/n))). By Jensen the
    second rate is smaller (e.g. n = 10: 0.900 against 0.802).

    Args:
        n: samples per generation (≥ 2).

    Returns:
        ((n−1)/n, exp(ψ((n−1)/2) + log(2/n))).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    half = as_float((n - 1) / 2)
    median = jnp.exp(jax.scipy.special.digamma(half) + jnp.log(2.0 / n))
    return as_float((n - 1) / n), median


# ---------------------------------------------------------------------------------------
# accumulate: real set + every corrected synthetic set so far, mean-only model


def accumulate_moments(
    generations: int, n: int, lam, gamma, real_mean, mu0=None, target_mean=0.0, sigma2=1.0
) -> tuple[Float[Array, "T1 ..."], Float[Array, "T1 ..."]]:
    """Exact (E μ_t, Var μ_t), t = 0..T, of the ``accumulate`` mean chain (1-D, known σ²).

    Paper: ``docs/paper.md`` ("accumulate (error stays bounded)"); ``sims.gaussian.loop`` workflow
    ``accumulate``. The real set (n points, mean m̄) is fixed; set j (k = ⌊λn⌋ points) is
    drawn from π_γ p_{μ_{j−1}} and kept forever; generation t ≥ 1 fits
    μ_t = (n m̄ + Σ_{j≤t} S_j)/N_t with N_t = n + tk, S_j the sum of set j; μ₀ is free.

    Derivation. Let T_t = N_t e_t = nδ + Σ_{j≤t} (S_j − k m*), δ = m̄ − m*. As for
    ``mean_chain``, S_j − k m* = K_j e_{j−1} + σ√k Z_j with K_j ~ Binomial(k, q): the k − K_j
    replaced points are centred at m*, so they add noise only, and the real set contributes
    nδ once, inside T. For t ≥ 2, e_{t−1} = T_{t−1}/N_{t−1} and

        T_t = T_{t−1} (1 + K_t/N_{t−1}) + σ√k Z_t,

    with (K_t, Z_t) independent of T_{t−1}. Writing Y = 1 + K_t/N_{t−1} (E Y = 1 + kq/N,
    Var Y = kq(1−q)/N², N = N_{t−1}) and Var(XY) = Var X · E Y² + (E X)² Var Y:

        E T_t = E T_{t−1} (1 + kq/N),
        Var T_t = Var T_{t−1} (E Y)² + Var T_{t−1} Var Y + (E T_{t−1})² Var Y + σ²k.

    (So E T_t² = E T_{t−1}² E Y² + σ²k, E Y² = 1 + 2kq/N + (kq(1−q) + k²q²)/N²: the nδ
    term enters only through T₁.) Generation 1 starts from the free μ₀ (e₀ = μ₀ − m*):
    T₁ = nδ + K₁ e₀ + σ√k Z₁, E T₁ = nδ + kq e₀, Var T₁ = kq(1−q) e₀² + σ²k. Then
    E μ_t = m* + E T_t/N_t and Var μ_t = Var T_t/N_t².

    Limits. γ = 0 (q = 1): Y = N_t/N_{t−1}, so e_t = e_{t−1} + σ√k Z_t/N_t: E μ_t is constant
    for t ≥ 1 and Var μ_t = σ² Σ_{j=1}^t k/N_j², bounded by ``accumulate_variance_limit``.
    γ > 0: E T_t ∝ Π(1 + kq/N_j) ~ t^q, so E e_t ~ t^{q−1} → 0: corrected synthetic sets
    eventually outweigh the real set's offset δ.

    Args:
        generations: T ≥ 0 (static: the output has T + 1 rows).
        n: real set size (≥ 1).
        lam: λ ≥ 0 (k = ⌊λn⌋ per set).
        gamma: γ ≥ 0, inf allowed.
        real_mean: m̄.
        mu0: μ₀ (default m̄, the fit on the real set).
        target_mean: m*.
        sigma2: the known variance σ² ≥ 0.

    Returns:
        (E μ_t, Var μ_t), each of shape (T + 1, *broadcast shape of the parameters).
    """
    check_nonneg_int("generations", generations)
    generations = int(generations)
    _check_mean_chain(n, lam, gamma, real_mean, target_mean, sigma2)
    mu0 = real_mean if mu0 is None else mu0
    _check_finite("mu0", mu0)
    return _accumulate_moments(generations, int(n), lam, gamma, real_mean, mu0, target_mean, sigma2)


@partial(jax.jit, static_argnames=("generations", "n"))
def _accumulate_moments(generations, n, lam, gamma, real_mean, mu0, target_mean, sigma2):
    lam, gamma, real_mean, mu0, target_mean, sigma2 = _broadcast(
        *(as_float(x) for x in (lam, gamma, real_mean, mu0, target_mean, sigma2))
    )
    k = as_float(n_synthetic(lam, n))
    q = _keep(gamma)
    e0 = mu0 - target_mean
    kq, kqp = k * q, k * q * (1.0 - q)
    mean1 = n * (real_mean - target_mean) + kq * e0
    var1 = kqp * e0**2 + sigma2 * k

    def step(carry, t):
        mean_t, var_t = carry
        big_n = n + (t - 1.0) * k
        ey, vy = 1.0 + kq / big_n, kqp / big_n**2
        new = (mean_t * ey, var_t * (ey**2 + vy) + mean_t**2 * vy + sigma2 * k)
        return new, new

    ts = jnp.arange(2, generations + 1, dtype=k.dtype)
    _, (means, variances) = jax.lax.scan(step, (mean1, var1), ts)
    steps = jnp.arange(1, generations + 1, dtype=k.dtype).reshape((-1,) + (1,) * k.ndim)
    big_n = n + steps * k[None]
    t_mean = jnp.concatenate([mean1[None], means])[:generations]
    t_var = jnp.concatenate([var1[None], variances])[:generations]
    mean = jnp.concatenate([mu0[None], target_mean[None] + t_mean / big_n])
    var = jnp.concatenate([jnp.zeros_like(mu0)[None], t_var / big_n**2])
    return mean, var


def accumulate_variance_limit(n: int, lam, sigma2=1.0) -> Float[Array, "..."]:
    """lim_t Var μ_t of the uncorrected (γ = 0) ``accumulate`` chain: σ² ψ'(1 + n/k)/k.

    Paper: ``docs/paper.md``, "accumulate (error stays bounded)". From ``accumulate_moments`` at
    q = 1, Var μ_t = σ² Σ_{j=1}^t k/(n + jk)², and Σ_{j≥1} 1/(j + z)² = ψ'(1 + z) with
    z = n/k. (0 when k = 0.) Independent of μ₀; by contrast the augment chain's
    stationary variance is σ²k/(n+k)² at γ = 0 and the replace chain collapses.

    Args:
        n: real set size (≥ 1).
        lam: λ ≥ 0.
        sigma2: σ² ≥ 0.
    """
    check_positive_int("n", n)
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("sigma2", sigma2, allow_inf=False)
    lam, sigma2 = _broadcast(as_float(lam), as_float(sigma2))
    k = as_float(n_synthetic(lam, n))
    k_safe = jnp.where(k > 0, k, 1.0)
    limit = sigma2 * jax.scipy.special.polygamma(1, 1.0 + n / k_safe) / k_safe
    return jnp.where(k > 0, limit, 0.0)


# ---------------------------------------------------------------------------------------
# full (μ, Σ) family, augment: one-step deviation and τ_n(δ)


def mean_deviation(
    theta: gauss.Gaussian,
    n: int,
    lam,
    gamma,
    data: gauss.Gaussian,
    target: gauss.Gaussian | None = None,
    population_lam=None,
) -> Float[Array, ""]:
    """E‖μ̂ − μ_pop‖²: the mean part of the one-step deviation π_γG^n_λ(θ) − π_γG^∞_λ(θ).

    Paper: Assumption 3 (the random quantity bounded by τ_n(δ)), eq. (5). One ``augment``
    step from θ = (μ, Σ): n real points i.i.d. p_data = N(m_d, Σ_d), k = ⌊λn⌋ synthetic points
    i.i.d. π_γ p_θ, and μ̂ = (Σ x_i + Σ y_j)/(n + k). Each y_j has the mixture moments
    E y = q μ + (1−q) m* and Cov y = S = q Σ + (1−q) Σ* + q(1−q)(μ − m*)(μ − m*)ᵀ, so

        E μ̂ = (n m_d + k(q μ + (1−q) m*))/(n + k),   Cov μ̂ = (n Σ_d + k S)/(n + k)²,

    and E‖μ̂ − μ_pop‖² = tr Cov μ̂ + ‖E μ̂ − μ_pop‖².

    Weights: the finite map weighs the synthetic term by k/n = ⌊λn⌋/n, the paper's G^∞_λ by
    λ. With μ_pop the mean of ``gauss.population_map`` at weight w = ``population_lam``
    (default k/n, as ``sims.gaussian.toy.one_step_deviations`` does), E μ̂ = μ_pop exactly
    and only the trace remains; with w = λ and λn not an integer a bias
    (k/n − λ)-sized term is added. By Chebyshev, P(‖μ̂ − μ_pop‖ ≥ s) ≤ E‖·‖²/s², so the
    mean part of τ_n(δ) is at most sqrt(E‖μ̂ − μ_pop‖²/δ) (distribution-free, loose);
    ``tau_upper`` bounds the whole deviation from Monte-Carlo draws instead.

    Args:
        theta: current model (μ, Σ).
        n: real set size (≥ 1).
        lam: λ ≥ 0 (scalar).
        gamma: γ ≥ 0, inf allowed (scalar).
        data: p_data's moments (m_d, Σ_d).
        target: p_θ* used by π_γ (default ``data``, the well-specified case).
        population_lam: the weight of G^∞ (default ⌊λn⌋/n).

    Returns:
        E‖μ̂ − μ_pop‖² (a scalar).
    """
    check_positive_int("n", n)
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    if population_lam is not None:
        check_nonneg("population_lam", population_lam, allow_inf=False)
    target = data if target is None else target
    for name, g in (("theta", theta), ("data", data), ("target", target)):
        gauss.validate(g, name)
    k = as_float(n_synthetic(lam, n))
    w = k / n if population_lam is None else as_float(population_lam)
    q = _keep(gamma)
    diff = theta.mean - target.mean
    tr_mix = (
        q * jnp.trace(theta.cov) + (1.0 - q) * jnp.trace(target.cov) + q * (1.0 - q) * diff @ diff
    )
    c = n + k
    variance = (n * jnp.trace(data.cov) + k * tr_mix) / c**2
    expected = (n * data.mean + k * (q * theta.mean + (1.0 - q) * target.mean)) / c
    bias = expected - gauss.population_map(theta, w, gamma, data, target).mean
    return variance + bias @ bias


def tau_upper(deviations: Float[Array, " m"], delta, confidence=0.95) -> Float[Array, ""]:
    """Distribution-free upper confidence bound on the (1−δ)-quantile of a deviation.

    Paper: Assumption 3, τ_n(δ) = the (1−δ)-quantile of ‖π_γG^n_λ(θ) − π_γG^∞_λ(θ)‖ (at
    fixed θ; the assumption asks for it uniformly over θ ∈ U, so feed draws at the worst θ
    or take the maximum over a grid of θ). ``deviations`` are m i.i.d. Monte-Carlo draws
    (e.g. ``sims.gaussian.toy.one_step_deviations``).

    Derivation. Let ξ = inf{x : F(x) ≥ p}, p = 1 − δ, so F(ξ⁻) ≤ p for any law F. The order
    statistic X_(r) is < ξ only if at least r draws are < ξ, and #{X_i < ξ} ~
    Binomial(m, F(ξ⁻)) is stochastically at most Binomial(m, p). Hence
    P(X_(r) ≥ ξ) ≥ P(Binomial(m, p) ≤ r − 1); the bound is X_(r) for the smallest r with
    P(Binomial(m, p) ≤ r − 1) ≥ ``confidence`` (coverage exactly that probability when F is
    continuous), and +inf when even r = m does not suffice (m too small: 1 − p^m <
    confidence). NaN draws (a diverged step) count as +inf. The binomial CDF is summed from
    log-probabilities in float64.

    Args:
        deviations: m ≥ 1 i.i.d. draws (1-D).
        delta: δ ∈ (0, 1).
        confidence: coverage level ∈ (0, 1).

    Returns:
        An upper bound on τ(δ) holding with probability ≥ ``confidence``.
    """
    _check_open_unit("delta", delta)
    _check_open_unit("confidence", confidence)
    x = jnp.asarray(deviations)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"deviations must be a non-empty 1-D array; got shape {x.shape}")
    return _tau_upper(as_float(x), as_float(delta), as_float(confidence))


@jax.jit
def _tau_upper(x, delta, confidence):
    m = x.shape[0]
    x = jnp.sort(jnp.where(jnp.isnan(x), jnp.inf, x))
    j = jnp.arange(m + 1, dtype=x.dtype)
    gammaln = jax.scipy.special.gammaln
    log_pmf = (
        gammaln(m + 1.0)
        - gammaln(j + 1.0)
        - gammaln(m - j + 1.0)
        + j * jnp.log1p(-delta)
        + (m - j) * jnp.log(delta)
    )
    cdf = jnp.cumsum(jnp.exp(log_pmf))[:m]  # P(Bin(m, p) ≤ r − 1) for r = 1..m
    ok = cdf >= confidence
    r = jnp.argmax(ok)
    return jnp.where(jnp.any(ok), x[r], jnp.inf)
