"""Phase diagrams over λ × γ: the theorem, the exact contraction and the simulated loop.

Paper: Thm 4.3 / A.8 (admissible region λ(1+κ) < (1+γ)/(2+γ), rate ρ(λ)/(1+γ)), Lemma A.7
(exact Gaussian rate λ/((1+λ)(1+γ))), Conjecture 4.7 (stability beyond the theorem).

Panels, per cell (λ, γ):

(a) the theorem: guaranteed rate ρ/(1+γ) inside the admissible region, threshold λ*(γ);
(b) the exact population contraction λ/((1+λ)(1+γ));
(c) the simulated loop (``sims.gaussian.sweep``, ideal π_γ, exact sufficient statistics): the
    contraction rate fitted to the transient from a displaced start (log-error regression)
    and, independently, the lag-1 autocorrelation of the stationary chain; stationary W2;
    divergence / collapse with the generation it happened;
(d) tightness: theorem rate / measured rate, and the region where the theorem is silent but
    every seed stayed stable (evidence for Conjecture 4.7).

``workflows`` compares ``replace`` / ``augment`` / ``accumulate`` over generations: the
collapse without real data, and how γ removes it.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from sims.gaussian import sweep
from theory import bounds, chains
from theory import operators as ops
from theory._checks import check_nonneg, check_positive_int

# Region codes of ``main()["region"]``.
GUARANTEED, SILENT_STABLE, SILENT_UNSTABLE, GUARANTEED_UNSTABLE = 0, 1, 2, 3
REGION_NAMES = (
    "theorem guarantees contraction",
    "theorem silent, every seed stable",
    "theorem silent, divergence or collapse",
    "theorem guarantees, yet unstable",
)


def _check_seeds(seeds: int) -> None:
    check_positive_int("seeds", seeds)
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 (standard errors need two); got {seeds}")


@dataclasses.dataclass(frozen=True)
class Config:
    """One phase diagram (defaults: 64 × 64 grid, 32 seeds, 300 generations, d = 2).

    Attributes:
        workflow: ``sims.gaussian.sweep.WORKFLOWS``.
        n_lam: λ grid size, linearly spaced on [0, lam_max].
        lam_max: largest λ.
        n_gamma: γ grid size: 0 plus n_gamma − 1 values log-spaced on [gamma_min, gamma_max].
        gamma_min, gamma_max: log-spaced γ range.
        seeds: seeds per cell (seed s uses ``jax.random.key(s)``; shared by all cells).
        generations: T.
        n_real: real points n.
        dim: dimension d.
        kappa: κ = εL/α of the theorem panels (the simulated family is well specified,
            κ = 0; a κ > 0 shows how misspecification shrinks the guaranteed region).
        displacement: ‖μ_0 − real mean‖ of the start, so the transient is measurable.
        collapse_tol: collapse once λ_min(Σ_t) < collapse_tol (θ* = N(0, I)).
        batch_size: cells per batch; None picks ``sims.gaussian.sweep.default_batch``.
            Other sizes change the numbers only by float rounding.
        engine: ``sims.gaussian.sweep.ENGINES``: ``"tables"`` (default) or the previous
            ``"stats"`` engine (same law, other random numbers).
    """

    workflow: str = "augment"
    n_lam: int = 64
    lam_max: float = 2.0
    n_gamma: int = 64
    gamma_min: float = 0.01
    gamma_max: float = 10.0
    seeds: int = 32
    generations: int = 300
    n_real: int = 50
    dim: int = 2
    kappa: float = 0.0
    displacement: float = 5.0
    collapse_tol: float = 1e-2
    batch_size: int | None = None
    engine: str = "tables"

    def __post_init__(self):
        for name in ("n_lam", "generations", "n_real", "dim"):
            check_positive_int(name, getattr(self, name))
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        _check_seeds(self.seeds)
        if self.n_gamma < 2:
            raise ValueError(f"n_gamma must be >= 2 (0 and at least one γ > 0); got {self.n_gamma}")
        check_nonneg("lam_max", self.lam_max, allow_inf=False)
        check_nonneg("kappa", self.kappa, allow_inf=False)
        if not 0 < self.gamma_min < self.gamma_max < np.inf:
            raise ValueError(
                f"need 0 < gamma_min < gamma_max < inf; got {self.gamma_min}, {self.gamma_max}"
            )
        self.spec()

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """A seconds-long variant for tests and notebooks."""
        base = {"n_lam": 6, "n_gamma": 5, "seeds": 4, "generations": 40}
        return cls(**{**base, **overrides})

    def lams(self) -> np.ndarray:
        return np.linspace(0.0, self.lam_max, self.n_lam)

    def gammas(self) -> np.ndarray:
        logs = np.logspace(np.log10(self.gamma_min), np.log10(self.gamma_max), self.n_gamma - 1)
        return np.concatenate([[0.0], logs])

    def spec(self) -> sweep.StatsSpec:
        k_max = max(1, int(ops.n_synthetic(self.lam_max, self.n_real)))
        return sweep.StatsSpec(
            workflow=self.workflow,
            generations=self.generations,
            n_real=self.n_real,
            dim=self.dim,
            k_max=k_max,
            displacement=self.displacement,
            collapse_tol=self.collapse_tol,
            engine=self.engine,
        )


def seed_keys(seeds: int) -> jax.Array:
    return jax.vmap(jax.random.key)(jnp.arange(seeds))


@jax.jit
def _theorem_arrays(ll, gg, kappa):
    # One compiled call: op by op, each bounds operation compiles on first use (~0.5 s of a
    # cold `scsc phase`). Inputs were validated by Config.
    rates = (bounds.contraction(ll, gg, kappa), bounds.well_specified_rate(ll, gg))
    return bounds.is_stable(ll, gg, kappa), *rates


def theory_maps(lams: np.ndarray, gammas: np.ndarray, n_real: int, kappa: float) -> dict:
    """Panels (a) and (b): the theorem's rate/region and the exact contractions."""
    ll, gg = np.meshgrid(lams, gammas, indexing="ij")
    stable, theorem, population = (np.asarray(a) for a in _theorem_arrays(ll, gg, kappa))
    k = np.asarray(ops.n_synthetic(ll, n_real), dtype=float)
    return {
        "theorem_rate": np.where(stable, theorem, np.nan),
        "is_stable": stable,
        "population_rate": population,
        # The finite-n loop uses k = ⌊λn⌋ points: its mean contracts at k/((n+k)(1+γ)).
        "finite_n_rate": k / ((n_real + k) * (1.0 + gg)),
    }


