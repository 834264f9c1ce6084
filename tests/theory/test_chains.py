"""theory.chains: exact finite-sample chains against Monte-Carlo (z-tests) and closed forms.

Every Monte-Carlo check simulates independent chains by explicit per-point sampling
(vmap over chains, lax.scan over generations, one jit per workflow, module-scoped; the
keep/replace coin of π_γ is a standard normal compared with Φ⁻¹(q), so each step makes one
random call, which compiles several times faster than separate normal + uniform calls) and
asserts |MC mean − exact| ≤ K_SE · SE, SE estimated from the sample; for a variance V the
SE is sqrt((m4 − V²)/R) with m4 the fourth central sample moment. Seeds are fixed, so
each check is deterministic; with K_SE = 4 a correct formula fails with probability
≈ 6e-5 per check under a fresh seed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from theory import chains
from theory import gaussian as gauss
from theory import operators as ops

K_SE = 4.0
F64 = jnp.float64


def ndtri(q):
    """Φ⁻¹(q): a standard normal u is kept when u < Φ⁻¹(q), a Bernoulli(q) draw (±inf at 0, 1)."""
    return jax.scipy.special.ndtri(jnp.asarray(q, F64))


def z_mean(samples, exact, k=K_SE):
    """|mean − exact| ≤ k·SE, the SE of the mean; returns the z-score."""
    x = np.asarray(samples, float)
    z = (x.mean() - exact) / (x.std(ddof=1) / np.sqrt(x.size))
    assert abs(z) <= k, f"mean {x.mean():.6g} vs exact {float(exact):.6g} (z = {z:.2f})"
    return z


def z_var(samples, exact, k=K_SE):
    """|sample variance − exact| ≤ k·sqrt((m4 − V²)/R); returns the z-score."""
    x = np.asarray(samples, float)
    c = x - x.mean()
    v = np.mean(c**2)
    se = np.sqrt((np.mean(c**4) - v**2) / x.size)
    z = (v - exact) / se
    assert abs(z) <= k, f"variance {v:.6g} vs exact {float(exact):.6g} (z = {z:.2f})"
    return z


# ---------------------------------------------------------------------------------------
# Monte-Carlo simulators (explicit sampling of every point)

N_AUG, K_MAX, MSTAR, SIGMA = 20, 20, 0.0, 1.0


@jax.jit
def simulate_mean(keys, k, q, real_mean, mu0, accumulate):
    """μ_t, t = 1..T, of the known-variance mean chain (n = N_AUG); keys (R, T) → (R, T).

    ``accumulate`` = 0: augment (the real set + this generation's k points); 1: accumulate
    (the real set + every set so far). One compilation serves both workflows.
    """

    def chain(keys):
        def step(carry, inp):
            mu, total = carry
            key, t = inp
            z, u = jax.random.normal(key, (2, K_MAX), F64)
            keep = u < ndtri(q)  # P(keep) = q: one random call per step compiles faster
            y = jnp.where(keep, mu, MSTAR) + SIGMA * z
            fresh = jnp.sum(jnp.where(jnp.arange(K_MAX, dtype=F64) < k, y, 0.0))
            total = accumulate * total + fresh
            mu = (N_AUG * real_mean + total) / (N_AUG + (1.0 + accumulate * (t - 1.0)) * k)
            return (mu, total), mu

        ts = jnp.arange(1, keys.shape[0] + 1, dtype=F64)
        return jax.lax.scan(step, (mu0, jnp.zeros((), F64)), (keys, ts))[1]

    return jax.vmap(chain)(keys)


@jax.jit
def simulate_replace(keys, q, mu0, var0):
    """(μ_t, σ_t²), t = 1..T, of the replace chain with n = N_REP; keys (R, T)."""

    def chain(keys):
        def step(theta, key):
            mu, var = theta
            z, u = jax.random.normal(key, (2, N_REP), F64)
            keep = u < ndtri(q)
            x = jnp.where(keep, mu + jnp.sqrt(var) * z, MSTAR + z)  # v* = 1
            mu = jnp.mean(x)
            var = jnp.mean((x - mu) ** 2)
            return (mu, var), (mu, var)

        return jax.lax.scan(step, (mu0, var0), keys)[1]

    return jax.vmap(chain)(keys)


def chain_keys(seed, chains_, generations):
    return jax.random.split(jax.random.key(seed), (chains_, generations))


# ---------------------------------------------------------------------------------------
# augment: mean_chain

LAMS, GAMMAS = (0.25, 0.5, 1.0), (0.0, 1.0, 5.0)
REAL_MEAN, MU0 = 3.0, -1.0  # δ = 3σ: the mixture term is large for γ ∈ {1, 5}
R_AUG, T_AUG = 6000, 20


@pytest.fixture(scope="module")
def augment_runs():
    out = {}
    for i, (lam, gamma) in enumerate((lam, g) for lam in LAMS for g in GAMMAS):
        k = float(ops.n_synthetic(lam, N_AUG))
        q = 1.0 / (1.0 + gamma)
        keys = chain_keys(i, R_AUG, T_AUG)
        out[lam, gamma] = np.asarray(simulate_mean(keys, k, q, REAL_MEAN, MU0, 0.0))
    return out


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_mean_chain_stationary_matches_monte_carlo(augment_runs, lam, gamma):
    """R_AUG = 6000 chains, T_AUG = 20 generations of burn-in (a^20 < 1e-6), K_SE = 4."""
    mu = augment_runs[lam, gamma][:, -1]
    fixed, var = (float(v) for v in chains.mean_chain(N_AUG, lam, gamma, REAL_MEAN))
    z_mean(mu, fixed)
    z_var(mu, var)
    if gamma > 0:
        # Power: without the mixture-sampling term kq(1−q)e*² the variance is rejected.
        k = float(ops.n_synthetic(lam, N_AUG))
        q, c = 1 / (1 + gamma), N_AUG + k
        naive = SIGMA**2 * k / (c**2 - k * q * (1 - q) - (k * q) ** 2)
        with pytest.raises(AssertionError):
            z_var(mu, naive)


@pytest.mark.parametrize("t", [1, 2, 4])
def test_mean_chain_transient_matches_monte_carlo(augment_runs, t):
    """Transient from μ₀ = −1 at generations 1, 2, 4 (9 configurations, 6000 chains)."""
    for (lam, gamma), runs in augment_runs.items():
        mean, var = chains.mean_chain_moments(t, N_AUG, lam, gamma, REAL_MEAN, MU0)
        z_mean(runs[:, t - 1], float(mean))
        z_var(runs[:, t - 1], float(var))


def reference_mean_chain(t_max, n, lam, gamma, real_mean, mu0, target_mean=0.0, sigma2=1.0):
    """The recursion of the brief, iterated in NumPy: E e and V = Var e for t = 0..t_max."""
    k = np.floor(lam * n + 1e-6)
    q = 1.0 / (1.0 + gamma)
    c = n + k
    delta = real_mean - target_mean
    m, v = [mu0 - target_mean], [0.0]
    for _ in range(t_max):
        m_t, v_t = m[-1], v[-1]
        v.append((k * q * (1 - q) * (v_t + m_t**2) + sigma2 * k) / c**2 + (k * q / c) ** 2 * v_t)
        m.append((n * delta + k * q * m_t) / c)
    return target_mean + np.asarray(m), np.asarray(v)


def test_mean_chain_moments_equal_recursion_and_tend_to_fixed_point():
    n = 17  # λn not an integer for λ ∈ {0.3, 1.7}: k = 5 and 28
    lams = np.asarray([0.3, 1.0, 1.7, 0.5])
    gammas = np.asarray([2.0, 0.0, 0.5, np.inf])
    t = jnp.concatenate([jnp.arange(40), jnp.asarray([10**9])])[:, None]
    args = (jnp.asarray(lams)[None, :], jnp.asarray(gammas)[None, :], 1.5, -2.0, 0.5, 2.0)
    mean, var = chains.mean_chain_moments(t, n, *args)
    fixed, stat = chains.mean_chain(n, lams, gammas, 1.5, 0.5, 2.0)
    for j, (lam, gamma) in enumerate(zip(lams, gammas, strict=True)):
        ref_mean, ref_var = reference_mean_chain(39, n, lam, gamma, 1.5, -2.0, 0.5, 2.0)
        np.testing.assert_allclose(mean[:40, j], ref_mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(var[:40, j], ref_var, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mean[40], fixed, rtol=1e-12)
    np.testing.assert_allclose(var[40], stat, rtol=1e-12)


def test_mean_chain_closed_forms_at_the_ends():
    n, lam = 20, 0.5
    c = 20 + 10  # n + k
    # λn integer: the mean contracts at the population rate λ/((1+λ)(1+γ)) of Lemma A.7.
    for gamma in (0.0, 1.0, 5.0):
        fixed, _ = chains.mean_chain(n, lam, gamma, 3.0)
        mean, _ = chains.mean_chain_moments(jnp.arange(6), n, lam, gamma, 3.0, -1.0)
        gap = np.asarray(mean) - float(fixed)
        ratios = gap[1:] / gap[:-1]
        rate = float(gauss.population_contraction(lam, gamma))
        np.testing.assert_allclose(ratios, rate, rtol=1e-10)
    # γ = 0: fixed point m̄, variance σ²k/(c² − k²); γ = inf: nδ/c and σ²k/c².
    np.testing.assert_allclose(chains.mean_chain(n, lam, 0.0, 3.0, 1.0, 2.0), [3.0, 20 / 800])
    np.testing.assert_allclose(
        chains.mean_chain(n, lam, np.inf, 3.0, 1.0, 2.0), [1.0 + 40 / c, 20 / c**2]
    )
    # No synthetic data: μ_t = m̄ from generation 1 on, deterministically.
    np.testing.assert_allclose(chains.mean_chain(n, 0.01, 2.0, 3.0), [3.0, 0.0])


def test_mean_chain_broadcasts():
    lams = jnp.asarray([0.25, 0.5, 1.0])
    gammas = jnp.asarray([[0.0], [1.0], [np.inf]])
    fixed, var = chains.mean_chain(N_AUG, lams, gammas, REAL_MEAN)
    assert fixed.shape == var.shape == (3, 3)
    for i, g in enumerate([0.0, 1.0, np.inf]):
        for j, lam in enumerate([0.25, 0.5, 1.0]):
            np.testing.assert_allclose(
                [fixed[i, j], var[i, j]], chains.mean_chain(N_AUG, lam, g, REAL_MEAN), rtol=1e-14
            )
    mean, var = chains.mean_chain_moments(
        jnp.arange(4)[:, None], N_AUG, lams[None, :], 1.0, 3.0, 0.0
    )
    assert mean.shape == var.shape == (4, 3)


# ---------------------------------------------------------------------------------------
# replace

N_REP, R_REP, T_REP = 10, 12000, 30
REP_MU0, REP_VAR0 = 2.0, 3.0


@pytest.fixture(scope="module")
def replace_runs():
    return {
        gamma: tuple(
            np.asarray(a)
            for a in simulate_replace(chain_keys(100 + i, R_REP, T_REP), 1 / (1 + gamma), 2.0, 3.0)
        )
        for i, gamma in enumerate((0.0, 1.0))
    }


def test_replace_collapse_gamma_zero(replace_runs):
    """γ = 0, n = 10, 12000 chains, K_SE = 4: E σ², E e², E log σ², Var log σ²."""
    mu, var = replace_runs[0.0]
    for t in (1, 5):
        mean_mu, sq_err, mean_var = (
            float(v) for v in chains.replace_moments(t, N_REP, 0.0, REP_MU0, REP_VAR0)
        )
        r = (N_REP - 1) / N_REP
        np.testing.assert_allclose(mean_var, r**t * REP_VAR0, rtol=1e-13)
        np.testing.assert_allclose(sq_err, REP_MU0**2 + REP_VAR0 * (1 - r**t), rtol=1e-13)
        z_mean(var[:, t - 1], mean_var)
        z_mean((mu[:, t - 1] - MSTAR) ** 2, sq_err)
        z_mean(mu[:, t - 1], mean_mu)
    for t in (1, 5, T_REP):
        mean_log, var_log = (float(v) for v in chains.replace_log_variance(t, N_REP, REP_VAR0))
        logs = np.log(var[:, t - 1])
        z_mean(logs, mean_log)
        z_var(logs, var_log)
    # The median decays at the geometric rate, far below the mean's (n−1)/n.
    mean_rate, median_rate = (float(v) for v in chains.collapse_rates(N_REP))
    median = np.median(var[:, -1])
    assert median < REP_VAR0 * mean_rate**T_REP / 10
    # Per-generation log-slope of the median: within 0.01 of log(median rate) (the gap to
    # log((n−1)/n) is 0.12; the median's MC error is ~0.001 and its skew offset ~0.002).
    assert abs(np.log(median / REP_VAR0) / T_REP - np.log(median_rate)) < 0.01


def test_replace_log_variance_closed_form():
    for n in (2, 3, 10, 100):
        mean_log, var_log = chains.replace_log_variance(7, n, 2.0)
        nu = n - 1
        np.testing.assert_allclose(
            mean_log, np.log(2.0) + 7 * (scipy.special.digamma(nu / 2) + np.log(2 / n)), rtol=1e-12
        )
        np.testing.assert_allclose(var_log, 7 * scipy.special.polygamma(1, nu / 2), rtol=1e-12)
        # One step against the law of log(χ²_{n−1}/n) itself (SciPy quadrature).
        logs = scipy.stats.chi2(nu).expect(lambda x: np.log(x / n))
        np.testing.assert_allclose(chains.replace_log_variance(1, n)[0], logs, rtol=1e-7)
        mean_rate, median_rate = (float(v) for v in chains.collapse_rates(n))
        assert mean_rate == pytest.approx((n - 1) / n)
        assert median_rate == pytest.approx(np.exp(logs))
        assert median_rate < mean_rate  # Jensen


def test_replace_corrected_matches_monte_carlo(replace_runs):
    """γ = 1, n = 10, 12000 chains from (μ₀, σ₀²) = (2, 3), K_SE = 4; t = 1, 3, 30."""
    mu, var = replace_runs[1.0]
    for t in (1, 3, T_REP):
        mean_mu, sq_err, mean_var = (
            float(v) for v in chains.replace_moments(t, N_REP, 1.0, REP_MU0, REP_VAR0)
        )
        z_mean(mu[:, t - 1], mean_mu)
        z_mean((mu[:, t - 1] - MSTAR) ** 2, sq_err)
        z_mean(var[:, t - 1], mean_var)
    sq_err, mean_var = (float(v) for v in chains.replace_stationary(N_REP, 1.0))
    z_mean((mu[:, -1] - MSTAR) ** 2, sq_err)
    z_mean(var[:, -1], mean_var)
    with pytest.raises(AssertionError):  # power: the uncorrected collapse is rejected
        z_mean(var[:, -1], ((N_REP - 1) / N_REP) ** T_REP * REP_VAR0)


def test_replace_stationary_is_the_limit_and_closed_form_ends():
    for n, gamma in [(2, 0.1), (10, 1.0), (50, 7.0), (10, np.inf)]:
        stat = chains.replace_stationary(n, gamma, 2.5)
        far = chains.replace_moments(10**9, n, gamma, 4.0, 0.3, 1.0, 2.5)
        np.testing.assert_allclose(far[0], 1.0, atol=1e-12)
        np.testing.assert_allclose(far[1:], stat, rtol=1e-9)
    # γ = inf: n fresh draws of p_θ* every generation.
    np.testing.assert_allclose(chains.replace_stationary(10, np.inf, 2.0), [0.2, 1.8])
    np.testing.assert_allclose(
        chains.replace_moments(1, 10, np.inf, 5.0, 9.0, 0.0, 2.0), [0.0, 0.2, 1.8]
    )


# ---------------------------------------------------------------------------------------
# accumulate

R_ACC, T_ACC, ACC_LAM = R_AUG, T_AUG, 0.5  # same shapes: one compilation
ACC_GAMMAS = (0.0, 1.0, 5.0)


@pytest.fixture(scope="module")
def accumulate_runs():
    k = float(ops.n_synthetic(ACC_LAM, N_AUG))
    return {
        g: np.asarray(
            simulate_mean(chain_keys(200 + i, R_ACC, T_ACC), k, 1 / (1 + g), REAL_MEAN, MU0, 1.0)
        )
        for i, g in enumerate(ACC_GAMMAS)
    }


@pytest.mark.parametrize("gamma", ACC_GAMMAS)
def test_accumulate_matches_monte_carlo(accumulate_runs, gamma):
    """n = 20, k = 10, μ₀ = −1 ≠ m̄ = 3; 6000 chains; t = 1, 2, 5, 20; K_SE = 4."""
    runs = accumulate_runs[gamma]
    mean, var = chains.accumulate_moments(T_ACC, N_AUG, ACC_LAM, gamma, REAL_MEAN, MU0)
    assert mean.shape == var.shape == (T_ACC + 1,)
    assert float(mean[0]) == MU0 and float(var[0]) == 0.0
    for t in (1, 2, 5, T_ACC):
        z_mean(runs[:, t - 1], float(mean[t]))
        z_var(runs[:, t - 1], float(var[t]))


def test_accumulate_gamma_zero_closed_form():
    n, lam, k = 20, 0.5, 10
    mean, var = chains.accumulate_moments(50, n, lam, 0.0, 3.0, mu0=-1.0, sigma2=2.0)
    e1 = (n * 3.0 + k * -1.0) / (n + k)
    np.testing.assert_allclose(mean[1:], e1, rtol=1e-13)
    ref = 2.0 * np.cumsum([k / (n + j * k) ** 2 for j in range(1, 51)])
    np.testing.assert_allclose(var[1:], ref, rtol=1e-12)
    limit = 2.0 * scipy.special.polygamma(1, 1 + n / k) / k
    np.testing.assert_allclose(chains.accumulate_variance_limit(n, lam, 2.0), limit, rtol=1e-12)
    _, far = chains.accumulate_moments(20000, n, lam, 0.0, 3.0, sigma2=2.0)
    tail = 2.0 / (k * (20000 + n / k))  # Σ_{j>T} k/(n+jk)² ≈ 1/(k(T + n/k))
    np.testing.assert_allclose(float(far[-1]) + tail, limit, rtol=1e-6)
    assert float(chains.accumulate_variance_limit(n, 0.01)) == 0.0


def test_accumulate_corrected_forgets_the_real_offset_and_broadcasts():
    mean, _ = chains.accumulate_moments(
        5000, 20, jnp.asarray([0.5, 1.0]), jnp.asarray([[1.0], [5.0]]), 3.0
    )
    assert mean.shape == (5001, 2, 2)
    # E e_t ~ t^(q−1) → 0 for q < 1: the fitted mean drifts from m̄ = 3 towards m* = 0.
    assert np.all(np.asarray(mean[-1]) < 0.5)
    assert np.all(np.diff(np.asarray(mean[1:]), axis=0) < 0)
    one, _ = chains.accumulate_moments(5000, 20, 1.0, 5.0, 3.0)
    np.testing.assert_allclose(mean[:, 1, 1], one, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# full (μ, Σ) family: one-step mean deviation and τ_n(δ)

THETA = gauss.Gaussian(jnp.asarray([1.0, -0.5]), jnp.asarray([[1.5, 0.3], [0.3, 0.7]]))
DATA = gauss.Gaussian(jnp.asarray([0.2, 0.1]), jnp.asarray([[1.0, 0.2], [0.2, 0.8]]))
TARGET = gauss.standard(2)


DEV_N, DEV_LAM, DEV_GAMMA, DEV_REPS = 20, 0.33, 1.0, 20000
DEV_K = 6  # ⌊0.33 · 20⌋: the finite map's weight k/n = 0.3 differs from λ = 0.33


@jax.jit
def squared_mean_deviations(keys, mu_pop):
    """‖μ̂ − μ_pop‖² of one augment step from THETA, explicit sampling; keys (R,) → (R,)."""
    chol = [jnp.asarray(np.linalg.cholesky(np.asarray(g.cov))) for g in (DATA, THETA, TARGET)]

    def one(key):
        z = jax.random.normal(key, (DEV_N + 3 * DEV_K, 2), F64)
        x = DATA.mean[None, :] + z[:DEV_N] @ chol[0].T
        y = THETA.mean[None, :] + z[DEV_N : DEV_N + DEV_K] @ chol[1].T
        fresh = TARGET.mean[None, :] + z[DEV_N + DEV_K : DEV_N + 2 * DEV_K] @ chol[2].T
        keep = z[DEV_N + 2 * DEV_K :, 0] < ndtri(1 / (1 + DEV_GAMMA))
        y = jnp.where(keep[:, None], y, fresh)
        mu_hat = (jnp.sum(x, axis=0) + jnp.sum(y, axis=0)) / (DEV_N + DEV_K)
        return jnp.sum((mu_hat - mu_pop) ** 2)

    return jax.vmap(one)(keys)


@pytest.mark.parametrize("population_lam", [None, DEV_LAM, 1.0])
def test_mean_deviation_matches_monte_carlo(population_lam):
    """n = 20, λ = 0.33 (k = 6), γ = 1, data ≠ target ≠ θ; 20000 one-step draws; K_SE = 4.

    G^∞ at weight k/n (default), λ, and 1.0 (any weight: a large bias term).
    """
    assert int(ops.n_synthetic(DEV_LAM, DEV_N)) == DEV_K
    w = DEV_K / DEV_N if population_lam is None else population_lam
    mu_pop = gauss.population_map(THETA, w, DEV_GAMMA, DATA, TARGET).mean
    draws = squared_mean_deviations(jax.random.split(jax.random.key(7), DEV_REPS), mu_pop)
    exact = chains.mean_deviation(THETA, DEV_N, DEV_LAM, DEV_GAMMA, DATA, TARGET, population_lam)
    z_mean(draws, float(exact))
    if population_lam == 1.0:  # power: the unbiased (k/n) value is rejected
        with pytest.raises(AssertionError):
            z_mean(draws, float(chains.mean_deviation(THETA, DEV_N, DEV_LAM, DEV_GAMMA, DATA)))


def test_mean_deviation_bias_is_the_gap_between_population_maps():
    base = chains.mean_deviation(THETA, DEV_N, DEV_LAM, DEV_GAMMA, DATA, TARGET)
    for w in (0.0, DEV_LAM, 2.0):
        gap = (
            gauss.population_map(THETA, DEV_K / DEV_N, DEV_GAMMA, DATA, TARGET).mean
            - gauss.population_map(THETA, w, DEV_GAMMA, DATA, TARGET).mean
        )
        value = chains.mean_deviation(THETA, DEV_N, DEV_LAM, DEV_GAMMA, DATA, TARGET, w)
        np.testing.assert_allclose(value, base + gap @ gap, rtol=1e-12)
    # The gap is O((k/n − λ)²) ≤ 1/n²: here far below the variance term.
    assert float(chains.mean_deviation(THETA, DEV_N, DEV_LAM, DEV_GAMMA, DATA, TARGET, DEV_LAM)) < (
        1.01 * float(base)
    )


def test_mean_deviation_closed_form_at_theta_star():
    # θ = θ* = p_data: every point is N(0, I), so E‖μ̂ − 0‖² = d/(n + k) for every γ.
    for gamma in (0.0, 2.0, np.inf):
        value = chains.mean_deviation(TARGET, 20, 0.5, gamma, TARGET)
        np.testing.assert_allclose(value, 2 / 30, rtol=1e-14)


def test_tau_upper_coverage_on_exponential_draws():
    """Exp(1) draws, m = 200, δ = 0.1, confidence 0.9; 4000 repetitions; K_SE = 4."""
    m, delta, conf, reps = 200, 0.1, 0.9, 4000
    xi = -np.log(delta)  # the exact (1 − δ)-quantile
    draws = jax.random.exponential(jax.random.key(3), (reps, m), F64)
    bounds = np.asarray(jax.jit(jax.vmap(lambda x: chains.tau_upper(x, delta, conf)))(draws))
    # The chosen order statistic r: the smallest with P(Bin(m, 1−δ) ≤ r − 1) ≥ conf.
    ranks = np.argmax(np.sort(np.asarray(draws), axis=1) == bounds[:, None], axis=1)
    assert np.all(ranks == ranks[0])
    r = int(ranks[0]) + 1
    exact = scipy.stats.binom.cdf(r - 1, m, 1 - delta)
    assert exact >= conf > scipy.stats.binom.cdf(r - 2, m, 1 - delta)
    covered = bounds >= xi
    assert abs(covered.mean() - exact) <= K_SE * np.sqrt(exact * (1 - exact) / reps)
    # The plain empirical quantile does not have the coverage.
    naive = np.quantile(np.asarray(draws), 1 - delta, axis=1) >= xi
    assert naive.mean() < conf - K_SE * np.sqrt(conf * (1 - conf) / reps)


def test_tau_upper_small_samples_and_nan():
    x = jnp.asarray([0.3, 0.1, 0.2, 0.5, 0.4])
    assert float(chains.tau_upper(x, 0.1, 0.95)) == np.inf  # 1 − 0.9⁵ < 0.95
    assert float(chains.tau_upper(x, 0.5, 0.9)) == 0.5  # P(Bin(5, .5) ≤ 4) = 31/32
    assert float(chains.tau_upper(x, 0.5, 0.8)) == 0.4  # P(Bin(5, .5) ≤ 3) = 26/32
    with_nan = x.at[0].set(jnp.nan)
    assert float(chains.tau_upper(with_nan, 0.5, 0.9)) == np.inf


# ---------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: chains.mean_chain(0, 0.5, 1.0, 1.0), "n must"),
        (lambda: chains.mean_chain(10, -0.5, 1.0, 1.0), "lam must"),
        (lambda: chains.mean_chain(10, np.inf, 1.0, 1.0), "lam must"),
        (lambda: chains.mean_chain(10, 0.5, -1.0, 1.0), "gamma must"),
        (lambda: chains.mean_chain(10, 0.5, 1.0, np.nan), "real_mean must"),
        (lambda: chains.mean_chain(10, 0.5, 1.0, 1.0, sigma2=-1.0), "sigma2 must"),
        (lambda: chains.mean_chain_moments(-1, 10, 0.5, 1.0, 1.0, 0.0), "t must"),
        (lambda: chains.mean_chain_moments(1.5, 10, 0.5, 1.0, 1.0, 0.0), "t must"),
        (lambda: chains.mean_chain_moments(2, 10, 0.5, 1.0, 1.0, np.inf), "mu0 must"),
        (lambda: chains.replace_moments(2, 0, 1.0, 0.0, 1.0), "n must"),
        (lambda: chains.replace_moments(2, 5, 1.0, 0.0, -1.0), "var0 must"),
        (lambda: chains.replace_moments(2, 5, 1.0, 0.0, 1.0, target_var=-2.0), "target_var"),
        (lambda: chains.replace_stationary(5, 0.0), "gamma must"),
        (lambda: chains.replace_log_variance(3, 1), "n must"),
        (lambda: chains.replace_log_variance(3, 5, 0.0), "var0 must"),
        (lambda: chains.collapse_rates(1), "n must"),
        (lambda: chains.accumulate_moments(-2, 10, 0.5, 1.0, 1.0), "generations must"),
        (lambda: chains.accumulate_moments(5, 10, 0.5, -1.0, 1.0), "gamma must"),
        (lambda: chains.accumulate_variance_limit(10, -1.0), "lam must"),
        (lambda: chains.mean_deviation(THETA, 0, 0.5, 1.0, DATA), "n must"),
        (lambda: chains.mean_deviation(THETA, 5, 0.5, 1.0, DATA, population_lam=-1), "population"),
        (
            lambda: chains.mean_deviation(
                gauss.Gaussian(THETA.mean, -THETA.cov), 5, 0.5, 1.0, DATA
            ),
            "theta.cov",
        ),
        (lambda: chains.tau_upper(jnp.ones(10), 0.0), "delta must"),
        (lambda: chains.tau_upper(jnp.ones(10), 0.1, 1.0), "confidence must"),
        (lambda: chains.tau_upper(jnp.ones((2, 3)), 0.1), "deviations must"),
        (lambda: chains.tau_upper(jnp.ones(0), 0.1), "deviations must"),
    ],
)
def test_bad_input_raises_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
