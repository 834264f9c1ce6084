"""theory.constants: α, L, ε against closed forms, NumPy and SciPy; γ̂ coverage and behaviour.

Coverage of the bootstrap CI is a Binomial count: with 20 repetitions per γ at nominal 0.95,
P(coverage < 0.75) = P(Bin(20, 0.95) ≤ 14) ≈ 3e-4, and pooled over 60 repetitions
P(Bin(60, 0.95) ≤ 50) ≈ 3e-3; the measured values are printed (``pytest -s``).
"""

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
from theory import gaussian as gauss
from theory import operators as ops

pytestmark = pytest.mark.usefixtures("strict_jax")

GAMMAS = (0.3, 1.0, 3.0)
REPS = 20  # per γ
N = 500  # model and target samples per repetition
SHIFT = 1.5  # model N((1.5, 0, ...), I) against target N(0, I)


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


# --------------------------------------------------------------------------------------------
# effective γ̂


def draw(key, n=N, d=2, shift=SHIFT):
    km, kt = jax.random.split(key)
    offset = jnp.zeros((1, d)).at[0, 0].set(shift)
    return jax.random.normal(km, (n, d)) + offset, jax.random.normal(kt, (n, d))


def numpy_energy_terms(m, c, t):
    def u_stat(dm):
        return (dm.sum() - np.trace(dm)) / (dm.shape[0] * (dm.shape[0] - 1))

    cd = scipy.spatial.distance.cdist
    return {
        "a_m": u_stat(cd(c, m)),
        "a_t": cd(c, t).mean(),
        "b_cc": u_stat(cd(c, c)),
        "b_mm": u_stat(cd(m, m)),
        "b_mt": cd(m, t).mean(),
        "b_tt": u_stat(cd(t, t)),
    }


def numpy_energy_objective(terms, w):
    mix = w * w * terms["b_mm"] + 2 * w * (1 - w) * terms["b_mt"] + (1 - w) ** 2 * terms["b_tt"]
    return 2 * (w * terms["a_m"] + (1 - w) * terms["a_t"]) - terms["b_cc"] - mix


@pytest.mark.parametrize("case", ["ideal", "beyond-model", "shrink"])
def test_energy_closed_form_equals_grid_minimum(case):
    model, target = draw(jax.random.key(11), n=300)
    if case == "ideal":
        corrected = ops.ideal(1.0, gauss.standard(2))(jax.random.key(12), model)
    elif case == "beyond-model":  # farther from the target than the model: clipped at w = 1
        corrected = model + jnp.asarray([[1.0, 0.0]])
    else:
        corrected = 0.5 * model
    w_hat, resid, e_mt = const.energy_mixture_fit(model, corrected, target)
    terms = numpy_energy_terms(*(np.asarray(a) for a in (model, corrected, target)))
    grid = np.linspace(0.0, 1.0, 100_001)
    values = numpy_energy_objective(terms, grid)
    assert float(w_hat) == pytest.approx(grid[np.argmin(values)], abs=2e-5)
    assert float(resid) == pytest.approx(values.min(), rel=1e-8, abs=1e-12)
    ref_e = 2 * terms["b_mt"] - terms["b_mm"] - terms["b_tt"]
    assert float(e_mt) == pytest.approx(ref_e, rel=1e-10)
    if case == "beyond-model":
        assert float(w_hat) == 1.0


def _coverage_run(criterion, d):
    """REPS repetitions per γ with fresh model, target and corrector keys.

    A Python loop over concrete arrays: every call hits the same compiled estimator (same
    shapes and static arguments as the other tests), which costs less than compiling a
    second, vmapped copy of it.
    """
    target = gauss.standard(d)
    ci, gamma_hat, ident, truth = [], [], [], []
    for i, gamma in enumerate(np.repeat(GAMMAS, REPS)):
        k_draw, k_est = jax.random.split(jax.random.key(1000 * d + i))
        model, tgt = draw(k_draw, d=d)
        r = const.effective_gamma(
            k_est, ops.ideal(float(gamma), target), model, tgt, criterion=criterion
        )
        ci.append(np.asarray(r.ci))
        gamma_hat.append(float(r.gamma))
        ident.append(bool(r.identifiable))
        truth.append(gamma)
    ci, gamma_hat, g = np.asarray(ci), np.asarray(gamma_hat), np.asarray(truth)
    covered = (ci[:, 0] <= g) & (g <= ci[:, 1])
    per_gamma = {gv: covered[i * REPS : (i + 1) * REPS].mean() for i, gv in enumerate(GAMMAS)}
    medians = {gv: np.median(gamma_hat[i * REPS : (i + 1) * REPS]) for i, gv in enumerate(GAMMAS)}
    return per_gamma, covered.mean(), medians, np.asarray(ident)


