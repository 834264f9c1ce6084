"""theory.imperfect (and the imperfect parts of theory.operators, theory.chains): closed forms
against Monte-Carlo and against independent oracles.

Monte-Carlo checks simulate every point explicitly (jit + vmap over replicates, lax.scan over
generations; one compilation per simulator, module-scoped fixtures, parameters traced) and
assert |MC − exact| ≤ K_SE · SE with the SE estimated from the sample (for a variance V:
sqrt((m4 − V²)/R); for a covariance entry the sample SD of the centred products / √R). Seeds
are fixed, so each check is deterministic; K_SE = 4 (a correct formula fails with
probability ≈ 6e-5 per check under a fresh seed). Every law test also runs a planted wrong
law (``wrong=True`` or a named alternative) and asserts that it is rejected, so the test has
power. Float64 throughout (tests/conftest.py), strict dtype and rank promotion.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from theory import bounds, chains, constants
from theory import gaussian as gauss
from theory import imperfect as imp
from theory import operators as ops

pytestmark = pytest.mark.usefixtures("strict_jax")

K_SE = 4.0
F64 = jnp.float64


def z_mean(samples, exact, k=K_SE):
    """|mean − exact| ≤ k·SE; returns z."""
    x = np.asarray(samples, float)
    z = (x.mean() - float(exact)) / (x.std(ddof=1) / np.sqrt(x.size))
    assert abs(z) <= k, f"mean {x.mean():.6g} vs exact {float(exact):.6g} (z = {z:.2f})"
    return z


def z_var(samples, exact, k=K_SE):
    """|sample variance − exact| ≤ k·sqrt((m4 − V²)/R); returns z."""
    x = np.asarray(samples, float)
    c = x - x.mean()
    v = np.mean(c**2)
    z = (v - float(exact)) / np.sqrt((np.mean(c**4) - v**2) / x.size)
    assert abs(z) <= k, f"variance {v:.6g} vs exact {float(exact):.6g} (z = {z:.2f})"
    return z


def z_moments(rows, mean, cov, k=K_SE):
    """Every coordinate's mean and every covariance entry of i.i.d. ``rows`` within k·SE."""
    x = np.asarray(rows, float)
    zs = [z_mean(x[:, i], mean[i], k) for i in range(x.shape[1])]
    c = x - x.mean(0)
    for i in range(x.shape[1]):
        for j in range(i, x.shape[1]):
            prod = c[:, i] * c[:, j]
            z = (prod.mean() - float(cov[i, j])) / (prod.std(ddof=1) / np.sqrt(prod.size))
            assert abs(z) <= k, (
                f"cov[{i},{j}] {prod.mean():.5g} vs {float(cov[i, j]):.5g} (z={z:.2f})"
            )
            zs.append(z)
    return zs


def g2(mean, cov):
    return gauss.Gaussian(jnp.asarray(mean, F64), jnp.asarray(cov, F64))


# ---------------------------------------------------------------------------------------
# the affine correctors: law of one corrected batch (2-D, biased with mean and cov offsets)

THETA = g2([1.0, -0.5], [[1.5, 0.3], [0.3, 0.7]])
TARGET = gauss.standard(2, F64)
P_C = g2([0.6, 0.4], [[2.0, -0.5], [-0.5, 1.2]])  # the biased corrector's law: both offsets
GAMMA = 1.5
FAMILIES = {
    "biased": ops.Affine.biased(P_C),
    "shrinking": ops.Affine.shrinking(jnp.asarray([0.5, 0.2], F64), 0.4),
    "noisy": ops.Affine.noisy(TARGET, 0.3),
}


def corrected_law(theta, gamma, params, wrong=None):
    """Moments of the corrected law q N(μ, Σ+σ₁²I) + (1−q) N(c + s(μ−c), s²Σ + Σ₂) (NumPy).

    ``wrong``: a planted mistake: ``"ideal"`` (replacements from p_θ*), ``"no-mixing"`` (the
    between-component term dropped), ``"noise-on-replaced-only"``.
    """
    q = 1 / (1 + gamma)
    mu, sig = np.asarray(theta.mean), np.asarray(theta.cov)
    c, s = np.asarray(params.center), float(params.shrink)
    rep, v1 = np.asarray(params.replace_cov), float(params.noise_var)
    if wrong == "ideal":
        c, s, rep, v1 = np.asarray(TARGET.mean), 0.0, np.asarray(TARGET.cov), 0.0
    if wrong == "noise-on-replaced-only":
        v1 = 0.0
    m1, m2 = mu, c + s * (mu - c)
    mean = q * m1 + (1 - q) * m2
    cov = q * (sig + v1 * np.eye(2)) + (1 - q) * (s**2 * sig + rep)
    if wrong != "no-mixing":
        cov = cov + q * (1 - q) * np.outer(m1 - m2, m1 - m2)
    return mean, cov


@pytest.fixture(scope="module")
def corrected_rows():
    """20000 batches of 10 rows of p_θ, corrected by each family: 200000 i.i.d. rows each."""

    @jax.jit
    def draw(key, params):
        def one(key):
            k1, k2 = jax.random.split(key)
            x = gauss.sample(k1, THETA, 10)
            return ops.affine(GAMMA, params)(k2, x)

        return jax.vmap(one)(jax.random.split(key, 20000)).reshape(-1, 2)

    return {
        name: np.asarray(draw(jax.random.key(i), p)) for i, (name, p) in enumerate(FAMILIES.items())
    }


@pytest.mark.parametrize(
    ("name", "wrong"),
    [("biased", "ideal"), ("shrinking", "no-mixing"), ("noisy", "noise-on-replaced-only")],
)
def test_affine_corrector_law_matches_mixture_moments(corrected_rows, name, wrong):
    """200000 rows, γ = 1.5, K_SE = 4 on both means and the 3 covariance entries."""
    mean, cov = corrected_law(THETA, GAMMA, FAMILIES[name])
    z_moments(corrected_rows[name], mean, cov)
    bad_mean, bad_cov = corrected_law(THETA, GAMMA, FAMILIES[name], wrong=wrong)
    with pytest.raises(AssertionError):
        z_moments(corrected_rows[name], bad_mean, bad_cov)


