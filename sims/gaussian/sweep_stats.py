"""The previous sweep engine: each run drawn on its own from exact sufficient statistics.

Paper: Algorithm 1, eq. (5), Def. 4.1. One generation with π_γ draws, instead of k points,
K ~ Binomial(k, 1/(1+γ)) kept points and k − K replaced ones, and for each group its mean
and scatter (``theory.sampling``); the refit merges (real, kept, replaced) groups with
``theory.gaussian.fit_groups``. This has exactly the law of ``sims.gaussian.loop`` with
``correction="ideal"`` (tested against it) at O(d²) instead of O(k·d) random numbers.

Kept beside the default engine (``sims.gaussian.engine``) as the reference the law tests and
``benchmarks/phase_diagram.py`` compare it with; select it with ``StatsSpec(engine="stats")``.
The workflow may be traced (one compilation serves every workflow). Runs are vmapped over
seeds, cells mapped with ``lax.map`` in batches of ``batch_size`` cells.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from sims.gaussian.cellstats import (
    SWEEP_WORKFLOWS,
    CellStats,
    StatsSpec,
    earliest,
    first,
    marriott_pope,
    transient_rate,
)
from sims.gaussian.loop import finite_fit
from theory import gaussian as gauss
from theory import linalg, sampling
from theory import operators as ops

__all__ = ["RunTrace", "cell", "map_cells", "run", "summarize"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RunTrace:
    """One run, generations 0..T: μ_t, W2(θ_t, θ*), ‖θ_t − θ*‖, λ_min(Σ_t), log det Σ_t,
    finite flag."""

    mu: Float[Array, "T1 d"]
    w2: Float[Array, " T1"]
    err: Float[Array, " T1"]
    min_eig: Float[Array, " T1"]
    log_det: Float[Array, " T1"]
    finite: Array


def _observe(theta: gauss.Gaussian, target: gauss.Gaussian):
    return (
        theta.mean,
        gauss.w2(theta, target),
        gauss.param_distance(theta, target),
        linalg.eigvalsh(theta.cov)[0],
        linalg.logabsdet(theta.cov),
        finite_fit(theta),
    )


def run(spec: StatsSpec, key: jax.Array, lam, gamma, workflow=None) -> RunTrace:
    """One run of the loop with π_γ, from exact sufficient statistics. p_data = θ* = N(0, I).

    Args:
        spec: static sweep description.
        key: the run's key; generation t uses ``fold_in(key, t)``, the real set
            ``fold_in(key, 0)``.
        lam: λ (traced; ignored by ``replace``).
        gamma: γ (traced; inf allowed).
        workflow: index into ``SWEEP_WORKFLOWS`` (may be traced, so one compilation serves every
            workflow); default ``spec.workflow``.
    """
    d, n = spec.dim, spec.n_real
    dtype = jnp.result_type(float)
    target = gauss.standard(d, dtype)
    eye = jnp.eye(d, dtype=dtype)
    real_mean, real_scatter = sampling.group_stats(jax.random.fold_in(key, 0), target.mean, eye, n)
    theta0 = gauss.Gaussian(real_mean.at[0].add(spec.displacement), real_scatter / n)
    code = SWEEP_WORKFLOWS.index(spec.workflow) if workflow is None else workflow
    replace = jnp.asarray(code) == SWEEP_WORKFLOWS.index("replace")
    accumulate = jnp.asarray(code) == SWEEP_WORKFLOWS.index("accumulate")
    k = jnp.where(replace, n, jnp.minimum(ops.n_synthetic(lam, n), spec.k_max)).astype(dtype)
    # The "base" group enters every refit: the real set (augment), real + all synthetic so
    # far (accumulate, updated below), nothing (replace).
    real = (jnp.asarray(n, dtype), real_mean, real_scatter)
    base = jax.tree.map(lambda a: jnp.where(replace, jnp.zeros_like(a), a), real)
    cdf = sampling.binomial_cdf(k, 1.0 / (1.0 + jnp.asarray(gamma, dtype)), max(spec.k_max, n))

    def step(carry, t):
        theta, base = carry
        k_count, k_groups = jax.random.split(jax.random.fold_in(key, t))
        kept = sampling.binomial_inverse(k_count, cdf).astype(dtype)
        # Kept points come from p_θ, replaced ones from p_θ*: both groups in one vmapped
        # call (one rejection loop in the compiled program instead of two).
        means, scatters = jax.vmap(sampling.group_stats)(
            jax.random.split(k_groups),
            jnp.stack([theta.mean, target.mean]),
            jnp.stack([gauss.sqrtm_psd(theta.cov), eye]),
            jnp.stack([kept, k - kept]),
        )
        counts = jnp.stack([base[0], kept, k - kept])
        theta = gauss.fit_groups(
            counts,
            jnp.concatenate([base[1][None], means]),
            jnp.zeros((3, d), dtype),
            jnp.concatenate([base[2][None], scatters]),
        )
        total = jnp.sum(counts)
        merged = (total, theta.mean, theta.cov * total)
        base = jax.tree.map(lambda new, old: jnp.where(accumulate, new, old), merged, base)
        return (theta, base), _observe(theta, target)

    _, obs = jax.lax.scan(step, (theta0, base), jnp.arange(1, spec.generations + 1))
    first = _observe(theta0, target)
    obs = jax.tree.map(lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b]), first, obs)
    return RunTrace(*obs)


def _autocorr(mu: Float[Array, "T1 d"], start: int) -> Array:
    """Lag-1 autocorrelation of each coordinate of μ_t over t ≥ start, bias-corrected.

    For the augment chain E[e_{t+1} | e_t] = b + a e_t with a the contraction, so the
    stationary lag-1 autocorrelation is a; the sample estimate is biased by about
    −(1 + 3a)/m over m pairs (Marriott & Pope 1954), corrected as (m r + 1)/(m − 3).
    """
    x, y = mu[start:-1], mu[start + 1 :]
    m = x.shape[0]
    xc, yc = x - jnp.mean(x, axis=0)[None, :], y - jnp.mean(y, axis=0)[None, :]
    r = jnp.sum(xc * yc, axis=0) / jnp.sqrt(jnp.sum(xc**2, axis=0) * jnp.sum(yc**2, axis=0))
    return jnp.mean(marriott_pope(r, m))


def summarize(spec: StatsSpec, traces: RunTrace) -> CellStats:
    """Seed summaries (``CellStats``) of one cell's runs (leading axis: seeds)."""
    start = spec.start
    proj = traces.mu[..., 0]
    seeds = proj.shape[0]
    mean_proj = jnp.mean(proj, axis=0)
    se = jnp.std(proj, axis=0, ddof=1) / jnp.sqrt(seeds)
    d_t = mean_proj - jnp.mean(mean_proj[start:])
    rate, points = transient_rate(d_t, se, start)
    finite_run = jnp.all(traces.finite, axis=-1)
    collapsed = traces.min_eig < spec.collapse_tol
    collapsed_at = first(collapsed)
    diverged_at = first(~traces.finite)
    healthy = finite_run & (collapsed_at < 0)
    ac = jax.vmap(partial(_autocorr, start=start))(traces.mu)
    ac = jnp.sum(jnp.where(healthy, ac, 0.0)) / jnp.sum(healthy)
    stat_w2 = jnp.mean(traces.w2[:, start:], axis=-1)
    frac = lambda flags: jnp.mean(flags.astype(proj.dtype))  # noqa: E731
    return CellStats(
        transient=d_t,
        transient_se=se,
        w2_mean=jnp.mean(traces.w2, axis=0),
        w2_median=jnp.median(traces.w2, axis=0),
        err_mean=jnp.mean(traces.err, axis=0),
        min_eig_median=jnp.median(traces.min_eig, axis=0),
        log_det_mean=jnp.mean(traces.log_det, axis=0),
        rate_transient=rate,
        rate_points=points,
        rate_autocorr=ac,
        stationary_w2_mean=jnp.mean(stat_w2),
        stationary_w2_median=jnp.median(stat_w2),
        final_w2_mean=jnp.mean(traces.w2[:, -1]),
        final_w2_median=jnp.median(traces.w2[:, -1]),
        diverged_frac=frac(diverged_at >= 0),
        diverged_at=earliest(diverged_at),
        collapsed_frac=frac(collapsed_at >= 0),
        collapsed_at=earliest(collapsed_at),
    )


def cell(spec: StatsSpec, keys: jax.Array, lam, gamma, workflow=None) -> CellStats:
    """All seeds of one (λ, γ) cell (``keys``: one key per seed, shared by every cell)."""
    traces = jax.vmap(run, in_axes=(None, 0, None, None, None))(spec, keys, lam, gamma, workflow)
    return summarize(spec, traces)


def map_cells(spec: StatsSpec, keys, lams, gammas, codes, *, batch_size: int):
    """Every cell (``lams``, ``gammas``, workflow ``codes``: one entry per cell) with
    ``lax.map`` in batches of ``batch_size``."""

    def one(args):
        lam, gamma, code = args
        return cell(spec, keys, lam, gamma, code)

    return jax.lax.map(one, (lams, gammas, codes), batch_size=batch_size)