def test_ideal_corrector_energy_ci_coverage():
    per_gamma, pooled, medians, ident = _coverage_run("energy", d=2)
    print(
        f"\nenergy d=2 n={N}: coverage per gamma {per_gamma}, pooled {pooled:.3f}; "
        f"median gamma_hat {medians}"
    )
    assert ident.all()
    assert all(c >= 0.75 for c in per_gamma.values()), per_gamma
    assert pooled >= 0.85
    for gv, med in medians.items():
        assert abs(med - gv) < 0.25 * gv + 0.05


def test_ideal_corrector_ks_1d_ci_coverage():
    per_gamma, pooled, medians, ident = _coverage_run("ks", d=1)
    print(
        f"\nks d=1 n={N}: coverage per gamma {per_gamma}, pooled {pooled:.3f}; "
        f"median gamma_hat {medians}"
    )
    # a non-smooth argmin: the percentile bootstrap has no guarantee; only a loose floor
    assert ident.all()
    assert pooled >= 0.75


@pytest.fixture(scope="module")
def samples():
    return draw(jax.random.key(5))


def test_identity_gives_zero_and_ideal_infinity_gives_zero_weight(samples):
    model, target = samples
    r = const.effective_gamma(jax.random.key(0), ops.identity(), model, target)
    assert bool(r.identifiable) and float(r.gamma) == pytest.approx(0.0, abs=1e-12)
    assert float(r.relative_residual) == pytest.approx(0.0, abs=1e-12)
    r = const.effective_gamma(jax.random.key(0), ops.ideal(jnp.inf, gauss.standard(2)), *samples)
    assert float(r.weight) < 0.05 and float(r.weight_ci[0]) == 0.0
    assert math.isinf(float(r.ci[1])) and float(r.gamma) > 10.0


def test_model_equal_target_is_not_identifiable(samples):
    _, target = samples
    other = jax.random.normal(jax.random.key(99), target.shape)
    r = const.effective_gamma(jax.random.key(1), ops.ideal(1.0, gauss.standard(2)), other, target)
    assert not bool(r.identifiable) and float(r.p_value) > 0.01
    assert math.isnan(float(r.gamma)) and np.isnan(np.asarray(r.ci)).all()
    assert "not identifiable" in r.message


def test_non_mixture_corrector_has_large_relative_residual(samples):
    ideal = const.effective_gamma(jax.random.key(2), ops.ideal(1.0, gauss.standard(2)), *samples)
    shrink = const.effective_gamma(jax.random.key(2), lambda k, x, labels=None: 0.5 * x, *samples)
    print(
        f"\nrelative residual: ideal {float(ideal.relative_residual):.4f}, "
        f"shrink-by-half {float(shrink.relative_residual):.4f}"
    )
    assert abs(float(ideal.relative_residual)) < 0.02
    assert float(shrink.relative_residual) > 0.1


def test_histogram_corrector_at_batch_25(samples):
    model, target = samples

    # γ is an argument of one compiled corrector (not a new closure per γ: one compile).
    @jax.jit
    def hist(gamma, key, x):
        return ops.histogram(gamma, gauss.standard(2))(key, x)

    rows = []
    for gamma in GAMMAS:
        r = const.effective_gamma(
            jax.random.key(3),
            lambda k, x, labels=None: hist(jnp.asarray(gamma), k, x),
            model,
            target,
            batch_size=25,
        )
        ci = np.asarray(r.ci).tolist()
        rows.append((gamma, float(r.gamma), *ci, float(r.relative_residual)))
    print("\nhistogram corrector, batch 25 (nominal, gamma_hat, ci_low, ci_high, rel. residual):")
    for row in rows:
        print("  " + ", ".join(f"{v:.4g}" for v in row))
    for _, g_hat, lo, hi, _ in rows:
        assert np.isfinite(g_hat) and np.isfinite(lo) and lo <= g_hat <= hi


