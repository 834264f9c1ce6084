"""Theorem 4.3 at a glance: the threshold table, the rates and the eq. (7) curves (float64).

Paper: Thm 4.3 / A.8 (admissible region λ(1+κ) < (1+γ)/(2+γ), rate ρ(λ)/(1+γ), eq. (7)),
Lemma A.7 (exact Gaussian rate λ/((1+λ)(1+γ))), Cor. 4.5 (eq. (7) smaller for every γ > 0).
The κ values are 0 (well specified) and the worked examples of
``theory.constants.gaussian_on_bounded_data`` (a Gaussian fitted to bounded data), so κ is
computed, not chosen.

Two things live here:

- the figure: ``Config`` → ``run(cfg)`` → ``Results`` → ``report(results, out)``
  (``bounds.json`` and ``bounds.png``; the JSON holds the grids, so it carries no config);
- the calculator behind ``scsc bound``: ``Query`` → ``evaluate(query)``, a dict of the
  theorem's quantities for the user's own constants.

Both compute in float64 inside ``jax.enable_x64`` without switching the rest of the
process to it (a global switch would change the precision of every later run in the same
process, e.g. ``scsc figures``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from sims.common import results
from sims.common.config import (
    non_empty,
    nonneg,
    nonneg_int,
    nonneg_or_inf,
    option,
    positive,
    positive_int,
    validate,
)
from sims.common.results import Results
from theory import bounds as thm
from theory import constants

FILES = ("bounds.json", "bounds.png")
EXAMPLES = ("uniform", "truncated-laplace")


@dataclasses.dataclass(frozen=True)
class Config:
    """The grids of the bounds figure (defaults: the committed figure).

    Attributes:
        examples: worked examples of ``theory.constants.gaussian_on_bounded_data`` whose κ
            join κ = 0.
        gamma_min, gamma_max: the threshold panel's γ grid: 0 and n_gamma values
            log-spaced on [gamma_min, gamma_max].
        n_gamma: log-spaced γ values of the threshold panel.
        table_gammas: γ columns of the threshold table (inf allowed).
        lam_max: the rate panel's λ grid ends here (linearly spaced from 0).
        n_lam: λ values of the rate panel.
        rate_gammas: γ of the rate and eq. (7) curves.
        generations: eq. (7) is drawn for t = 0..generations.
        lam: λ of the eq. (7) curves.
        tau: τ_n(δ/t) of the eq. (7) curves.
        err0: ‖θ_0 − θ*‖ of the eq. (7) curves.
    """

    examples: tuple[str, ...] = option(EXAMPLES, choices=EXAMPLES)
    gamma_min: float = option(0.01, check=positive)
    gamma_max: float = option(100.0, check=positive)
    n_gamma: int = option(200, check=positive_int)
    table_gammas: tuple[float, ...] = option(
        (0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf")), check=non_empty(nonneg_or_inf)
    )
    lam_max: float = option(1.5, check=positive)
    n_lam: int = option(301, check=positive_int)
    rate_gammas: tuple[float, ...] = option((0.0, 0.5, 1.0, 5.0), check=non_empty(nonneg))
    generations: int = option(60, check=positive_int)
    lam: float = option(0.3, check=nonneg)
    tau: float = option(0.01, check=nonneg)
    err0: float = option(1.0, check=nonneg)

    def __post_init__(self):
        validate(self)
        if not self.gamma_min < self.gamma_max:
            raise ValueError(f"need gamma_min < gamma_max; got {self.gamma_min}, {self.gamma_max}")

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """Coarser grids (tests, notebooks)."""
        return cls(**{**{"n_gamma": 40, "n_lam": 61, "generations": 20}, **overrides})


def run(cfg: Config) -> Results:
    """Thresholds, rates and eq. (7) curves; writes nothing.

    Returns:
        ``Results`` whose ``data`` holds ``kappas``, ``kappa_labels``, ``examples``
        (kind → κ, α, L, ε), ``gamma_grid``, ``thresholds`` (per κ), ``threshold_table``,
        ``lam_grid``, ``rate_gammas``, ``theorem_rate`` and ``exact_rate`` (γ → curve over
        λ; NaN outside the admissible region), ``t``, ``eq7`` (γ → curve over t) and
        ``eq7_lam``/``eq7_tau``/``eq7_err0``.
    """
    begin = time.perf_counter()
    with jax.enable_x64(True):
        data = _figure_data(cfg)
    return Results(cfg, data, time.perf_counter() - begin)


def _figure_data(cfg: Config) -> dict:
    examples = {kind: constants.gaussian_on_bounded_data(kind) for kind in cfg.examples}
    kappas = [0.0, *(float(e.kappa) for e in examples.values())]
    logs = np.log10(cfg.gamma_min), np.log10(cfg.gamma_max)
    gamma_grid = np.concatenate([[0.0], np.logspace(*logs, cfg.n_gamma)])
    table_gammas = list(cfg.table_gammas)
    lam_grid = np.linspace(0.0, cfg.lam_max, cfg.n_lam)
    rate_gammas = list(cfg.rate_gammas)
    t = np.arange(0, cfg.generations + 1)
    return {
        "kappas": kappas,
        "kappa_labels": [
            "well specified",
            *(
                f"Gaussian fit to {e.kind} on [−{e.half_width:.3g}, {e.half_width:.3g}]"
                for e in examples.values()
            ),
        ],
        "examples": {
            k: {
                "kappa": float(e.kappa),
                "alpha": float(e.alpha),
                "L": float(e.lipschitz),
                "epsilon": float(e.epsilon),
            }
            for k, e in examples.items()
        },
        "gamma_grid": gamma_grid,
        "thresholds": [np.asarray(thm.threshold(gamma_grid, k)) for k in kappas],
        "threshold_table": {
            f"kappa={k:.4g}": {f"{g:g}": float(thm.threshold(g, k)) for g in table_gammas}
            for k in kappas
        },
        "lam_grid": lam_grid,
        "rate_gammas": rate_gammas,
        "theorem_rate": {
            f"{g:g}": np.where(
                np.asarray(thm.is_stable(lam_grid, g)),
                np.asarray(thm.contraction(lam_grid, g)),
                np.nan,
            )
            for g in rate_gammas
        },
        "exact_rate": {
            f"{g:g}": np.asarray(thm.well_specified_rate(lam_grid, g)) for g in rate_gammas
        },
        "t": t,
        "eq7": {
            f"{g:g}": np.asarray(thm.bound(t, cfg.lam, g, 0.0, cfg.tau, cfg.err0))
            for g in rate_gammas
        },
        "eq7_lam": cfg.lam,
        "eq7_tau": cfg.tau,
        "eq7_err0": cfg.err0,
    }


def report(res: Results, out: str | Path) -> dict:
    """Saves ``bounds.json`` (the data and provenance) and ``bounds.png`` into ``out``;
    returns the JSON payload."""
    from sims.gaussian import plotting

    out = Path(out)
    with jax.enable_x64(True):  # the provenance's x64 flag records how ``run`` computed
        prov = results.provenance()
    payload = {**res.data, "provenance": prov}
    plotting.bounds(payload, out / FILES[1], payload["provenance"])
    results.write_json(out / FILES[0], payload, digits=6)
    return payload


@dataclasses.dataclass(frozen=True)
class Query:
    """The theorem's quantities for given constants (``scsc bound``).

    Attributes:
        lam: synthetic ratio λ >= 0.
        gamma: correction strength γ >= 0 (inf ok).
        kappa: κ = εL/α >= 0.
        t: generation t (non-negative integer), for the eq. (7) bound.
        tau: τ_n(δ/t) >= 0, for the eq. (7) bound.
        err0: ‖θ_0 − θ*‖ >= 0, for the eq. (7) bound.
    """

    lam: float = option(check=nonneg)
    gamma: float = option(check=nonneg_or_inf)
    kappa: float = option(0.0, check=nonneg)
    t: int | None = option(None, check=nonneg_int)
    tau: float | None = option(None, check=nonneg)
    err0: float | None = option(None, check=nonneg)

    def __post_init__(self):
        validate(self)
        extra = (self.t, self.tau, self.err0)
        if any(v is not None for v in extra) and not all(v is not None for v in extra):
            raise ValueError("t, tau and err0 go together (eq. (7) needs all three)")


def evaluate(q: Query) -> dict:
    """ρ(λ), the contraction ρ/(1+γ), the threshold, stability, the exact Gaussian rate and
    (with t, τ, ‖θ_0 − θ*‖) the eq. (7) bound, in float64."""
    with jax.enable_x64(True):
        out = {
            "lam": q.lam,
            "gamma": q.gamma,
            "kappa": q.kappa,
            "rho": float(thm.rho(q.lam, q.kappa)),
            "contraction": float(thm.contraction(q.lam, q.gamma, q.kappa)),
            "threshold": float(thm.threshold(q.gamma, q.kappa)),
            "is_stable": bool(thm.is_stable(q.lam, q.gamma, q.kappa)),
            "well_specified_rate": float(thm.well_specified_rate(q.lam, q.gamma)),
        }
        if q.t is not None:
            out.update(t=q.t, tau=q.tau, err0=q.err0)
            out["bound"] = float(thm.bound(q.t, q.lam, q.gamma, q.kappa, q.tau, q.err0))
    return out
