"""Figures. Every figure embeds its provenance (git SHA, config hash) in the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _gamma_colors(gammas):
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(len(gammas) - 1, 1)) for i in range(len(gammas))]


def _band_panel(ax, panel: dict, key: str, title: str, log: bool = False):
    t = np.arange(np.asarray(panel[f"{key}_mean"]).shape[1])
    for i, (g, c) in enumerate(zip(panel["gammas"], _gamma_colors(panel["gammas"]), strict=True)):
        lo, hi = np.asarray(panel[f"{key}_q10"][i]), np.asarray(panel[f"{key}_q90"][i])
        ax.fill_between(t, lo, hi, color=c, alpha=0.15, lw=0)
        ax.plot(t, panel[f"{key}_mean"][i], color=c, lw=1.3, label=f"γ = {g:g}")
        ax.plot(t, panel[f"{key}_median"][i], color=c, lw=0.8, ls="--")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("generation")
    ax.grid(True, lw=0.3)
    if log:
        ax.set_yscale("log")
    ax.set_xlim(0, t[-1])


def fig2(panels: dict, path: str | Path, provenance: dict) -> Path:
    """Fig. 2 analogue: published protocol, exact sampler, theorem setting with bound.

    Args:
        panels: ``{"reference": main(), "histogram": main(), "theorem": main() | bound_curves()}``.
        path: output PNG.
        provenance: embedded as PNG metadata.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ref, exact, thm = panels["reference"], panels["histogram"], panels["theorem"]
    _band_panel(
        axes[0], ref, "w2", "Paper's protocol as published\n(toy schedule, histogram-reference)"
    )
    _band_panel(axes[1], exact, "w2", "Same, corrector sampled exactly\n(toy schedule, histogram)")
    top = max(np.nanmax(ref["w2_q90"]), np.nanmax(exact["w2_q90"])) * 1.05
    for ax in axes[:2]:
        ax.set_ylim(0, top)
        ax.set_ylabel("W2(p_θt, N(0, I))")
    _band_panel(
        axes[2],
        thm,
        "param_err",
        "Theorem setting (augment + ideal π_γ), first generations\n"
        "dashed: eq. (7) bound; dotted: ‖θ_0 − θ*‖·(λ/((1+λ)(1+γ)))^t",
        log=True,
    )
    colors = _gamma_colors(thm["gammas"])
    t = np.arange(np.asarray(thm["param_err_mean"]).shape[1])
    for i, c in enumerate(colors):
        b = np.asarray(thm["bound"][i], float)
        if np.all(np.isfinite(b)):
            axes[2].plot(t, b, color=c, lw=1.0, ls=(0, (4, 2)))
        axes[2].plot(t, thm["exact_transient"][i], color=c, lw=1.0, ls=":")
    lo = np.nanmin(np.asarray(thm["param_err_q10"])[:, 1:]) * 0.5
    axes[2].set_ylim(max(lo, 1e-3), thm["err0"] * 3)
    axes[2].set_ylabel("‖θ_t − θ*‖")
    axes[2].set_xlim(0, min(t[-1], 40))  # the transient is over within a few generations
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, title="solid mean\ndashed median")
    n_seeds = np.asarray(ref["w2"]).shape[1]
    fig.suptitle(
        f"Gaussian toy (Fig. 2): n = 50, λ = 0.5, {n_seeds} seeds; bands 10–90% over seeds;"
        " γ = 0 at λ = 0.5 sits on the threshold, so no bound",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Description": json.dumps(provenance, default=str)}
    fig.savefig(path, dpi=110, metadata=meta)
    plt.close(fig)
    return path
