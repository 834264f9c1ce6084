"""theory.constants: α, L, ε against closed forms, NumPy and SciPy."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.spatial.distance
import scipy.stats

from theory import bounds
from theory import constants as const


def hand_hessian(theta, x):
    """∇²_θ log N(x; μ, v), θ = (μ, v), by hand (NumPy, one row per point)."""
    mu, v = theta
    r = np.asarray(x, float).ravel() - mu
    h = np.empty((r.size, 2, 2))
    h[:, 0, 0] = -1.0 / v
    h[:, 0, 1] = h[:, 1, 0] = -r / v**2
    h[:, 1, 1] = 0.5 / v**2 - r**2 / v**3
    return h


def hand_lipschitz(theta, big_b):
    mu, v = theta
    a, b = 1.0 / v**2, 2.0 * (big_b + abs(mu)) / v**3
    return 0.5 * (b + math.sqrt(b * b + 4.0 * a * a))


# --------------------------------------------------------------------------------------------
# α, L, ε


def test_fisher_curvature_matches_hand_hessian():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.5, size=300)
    theta = np.array([0.2, 1.3])
    ref = -hand_hessian(theta, x).mean(axis=0)
    got = const.fisher_curvature(
        const.gaussian_logpdf_1d, jnp.asarray(theta), jnp.asarray(x[:, None])
    )
    assert float(got) == pytest.approx(np.linalg.eigvalsh(ref)[0], rel=1e-10)
    # weights: same as repeating rows
    w = rng.integers(1, 4, size=300).astype(float)
    ref_w = -np.average(hand_hessian(theta, x), axis=0, weights=w)
    got_w = const.fisher_curvature(
        const.gaussian_logpdf_1d, jnp.asarray(theta), jnp.asarray(x[:, None]), jnp.asarray(w)
    )
    assert float(got_w) == pytest.approx(np.linalg.eigvalsh(ref_w)[0], rel=1e-10)


def test_hessian_lipschitz_closed_form_and_finite_differences():
    theta = np.array([0.3, 0.8])
    big_b = 2.0
    grid = jnp.linspace(-big_b, big_b, 101)[:, None]
    got = float(const.hessian_lipschitz(const.gaussian_logpdf_1d, jnp.asarray(theta), grid))
    assert got == pytest.approx(hand_lipschitz(theta, big_b), rel=1e-12)
    # central finite differences of the hand Hessian at the maximising endpoint x = -B
    h = 1e-5
    fd = (hand_hessian(theta, [-big_b + h]) - hand_hessian(theta, [-big_b - h]))[0] / (2 * h)
    assert got == pytest.approx(np.abs(np.linalg.eigvalsh(fd)).max(), rel=1e-7)

    # d = 2: sqrt(Σ_j ‖∂_j H‖_F²) against finite differences of jax.hessian in x
    def logpdf2(th, x):
        return -jnp.log(th[2]) - 0.5 * jnp.sum((x - th[:2]) ** 2) / th[2]

    th2 = jnp.asarray([0.1, -0.2, 0.7])
    pts = jnp.asarray([[0.5, -1.0], [1.5, 2.0]])
    hess = jax.jit(jax.hessian(logpdf2))
    ref = 0.0
    for x in np.asarray(pts):
        dh = [
            (np.asarray(hess(th2, jnp.asarray(x + e))) - np.asarray(hess(th2, jnp.asarray(x - e))))
            / (2 * h)
            for e in (np.array([h, 0.0]), np.array([0.0, h]))
        ]
        ref = max(ref, math.sqrt(sum(float(np.sum(m**2)) for m in dh)))
    got2 = float(const.hessian_lipschitz(logpdf2, th2, pts))
    assert got2 == pytest.approx(ref, rel=1e-6)


def test_lipschitz_increases_with_half_width_and_kappa_positive():
    widths = (0.5, 1.0, math.sqrt(3.0), 3.0)
    lips = [
        float(const.hessian_lipschitz(const.gaussian_logpdf_1d, jnp.asarray([0.0, 1.0]), g))
        for g in (jnp.linspace(-b, b, 11)[:, None] for b in widths)
    ]
    assert all(a < b for a, b in itertools.pairwise(lips))
    for b in widths:
        ex = const.gaussian_on_bounded_data("uniform", half_width=b)
        assert ex.kappa > 0 and ex.lipschitz == pytest.approx(ex.lipschitz_closed_form, rel=1e-9)


@pytest.mark.parametrize(("n", "m"), [(200, 200), (37, 90)])
def test_wasserstein_1d_matches_scipy_and_sorted_formula(n, m):
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=n), rng.laplace(0.4, 1.3, size=m)
    w1 = float(const.wasserstein_1d(jnp.asarray(a), jnp.asarray(b), p=1))
    assert w1 == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-10)
    # W2 oracle: replicate both samples to the common size lcm(n, m), then sort and pair
    k = math.lcm(n, m)
    ra, rb = np.sort(np.repeat(a, k // n)), np.sort(np.repeat(b, k // m))
    w2 = float(const.wasserstein_1d(jnp.asarray(a), jnp.asarray(b), p=2))
    assert w2 == pytest.approx(np.sqrt(np.mean((ra - rb) ** 2)), rel=1e-10)
    assert w1 <= w2 + 1e-12


def test_wasserstein_quantile_against_closed_form_and_scipy_quad():
    root3 = math.sqrt(3.0)
    normal_q = jax.scipy.special.ndtri
    uniform_q = lambda u: root3 * (2.0 * u - 1.0)  # noqa: E731
    w2 = float(const.wasserstein_1d_quantile(normal_q, uniform_q, p=2))
    assert w2 == pytest.approx(math.sqrt(2.0 - 2.0 * math.sqrt(3.0 / math.pi)), rel=1e-9)
    for p in (1, 2, 3):
        ref, _ = scipy.integrate.quad(
            lambda u: abs(scipy.stats.norm.ppf(u) - root3 * (2 * u - 1)) ** p, 0, 1, limit=200
        )
        got = float(const.wasserstein_1d_quantile(normal_q, uniform_q, p=p))
        # |Q_a − Q_b| has kinks where the quantile functions cross: p = 1 converges slowest
        assert got == pytest.approx(ref ** (1.0 / p), rel=1e-4 if p == 1 else 1e-7)
    # empirical W is biased upward at finite n and approaches the population value
    rng = np.random.default_rng(3)
    emp = [
        float(
            const.wasserstein_1d(
                jnp.asarray(rng.normal(size=n)), jnp.asarray(rng.uniform(-root3, root3, size=n))
            )
        )
        for n in (20_000,)
    ]
    assert abs(emp[0] - w2) < 0.02


def test_worked_example_uniform_closed_forms():
    ex = const.gaussian_on_bounded_data()
    assert ex.theta_star == pytest.approx((0.0, 1.0), abs=1e-12)
    assert ex.alpha == pytest.approx(0.5, rel=1e-10)
    assert ex.lipschitz == pytest.approx(2.0 + math.sqrt(3.0), rel=1e-12)
    eps = math.sqrt(2.0 - 2.0 * math.sqrt(3.0 / math.pi))
    assert ex.epsilon == pytest.approx(eps, rel=1e-9)
    kappa = eps * (2.0 + math.sqrt(3.0)) / 0.5
    assert ex.kappa == pytest.approx(kappa, rel=1e-9)
    assert ex.threshold_gamma0 == pytest.approx(1.0 / (2.0 * (1.0 + kappa)), rel=1e-9)
    assert ex.threshold_gamma0 == pytest.approx(float(bounds.threshold(0.0, ex.kappa)))
    assert ex.threshold_gamma_inf == pytest.approx(1.0 / (1.0 + kappa), rel=1e-9)
    w1 = const.gaussian_on_bounded_data(p=1)
    assert 0 < w1.epsilon < ex.epsilon  # W1 ≤ W2


def test_worked_example_truncated_laplace_against_scipy():
    big_b, s = 3.0, 1.0
    ex = const.gaussian_on_bounded_data("truncated-laplace", half_width=big_b, scale=s)
    mass = 1.0 - math.exp(-big_b / s)
    var, _ = scipy.integrate.quad(lambda x: x * x * math.exp(-x / s) / s / mass, 0, big_b)
    assert ex.theta_star[0] == pytest.approx(0.0, abs=1e-12)
    assert ex.theta_star[1] == pytest.approx(var, rel=1e-9)
    assert ex.alpha == pytest.approx(min(1 / var, 0.5 / var**2), rel=1e-9)
    assert ex.lipschitz == pytest.approx(hand_lipschitz((0.0, var), big_b), rel=1e-9)
    lo = 0.5 * math.exp(-big_b / s)

    def data_q(u):
        q = lo + u * (1 - 2 * lo)
        return s * math.log(2 * q) if q < 0.5 else -s * math.log(2 * (1 - q))

    ref, _ = scipy.integrate.quad(
        lambda u: (math.sqrt(var) * scipy.stats.norm.ppf(u) - data_q(u)) ** 2,
        0,
        1,
        points=[0.5],
        limit=200,
    )
    assert ex.epsilon == pytest.approx(math.sqrt(ref), rel=1e-7)
    assert ex.kappa == pytest.approx(ex.epsilon * ex.lipschitz / ex.alpha, rel=1e-12)
    assert ex.kappa > 0


def test_constants_bad_inputs():
    lp = const.gaussian_logpdf_1d
    with pytest.raises(ValueError, match="data"):
        const.fisher_curvature(lp, jnp.asarray([0.0, 1.0]), jnp.zeros(5))
    with pytest.raises(ValueError, match="weights"):
        const.fisher_curvature(lp, jnp.asarray([0.0, 1.0]), jnp.zeros((5, 1)), -jnp.ones(5))
    with pytest.raises(ValueError, match="theta"):
        const.hessian_lipschitz(lp, jnp.zeros((2, 2)), jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match="points"):
        const.hessian_lipschitz(lp, jnp.asarray([0.0, 1.0]), jnp.full((3, 1), jnp.nan))
    with pytest.raises(ValueError, match="p must"):
        const.wasserstein_1d(jnp.zeros(3), jnp.zeros(3), p=0.5)
    with pytest.raises(ValueError, match="b_samples"):
        const.wasserstein_1d(jnp.zeros(3), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="kind"):
        const.gaussian_on_bounded_data("student-t")
    with pytest.raises(ValueError, match="half_width"):
        const.gaussian_on_bounded_data(half_width=-1.0)
    with pytest.raises(ValueError, match="n_nodes"):
        const.unit_quadrature(0)