CALLS = []


@jax.jit
def run_affine(gamma, params, key, x, mask):
    """One compilation for every affine corrector call below (parameters are traced)."""
    CALLS.append(1)
    return ops.affine(gamma, params)(key, x, mask=mask)


def test_affine_corrector_honours_mask_special_cases_and_compiles_once():
    x = gauss.sample(jax.random.key(1), THETA, 12)
    every = jnp.ones(12, bool)

    def f(g, p, mask=every):
        return run_affine(jnp.asarray(g, F64), p, jax.random.key(2), x, mask)

    out = f(2.0, FAMILIES["biased"], mask=jnp.arange(12) < 7)
    np.testing.assert_array_equal(out[7:], x[7:])
    # γ = 0 without noise is the identity; γ = inf with s = 1 and no noise too.
    np.testing.assert_array_equal(f(0.0, ops.Affine.ideal(TARGET)), x)
    shrink_one = ops.Affine.shrinking(jnp.zeros(2, F64), 1.0)
    np.testing.assert_allclose(f(np.inf, shrink_one), x, atol=1e-15)
    # γ = inf, s = 0.5: every point is halfway to the centre.
    half = f(np.inf, ops.Affine.shrinking(jnp.asarray([1.0, 1.0], F64), 0.5))
    np.testing.assert_allclose(half, 1.0 + 0.5 * (x - 1.0), atol=1e-15)
    for p in FAMILIES.values():
        f(1.0, p)
    assert len(CALLS) == 1  # every family and γ: one compilation
    # make_corrector builds the same families by name (eager).
    same = ops.make_corrector("biased", 2.0, TARGET, corrector_law=P_C)(jax.random.key(2), x)
    np.testing.assert_array_equal(same, ops.biased(2.0, P_C)(jax.random.key(2), x))


# ---------------------------------------------------------------------------------------
# the affine population map: fixed point and rates (deterministic, float64)


@jax.jit
def iterate_map(theta, lam, gamma, params):
    """400 steps of the affine population map (one compilation for every case)."""
    step = lambda _, th: imp.affine_population_map(th, lam, gamma, TARGET, params)  # noqa: E731
    return jax.lax.fori_loop(0, 400, step, theta)


@jax.jit
def map_jacobian(theta, lam, gamma, params):
    def flat(v):
        g = gauss.unflatten(v, 2)
        return gauss.flatten(imp.affine_population_map(g, lam, gamma, TARGET, params))

    return jax.jacobian(flat)(gauss.flatten(theta))


@pytest.mark.parametrize("lam", [0.3, 1.0, 4.0, np.inf])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_affine_fixed_point_is_the_limit_and_rates_are_the_jacobian_spectrum(name, lam):
    """Closed-form θ∞ is a fixed point and the limit of 400 steps from afar; the Jacobian's
    eigenvalues (autodiff) are (a, a, r, r, r, r) at θ∞ and elsewhere."""
    params, gamma = FAMILIES[name], 2.0
    fixed = imp.affine_fixed_point(lam, gamma, TARGET, params)
    again = imp.affine_population_map(fixed, lam, gamma, TARGET, params)
    np.testing.assert_allclose(again.mean, fixed.mean, atol=1e-13)
    np.testing.assert_allclose(again.cov, fixed.cov, atol=1e-13)
    start = g2([3.0, -2.0], [[4.0, 1.0], [1.0, 2.0]])
    theta = iterate_map(start, jnp.asarray(lam, F64), jnp.asarray(gamma, F64), params)
    np.testing.assert_allclose(theta.mean, fixed.mean, atol=1e-10)
    np.testing.assert_allclose(theta.cov, fixed.cov, atol=1e-10)
    a, r = (float(v) for v in imp.affine_rates(lam, gamma, params.shrink))
    for at in (fixed, THETA):  # the spectrum is the same at every θ (block triangular)
        jac = map_jacobian(at, jnp.asarray(lam, F64), jnp.asarray(gamma, F64), params)
        eig = np.sort(np.abs(np.linalg.eigvals(np.asarray(jac))))
        np.testing.assert_allclose(eig, np.sort([a, a, r, r, r, r]), atol=1e-12)


def test_affine_map_reduces_to_the_ideal_and_biased_closed_form():
    data = g2([0.2, -0.1], [[1.0, 0.2], [0.2, 0.8]])
    for lam, gamma in [(0.5, 0.0), (1.0, 1.0), (2.0, np.inf)]:
        ideal = gauss.population_map(THETA, lam, gamma, data, TARGET)
        same = imp.affine_population_map(THETA, lam, gamma, data, ops.Affine.ideal(TARGET))
        np.testing.assert_allclose(same.mean, ideal.mean, atol=1e-14)
        np.testing.assert_allclose(same.cov, ideal.cov, atol=1e-14)
        a, r = imp.affine_rates(lam, gamma, 0.0)
        np.testing.assert_allclose([a, r], bounds.well_specified_rate(lam, gamma) * np.ones(2))
    # Biased π_γ at p_data = p_θ*: μ∞ − m* = λγβ/(1+γ+λγ), Σ∞ − Σ* as in the docstring.
    lam, gamma = 0.8, 3.0
    beta = np.asarray(P_C.mean)
    fixed = imp.affine_fixed_point(lam, gamma, TARGET, ops.Affine.biased(P_C))
    np.testing.assert_allclose(fixed.mean, lam * gamma * beta / (1 + gamma + lam * gamma))
    w0, w2 = 1 / (1 + lam), lam / (1 + lam) * gamma / (1 + gamma)
    spread = w0 * w2 * np.outer(beta, beta) / (w0 + w2)
    cov = np.eye(2) + (w2 * (np.asarray(P_C.cov) - np.eye(2)) + spread) / (w0 + w2)
    np.testing.assert_allclose(fixed.cov, cov, rtol=1e-13)
    # The fixed point's distance from θ* grows with γ (more trust in a wrong corrector).
    errs = [
        float(
            gauss.param_distance(
                imp.affine_fixed_point(lam, g, TARGET, ops.Affine.biased(P_C)), TARGET
            )
        )
        for g in (0.0, 0.5, 2.0, 10.0, np.inf)
    ]
    assert errs[0] < 1e-14 and np.all(np.diff(errs) > 0)


