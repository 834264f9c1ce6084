"""Large λ × γ × seed sweeps of the Gaussian loop with the ideal corrector, from exact
sufficient statistics, as one jitted computation (chunked with ``lax.map``, sharded over
every device with ``jax.shard_map``).

Paper: Algorithm 1, eq. (5), Def. 4.1. One generation with π_γ draws, instead of k points,
K ~ Binomial(k, 1/(1+γ)) kept points and k − K replaced ones, and for each group its mean
and scatter (``theory.sampling``); the refit merges (real, kept, replaced) groups with
``theory.gaussian.fit_groups``. This has exactly the law of ``sims.gaussian.loop`` with
``correction="ideal"`` (tested against it) at O(d²) instead of O(k·d) random numbers.

Workflows: ``augment`` (fixed real set + k = ⌊λn⌋ fresh points: the theorem),
``accumulate`` (real + every synthetic set so far, kept as one running merged group), and
``replace`` (n own samples, no real data; λ is ignored).

Every run starts from θ_0 = (real mean + ``displacement``·e₁, real covariance), so the
transient is measurable. Per cell (λ, γ) the sweep returns seed summaries (``CellStats``);
the per-run traces never leave the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float

from sims.common import deprecation
from sims.gaussian.loop import SWEEP_WORKFLOWS, finite_fit
from theory import gaussian as gauss
from theory import operators as ops
from theory import sampling
from theory._checks import check_positive_int

__all__ = ["SWEEP_WORKFLOWS", "CellStats", "StatsSpec", "cell", "grid", "run"]

__getattr__ = deprecation.module_getattr(
    __name__, {"WORKFLOWS": "sims.gaussian.loop.SWEEP_WORKFLOWS"}
)
_Z = 4.0  # a transient point counts while its seed mean exceeds _Z standard errors


@dataclasses.dataclass(frozen=True)
class StatsSpec:
    """Static description of a sufficient-statistic sweep (one compilation per spec).

    Attributes:
        workflow: one of ``SWEEP_WORKFLOWS``.
        generations: T.
        n_real: real set size n (also the synthetic count of ``replace``).
        dim: dimension d.
        k_max: largest synthetic count ⌊λn⌋ over the swept λ (table size of the Binomial).
        displacement: ‖μ_0 − real mean‖, along e₁ (0 = the paper's start).
        window: first generation of the stationary window (default T/2).
        collapse_tol: a run has collapsed once λ_min(Σ_t) < collapse_tol·λ_min(Σ*).
    """

    workflow: str = "augment"
    generations: int = 300
    n_real: int = 50
    dim: int = 2
    k_max: int = 100
    displacement: float = 5.0
    window: int | None = None
    collapse_tol: float = 1e-2

    def __post_init__(self):
        if self.workflow not in SWEEP_WORKFLOWS:
            raise ValueError(f"workflow must be one of {SWEEP_WORKFLOWS}; got {self.workflow!r}")
        for name in ("generations", "n_real", "dim", "k_max"):
            check_positive_int(name, getattr(self, name))
        if self.generations < 4:
            raise ValueError(
                f"generations must be >= 4 (a stationary window); got {self.generations}"
            )
        if not (np.isfinite(self.displacement) and self.displacement >= 0):
            raise ValueError(f"displacement must be a finite number >= 0; got {self.displacement}")
        if not 0 < self.collapse_tol < 1:
            raise ValueError(f"collapse_tol must lie in (0, 1); got {self.collapse_tol}")
        if self.window is not None and not 1 <= self.window < self.generations - 1:
            raise ValueError(
                f"window must lie in [1, generations - 2]; got {self.window}"
                f" (T = {self.generations})"
            )

    @property
    def start(self) -> int:
        return self.generations // 2 if self.window is None else self.window


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


def _min_eig(cov: Float[Array, "d d"]) -> Float[Array, ""]:
    if cov.shape[-1] == 1:
        return cov[0, 0]
    if cov.shape[-1] == 2:
        half_tr = 0.5 * (cov[0, 0] + cov[1, 1])
        det = cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0]
        return half_tr - jnp.sqrt(jnp.clip(half_tr**2 - det, 0.0))
    return jnp.linalg.eigvalsh(cov)[0]


def _observe(theta: gauss.Gaussian, target: gauss.Gaussian):
    return (
        theta.mean,
        gauss.w2(theta, target),
        gauss.param_distance(theta, target),
        _min_eig(theta.cov),
        jnp.linalg.slogdet(theta.cov)[1],
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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CellStats:
    """Seed summaries of one (λ, γ) cell.

    Attributes:
        transient: D_t = seed mean of μ_t·e₁ minus its stationary mean (t = 0..T).
        transient_se: standard error of the seed mean of μ_t·e₁.
        w2_mean, w2_median: W2(θ_t, θ*) over seeds, per generation.
        err_mean: ‖θ_t − θ*‖ seed mean, per generation.
        min_eig_median: λ_min(Σ_t) seed median, per generation (collapse shows here).
        log_det_mean: log det Σ_t seed mean, per generation (exact drift known for replace).
        rate_transient: exp(slope) of log D_t regressed on t over the leading generations
            where D_t > 4 SE (NaN when fewer than two such points).
        rate_points: how many generations that regression used.
        rate_autocorr: lag-1 autocorrelation of μ_t in the stationary window (Marriott–Pope
            bias-corrected, averaged over coordinates and finite, uncollapsed seeds).
        stationary_w2_mean, stationary_w2_median: per-seed W2 averaged over the window.
        final_w2_mean, final_w2_median: W2 at generation T.
        diverged_frac, collapsed_frac: fractions of seeds.
        diverged_at, collapsed_at: earliest generation over seeds (−1 if none).
    """

    transient: Array
    transient_se: Array
    w2_mean: Array
    w2_median: Array
    err_mean: Array
    min_eig_median: Array
    log_det_mean: Array
    rate_transient: Array
    rate_points: Array
    rate_autocorr: Array
    stationary_w2_mean: Array
    stationary_w2_median: Array
    final_w2_mean: Array
    final_w2_median: Array
    diverged_frac: Array
    diverged_at: Array
    collapsed_frac: Array
    collapsed_at: Array


def _first(flags: Array) -> Array:
    """First index along the last axis where ``flags`` holds; −1 if never."""
    return jnp.where(jnp.any(flags, axis=-1), jnp.argmax(flags, axis=-1), -1)


def _earliest(at: Array) -> Array:
    big = jnp.iinfo(at.dtype).max
    best = jnp.min(jnp.where(at >= 0, at, big))
    return jnp.where(best == big, -1, best)


def _transient_rate(d_t: Array, se: Array, stop: int) -> tuple[Array, Array]:
    """exp(slope) of log D_t over the leading run of generations with D_t > _Z·SE."""
    t = jnp.arange(d_t.shape[0], dtype=d_t.dtype)
    usable = jnp.cumprod((d_t > _Z * se) & (t < stop)).astype(bool)
    m = jnp.sum(usable)
    w = usable.astype(d_t.dtype)
    y = jnp.log(jnp.where(usable, d_t, 1.0))
    mt = jnp.sum(w * t) / jnp.maximum(m, 1)
    my = jnp.sum(w * y) / jnp.maximum(m, 1)
    slope = jnp.sum(w * (t - mt) * (y - my)) / jnp.maximum(jnp.sum(w * (t - mt) ** 2), 1e-30)
    return jnp.where(m >= 2, jnp.exp(slope), jnp.nan), m


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
    return jnp.mean((m * r + 1.0) / (m - 3.0))


def summarize(spec: StatsSpec, traces: RunTrace) -> CellStats:
    """Seed summaries (``CellStats``) of one cell's runs (leading axis: seeds)."""
    start = spec.start
    proj = traces.mu[..., 0]
    seeds = proj.shape[0]
    mean_proj = jnp.mean(proj, axis=0)
    se = jnp.std(proj, axis=0, ddof=1) / jnp.sqrt(seeds)
    d_t = mean_proj - jnp.mean(mean_proj[start:])
    rate, points = _transient_rate(d_t, se, start)
    finite_run = jnp.all(traces.finite, axis=-1)
    collapsed = traces.min_eig < spec.collapse_tol
    collapsed_at = _first(collapsed)
    diverged_at = _first(~traces.finite)
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
        diverged_at=_earliest(diverged_at),
        collapsed_frac=frac(collapsed_at >= 0),
        collapsed_at=_earliest(collapsed_at),
    )


