"""sims.gaussian.sweep and its engines: exact rates and drifts, summaries kept in the scan vs
summaries of full traces, the d = 2 closed forms vs the dense path, other d, sharding.

Monte-Carlo comparisons use k = 4 standard errors (two-sample, estimated from the runs); the
law of the tables engine against the loop and the stats engine is in ``test_sweep_law.py``.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.gaussian import engine, sweep
from theory import chains

K_SE = 4.0


def _keys(seed, num):
    return jax.random.split(jax.random.key(seed), num)


def _as_run_trace(tr: engine.Traces, c: int) -> sweep.RunTrace:
    return sweep.RunTrace(tr.mu[c], tr.w2[c], tr.err[c], tr.min_eig[c], tr.log_det[c], tr.finite[c])


CELL_CASES = {
    # workflow, n, λ values, γ values. Accumulate carries its base group; replace with n = 5
    # and γ = 0 collapses (collapse generations and the healthy-seed mask are exercised).
    # Augment's summaries are checked through the phase-diagram tests and rates below.
    "accumulate": ("accumulate", 20, [0.0, 0.5, 2.0], [0.0, 0.3, np.inf]),
    "replace": ("replace", 5, [1.0], [0.0, 0.1, 1.0]),
}


@pytest.mark.heavy
@pytest.mark.parametrize("case", CELL_CASES)
def test_summaries_in_the_scan_equal_summaries_of_the_traces(case, float64):
    """``grid`` keeps only running sums; ``summarize`` of the same runs' full traces (the
    stats engine's summaries) must give the same CellStats up to rounding."""
    workflow, n, lams, gammas = CELL_CASES[case]
    spec = sweep.StatsSpec(workflow, generations=30, n_real=n, k_max=2 * n, displacement=2.0)
    keys = _keys(7, 16)
    stats = sweep.grid(spec, keys, lams, gammas)
    ll, gg = np.meshgrid(lams, gammas, indexing="ij")
    tr = engine.traces(spec, keys, jnp.asarray(ll.ravel()), jnp.asarray(gg.ravel()))
    for c, (i, j) in enumerate(np.ndindex(ll.shape)):
        ref = sweep.summarize(spec, _as_run_trace(tr, c))
        for f in dataclasses.fields(ref):
            a, b = np.asarray(getattr(stats, f.name)[i, j]), np.asarray(getattr(ref, f.name))
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10, err_msg=f"{case} {f.name}")
    if workflow == "replace":
        assert stats.collapsed_frac[0, 0] > 0.5 and stats.collapsed_at[0, 0] > 0