def test_expanding_corrector_destabilises_exactly_where_predicted():
    """s > 1: the covariance rate crosses 1 at λγ/(1+γ) = 1/(s² − 1)."""
    s, gamma = 1.5, 1.0  # boundary λ = (1+γ)/(γ(s²−1)) = 1.6
    for lam, stable in [(1.5, True), (1.7, False), (np.inf, False)]:
        a, r = (float(v) for v in imp.affine_rates(lam, gamma, s))
        assert (max(a, r) < 1) == stable
    assert float(imp.affine_rates(1.6, gamma, s)[1]) == pytest.approx(1.0, abs=1e-14)


# ---------------------------------------------------------------------------------------
# selective correctors: truncated laws, selectors' Monte-Carlo, fixed points


@pytest.mark.parametrize(
    ("mu", "v", "lo", "hi"),
    [
        (0, 1, -0.5, 1.0),
        (0.3, 2.0, 1.0, 3.0),
        (0, 1, 5, 6),
        (0, 1, -np.inf, 0.2),
        (1, 0.5, -1, np.inf),
    ],
)
def test_truncated_moments_match_scipy(mu, v, lo, hi):
    sd = math.sqrt(v)
    law = scipy.stats.truncnorm((lo - mu) / sd, (hi - mu) / sd, loc=mu, scale=sd)
    mass, mean, var = (float(x) for x in imp.truncated_moments(mu, v, lo, hi))
    a, b = (lo - mu) / sd, (hi - mu) / sd
    norm = scipy.stats.norm
    exact_mass = norm.sf(a) - norm.sf(b) if a > 0 else norm.cdf(b) - norm.cdf(a)
    np.testing.assert_allclose([mass, mean, var], [exact_mass, law.mean(), law.var()], rtol=1e-10)


def test_top_alpha_law_radius_and_its_gradient():
    for mu, v, alpha, c in [(0.2, 1.5, 0.3, 0.1), (0.0, 1.0, 0.9, 0.0), (1.0, 0.5, 0.1, -1.0)]:
        r, mean, var = (float(x) for x in imp.top_alpha_law(mu, v, alpha, c))
        sd = math.sqrt(v)
        mass = scipy.stats.norm.cdf((c + r - mu) / sd) - scipy.stats.norm.cdf((c - r - mu) / sd)
        assert mass == pytest.approx(alpha, abs=1e-12)
        law = scipy.stats.truncnorm((c - r - mu) / sd, (c + r - mu) / sd, loc=mu, scale=sd)
        np.testing.assert_allclose([mean, var], [law.mean(), law.var()], rtol=1e-10)
        grad = jax.grad(lambda m: imp.top_alpha_law(m, v, alpha, c)[1])(jnp.asarray(mu, F64))
        h = 1e-5
        fd = (
            float(imp.top_alpha_law(mu + h, v, alpha, c)[1])
            - float(imp.top_alpha_law(mu - h, v, alpha, c)[1])
        ) / (2 * h)
        assert float(grad) == pytest.approx(fd, abs=1e-7)


SEL_THETA = (0.1, 1.5)  # the model N(0.1, 1.5) proposing candidates
SEL_CENTER = 0.3  # a biased verifier (m* = 0)


@pytest.fixture(scope="module")
def selected():
    """Top-k: 40 replicates of 20000 candidates, α = 1/4 (k = 5000); band: 200 × 2000."""
    sd = math.sqrt(SEL_THETA[1])

    @jax.jit
    def top(keys):
        def one(key):
            x = SEL_THETA[0] + sd * jax.random.normal(key, (20000, 1), F64)
            keep = ops.top_k(5000, jnp.asarray([SEL_CENTER], F64))(None, x)
            w = keep.astype(F64)
            mean = w @ x[:, 0] / 5000
            return mean, w @ (x[:, 0] - mean) ** 2 / 5000, jnp.sum(w)

        return jax.vmap(one)(keys)

    @jax.jit
    def banded(keys):
        def one(key):
            x = SEL_THETA[0] + sd * jax.random.normal(key, (2000, 1), F64)
            keep = ops.band(jnp.asarray([SEL_CENTER], F64), 1.2)(None, x)
            return jnp.where(keep, x[:, 0], jnp.nan)

        return jax.vmap(one)(keys).ravel()

    assert int(ops.n_candidates(5000, 0.25)) == 20000
    tops = [np.asarray(v) for v in top(jax.random.split(jax.random.key(11), 40))]
    return tops, np.asarray(banded(jax.random.split(jax.random.key(12), 200)))


def test_top_k_selection_tends_to_the_top_alpha_law(selected):
    """Replicate means and variances of the kept 5000 of 20000 (order statistics, not i.i.d.:
    the SE is the spread over the 40 replicates); O(1/k) selection bias ≪ SE; K_SE = 4."""
    (means, variances, counts), _ = selected
    assert np.all(counts == 5000)
    _, mean, var = (float(x) for x in imp.top_alpha_law(*SEL_THETA, 0.25, SEL_CENTER))
    z_mean(means, mean)
    z_mean(variances, var)
    with pytest.raises(AssertionError):  # wrong: the verifier centred at m* = 0
        z_mean(means, float(imp.top_alpha_law(*SEL_THETA, 0.25, 0.0)[1]))


def test_band_selection_is_the_truncated_law(selected):
    """200 × 2000 candidates; accepted points are i.i.d. N(0.1, 1.5)|[−0.3, 0.9]; K_SE = 4."""
    _, banded = selected
    accepted = banded[np.isfinite(banded)]
    mass, mean, var = (float(x) for x in imp.band_law(*SEL_THETA, SEL_CENTER, 1.2))
    p_hat = accepted.size / banded.size
    assert abs(p_hat - mass) <= K_SE * math.sqrt(mass * (1 - mass) / banded.size)
    z_mean(accepted, mean)
    z_var(accepted, var)
    with pytest.raises(AssertionError):  # wrong: the untruncated model law
        z_var(accepted, SEL_THETA[1])


