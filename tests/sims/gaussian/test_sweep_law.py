"""The tables engine (``sims.gaussian.engine``) has the law of the point-by-point loop
(``sims.gaussian.loop``, ideal π_γ) and of the previous engine (``sims.gaussian.sweep_stats``).

For every workflow, three cells, RUNS = 4,000 independent runs per cell and engine (n = 20,
T = 20, θ_0 displaced by 1.5·e₁), we z-test the means and the variances of μ₀, μ₁, W2(θ_t, θ*),
λ_min(Σ_t) and log det Σ_t at generations 1, 5 and 20: 90 z-scores per workflow and
reference. Mean: z = Δmean / √(s₁²/n₁ + s₂²/n₂); variance: z = Δvar / √(SE₁² + SE₂²) with
SE² = (m₄ − s⁴)/n from the sample fourth central moment. Pass: every |z| ≤ K_SE = 4.5 (for
540 z-scores under the null P(max |z| > 4.5) < 0.4 %). Mean z² is printed but not tested: the
z-scores of one cell share the same runs over generations, so it scatters widely under the
null (0.4–2.0 over five key sets, loop against stats engine).

The same test is run on a planted wrong law, χ² with one degree of freedom too many in the
Bartlett factor (``engine.traces(..., df_offset=1)``), and must fail there.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.gaussian import engine, loop, sweep_stats
from sims.gaussian.cellstats import SWEEP_WORKFLOWS as WORKFLOWS
from sims.gaussian.cellstats import StatsSpec
from theory import chains
from theory import gaussian as gauss

pytestmark = pytest.mark.heavy  # 4,000 runs × 9 cells through three engines: ~1–2 min

K_SE = 4.5
RUNS = 4000
T = 20
GENERATIONS = (1, 5, 20)
N_REAL = 20
DISPLACEMENT = 1.5
CELLS = {  # (λ, γ); replace ignores λ
    "augment": [(0.5, 0.0), (1.0, 1.0), (2.0, 0.1)],
    "accumulate": [(0.5, 0.0), (1.0, 1.0), (2.0, 0.1)],
    "replace": [(1.0, 0.0), (1.0, 1.0), (1.0, 0.1)],
}


def _spec(workflow):
    return StatsSpec(workflow, generations=T, n_real=N_REAL, k_max=40, displacement=DISPLACEMENT)


def _observables(mean, cov):
    """μ₀, μ₁, W2 to N(0, I), λ_min, log det of θ's with leading axes."""
    target = gauss.standard(mean.shape[-1], mean.dtype)
    w2 = jax.vmap(lambda m, c: gauss.w2(gauss.Gaussian(m, c), target))(
        mean.reshape(-1, 2), cov.reshape(-1, 2, 2)
    ).reshape(mean.shape[:-1])
    return {
        "mu0": mean[..., 0],
        "mu1": mean[..., 1],
        "w2": w2,
        "min_eig": jnp.linalg.eigvalsh(cov)[..., 0],
        "log_det": jnp.linalg.slogdet(cov)[1],
    }


@partial(jax.jit, static_argnames=("workflow",))
def _loop_runs(workflow, keys, lam, gamma):
    """θ_t at every generation of ``loop.generation`` stepped by hand (every point drawn)."""
    spec = loop.LoopSpec(workflow, "ideal", generations=T, n_real=N_REAL, k_max=40)
    target = gauss.standard(2)

    def one(key):
        real = gauss.sample(jax.random.fold_in(key, 0), target, N_REAL)
        fit = gauss.fit(real)
        theta0 = gauss.Gaussian(fit.mean.at[0].add(DISPLACEMENT), fit.cov)
        stats = loop._real_stats(spec, fit)
        state = loop.LoopState(theta0, loop.PoolSums.zeros(2, real.dtype), None)
        step = partial(loop.generation, spec, jax.random.fold_in(key, 1), stats, lam, gamma)

        def body(state, t):
            state, _ = step(target, None, state, t)
            return state, state.theta

        _, thetas = jax.lax.scan(body, state, jnp.arange(1, T + 1))
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), theta0, thetas)

    thetas = jax.vmap(one)(keys)
    return _observables(thetas.mean, thetas.cov)


