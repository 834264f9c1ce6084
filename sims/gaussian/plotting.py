"""Figures. Every figure embeds its provenance (git SHA, config hash) in the metadata."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sims.common.plotting import save


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
    return save(fig, path, provenance)


def _gamma_axis(gammas: np.ndarray):
    """x positions for a γ grid [0, log-spaced…]: log10 γ, with γ = 0 drawn as a column
    0.4 decades left of the smallest positive γ (a log axis cannot show 0).

    Returns (centres, edges, to_x)."""
    logs = np.log10(gammas[1:])
    step = np.diff(logs).mean() if logs.size > 1 else 1.0
    zero = logs[0] - 0.4

    def to_x(g):
        g = np.asarray(g, float)
        return np.where(g > 0, np.log10(np.where(g > 0, g, 1.0)), zero)

    centres = np.concatenate([[zero], logs])
    mids = 0.5 * (logs[1:] + logs[:-1])
    edges = np.concatenate([[zero - 0.2, logs[0] - step / 2], mids, [logs[-1] + step / 2]])
    return centres, edges, to_x


def _lam_edges(lams: np.ndarray) -> np.ndarray:
    mids = 0.5 * (lams[1:] + lams[:-1])
    step = lams[1] - lams[0] if lams.size > 1 else 1.0
    return np.concatenate([[lams[0] - step / 2], mids, [lams[-1] + step / 2]])


def _gamma_ticks(ax, gammas, to_x):
    ticks = [0.0, *[g for g in (0.01, 0.1, 1.0, 10.0, 100.0) if gammas[1] <= g <= gammas[-1]]]
    ax.set_xticks(to_x(ticks), [f"{g:g}" for g in ticks])
    ax.axvline(np.log10(gammas[1]) - 0.5 * np.diff(np.log10(gammas[1:3])).sum(), color="w", lw=2)


def _map_panel(fig, ax, res, values, title, cmap="viridis", norm=None, label=""):
    import matplotlib.colors as mcolors

    lams, gammas = np.asarray(res["lams"]), np.asarray(res["gammas"])
    _, x_edges, to_x = _gamma_axis(gammas)
    cmap = plt.get_cmap(cmap).with_extremes(bad="0.75")
    data = np.ma.masked_invalid(np.asarray(values, float))
    mesh = ax.pcolormesh(x_edges, _lam_edges(lams), data, cmap=cmap, norm=norm, shading="flat")
    if not isinstance(norm, mcolors.BoundaryNorm):
        fig.colorbar(mesh, ax=ax, label=label, fraction=0.046, pad=0.03)
    fine = np.asarray(res["threshold_gammas"])
    thr = np.asarray(res["threshold"])
    pos = fine > 0
    ax.plot(to_x(fine[pos]), thr[pos], color="red", lw=1.6)
    ax.plot([x_edges[0], x_edges[1]], [thr[0], thr[0]], color="red", lw=1.6)
    ax.set_ylim(lams[0], lams[-1])
    _gamma_ticks(ax, gammas, to_x)
    ax.set_xlabel("correction strength γ")
    ax.set_ylabel("synthetic ratio λ")
    ax.set_title(title, fontsize=9.5)
    return mesh


def phase_diagram(res: dict, cfg: dict, path: str | Path, provenance: dict) -> Path:
    """Panels (a)–(d) of the phase diagram; red: the threshold λ*(γ) = (1+γ)/((2+γ)(1+κ))."""
    import matplotlib.colors as mcolors
    from matplotlib.patches import Patch

    from sims.gaussian.phase import REGION_NAMES

    fig, axes = plt.subplots(2, 4, figsize=(20, 9))
    rate = mcolors.Normalize(0, 1)
    _map_panel(
        fig,
        axes[0, 0],
        res,
        res["theorem_rate"],
        "(a) theorem: guaranteed rate ρ(λ)/(1+γ)\n(grey: outside the admissible region)",
        norm=rate,
        label="rate",
    )
    _map_panel(
        fig,
        axes[0, 1],
        res,
        res["population_rate"],
        "(b) exact population contraction\nλ/((1+λ)(1+γ))",
        norm=rate,
        label="rate",
    )
    _map_panel(
        fig,
        axes[0, 2],
        res,
        res["rate_transient"],
        "(c) measured rate: transient regression\n(grey: decays below noise in < 2 steps)",
        norm=rate,
        label="rate",
    )
    _map_panel(
        fig,
        axes[0, 3],
        res,
        res["rate_autocorr"],
        "(c) measured rate: lag-1 autocorrelation\nof the stationary chain",
        norm=rate,
        label="rate",
    )
    w2 = np.asarray(res["stationary_w2_mean"], float)
    _map_panel(
        fig,
        axes[1, 0],
        res,
        w2,
        "(c) stationary W2(θ_t, θ*), seed mean",
        cmap="magma",
        norm=mcolors.LogNorm(np.nanmin(w2), np.nanmax(w2)),
        label="W2",
    )
    bad = np.asarray(res["diverged_frac"]) + np.asarray(res["collapsed_frac"])
    _map_panel(
        fig,
        axes[1, 1],
        res,
        bad,
        "(c) fraction of seeds that diverged or collapsed",
        cmap="Reds",
        norm=mcolors.Normalize(0, 1),
        label="fraction",
    )
    tight = np.asarray(res["tightness"], float)
    finite = tight[np.isfinite(tight)]
    hi = max(float(finite.max()), 1.1) if finite.size else 10.0
    _map_panel(
        fig,
        axes[1, 2],
        res,
        tight,
        "(d) tightness: theorem rate / measured rate\n(≥ 1 where the theorem applies)",
        cmap="cividis",
        norm=mcolors.LogNorm(1.0, hi),
        label="ratio",
    )
    colours = ["#4c72b0", "#55a868", "#c44e52", "#000000"]
    cmap = mcolors.ListedColormap(colours)
    _map_panel(
        fig,
        axes[1, 3],
        res,
        res["region"],
        "(d) where the loop is stable",
        cmap=cmap,
        norm=mcolors.BoundaryNorm(np.arange(5) - 0.5, 4),
    )
    axes[1, 3].legend(
        handles=[Patch(color=c, label=n) for c, n in zip(colours, REGION_NAMES, strict=True)],
        loc="upper left",
        fontsize=7.5,
        framealpha=0.9,
    )
    fig.suptitle(
        f"Phase diagram, {cfg['workflow']} workflow, ideal π_γ: n = {cfg['n_real']},"
        f" d = {cfg['dim']},"
        f" {cfg['seeds']} seeds × {cfg['generations']} generations per cell, start displaced by"
        f" {cfg['displacement']:g}; theorem with κ = {cfg['kappa']:g}; red: threshold λ*(γ)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return save(fig, path, provenance)


def workflows(res: dict, path: str | Path, provenance: dict) -> Path:
    """replace vs augment vs accumulate: W2 per generation per γ, and the collapse of Σ."""
    names = ("replace", "augment", "accumulate")
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))
    colors = _gamma_colors(res["gammas"])
    for ax, name in zip(axes[:3], names, strict=True):
        wf = res["workflows"][name]
        t = np.arange(np.asarray(wf["w2_mean"]).shape[1])
        for i, (g, c) in enumerate(zip(res["gammas"], colors, strict=True)):
            ax.plot(t, wf["w2_mean"][i], color=c, lw=1.3, label=f"γ = {g:g}")
            ax.plot(t, wf["w2_median"][i], color=c, lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("generation")
        ax.set_ylabel("W2(p_θt, N(0, I))")
        ax.grid(True, lw=0.3)
        extra = "n own samples, no real data" if name == "replace" else f"λ = {res['lam']:g}"
        ax.set_title(f"{name} ({extra})", fontsize=10)
    wf = res["workflows"]["replace"]
    d = res["config"]["dim"]
    geo = np.exp(np.asarray(wf["log_det_mean"], float) / d)
    t = np.arange(geo.shape[1])
    ax = axes[3]
    for i, (g, c) in enumerate(zip(res["gammas"], colors, strict=True)):
        label = f"γ = {g:g}: {100 * wf['collapsed_frac'][i]:.0f}% of seeds collapsed"
        ax.plot(t, np.maximum(geo[i], 1e-300), color=c, lw=1.3, label=label)
        ax.plot(t, np.maximum(wf["min_eig_median"][i], 1e-300), color=c, lw=0.8, ls="--")
    exact = np.exp(np.asarray(res["replace_exact_log_det_gamma0"], float) / d)
    ax.plot(t, exact, color="red", lw=1.0, ls=":", label="exact E log det drift, γ = 0")
    ax.axhline(res.get("collapse_tol", 1e-2), color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel("variance")
    ax.set_title(
        "replace: exp(mean log det Σ_t / d) (solid),\n"
        "median λ_min (dashed), black dotted: collapse threshold",
        fontsize=10,
    )
    ax.grid(True, lw=0.3)
    ax.legend(fontsize=7.5, loc="lower left")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="center right", fontsize=8, title="W2: solid mean,\ndashed median"
    )
    fig.suptitle(
        "Data workflows with the ideal corrector π_γ (exact sufficient statistics): without real"
        " data the fit collapses at γ = 0; any γ > 0 anchors it",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 0.93, 0.93))
    return save(fig, path, provenance)


def bounds(res: dict, path: str | Path, provenance: dict) -> Path:
    """The theorem at a glance: threshold λ*(γ, κ), rates (theorem vs exact), eq. (7) in t."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    g = np.asarray(res["gamma_grid"])
    for kappa, thr, name in zip(res["kappas"], res["thresholds"], res["kappa_labels"], strict=True):
        axes[0].plot(g, thr, lw=1.5, label=f"κ = {kappa:.3g}: {name}")
    axes[0].set_xscale("symlog", linthresh=0.1)
    axes[0].set_xlabel("correction strength γ")
    axes[0].set_ylabel("largest admissible λ")
    axes[0].set_title(
        "Threshold λ*(γ) = (1+γ)/((2+γ)(1+κ))\n(the region below each curve is guaranteed)",
        fontsize=10,
    )
    axes[0].legend(fontsize=8)
    lam = np.asarray(res["lam_grid"])
    for gamma, c in zip(res["rate_gammas"], _gamma_colors(res["rate_gammas"]), strict=True):
        key = f"{gamma:g}"
        axes[1].plot(lam, res["theorem_rate"][key], color=c, lw=1.5, label=f"γ = {gamma:g}")
        axes[1].plot(lam, res["exact_rate"][key], color=c, lw=1.2, ls="--")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("synthetic ratio λ")
    axes[1].set_ylabel("contraction per generation")
    axes[1].set_title(
        "solid: theorem ρ(λ)/(1+γ) (κ = 0, ends at λ*);\n"
        "dashed: exact Gaussian rate λ/((1+λ)(1+γ))",
        fontsize=10,
    )
    axes[1].legend(fontsize=8)
    t = np.asarray(res["t"])
    for gamma, c in zip(res["rate_gammas"], _gamma_colors(res["rate_gammas"]), strict=True):
        axes[2].plot(t, res["eq7"][f"{gamma:g}"], color=c, lw=1.5, label=f"γ = {gamma:g}")
    axes[2].axhline(res["eq7_tau"], color="k", lw=0.8, ls=":", label="τ (γ → ∞ limit)")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("generation t")
    axes[2].set_ylabel("right-hand side of eq. (7)")
    axes[2].set_title(
        f"Eq. (7) at λ = {res['eq7_lam']:g}, τ = {res['eq7_tau']:g},"
        f" ‖θ_0 − θ*‖ = {res['eq7_err0']:g}\n(smaller for every γ > 0: Cor. 4.5)",
        fontsize=10,
    )
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, lw=0.3)
    fig.tight_layout()
    return save(fig, path, provenance)