def test_selectors_pick_exactly_the_right_rows():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(30, 2)))
    mask = jnp.arange(30) < 25
    c = jnp.asarray([0.2, -0.1])
    keep = np.asarray(ops.top_k(7, c)(None, x, mask=mask))
    d = np.sum((np.asarray(x)[:25] - np.asarray(c)) ** 2, axis=1)
    assert keep.sum() == 7 and not keep[25:].any()
    np.testing.assert_array_equal(np.flatnonzero(keep), np.sort(np.argsort(d)[:7]))
    inside = np.asarray(ops.band(c, 1.0)(None, x, mask=mask))
    np.testing.assert_array_equal(inside[:25], d <= 0.25)
    assert not inside[25:].any()
    assert int(ops.n_candidates(10, 0.1)) == 100 and int(ops.n_candidates(7, 0.3)) == 24


@pytest.mark.parametrize(("kind", "kw"), [("top-k", {"alpha": 0.5}), ("band", {"width": 1.5})])
def test_selective_fixed_point_and_rate(kind, kw):
    data = (0.0, 1.0)
    mu, v, rate = (float(x) for x in imp.selective_fixed_point(0.7, data, kind, center=0.4, **kw))
    again = imp.selective_population_map((mu, v), 0.7, data, kind, center=0.4, **kw)
    np.testing.assert_allclose([float(again[0]), float(again[1])], [mu, v], atol=1e-13)
    h = 1e-6
    jac = np.empty((2, 2))
    for j in range(2):
        up, dn = np.array([mu, v]), np.array([mu, v])
        up[j] += h
        dn[j] -= h
        fu = imp.selective_population_map(tuple(up), 0.7, data, kind, center=0.4, **kw)
        fd = imp.selective_population_map(tuple(dn), 0.7, data, kind, center=0.4, **kw)
        jac[:, j] = (np.asarray(fu, float) - np.asarray(fd, float)) / (2 * h)
    assert rate == pytest.approx(np.max(np.abs(np.linalg.eigvals(jac))), abs=1e-6)
    assert 0 < rate < 1 and mu > 0  # pulled toward the biased verifier, still stable


def test_top_alpha_replace_collapses_geometrically():
    """λ = inf (no real data), unbiased verifier: v' = v (1 − 2zφ(z)/α), z = Φ⁻¹((1+α)/2)."""
    alpha = 0.5
    z = scipy.stats.norm.ppf((1 + alpha) / 2)
    factor = 1 - 2 * z * scipy.stats.norm.pdf(z) / alpha
    mu, v = imp.selective_population_map((0.0, 2.0), np.inf, (0.0, 1.0), "top-k", alpha=alpha)
    assert float(mu) == pytest.approx(0.0, abs=1e-14)
    assert float(v) == pytest.approx(2.0 * factor, rel=1e-12)


# ---------------------------------------------------------------------------------------
# finite samples: the known-variance mean chain with imperfect correctors and fresh points

N_MC, K_MC = 10, 10  # λ = 1
T_MC = 20  # rate ≤ k/(n+k) = 1/2: 2^-20 < 1e-6 of burn-in, ≪ the SEs


@jax.jit
def simulate_mean_chain(keys, real_means, q, center, shrink, v1, v2, n_fresh):
    """Final μ_T of the known-σ² (σ² = 1, m* = 0) augment mean chain; keys (R, T).

    Each generation draws K_MC points of N(μ, 1) and corrects each explicitly: kept (prob q)
    as x + N(0, v1), else c + s(x − c) + N(0, v2); plus ``n_fresh`` fresh N(0, 1) points.
    """

    def chain(keys, real_mean):
        def step(mu, key):
            z = jax.random.normal(key, (5, K_MC), F64)
            x = mu + z[0]
            kept = x + jnp.sqrt(v1) * z[1]
            moved = center + shrink * (x - center) + jnp.sqrt(v2) * z[2]
            y = jnp.where(z[3] < jax.scipy.special.ndtri(q), kept, moved)
            fresh = jnp.sum(jnp.where(jnp.arange(K_MC, dtype=F64) < n_fresh, z[4], 0.0))
            return (N_MC * real_mean + jnp.sum(y) + fresh) / (N_MC + K_MC + n_fresh), None

        return jax.lax.scan(step, real_mean, keys)[0]

    return jax.vmap(chain)(keys, real_means)


def chain_keys(seed, reps, t=T_MC):
    return jax.random.split(jax.random.key(seed), (reps, t))


CHAIN_CASES = {  # (γ, centre, shrink, v1, v2, fresh)
    "biased": (2.0, 0.8, 0.0, 0.0, 2.0),  # mean and variance offset of the replacements
    "shrinking": (1.0, 0.5, 0.4, 0.0, 0.0),
    "noisy": (1.0, 0.0, 0.0, 0.5, 1.5),  # σ_c² = 0.5 on every output
}


@pytest.mark.parametrize("name", list(CHAIN_CASES))
def test_mean_chain_with_imperfect_corrector_matches_monte_carlo(name):
    """n = k = 10, real mean 0.7 fixed, 8000 chains, 20 generations, K_SE = 4."""
    gamma, c, s, v1, v2 = CHAIN_CASES[name]
    q = 1 / (1 + gamma)
    reps = 8000
    mu = simulate_mean_chain(chain_keys(30, reps), jnp.full(reps, 0.7), q, c, s, v1, v2, 0.0)
    kw = {"center": c, "shrink": s, "replace_var": v2, "noise_var": v1}
    fixed, var = chains.mean_chain(N_MC, 1.0, gamma, 0.7, **kw)
    z_mean(mu, fixed)
    z_var(mu, var)
    ideal_fixed, ideal_var = chains.mean_chain(N_MC, 1.0, gamma, 0.7)  # wrong: the ideal π_γ
    with pytest.raises(AssertionError):
        z_mean(mu, ideal_fixed)
        z_var(mu, ideal_var)


