"""The Gaussian loop with imperfect correction, the ``fresh`` control and misspecified data,
against the exact chains of ``theory.chains`` and the fixed points of ``theory.imperfect``.

Monte-Carlo: independent seeds of ``sims.gaussian.loop.simulate`` (vmap), the mean over seeds
within K_SE = 4 estimated standard errors of the exact value; fixed seeds; each law test
also rejects a planted wrong law. A biased π_γ is the loop's ideal corrector pointed at
p_c ≠ p_θ* (``target`` = p_c); ``final`` (θ_T) is compared, not the loop's metrics, which
are relative to ``target``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.gaussian import loop, misspecified
from theory import bounds, chains, constants
from theory import gaussian as gauss
from theory import imperfect as imp
from theory import operators as ops

K_SE = 4.0


def z_mean(samples, exact, k=K_SE):
    x = np.asarray(samples, float)
    z = (x.mean() - float(exact)) / (x.std(ddof=1) / np.sqrt(x.size))
    assert abs(z) <= k, f"mean {x.mean():.6g} vs exact {float(exact):.6g} (z = {z:.2f})"
    return z


N, LAM, T, SEEDS = 10, 0.5, 15, 6000  # k = 5
REAL = np.asarray(jax.random.normal(jax.random.key(5), (N, 1))) * 0.9 + 0.2
REAL_STATS = (float(REAL.mean()), float(REAL.var()))


def final_moments(spec, gamma, target, seed):
    keys = jax.random.split(jax.random.key(seed), SEEDS)
    run = jax.jit(jax.vmap(lambda k: loop.simulate(spec, k, jnp.asarray(REAL), LAM, gamma, target)))
    final = run(keys).final
    mu = np.asarray(final.mean[:, 0])
    return mu, mu**2, np.asarray(final.cov[:, 0, 0])


def test_fresh_workflow_matches_the_exact_chain():
    """``fresh`` at γ = 1: k = 5 uncorrected + m = 2 fresh points of p_data = N(0, 1);
    6000 seeds, T = 15; E μ_T, E μ_T², E σ_T² within K_SE; wrong: no fresh points."""
    gamma = 1.0
    m = int(imp.fresh_count(LAM, gamma, N))
    assert m == 2
    spec = loop.LoopSpec("fresh", "ideal", T, N, 5)
    runs = final_moments(spec, gamma, gauss.standard(1), 1)
    exact = chains.augment_moments(T, N, LAM, 0.0, real=REAL_STATS, n_fresh=m)
    for got, want in zip(runs, exact, strict=True):
        z_mean(got, want)
    wrong = chains.augment_moments(T, N, LAM, 0.0, real=REAL_STATS)
    with pytest.raises(AssertionError):
        for got, want in zip(runs, wrong, strict=True):
            z_mean(got, want)


def test_biased_correction_in_the_loop_matches_the_exact_chain():
    """The loop's π_γ toward p_c = N(0.8, 2) (mean and variance offsets), γ = 2; wrong: the
    chain of the ideal π_γ toward p_θ* = N(0, 1)."""
    spec = loop.LoopSpec("augment", "ideal", T, N, 5)
    p_c = gauss.Gaussian(jnp.asarray([0.8]), jnp.asarray([[2.0]]))
    runs = final_moments(spec, 2.0, p_c, 2)
    exact = chains.augment_moments(T, N, LAM, 2.0, real=REAL_STATS, center=0.8, replace_var=2.0)
    for got, want in zip(runs, exact, strict=True):
        z_mean(got, want)
    wrong = chains.augment_moments(T, N, LAM, 2.0, real=REAL_STATS)
    with pytest.raises(AssertionError):
        for got, want in zip(runs, wrong, strict=True):
            z_mean(got, want)


def test_biased_fixed_point_in_two_dimensions():
    """n = 2000, λ = 0.5, γ = 3, p_c with mean and covariance offsets; 48 seeds (each its own
    real set), T = 12 (rate 1/12); θ_T within K_SE of the population fixed point (the finite-n
    bias O(1/n) is ~0.1 SE); wrong: θ* = N(0, I), the ideal π_γ's fixed point."""
    n, k, seeds = 2000, 1000, 48
    p_c = gauss.Gaussian(jnp.asarray([0.6, -0.4]), jnp.asarray([[1.8, 0.4], [0.4, 0.7]]))
    data = gauss.standard(2)
    spec = loop.LoopSpec("augment", "ideal", 12, n, k)
    reals = jax.random.normal(jax.random.key(7), (seeds, n, 2))
    keys = jax.random.split(jax.random.key(8), seeds)
    run = jax.jit(jax.vmap(lambda key, real: loop.simulate(spec, key, real, 0.5, 3.0, p_c)))
    final = run(keys, reals).final
    fixed = imp.affine_fixed_point(0.5, 3.0, data, ops.Affine.biased(p_c))
    rows = [final.mean[:, 0], final.mean[:, 1], final.cov[:, 0, 0], final.cov[:, 0, 1]]
    rows.append(final.cov[:, 1, 1])
    want = [fixed.mean[0], fixed.mean[1], fixed.cov[0, 0], fixed.cov[0, 1], fixed.cov[1, 1]]
    for got, w in zip(rows, want, strict=True):
        z_mean(got, w)
    with pytest.raises(AssertionError):
        for got, w in zip(rows, [0.0, 0.0, 1.0, 0.0, 1.0], strict=True):
            z_mean(got, w)