def regions(stable: np.ndarray, bad_frac: np.ndarray) -> np.ndarray:
    """Panel (d): region code per cell (``REGION_NAMES``)."""
    unstable = bad_frac > 0
    return np.where(
        stable,
        np.where(unstable, GUARANTEED_UNSTABLE, GUARANTEED),
        np.where(unstable, SILENT_UNSTABLE, SILENT_STABLE),
    ).astype(np.int8)


def main(cfg: Config, devices=None) -> dict:
    """Runs the grid and assembles every panel's map (arrays shaped (n_lam, n_gamma)).

    Writes nothing. ``devices`` as in ``sims.gaussian.sweep.grid`` (default: all).
    """
    lams, gammas = cfg.lams(), cfg.gammas()
    start = time.perf_counter()
    stats = sweep.grid(
        cfg.spec(), seed_keys(cfg.seeds), lams, gammas, batch_size=cfg.batch_size, devices=devices
    )
    seconds = time.perf_counter() - start
    out = {"lams": lams, "gammas": gammas, "seconds": seconds}
    # Per-cell scalars (shape (n_lam, n_gamma)); the per-generation curves stay behind.
    scalars = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    out.update({k: v for k, v in scalars.items() if v.ndim == 2})
    out.update(theory_maps(lams, gammas, cfg.n_real, cfg.kappa))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["tightness"] = out["theorem_rate"] / out["rate_transient"]
        out["rate_vs_exact"] = out["rate_transient"] / out["finite_n_rate"]
    out["region"] = regions(out["is_stable"], out["diverged_frac"] + out["collapsed_frac"])
    fine = np.concatenate(
        [[0.0], np.logspace(np.log10(cfg.gamma_min), np.log10(cfg.gamma_max), 400)]
    )
    out["threshold_gammas"] = fine
    out["threshold"] = np.asarray(bounds.threshold(fine, cfg.kappa))
    return out