def test_mean_chain_fresh_points_match_monte_carlo():
    """γ = 0 loop plus m = 5 fresh points (the fresh control at γ = 1, k = 10); K_SE = 4."""
    reps, m = 8000, int(imp.fresh_count(1.0, 1.0, N_MC))
    assert m == 5
    mu = simulate_mean_chain(
        chain_keys(31, reps), jnp.full(reps, 0.7), 1.0, 0.0, 0.0, 0.0, 1.0, float(m)
    )
    fixed, var = chains.mean_chain(N_MC, 1.0, 0.0, 0.7, n_fresh=m)
    assert float(fixed) == pytest.approx(N_MC * 0.7 / (N_MC + m))
    z_mean(mu, fixed)
    z_var(mu, var)
    with pytest.raises(AssertionError):  # wrong: no fresh points
        z_mean(mu, chains.mean_chain(N_MC, 1.0, 0.0, 0.7)[0])


def reference_mean_chain(t_max, n, lam, gamma, real_mean, mu0, center, shrink, v1, v2, m):
    """The recursion of ``mean_chain``'s docstring iterated in NumPy (σ² = 1, m* = 0)."""
    k = np.floor(lam * n + 1e-6)
    q = 1 / (1 + gamma)
    c = n + k + m
    a = k * (q + (1 - q) * shrink) / c
    beta = (n * real_mean + k * (1 - q) * (1 - shrink) * center) / c
    g = k * q * (1 - q) * (1 - shrink) ** 2 / c**2
    h = (k * (q * (1 + v1) + (1 - q) * (shrink**2 + v2)) + m) / c**2
    e, v = [mu0], [0.0]
    for _ in range(t_max):
        v.append((a**2 + g) * v[-1] + g * (e[-1] - center) ** 2 + h)
        e.append(a * e[-1] + beta)
    return np.asarray(e), np.asarray(v)


def test_mean_chain_moments_imperfect_equal_recursion_and_limit():
    args = (17, 0.7, 1.3, 0.4, -1.0)
    kw = {"center": 0.9, "shrink": 0.3, "noise_var": 0.2, "replace_var": 0.6, "n_fresh": 3}
    mean, var = chains.mean_chain_moments(jnp.arange(25), *args, **kw)
    ref_mean, ref_var = reference_mean_chain(24, *args, 0.9, 0.3, 0.2, 0.6, 3)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var, ref_var, rtol=1e-12, atol=1e-14)
    far = chains.mean_chain_moments(10**9, *args, **kw)
    np.testing.assert_allclose(far, chains.mean_chain(17, 0.7, 1.3, 0.4, **kw), rtol=1e-12)


# ---------------------------------------------------------------------------------------
# the stationary MSE over real sets and the MSE-optimal γ

MSE_BIAS = 0.5  # σ/√n ≈ 0.32: a bias of 1.6 standard errors of the real mean


def test_stationary_mse_is_the_real_set_average_of_mean_chain():
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    for gamma, s in [(0.0, 0.0), (0.7, 0.0), (3.0, 0.4), (np.inf, 0.0)]:
        real = nodes / math.sqrt(N_MC)  # m̄ ~ N(0, 1/n)
        fixed, var = chains.mean_chain(N_MC, 1.0, gamma, real, center=MSE_BIAS, shrink=s)
        avg = weights @ (np.asarray(fixed) ** 2 + np.asarray(var))
        exact = imp.stationary_mse(N_MC, 1.0, gamma, MSE_BIAS, shrink=s)
        assert float(exact) == pytest.approx(avg, rel=1e-12)
    # Ends: γ = 0 is bias-free; b = 0, γ = inf is n + k real points.
    m0, m2 = imp.mse_terms(N_MC, 1.0, 0.0)
    assert float(m2) == 0.0 and float(m0) == pytest.approx(0.1 + 10 / (10 * 30))
    assert float(imp.stationary_mse(N_MC, 1.0, np.inf)) == pytest.approx(1 / 20)


GAMMA_GRID_STEPS = np.arange(-3, 4)  # γ_opt · 2^j


@jax.jit
def simulate_biased_mse(keys, real_means, qs):
    """(μ_T − m*)² of the known-σ² mean chain with a biased π_γ (replacements N(b, 1)), per
    γ (``qs``) with common random numbers; each generation's k = 10 points enter through
    their keep coins (k uniforms) and the sum of their unit noises (√k Z, exact in law)."""

    def chain(keys, real_mean, q):
        def step(mu, key):
            u = jax.random.uniform(key, (K_MC + 1,), F64)
            kept = jnp.sum((u[:K_MC] < q).astype(F64))
            noise = jnp.sqrt(float(K_MC)) * jax.scipy.special.ndtri(u[K_MC])
            total = kept * mu + (K_MC - kept) * MSE_BIAS + noise
            return (N_MC * real_mean + total) / (N_MC + K_MC), None

        return jax.lax.scan(step, real_mean, keys)[0] ** 2

    over_chains = jax.vmap(chain, in_axes=(0, 0, None))
    return jax.vmap(over_chains, in_axes=(None, None, 0))(keys, real_means, qs)


@pytest.fixture(scope="module")
def mse_curve():
    """Stationary (μ_T − m*)² of 20000 chains (each with its own real mean, common random
    numbers across γ), at γ_opt·2^j, j = −3..3, and at γ = inf; n = 10, λ = 1, b = 0.5."""
    gamma_opt = float(imp.mse_optimal_gamma(N_MC, 1.0, MSE_BIAS)[0])
    reps = 20000
    real = jax.random.normal(jax.random.key(40), (reps,), F64) / math.sqrt(N_MC)
    gammas = [gamma_opt * 2.0**j for j in GAMMA_GRID_STEPS] + [np.inf]
    qs = jnp.asarray([1 / (1 + g) for g in gammas], F64)
    sq = np.asarray(simulate_biased_mse(chain_keys(41, reps), real, qs))
    return gamma_opt, dict(zip(gammas, sq, strict=True))


