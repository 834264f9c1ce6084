"""The constants of Assumption 4.2 (α, L, ε, κ = εL/α).

Paper: Assumption 4.2, Thm 4.3 (κ = εL/α, threshold λ(1+κ) < (1+γ)/(2+γ)). A corrector's
effective strength γ̂ (App. C) lives in ``theory.effective_gamma``.

**Constants.** For a family ``logpdf(theta, x)`` (θ ∈ R^p, x ∈ R^d, returns a scalar):

- α: smallest eigenvalue of −E_{p_data}[∇²_θ log p_θ(x)] at θ* (Assumption 4.2.2), estimated
  by an empirical or quadrature mean (``fisher_curvature``);
- L: Lipschitz constant of x ↦ ∇²_θ log p_θ(x) (Assumption 4.2.1), the supremum of the norm of
  its x-derivative over the data's support, here a maximum over given points
  (``hessian_lipschitz``);
- ε = W(p_θ*, p_data) (``wasserstein_1d`` from samples, ``wasserstein_1d_quantile`` from
  quantile functions).

``gaussian_on_bounded_data`` is the worked example: a Gaussian fitted to bounded, non-Gaussian
data, where every constant has a closed form and κ > 0 follows from the data, not a knob.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theory import bounds, linalg
from theory._checks import (
    as_float,
    check_matrix,
    check_p,
    check_positive_int,
    check_vector,
    is_traced,
)

__all__ = [
    "EXAMPLE_KINDS",
    "BoundedDataExample",
    "fisher_curvature",
    "gaussian_logpdf_1d",
    "gaussian_on_bounded_data",
    "hessian_lipschitz",
    "unit_quadrature",
    "wasserstein_1d",
    "wasserstein_1d_quantile",
]

EXAMPLE_KINDS = ("uniform", "truncated-laplace")

LogPdf = Callable[[Float[Array, " p"], Float[Array, " d"]], Float[Array, ""]]


# --------------------------------------------------------------------------------------------
# α, L, ε


def fisher_curvature(
    logpdf: LogPdf,
    theta_star: Float[Array, " p"],
    data: Float[Array, "n d"],
    weights: Float[Array, " n"] | None = None,
) -> Float[Array, ""]:
    """α: the smallest eigenvalue of −E_{p_data}[∇²_θ log p_θ(x)] at θ = θ*.

    Paper: Assumption 4.2.2, E_{p_data}[∇²_θ log p_θ]|_{θ*} ⪯ −α I. The expectation is the
    (weighted) mean over ``data``: an empirical sample (Monte-Carlo error O(1/√n)) or
    quadrature nodes with their ``weights`` (exact up to the quadrature error). Hessians are
    ``jax.hessian`` in θ, one per point. A non-positive result means θ* is not a strict local
    maximum of the expected log-likelihood and the assumption fails.

    Args:
        logpdf: ``logpdf(theta, x) -> scalar`` for one parameter vector and one point.
        theta_star: θ*, shape (p,).
        data: points (n, d) drawn from (or quadrature nodes of) p_data.
        weights: optional non-negative weights (n,), normalised here.

    Returns:
        α (may be ≤ 0, then Assumption 4.2.2 fails at this θ*).
    """
    check_vector("theta_star", theta_star)
    check_matrix("data", data)
    if weights is not None:
        check_vector("weights", weights, np.shape(data)[0])
        if not is_traced(weights):
            w = np.asarray(weights, float)
            if w.shape[0] != np.shape(data)[0] or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("weights must be non-negative, one per data row, sum > 0")
    theta, x = as_float(theta_star), as_float(data)
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else as_float(weights)
    return _fisher_curvature(logpdf, theta, x, w)


@partial(jax.jit, static_argnums=0)
def _fisher_curvature(logpdf, theta, x, w):
    hess = jax.vmap(jax.hessian(logpdf), in_axes=(None, 0))(theta, x)
    mean = jnp.einsum("n,nij->ij", w / jnp.sum(w), hess)
    return linalg.eigvalsh(-0.5 * (mean + mean.T))[0]


def hessian_lipschitz(
    logpdf: LogPdf, theta: Float[Array, " p"], points: Float[Array, "n d"]
) -> Float[Array, ""]:
    """L: the largest norm of the x-derivative of x ↦ ∇²_θ log p_θ(x) over ``points``.

    Paper: Assumption 4.2.1 (x ↦ ∇²_θ log p_θ(x) is L-Lipschitz, Hessians in operator norm).
    The derivative is ``jax.jacfwd`` in x of ``jax.hessian`` in θ, a (p, p, d) array ∂H.
    For d = 1 the Lipschitz constant on an interval is sup ‖∂_x H(x)‖₂ (spectral norm of a
    symmetric matrix) by the mean-value inequality. For d > 1 the norm used is
    sqrt(Σ_j ‖∂_{x_j} H‖_F²), an upper bound on the operator norm of v ↦ Σ_j v_j ∂_{x_j} H
    (Cauchy–Schwarz; ‖·‖₂ ≤ ‖·‖_F): its supremum over a convex support is a valid, possibly
    loose, L.

    **Rigour.** The maximum over a finite set equals the supremum over the support only when
    the norm is maximised at given points, e.g. when it is monotone in |x − μ| and the
    support's extreme points are included (the Gaussian family, see
    ``gaussian_on_bounded_data``); otherwise it is a heuristic lower estimate of L. L is
    also evaluated at one θ (θ*); the assumption asks for θ near θ*.

    Args:
        logpdf: ``logpdf(theta, x) -> scalar``.
        theta: parameter (p,), usually θ*.
        points: points (n, d) covering the data's support (grid, extreme points, samples).

    Returns:
        max over points of the derivative norm.
    """
    check_vector("theta", theta)
    check_matrix("points", points)
    return _hessian_lipschitz(logpdf, as_float(theta), as_float(points))


@partial(jax.jit, static_argnums=0)
def _hessian_lipschitz(logpdf, theta, x):
    d_hess = jax.jacfwd(jax.hessian(logpdf, argnums=0), argnums=1)
    dh = jax.vmap(d_hess, in_axes=(None, 0))(theta, x)  # (n, p, p, d)
    if x.shape[1] == 1:
        sym = 0.5 * (dh[..., 0] + jnp.swapaxes(dh[..., 0], -1, -2))
        norms = jnp.max(jnp.abs(linalg.eigvalsh(sym)), axis=-1)
    else:
        norms = jnp.sqrt(jnp.sum(dh**2, axis=(1, 2, 3)))
    return jnp.max(norms)


def wasserstein_1d(
    a_samples: Float[Array, " n"], b_samples: Float[Array, " m"], p=2
) -> Float[Array, ""]:
    """W_p between two 1-D empirical laws, exactly, by the quantile formula.

    Paper: the misspecification ε := W(p_θ*, p_data) of the setup. W_p^p = ∫_0^1 |F_a⁻¹(u) −
    F_b⁻¹(u)|^p du with both quantile functions step functions: the integral is a finite sum
    over the merged breakpoints {i/n} ∪ {j/m} (for n = m, the mean of |a_(i) − b_(i)|^p over
    sorted samples). Equal or unequal sizes; p = 1 equals ``scipy.stats.wasserstein_distance``.

    The empirical W between two samples (or between a sample and a law) is biased upward at
    finite n: even for equal laws it is O(n^{-1/2}) (W1) in 1-D, so ε estimated from data
    overstates the misspecification unless n is large; prefer ``wasserstein_1d_quantile``
    when a quantile function is known.

    Args:
        a_samples: samples of the first law, shape (n,).
        b_samples: samples of the second law, shape (m,).
        p: order p ≥ 1.

    Returns:
        W_p.
    """
    check_p(p)
    check_vector("a_samples", a_samples)
    check_vector("b_samples", b_samples)
    return _wasserstein_1d(as_float(a_samples), as_float(b_samples), float(p))


@partial(jax.jit, static_argnums=2)
def _wasserstein_1d(a, b, p):
    a, b = jnp.sort(a), jnp.sort(b)
    n, m = a.shape[0], b.shape[0]
    u = jnp.sort(
        jnp.concatenate(
            [jnp.arange(1, n + 1, dtype=a.dtype) / n, jnp.arange(1, m + 1, dtype=a.dtype) / m]
        )
    )
    du = jnp.diff(jnp.concatenate([jnp.zeros(1, a.dtype), u]))
    mid = u - 0.5 * du  # inside each interval both quantile functions are constant
    ia = jnp.clip(jnp.floor(mid * n).astype(jnp.int32), 0, n - 1)
    ib = jnp.clip(jnp.floor(mid * m).astype(jnp.int32), 0, m - 1)
    return jnp.sum(du * jnp.abs(a[ia] - b[ib]) ** p) ** (1.0 / p)


def unit_quadrature(n_nodes: int = 512) -> tuple[Float[Array, " k"], Float[Array, " k"]]:
    """Nodes and weights for ∫_0^1 f(u) du, clustered at both ends.

    Gauss–Legendre in s ∈ (0, 1) after u = s³(10 − 15s + 6s²) (du = 30 s²(1−s)² ds), which
    flattens the logarithmic endpoint singularities of Gaussian quantile functions (Φ⁻¹(u)²
    ~ 2 log(1/u)) so the rule converges fast. Built with NumPy once (concrete ``n_nodes``).
    """
    check_positive_int("n_nodes", n_nodes)
    u, w = _unit_quadrature_np(n_nodes)
    return as_float(u), as_float(w)


@lru_cache(maxsize=16)
def _unit_quadrature_np(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre rule by Newton's method on P_n (vectorised recurrence), mapped to (0, 1).

    ``np.polynomial.legendre.leggauss`` solves a dense eigenproblem (seconds at 512 nodes on
    a busy CPU); Newton from Tricomi's initial guesses converges quadratically, O(n²) flops.
    """
    n = n_nodes
    x = np.cos(np.pi * (np.arange(1, n + 1) - 0.25) / (n + 0.5))
    for _ in range(100):
        p_prev, p = np.ones_like(x), x.copy()
        for k in range(2, n + 1):
            p_prev, p = p, ((2 * k - 1) * x * p - (k - 1) * p_prev) / k
        dp = n * (x * p - p_prev) / (x * x - 1.0)
        step = p / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    p_prev, p = np.ones_like(x), x.copy()
    for k in range(2, n + 1):
        p_prev, p = p, ((2 * k - 1) * x * p - (k - 1) * p_prev) / k
    dp = n * (x * p - p_prev) / (x * x - 1.0)
    w = 2.0 / ((1.0 - x * x) * dp * dp)
    s, w = 0.5 * (x[::-1] + 1.0), 0.5 * w[::-1]
    u = s**3 * (10.0 - 15.0 * s + 6.0 * s**2)
    return u, w * 30.0 * s**2 * (1.0 - s) ** 2


