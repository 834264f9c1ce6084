"""The tables engine with a per-cell affine corrector (``engine.imperfect_batch``) against the
exact 1-D chain and the point-by-point loop, and the imperfect maps.

Coordinate 0 of the 2-D loop with p_data = N(0, I) and a coordinate-wise corrector is the
1-D loop of ``theory.chains.augment_moments``, so the stationary window's moments are exact.
Z-tests: |mean − exact| < K_SE standard errors (SE over seeds), K_SE = 4 for each of the
few dozen comparisons; each test also runs on a planted wrong law (χ² with one degree of
freedom too many in the Bartlett factor, or a wrong corrector parameter) and must fail.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.gaussian import engine, imperfect_maps, loop
from sims.gaussian.cellstats import StatsSpec
from theory import chains, imperfect
from theory import gaussian as gauss
from theory import operators as ops

K_SE = 4.0
N, LAM, T = 10, 0.5, 40
SEEDS = 3000
SPEC = StatsSpec("augment", generations=T, n_real=N, dim=2, k_max=5, displacement=0.0)

# (name, γ, centre c₀·e₁, shrink, Σ₂, σ₁²): a biased π_γ with mean and covariance offsets, a
# shrinking corrector toward an offset centre, a noisy one, the ideal one.
CELLS = (
    ("biased", 2.0, 0.8, 0.0, [[2.0, 0.3], [0.3, 1.0]], 0.0),
    ("shrinking", 1.0, 0.5, 0.5, [[0.0, 0.0], [0.0, 0.0]], 0.0),
    ("noisy", 1.0, 0.0, 0.0, [[1.5, 0.0], [0.0, 1.5]], 0.5),
    ("ideal", 3.0, 0.0, 0.0, [[1.0, 0.0], [0.0, 1.0]], 0.0),
)


def _corr(cells=CELLS) -> ops.Affine:
    return ops.Affine(
        jnp.asarray([[c[2], 0.0] for c in cells]),
        jnp.asarray([c[3] for c in cells]),
        jnp.asarray([c[4] for c in cells]),
        jnp.asarray([c[5] for c in cells]),
    )


def _exact_window(cell, **override):
    _, gamma, c, s, cov, v1 = cell
    kw = {"center": c, "shrink": s, "replace_var": cov[0][0], "noise_var": v1, **override}
    ts = jnp.arange(SPEC.start, T + 1)
    return [float(jnp.mean(m)) for m in chains.augment_moments(ts, N, LAM, gamma, **kw)]


@pytest.fixture(scope="module")
def moments():
    """Engine moments per df_offset (0: the law; 1: the planted wrong χ²)."""
    keys = jax.random.split(jax.random.key(7), SEEDS)
    lams = jnp.full(len(CELLS), LAM)
    gammas = jnp.asarray([c[1] for c in CELLS])
    run = jax.jit(engine.imperfect_batch, static_argnums=(0, 1))
    out = {}
    for df_offset in (0, 1):
        layout = engine.layout_for(SPEC, df_offset)
        tabs, real = engine.tables(layout, keys, T, N, jnp.float32)
        out[df_offset] = jax.tree.map(
            np.asarray, run(SPEC, layout, tabs, real, lams, gammas, _corr())[1]
        )
    return out


def _z(mo: engine.Moments, i: int, exact) -> np.ndarray:
    got = np.asarray([mo.mean[i], mo.msq[i], mo.var[i]])
    se = np.asarray([mo.mean_se[i], mo.msq_se[i], mo.var_se[i]])
    return (got - np.asarray(exact)) / se


@pytest.mark.parametrize("i", range(len(CELLS)), ids=[c[0] for c in CELLS])
def test_stationary_moments_match_the_exact_chain(moments, i):
    """E μ₀, E μ₀², E Σ₀₀ over t = 20..40 within K_SE of ``augment_moments`` (3000 seeds)."""
    z = _z(moments[0], i, _exact_window(CELLS[i]))
    assert np.all(np.abs(z) < K_SE), z


def test_planted_wrong_laws_fail(moments):
    """χ² with one extra degree of freedom (every cell), and a wrong corrector parameter
    (theory with another shrink / noise / centre), are rejected by the same z-test."""
    for i, cell in enumerate(CELLS):
        z = _z(moments[1], i, _exact_window(cell))
        assert np.any(np.abs(z) >= K_SE), (cell[0], z)
    for i, override in ((0, {"center": 0.6}), (1, {"shrink": 0.0}), (2, {"noise_var": 0.0})):
        z = _z(moments[0], i, _exact_window(CELLS[i], **override))
        assert np.any(np.abs(z) >= K_SE), (CELLS[i][0], z)


@pytest.mark.heavy
def test_ideal_affine_is_the_ideal_engine_and_algebras_agree():
    """``Affine.ideal`` per cell gives ``batch``'s numbers (same tables), and the dense algebra
    the d = 2 closed forms, with a biased/shrinking corrector."""
    spec = StatsSpec("augment", generations=12, n_real=8, dim=2, k_max=8, displacement=2.0)
    keys = jax.random.split(jax.random.key(1), 6)
    layout = engine.layout_for(spec)
    tabs, real = engine.tables(layout, keys, spec.generations, spec.n_real, jnp.float32)
    lams, gammas = jnp.asarray([0.5, 1.0]), jnp.asarray([1.0, 0.3])
    ideal = ops.Affine.ideal(gauss.standard(2))
    corr = jax.tree.map(lambda a: jnp.stack([a, a]), ideal)
    plain = jax.jit(engine.batch, static_argnums=(0, 1))(spec, layout, tabs, real, lams, gammas)
    with_corr, _ = jax.jit(engine.imperfect_batch, static_argnums=(0, 1))(
        spec, layout, tabs, real, lams, gammas, corr
    )
    np.testing.assert_allclose(with_corr.w2_mean, plain.w2_mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(with_corr.transient, plain.transient, rtol=1e-4, atol=1e-5)
    cells = (CELLS[0], CELLS[1])
    corr = _corr(cells)
    sim = jax.jit(
        lambda alg: engine._simulate(
            spec, layout, tabs, real, lams, gammas, trace=True, corr=corr, alg=alg
        )[0],
        static_argnums=0,
    )
    two, dense = sim(engine._Two), sim(engine._Dense)
    np.testing.assert_allclose(two.w2, dense.w2, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(two.mu[0], dense.mu[0], rtol=2e-4, atol=2e-5)


def test_engine_matches_the_point_by_point_loop():
    """The biased π_γ toward p_c = N((0.8, 0), [[2, .3], [.3, 1]]), γ = 2, n = 10, λ = 0.5,
    T = 8: μ₀_T, μ₀_T² and W2(θ_T, N(0, I)) of the engine and of ``sims.gaussian.loop``
    (4000 runs each, independent) agree by two-sample z-tests within K_SE; a planted wrong
    centre (0.5) in the engine is rejected."""
    t_gen, runs = 8, 4000
    spec = StatsSpec("augment", generations=t_gen, n_real=N, dim=2, k_max=5, displacement=0.0)
    cell = CELLS[0]
    p_c = gauss.Gaussian(jnp.asarray([cell[2], 0.0]), jnp.asarray(cell[4]))
    lspec = loop.LoopSpec("augment", "ideal", t_gen, N, 5)
    keys = jax.random.split(jax.random.key(11), runs)

    def one(key):
        real = jax.random.normal(jax.random.fold_in(key, 99), (N, 2))
        final = loop.simulate(lspec, key, real, LAM, cell[1], p_c).final
        return final.mean[0], gauss.w2(final, gauss.standard(2))

    mu_l, w2_l = map(np.asarray, jax.jit(jax.vmap(one))(keys))
    loop_stats = [mu_l, mu_l**2, w2_l]

    def engine_stats(center):
        corr = _corr(((*cell[:2], center, *cell[3:]),))
        tr = engine.traces(
            spec,
            jax.random.split(jax.random.key(12), runs),
            jnp.asarray([LAM]),
            jnp.asarray([cell[1]]),
            corr=corr,
        )
        mu = np.asarray(tr.mu[0, :, -1, 0])
        return [mu, mu**2, np.asarray(tr.w2[0, :, -1])]

    def z(a, b):
        return (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)

    good = [z(a, b) for a, b in zip(engine_stats(cell[2]), loop_stats, strict=True)]
    assert np.all(np.abs(good) < K_SE), good
    bad = [z(a, b) for a, b in zip(engine_stats(0.5), loop_stats, strict=True)]
    assert np.any(np.abs(bad) >= K_SE), bad


@pytest.mark.heavy
def test_maps_smoke_shapes_and_theory_consistency():
    """A tiny map run: shapes, finite theory, theory e² at γ = 0 is the same for every bias."""
    cfg = imperfect_maps.MapsConfig.smoke()
    maps = imperfect_maps.run_maps(cfg)
    gb = maps["gamma_bias"]
    assert gb["sim_e2"].shape == (cfg.n_bias, cfg.n_gamma)
    np.testing.assert_allclose(gb["theory_e2"][:, 0], gb["theory_e2"][0, 0], rtol=1e-6)
    assert maps["lam_bias"]["sim_e2"].shape == (cfg.n_lam, cfg.n_bias)
    assert maps["replace"]["sim_collapsed"].shape == (cfg.n_shrink, cfg.n_gamma)
    assert np.all(np.isfinite(gb["theory_gamma_opt"]))


def test_maps_config_rejects_bad_values():
    with pytest.raises(ValueError, match="seeds"):
        imperfect_maps.MapsConfig(seeds=1)
    with pytest.raises(ValueError, match="gamma_min"):
        imperfect_maps.MapsConfig(gamma_min=0.0)
    with pytest.raises(ValueError, match="replace_shrink_min"):
        imperfect_maps.MapsConfig(replace_shrink_min=2.0)


@pytest.mark.heavy
def test_misspecified_engine_path_matches_the_exact_chain():
    """Bounded data (truncated Laplace, θ* = (0, v*), standardised) as the engine's real
    sets, ideal π_γ, n = 10, λ = 0.5, γ = 1, 3000 seeds: E μ, E μ², E σ² over t = 20..40
    within K_SE of ``augment_moments`` with data_var = 1 (exact for any p_data: the
    recursion uses only E δ, E δ², E S); a planted wrong real set (not standardised:
    variance v* ≈ 1.21) is rejected."""
    from sims.gaussian import misspecified_map

    spec = StatsSpec("augment", generations=T, n_real=N, dim=1, k_max=5, displacement=0.0)
    layout = engine.layout_for(spec)
    keys = jax.random.split(jax.random.key(21), SEEDS)
    tabs, _ = engine.tables(layout, keys, T, N, jnp.float32)
    corr = jax.tree.map(lambda a: a[None], ops.Affine.ideal(gauss.standard(1)))
    run = jax.jit(engine.imperfect_batch, static_argnums=(0, 1))
    lam, gamma = jnp.asarray([LAM]), jnp.asarray([1.0])
    ts = jnp.arange(spec.start, T + 1)
    exact = [float(jnp.mean(m)) for m in chains.augment_moments(ts, N, LAM, 1.0)]
    real = misspecified_map._bounded_real(jax.random.key(22), "truncated-laplace", SEEDS, N)
    mo = jax.tree.map(np.asarray, run(spec, layout, tabs, real, lam, gamma, corr)[1])
    assert np.all(np.abs(_z(mo, 0, exact)) < K_SE), _z(mo, 0, exact)
    _, v_star = imperfect.bounded_data_theta_star("truncated-laplace")
    assert v_star > 1.2
    wrong = (real[0], real[1] * v_star)  # the raw data's scatter: not standardised
    mo = jax.tree.map(np.asarray, run(spec, layout, tabs, wrong, lam, gamma, corr)[1])
    assert np.any(np.abs(_z(mo, 0, exact)) >= K_SE)


@pytest.mark.heavy
def test_misspecified_map_smoke():
    """Both data laws on a tiny grid: κ > 0 stated, λ* below the κ = 0 threshold, stable."""
    from sims.gaussian import misspecified_map

    cfg = misspecified_map.MisspecifiedMapConfig.smoke()
    res = misspecified_map.run_map(cfg)
    for m in res["kinds"].values():
        assert m["kappa"] > 0 and np.all(m["lam_star"] < m["lam_star_kappa0"])
        assert m["rate_autocorr"].shape == (cfg.n_lam, cfg.n_gamma)
        assert np.max(m["diverged_frac"]) == 0