def test_misspecified_points_stable_beyond_the_theorem():
    """Smoke grid (λ ∈ {0.25, 2}, γ = 1, 64 seeds, T = 15) on both bounded laws: κ is the
    worked example's; the simulated one-step rate and the stationary E e², E σ² agree with
    the exact chain (which holds for non-Gaussian data) within K_SE; at λ = 2 the theorem
    gives no guarantee (λ > λ*(γ, κ)) yet every run is stable at rate λ/((1+λ)(1+γ))."""
    rows = misspecified.points(misspecified.MisspecifiedConfig.smoke())
    assert len(rows) == 4
    for r in rows:
        ex = constants.gaussian_on_bounded_data(r["kind"])
        assert r["kappa"] == pytest.approx(ex.kappa) and r["kappa"] > 0.5
        assert r["lam_star"] == pytest.approx(float(bounds.threshold(1.0, ex.kappa)))
        assert r["sim_stable"]
        for key in ("sim_rate_z", "sq_err_z", "var_z"):
            assert abs(r[key]) <= K_SE, (r["kind"], r["lam"], key, r[key])
        k = int(ops.n_synthetic(r["lam"], 50))  # λ = 0.25: k = 12, so 6/62, not λ/((1+λ)·2)
        assert r["exact_rate"] == pytest.approx(k / 2 / (50 + k))
        if r["lam"] == 2.0:  # λn integer: Lemma A.7's λ/((1+λ)(1+γ)) exactly
            assert r["exact_rate"] == pytest.approx(2.0 / 6.0)
            assert not r["theorem_stable"] and np.isinf(r["theorem_rate"])
        else:
            assert r["theorem_stable"] and r["theorem_rate"] > r["exact_rate"]
    with pytest.raises(ValueError, match="kinds must"):
        misspecified.MisspecifiedConfig(kinds=("normal",))


def test_findings_tables_are_consistent():
    """The findings script's tables (closed forms): the break-even bias is where the biased
    corrector's MSE meets the reference, zero where the reference wins already at b = 0;
    γ_opt turns finite at the reported onset."""
    from sims.gaussian import imperfect as findings_mod

    f = findings_mod.findings(10, 1.0)
    se = 1 / np.sqrt(10)
    for r in f["by_gamma"]:
        if r["mse_fresh"] <= r["mse_ideal"]:
            assert r["break_even_vs_fresh"] == 0.0
        else:
            b = r["break_even_vs_fresh"] * se
            assert float(imp.stationary_mse(10, 1.0, r["gamma"], b)) == pytest.approx(
                r["mse_fresh"], rel=1e-9
            )
        assert r["break_even_vs_none"] >= r["break_even_vs_fresh"]  # = when m = 0
    onset = f["onset_bias_se"] * se
    assert np.isinf(float(imp.mse_optimal_gamma(10, 1.0, 0.99 * onset)[0]))
    assert np.isfinite(float(imp.mse_optimal_gamma(10, 1.0, 1.01 * onset)[0]))
    # Shrinking toward m* lowers the mean's MSE but contracts the population variance.
    shrink = f["shrinking_gamma1"]
    assert all(a["fixed_var"] > b["fixed_var"] for a, b in itertools.pairwise(shrink))
    assert all(a["mse_mean"] > b["mse_mean"] for a, b in itertools.pairwise(shrink))
