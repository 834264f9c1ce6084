"""Data workflows compared: ``replace`` vs ``augment`` vs ``accumulate`` over generations.

Paper: Algorithm 1 (``augment``: fixed real set + fresh synthetic, the theorem's setting);
``replace`` (refit on own samples only) and ``accumulate`` (keep every synthetic set) are
the two alternatives of Bertrand et al. With the ideal corrector π_γ at several γ: without
real data the fit collapses at γ = 0 (E log det Σ_t drifts by an exact constant per
generation, ``theory.chains.replace_log_det_drift``), and any γ > 0 anchors it.

Shape: ``Config`` (``smoke()``; the defaults are the committed figure) → ``run(cfg)`` →
``Results`` (curves per workflow and γ, writes nothing) → ``report(results, out)``
(``workflows.json`` with config and provenance, ``workflows.png``). The loop is the
sufficient-statistic engine ``sims.gaussian.sweep``, one compilation for all workflows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sims.common import results
from sims.common.config import in_open_unit, nonneg, nonneg_or_inf, option, positive_int, validate
from sims.common.results import Results
from sims.gaussian import sweep
from sims.gaussian.loop import SWEEP_WORKFLOWS
from sims.gaussian.phase import check_seed_count, seed_keys
from theory import chains
from theory import operators as ops

FILES = ("workflows.json", "workflows.png")


@dataclasses.dataclass(frozen=True)
class Config:
    """``replace`` vs ``augment`` vs ``accumulate`` over generations, per γ (one λ).

    Attributes:
        gammas: correction strengths γ (inf allowed).
        lam: λ of augment/accumulate (replace always draws n points).
        seeds: seeds (seed s uses ``jax.random.key(s)``).
        generations: T.
        n_real: real points n.
        dim: dimension d.
        displacement: ‖μ_0 − real mean‖ of the start; 0 starts from the real MLE (the
            paper's generation 0).
        collapse_tol: collapse once λ_min(Σ_t) < collapse_tol (θ* = N(0, I)).
        engine: the sweep engine (``sims.gaussian.sweep.ENGINES``; default ``tables``).
    """

    gammas: tuple[float, ...] = option((0.0, 0.1, 1.0, 10.0), check=nonneg_or_inf)
    lam: float = option(0.5, check=nonneg)
    seeds: int = option(32, check=check_seed_count)
    generations: int = option(300, check=positive_int)
    n_real: int = option(50, check=positive_int)
    dim: int = option(2, check=positive_int)
    displacement: float = 0.0
    collapse_tol: float = option(1e-2, check=in_open_unit)
    engine: str = option("tables", choices=sweep.ENGINES)

    def __post_init__(self):
        validate(self)
        self.spec("augment")  # the engine's own checks

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """Seconds long: 4 seeds, 40 generations (tests, notebooks)."""
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


def run(cfg: Config, *, progress: Callable[[int], None] | None = None) -> Results:
    """Per workflow: W2 and λ_min(Σ_t) curves per γ, collapse fractions and generations.

    Writes nothing.

    Args:
        cfg: the comparison.
        progress: the engine's progress hook ``on_cells(done: int)`` (cells are workflow ×
            γ), see ``sims.gaussian.sweep.grid``.

    Returns:
        ``Results`` whose ``data`` holds ``gammas``, ``lam``, ``workflows`` (name → curves
        shaped (γ, T+1), ``collapsed_frac``, ``collapsed_at``, ``diverged_frac``,
        ``final_w2_mean`` per γ), ``seconds``, and the γ = 0 overlay
        ``replace_exact_log_det_gamma0`` / ``replace_log_det_drift``.
    """
    begin = time.perf_counter()
    out = {"gammas": list(cfg.gammas), "lam": cfg.lam, "workflows": {}}
    start = time.perf_counter()
    stats = sweep.grid(
        cfg.spec("augment"),
        seed_keys(cfg.seeds),
        np.asarray([cfg.lam]),
        np.asarray(cfg.gammas),
        workflows=SWEEP_WORKFLOWS,
        on_cells=progress,
    )
    keys = (*_CURVES, "collapsed_frac", "collapsed_at", "diverged_frac", "final_w2_mean")
    for i, name in enumerate(SWEEP_WORKFLOWS):
        out["workflows"][name] = {k: getattr(stats, k)[i, 0] for k in keys}
    out["seconds"] = time.perf_counter() - start
    # Theory overlay: at γ = 0 E log det Σ_t drifts by an exact constant per generation.
    start_logdet = out["workflows"]["replace"]["log_det_mean"][:, 0]
    drift = float(chains.replace_log_det_drift(cfg.n_real, cfg.dim))
    out["replace_exact_log_det_gamma0"] = start_logdet[0] + drift * np.arange(cfg.generations + 1)
    out["replace_log_det_drift"] = drift
    return Results(cfg, out, time.perf_counter() - begin)


def report(res: Results, out: str | Path) -> dict:
    """Saves ``workflows.json`` (the data, ``collapse_tol``, config, provenance) and
    ``workflows.png`` into ``out``; returns the JSON payload."""
    from sims.gaussian import plotting

    cfg, out = res.config, Path(out)
    payload = {
        **res.data,
        "collapse_tol": cfg.collapse_tol,
        "config": results.config_dict(cfg),
        "provenance": results.provenance(cfg, range(cfg.seeds)),
    }
    plotting.workflows(payload, out / FILES[1], payload["provenance"])
    results.write_json(out / FILES[0], payload, digits=4)
    return payload