def cell(spec: StatsSpec, keys: jax.Array, lam, gamma, workflow=None) -> CellStats:
    """All seeds of one (λ, γ) cell (``keys``: one key per seed, shared by every cell)."""
    traces = jax.vmap(run, in_axes=(None, 0, None, None, None))(spec, keys, lam, gamma, workflow)
    return summarize(spec, traces)


def _map_cells(spec: StatsSpec, keys, lams, gammas, codes, batch_size: int):
    def one(args):
        lam, gamma, code = args
        return cell(spec, keys, lam, gamma, code)

    return jax.lax.map(one, (lams, gammas, codes), batch_size=batch_size)


@partial(jax.jit, static_argnames=("spec", "batch_size", "mesh"))
def _grid(spec, keys, lams, gammas, codes, batch_size, mesh):
    body = partial(_map_cells, spec, batch_size=batch_size)
    if mesh is None:
        return body(keys, lams, gammas, codes)
    cells = P("cells")
    # Cells are independent (no collectives), so varying-axis checks add nothing.
    sharded = jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(P(), cells, cells, cells),
        out_specs=cells,
        check_vma=False,
    )
    return sharded(keys, lams, gammas, codes)


def grid(
    spec: StatsSpec,
    keys: jax.Array,
    lams: Float[Array, " l"],
    gammas: Float[Array, " g"],
    *,
    workflows: tuple[str, ...] | None = None,
    batch_size: int = 256,
    devices=None,
    on_cells: Callable[[int], None] | None = None,
) -> CellStats:
    """Every (λ, γ) cell × every seed key, one compilation; leaves shaped (l, g, ...).

    With ``workflows`` (names from ``SWEEP_WORKFLOWS``) the cells are workflow × λ × γ and the
    leaves are shaped (w, l, g, ...): the workflow is data, so this still compiles once.

    Cells are flattened, padded to whole batches on every device and dispatched in chunks
    of one batch per device: each chunk is split over a 1-D device mesh
    (``NamedSharding``/``shard_map``; each device maps over its cells with ``lax.map``).
    Every chunk has the same shapes, so one compilation serves all of them; they are all
    dispatched before the first is awaited (the devices never wait on the host), and the
    results are reassembled on the host. Keys are per seed and shared by all cells (common
    random numbers), so a cell's numbers do not depend on the device layout or chunking.

    Args:
        spec: static sweep description (``k_max`` must cover ⌊λn⌋ for the largest λ).
        keys: one PRNG key per seed.
        lams: λ values (≥ 0).
        gammas: γ values (≥ 0, inf allowed).
        batch_size: cells per ``lax.map`` batch (memory ∝ batch_size·seeds·T).
        devices: devices to shard over; default all (``jax.devices()``); a single device
            runs unsharded.
        on_cells: the progress hook, a plain callable ``on_cells(done: int)``. It is called
            on the host, never inside the compiled computation, each time a chunk's results
            have arrived, with the cumulative number of grid cells finished (padding
            excluded; non-decreasing; the last call passes the total). None: no reports.
    """
    names = (spec.workflow,) if workflows is None else tuple(workflows)
    for name in names:
        if name not in SWEEP_WORKFLOWS:
            raise ValueError(f"workflow must be one of {SWEEP_WORKFLOWS}; got {name!r}")
    lams = np.asarray(lams, dtype=float)
    gammas = np.asarray(gammas, dtype=float)
    k_needed = int(np.max(np.asarray(ops.n_synthetic(lams, spec.n_real))))
    if set(names) != {"replace"} and k_needed > spec.k_max:
        raise ValueError(
            f"k_max = {spec.k_max} < ⌊λ n⌋ = {k_needed} for the largest λ; raise k_max"
        )
    check_positive_int("batch_size", batch_size)
    devices = jax.devices() if devices is None else list(devices)
    codes = np.asarray([SWEEP_WORKFLOWS.index(name) for name in names])
    ww, ll, gg = np.meshgrid(codes, lams, gammas, indexing="ij")
    flat = [ll.ravel(), gg.ravel(), ww.ravel()]
    # Pad to whole batches on every device: a remainder batch would compile the body twice.
    batch = min(batch_size, -(-flat[0].size // len(devices)))
    step = len(devices) * batch  # cells per dispatched chunk
    pad = (-flat[0].size) % step
    flat = [np.concatenate([a, np.repeat(a[-1:], pad)]) for a in flat]
    dtype = jnp.result_type(float)
    mesh = Mesh(np.asarray(devices), ("cells",)) if len(devices) > 1 else None
    pending = []
    for start in range(0, flat[0].size, step):
        part = [a[start : start + step] for a in flat]
        args = (jnp.asarray(part[0], dtype), jnp.asarray(part[1], dtype), jnp.asarray(part[2]))
        if mesh is not None:
            args = jax.device_put(args, NamedSharding(mesh, P("cells")))
        pending.append(_grid(spec, keys, *args, batch, mesh))
    parts = []
    for i, chunk in enumerate(pending):
        parts.append(jax.tree.map(np.asarray, chunk))  # waits for this chunk only
        if on_cells is not None:
            on_cells(min((i + 1) * step, ll.size))
    out = jax.tree.map(lambda *a: np.concatenate(a)[: ll.size], *parts)
    shape = ll.shape if workflows is not None else ll.shape[1:]
    return jax.tree.map(lambda a: a.reshape(*shape, *a.shape[1:]), out)
