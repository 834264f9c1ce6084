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


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_bits_to_uniform_and_normal_equal_jax_random(dtype):
    """One block of ``random.bits`` converted by hand gives jax.random's numbers bit for bit."""
    key = jax.random.key(7)
    bits = jax.random.bits(key, (1000,), sampling.bits_dtype(dtype))
    np.testing.assert_array_equal(
        np.asarray(sampling.uniform_from_bits(bits, dtype)),
        np.asarray(jax.random.uniform(key, (1000,), dtype)),
    )
    np.testing.assert_array_equal(
        np.asarray(sampling.normal_from_bits(bits, dtype)),
        np.asarray(jax.random.normal(key, (1000,), dtype)),
    )


@pytest.mark.parametrize("m", [1, 4, 30])
def test_chisquare_table_entries_are_chisquare(m):
    z = jax.random.normal(jax.random.key(8), (20_000, 30), jnp.float64)
    table = np.asarray(sampling.chisquare_table(z))
    assert table.shape == (20_000, 31) and np.all(table[:, 0] == 0.0)
    assert scipy.stats.kstest(table[:, m], scipy.stats.chi2(m).cdf).pvalue > 1e-3


@pytest.mark.parametrize("df_offset", [0, 1])
def test_bartlett_table_is_the_bartlett_diagonal(df_offset):
    """Entry [j, m] = √(Σ of the first m − 1 − j + offset squares of row j), 0 for m ≤ j + 1."""
    d, m_max = 3, 9
    z = np.random.default_rng(3).normal(size=(d, m_max - 1 + df_offset))
    got = np.asarray(sampling.bartlett_table(jnp.asarray(z), m_max, df_offset))
    want = np.zeros((d, m_max + 1))
    for j in range(d):
        for m in range(j + 2, m_max + 1):
            want[j, m] = np.sqrt(np.sum(z[j, : m - 1 - j + df_offset] ** 2))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="normals per row"):
        sampling.bartlett_table(jnp.asarray(z[:, :-1]), m_max, df_offset)


@pytest.mark.parametrize("k1", [8, 101, 300])
def test_shared_inverse_equals_inversion_of_each_uniform(k1):
    """#{j : cdf[c, j] < u} for every (uniform, table), ties and repeated uniforms included."""
    rng = np.random.default_rng(k1)
    cells = 13
    cdf = np.sort(rng.uniform(size=(cells, k1)), axis=1)
    cdf[:, -1] = 1.0
    cdf[0] = 1.0  # a point mass at 0
    u = rng.uniform(size=500)
    u[:8] = cdf[1, :8]  # exact ties: cdf < u is false at equality
    u[20:30] = u[30:40]  # repeated uniforms
    u[40] = 0.0
    got = np.asarray(sampling.shared_inverse(jnp.asarray(cdf), jnp.asarray(u)))
    want = np.sum(cdf[None, :, :] < u[:, None, None], axis=-1)
    assert got.dtype == (np.uint8 if k1 <= 255 else np.uint16)
    np.testing.assert_array_equal(got, want)
    # The Binomial case: the same counts as binomial_inverse's rule.
    table = np.asarray(sampling.binomial_cdf(30, 0.4, k1 - 1))
    got = np.asarray(sampling.shared_inverse(jnp.asarray(table[None]), jnp.asarray(u)))
    np.testing.assert_array_equal(got[:, 0], np.sum(table[None, :] < u[:, None], axis=-1))