def test_stationary_mse_matches_monte_carlo_over_gamma(mse_curve):
    """8 γ values, 20000 chains each, K_SE = 4; wrong: the bias-free MSE is rejected."""
    _, curve = mse_curve
    for g, sq in curve.items():
        z_mean(sq, imp.stationary_mse(N_MC, 1.0, g, MSE_BIAS))
    with pytest.raises(AssertionError):
        z_mean(curve[np.inf], imp.stationary_mse(N_MC, 1.0, np.inf, 0.0))


def test_mse_optimal_gamma_is_located_by_simulation(mse_curve):
    """The MC curve's argmin over γ_opt·2^j is j ∈ {−1, 0, 1}; paired (common random
    numbers) differences show γ_opt beats γ_opt·2^±3 and γ = inf by > K_SE SE. The planted
    wrong optimum γ = inf (what Thm 4.3 suggests for an ideal corrector) loses."""
    gamma_opt, curve = mse_curve
    gammas = [gamma_opt * 2.0**j for j in GAMMA_GRID_STEPS]
    means = [curve[g].mean() for g in gammas]
    assert abs(GAMMA_GRID_STEPS[int(np.argmin(means))]) <= 1
    best = curve[gamma_opt]
    for other in (gammas[0], gammas[-1], np.inf):
        diff = curve[other] - best
        z = diff.mean() / (diff.std(ddof=1) / np.sqrt(diff.size))
        assert z > K_SE, f"γ = {other:.3g} vs γ_opt = {gamma_opt:.3g}: z = {z:.2f}"
    # Formula: the optimum is interior at this bias and tends to inf as b → 0.
    assert 0.2 < gamma_opt < 3.0
    gs, _ = imp.mse_optimal_gamma(N_MC, 1.0, jnp.asarray([0.0, 0.1, 0.5, 1.0, 2.0]))
    assert np.isinf(float(gs[0])) and np.all(np.diff(1 / (1 + np.asarray(gs))) >= 0)


def test_break_even_bias_and_fresh_control():
    n, lam = N_MC, 1.0
    for gamma in (0.5, 2.0, 10.0):
        for ref in ("none", "fresh"):
            b = float(imp.break_even_bias(n, lam, gamma, ref))
            target = (
                imp.stationary_mse(n, lam, 0.0)
                if ref == "none"
                else imp.fresh_stationary_mse(n, lam, gamma)
            )
            if b > 0:
                assert float(imp.stationary_mse(n, lam, gamma, b)) == pytest.approx(
                    float(target), rel=1e-12
                )
    # fresh_stationary_mse is mean_chain with q = 1 and m fresh points, averaged over m̄.
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    m = int(imp.fresh_count(lam, 3.0, n))
    fixed, var = chains.mean_chain(n, lam, 0.0, nodes / math.sqrt(n), n_fresh=m)
    avg = weights @ (np.asarray(fixed) ** 2 + np.asarray(var))
    assert float(imp.fresh_stationary_mse(n, lam, 3.0)) == pytest.approx(avg, rel=1e-12)
    assert float(imp.break_even_bias(n, lam, 0.0)) == np.inf


# ---------------------------------------------------------------------------------------
# the 1-D augment loop with both moments fitted: exact chain against Monte-Carlo

N_FULL, K_FULL = 10, 5  # λ = 0.5
T_FULL = 20


@jax.jit
def simulate_full(keys, real_keys, fixed_real, q, center, shrink, v1, v2, n_fresh):
    """(μ_t, (μ_t − m*)², σ_t²), t = 1..T, of the 1-D augment loop (m* = 0, v = 1), explicit
    points: real set fixed (``fixed_real``) or redrawn per chain from ``real_keys``."""

    def chain(keys, real_key):
        drawn = jax.random.normal(real_key, (N_FULL,), F64)
        x_real = jnp.where(jnp.isnan(fixed_real), drawn, fixed_real)
        m_bar = jnp.mean(x_real)
        scatter = jnp.sum((x_real - m_bar) ** 2)

        def step(theta, key):
            mu, var = theta
            z = jax.random.normal(key, (5, K_FULL), F64)
            x = mu + jnp.sqrt(var) * z[0]
            kept = x + jnp.sqrt(v1) * z[1]
            moved = center + shrink * (x - center) + jnp.sqrt(v2) * z[2]
            y = jnp.where(z[3] < jax.scipy.special.ndtri(q), kept, moved)
            w_f = (jnp.arange(K_FULL, dtype=F64) < n_fresh).astype(F64)
            f = w_f * z[4]
            big_n = N_FULL + K_FULL + n_fresh
            mu2 = (N_FULL * m_bar + jnp.sum(y) + jnp.sum(f)) / big_n
            ss = scatter + N_FULL * (m_bar - mu2) ** 2 + jnp.sum((y - mu2) ** 2)
            var2 = (ss + jnp.sum(w_f * (f - mu2) ** 2)) / big_n
            return (mu2, var2), jnp.stack([mu2, mu2**2, var2])

        return jax.lax.scan(step, (m_bar, jnp.mean((x_real - m_bar) ** 2)), keys)[1]

    return jax.vmap(chain)(keys, real_keys)


FIXED_REAL = np.asarray(jax.random.normal(jax.random.key(50), (N_FULL,), F64)) * 0.8 + 0.3
FULL_CASES = {  # γ, centre, shrink, v1, v2, fresh, conditional on FIXED_REAL?
    "biased, conditional": (2.0, 0.6, 0.0, 0.0, 2.0, 0, True),
    "biased, averaged over real sets": (2.0, 0.6, 0.0, 0.0, 2.0, 0, False),
    "shrinking": (1.0, 0.5, 0.5, 0.0, 0.0, 0, False),
    "noisy": (1.0, 0.0, 0.0, 0.4, 1.4, 0, True),
    "fresh (γ = 0, m = 3)": (0.0, 0.0, 0.0, 0.0, 1.0, 3, False),
}


