"""Loops: scan = Python loop, one compilation per sweep, Monte-Carlo against exact chains."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma

from sims.gaussian import loop, sweep, toy
from theory import gaussian as gauss

K_SE = 5.0


def manual_start(spec, real, theta=None, chunk=1):
    """Real-set statistics and the state before generation 1, for stepping by hand."""
    fit = gauss.fit(jnp.asarray(real))
    recent = jnp.zeros((chunk, spec.k_max, 2)) if spec.workflow == "toy" else None
    state = loop.LoopState(fit if theta is None else theta, loop.PoolSums.zeros(2), recent)
    return loop._real_stats(spec, fit), state


@pytest.mark.heavy
def test_chunked_scan_equals_python_loop(float64):
    spec = loop.LoopSpec("toy", "histogram", 7, 20, 10)
    key, target = jax.random.key(0), gauss.standard(2)
    real = gauss.sample(jax.random.key(1), target, 20)
    a = loop.simulate(spec, key, real, 0.5, 1.0, target, chunk=3)
    b = loop.simulate(spec, key, real, 0.5, 1.0, target, chunk=1)
    stats, state = manual_start(spec, real)
    hist = jnp.zeros((7, 10, 2))
    w2 = []
    for t in range(1, 8):
        state, out = loop.generation(spec, key, stats, 0.5, 1.0, target, hist, state, t)
        hist = hist.at[t - 1].set(state.recent[0])
        w2.append(out[0])
    np.testing.assert_allclose(a.w2[1:], np.asarray(w2), rtol=1e-9)
    np.testing.assert_allclose(b.w2, a.w2, rtol=1e-9)
    for final in (a.final, b.final):  # θ_T, not a padding generation of the last chunk
        np.testing.assert_allclose(final.cov, state.theta.cov, rtol=1e-9)
    assert a.synth_ratio[-1] == pytest.approx(sum((j * 10) // 7 for j in range(1, 8)) / 20)


def toy_counts(t, k):
    """Points of each set j = 1..t in the toy pool at generation t, straight from §4."""
    return [(j * k) // t for j in range(1, t + 1)]


@pytest.mark.parametrize("k", [1, 3, 10, 25])
def test_toy_drop_rule_reproduces_the_schedule(k):
    """Keeping (t−1)'s pool minus ``_toy_dropped`` plus set t gives exactly t's pool."""
    kept = set()
    for t in range(1, 80):
        rows, gone = map(np.asarray, loop._toy_dropped(jnp.asarray(t), jnp.asarray(k), 25))
        dropped = {(int(r), m) for m, (r, g) in enumerate(zip(rows, gone, strict=True)) if g}
        assert dropped <= kept, t
        kept = (kept - dropped) | {(t - 1, m) for m in range(k)}
        want = {(j, m) for j, c in enumerate(toy_counts(t, k)) for m in range(c)}
        assert kept == want, t


@pytest.mark.heavy
@pytest.mark.parametrize("workflow", ["toy", "accumulate"])
def test_pool_fit_equals_direct_fit_on_the_stored_sets(workflow):
    """θ_t is the MLE on real ∪ the sets' prefixes, recomputed from scratch in float64."""
    spec = loop.LoopSpec(workflow, "histogram", 40, 20, 10)
    key, target = jax.random.key(3), gauss.standard(2)
    real = np.asarray(gauss.sample(jax.random.key(4), target, 20), float)
    stats, state = manual_start(spec, real)
    hist, sets = jnp.zeros((40, 10, 2)), []
    for t in range(1, 41):
        state, out = loop.generation(spec, key, stats, 0.5, 1.0, target, hist, state, t)
        if workflow == "toy":
            hist = hist.at[t - 1].set(state.recent[0])
        sets.append(np.asarray(out[-1], float))
        counts = toy_counts(t, 10) if workflow == "toy" else [10] * t
        x = np.concatenate([real, *(s[:c] for s, c in zip(sets, counts, strict=True))])
        np.testing.assert_allclose(state.theta.mean, x.mean(0), atol=2e-5)
        np.testing.assert_allclose(state.theta.cov, np.cov(x.T, bias=True), rtol=1e-4)


def test_gamma_sweep_compiles_once():
    cfg = toy.Config.smoke(workflow="augment", correction="ideal", generations=5)
    toy._sweep.clear_cache()
    toy.seed_sweep(cfg)
    toy.seed_sweep(
        toy.Config.smoke(workflow="augment", correction="ideal", generations=5, gammas=(2.0, 7.0))
    )
    assert toy._sweep._cache_size() == 1


def test_augment_mean_follows_exact_recursion():
    """E[μ_t | real] = (n m + k E[μ_{t-1}]/(1+γ))/(n+k) (ideal π_γ, target mean 0)."""
    n, k, gamma, seeds = 20, 10, 1.0, 3000
    target = gauss.standard(1)
    real = gauss.sample(jax.random.key(5), target, n)
    theta0 = gauss.Gaussian(jnp.asarray([3.0]), jnp.eye(1))
    keys = jax.random.split(jax.random.key(6), seeds)
    means = []
    for t_final in range(1, 5):
        s = loop.LoopSpec("augment", "ideal", t_final, n, k)
        run = jax.vmap(lambda kk: loop.simulate(s, kk, real, 0.5, gamma, target, theta0).final.mean)
        means.append(np.asarray(run(keys))[:, 0])
    m, mu = float(real.mean()), 3.0
    for t in range(4):
        mu = (n * m + k * mu / (1 + gamma)) / (n + k)
        se = means[t].std() / np.sqrt(seeds)
        assert abs(means[t].mean() - mu) < K_SE * se, (t, means[t].mean(), mu)


