"""Self-consuming loops on the Gaussian family: one generation, scanned, vmapped at the edge.

Paper: Algorithm 1 and eq. (5); §4 (Fig. 2 toy schedule). One generation is
sample ⌊λn⌋ points of p_θ → correct (π_γ or a practical corrector) → retrain on real ∪
synthetic. Data workflows (``LoopSpec.workflow``):

- ``augment``: fixed real set + ⌊λn⌋ fresh synthetic points (Algorithm 1; the theorem);
- ``replace``: refit on n own (corrected) samples only, no real data;
- ``accumulate``: real + every synthetic set drawn so far (⌊λn⌋ each);
- ``fresh``: the equal-budget control of a corrector: real + ⌊λn⌋ *uncorrected* synthetic
  points + m = ⌊⌊λn⌋γ/(1+γ)⌋ fresh real points per generation, the oracle draws π_γ would
  spend (``theory.imperfect.fresh_count``); the fresh points are drawn from ``target``
  (p_data = p_θ* in the well-specified loop) and discarded after the generation, like the
  synthetic ones. ``correction`` is not applied; γ only sets m. Exact moments in 1-D:
  ``theory.chains.augment_moments(..., gamma=0, n_fresh=m)``;
- ``toy``: the Fig. 2 schedule: at generation t (1-based) keep every set j ≤ t, truncated to
  its first ⌊j·k/t⌋ points (integer arithmetic; the official script's float expression can
  differ by one point in rare ties).

The fit only needs the synthetic points' count and sums (``PoolSums``), updated in O(k) per
generation whatever the pool size: ``accumulate`` adds each new set; ``toy`` also drops, per
point position m = 1..k, at most one point, the m-th of set ⌈m(t−1)/k⌉ (see
``_toy_dropped``), so only the sets themselves are stored. Shapes are static: a set lives
in a buffer of ``k_max`` rows (masked beyond ⌊λn⌋); λ and γ are traced, so a sweep over them
compiles once.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from sims.common import deprecation
from theory import gaussian as gauss
from theory import imperfect
from theory import operators as ops

__all__ = [
    "BLOWUP",
    "LOOP_WORKFLOWS",
    "SWEEP_WORKFLOWS",
    "LoopSpec",
    "LoopState",
    "PoolSums",
    "Trace",
    "default_chunk",
    "diverged_at",
    "finite_fit",
    "generation",
    "simulate",
    "sweep",
]

# The workflows of the sufficient-statistic engine (``sims.gaussian.sweep``): the fit needs
# only each synthetic set's count, mean and scatter. The order is the engine's workflow code.
SWEEP_WORKFLOWS = ("augment", "accumulate", "replace")
# This point-level loop runs those, the Fig. 2 ``toy`` schedule (it drops individual stored
# points and so needs the points themselves) and the equal-budget control ``fresh`` (fresh
# real points instead of correction).
LOOP_WORKFLOWS = (*SWEEP_WORKFLOWS, "toy", "fresh")

# The divergence rule of every Gaussian loop: a fit with a non-finite entry or a covariance
# entry beyond BLOWUP has diverged (a result, flagged per run, never an exception).
BLOWUP = 1e8

__getattr__ = deprecation.module_getattr(__name__, {"WORKFLOWS": f"{__name__}.LOOP_WORKFLOWS"})


def finite_fit(theta: gauss.Gaussian) -> Bool[Array, ""]:
    """The divergence rule: θ is finite and no covariance entry exceeds ``BLOWUP``."""
    finite = jnp.all(jnp.isfinite(theta.cov)) & jnp.all(jnp.isfinite(theta.mean))
    return finite & (jnp.max(jnp.abs(theta.cov)) < BLOWUP)


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    """Static description of a loop (hashable: one compilation per spec).

    Attributes:
        workflow: one of ``LOOP_WORKFLOWS``.
        correction: one of ``theory.operators.CORRECTIONS``.
        generations: number of generations T.
        n_real: size n of the real set.
        k_max: synthetic buffer rows (≥ ⌊λn⌋ for every swept λ; ≥ n for ``replace``).
    """

    workflow: str = "augment"
    correction: str = "ideal"
    generations: int = 100
    n_real: int = 50
    k_max: int = 25

    def __post_init__(self):
        if self.workflow not in LOOP_WORKFLOWS:
            raise ValueError(f"workflow must be one of {LOOP_WORKFLOWS}; got {self.workflow!r}")
        if self.correction not in ops.CORRECTIONS:
            raise ValueError(
                f"correction must be one of {ops.CORRECTIONS}; got {self.correction!r}"
            )
        for name in ("generations", "n_real", "k_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if self.workflow == "replace" and self.k_max < self.n_real:
            raise ValueError(f"replace needs k_max >= n_real = {self.n_real}; got {self.k_max}")


@partial(jax.tree_util.register_dataclass, data_fields=["count", "s1", "s2"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class PoolSums:
    """The synthetic points in the current fit: count, Σy and Σyyᵀ with y = x − c.

    A growing pool (``accumulate``, ``toy``) uses one c for the whole run, the real-set
    mean (the real data keep the pool near it); a single set (``augment``, ``replace``) is
    centred on its own mean, so the sums stay precise in float32 wherever the model
    wanders. ``gauss.fit_groups`` merges them with the real set.
    """

    count: Float[Array, ""]
    s1: Float[Array, " d"]
    s2: Float[Array, "d d"]

    @staticmethod
    def zeros(d: int, dtype=None) -> PoolSums:
        """The empty pool."""
        return PoolSums(jnp.zeros((), dtype), jnp.zeros(d, dtype), jnp.zeros((d, d), dtype))

    @staticmethod
    def of(y: Float[Array, "k d"], weights: Float[Array, " k"]) -> PoolSums:
        return PoolSums(jnp.sum(weights), weights @ y, jnp.einsum("k,ki,kj->ij", weights, y, y))

    def __add__(self, other: PoolSums) -> PoolSums:
        return jax.tree.map(jnp.add, self, other)

    def __sub__(self, other: PoolSums) -> PoolSums:
        return jax.tree.map(jnp.subtract, self, other)


@partial(jax.tree_util.register_dataclass, data_fields=["theta", "pool", "recent"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class LoopState:
    """θ_t, the synthetic pool's sums and (``toy`` only, else None) the current chunk's sets.

    Older sets live in a read-only ``history`` buffer passed beside the state: reading and
    writing one big buffer in the same step makes XLA copy all of it every generation, so
    the loop scans over chunks of generations and writes a chunk's sets into the history
    once per chunk.
    """

    theta: gauss.Gaussian
    pool: PoolSums
    recent: Float[Array, "chunk k d"] | None


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["w2", "param_err", "synth_ratio", "finite", "final"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Trace:
    """Per-generation metrics; index 0 is θ_0, index t the fit after generation t.

    Attributes:
        w2: W2(p_θt, p_θ*).
        param_err: ‖θ_t − θ*‖ (mean and Frobenius covariance, the theorem's norm).
        synth_ratio: synthetic points used in the fit / real points.
        finite: θ_t finite and not exploded.
        final: θ_T.
    """

    w2: Float[Array, " T1"]
    param_err: Float[Array, " T1"]
    synth_ratio: Float[Array, " T1"]
    finite: Bool[Array, " T1"]
    final: gauss.Gaussian


def _synthetic_count(spec: LoopSpec, lam) -> Array:
    if spec.workflow == "replace":
        return jnp.asarray(spec.n_real, jnp.int32)
    return jnp.minimum(ops.n_synthetic(lam, spec.n_real), spec.k_max)


def _toy_dropped(t: Array, k: Array, k_max: int) -> tuple[Array, Array]:
    """Which stored point leaves the ``toy`` pool at generation t (1-based), per position m.

    Set a (1-based) keeps its first ⌊ak/t⌋ points at generation t, so its m-th point is in
    the pool iff a ≥ mt/k. Going from t − 1 to t, the m-th point of set a leaves iff
    m(t−1)/k ≤ a < mt/k: a half-open interval of length m/k ≤ 1, so at most one set per m,
    a = ⌈m(t−1)/k⌉; counts never grow and the new set t enters whole (⌊tk/t⌋ = k).

    Returns:
        The 0-based set index of each position m = 1..k_max and whether it leaves.
    """
    m = jnp.arange(1, k_max + 1)
    k = jnp.maximum(k, 1)
    a = (m * (t - 1) + k - 1) // k
    return a - 1, (m <= k) & (a >= 1) & (a * k < m * t)


def _metrics(theta: gauss.Gaussian, target: gauss.Gaussian):
    return gauss.w2(theta, target), gauss.param_distance(theta, target), finite_fit(theta)


def generation(
    spec: LoopSpec,
    key: jax.Array,
    real_stats: tuple,
    lam,
    gamma,
    target: gauss.Gaussian,
    history: Float[Array, "rows k d"] | None,
    state: LoopState,
    t: Array,
) -> tuple[LoopState, tuple]:
    """One generation θ_{t-1} → θ_t = G_λ(real ∪ correct(sample(θ_{t-1}))) (t is 1-based).

    Paper: Algorithm 1 / eq. (5). The generation's randomness is ``fold_in(key, t)``, so
    generation t can be reproduced on its own.

    Args:
        spec: static loop description.
        key: the run's key.
        real_stats: (count, centre, scatter) of the real set.
        lam: λ.
        gamma: γ.
        target: p_θ*.
        history: ``toy``: the sets of the generations before the current chunk (read-only).
        state: θ_{t-1}, the pool's sums and the current chunk's sets (chunk length = rows of
            ``state.recent``).
        t: generation index, 1-based.

    Returns:
        The new state and (W2, parameter error, finite flag, synthetic:real ratio, the
        corrected set with invalid rows NaN).
    """
    k_sample, k_correct = jax.random.split(jax.random.fold_in(key, t))
    k = _synthetic_count(spec, lam)
    synth = gauss.sample(k_sample, state.theta, spec.k_max)
    mask = jnp.arange(spec.k_max) < k
    real_n, ref, real_scatter = real_stats
    weights = mask.astype(ref.dtype)
    if spec.workflow == "fresh":
        corrected = synth  # uncorrected; the oracle budget buys fresh real points instead
        m = jnp.arange(spec.k_max) < imperfect.fresh_count(lam, gamma, spec.n_real)
        fresh = gauss.sample(k_correct, target, spec.k_max).astype(synth.dtype)
        rows = jnp.concatenate([synth, fresh])
        row_w = jnp.concatenate([weights, m.astype(ref.dtype)])
    else:
        corrected = ops.make_corrector(spec.correction, gamma, target)(k_correct, synth, mask=mask)
        rows, row_w = corrected, weights
    if spec.workflow in ("accumulate", "toy"):
        center = ref  # one reference for the whole pool
    else:  # the fit sees this set only: centre it on itself (replace may drift far from ref)
        center = row_w @ rows / jnp.maximum(jnp.sum(row_w), 1.0)
    new = PoolSums.of(rows - center, row_w)
    pool, recent = new, None
    if spec.workflow == "accumulate":
        pool = state.pool + new
    elif spec.workflow == "toy":
        chunk = state.recent.shape[0]
        start = ((t - 1) // chunk) * chunk
        rows, gone = _toy_dropped(t, k, spec.k_max)
        m = jnp.arange(spec.k_max)
        from_recent = state.recent[jnp.clip(rows - start, 0, chunk - 1), m]
        from_history = history[jnp.clip(rows, 0, history.shape[0] - 1), m]
        dropped = jnp.where((rows >= start)[:, None], from_recent, from_history)
        pool = state.pool + new - PoolSums.of(dropped - ref, gone.astype(ref.dtype))
        recent = state.recent.at[t - 1 - start].set(corrected)
    theta = gauss.fit_groups(
        jnp.stack([real_n, pool.count]),
        jnp.stack([ref, center]),
        jnp.stack([jnp.zeros_like(ref), pool.s1]),
        jnp.stack([real_scatter, pool.s2]),
    )
    out = (
        *_metrics(theta, target),
        jnp.sum(weights) / spec.n_real if spec.workflow == "fresh" else pool.count / spec.n_real,
    )
    return LoopState(theta, pool, recent), (*out, jnp.where(mask[:, None], corrected, jnp.nan))


def _real_stats(spec: LoopSpec, fit: gauss.Gaussian):
    """(count, centre, scatter) of the real set from its MLE; an empty group in ``replace``."""
    if spec.workflow == "replace":
        return jnp.zeros((), fit.mean.dtype), fit.mean, jnp.zeros_like(fit.cov)
    return jnp.asarray(float(spec.n_real), fit.mean.dtype), fit.mean, spec.n_real * fit.cov


def default_chunk(spec: LoopSpec) -> int:
    """Generations per chunk: ⌈√T⌉ for ``toy`` (balances the per-chunk history copy against
    the per-generation chunk copy), T (one chunk, no history) for the other workflows."""
    return math.isqrt(spec.generations - 1) + 1 if spec.workflow == "toy" else spec.generations


def simulate(
    spec: LoopSpec,
    key: jax.Array,
    real: Float[Array, "n d"],
    lam,
    gamma,
    target: gauss.Gaussian,
    theta0: gauss.Gaussian | None = None,
    chunk: int | None = None,
) -> Trace:
    """Runs ``spec.generations`` generations: ``lax.scan`` over chunks of ``lax.scan``.

    Args:
        spec: static loop description.
        key: PRNG key of this run.
        real: the real set (n × d); ignored by the fit in ``replace``.
        lam: λ (traced).
        gamma: γ (traced).
        target: p_θ*, the correction target and the reference of the metrics.
        theta0: initial model; default the MLE on ``real`` (generation 0 of the paper).
        chunk: generations per chunk (default ``default_chunk``); any value gives the same
            numbers, it only changes speed.
    """
    real_fit = gauss.fit(real)
    theta0 = real_fit if theta0 is None else jax.tree.map(lambda a: a.astype(real.dtype), theta0)
    real_stats = _real_stats(spec, real_fit)
    chunk = chunk or default_chunk(spec)
    n_chunks = -(-spec.generations // chunk)
    d, dtype = real.shape[1], real.dtype
    zeros = partial(jnp.zeros, dtype=dtype)
    toy = spec.workflow == "toy"
    history = zeros((n_chunks * chunk, spec.k_max, d)) if toy else None
    recent = zeros((chunk, spec.k_max, d)) if toy else None
    init = LoopState(theta0, PoolSums.zeros(d, dtype), recent)

    def run_chunk(carry, c):
        state, hist, final = carry

        def step(carry, t):
            state, final = carry
            state, (*out, _) = generation(spec, key, real_stats, lam, gamma, target, hist, state, t)
            # θ_T: the last chunk may run past T (padding), so keep the fit of generation T.
            final = jax.tree.map(
                lambda a, b: jnp.where(t == spec.generations, a, b), state.theta, final
            )
            return (state, final), out

        ts = c * chunk + jnp.arange(1, chunk + 1)
        (state, final), out = jax.lax.scan(step, (state, final), ts)
        if toy:
            hist = jax.lax.dynamic_update_slice_in_dim(hist, state.recent, c * chunk, axis=0)
        return (state, hist, final), out

    (_, _, final), out = jax.lax.scan(run_chunk, (init, history, theta0), jnp.arange(n_chunks))
    flat = lambda a: a.reshape(-1, *a.shape[2:])[: spec.generations]  # noqa: E731
    w2, err, finite, ratio = jax.tree.map(flat, out)
    w2_0, err_0, finite_0 = _metrics(theta0, target)
    cat = lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b])  # noqa: E731
    return Trace(
        w2=cat(w2_0, w2),
        param_err=cat(err_0, err),
        synth_ratio=cat(jnp.zeros((), ratio.dtype), ratio),
        finite=cat(finite_0, finite),
        final=final,
    )


@partial(jax.jit, static_argnames=("spec",))
def sweep(
    spec: LoopSpec,
    keys: jax.Array,
    reals: Float[Array, "s n d"],
    lams: Float[Array, " l"],
    gammas: Float[Array, " g"],
    target: gauss.Gaussian,
    theta0: gauss.Gaussian | None = None,
) -> Trace:
    """``simulate`` over seeds × λ × γ; every Trace leaf gets leading axes (s, l, g).

    One compilation per (spec, shapes): λ and γ values are data. ``theta0`` (optional) is
    shared by every run. The (λ, γ) cells are one ``vmap`` axis (tracing a scan under each
    extra ``vmap`` level costs about a third more), and the keys are not batched over it,
    so all cells of a seed share their random numbers (common random numbers).
    """
    n_lam, n_gamma = lams.shape[0], gammas.shape[0]
    run = partial(simulate, spec, target=target, theta0=theta0)
    over_cell = jax.vmap(run, in_axes=(None, None, 0, 0))
    over_seed = jax.vmap(over_cell, in_axes=(0, 0, None, None))
    out = over_seed(keys, reals, jnp.repeat(lams, n_gamma), jnp.tile(gammas, n_lam))
    return jax.tree.map(lambda a: a.reshape(a.shape[0], n_lam, n_gamma, *a.shape[2:]), out)


def diverged_at(finite: Bool[Array, "... T1"]) -> np.ndarray:
    """First generation whose θ is non-finite or exploded; -1 where the run stayed finite.

    Host-side (NumPy): post-processing of a finished trace, no dispatch or compilation.
    """
    bad = ~np.asarray(finite)
    return np.where(bad.any(axis=-1), bad.argmax(axis=-1), -1)
