"""What a λ × γ sweep cell is and returns, shared by both sweep engines.

``StatsSpec`` is the static description of a sweep (one compilation per spec), ``CellStats``
the seed summaries of one (λ, γ) cell, and the helpers below compute the summaries that do
not depend on how the runs were drawn (transient-rate regression, bias-corrected lag-1
autocorrelation, earliest event). The engines are ``sims.gaussian.engine`` (random tables
shared by all cells, the default) and ``sims.gaussian.sweep_stats`` (one run at a time from
exact sufficient statistics, the previous engine); ``sims.gaussian.sweep.grid`` runs either.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from sims.gaussian.loop import BLOWUP, SWEEP_WORKFLOWS
from theory._checks import check_positive_int

__all__ = ["BLOWUP", "ENGINES", "SWEEP_WORKFLOWS", "CellStats", "StatsSpec"]

ENGINES = ("tables", "stats")
Z_TRANSIENT = 4.0  # a transient point counts while its seed mean exceeds this many SE


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
        engine: ``"tables"`` (``sims.gaussian.engine``, the default) or ``"stats"``
            (``sims.gaussian.sweep_stats``, the previous engine); same law, different random
            numbers.
    """

    workflow: str = "augment"
    generations: int = 300
    n_real: int = 50
    dim: int = 2
    k_max: int = 100
    displacement: float = 5.0
    window: int | None = None
    collapse_tol: float = 1e-2
    engine: str = "tables"

    def __post_init__(self):
        if self.workflow not in SWEEP_WORKFLOWS:
            raise ValueError(f"workflow must be one of {SWEEP_WORKFLOWS}; got {self.workflow!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; got {self.engine!r}")
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

    @property
    def group_max(self) -> int:
        """Largest group size a generation can draw: k_max, or n for ``replace``."""
        return max(self.k_max, self.n_real) if self.workflow == "replace" else self.k_max


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


def first(flags: Array) -> Array:
    """First index along the last axis where ``flags`` holds; −1 if never."""
    return jnp.where(jnp.any(flags, axis=-1), jnp.argmax(flags, axis=-1), -1)


def earliest(at: Array, axis: int = -1) -> Array:
    """Smallest non-negative entry along ``axis`` (−1 marks "never"); −1 if none."""
    big = jnp.iinfo(at.dtype).max
    best = jnp.min(jnp.where(at >= 0, at, big), axis=axis)
    return jnp.where(best == big, -1, best)


def transient_rate(d_t: Array, se: Array, stop: int) -> tuple[Array, Array]:
    """exp(slope) of log D_t over the leading run of generations with D_t > 4·SE."""
    t = jnp.arange(d_t.shape[0], dtype=d_t.dtype)
    ok = (d_t > Z_TRANSIENT * se) & (t < stop)
    # The leading run of ok: t before the first failure (argmax of ~ok, or all if none
    # fails) — a cumulative product would lower to a scan that is slow to compile.
    end = jnp.where(jnp.all(ok), ok.shape[0], jnp.argmax(~ok))
    usable = t < end
    m = jnp.sum(usable)
    w = usable.astype(d_t.dtype)
    y = jnp.log(jnp.where(usable, d_t, 1.0))
    mt = jnp.sum(w * t) / jnp.maximum(m, 1)
    my = jnp.sum(w * y) / jnp.maximum(m, 1)
    slope = jnp.sum(w * (t - mt) * (y - my)) / jnp.maximum(jnp.sum(w * (t - mt) ** 2), 1e-30)
    return jnp.where(m >= 2, jnp.exp(slope), jnp.nan), m


def marriott_pope(r: Array, pairs: int) -> Array:
    """Lag-1 autocorrelation r over ``pairs`` pairs, bias-corrected: (m r + 1)/(m − 3).

    For the augment chain E[e_{t+1} | e_t] = b + a e_t with a the contraction, so the
    stationary lag-1 autocorrelation is a; the sample estimate is biased by about
    −(1 + 3a)/m over m pairs (Marriott & Pope 1954).
    """
    return (pairs * r + 1.0) / (pairs - 3.0)