@partial(jax.jit, static_argnames=("spec",))
def _stats_runs(spec, keys, lam, gamma):
    tr = jax.vmap(partial(sweep_stats.run, spec), in_axes=(0, None, None))(keys, lam, gamma)
    return {
        "mu0": tr.mu[..., 0],
        "mu1": tr.mu[..., 1],
        "w2": tr.w2,
        "min_eig": tr.min_eig,
        "log_det": tr.log_det,
    }


def _tables_runs(spec, keys, cells, df_offset):
    lams, gammas = (jnp.asarray([c[i] for c in cells]) for i in (0, 1))
    tr = engine.traces(spec, keys, lams, gammas, df_offset=df_offset)
    return [
        {
            "mu0": tr.mu[c, ..., 0],
            "mu1": tr.mu[c, ..., 1],
            "w2": tr.w2[c],
            "min_eig": tr.min_eig[c],
            "log_det": tr.log_det[c],
        }
        for c in range(len(cells))
    ]


def z_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sample z of the means and of the variances of two samples (leading axis: runs)."""
    se_mean = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)

    def var_se2(x):
        c = x - x.mean()
        return max(np.mean(c**4) - np.mean(c**2) ** 2, 0.0) / x.size

    z_var = (a.var(ddof=1) - b.var(ddof=1)) / np.sqrt(var_se2(a) + var_se2(b))
    return np.array([(a.mean() - b.mean()) / se_mean, z_var])


def _all_z(fast: list[dict], slow: list[dict]) -> np.ndarray:
    out = []
    for f, s in zip(fast, slow, strict=True):
        for name in f:
            for t in GENERATIONS:
                a, b = np.asarray(f[name][:, t], float), np.asarray(s[name][:, t], float)
                out.append(z_scores(a, b))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def references():
    """Per workflow: the loop's and the previous engine's runs of every cell."""
    out = {}
    for i, workflow in enumerate(WORKFLOWS):
        cells = CELLS[workflow]
        keys_loop = jax.random.split(jax.random.key(110 + i), RUNS)
        keys_stats = jax.random.split(jax.random.key(120 + i), RUNS)
        out[workflow] = {
            "loop": [_loop_runs(workflow, keys_loop, lam, g) for lam, g in cells],
            "stats": [_stats_runs(_spec(workflow), keys_stats, lam, g) for lam, g in cells],
        }
    return out


def _passes(z: np.ndarray) -> bool:
    return bool(np.max(np.abs(z)) <= K_SE)


@pytest.fixture(scope="module")
def tables_runs():
    """Runs of the tables engine per (workflow, df_offset), computed on first use."""
    cache = {}

    def get(workflow, df_offset):
        if (workflow, df_offset) not in cache:
            keys = jax.random.split(jax.random.key(130 + WORKFLOWS.index(workflow)), RUNS)
            cells = CELLS[workflow]
            cache[workflow, df_offset] = _tables_runs(_spec(workflow), keys, cells, df_offset)
        return cache[workflow, df_offset]

    return get


@pytest.mark.parametrize("wrong_law", [False, True], ids=["law", "planted-wrong-law"])
@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_tables_engine_has_the_law_of_the_loop_and_the_stats_engine(
    workflow, wrong_law, references, tables_runs
):
    fast = tables_runs(workflow, int(wrong_law))
    for name in ("loop", "stats"):
        z = _all_z(fast, references[workflow][name])
        summary = (workflow, name, z.size, float(np.mean(z**2)), float(np.max(np.abs(z))))
        print("z-scores", "wrong law" if wrong_law else "law", summary)
        if wrong_law:
            assert not _passes(z), ("the planted wrong law went undetected", summary)
        else:
            assert z.size == 90
            assert _passes(z), summary


def test_replace_log_det_drift_is_exact(tables_runs):
    """Uncorrected replace: E log det Σ_T − log det Σ_0 = T·Σ_i ψ((n−1−i)/2) + T·d·log(2/n)
    (``theory.chains.replace_log_det_drift``); k = 4 SE over the 4,000 runs."""
    log_det = np.asarray(tables_runs("replace", 0)[0]["log_det"])  # the γ = 0 cell
    change = log_det[:, -1] - log_det[:, 0]
    exact = T * float(chains.replace_log_det_drift(N_REAL, 2))
    se = change.std(ddof=1) / np.sqrt(change.size)
    assert abs(change.mean() - exact) <= 4.0 * se, (change.mean(), exact, se)