def test_ks_minimiser_matches_numpy_grid():
    """1-D KS criterion: the golden-section minimum equals a NumPy grid minimum of sup|ΔF|."""
    rng = np.random.default_rng(8)
    model = rng.normal(SHIFT, 1.0, size=(N, 1))
    target = rng.normal(size=(N, 1))
    fresh = rng.normal(size=(N, 1))
    keep = np.arange(N) % 3 == 0  # a deterministic corrector: keeps every third point
    corrected = np.where(keep[:, None], model, fresh)
    r = const.effective_gamma(
        jax.random.key(0),
        lambda k, x, labels=None: jnp.asarray(corrected),
        jnp.asarray(model),
        jnp.asarray(target),
        criterion="ks",
    )
    z = np.sort(np.concatenate([corrected, model, target]).ravel())

    def ecdf(x):
        return np.searchsorted(np.sort(x.ravel()), z, side="right") / x.size

    f_c, f_m, f_t = ecdf(corrected), ecdf(model), ecdf(target)
    grid = np.linspace(0.0, 1.0, 20_001)
    values = np.abs(f_c[None] - grid[:, None] * f_m[None] - (1 - grid[:, None]) * f_t[None])
    values = values.max(axis=1)
    assert float(r.residual) <= values.min() + 1e-9
    assert float(r.residual) >= values.min() - 1e-4  # grid resolution 5e-5 × slope ≤ 1
    assert float(r.weight) == pytest.approx(grid[np.argmin(values)], abs=0.02)
    assert float(r.relative_residual) == pytest.approx(
        float(r.residual) / np.abs(f_t - f_m).max(), rel=1e-10
    )


def test_sliced_ks_in_two_dimensions(samples):
    r = const.effective_gamma(
        jax.random.key(4),
        ops.ideal(1.0, gauss.standard(2)),
        *samples,
        criterion="ks",
        n_boot=50,
        n_directions=8,
    )
    assert bool(r.identifiable) and abs(float(r.weight) - 0.5) < 0.15
    assert float(r.ci[0]) <= float(r.gamma) <= float(r.ci[1])


def test_batch_size_and_labels_reach_the_corrector(samples):
    model, target = samples
    labels = jnp.arange(model.shape[0])

    def tagged(key, x, labels=None):  # records the batch shape and uses the labels
        assert x.shape == (25, 2) and labels.shape == (25,)
        return x

    r = const.effective_gamma(jax.random.key(0), tagged, model, target, labels, batch_size=25)
    assert float(r.gamma) == pytest.approx(0.0, abs=1e-12)


def test_effective_gamma_bad_inputs(samples):
    model, target = samples
    corr = ops.identity()
    key = jax.random.key(0)
    cases = [
        ("criterion", dict(criterion="wasserstein")),
        ("n_boot", dict(n_boot=0)),
        ("n_perm", dict(n_perm=0)),
        ("level", dict(level=1.0)),
        ("p_threshold", dict(p_threshold=0.0)),
        ("batch_size", dict(batch_size=7)),
    ]
    for name, kwargs in cases:
        with pytest.raises(ValueError, match=name):
            const.effective_gamma(key, corr, model, target, **kwargs)
    with pytest.raises(ValueError, match="model_samples"):
        const.effective_gamma(key, corr, model[:1], target)
    with pytest.raises(ValueError, match="dimension"):
        const.effective_gamma(key, corr, model, target[:, :1])
    with pytest.raises(ValueError, match="labels"):
        const.effective_gamma(key, corr, model, target, jnp.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        const.effective_gamma(key, lambda k, x, labels=None: x[:-1], model, target)
