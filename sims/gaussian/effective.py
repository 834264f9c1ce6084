"""Effective correction strength γ̂ of the Gaussian-toy correctors (App. C criterion).

Paper: App. C (valid corrections of strength γ), §4 (the toy's histogram corrector). Each
corrector is applied to samples of a model p_θ = N(displacement·e₁, I) displaced from
θ* = N(0, I), in batches of the size it sees in the toy (⌊λn⌋ = 25 points), and
``theory.effective_gamma.effective_gamma`` fits the γ whose π_γ p_θ best matches the corrected law.
A corrector that is some π_γ has a relative residual near 0; a large one says it is not.

Shape: ``Config`` (``smoke()``; the defaults are the committed table) → ``run(cfg)`` →
``Results`` (one row per corrector and nominal γ, writes nothing) → ``report(results,
out)`` (``effective_gamma.json`` with config and provenance); ``table(results)`` formats
the rows for a terminal.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import deprecation, results
from sims.common.config import (
    non_empty,
    nonneg,
    nonneg_int,
    nonneg_or_inf,
    option,
    positive_int,
    validate,
)
from sims.common.results import Results
from theory import effective_gamma as eg
from theory import gaussian as gauss
from theory import operators as ops

FILES = ("effective_gamma.json",)


@dataclasses.dataclass(frozen=True)
class Config:
    """γ̂ of Gaussian correctors at several nominal γ.

    Attributes:
        corrections: correctors (names from ``theory.operators.CORRECTIONS``).
        gammas: nominal γ of each corrector.
        n: model (and target) samples per estimate (a multiple of ``batch_size``).
        batch_size: points the corrector sees at once (the toy's ⌊λn⌋ = 25).
        displacement: ‖μ_θ − μ*‖ of the model (0 makes γ non-identifiable).
        dim: dimension d.
        seed: PRNG seed.
        n_boot: bootstrap resamples of the CI.
        criterion: ``"energy"`` or ``"ks"`` (see ``theory.effective_gamma.effective_gamma``).
    """

    corrections: tuple[str, ...] = option(
        ("ideal", "histogram", "histogram-reference"), choices=ops.CORRECTIONS, check=non_empty()
    )
    gammas: tuple[float, ...] = option((0.3, 1.0, 3.0), check=non_empty(nonneg_or_inf))
    n: int = option(2000, check=positive_int)
    batch_size: int = option(25, check=positive_int)
    displacement: float = option(1.5, check=nonneg)
    dim: int = option(2, check=positive_int)
    seed: int = option(0, check=nonneg_int)
    n_boot: int = option(200, check=positive_int)
    criterion: str = option("energy", choices=eg.CRITERIA)

    def __post_init__(self):
        validate(self)
        if self.n % self.batch_size:
            raise ValueError(f"n = {self.n} must be a multiple of batch_size = {self.batch_size}")

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """Seconds long: γ = 1, n = 400, 50 bootstrap resamples (tests)."""
        return cls(**{**{"gammas": (1.0,), "n": 400, "n_boot": 50}, **overrides})


def run(cfg: Config) -> Results:
    """One row per (correction, nominal γ): γ̂, CI, relative residual, identifiable.

    Writes nothing. ``Results.data`` is ``{"rows": [...]}``, each row a dict with
    ``correction``, ``nominal_gamma``, ``gamma_hat``, ``ci``, ``relative_residual``,
    ``identifiable`` and ``message``.
    """
    begin = time.perf_counter()
    key = jax.random.key(cfg.seed)
    k_model, k_target, k_est = jax.random.split(key, 3)
    target = gauss.standard(cfg.dim)
    model = gauss.Gaussian(jnp.zeros(cfg.dim).at[0].set(cfg.displacement), jnp.eye(cfg.dim))
    model_x = gauss.sample(k_model, model, cfg.n)
    target_x = gauss.sample(k_target, target, cfg.n)
    rows = []
    for name in cfg.corrections:
        # γ is an argument of one compiled corrector per name (not a closure per γ).
        correct = jax.jit(lambda g, k, x, name=name: ops.make_corrector(name, g, target)(k, x))
        for i, gamma in enumerate(cfg.gammas):
            g = jnp.asarray(gamma, model_x.dtype)
            res = eg.effective_gamma(
                jax.random.fold_in(k_est, i),
                lambda k, x, labels=None, g=g, correct=correct: correct(g, k, x),
                model_x,
                target_x,
                criterion=cfg.criterion,
                n_boot=cfg.n_boot,
                batch_size=cfg.batch_size,
            )
            rows.append(
                {
                    "correction": name,
                    "nominal_gamma": gamma,
                    "gamma_hat": float(res.gamma),
                    "ci": [float(v) for v in np.asarray(res.ci)],
                    "relative_residual": float(res.relative_residual),
                    "identifiable": bool(res.identifiable),
                    "message": res.message,
                }
            )
    return Results(cfg, {"rows": rows}, time.perf_counter() - begin)


def report(res: Results, out: str | Path) -> dict:
    """Saves ``effective_gamma.json`` (rows, config, provenance) into ``out``; returns it."""
    cfg = res.config
    payload = {
        **res.data,
        "config": results.config_dict(cfg),
        "provenance": results.provenance(cfg),
    }
    results.write_json(Path(out) / FILES[0], payload, digits=5)
    return payload


def table(res: Results) -> str:
    """The rows as a fixed-width text table (what ``scsc effective-gamma`` prints)."""
    lines = [f"{'correction':>20} {'γ':>5} {'γ̂':>8}  95% CI              rel. residual"]
    for r in res.data["rows"]:
        lo, hi = r["ci"]
        lines.append(
            f"{r['correction']:>20} {r['nominal_gamma']:>5g} {r['gamma_hat']:>8.3g}  "
            f"[{lo:.3g}, {hi:.3g}]{'':<8} {r['relative_residual']:.3g}"
        )
    return "\n".join(lines)


def _main(cfg: Config) -> dict:
    return run(cfg).data


main = deprecation.alias(f"{__name__}.main", f"{__name__}.run(cfg).data", _main)
