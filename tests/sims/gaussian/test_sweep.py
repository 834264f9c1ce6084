"""sims.gaussian.sweep: the sufficient-statistic loop vs explicit sampling, exact rates, sharding.

Monte-Carlo comparisons use k = 4 standard errors (two-sample, estimated from the runs).
"""

import os
import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.gaussian import loop, sweep
from theory import chains
from theory import gaussian as gauss

K_SE = 4.0
RUNS = 400
T = 12


def _keys(seed, num):
    return jax.random.split(jax.random.key(seed), num)


@pytest.fixture(scope="module")
def stats_runs():
    """RUNS runs per workflow of the sufficient-statistic loop (λ = 0.5, γ = 0.5, n = 20)."""
    spec = sweep.StatsSpec(generations=T, n_real=20, k_max=10, displacement=1.5)
    run = jax.jit(jax.vmap(partial(sweep.run, spec), in_axes=(0, None, None, None)))
    out = {w: run(_keys(1, RUNS), 0.5, 0.5, i) for i, w in enumerate(sweep.WORKFLOWS)}
    out["replace, γ = 0"] = run(_keys(3, RUNS), 0.5, 0.0, sweep.WORKFLOWS.index("replace"))
    return out


def test_replace_log_det_drift_is_exact(stats_runs):
    """Uncorrected replace: E log det Σ_T − log det Σ_0 = T·Σ_i ψ((n−1−i)/2) + T·d·log(2/n)."""
    runs = stats_runs["replace, γ = 0"]
    change = np.asarray(runs.log_det[:, -1] - runs.log_det[:, 0])
    exact = T * float(chains.replace_log_det_drift(20, 2))
    se = change.std(ddof=1) / np.sqrt(change.size)
    assert abs(change.mean() - exact) <= K_SE * se, (change.mean(), exact, se)


@pytest.fixture(scope="module")
def explicit_runs():
    """The same loops drawn point by point with ``sims.gaussian.loop`` and the ideal corrector."""
    out = {}
    target = gauss.standard(2)
    for workflow in sweep.WORKFLOWS:
        k_max = 20 if workflow == "replace" else 10
        spec = loop.LoopSpec(workflow, "ideal", generations=T, n_real=20, k_max=k_max)

        def one(key, spec=spec):
            real = gauss.sample(jax.random.fold_in(key, 0), target, 20)
            fit = gauss.fit(real)
            theta0 = gauss.Gaussian(fit.mean.at[0].add(1.5), fit.cov)
            sim = partial(loop.simulate, spec, theta0=theta0)
            tr = sim(jax.random.fold_in(key, 1), real, 0.5, 0.5, target)
            return tr.w2, tr.final

        out[workflow] = jax.jit(jax.vmap(one))(_keys(2, RUNS))
    return out


@pytest.mark.parametrize("workflow", sweep.WORKFLOWS)
def test_statistics_loop_has_the_law_of_explicit_sampling(workflow, stats_runs, explicit_runs):
    fast, (w2_slow, final_slow) = stats_runs[workflow], explicit_runs[workflow]
    pairs = {
        "w2 at t=1": (fast.w2[:, 1], w2_slow[:, 1]),
        "w2 at t=4": (fast.w2[:, 4], w2_slow[:, 4]),
        f"w2 at t={T}": (fast.w2[:, -1], w2_slow[:, -1]),
        "final mean_0": (fast.mu[:, -1, 0], final_slow.mean[:, 0]),
        "final λ_min(Σ)": (fast.min_eig[:, -1], jax.vmap(sweep._min_eig)(final_slow.cov)),
    }
    for name, (a, b) in pairs.items():
        a, b = np.asarray(a), np.asarray(b)
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) <= K_SE * se, (workflow, name, a.mean(), b.mean(), se)


@pytest.fixture(scope="module")
def small_grid():
    spec = sweep.StatsSpec("augment", generations=60, n_real=50, k_max=100, displacement=5.0)
    keys = jax.vmap(jax.random.key)(jnp.arange(64))
    lams, gammas = np.array([0.5, 1.0, 2.0]), np.array([0.0, 1.0])
    return lams, gammas, sweep.grid(spec, keys, lams, gammas, batch_size=2)


def test_measured_rates_match_the_exact_contraction(small_grid):
    """Mean chain: E[μ_{t+1} − μ∞] = a(μ_t − μ∞), a = k/((n+k)(1+γ)) exactly (augment)."""
    lams, gammas, stats = small_grid
    k = np.floor(lams * 50 + 1e-6)
    exact = k[:, None] / ((50 + k[:, None]) * (1 + gammas[None, :]))
    assert np.all(stats.rate_points >= 3)
    # Regression over a few noisy leading points, 64 seeds: a few per cent.
    np.testing.assert_allclose(stats.rate_transient, exact, rtol=0.08)
    # Lag-1 autocorrelation over 30 pairs × 64 seeds × 2 coordinates: SE about 0.02.
    np.testing.assert_allclose(stats.rate_autocorr, exact, atol=0.05)
    assert np.all(stats.diverged_frac == 0) and np.all(stats.collapsed_frac == 0)


def test_grid_shapes_and_validation(small_grid):
    _, _, stats = small_grid
    assert stats.w2_mean.shape == (3, 2, 61)
    assert stats.rate_transient.shape == (3, 2)
    spec = sweep.StatsSpec("augment", generations=10, n_real=50, k_max=10)
    with pytest.raises(ValueError, match="k_max"):
        sweep.grid(spec, jax.vmap(jax.random.key)(jnp.arange(2)), [1.0], [0.0])
    with pytest.raises(ValueError, match="workflow"):
        sweep.StatsSpec("toy")
    with pytest.raises(ValueError, match="generations"):
        sweep.StatsSpec(generations=2)


_SHARDING_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from sims.gaussian import sweep
    assert len(jax.devices()) == 8, jax.devices()
    spec = sweep.StatsSpec("augment", generations=30, n_real=20, k_max=40)
    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    lams, gammas = np.linspace(0, 2, 5), np.array([0.0, 0.1, 1.0])
    one = sweep.grid(spec, keys, lams, gammas, batch_size=2, devices=jax.devices()[:1])
    many = sweep.grid(spec, keys, lams, gammas, batch_size=2)
    for name in ("w2_mean", "transient", "rate_autocorr", "stationary_w2_median"):
        a, b = getattr(one, name), getattr(many, name)
        assert np.array_equal(a, b, equal_nan=True), (name, np.nanmax(np.abs(a - b)))
    print("identical")
    """
)


@pytest.mark.heavy  # a subprocess compiling for 8 host devices: ~1 min
def test_sharded_over_8_devices_equals_one_device():
    """Same keys per cell ⇒ bit-identical results on 1 and on 8 forced host devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run(
        [sys.executable, "-c", _SHARDING_SCRIPT], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "identical" in done.stdout