@pytest.fixture(scope="module")
def full_runs():
    reps = 10000
    out = {}
    for i, (name, (g, c, s, v1, v2, m, cond)) in enumerate(FULL_CASES.items()):
        fixed = jnp.asarray(FIXED_REAL) if cond else jnp.full(N_FULL, jnp.nan, F64)
        keys = chain_keys(60 + i, reps, T_FULL)
        real_keys = jax.random.split(jax.random.key(70 + i), reps)
        runs = simulate_full(keys, real_keys, fixed, 1 / (1 + g), c, s, v1, v2, float(m))
        out[name] = np.asarray(runs)
    return out


@pytest.mark.parametrize("name", list(FULL_CASES))
def test_augment_moments_match_monte_carlo(full_runs, name):
    """10000 chains, t = 1, 3, 20 (stationary: rate ≤ 0.34, 0.34^20 < 1e-9); K_SE = 4 on
    E μ_t, E (μ_t − m*)², E σ_t²; wrong: the ideal corrector's chain is rejected."""
    g, c, s, v1, v2, m, cond = FULL_CASES[name]
    runs = full_runs[name]
    real = (float(FIXED_REAL.mean()), float(FIXED_REAL.var())) if cond else None
    kw = {"center": c, "shrink": s, "noise_var": v1, "replace_var": v2, "n_fresh": m, "real": real}
    for t in (1, 3, T_FULL):
        exact = chains.augment_moments(t, N_FULL, 0.5, g, **kw)
        for j in range(3):
            z_mean(runs[:, t - 1, j], exact[j])
    stat = chains.augment_stationary(N_FULL, 0.5, g, **kw)
    for j in range(3):
        z_mean(runs[:, -1, j], stat[j])
    assert 0 < float(stat[3]) < 0.5
    wrong = chains.augment_stationary(N_FULL, 0.5, 0.0 if m else g, real=real)
    with pytest.raises(AssertionError):
        for j in range(3):
            z_mean(runs[:, -1, j], wrong[j])


def test_augment_moments_limits():
    # t → ∞ is the stationary solution; γ = 0, λ = 0 keeps the real fit.
    kw = {"center": 0.7, "shrink": 0.2, "replace_var": 1.3, "noise_var": 0.1}
    far = chains.augment_moments(10**6, 12, 0.75, 1.5, 0.2, 1.7, theta0=(3.0, 0.5), **kw)
    stat = chains.augment_stationary(12, 0.75, 1.5, 0.2, 1.7, **kw)
    np.testing.assert_allclose(far, stat[:3], rtol=1e-11)
    same = chains.augment_moments(5, 10, 0.0, 1.0, real=(0.4, 0.9))
    np.testing.assert_allclose(same, [0.4, 0.16, 0.9], rtol=1e-13)
    # Large n: E μ∞ is the population fixed point exactly (the mean is linear) and E σ²∞
    # tends to Σ∞ at rate 1/n.
    params = ops.Affine.biased(gauss.Gaussian(jnp.asarray([0.7]), jnp.asarray([[1.3]])))
    fixed = imp.affine_fixed_point(0.5, 1.5, gauss.standard(1, F64), params)
    gaps = []
    for n in (100, 1000, 10000):
        mu, _, var, _ = chains.augment_stationary(n, 0.5, 1.5, center=0.7, replace_var=1.3)
        assert float(mu) == pytest.approx(float(fixed.mean[0]), rel=1e-12)
        gaps.append(abs(float(var) - float(fixed.cov[0, 0])))
    assert gaps[1] / gaps[0] == pytest.approx(0.1, rel=0.05)
    assert gaps[2] / gaps[1] == pytest.approx(0.1, rel=0.05)


# ---------------------------------------------------------------------------------------
# Yi et al. (ICLR 2026): one round with a biased acceptance band

YI_N = 100  # n1 = n2 = 100, their simulation's setting
YI_POINTS = [(0.0, 2.0), (0.2, 1.0), (0.3, 0.1)]  # (bias, width)


@jax.jit
def yi_round(keys, bias, width):
    """(x̄, filtered real mean, filtered synthetic mean) of one round, fallback x̄."""
    lo, hi = bias - 0.5 * width, bias + 0.5 * width

    def one(key):
        x, z = jax.random.normal(key, (2, YI_N), F64)
        x_bar = jnp.mean(x)
        y = x_bar + z

        def filtered(v, fallback):
            keep = ((v >= lo) & (v <= hi)).astype(F64)
            count = jnp.sum(keep)
            return jnp.where(count > 0, keep @ v / jnp.maximum(count, 1.0), fallback)

        return jnp.stack([x_bar, filtered(x, x_bar), filtered(y, x_bar)])

    return jax.vmap(one)(keys)


@pytest.fixture(scope="module")
def yi_runs():
    keys = jax.random.split(jax.random.key(80), 60000)
    return {p: np.asarray(yi_round(keys, *p)) ** 2 for p in YI_POINTS}


@pytest.mark.parametrize("point", YI_POINTS)
def test_band_one_round_exact_matches_monte_carlo(yi_runs, point):
    """60000 rounds per (bias, width), K_SE = 4, for the exact closed forms."""
    sq = yi_runs[point]
    exact = imp.band_one_round(YI_N, YI_N, *point)
    z_mean(sq[:, 0], exact["real"])
    z_mean(sq[:, 1], exact["filtered_real"])
    z_mean(sq[:, 2], exact["filtered_synthetic"])
    with pytest.raises(AssertionError):  # wrong: the unfiltered model's MSE σ²/n1 + σ²/n2
        z_mean(sq[:, 2], exact["synthetic"])


def test_band_one_round_expansion_against_monte_carlo(yi_runs):
    """Yi et al.'s second-order formulas pass at the two wide bands (their O(1/n²) error is
    ~0.5%, under 2 SE here) and fail at the narrow one (Z₀ n1 ≈ 4: the 1/E K and
    no-fallback approximations break down, z ≈ −26)."""
    for point in YI_POINTS[:2]:
        approx = imp.band_one_round_expansion(YI_N, YI_N, *point)
        z_mean(yi_runs[point][:, 1], approx["filtered_real"])
        z_mean(yi_runs[point][:, 2], approx["filtered_synthetic"])
    approx = imp.band_one_round_expansion(YI_N, YI_N, *YI_POINTS[2])
    with pytest.raises(AssertionError):
        z_mean(yi_runs[YI_POINTS[2]][:, 1], approx["filtered_real"])


