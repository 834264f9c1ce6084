"""theory.gaussian against SciPy/NumPy references in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from theory import gaussian as gauss


def random_gaussian(rng, d):
    a = rng.normal(size=(d, d))
    return gauss.Gaussian(jnp.asarray(rng.normal(size=d)), jnp.asarray(a @ a.T + 0.1 * np.eye(d)))


def ref_w2(g1, g2):
    s1 = scipy.linalg.sqrtm(np.asarray(g1.cov))
    cross = scipy.linalg.sqrtm(s1 @ np.asarray(g2.cov) @ s1).real
    sq = np.sum((np.asarray(g1.mean) - np.asarray(g2.mean)) ** 2)
    return np.sqrt(sq + np.trace(np.asarray(g1.cov) + np.asarray(g2.cov) - 2 * cross))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_w2_matches_scipy_and_is_a_distance(d):
    rng = np.random.default_rng(d)
    for _ in range(10):
        g1, g2 = random_gaussian(rng, d), random_gaussian(rng, d)
        assert float(gauss.w2(g1, g2)) == pytest.approx(ref_w2(g1, g2), rel=1e-8)
        assert float(gauss.w2(g1, g2)) == pytest.approx(float(gauss.w2(g2, g1)), rel=1e-8)
        assert float(gauss.w2(g1, g1)) == pytest.approx(0.0, abs=1e-6)
        shift = jnp.asarray(rng.normal(size=d))
        moved = lambda g: gauss.Gaussian(g.mean + shift, g.cov)  # noqa: E731
        assert float(gauss.w2(moved(g1), moved(g2))) == pytest.approx(
            float(gauss.w2(g1, g2)), rel=1e-9
        )


def test_kl_and_logpdf_match_scipy():
    rng = np.random.default_rng(0)
    g1, g2 = random_gaussian(rng, 3), random_gaussian(rng, 3)
    x = rng.normal(size=(5, 3))
    ref = scipy.stats.multivariate_normal(np.asarray(g1.mean), np.asarray(g1.cov)).logpdf(x)
    np.testing.assert_allclose(gauss.logpdf(g1, jnp.asarray(x)), ref, rtol=1e-10)
    m1, s1, m2, s2 = (np.asarray(a) for a in (g1.mean, g1.cov, g2.mean, g2.cov))
    inv2 = np.linalg.inv(s2)
    kl = 0.5 * (
        np.trace(inv2 @ s1)
        + (m2 - m1) @ inv2 @ (m2 - m1)
        - 3
        + np.log(np.linalg.det(s2) / np.linalg.det(s1))
    )
    assert float(gauss.kl(g1, g2)) == pytest.approx(kl, rel=1e-10)


def test_fit_and_fit_groups_match_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2)) * 3 + 100.0  # far from the origin: tests the centring
    w = (rng.uniform(size=40) < 0.7).astype(float)
    g = gauss.fit(jnp.asarray(x), jnp.asarray(w))
    sel = x[w > 0]
    np.testing.assert_allclose(g.mean, sel.mean(0), rtol=1e-12)
    np.testing.assert_allclose(g.cov, np.cov(sel.T, bias=True), rtol=1e-10)
    parts = [x[:10], x[10:25], x[25:]]
    counts, centers, s1s, s2s = [], [], [], []
    for p, m in zip(parts, (4, 15, 9), strict=True):
        c = p.mean(0) + 0.3
        y = p[:m] - c
        counts.append(float(m))
        centers.append(jnp.asarray(c))
        s1s.append(jnp.asarray(y.sum(0)))
        s2s.append(jnp.asarray(y.T @ y))
    merged = gauss.fit_groups(
        jnp.asarray(counts), jnp.stack(centers), jnp.stack(s1s), jnp.stack(s2s)
    )
    union = np.concatenate([parts[0][:4], parts[1][:15], parts[2][:9]])
    np.testing.assert_allclose(merged.mean, union.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.cov, np.cov(union.T, bias=True), rtol=1e-9)


def test_sample_moments():
    g = gauss.Gaussian(jnp.asarray([1.0, -2.0]), jnp.asarray([[2.0, 0.6], [0.6, 0.5]]))
    x = np.asarray(gauss.sample(jax.random.key(0), g, 200_000))
    se = np.sqrt(np.diag(np.asarray(g.cov)) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - np.asarray(g.mean)) < 5 * se)
    np.testing.assert_allclose(np.cov(x.T), g.cov, atol=0.02)


def test_validate_rejects_bad_covariances():
    with pytest.raises(ValueError, match="positive semi-definite"):
        gauss.validate(gauss.Gaussian(jnp.zeros(2), jnp.asarray([[1.0, 2.0], [2.0, 1.0]])))
    with pytest.raises(ValueError, match="symmetric"):
        gauss.validate(gauss.Gaussian(jnp.zeros(2), jnp.asarray([[1.0, 0.5], [0.0, 1.0]])))
    gauss.validate(gauss.standard(2))


@pytest.mark.parametrize("lam, gamma", [(0.5, 0.0), (0.3, 1.0), (1.5, 0.2), (2.0, np.inf)])
def test_population_jacobian_spectral_radius(lam, gamma):
    jac = np.asarray(gauss.population_jacobian(lam, gamma, gauss.standard(2)))
    radius = np.max(np.abs(np.linalg.eigvals(jac)))
    assert radius == pytest.approx(float(gauss.population_contraction(lam, gamma)), rel=1e-10)


def test_population_map_rates():
    lam, gamma = 0.5, 1.0
    a = float(gauss.population_contraction(lam, gamma))
    data = gauss.standard(2)
    theta = gauss.Gaussian(jnp.asarray([2.0, -1.0]), 3.0 * jnp.eye(2))
    cov_err = []
    for _ in range(12):  # (1/6)^12 ≈ 5e-10: still far above float64 round-off
        new = gauss.population_map(theta, lam, gamma, data)
        np.testing.assert_allclose(new.mean, a * theta.mean, rtol=1e-12)  # exactly a, every step
        theta = new
        cov_err.append(float(jnp.linalg.norm(theta.cov - jnp.eye(2))))
    ratios = np.asarray(cov_err[1:]) / np.asarray(cov_err[:-1])
    assert ratios[0] != pytest.approx(a, rel=1e-3)  # second-order term in μ early on
    assert ratios[-1] == pytest.approx(a, rel=1e-6)  # asymptotic rate is a


def test_population_map_matches_large_sample_fit():
    """Monte-Carlo: the MLE on a huge real ∪ corrected sample approaches the exact map."""
    lam, gamma, n = 0.5, 1.0, 400_000
    theta = gauss.Gaussian(jnp.asarray([1.5, 0.0]), jnp.asarray([[2.0, 0.3], [0.3, 1.0]]))
    data = gauss.standard(2)
    k1, k2, k3, k4 = jax.random.split(jax.random.key(3), 4)
    real = gauss.sample(k1, data, n)
    synth = gauss.sample(k2, theta, n // 2)
    keep = jax.random.uniform(k3, (n // 2,)) < 1 / (1 + gamma)
    synth = jnp.where(keep[:, None], synth, gauss.sample(k4, data, n // 2))
    fitted = gauss.fit(jnp.concatenate([real, synth]))
    exact = gauss.population_map(theta, lam, gamma, data)
    np.testing.assert_allclose(fitted.mean, exact.mean, atol=6 / np.sqrt(n))
    np.testing.assert_allclose(fitted.cov, exact.cov, atol=12 / np.sqrt(n))