def wasserstein_1d_quantile(
    quantile_a: Callable[[Array], Array],
    quantile_b: Callable[[Array], Array],
    p=2,
    n_nodes: int = 512,
) -> Float[Array, ""]:
    """W_p = (∫_0^1 |Q_a(u) − Q_b(u)|^p du)^{1/p} for two 1-D laws given by quantile functions.

    Paper: ε = W(p_θ*, p_data) (the text says W2, the proofs use W1; W1 ≤ W2). Quadrature
    by ``unit_quadrature``; accurate to ~1e-8 for the Gaussian/uniform/truncated-Laplace
    pairs of the worked example at the default 512 nodes (checked against SciPy ``quad``).

    Args:
        quantile_a, quantile_b: vectorised quantile functions u ↦ Q(u) on (0, 1), e.g.
            ``lambda u: mu + sigma * jax.scipy.special.ndtri(u)``.
        p: order p ≥ 1.
        n_nodes: quadrature nodes.
    """
    check_p(p)
    u, w = unit_quadrature(n_nodes)
    diff = jnp.abs(quantile_a(u) - quantile_b(u))
    return jnp.sum(w * diff**p) ** (1.0 / p)


# --------------------------------------------------------------------------------------------
# worked example


@dataclasses.dataclass(frozen=True)
class BoundedDataExample:
    """Constants of a Gaussian θ = (μ, σ²) fitted by MLE to bounded data (floats).

    Attributes:
        kind: the data law.
        half_width: B, data supported on [−B, B].
        theta_star: (μ*, σ*²), the MLE = the data's mean and variance.
        alpha: α, smallest eigenvalue of −E[∇²_θ log p_θ*] (quadrature mean).
        alpha_closed_form: min(1/σ², 1/(2σ⁴)) (moments matched at the MLE).
        lipschitz: L over [−B, B] at θ* (``hessian_lipschitz`` on a grid with the endpoints).
        lipschitz_closed_form: (|b| + sqrt(b² + 4a²))/2, a = 1/σ⁴, b = 2(B + |μ|)/σ⁶.
        epsilon: ε = W_p(N(μ*, σ*²), p_data) by quadrature of the quantile functions.
        p: the Wasserstein order.
        kappa: κ = εL/α.
        threshold_gamma0: λ*(0, κ) = 1/(2(1+κ)), Thm 4.3 at γ = 0 (Bertrand et al.).
        threshold_gamma_inf: λ*(∞, κ) = 1/(1+κ).
        rigour: what is exact and what is estimated.
    """

    kind: str
    half_width: float
    theta_star: tuple[float, float]
    alpha: float
    alpha_closed_form: float
    lipschitz: float
    lipschitz_closed_form: float
    epsilon: float
    p: float
    kappa: float
    threshold_gamma0: float
    threshold_gamma_inf: float
    rigour: str


