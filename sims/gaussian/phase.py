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

Shape: ``Config`` (``smoke()``, ``quick()``; the defaults are the committed figure) →
``run(cfg, progress=...)`` → ``Results`` (every map, writes nothing) → ``report(results,
out)`` (``phase_diagram.npz`` with every map, ``phase_diagram.json`` with config,
provenance and ``summary``, ``phase_diagram.png``). The workflows comparison moved to
``sims.gaussian.workflows``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import deprecation, results
from sims.common.config import in_open_unit, nonneg, option, positive_int, validate
from sims.common.results import Results
from sims.gaussian import sweep
from sims.gaussian.loop import SWEEP_WORKFLOWS
from theory import bounds
from theory import operators as ops

FILES = ("phase_diagram.npz", "phase_diagram.json", "phase_diagram.png")

# Region codes of ``main()["region"]``.
GUARANTEED, SILENT_STABLE, SILENT_UNSTABLE, GUARANTEED_UNSTABLE = 0, 1, 2, 3
REGION_NAMES = (
    "theorem guarantees contraction",
    "theorem silent, every seed stable",
    "theorem silent, divergence or collapse",
    "theorem guarantees, yet unstable",
)


def lam_grid(lam_max: float, n_lam: int) -> np.ndarray:
    """The phase maps' λ axis: ``n_lam`` values linearly spaced on [0, lam_max]."""
    return np.linspace(0.0, lam_max, n_lam)


def gamma_grid(gamma_min: float, gamma_max: float, n_gamma: int) -> np.ndarray:
    """The phase maps' γ axis: 0 plus ``n_gamma`` − 1 values log-spaced on
    [gamma_min, gamma_max]."""
    logs = np.logspace(np.log10(gamma_min), np.log10(gamma_max), n_gamma - 1)
    return np.concatenate([[0.0], logs])


def check_seed_count(name: str, seeds: int) -> None:
    """A seed count >= 2 (per-cell standard errors need two)."""
    positive_int(name, seeds)
    if seeds < 2:
        raise ValueError(f"{name} must be >= 2 (standard errors need two); got {seeds}")


def _check_n_gamma(name: str, value: int) -> None:
    positive_int(name, value)
    if value < 2:
        raise ValueError(f"{name} must be >= 2 (0 and at least one γ > 0); got {value}")


@dataclasses.dataclass(frozen=True)
class Config:
    """One phase diagram (defaults: 64 × 64 grid, 32 seeds, 300 generations, d = 2).

    Attributes:
        workflow: the data workflow of the simulated loop.
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
        batch_size: cells per batch (one batch per device per dispatched chunk); none picks
            ``sims.gaussian.sweep.default_batch``; other sizes change the numbers only by
            float rounding.
        engine: the sweep engine (``sims.gaussian.sweep.ENGINES``): ``tables``, the default,
            or the previous ``stats`` engine (same law, other random numbers).
    """

    workflow: str = option("augment", choices=SWEEP_WORKFLOWS)
    n_lam: int = option(64, check=positive_int)
    lam_max: float = option(2.0, check=nonneg)
    n_gamma: int = option(64, check=_check_n_gamma)
    gamma_min: float = 0.01
    gamma_max: float = 10.0
    seeds: int = option(32, check=check_seed_count)
    generations: int = option(300, check=positive_int)
    n_real: int = option(50, check=positive_int)
    dim: int = option(2, check=positive_int)
    kappa: float = option(0.0, check=nonneg)
    displacement: float = 5.0
    collapse_tol: float = option(1e-2, check=in_open_unit)
    batch_size: int | None = option(None, check=positive_int, default_text="auto")
    engine: str = option("tables", choices=sweep.ENGINES)

    def __post_init__(self):
        validate(self)
        if not 0 < self.gamma_min < self.gamma_max < np.inf:
            raise ValueError(
                f"need 0 < gamma_min < gamma_max < inf; got {self.gamma_min}, {self.gamma_max}"
            )
        self.spec()  # the engine's own checks (generations >= 4, displacement >= 0, ...)

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """Seconds long: 6 × 5 grid, 4 seeds, 40 generations (tests, notebooks)."""
        base = {"n_lam": 6, "n_gamma": 5, "seeds": 4, "generations": 40, "batch_size": 8}
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides) -> Config:
        """A laptop in under a minute: 24 × 24 grid, 16 seeds, 200 generations."""
        base = {"n_lam": 24, "n_gamma": 24, "seeds": 16, "generations": 200}
        return cls(**{**base, **overrides})

    def lams(self) -> np.ndarray:
        return lam_grid(self.lam_max, self.n_lam)

    def gammas(self) -> np.ndarray:
        return gamma_grid(self.gamma_min, self.gamma_max, self.n_gamma)

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


def run(cfg: Config, *, progress: Callable[[int], None] | None = None, devices=None) -> Results:
    """Runs the grid and assembles every panel's map (arrays shaped (n_lam, n_gamma)).

    Writes nothing.

    Args:
        cfg: the phase diagram.
        progress: the engine's progress hook ``on_cells(done: int)``, called on the host
            with the cumulative number of grid cells finished (``sims.gaussian.sweep.grid``).
        devices: as in ``sims.gaussian.sweep.grid`` (default: all).

    Returns:
        ``Results`` whose ``data`` holds ``lams``, ``gammas``, ``seconds`` (the sweep's wall
        time), every ``CellStats`` scalar map, the theory maps, ``tightness``,
        ``rate_vs_exact``, ``region``, ``threshold_gammas`` and ``threshold``.
    """
    begin = time.perf_counter()
    lams, gammas = cfg.lams(), cfg.gammas()
    start = time.perf_counter()
    stats = sweep.grid(
        cfg.spec(),
        seed_keys(cfg.seeds),
        lams,
        gammas,
        batch_size=cfg.batch_size,
        devices=devices,
        on_cells=progress,
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
    return Results(cfg, out, time.perf_counter() - begin)


def report(res: Results, out: str | Path) -> dict:
    """Saves ``phase_diagram.npz`` (every map), ``phase_diagram.json`` (config, provenance,
    ``summary``) and ``phase_diagram.png`` into ``out``; returns the JSON payload."""
    from sims.gaussian import plotting

    cfg, maps = res.config, res.data
    out = Path(out)
    prov = results.provenance(cfg, range(cfg.seeds))
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / FILES[0], **{k: np.asarray(v) for k, v in maps.items() if k != "seconds"}
    )
    payload = {
        "config": results.config_dict(cfg),
        "provenance": prov,
        "summary": summary(maps),
        "data": "phase_diagram.npz (every map, shape (n_lam, n_gamma); lams, gammas)",
    }
    results.write_json(out / FILES[1], payload, digits=5)
    plotting.phase_diagram(maps, payload["config"], out / FILES[2], prov)
    return payload


def _main(cfg: Config, devices=None) -> dict:
    return run(cfg, devices=devices).data


main = deprecation.alias(f"{__name__}.main", f"{__name__}.run(cfg).data", _main)


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


def _workflows(cfg) -> dict:
    from sims.gaussian import workflows

    return workflows.run(cfg).data


workflows = deprecation.alias(
    f"{__name__}.workflows", "sims.gaussian.workflows.run(cfg).data", _workflows
)
__getattr__ = deprecation.module_getattr(
    __name__, {"WorkflowsConfig": "sims.gaussian.workflows.Config"}
)