@pytest.mark.heavy
def test_two_by_two_closed_forms_equal_the_dense_path(float64):
    """Same tables: the d = 2 three-array path and the [..., d, d] path give the same runs
    (accumulate: every group of the merge, including the carried base)."""
    spec = sweep.StatsSpec("accumulate", generations=15, n_real=10, k_max=20, displacement=1.0)
    keys = _keys(5, 8)
    layout = engine.layout_for(spec)
    lams, gammas = jnp.asarray([0.3, 1.0, 2.0]), jnp.asarray([0.0, 0.5, 4.0])

    @partial(jax.jit, static_argnames=("dense",))
    def runs(dense):
        tabs, real = engine.tables(layout, keys, spec.generations, spec.n_real, jnp.float64)
        alg = engine._Dense if dense else None
        return engine._simulate(spec, layout, tabs, real, lams, gammas, trace=True, alg=alg)

    (fast, _, _), (dense, _, _) = runs(False), runs(True)
    for name in ("w2", "err", "min_eig", "log_det"):
        np.testing.assert_allclose(
            getattr(fast, name), getattr(dense, name), rtol=1e-9, atol=1e-12, err_msg=name
        )
    for a, b in zip(fast.mu, dense.mu, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dim", [1, 3])
def test_other_dimensions_follow_the_exact_replace_chain(dim):
    """d ≠ 2 runs the dense path. Replace, exactly: E log det Σ_T − log det Σ_0 =
    T·(Σ_i ψ((n−1−i)/2) + d·log(2/n)) at γ = 0, and E μ_T = (1+γ)^(−T)·μ_0 displacement
    (each point kept with probability 1/(1+γ), replacements centred at 0); k = 4 SE."""
    n_gen, n, runs = 6, 12, 4000
    spec = sweep.StatsSpec(
        "replace", generations=n_gen, n_real=n, dim=dim, k_max=n, displacement=2.0
    )
    tr = engine.traces(spec, _keys(8, runs), jnp.ones(2), jnp.asarray([0.0, 1.0]))
    change = np.asarray(tr.log_det[0, :, -1] - tr.log_det[0, :, 0])
    exact = n_gen * float(chains.replace_log_det_drift(n, dim))
    assert abs(change.mean() - exact) <= K_SE * change.std() / np.sqrt(runs), (change.mean(), exact)
    for c, gamma in enumerate((0.0, 1.0)):
        mu = np.asarray(tr.mu[c, :, -1, 0])
        assert abs(mu.mean() - 2.0 / (1 + gamma) ** n_gen) <= K_SE * mu.std() / np.sqrt(runs)
    assert np.all(np.isfinite(np.asarray(tr.w2)))


@pytest.mark.heavy
def test_mixed_workflows_equal_one_workflow_at_a_time(float64):
    """Workflows as data (one compilation, base carried for every cell) vs the step
    specialised to each workflow: the same runs up to rounding."""
    spec = sweep.StatsSpec("augment", generations=20, n_real=10, k_max=20, displacement=1.0)
    keys, lams, gammas = _keys(2, 6), [0.5, 2.0], [0.0, 1.0]
    mixed = sweep.grid(spec, keys, lams, gammas, workflows=sweep.SWEEP_WORKFLOWS)
    for i, workflow in enumerate(sweep.SWEEP_WORKFLOWS):
        one = sweep.grid(dataclasses.replace(spec, workflow=workflow), keys, lams, gammas)
        for f in dataclasses.fields(one):
            np.testing.assert_allclose(
                getattr(mixed, f.name)[i],
                getattr(one, f.name),
                rtol=1e-9,
                atol=1e-12,
                err_msg=(workflow, f.name),
            )


@pytest.mark.parametrize("seeds", [1, 2, 3, 5, 32, 33, 64, 65])
def test_seed_median_equals_jnp_median(seeds, float64):
    x = np.random.default_rng(seeds).normal(size=(seeds, 7))
    x[:, 1] = np.inf
    x[0, 2] = np.nan
    x[:, 3] = 1.0  # ties
    got = np.asarray(jax.jit(engine.seed_median)(jnp.asarray(x)))
    np.testing.assert_allclose(got, np.asarray(jnp.median(jnp.asarray(x), axis=0)), rtol=1e-15)


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
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    with pytest.raises(ValueError, match="k_max"):
        sweep.grid(spec, keys, [1.0], [0.0])
    with pytest.raises(ValueError, match="gammas"):
        sweep.grid(spec, keys, [0.1], [-1.0])
    with pytest.raises(ValueError, match="seed keys"):
        sweep.grid(spec, keys[:1], [0.1], [0.0])
    with pytest.raises(ValueError, match="workflow"):
        sweep.StatsSpec("toy")
    with pytest.raises(ValueError, match="engine"):
        sweep.StatsSpec(engine="fast")
    with pytest.raises(ValueError, match="generations"):
        sweep.StatsSpec(generations=2)


@pytest.mark.heavy
def test_stats_engine_fills_the_same_fields_over_workflows(small_grid):
    """The previous engine (workflow as data) returns the same CellStats shapes, per
    workflow; the tables engine's workflow grid is exercised by the workflows figure test."""
    spec = sweep.StatsSpec("augment", generations=60, n_real=50, k_max=100, engine="stats")
    keys = _keys(4, 4)
    out = sweep.grid(spec, keys, [0.5, 1.0, 2.0], [0.0, 1.0], workflows=sweep.SWEEP_WORKFLOWS)
    tables = jax.tree.map(lambda a: (3, *np.shape(a)), small_grid[2])
    assert jax.tree.map(np.shape, out) == tables
    assert np.all(np.isfinite(out.w2_median)) and np.all(out.diverged_frac == 0)


_SHARDING_SCRIPT = textwrap.dedent(
    """
    import dataclasses
    import jax, jax.numpy as jnp, numpy as np
    from sims.gaussian import sweep
    assert len(jax.devices()) == 8, jax.devices()
    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    lams, gammas = np.linspace(0, 2, 5), np.array([0.0, 0.1, 1.0])
    spec = sweep.StatsSpec("augment", generations=30, n_real=20, k_max=40)
    one = sweep.grid(spec, keys, lams, gammas, batch_size=2, devices=jax.devices()[:1])
    many = sweep.grid(spec, keys, lams, gammas, batch_size=2)
    for f in dataclasses.fields(one):
        a, b = getattr(one, f.name), getattr(many, f.name)
        assert np.array_equal(a, b, equal_nan=True), f.name
    print("identical")
    """
)


@pytest.mark.heavy  # a subprocess compiling for 8 host devices: ~1 min
def test_sharded_over_8_devices_equals_one_device():
    """Same keys per cell ⇒ bit-identical results on 1 and on 8 forced host devices (the
    tables engine; both engines share the sharding code)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run(
        [sys.executable, "-c", _SHARDING_SCRIPT], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "identical" in done.stdout
