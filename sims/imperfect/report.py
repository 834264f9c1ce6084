"""``scsc imperfect``: the imperfect-corrector maps, the real correctors placed on them, and the
map's prediction beside the measured loops.

Paper: Def. 4.1, eq. (5), Thm 4.3, Cor. 4.5, App. C. Shape: ``Config`` (``smoke()``,
``quick()``; the defaults are the committed figures) → ``run(cfg)`` → ``Results`` (writes
nothing) → ``report(results, out)``:

- ``imperfect_maps.npz`` (every map of ``sims.gaussian.imperfect_maps``) and
  ``imperfect_maps.png`` (simulation and exact theory side by side, the replace panel);
- ``imperfect_correctors.json`` (config, provenance, the maps' findings, each real
  corrector's one-pass shift / std ratio with 95 % CIs and its map coordinates, the
  predicted vs measured loop outcomes) and ``imperfect_correctors.png`` (the correctors on
  the (γ × bias) map at the loop's λ, and predicted vs measured ratios).

This package sits above the experiments (it reads the Gaussian maps and runs the digits and
motion correctors); no experiment imports it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from sims.common import results
from sims.common.config import non_empty, option, positive_int
from sims.common.results import Results
from sims.gaussian import imperfect_maps, misspecified_map
from sims.gaussian.imperfect_maps import MapsConfig
from sims.gaussian.misspecified_map import MisspecifiedMapConfig
from sims.imperfect import real

__all__ = [
    "FILES",
    "MISSPECIFIED",
    "REAL",
    "Config",
    "findings",
    "misspecified_findings",
    "report",
    "run",
]

FILES = (
    "imperfect_maps.npz",
    "imperfect_maps.png",
    "imperfect_correctors.json",
    "imperfect_correctors.png",
    "misspecified_map.png",
)
MISSPECIFIED = ("default", "smoke", "off")
REAL = ("gaussian", "digits", "motion")
# The Gaussian toy's correctors at the γ of ``figures/gaussian_toy.json`` that also have a
# committed γ̂ (``figures/effective_gamma.json``: nominal 0.3, 1, 3).
TOY_GAMMAS = (0.3, 1.0)


def _n_boot(name: str, value: int) -> None:
    positive_int(name, value)
    if value < 10:
        raise ValueError(f"{name} must be >= 10; got {value}")


@dataclasses.dataclass(frozen=True)
class Config(MapsConfig):
    """The maps and the real correctors (defaults: the committed figures).

    Attributes:
        n_real: real points n (the replace panel draws n points per generation).
        lam: λ of the (γ × bias) and (γ × shrink) maps.
        gamma: γ of the (λ × bias) map.
        n_gamma: γ grid: 0 plus n_gamma − 1 values log-spaced on [gamma_min, gamma_max].
        gamma_min, gamma_max: the log-spaced γ range.
        n_bias: bias grid, linear on [0, bias_max] (units of the data's std).
        bias_max: largest bias.
        n_lam: λ grid of the (λ × bias) map, log-spaced on [lam_min, lam_max].
        lam_min, lam_max: the λ range.
        n_shrink: shrink grid size (augment: [0, shrink_max]; replace:
            [replace_shrink_min, shrink_max]).
        shrink_max: largest s.
        replace_shrink_min: smallest s of the replace panel.
        seeds: seeds per cell (shared by all cells).
        generations: T (the stationary window is t ≥ T/2).
        seed: base seed.
        batch_size: cells per compiled batch.
        real: real correctors to estimate: ``gaussian`` (the two histogram correctors of
            the toy, seconds), ``digits`` (K-means on the cached 8×8 digits, seconds),
            ``motion`` (both physics trackers on 64 cached motions, C MuJoCo, ~30 s).
        n_boot: bootstrap resamples of the correctors' CIs.
        figures: folder of the committed loop results read for the comparison
            (``gaussian_toy.json``, ``fig8_digits.json``, ``fig4_motion.json``) and γ̂.
        misspecified: the misspecified phase map (``sims.gaussian.misspecified_map``):
            ``default`` (the phase diagram's 64 × 64 grid, 32 seeds, 300 generations, per
            data law), ``smoke`` or ``off``.
    """

    real: tuple[str, ...] = option(REAL, choices=REAL, check=non_empty())
    n_boot: int = option(200, check=_n_boot)
    figures: str = "figures"
    misspecified: str = option("default", choices=MISSPECIFIED)

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """Seconds long: the smoke maps and the Gaussian correctors only."""
        base = {"n_gamma": 4, "n_bias": 3, "n_lam": 3, "n_shrink": 3, "seeds": 4}
        base.update(generations=20, batch_size=64, real=("gaussian",), n_boot=20)
        base.update(misspecified="smoke")
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides) -> Config:
        """Under a minute on a laptop: coarser maps, Gaussian and digits correctors."""
        base = {"n_gamma": 10, "n_bias": 7, "n_lam": 6, "n_shrink": 7, "seeds": 16}
        base.update(generations=120, real=("gaussian", "digits"), n_boot=100)
        return cls(**{**base, **overrides})

    def misspecified_config(self) -> MisspecifiedMapConfig | None:
        if self.misspecified == "off":
            return None
        if self.misspecified == "smoke":
            return MisspecifiedMapConfig.smoke()
        return MisspecifiedMapConfig()

    def maps_config(self) -> MapsConfig:
        names = [f.name for f in dataclasses.fields(MapsConfig)]
        return MapsConfig(**{k: getattr(self, k) for k in names})


def estimates(cfg: Config) -> list[dict]:
    """Each requested real corrector's one-pass parameters (``sims.imperfect.real``)."""
    out = []
    if "gaussian" in cfg.real:
        for corr in ("histogram", "histogram-reference"):
            for g in TOY_GAMMAS:
                out.append(real.gaussian_estimate(corr, g, n_boot=cfg.n_boot, figures=cfg.figures))
    if "digits" in cfg.real:
        out.append(real.digits_estimate(n_boot=cfg.n_boot, figures=cfg.figures))
    if "motion" in cfg.real:
        for corr in ("id", "pd"):
            out.append(real.motion_estimate(corr, n_boot=cfg.n_boot))
    return out


def run(cfg: Config) -> Results:
    """The maps, the estimates and the comparison; writes nothing."""
    t0 = time.perf_counter()
    maps = imperfect_maps.run_maps(cfg.maps_config())
    est = estimates(cfg)
    outcomes = real.measured_outcomes(cfg.figures)
    comparison = real.compare(est, outcomes)
    data = {"maps": maps, "estimates": est, "outcomes": outcomes, "comparison": comparison}
    data["findings"] = findings(cfg, maps)
    mcfg = cfg.misspecified_config()
    if mcfg is not None:
        data["misspecified"] = misspecified_map.run_map(mcfg)
        data["findings"]["misspecified"] = misspecified_findings(data["misspecified"])
    return Results(cfg, data, time.perf_counter() - t0)


def misspecified_findings(res: dict) -> dict:
    """Per data law: κ, stability everywhere, the largest λ the theorem admits, and the
    simulated rate against the exact one (median and max |difference| over the grid)."""
    out = {}
    for kind, m in res["kinds"].items():
        diff = np.abs(m["rate_autocorr"] - m["exact_rate"])
        out[kind] = {
            "kappa": m["kappa"],
            "grid": list(np.shape(m["exact_rate"])),
            "every_cell_stable": bool(np.max(m["diverged_frac"]) == 0),
            "cells_beyond_theorem": int(np.sum(res["lams"][:, None] >= m["lam_star"][None, :])),
            "theorem_lam_star_max": float(np.max(m["lam_star"])),
            "rate_abs_diff_median": float(np.nanmedian(diff)),
            "rate_abs_diff_max": float(np.nanmax(diff)),
            "seconds": m["seconds"],
        }
    return out


def findings(cfg: MapsConfig, maps: dict) -> dict:
    """The maps' main numbers: where correction stops helping, the best γ, the replace fate."""
    g = maps["grids"]
    gb = maps["gamma_bias"]
    worse_any = gb["theory_worse"][:, 1:].any(axis=1)
    onset = float(g["bias"][np.argmax(worse_any)]) if worse_any.any() else None
    # Theory: smallest bias at which γ_opt becomes finite (below it: the most γ is best).
    finite = gb["theory_gamma_opt"] < 999.0
    gamma_opt_onset = float(g["bias"][np.argmax(finite)]) if finite.any() else None
    lb = maps["lam_bias"]
    lam_rows = []
    for i, lam in enumerate(g["lam"]):
        worse = lb["theory_worse"][i]
        lam_rows.append(
            {
                "lam": float(lam),
                "break_even_bias": float(g["bias"][np.argmax(worse)]) if worse.any() else None,
            }
        )
    rp = maps["replace"]
    return {
        "gamma_bias": {
            "lam": cfg.lam,
            "n": cfg.n_real,
            "bias_where_some_gamma_is_worse_than_none": onset,
            "bias_where_optimal_gamma_becomes_finite": gamma_opt_onset,
            "optimal_gamma_theory": dict(
                zip(map(float, g["bias"]), map(float, gb["theory_gamma_opt"]), strict=True)
            ),
            "optimal_gamma_sim_column": dict(
                zip(map(float, g["bias"]), map(float, gb["sim_gamma_opt"]), strict=True)
            ),
            "sim_vs_theory_e2_z_max": float(
                np.max(np.abs((gb["sim_e2"] - gb["theory_e2"]) / gb["sim_e2_se"]))
            ),
        },
        "lam_bias": {"gamma": cfg.gamma, "break_even_bias_by_lam": lam_rows},
        "gamma_shrink": {
            "sim_cells_worse_than_none": int(
                np.sum(maps["gamma_shrink"]["sim_worse_z"] > imperfect_maps.Z_WORSE)
            ),
            "cells": int(maps["gamma_shrink"]["sim_e2"].size),
        },
        "replace": {
            "cells": int(rp["sim_collapsed"].size),
            "collapsed_cells": int(
                np.sum((rp["sim_collapsed"] > 0.5) & (rp["sim_diverged"] <= 0.5))
            ),
            "exploded_cells": int(np.sum(rp["sim_diverged"] > 0.5)),
            "neither_cells": int(
                np.sum((rp["sim_collapsed"] <= 0.5) & (rp["sim_diverged"] <= 0.5))
            ),
            # Fate: collapsed (and not exploded) in over half the seeds vs the first-order
            # drift's sign (runs that explode can also pass λ_min < tol on the way).
            "theory_sign_agrees_with_sim": float(
                np.mean(
                    (rp["theory_log_var_drift"] < 0)
                    == ((rp["sim_collapsed"] > 0.5) & (rp["sim_diverged"] <= 0.5))
                )
            ),
        },
    }


def _plain_maps(maps: dict) -> dict:
    flat = {}
    for name, m in maps.items():
        if isinstance(m, dict):
            for k, v in m.items():
                flat[f"{name}__{k}"] = np.asarray(v)
    return flat


def report(res: Results, out: str | Path) -> dict:
    """Writes ``FILES`` into ``out``; returns the JSON payload."""
    cfg, data = res.config, res.data
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prov = results.provenance(cfg, range(cfg.seeds))
    np.savez_compressed(out / FILES[0], **_plain_maps(data["maps"]))
    imperfect_maps.plot_maps(data["maps"], cfg.maps_config(), out / FILES[1])
    est = [
        {k: v for k, v in e.items() if not k.endswith("_per_feature")}
        | {"b_per_feature": e["b_per_feature"], "v_per_feature": e["v_per_feature"]}
        for e in data["estimates"]
    ]
    payload = {
        "config": results.config_dict(cfg),
        "provenance": prov,
        "findings": data["findings"],
        "estimates": est,
        "comparison": data["comparison"],
        "seconds": res.seconds,
        "data": f"{FILES[0]} (every map; keys <map>__<field>)",
        "files": list(FILES if "misspecified" in data else FILES[:4]),
    }
    results.write_json(out / FILES[2], payload, digits=5)
    plot_correctors(data, cfg, out / FILES[3])
    if "misspecified" in data:
        misspecified_map.plot_map(data["misspecified"], cfg.misspecified_config(), out / FILES[4])
    return payload


def plot_correctors(data: dict, cfg: Config, path) -> None:
    """The real correctors on the (γ × bias) theory map, and predicted vs measured ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    est = data["estimates"]
    top = max([cfg.bias_max] + [e["bias_ci"][1] for e in est if math.isfinite(e["bias_ci"][1])])
    biases = np.linspace(0.0, 1.05 * top, 60)
    gammas = np.concatenate([np.geomspace(1e-2, 1e2, 40), [np.inf]])
    gx = np.concatenate([gammas[:-1], [3e2]])  # γ = ∞ drawn at the right edge
    gg, bb = np.meshgrid(gammas, biases)
    th = imperfect_maps.theory_cells(cfg.n_real, cfg.lam, gg, bb, 0.0, 1.0)
    none = imperfect_maps.theory_cells(cfg.n_real, cfg.lam, 0.0, bb, 0.0, 1.0)
    ratio = (th["msq"] + (th["var"] - 1) ** 2) / (none["msq"] + (none["var"] - 1) ** 2)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), constrained_layout=True)
    ax = axes[0]
    logr = np.log10(ratio)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(logr.min(), -0.01), vmax=max(logr.max(), 0.01))
    im = ax.pcolormesh(gx, biases, logr, cmap="RdBu_r", norm=norm, shading="nearest")
    ax.contour(gx, biases, logr, levels=[0.0], colors="k", linewidths=1.5)
    fig.colorbar(im, ax=ax, label="log10 e²(γ, b) / e²(0)  (theory; > 0: worse than none)")
    colours = {"gaussian": "tab:green", "digits": "tab:purple", "motion": "tab:orange"}
    for e in est:
        x = 3e2 if math.isinf(e["gamma"]) else e["gamma"]
        lo, hi = e["bias_ci"]
        ax.errorbar(
            [x],
            [e["bias"]],
            yerr=[[e["bias"] - lo], [hi - e["bias"]]],
            fmt="o",
            color=colours[e["experiment"]],
            ms=5,
            capsize=2,
        )
        pred = real.predicted_ratio(
            cfg.n_real, cfg.lam, e["gamma"], e["b_per_feature"], e["v_per_feature"]
        )
        if e["experiment"] != "gaussian" or e.get("nominal_gamma") == 1.0:
            ax.annotate(
                f"{e['name']}\nshrink {e['shrink']:.2f}, predicted ×{pred:.2g}",
                (x, e["bias"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.set_xlabel("γ (γ = ∞ at the right edge)")
    ax.set_ylabel("bias b (feature std; RMS over features)")
    ax.set_title(
        f"real correctors on the (γ × bias) map, n = {cfg.n_real}, λ = {cfg.lam:g}: background "
        "bias only (Σ_c = Σ*; black: break-even);\nlabels: each corrector's predicted e² ratio "
        "with its own variance offsets (×1 = no change)",
        fontsize=9,
    )
    ax = axes[1]
    rows = data["comparison"]["rows"]
    for r in rows:
        ax.scatter(r["predicted_ratio"], r["ratio"], color=colours[r["experiment"]], s=18)
        if r["experiment"] != "gaussian":
            ax.annotate(
                f"{r['corrector']} λ={r['lam']:g}",
                (r["predicted_ratio"], r["ratio"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    for e, c in colours.items():
        ax.scatter([], [], color=c, label=e)
    ax.axhline(1.0, color="k", lw=0.6)
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted e² ratio (corrected / none), independent-feature model")
    ax.set_ylabel("measured final metric ratio (corrected / iterative)")
    comp = data["comparison"]
    ax.set_title(
        f"prediction vs measured loops: helps/hurts agree {comp['helps_agree']}, "
        f"pair concordance {comp['concordance']:.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