def summary(res: dict) -> dict:
    """Headline numbers of a phase diagram (what the closing note and README quote)."""
    stable = res["is_stable"]
    tight = res["tightness"][stable & np.isfinite(res["tightness"])]
    meas = np.isfinite(res["rate_transient"]) & (res["rate_points"] >= 3)
    rel = res["rate_vs_exact"][meas]
    ac = res["rate_autocorr"] - res["finite_n_rate"]
    region = res["region"]
    return {
        "seconds": res["seconds"],
        "cells": int(region.size),
        "cells_per_region": {name: int(np.sum(region == i)) for i, name in enumerate(REGION_NAMES)},
        "tightness_range": [float(np.min(tight)), float(np.max(tight))] if tight.size else None,
        "tightness_median": float(np.median(tight)) if tight.size else None,
        "transient_rate_over_exact": {
            "cells": int(meas.sum()),
            "median": float(np.median(rel)) if rel.size else None,
            "q05_q95": [float(np.quantile(rel, 0.05)), float(np.quantile(rel, 0.95))]
            if rel.size
            else None,
        },
        "autocorr_minus_exact": {
            "median": float(np.nanmedian(ac)),
            "max_abs": float(np.nanmax(np.abs(ac))),
        },
        "diverged_cells": int(np.sum(res["diverged_frac"] > 0)),
        "collapsed_cells": int(np.sum(res["collapsed_frac"] > 0)),
    }


@dataclasses.dataclass(frozen=True)
class WorkflowsConfig:
    """``replace`` vs ``augment`` vs ``accumulate`` over generations, per γ (one λ).

    Attributes:
        gammas: correction strengths.
        lam: λ of augment/accumulate (replace always draws n points).
        seeds, generations, n_real, dim, collapse_tol: as in ``Config``.
        displacement: 0 starts from the real MLE (the paper's generation 0).
        engine: as in ``Config``.
    """

    gammas: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0)
    lam: float = 0.5
    seeds: int = 32
    generations: int = 300
    n_real: int = 50
    dim: int = 2
    displacement: float = 0.0
    collapse_tol: float = 1e-2
    engine: str = "tables"

    def __post_init__(self):
        check_nonneg("gammas", list(self.gammas))
        check_nonneg("lam", self.lam, allow_inf=False)
        for name in ("generations", "n_real", "dim"):
            check_positive_int(name, getattr(self, name))
        _check_seeds(self.seeds)
        self.spec("augment")

    @classmethod
    def smoke(cls, **overrides) -> WorkflowsConfig:
        return cls(**{**{"seeds": 4, "generations": 40}, **overrides})

    def spec(self, workflow: str) -> sweep.StatsSpec:
        return sweep.StatsSpec(
            workflow=workflow,
            generations=self.generations,
            n_real=self.n_real,
            dim=self.dim,
            k_max=max(1, int(ops.n_synthetic(self.lam, self.n_real))),
            displacement=self.displacement,
            collapse_tol=self.collapse_tol,
            engine=self.engine,
        )


_CURVES = ("w2_mean", "w2_median", "min_eig_median", "log_det_mean")


def workflows(cfg: WorkflowsConfig) -> dict:
    """Per workflow: W2 and λ_min(Σ_t) curves per γ, collapse fractions and generations."""
    out = {"gammas": list(cfg.gammas), "lam": cfg.lam, "workflows": {}}
    start = time.perf_counter()
    stats = sweep.grid(
        cfg.spec("augment"),
        seed_keys(cfg.seeds),
        np.asarray([cfg.lam]),
        np.asarray(cfg.gammas),
        workflows=sweep.WORKFLOWS,
    )
    keys = (*_CURVES, "collapsed_frac", "collapsed_at", "diverged_frac", "final_w2_mean")
    for i, name in enumerate(sweep.WORKFLOWS):
        out["workflows"][name] = {k: getattr(stats, k)[i, 0] for k in keys}
    out["seconds"] = time.perf_counter() - start
    # Theory overlay: at γ = 0 E log det Σ_t drifts by an exact constant per generation.
    start_logdet = out["workflows"]["replace"]["log_det_mean"][:, 0]
    drift = float(chains.replace_log_det_drift(cfg.n_real, cfg.dim))
    out["replace_exact_log_det_gamma0"] = start_logdet[0] + drift * np.arange(cfg.generations + 1)
    out["replace_log_det_drift"] = drift
    return out