def yi_written_formulas(n1, n2, a, b):
    """Yi et al.'s x̄_p and ȳ_p (their one-round expressions), σ = 1, band [a, b] (NumPy)."""
    phi, cdf = scipy.stats.norm.pdf, scipy.stats.norm.cdf
    z = cdf(b) - cdf(a)
    c = (phi(b) - phi(a)) / z
    theta = 1 - (b * phi(b) - a * phi(a)) / z - c**2
    lam = (
        ((b**2 - 1) * phi(b) - (a**2 - 1) * phi(a)) / (2 * z)
        + 3 * (phi(b) - phi(a)) * (b * phi(b) - a * phi(a)) / (2 * z**2)
        + (phi(b) - phi(a)) ** 3 / z**3
    )
    return c**2 + theta / (n1 * z), c**2 + (theta**2 + 2 * lam * c) / n1 + theta / (n2 * z)


@pytest.mark.parametrize("point", [*YI_POINTS, (-0.4, 3.0), (1.0, 0.7)])
def test_band_expansion_is_yi_et_al_formulas(point):
    bias, width = point
    x_p, y_p = yi_written_formulas(50, 200, bias - width / 2, bias + width / 2)
    mine = imp.band_one_round_expansion(50, 200, bias, width)
    assert float(mine["filtered_real"]) == pytest.approx(x_p, rel=1e-10)
    assert float(mine["filtered_synthetic"]) == pytest.approx(y_p, rel=1e-10)


# ---------------------------------------------------------------------------------------
# the misspecified family: bounded data


@pytest.mark.parametrize("kind", constants.EXAMPLE_KINDS)
def test_bounded_data_sampler_and_theta_star(kind):
    """2·10⁵ draws: mean and variance within K_SE = 4 of θ*; θ* equals the quadrature of
    ``gaussian_on_bounded_data``; the draws stay in [−B, B]."""
    ex = constants.gaussian_on_bounded_data(kind)
    theta = imp.bounded_data_theta_star(kind)
    np.testing.assert_allclose(theta, ex.theta_star, rtol=1e-9, atol=1e-12)
    x = np.asarray(imp.bounded_data_sample(jax.random.key(90), kind, (200000,)))
    assert np.all(np.abs(x) <= ex.half_width)
    z_mean(x, theta[0])
    z_var(x, theta[1])
    with pytest.raises(AssertionError):  # wrong: the other example's variance
        other = next(k for k in constants.EXAMPLE_KINDS if k != kind)
        z_var(x, imp.bounded_data_theta_star(other)[1])


# ---------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ops.affine(-1.0, FAMILIES["biased"]), "gamma must"),
        (lambda: ops.shrinking(1.0, jnp.zeros(2), -0.5), "shrink must"),
        (lambda: ops.noisy(1.0, TARGET, -0.1), "noise_var must"),
        (lambda: ops.biased(1.0, g2([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])), "positive semi"),
        (lambda: ops.top_k(-1, jnp.zeros(2)), "k must"),
        (lambda: ops.band(jnp.zeros(2), -1.0), "width must"),
        (lambda: ops.n_candidates(10, 0.0), "alpha must"),
        (lambda: ops.n_candidates(10, 1.5), "alpha must"),
        (lambda: ops.make_selector("oracle"), "selection must"),
        (lambda: ops.make_corrector("kmeans", 1.0, TARGET), "correction must"),
        (lambda: imp.affine_fixed_point(-1.0, 1.0, TARGET, FAMILIES["biased"]), "lam must"),
        (lambda: imp.affine_rates(1.0, 1.0, -1.0), "shrink must"),
        (lambda: imp.selective_population_map((0, 1), 1.0, (0, 1), "knn"), "kind must"),
        (lambda: imp.selective_population_map((0, 1), 1.0, (0, 1), "top-k", alpha=0.0), "alpha"),
        (lambda: imp.selective_population_map((0, 1), 1.0, (0, 1), "band", width=0.0), "width"),
        (lambda: imp.selective_fixed_point(np.inf, (0, 1), "top-k", alpha=0.5), "lam must"),
        (lambda: imp.stationary_mse(0, 1.0, 1.0), "n must"),
        (lambda: imp.stationary_mse(10, 1.0, 1.0, shrink=1.5), "shrink must"),
        (lambda: imp.mse_optimal_gamma(10, -1.0, 0.5), "lam must"),
        (lambda: imp.mse_optimal_gamma(10, 1.0, 0.5, grid=2), "grid must"),
        (lambda: imp.break_even_bias(10, 1.0, 1.0, "oracle"), "reference must"),
        (lambda: imp.band_one_round(0, 10, 0.0, 1.0), "n_real must"),
        (lambda: imp.band_one_round(10, 10, 0.0, 0.0), "width must"),
        (lambda: imp.bounded_data_sample(jax.random.key(0), "normal", (3,)), "kind must"),
        (lambda: imp.bounded_data_theta_star("uniform", half_width=-1.0), "half_width"),
        (lambda: chains.mean_chain(10, 0.5, 1.0, 0.0, shrink=-1.0), "shrink must"),
        (lambda: chains.mean_chain(10, 0.5, 1.0, 0.0, n_fresh=1.5), "n_fresh must"),
        (lambda: chains.augment_moments(3, 10, 0.5, 1.0, real=(0.0, -1.0)), "real variance"),
        (lambda: chains.augment_moments(3, 10, 0.5, 1.0, theta0=(np.nan, 1.0)), "mu0"),
        (lambda: chains.augment_stationary(10, jnp.ones(2), 1.0), "lam must be a scalar"),
    ],
)
def test_bad_input_raises_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
