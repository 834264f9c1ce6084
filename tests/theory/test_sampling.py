"""theory.sampling: exact samplers of sufficient statistics against SciPy and closed forms.

Monte-Carlo checks use k = 4 standard errors (estimated from the sample) or goodness-of-fit
tests at level 1e-3, with fixed keys.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from theory import sampling

K_SE = 4.0


@pytest.mark.parametrize(
    ("k", "q"), [(0, 0.3), (1, 0.5), (25, 0.0), (25, 1.0), (40, 0.3), (100, 0.97)]
)
def test_binomial_cdf_matches_scipy(k, q):
    cdf = np.asarray(sampling.binomial_cdf(k, q, 100))
    ref = scipy.stats.binom.cdf(np.arange(101), k, q)
    np.testing.assert_allclose(cdf, ref, atol=1e-12)


def test_binomial_inverse_goodness_of_fit():
    k, q, draws = 30, 0.35, 40_000
    cdf = sampling.binomial_cdf(k, q, 50)
    keys = jax.random.split(jax.random.key(0), draws)
    x = np.asarray(jax.jit(jax.vmap(sampling.binomial_inverse, in_axes=(0, None)))(keys, cdf))
    assert x.min() >= 0 and x.max() <= k
    counts = np.bincount(x, minlength=k + 1)
    expected = draws * scipy.stats.binom.pmf(np.arange(k + 1), k, q)
    keep = expected > 5  # pool the sparse tails
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert scipy.stats.chisquare(obs, exp).pvalue > 1e-3


@pytest.mark.parametrize("df", [0.5, 1.0, 3.0, 60.0])
def test_chisquare_matches_scipy(df):
    x = np.asarray(jax.jit(sampling.chisquare)(jax.random.key(1), jnp.full(20_000, df)))
    assert scipy.stats.kstest(x, scipy.stats.chi2(df).cdf).pvalue > 1e-3
    assert abs(x.mean() - df) < K_SE * np.sqrt(2 * df / x.size)


def test_chisquare_zero_df_is_zero():
    x = sampling.chisquare(jax.random.key(2), jnp.zeros(5))
    assert np.all(np.asarray(x) == 0.0)


@pytest.mark.parametrize(("d", "df"), [(2, 0), (2, 1), (2, 7), (3, 2)])
def test_wishart_moments_and_rank(d, df):
    rng = np.random.default_rng(d + df)
    a = rng.normal(size=(d, d))
    cov = a @ a.T + 0.5 * np.eye(d)
    root = np.linalg.cholesky(cov)
    draws = 10_000
    keys = jax.random.split(jax.random.key(3), draws)
    w = np.asarray(
        jax.jit(jax.vmap(sampling.wishart, in_axes=(0, None, None)))(
            keys, jnp.asarray(float(df)), jnp.asarray(root)
        )
    )
    mean = df * cov
    var = df * (cov**2 + np.outer(np.diag(cov), np.diag(cov)))
    se = np.sqrt(np.maximum(w.var(axis=0), 1e-30) / draws)
    assert np.all(np.abs(w.mean(axis=0) - mean) <= K_SE * se + 1e-12)
    if df > 0:
        assert np.all(np.abs(w.var(axis=0) / var - 1) < 0.15)  # 4th moments: ~3% SE at 10k draws
    rank = np.linalg.matrix_rank(w[:50], tol=1e-9 * max(np.abs(w).max(), 1))
    assert np.all(rank == min(df, d))


def test_group_stats_match_explicit_points():
    """Mean and scatter of m drawn points vs group_stats: same first two moments."""
    d, m, draws = 2, 6, 20_000
    mu = jnp.asarray([0.5, -1.0])
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    root = jnp.asarray(np.linalg.cholesky(cov))

    def explicit(key):
        x = mu[None, :] + jax.random.normal(key, (m, d), mu.dtype) @ root.T
        c = jnp.mean(x, axis=0)
        xc = x - c[None, :]
        return c, xc.T @ xc

    keys = jax.random.split(jax.random.key(4), draws)
    fast = jax.jit(jax.vmap(lambda k: sampling.group_stats(k, mu, root, m)))(keys)
    slow = jax.jit(jax.vmap(explicit))(jax.random.split(jax.random.key(5), draws))
    for a, b in zip(fast, slow, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        se = np.sqrt((a.var(axis=0) + b.var(axis=0)) / draws)
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) <= K_SE * se)
        assert np.all(np.abs(a.var(axis=0) / b.var(axis=0) - 1) < 0.1)


def test_group_stats_empty_group():
    c, s = sampling.group_stats(jax.random.key(6), jnp.ones(2), jnp.eye(2), 0)
    assert np.all(np.asarray(s) == 0.0)
    assert np.all(np.isfinite(np.asarray(c)))
