"""Imperfect correctors: where the loop's fixed point moves, how fast it gets there, the best γ.

Paper: Def. 4.1 (π_γ, eq. 4), eq. (5) (π_γ G_λ), Lemma A.7 (the Jacobian at θ*), Thm 4.3
(stability when λ(1+κ) < (1+γ)/(2+γ), eq. 7). Theorem 4.3 assumes the ideal π_γ, which pulls
exactly toward p_θ*; the correctors here do not (``theory.operators.Affine`` and the
selectors ``top_k``, ``band``). Everything is for the ``augment`` workflow (a fixed real set
plus ⌊λn⌋ fresh corrected synthetic points per generation, MLE refit); λ = inf is the
``replace`` limit (no real data) wherever the population map is defined there.

Contents.

- Population maps (G^∞ of eq. 5 with population expectations) of the affine family in any
  dimension, with its fixed point and its two rates in closed form
  (``affine_population_map``, ``affine_fixed_point``, ``affine_rates``), and of the 1-D
  selective correctors (``truncated_moments``, ``top_alpha_law``, ``band_law``,
  ``selective_population_map``, ``selective_fixed_point``).
- Finite samples (1-D, known σ², averaged over the real set): the stationary MSE of the
  mean, its split into a bias-free part and a b² part, the MSE-optimal γ and the bias at
  which correction stops helping (``stationary_mse``, ``mse_optimal_gamma``,
  ``break_even_bias``), the equal-budget ``fresh`` control (``fresh_count``,
  ``fresh_stationary_mse``); exact transients live in ``theory.chains`` (``mean_chain``,
  ``augment_moments``).
- Yi et al. (ICLR 2026) one round with a biased verifier and an acceptance band: exact
  (``band_one_round``) and their second-order expansion (``band_one_round_expansion``).
- The misspecified family with κ > 0: the Gaussian fitted to bounded data
  (``bounded_data_sample``, ``bounded_data_theta_star``).

Inputs are checked (``ValueError`` naming the parameter) when concrete; traced inputs pass.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri
from jaxtyping import Array, Float

from theory import constants, linalg
from theory import gaussian as gauss
from theory._checks import as_float, check_nonneg, check_positive_int, is_traced
from theory.operators import Affine, n_synthetic, validate_affine

__all__ = [
    "SELECTIVE_KINDS",
    "affine_fixed_point",
    "affine_population_map",
    "affine_rates",
    "band_law",
    "band_one_round",
    "band_one_round_expansion",
    "bounded_data_sample",
    "bounded_data_theta_star",
    "break_even_bias",
    "fresh_count",
    "fresh_stationary_mse",
    "mse_optimal_gamma",
    "mse_terms",
    "selective_fixed_point",
    "selective_population_map",
    "stationary_mse",
    "top_alpha_law",
    "truncated_moments",
]

SELECTIVE_KINDS = ("top-k", "band")


def _keep(gamma) -> Array:
    """q = 1/(1+γ) (0 at γ = inf)."""
    return 1.0 / (1.0 + as_float(gamma))


def _synthetic_share(lam) -> Array:
    """λ/(1+λ), the synthetic weight of the population MLE (1 at λ = inf: ``replace``)."""
    return 1.0 - 1.0 / (1.0 + as_float(lam))


# ---------------------------------------------------------------------------------------
# the affine family: population map, fixed point, rates (any dimension)


def _affine_weights(lam, gamma) -> tuple[Array, Array, Array]:
    """(w₀, w₁, w₂): weights of p_data, the kept and the moved component in the MLE."""
    p, q = _synthetic_share(lam), _keep(gamma)
    return 1.0 - p, p * q, p * (1.0 - q)


def _check_affine(lam, gamma, data, params) -> None:
    check_nonneg("lam", lam)
    check_nonneg("gamma", gamma)
    gauss.validate(data, "data")
    validate_affine(params)


def affine_population_map(
    theta: gauss.Gaussian, lam, gamma, data: gauss.Gaussian, params: Affine
) -> gauss.Gaussian:
    """Exact population map π_γ G^∞_λ of the Gaussian family under an affine corrector.

    Paper: eq. (5) with population expectations; Def. 4.1 is ``Affine.ideal`` (then this is
    ``theory.gaussian.population_map``). The corrected law of p_θ = N(μ, Σ) is
    q N(μ, Σ + σ₁²I) + (1−q) N(c + s(μ − c), s²Σ + Σ₂) (``theory.operators.Affine``), so the
    MLE on p_data (weight 1) and corrected samples (weight λ) matches the moments of the
    three-component mixture with weights w₀ = 1/(1+λ), w₁ = λq/(1+λ), w₂ = λ(1−q)/(1+λ).
    λ = inf gives the ``replace`` map (w₀ = 0). For p_data non-Gaussian, pass its mean and
    covariance: the Gaussian MLE sees nothing else.

    Args:
        theta: current model (μ, Σ).
        lam: λ ≥ 0, inf allowed.
        gamma: γ ≥ 0, inf allowed.
        data: p_data's mean and covariance.
        params: the corrector (``theory.operators.Affine``).
    """
    w0, w1, w2 = _affine_weights(lam, gamma)
    s = as_float(params.shrink)
    eye = jnp.eye(theta.dim, dtype=theta.cov.dtype)
    moved_mean = params.center + s * (theta.mean - params.center)
    means = jnp.stack([data.mean, theta.mean, moved_mean])
    covs = jnp.stack(
        [data.cov, theta.cov + params.noise_var * eye, s**2 * theta.cov + params.replace_cov]
    )
    return gauss.mixture_moments(jnp.stack([w0, w1, w2]), means, covs)


def affine_rates(lam, gamma, shrink) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """(mean rate a, covariance rate r) of the affine population map; its Jacobian's spectrum.

    Paper: Lemma A.7 (at the ideal π_γ and p_data = p_θ*, a = r = λ/((1+λ)(1+γ))).
    Derivation: μ' = w₀m_d + w₁μ + w₂(c + s(μ − c)) is affine in μ with slope
    a = w₁ + w₂s, independent of Σ; Σ' = w₀Σ_d + w₁(Σ + σ₁²I) + w₂(s²Σ + Σ₂) + D(μ), D the
    between-component scatter, is affine in Σ with slope r = w₁ + w₂s² and depends on μ
    only through D. The Jacobian in θ = (μ, vec Σ) is block lower-triangular, so its
    eigenvalues are a (d times) and r (d² times) at *every* θ, and the map contracts
    (spectral radius max(a, r) < 1) iff

        λ(1−q)(1 − s) > −1   and   λ(1−q)(1 − s²) > −1,   q = 1/(1+γ),

    i.e. always for s ≤ 1 (λ < inf), and for an expanding corrector s > 1 only while
    λγ/(1+γ) < 1/(s² − 1). At λ = inf (``replace``) a = q + (1−q)s, r = q + (1−q)s².
    The operator norm of the Jacobian (the theorem's ‖∇π_γG^∞_λ‖₂) equals max(a, r) when
    D'(μ∞) = 0, i.e. when the components' means coincide at the fixed point.

    Args:
        lam: λ ≥ 0, inf allowed.
        gamma: γ ≥ 0, inf allowed.
        shrink: s ≥ 0.
    """
    check_nonneg("lam", lam)
    check_nonneg("gamma", gamma)
    check_nonneg("shrink", shrink, allow_inf=False)
    _, w1, w2 = _affine_weights(lam, gamma)
    s = as_float(shrink)
    return w1 + w2 * s, w1 + w2 * s**2


def affine_fixed_point(lam, gamma, data: gauss.Gaussian, params: Affine) -> gauss.Gaussian:
    """The fixed point θ∞ = (μ∞, Σ∞) of ``affine_population_map`` in closed form.

    Paper: Thm A.8 (the ideal π_γ's fixed point is θ*); eq. (5). Derivation, with
    w₀ = 1/(1+λ), w₁ = λq/(1+λ), w₂ = λ(1−q)/(1+λ) (w₀ + w₁ + w₂ = 1):

        μ∞ = w₀m_d + w₁μ∞ + w₂(c + s(μ∞ − c))
           ⇒ μ∞ = (w₀ m_d + w₂(1−s) c)/(w₀ + w₂(1−s)) = (m_d + λ(1−q)(1−s) c)/(1 + λ(1−q)(1−s)),

    the real data's mean and the corrector's centre averaged with the weight
    w = λ(1−q)(1−s) of the pull. Then with ν∞ = c + s(μ∞ − c) the moved component's mean and
    D = w₀(m_d − μ∞)(m_d − μ∞)ᵀ + w₂(ν∞ − μ∞)(ν∞ − μ∞)ᵀ (the mixture's mean is μ∞ there),

        Σ∞ = (w₀Σ_d + w₁σ₁²I + w₂Σ₂ + D)/(1 − w₁ − w₂s²).

    Biased π_γ (s = 0, c = m* + β, Σ₂ = Σ_c) at p_data = p_θ*:
    μ∞ − m* = λγβ/(1 + γ + λγ) and Σ∞ − Σ* = [w₂(Σ_c − Σ*) + w₀w₂ββᵀ/(w₀ + w₂)]/(w₀ + w₂):
    the offset of the corrector is passed on with weight λγ/(1+γ+λγ) < 1, which grows with
    γ and λ (the price of trusting a biased corrector), plus a second-order ββᵀ spread.
    Exists when both rates of ``affine_rates`` are < 1.

    Args:
        lam: λ ≥ 0, inf allowed.
        gamma: γ ≥ 0, inf allowed.
        data: p_data's mean and covariance (θ* of the Gaussian family).
        params: the corrector.
    """
    _check_affine(lam, gamma, data, params)
    w0, w1, w2 = _affine_weights(lam, gamma)
    s = as_float(params.shrink)
    pull = w2 * (1.0 - s)
    mu = (w0 * data.mean + pull * params.center) / (w0 + pull)
    nu = params.center + s * (mu - params.center)
    spread = w0 * jnp.outer(data.mean - mu, data.mean - mu) + w2 * jnp.outer(nu - mu, nu - mu)
    eye = jnp.eye(data.dim, dtype=data.cov.dtype)
    num = w0 * data.cov + w1 * params.noise_var * eye + w2 * params.replace_cov + spread
    cov = num / (1.0 - w1 - w2 * s**2)
    return gauss.Gaussian(mu, 0.5 * (cov + cov.T))


# ---------------------------------------------------------------------------------------
# selective correctors (1-D): truncated Gaussians


def truncated_moments(mean, var, lo, hi) -> tuple[Float[Array, "..."], ...]:
    """(mass, mean, variance) of N(μ, v) restricted to [lo, hi] (1-D, broadcasting).

    With α = (lo − μ)/σ, β = (hi − μ)/σ, Z = Φ(β) − Φ(α):

        mean = μ + σ (φ(α) − φ(β))/Z,
        var = v [1 + (αφ(α) − βφ(β))/Z − ((φ(α) − φ(β))/Z)²].

    Evaluated in log space (``log_ndtr``) after reflecting an upper-tail interval to the
    lower tail, so narrow or far intervals keep their precision (Z down to ~1e-300).
    """
    mean, var, lo, hi = (as_float(x) for x in (mean, var, lo, hi))
    sigma = jnp.sqrt(var)
    a, b = (lo - mean) / sigma, (hi - mean) / sigma
    flip = a + b > 0  # mostly above the mean: use −X, whose interval is [−b, −a]
    a, b = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    log_z = log_ndtr(b) + jnp.log1p(-jnp.exp(log_ndtr(a) - log_ndtr(b)))
    log_phi = lambda x: -0.5 * x**2 - 0.5 * math.log(2 * math.pi)  # noqa: E731
    ra, rb = jnp.exp(log_phi(a) - log_z), jnp.exp(log_phi(b) - log_z)  # φ/Z
    # a = −inf gives 0·inf; its limit is 0 (φ decays faster than |a| grows).
    term_a = jnp.where(jnp.isfinite(a), a * ra, 0.0)
    term_b = jnp.where(jnp.isfinite(b), b * rb, 0.0)
    shift = ra - rb
    t_mean = mean + sigma * jnp.where(flip, -shift, shift)
    t_var = var * (1.0 + term_a - term_b - shift**2)
    return jnp.exp(log_z), t_mean, t_var


def band_law(mean, var, center, width) -> tuple[Float[Array, "..."], ...]:
    """(acceptance probability, mean, variance) of N(μ, v) accepted by the band [c ± w/2].

    Paper: Yi et al. (ICLR 2026), the verifier with an acceptance band; the selector is
    ``theory.operators.band``. ``truncated_moments`` on [c − w/2, c + w/2].
    """
    c, half = as_float(center), 0.5 * as_float(width)
    return truncated_moments(mean, var, c - half, c + half)


def top_alpha_law(mean, var, alpha, center) -> tuple[Float[Array, "..."], ...]:
    """(radius r, mean, variance) of the top-α selection's limit law in 1-D.

    Paper: Qiao et al. (2026), top-α selection by a verifier centred at c; the selector is
    ``theory.operators.top_k`` with ⌈k/α⌉ candidates. As the number of candidates grows at
    fixed α the kept fraction is the α closest to c, i.e. N(μ, v) restricted to [c − r, c + r]
    with P(|X − c| ≤ r) = Φ((c + r − μ)/σ) − Φ((c − r − μ)/σ) = α. That mass is increasing in
    r, and r ≤ |c − μ| + σ Φ⁻¹((1+α)/2) (the ball around μ of mass α lies inside); r is found
    by bisection (80 halvings, float64 exact) followed by one Newton step whose derivative
    carries the implicit-function gradient, so ``jax.jacobian`` through this law is exact.
    Finite k of ⌈k/α⌉ candidates is an order-statistic selection whose mean differs from this
    limit by O(1/k) (checked in the tests at large k).
    """
    return _top_alpha_law(*(as_float(x) for x in (mean, var, alpha, center)))


@jax.jit
def _top_alpha_law(mean, var, alpha, center):
    sigma = jnp.sqrt(var)

    def excess(r, mu, sd):
        return ndtr((center + r - mu) / sd) - ndtr((center - r - mu) / sd) - alpha

    hi0 = jnp.abs(center - mean) + sigma * ndtri(0.5 * (1.0 + alpha))
    mu_c, sd_c = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(sigma)

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = excess(mid, mu_c, sd_c) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 80, halve, (jnp.zeros_like(hi0), jax.lax.stop_gradient(hi0)))
    r0 = jax.lax.stop_gradient(0.5 * (lo + hi))
    slope = (
        jnp.exp(-0.5 * ((center + r0 - mean) / sigma) ** 2)
        + jnp.exp(-0.5 * ((center - r0 - mean) / sigma) ** 2)
    ) / (sigma * math.sqrt(2 * math.pi))
    radius = r0 - excess(r0, mean, sigma) / slope
    _, t_mean, t_var = truncated_moments(mean, var, center - radius, center + radius)
    return radius, t_mean, t_var


def _check_selective(kind, lam, data_var, alpha, width) -> None:
    if kind not in SELECTIVE_KINDS:
        raise ValueError(f"kind must be one of {SELECTIVE_KINDS}; got {kind!r}")
    check_nonneg("lam", lam)
    check_nonneg("data_var", data_var, allow_inf=False)
    if kind == "top-k" and not is_traced(alpha):
        a = float(alpha)
        if not 0.0 < a <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1]; got {a!r}")
    if kind == "band":
        check_nonneg("width", width, allow_inf=False)
        if not is_traced(width) and float(width) == 0.0:
            raise ValueError("width must be > 0 (an empty band accepts nothing)")


def selective_population_map(
    theta: tuple, lam, data: tuple, kind: str, *, alpha=None, center=0.0, width=None
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Population map of the 1-D Gaussian loop when a verifier selects the synthetic data.

    Paper: eq. (5) with the corrected law replaced by the selected law. θ = (μ, v),
    p_data = (m_d, v_d) (mean and variance). ``top-k``: of ⌈k/α⌉ candidates the k closest
    to c are kept, so the synthetic weight stays λ and the law is ``top_alpha_law``;
    ``band``: λn candidates are drawn and those in [c ± w/2] kept (Yi et al.'s setting), so
    the synthetic weight is ω = λ P_θ(band) and the law is ``band_law``. With ω the weight,
    (m_s, v_s) the selected law's moments and p = ω/(1+ω),

        μ' = (1−p) m_d + p m_s,   v' = (1−p) v_d + p v_s + p(1−p)(m_d − m_s)².

    λ = inf is ``replace`` (p = 1): top-α then shrinks v by the factor v_s/v < 1 every
    generation (at c = μ, v_s/v = 1 − 2zφ(z)/α with z = Φ⁻¹((1+α)/2)), a geometric collapse
    that no real data stops.

    Args:
        theta: (μ, v) of the model.
        lam: λ ≥ 0, inf allowed.
        data: (m_d, v_d).
        kind: one of ``SELECTIVE_KINDS``.
        alpha: kept fraction α ∈ (0, 1] (``top-k``).
        center: the verifier's centre c (m* + bias).
        width: the band's width w > 0 (``band``).

    Returns:
        (μ', v').
    """
    _check_selective(kind, lam, data[1], alpha, width)
    return _selective_map_jit(
        kind, as_float(theta[0]), as_float(theta[1]), as_float(lam), data, alpha, center, width
    )


@partial(jax.jit, static_argnums=0)
def _selective_map_jit(kind, mu, var, lam, data, alpha, center, width):
    return _selective_map(kind, mu, var, lam, data, alpha, center, width)


def _selective_map(kind, mu, var, lam, data, alpha, center, width):
    lam = as_float(lam)
    if kind == "top-k":
        _, m_s, v_s = top_alpha_law(mu, var, alpha, center)
        omega = lam
    else:
        mass, m_s, v_s = band_law(mu, var, center, width)
        omega = lam * mass
    p = 1.0 - 1.0 / (1.0 + omega)
    m_d, v_d = as_float(data[0]), as_float(data[1])
    return (1.0 - p) * m_d + p * m_s, (1.0 - p) * v_d + p * v_s + p * (1.0 - p) * (m_d - m_s) ** 2


def selective_fixed_point(
    lam,
    data: tuple,
    kind: str,
    *,
    alpha=None,
    center=0.0,
    width=None,
    theta0: tuple | None = None,
    iterations: int = 200,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Fixed point (μ∞, v∞) of ``selective_population_map`` and its rate (1-D, λ < inf).

    Paper: Thm A.8 (fixed point and the Jacobian's norm), here for a selected law. No closed
    form: the map is iterated ``iterations`` times from θ₀ (default p_data's moments), then
    polished by three Newton steps on θ − F(θ) with the exact 2 × 2 Jacobian (``jax.jacfwd``
    through the truncated moments). The rate is the spectral radius of that Jacobian at the
    fixed point (eigenvalues of a 2 × 2 matrix, in closed form); rate < 1 means the
    population loop converges there locally.

    Returns:
        (μ∞, v∞, spectral radius of ∇F at the fixed point).
    """
    _check_selective(kind, lam, data[1], alpha, width)
    if not is_traced(lam) and math.isinf(float(lam)):
        raise ValueError("lam must be finite (replace has no fixed point with v > 0)")
    if theta0 is None:
        theta0 = data
    return _selective_fixed_point(
        kind, iterations, as_float(lam), tuple(as_float(x) for x in data), alpha, center,
        width, tuple(as_float(x) for x in theta0),
    )  # fmt: skip


@partial(jax.jit, static_argnums=(0, 1))
def _selective_fixed_point(kind, iterations, lam, data, alpha, center, width, theta0):
    def f(x):
        return jnp.stack(_selective_map(kind, x[0], x[1], lam, data, alpha, center, width))

    def newton(_, x):
        return x - linalg.solve(jnp.eye(2, dtype=x.dtype) - jax.jacfwd(f)(x), x - f(x))

    x = jax.lax.fori_loop(0, iterations, lambda _, x: f(x), jnp.stack(theta0))
    x = jax.lax.fori_loop(0, 3, newton, x)
    jac = jax.jacfwd(f)(x)
    tr, det = jnp.trace(jac), linalg.det(jac)
    disc = tr**2 - 4.0 * det
    radius = jnp.where(
        disc >= 0, 0.5 * (jnp.abs(tr) + jnp.sqrt(jnp.abs(disc))), jnp.sqrt(jnp.abs(det))
    )
    return x[0], x[1], radius


# ---------------------------------------------------------------------------------------
# finite samples: stationary MSE of the mean, the best γ, the break-even bias, fresh data


def _check_mse(n, lam, gamma, sigma2, shrink, replace_var, noise_var) -> None:
    check_positive_int("n", n)
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    check_nonneg("sigma2", sigma2, allow_inf=False)
    check_nonneg("shrink", shrink, allow_inf=False)
    if not is_traced(shrink) and np.any(np.asarray(shrink, float) > 1.0):
        raise ValueError("shrink must lie in [0, 1] for a stationary law at every γ")
    if replace_var is not None:
        check_nonneg("replace_var", replace_var, allow_inf=False)
    check_nonneg("noise_var", noise_var, allow_inf=False)


def mse_terms(
    n: int, lam, gamma, *, sigma2=1.0, shrink=0.0, replace_var=None, noise_var=0.0
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """(M₀, M₂): the stationary MSE of the mean is E(μ∞ − m*)² = M₀ + M₂ b², b = c − m*.

    Paper: eq. (5), the finite-sample loop of Thm 4.3 (``augment``), for the family
    {N(μ, σ²)} with σ² known (``theory.chains.mean_chain``), averaged over the real set
    (m̄ ~ N(m*, σ²/n): n real points of p_data = p_θ*). From ``mean_chain`` with
    k = ⌊λn⌋, c_n = n + k, A = k(q + (1−q)s)/c_n, D = c_n(1 − A) = n + w, w = k(1−q)(1−s),
    g = kq(1−q)(1−s)²/c_n², h = k(q(σ² + σ₁²) + (1−q)(s²σ² + v₂))/c_n²:

        e*(δ) = (nδ + w b)/D,   V(δ) = (g (e*(δ) − b)² + h)/(1 − A² − g),

    and E δ = 0, E δ² = σ²/n give E e*² = (nσ² + w²b²)/D² and E(e* − b)² = (nσ² + n²b²)/D²
    (e* − b = n(δ − b)/D). Hence

        M₀ = nσ²/D² + (g nσ²/D² + h)/(1 − A² − g),   M₂ = w²/D² + g n²/(D²(1 − A² − g)).

    The bias enters only through b², so the MSE is M₀ + M₂b² exactly. At γ = 0: w = g = 0,
    M₂ = 0 and M₀ = σ²/n + σ²k/(n(n + 2k)) (no correction, no bias); at b = 0, γ = inf:
    M₀ = σ²/(n + k), as if the k synthetic points were real.

    Args:
        n: real set size (≥ 1).
        lam: λ ≥ 0.
        gamma: γ ≥ 0, inf allowed.
        sigma2: σ² (data, model and replacement variance unless ``replace_var``).
        shrink: s ∈ [0, 1] (0: biased π_γ; s > 0: shrinking toward c).
        replace_var: v₂, the replacement's added variance (default σ² at s = 0, the ideal).
        noise_var: σ₁², noise on the kept points.
    """
    _check_mse(n, lam, gamma, sigma2, shrink, replace_var, noise_var)
    return _mse_terms(n, lam, gamma, sigma2, shrink, replace_var, noise_var)


def _mse_terms(n, lam, gamma, sigma2, shrink, replace_var, noise_var):
    sigma2, s, v1 = as_float(sigma2), as_float(shrink), as_float(noise_var)
    v2 = sigma2 if replace_var is None else as_float(replace_var)
    k = as_float(n_synthetic(lam, n))
    q = _keep(gamma)
    cn = n + k
    a = k * (q + (1.0 - q) * s) / cn
    w = k * (1.0 - q) * (1.0 - s)
    d = n + w
    g = k * q * (1.0 - q) * (1.0 - s) ** 2 / cn**2
    h = k * (q * (sigma2 + v1) + (1.0 - q) * (s**2 * sigma2 + v2)) / cn**2
    denom = 1.0 - a**2 - g
    m0 = n * sigma2 / d**2 + (g * n * sigma2 / d**2 + h) / denom
    m2 = w**2 / d**2 + g * n**2 / (d**2 * denom)
    return m0, m2


def stationary_mse(
    n: int, lam, gamma, bias=0.0, *, sigma2=1.0, shrink=0.0, replace_var=None, noise_var=0.0
) -> Float[Array, "..."]:
    """Stationary E(μ∞ − m*)² of the finite-sample ``augment`` mean chain: M₀ + M₂ bias².

    Paper: eq. (5), Thm 4.3's finite-sample loop; see ``mse_terms`` for the derivation.
    ``bias`` = c − m*, the corrector's offset (the biased π_γ's μ_c − m*, or the shrinking
    corrector's centre). Broadcasts over the inputs.
    """
    m0, m2 = mse_terms(
        n, lam, gamma, sigma2=sigma2, shrink=shrink, replace_var=replace_var, noise_var=noise_var
    )
    return m0 + m2 * as_float(bias) ** 2


def mse_optimal_gamma(
    n: int,
    lam,
    bias,
    *,
    sigma2=1.0,
    shrink=0.0,
    replace_var=None,
    noise_var=0.0,
    grid: int = 2049,
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    """The γ ∈ [0, inf] minimising ``stationary_mse`` at this bias, and the minimum.

    Paper: Thm 4.3 / Cor. 4.5 say more γ is always better for the ideal π_γ; with a biased
    corrector γ trades the variance it removes (M₀ falls with γ) against the bias it
    imports (M₂ grows with γ), so the optimum is interior once b ≠ 0. The MSE is a rational
    function of q = 1/(1+γ) ∈ [0, 1]; it is evaluated on ``grid`` values of q and refined by
    60 golden-section steps between the grid neighbours of the best point. Returns γ = inf
    when q = 0 wins (an unbiased corrector), γ = 0 when no correction is best.

    Returns:
        (γ_opt, MSE at γ_opt), broadcast over ``lam`` and ``bias``.
    """
    _check_mse(n, lam, 0.0, sigma2, shrink, replace_var, noise_var)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 3:
        raise ValueError(f"grid must be an integer >= 3; got {grid!r}")
    lam, bias = jnp.broadcast_arrays(as_float(lam), as_float(bias))
    fn = partial(_optimal_gamma, n, grid, sigma2, shrink, replace_var, noise_var)
    flat = jax.vmap(fn)(lam.ravel(), bias.ravel())
    return tuple(v.reshape(lam.shape) for v in flat)


@partial(jax.jit, static_argnums=(0, 1))
def _optimal_gamma(n, grid, sigma2, shrink, replace_var, noise_var, lam, bias):
    def mse(q):
        gamma = jnp.where(q > 0, 1.0 / jnp.maximum(q, 1e-300) - 1.0, jnp.inf)
        m0, m2 = _mse_terms(n, lam, gamma, sigma2, shrink, replace_var, noise_var)
        return m0 + m2 * bias**2

    qs = jnp.linspace(0.0, 1.0, grid)
    values = jax.vmap(mse)(qs)
    i = jnp.argmin(values)
    lo, hi = qs[jnp.maximum(i - 1, 0)], qs[jnp.minimum(i + 1, grid - 1)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0

    def golden(_, bounds):
        lo, hi = bounds
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = mse(x1) < mse(x2)
        return jnp.where(left, lo, x1), jnp.where(left, x2, hi)

    lo, hi = jax.lax.fori_loop(0, 60, golden, (lo, hi))
    # The ends first: argmin takes the first minimum, so a monotone MSE ends exactly at
    # q = 0 (γ = inf) or q = 1 (γ = 0) instead of a golden-section point next to it.
    cands = jnp.stack([qs[0], qs[-1], 0.5 * (lo + hi), qs[i]])
    cand_values = jax.vmap(mse)(cands)
    j = jnp.argmin(cand_values)
    q, best = cands[j], cand_values[j]
    gamma = jnp.where(q > 0, 1.0 / jnp.maximum(q, 1e-300) - 1.0, jnp.inf)
    return gamma, best


def fresh_count(lam, gamma, n: int) -> Array:
    """m = ⌊k γ/(1+γ)⌋, k = ⌊λn⌋: the fresh real points the equal-budget control may draw.

    Paper: Def. 4.1: π_γ replaces each of the k synthetic points by a draw of p_θ* with
    probability γ/(1+γ), so it spends k γ/(1+γ) oracle draws per generation in expectation;
    the ``fresh`` workflow spends the same budget (rounded down, with the 1e-6 tolerance of
    ``n_synthetic``) on fresh real points. int32, traceable.
    """
    k = as_float(n_synthetic(lam, n))
    share = 1.0 - _keep(gamma)
    return jnp.floor(k * share + 1e-6).astype(jnp.int32)


def fresh_stationary_mse(n: int, lam, gamma, *, sigma2=1.0) -> Float[Array, "..."]:
    """Stationary E(μ∞ − m*)² of the ``fresh`` control: no correction, m fresh real points.

    Paper: the equal-budget control of the correction (Def. 4.1; ``fresh_count``). Each
    generation fits the fixed real set (n), k = ⌊λn⌋ uncorrected synthetic points of p_θ
    and m = ``fresh_count`` fresh points of p_data, discarded after the generation like the
    synthetic ones. With N = n + k + m, ``mean_chain`` with q = 1 and m fresh points gives
    E e' = (nδ + k e)/N, Var(e' | e) = σ²(k + m)/N², so e* = nδ/(n + m),
    V = σ²(k + m)/(N² − k²), and averaged over the real set

        MSE_fresh = nσ²/(n + m)² + σ²(k + m)/(N² − k²).

    It has no bias term: the fresh points are p_data's. The ideal corrector with the same
    budget has the same mean fixed point n δ/(n + k(1−q)) (up to the rounding of m) but
    removes the k(1−q) model points it replaces, while ``fresh`` keeps all k of them.
    """
    check_positive_int("n", n)
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    check_nonneg("sigma2", sigma2, allow_inf=False)
    k = as_float(n_synthetic(lam, n))
    m = as_float(fresh_count(lam, gamma, n))
    big_n = n + k + m
    sigma2 = as_float(sigma2)
    return n * sigma2 / (n + m) ** 2 + sigma2 * (k + m) / (big_n**2 - k**2)


def break_even_bias(
    n: int, lam, gamma, reference: str = "none", *, sigma2=1.0, shrink=0.0, replace_var=None
) -> Float[Array, "..."]:
    """The |b| at which a biased corrector's stationary MSE equals the reference's.

    Paper: Cor. 4.5 (correction helps the ideal π_γ at every γ > 0); with a biased corrector
    it helps only while M₀(γ) + M₂(γ) b² < MSE_ref, so b_even = sqrt((MSE_ref − M₀)/M₂)
    (``mse_terms``), and 0 where even b = 0 loses. ``reference``: ``"none"`` (the same loop
    at γ = 0, MSE = M₀(0)) or ``"fresh"`` (the equal-budget ``fresh`` control,
    ``fresh_stationary_mse``). At γ = 0 the corrector does nothing and the result is inf.
    """
    if reference not in ("none", "fresh"):
        raise ValueError(f"reference must be 'none' or 'fresh'; got {reference!r}")
    m0, m2 = mse_terms(n, lam, gamma, sigma2=sigma2, shrink=shrink, replace_var=replace_var)
    if reference == "none":
        ref = mse_terms(n, lam, 0.0, sigma2=sigma2, shrink=shrink, replace_var=replace_var)[0]
    else:
        ref = fresh_stationary_mse(n, lam, gamma, sigma2=sigma2)
    gap = ref - m0
    m2_safe = jnp.where(m2 > 0, m2, 1.0)
    return jnp.where(m2 > 0, jnp.sqrt(jnp.clip(gap, 0.0) / m2_safe), jnp.inf)


# ---------------------------------------------------------------------------------------
# Yi et al. (ICLR 2026): one round with a biased verifier and an acceptance band


def _check_one_round(n_real, n_synth, width, sigma2) -> None:
    check_positive_int("n_real", n_real)
    check_positive_int("n_synth", n_synth)
    check_nonneg("width", width, allow_inf=False)
    if not is_traced(width) and float(width) == 0.0:
        raise ValueError("width must be > 0 (an empty band accepts nothing)")
    check_nonneg("sigma2", sigma2, allow_inf=False)


def _binomial_pmf(trials: int, p):
    """P(K = j), j = 0..trials, K ~ Binomial(trials, p), in log space (p may be an array)."""
    p = as_float(p)[..., None]
    j = jnp.arange(trials + 1, dtype=p.dtype).reshape((1,) * (p.ndim - 1) + (-1,))
    log_choose = (
        jax.lax.lgamma(trials + 1.0) - jax.lax.lgamma(j + 1.0) - jax.lax.lgamma(trials - j + 1.0)
    )
    safe = jnp.clip(p, 1e-300, 1.0 - 1e-16)
    log_pmf = log_choose + j * jnp.log(safe) + (trials - j) * jnp.log1p(-safe)
    return jnp.exp(log_pmf), j.ravel()


def band_one_round(
    n_real: int, n_synth: int, bias, width, *, sigma2=1.0, nodes: int = 96
) -> dict[str, Float[Array, ""]]:
    """Exact one-round MSEs of Yi et al.'s Gaussian-mean experiment with a biased band.

    Paper: Yi et al. (ICLR 2026), "verified synthetic data", one round. θ* = 0 (so all MSEs
    are about 0; shift by θ* otherwise), σ² = ``sigma2``. Real: X_1..X_n1 i.i.d. N(0, σ²),
    x̄ their mean. Model: N(x̄, σ²). Synthetic: Y_1..Y_n2 i.i.d. N(x̄, σ²). The verifier accepts
    a point iff it lies in the band B = [bias − w/2, bias + w/2] (``theory.operators.band``).
    A filtered estimate is the mean of the accepted points, falling back to x̄ when none is
    accepted (their code's convention). Quantities (keys of the result):

    - ``real``: E x̄² = σ²/n1;
    - ``synthetic``: E ȳ² = σ²/n1 + σ²/n2 (unfiltered);
    - ``filtered_real``: the accepted real points. With Z₀, m₀, v₀ the mass, mean and
      variance of N(0, σ²) on B (``truncated_moments``) and K ~ Binomial(n1, Z₀): given
      K = k ≥ 1 the accepted points are i.i.d. N(0, σ²)|B, so E[est² | k] = m₀² + v₀/k; given
      K = 0 every point lies outside B, i.i.d. with mean m_out = −Z₀m₀/(1 − Z₀) and second
      moment (σ² − Z₀(v₀ + m₀²))/(1 − Z₀), so E[x̄² | 0] = m_out² + (that − m_out²)/n1.
      MSE = Σ_{k≥1} P(K = k)(m₀² + v₀/k) + P(K = 0) E[x̄² | 0], summed exactly.
    - ``filtered_synthetic``: given x̄ = μ, the accepted synthetic points are N(μ, σ²)|B,
      K ~ Binomial(n2, Z(μ)), so E[est² | μ] = Σ_{k≥1} P(K = k)(m(μ)² + v(μ)/k) + P(K = 0)μ²,
      averaged over x̄ ~ N(0, σ²/n1) by ``nodes``-point Gauss–Hermite quadrature (the
      integrand is smooth and Gaussian-weighted: exact to ~1e-12 at 96 nodes).

    Returns:
        dict of the four MSEs.
    """
    _check_one_round(n_real, n_synth, width, sigma2)
    check_positive_int("nodes", nodes)
    x, w = np.polynomial.hermite_e.hermegauss(nodes)  # ∫ f(x) e^{−x²/2} dx
    return _band_one_round(
        n_real, n_synth, as_float(bias), as_float(width), as_float(sigma2),
        as_float(x), as_float(w / math.sqrt(2 * math.pi)),
    )  # fmt: skip


@partial(jax.jit, static_argnums=(0, 1))
def _band_one_round(n1, n2, bias, width, sigma2, nodes, weights):
    lo, hi = bias - 0.5 * width, bias + 0.5 * width
    z0, m0, v0 = truncated_moments(0.0, sigma2, lo, hi)
    pmf, j = _binomial_pmf(n1, z0)
    inv = jnp.where(j > 0, 1.0 / jnp.maximum(j, 1.0), 0.0)
    out_mean = -z0 * m0 / (1.0 - z0)
    out_second = (sigma2 - z0 * (v0 + m0**2)) / (1.0 - z0)
    none_accepted = out_mean**2 + (out_second - out_mean**2) / n1
    filtered_real = jnp.sum(pmf[1:]) * m0**2 + v0 * (pmf @ inv) + pmf[0] * none_accepted
    mu = nodes * jnp.sqrt(sigma2 / n1)
    z, m, v = truncated_moments(mu, sigma2, lo, hi)
    pmf_s, js = _binomial_pmf(n2, z)
    inv_s = jnp.where(js > 0, 1.0 / jnp.maximum(js, 1.0), 0.0)
    given = (1.0 - pmf_s[:, 0]) * m**2 + v * (pmf_s @ inv_s) + pmf_s[:, 0] * mu**2
    return {
        "real": sigma2 / n1,
        "synthetic": sigma2 / n1 + sigma2 / n2,
        "filtered_real": filtered_real,
        "filtered_synthetic": weights @ given,
    }


def band_one_round_expansion(
    n_real: int, n_synth: int, bias, width, *, sigma2=1.0
) -> dict[str, Float[Array, ""]]:
    """Yi et al.'s large-sample one-round formulas (their closed forms), derived here.

    Paper: Yi et al. (ICLR 2026), one round, the setting of ``band_one_round``. Write
    m(μ), v(μ) for the mean and variance of N(μ, σ²) restricted to B. That law is an
    exponential family in μ (density ∝ exp(μx/σ² − x²/(2σ²)) on B), so m'(μ) = v(μ)/σ² and
    m''(μ) = κ₃(μ)/σ⁴ (its third central moment). Expanding in x̄ ~ N(0, σ²/n1) to order
    1/n and replacing 1/K by 1/E K (the number accepted is concentrated):

        filtered_real ≈ m₀² + v₀/(n1 Z₀),
        filtered_synthetic ≈ m₀² + (m'₀² + m₀ m''₀) σ²/n1 + v₀/(n2 Z₀),

    with m₀ = m(0), Z₀ = P(N(0, σ²) ∈ B). For σ = 1 these are Yi et al.'s x̄_p = C² + θ/(n1 Z)
    and ȳ_p = C² + (θ² + 2λC)/n1 + θ/(n2 Z) with C = −m₀, θ = v₀ and their λ = −m''₀/2
    (checked against their expressions in the tests). Both ignore the K = 0 fallback and
    the O(1/n²) terms, so they drift from ``band_one_round`` when Z₀ n is small.
    m' and m'' are taken by ``jax.grad`` of ``truncated_moments``, exact.

    Returns:
        dict with ``real``, ``filtered_real`` and ``filtered_synthetic``.
    """
    _check_one_round(n_real, n_synth, width, sigma2)
    return _band_expansion(
        as_float(n_real), as_float(n_synth), as_float(bias), as_float(width), as_float(sigma2)
    )


@jax.jit
def _band_expansion(n_real, n_synth, bias, width, sigma2):
    lo, hi = bias - 0.5 * width, bias + 0.5 * width

    def trunc_mean(mu):
        return truncated_moments(mu, sigma2, lo, hi)[1]

    z0, m0, v0 = truncated_moments(0.0, sigma2, lo, hi)
    zero = jnp.zeros_like(bias)
    d1 = jax.grad(trunc_mean)(zero)
    d2 = jax.grad(jax.grad(trunc_mean))(zero)
    return {
        "real": sigma2 / n_real,
        "filtered_real": m0**2 + v0 / (n_real * z0),
        "filtered_synthetic": m0**2 + (d1**2 + m0 * d2) * sigma2 / n_real + v0 / (n_synth * z0),
    }


# ---------------------------------------------------------------------------------------
# the misspecified family: a Gaussian fitted to bounded data (κ > 0)


def _bounded_defaults(kind, half_width, scale):
    if kind not in constants.EXAMPLE_KINDS:
        raise ValueError(f"kind must be one of {constants.EXAMPLE_KINDS}; got {kind!r}")
    if half_width is None:
        half_width = math.sqrt(3.0) if kind == "uniform" else 3.0
    for name, v in (("half_width", half_width), ("scale", scale)):
        if not (isinstance(v, int | float) and 0 < v < math.inf):
            raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
    return float(half_width), float(scale)


def bounded_data_sample(
    key: jax.Array, kind: str, shape, *, half_width: float | None = None, scale: float = 1.0
) -> Float[Array, "..."]:
    """Draws of the bounded p_data of ``theory.constants.gaussian_on_bounded_data``.

    Paper: Assumption 4.2, Thm 4.3 (the misspecified case, κ = εL/α > 0). ``"uniform"``:
    U[−B, B] (default B = √3, so θ* = (0, 1)); ``"truncated-laplace"``: Laplace(0, ``scale``)
    conditioned on [−B, B] (default B = 3), by its quantile function (the same function
    ``gaussian_on_bounded_data`` integrates to get θ*, α and ε). Inverse-CDF sampling from
    ``jax.random.uniform``: exact in law.
    """
    big_b, scale = _bounded_defaults(kind, half_width, scale)
    u = jax.random.uniform(key, shape, jnp.result_type(float))
    if kind == "uniform":
        return big_b * (2.0 * u - 1.0)
    return constants._truncated_laplace_quantile(scale, big_b)(u)


def bounded_data_theta_star(
    kind: str, *, half_width: float | None = None, scale: float = 1.0
) -> tuple[float, float]:
    """θ* = (mean, variance) of the bounded p_data: the Gaussian MLE's population limit.

    Paper: θ* = argmax E_{p_data} log p_θ (§1 of the setup); for the Gaussian family it
    matches p_data's mean and variance. Closed forms: U[−B, B] has (0, B²/3); Laplace(0, b)
    on [−B, B], t = B/b, has mean 0 and variance b²(2 − e^{−t}(t² + 2t + 2))/(1 − e^{−t})
    (∫₀^B x² e^{−x/b} dx = b³(2 − e^{−t}(t² + 2t + 2)), over the mass 1 − e^{−t}).
    """
    big_b, b = _bounded_defaults(kind, half_width, scale)
    if kind == "uniform":
        return 0.0, big_b**2 / 3.0
    t = big_b / b
    return 0.0, b**2 * (2.0 - math.exp(-t) * (t**2 + 2.0 * t + 2.0)) / (-math.expm1(-t))
