"""Self-consuming loops on the Gaussian family: one generation, scanned, vmapped at the edge.

Paper: Algorithm 1 and eq. (5); §4 (Fig. 2 toy schedule). One generation is
sample ⌊λn⌋ points of p_θ → correct (π_γ or a practical corrector) → retrain on real ∪
synthetic. Data workflows (``LoopSpec.workflow``):

- ``augment``: fixed real set + ⌊λn⌋ fresh synthetic points (Algorithm 1; the theorem);
- ``replace``: refit on n own (corrected) samples only, no real data;
- ``accumulate``: real + every synthetic set drawn so far (⌊λn⌋ each);
- ``toy``: the Fig. 2 schedule: at generation t (1-based) keep every set j ≤ t, truncated to
  its first ⌊j·k/t⌋ points (integer arithmetic; the official script's float expression can
  differ by one point in rare ties).

Shapes are static: synthetic sets live in a buffer of ``k_max`` rows (masked beyond ⌊λn⌋)
and, for ``accumulate``/``toy``, one buffer row per generation; λ and γ are traced, so a
sweep over them compiles once.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from theory import gaussian as gauss
from theory import operators as ops

__all__ = [
    "WORKFLOWS",
    "LoopSpec",
    "LoopState",
    "Pool",
    "Trace",
    "default_chunk",
    "diverged_at",
    "generation",
    "simulate",
    "sweep",
]

WORKFLOWS = ("augment", "replace", "accumulate", "toy")
_BLOWUP = 1e8  # a covariance entry beyond this counts as divergence


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    """Static description of a loop (hashable: one compilation per spec).

    Attributes:
        workflow: one of ``WORKFLOWS``.
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
        if self.workflow not in WORKFLOWS:
            raise ValueError(f"workflow must be one of {WORKFLOWS}; got {self.workflow!r}")
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

    @property
    def keeps_history(self) -> bool:
        """Whether past synthetic sets stay in the fit (the pool grows)."""
        return self.workflow in ("accumulate", "toy")