def test_replace_variance_chain():
    """1-D replace with MLE refit: E[σ²_T] = ((n−1)/n)^T σ²_0; E[log σ²_T] has a closed form."""
    n, seeds = 20, 4000
    target = gauss.standard(1)
    # A real set with spread: replace must ignore it entirely (its scatter included).
    real = jax.random.normal(jax.random.key(70), (n, 1))
    theta0 = gauss.Gaussian(jnp.zeros(1), jnp.eye(1))
    keys = jax.random.split(jax.random.key(7), seeds)
    for T in (10, 100):
        spec = loop.LoopSpec("replace", "identity", T, n, n)
        var = np.asarray(
            jax.vmap(lambda kk: loop.simulate(spec, kk, real, 0.0, 0.0, target, theta0).final.cov)(
                keys
            )
        )[:, 0, 0]
        if T <= n // 2:
            exact = ((n - 1) / n) ** T
            assert abs(var.mean() - exact) < K_SE * var.std() / np.sqrt(seeds)
        exact_log = T * (digamma((n - 1) / 2) + np.log(2 / n))
        logs = np.log(var)
        assert abs(logs.mean() - exact_log) < K_SE * logs.std() / np.sqrt(seeds)
        print(f"T={T}: mean σ² {var.mean():.3g}, median {np.median(var):.3g}")


@pytest.mark.heavy
def test_eq7_bound_holds_on_independent_trajectories():
    cfg = toy.theorem_panel(
        toy.Config.smoke(gammas=(1.0,), generations=30, seeds=tuple(range(300)))
    )
    curves = toy.bound_curves(cfg, jax.random.key(99), num=20000)
    res = toy.seed_sweep(cfg)
    err = res["param_err"][0]  # (seeds, T+1)
    ok = np.all(err[:, 1:] <= curves["bound"][0][None, 1:], axis=1)
    assert ok.mean() >= 1 - cfg.delta
    print(
        "bound / measured (median over seeds, t = 30):",
        curves["bound"][0][-1] / np.median(err[:, -1]),
    )


def test_divergence_is_flagged_not_raised():
    spec = loop.LoopSpec("augment", "ideal", 5, 10, 5)
    target = gauss.standard(2)
    bad = gauss.Gaussian(jnp.full(2, jnp.nan), jnp.eye(2))
    tr = loop.simulate(spec, jax.random.key(0), jnp.zeros((10, 2)), 0.5, 0.0, target, bad)
    assert int(loop.diverged_at(tr.finite)) == 0
    assert int(loop.diverged_at(jnp.ones(4, bool))) == -1


def test_bad_config_raises_before_work():
    with pytest.raises(ValueError, match="workflow"):
        toy.Config(workflow="nope")
    with pytest.raises(ValueError, match="lam"):
        toy.Config(lam=-1.0)
    with pytest.raises(ValueError, match="n_real"):
        toy.Config(n_real=0)


@pytest.mark.parametrize("workflow", ["replace", "augment"])
def test_single_set_fit_is_precise_far_from_the_real_data(workflow):
    """A model 1000 away from the real mean: θ_t still equals the float64 refit in float32."""
    with jax.enable_x64(False):
        spec = loop.LoopSpec(workflow, "identity", 5, 20, 20)
        key, target = jax.random.key(5), gauss.standard(2)
        real = np.asarray(gauss.sample(jax.random.key(6), target, 20), float)
        mean, cov = jnp.asarray([1000.0, -1000.0]), jnp.asarray([[1.0, 0.3], [0.3, 0.5]])
        stats, state = manual_start(spec, real, gauss.Gaussian(mean, cov))
        for t in range(1, 6):
            state, out = loop.generation(spec, key, stats, 1.0, 0.0, target, None, state, t)
            assert state.theta.cov.dtype == jnp.float32
            x = np.asarray(out[-1], float)
            if workflow == "augment":
                x = np.concatenate([real, x])
            np.testing.assert_allclose(state.theta.mean, x.mean(0), rtol=1e-6)
            np.testing.assert_allclose(state.theta.cov, np.cov(x.T, bias=True), rtol=1e-3)


def test_toy_run_writes_nothing_and_report_saves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = toy.Config.smoke(workflow="augment", correction="ideal", generations=5)
    res = toy.run(cfg, panels=False)
    assert list(tmp_path.iterdir()) == [] and res.config == cfg and "panels" not in res.data
    payload = toy.report(res, tmp_path / "out")
    assert (tmp_path / "out" / "gaussian_toy.json").exists()
    np.testing.assert_array_equal(payload["w2_mean"], res.data["main"]["w2_mean"])


def test_deprecated_names_warn(monkeypatch):
    monkeypatch.setattr(toy, "seed_sweep", lambda cfg: {"called": cfg})
    with pytest.warns(DeprecationWarning, match="toy.main"):
        assert toy.main(toy.Config.smoke()) == {"called": toy.Config.smoke()}
    with pytest.warns(DeprecationWarning, match="LOOP_WORKFLOWS"):
        assert loop.WORKFLOWS == loop.LOOP_WORKFLOWS
    with pytest.warns(DeprecationWarning, match="SWEEP_WORKFLOWS"):
        assert sweep.WORKFLOWS == loop.SWEEP_WORKFLOWS


def test_one_name_per_workflow_set():
    """The sweep's workflows are the loop's minus the point-level ``toy`` schedule and the
    equal-budget ``fresh`` control."""
    assert loop.LOOP_WORKFLOWS == (*loop.SWEEP_WORKFLOWS, "toy", "fresh")
    assert not hasattr(sweep, "_BLOWUP") and not hasattr(loop, "_BLOWUP")
