"""The constants of Assumption 4.2 (α, L, ε, κ = εL/α) and a corrector's effective strength γ̂.

Paper: Assumption 4.2, Thm 4.3 (κ = εL/α, threshold λ(1+κ) < (1+γ)/(2+γ)), App. C (pointwise
correctors, Def. C.1 criterion, Example C.6).

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

**Effective strength.** ``effective_gamma`` fits the law of a corrector's output to the
mixture line {w p_θ + (1−w) p_θ* : w ∈ [0, 1]} (w = 1/(1+γ), Def. 4.1) from samples only,
with a bootstrap confidence interval, the fit residual (a real corrector need not be any π_γ)
and a permutation test for the non-identifiable case p_θ = p_θ*.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from theory import bounds
from theory._checks import as_float, check_positive_int, is_traced

__all__ = [
    "CRITERIA",
    "BoundedDataExample",
    "EffectiveGamma",
    "effective_gamma",
    "energy_mixture_fit",
    "fisher_curvature",
    "gaussian_logpdf_1d",
    "gaussian_on_bounded_data",
    "hessian_lipschitz",
    "unit_quadrature",
    "wasserstein_1d",
    "wasserstein_1d_quantile",
]

CRITERIA = ("energy", "ks")
EXAMPLE_KINDS = ("uniform", "truncated-laplace")

LogPdf = Callable[[Float[Array, " p"], Float[Array, " d"]], Float[Array, ""]]


# --------------------------------------------------------------------------------------------
# validation helpers (concrete values only; tracers pass through, see theory._checks)


def _check_matrix(name: str, x, min_rows: int = 1) -> None:
    if is_traced(x):
        return
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d); got shape {a.shape}")
    if a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")


def _check_vector(name: str, x, min_len: int = 1) -> None:
    if is_traced(x):
        return
    a = np.asarray(x)
    if a.ndim != 1 or a.shape[0] < min_len:
        raise ValueError(f"{name} must be a 1-D array of length >= {min_len}; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")


def _check_p(p) -> None:
    if isinstance(p, bool) or not isinstance(p, int | float) or not (1 <= p < math.inf):
        raise ValueError(f"p must be a finite number >= 1; got {p!r}")


def _as_samples(name: str, x, min_rows: int) -> Array:
    """(n,) or (n, d) samples as an (n, d) float array, validated."""
    if not is_traced(x) and np.ndim(x) == 1:
        x = np.asarray(x)[:, None]
    _check_matrix(name, x, min_rows)
    return as_float(x)


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
    _check_vector("theta_star", theta_star)
    _check_matrix("data", data)
    if weights is not None:
        _check_vector("weights", weights, np.shape(data)[0])
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
    return jnp.linalg.eigvalsh(-0.5 * (mean + mean.T))[0]


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
    _check_vector("theta", theta)
    _check_matrix("points", points)
    return _hessian_lipschitz(logpdf, as_float(theta), as_float(points))


@partial(jax.jit, static_argnums=0)
def _hessian_lipschitz(logpdf, theta, x):
    d_hess = jax.jacfwd(jax.hessian(logpdf, argnums=0), argnums=1)
    dh = jax.vmap(d_hess, in_axes=(None, 0))(theta, x)  # (n, p, p, d)
    if x.shape[1] == 1:
        sym = 0.5 * (dh[..., 0] + jnp.swapaxes(dh[..., 0], -1, -2))
        norms = jnp.max(jnp.abs(jnp.linalg.eigvalsh(sym)), axis=-1)
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
    _check_p(p)
    _check_vector("a_samples", a_samples)
    _check_vector("b_samples", b_samples)
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
    _check_p(p)
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
    _check_p(p)
    check_positive_int("n_nodes", n_nodes)
    if isinstance(n_grid, bool) or not isinstance(n_grid, int) or n_grid < 2:
        raise ValueError(f"n_grid must be an integer >= 2; got {n_grid!r}")
    big_b = float(half_width)
    mu, var, alpha, lip, eps = _example_core(
        kind, float(p), n_nodes, n_grid, as_float(big_b), as_float(scale)
    )
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


# --------------------------------------------------------------------------------------------
# effective correction strength (App. C)


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
    m = _as_samples("model_samples", model_samples, 2)
    c = _as_samples("corrected_samples", corrected_samples, 2)
    t = _as_samples("target_samples", target_samples, 2)
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
    model = _as_samples("model_samples", model_samples, 2)
    target = _as_samples("target_samples", target_samples, 2)
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