@partial(jax.tree_util.register_dataclass, data_fields=["centers", "s1", "s2"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Pool:
    """Buffered synthetic sets as prefix statistics (``gauss.prefix_stats``).

    Row j holds set j's centre and the centred sums of its first m points, m = 0..k_max, so
    any workflow's fit is a gather of one prefix per row plus ``gauss.fit_groups``.
    """

    centers: Float[Array, "rows d"]
    s1: Float[Array, "rows k1 d"]
    s2: Float[Array, "rows k1 d d"]

    @staticmethod
    def zeros(rows: int, k_max: int, d: int, dtype) -> Pool:
        z = partial(jnp.zeros, dtype=dtype)
        return Pool(z((rows, d)), z((rows, k_max + 1, d)), z((rows, k_max + 1, d, d)))

    def gather(self, counts: Array) -> tuple[Array, Array, Array]:
        """(centre, s1, s2) of the first ``counts[j]`` points of every row j."""
        rows = jnp.arange(counts.shape[0])
        return self.centers, self.s1[rows, counts], self.s2[rows, counts]

    def put(self, row: Array, other: Pool) -> Pool:
        """Writes ``other``'s rows starting at ``row``."""
        put = partial(jax.lax.dynamic_update_slice_in_dim, start_index=row, axis=0)
        return jax.tree.map(put, self, other)


@partial(jax.tree_util.register_dataclass, data_fields=["theta", "recent"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class LoopState:
    """θ_t and the synthetic sets of the current chunk of generations.

    Older sets live in a read-only ``history`` Pool passed beside the state: reading and
    writing one big buffer in the same step makes XLA copy it every generation, so the loop
    scans over chunks and merges a chunk's sets into the history once per chunk.
    """

    theta: gauss.Gaussian
    recent: Pool


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


def _set_counts(spec: LoopSpec, rows: Array, t: Array, k: Array) -> Array:
    """How many points of set ``rows`` (0-based) enter the fit at generation t (1-based)."""
    if spec.workflow in ("augment", "replace"):
        return jnp.where(rows == t - 1, k, 0)
    if spec.workflow == "accumulate":
        return jnp.where(rows < t, k, 0)
    safe = jnp.maximum(t, 1)
    return jnp.where(rows < t, ((rows + 1) * k) // safe, 0)  # toy: set j keeps ⌊(j+1)k/t⌋


def _metrics(theta: gauss.Gaussian, target: gauss.Gaussian):
    finite = jnp.all(jnp.isfinite(theta.cov)) & jnp.all(jnp.isfinite(theta.mean))
    finite &= jnp.max(jnp.abs(theta.cov)) < _BLOWUP
    return gauss.w2(theta, target), gauss.param_distance(theta, target), finite


def generation(
    spec: LoopSpec,
    key: jax.Array,
    real_stats: tuple,
    lam,
    gamma,
    target: gauss.Gaussian,
    history: Pool | None,
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
        history: sets of generations before the current chunk (read-only), or None.
        state: θ_{t-1} and the current chunk's sets (chunk length = ``state.recent`` rows).
        t: generation index, 1-based.

    Returns:
        The new state and (W2, parameter error, finite flag, synthetic:real ratio).
    """
    k_sample, k_correct = jax.random.split(jax.random.fold_in(key, t))
    k = _synthetic_count(spec, lam)
    synth = gauss.sample(k_sample, state.theta, spec.k_max)
    mask = jnp.arange(spec.k_max) < k
    corrected = ops.make_corrector(spec.correction, gamma, target)(k_correct, synth, mask=mask)
    center = jnp.sum(jnp.where(mask[:, None], corrected, 0.0), axis=0) / jnp.maximum(k, 1)
    s1, s2 = gauss.prefix_stats(corrected, center)
    chunk = state.recent.centers.shape[0]
    start = ((t - 1) // chunk) * chunk
    recent = state.recent.put(t - 1 - start, Pool(center[None], s1[None], s2[None]))
    counts = [_set_counts(spec, start + jnp.arange(chunk), t, k)]
    groups = [recent.gather(counts[0])]
    if history is not None:
        old = _set_counts(spec, jnp.arange(history.centers.shape[0]), t, k)
        old = jnp.where(jnp.arange(old.shape[0]) < start, old, 0)
        groups.append(history.gather(old))
        counts.append(old)
    real_n, real_center, real_scatter = real_stats
    counts = jnp.concatenate(counts)
    theta = gauss.fit_groups(
        jnp.concatenate([real_n[None], counts.astype(real_center.dtype)]),
        jnp.concatenate([real_center[None], *(g[0] for g in groups)]),
        jnp.concatenate([jnp.zeros_like(real_center)[None], *(g[1] for g in groups)]),
        jnp.concatenate([real_scatter[None], *(g[2] for g in groups)]),
    )
    ratio = jnp.sum(counts) / spec.n_real
    return LoopState(theta, recent), (*_metrics(theta, target), ratio, theta)


def _real_stats(spec: LoopSpec, fit: gauss.Gaussian):
    """(count, centre, scatter) of the real set from its MLE; an empty group in ``replace``."""
    if spec.workflow == "replace":
        return jnp.zeros((), fit.mean.dtype), fit.mean, jnp.zeros_like(fit.cov)
    return jnp.asarray(float(spec.n_real), fit.mean.dtype), fit.mean, spec.n_real * fit.cov


def default_chunk(spec: LoopSpec) -> int:
    """Generations per chunk: ⌈√T⌉ for the growing pools (balances the per-chunk history
    copy against the per-step chunk copy), 1 for the workflows that keep one set."""
    return math.isqrt(spec.generations - 1) + 1 if spec.keeps_history else 1


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
    theta0 = real_fit if theta0 is None else theta0
    real_stats = _real_stats(spec, real_fit)
    chunk = chunk or default_chunk(spec)
    n_chunks = -(-spec.generations // chunk)
    d, dtype = real.shape[1], real.dtype
    history = Pool.zeros(n_chunks * chunk, spec.k_max, d, dtype) if spec.keeps_history else None
    init = LoopState(theta0, Pool.zeros(chunk, spec.k_max, d, dtype))

    def run_chunk(carry, c):
        state, hist = carry

        def step(state, t):
            return generation(spec, key, real_stats, lam, gamma, target, hist, state, t)

        ts = c * chunk + jnp.arange(1, chunk + 1)
        state, out = jax.lax.scan(step, state, ts)
        if hist is not None:
            hist = hist.put(c * chunk, state.recent)
        return (state, hist), out

    _, (w2, err, finite, ratio, thetas) = jax.lax.scan(
        run_chunk, (init, history), jnp.arange(n_chunks)
    )
    flat = lambda a: a.reshape(-1, *a.shape[2:])[: spec.generations]  # noqa: E731
    w2, err, finite, ratio, thetas = jax.tree.map(flat, (w2, err, finite, ratio, thetas))
    w2_0, err_0, finite_0 = _metrics(theta0, target)
    cat = lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b])  # noqa: E731
    return Trace(
        w2=cat(w2_0, w2),
        param_err=cat(err_0, err),
        synth_ratio=cat(jnp.zeros((), ratio.dtype), ratio),
        finite=cat(finite_0, finite),
        final=jax.tree.map(lambda a: a[-1], thetas),
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
    shared by every run.
    """
    run = partial(simulate, spec, target=target, theta0=theta0)
    over_gamma = jax.vmap(run, in_axes=(None, None, None, 0))
    over_lam = jax.vmap(over_gamma, in_axes=(None, None, 0, None))
    over_seed = jax.vmap(over_lam, in_axes=(0, 0, None, None))
    return over_seed(keys, reals, lams, gammas)


def diverged_at(finite: Bool[Array, "... T1"]) -> Array:
    """First generation whose θ is non-finite or exploded; -1 where the run stayed finite."""
    bad = ~finite
    first = jnp.argmax(bad, axis=-1)
    return jnp.where(jnp.any(bad, axis=-1), first, -1)