def gaussian_logpdf_1d(theta: Float[Array, " 2"], x: Float[Array, " 1"]) -> Float[Array, ""]:
    """log N(x; μ, σ²) with θ = (μ, σ²): the worked example's parameterisation."""
    mu, var = theta[0], theta[1]
    return -0.5 * jnp.log(2.0 * jnp.pi * var) - 0.5 * (x[0] - mu) ** 2 / var


def _truncated_laplace_quantile(scale, half_width) -> Callable[[Array], Array]:
    """Quantile function of Laplace(0, scale) conditioned on [−B, B]."""
    lo = 0.5 * jnp.exp(-half_width / scale)  # Laplace CDF at −B
    mass = 1.0 - 2.0 * lo

    def quantile(u):
        q = lo + u * mass
        below = q < 0.5
        q_lo, q_hi = jnp.where(below, q, 0.25), jnp.where(below, 0.75, q)
        return jnp.where(below, scale * jnp.log(2.0 * q_lo), -scale * jnp.log(2.0 * (1.0 - q_hi)))

    return quantile


def gaussian_on_bounded_data(
    kind: str = "uniform",
    *,
    half_width: float | None = None,
    scale: float = 1.0,
    p=2,
    n_nodes: int = 512,
    n_grid: int = 201,
) -> BoundedDataExample:
    """Worked example: α, L, ε and κ = εL/α for a Gaussian fitted to bounded data.

    Paper: Assumption 4.2, Thm 4.3 (κ = εL/α). Family N(μ, σ²) with θ = (μ, σ²); data on
    [−B, B]: ``"uniform"`` U[−B, B] (default B = √3, so θ* = (0, 1)) or
    ``"truncated-laplace"`` (Laplace(0, ``scale``) conditioned on [−B, B], default B = 3).

    Derivation (r = x − μ): ∇²_θ log p_θ(x) = [[−1/σ², −r/σ⁴], [−r/σ⁴, 1/(2σ⁴) − r²/σ⁶]].
    - α: at the MLE the data's mean and variance are matched (E r = 0, E r² = σ²), so
      −E ∇²_θ = diag(1/σ², 1/(2σ⁴)) and α = min(1/σ², 1/(2σ⁴)) (1/2 at σ² = 1). Computed
      by ``fisher_curvature`` on quadrature nodes; exact up to quadrature error.
    - L: ∂_x ∇²_θ = [[0, −1/σ⁴], [−1/σ⁴, −2r/σ⁶]], spectral norm (|b| + sqrt(b² + 4a²))/2
      with a = 1/σ⁴, b = 2r/σ⁶, increasing in |r|: on [−B, B] the supremum is at
      |r| = B + |μ|, an endpoint, so the grid maximum (endpoints included) is the exact L at
      θ* (rigorous). For θ in a neighbourhood of θ*, L grows as σ² shrinks (not included).
      With unbounded data L = ∞: the Hessian is quadratic in x.
    - ε = W_p(N(μ*, σ*²), p_data) by quadrature of Φ⁻¹ against the data's quantile
      function (exact up to quadrature error). For U[−√3, √3], W2² = 2 − 2√(3/π).
    - κ = εL/α, and the admissible λ of Thm 4.3 shrinks by 1/(1+κ):
      λ*(γ, κ) = (1+γ)/((2+γ)(1+κ)) (``theory.bounds.threshold``).

    What is *not* rigorous: α and ε as sample estimates (not used here), L away from θ*, and
    the theorem's other constants (τ_n of Assumption 4.2.3).

    Args:
        kind: one of ``EXAMPLE_KINDS``.
        half_width: B > 0 (default √3 for uniform, 3 for truncated-laplace).
        scale: Laplace scale (> 0), truncated-laplace only.
        p: Wasserstein order for ε (2 as in the text; 1 as in the proofs).
        n_nodes: quadrature nodes for θ*, α and ε.
        n_grid: grid points on [−B, B] for L (odd keeps x = 0 on the grid).
    """
    if kind not in EXAMPLE_KINDS:
        raise ValueError(f"kind must be one of {EXAMPLE_KINDS}; got {kind!r}")
    if half_width is None:
        half_width = math.sqrt(3.0) if kind == "uniform" else 3.0
    if not (isinstance(half_width, int | float) and 0 < half_width < math.inf):
        raise ValueError(f"half_width must be a finite number > 0; got {half_width!r}")
    if not (isinstance(scale, int | float) and 0 < scale < math.inf):
        raise ValueError(f"scale must be a finite number > 0; got {scale!r}")
    check_p(p)
    check_positive_int("n_nodes", n_nodes)
    if isinstance(n_grid, bool) or not isinstance(n_grid, int) or n_grid < 2:
        raise ValueError(f"n_grid must be an integer >= 2; got {n_grid!r}")
    big_b = float(half_width)
    # A calculator with float results: always float64 (in float32 the ε quadrature's tail
    # nodes overflow and κ comes out inf), whatever precision the caller runs in.
    with jax.enable_x64(True):
        mu, var, alpha, lip, eps = _example_core(
            kind, float(p), n_nodes, n_grid, as_float(big_b), as_float(scale)
        )
        mu, var, alpha, lip, eps = (float(v) for v in (mu, var, alpha, lip, eps))
    mu_f, var_f = float(mu), float(var)
    a_cf = 1.0 / var_f**2
    b_cf = 2.0 * (big_b + abs(mu_f)) / var_f**3
    kappa = float(eps) * float(lip) / float(alpha)
    return BoundedDataExample(
        kind=kind,
        half_width=big_b,
        theta_star=(mu_f, var_f),
        alpha=float(alpha),
        alpha_closed_form=min(1.0 / var_f, 0.5 / var_f**2),
        lipschitz=float(lip),
        lipschitz_closed_form=0.5 * (b_cf + math.sqrt(b_cf**2 + 4.0 * a_cf**2)),
        epsilon=float(eps),
        p=float(p),
        kappa=kappa,
        threshold_gamma0=float(bounds.threshold(0.0, kappa)),
        threshold_gamma_inf=float(bounds.threshold(math.inf, kappa)),
        rigour=(
            "alpha, epsilon: exact up to quadrature error (population quantities); "
            "L: exact at theta* (norm increasing in |x - mu|, endpoints on the grid), "
            "not a bound over a neighbourhood of theta*; unbounded data would give L = inf."
        ),
    )


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _example_core(kind, p, n_nodes, n_grid, big_b, scale):
    """θ*, α, L and ε of ``gaussian_on_bounded_data`` (one compiled computation)."""
    if kind == "uniform":
        data_quantile = lambda u: big_b * (2.0 * u - 1.0)  # noqa: E731
    else:
        data_quantile = _truncated_laplace_quantile(scale, big_b)
    u, w = unit_quadrature(n_nodes)
    x = data_quantile(u)
    mu = jnp.sum(w * x)
    var = jnp.sum(w * (x - mu) ** 2)
    theta = jnp.stack([mu, var])
    alpha = _fisher_curvature(gaussian_logpdf_1d, theta, x[:, None], w)
    grid = jnp.linspace(-big_b, big_b, n_grid)[:, None]
    lip = _hessian_lipschitz(gaussian_logpdf_1d, theta, grid)
    sigma = jnp.sqrt(var)
    eps = wasserstein_1d_quantile(
        lambda v: mu + sigma * jax.scipy.special.ndtri(v), data_quantile, p, n_nodes
    )
    return mu, var, alpha, lip, eps


_MOVED_TO_EFFECTIVE_GAMMA = ("CRITERIA", "EffectiveGamma", "effective_gamma", "energy_mixture_fit")


def __getattr__(name: str):
    # Deprecated: the effective-γ estimator moved to ``theory.effective_gamma``.
    if name in _MOVED_TO_EFFECTIVE_GAMMA:
        import warnings

        from theory import effective_gamma as _eg

        warnings.warn(
            f"theory.constants.{name} moved to theory.effective_gamma.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_eg, name)
    raise AttributeError(f"module 'theory.constants' has no attribute {name!r}")
