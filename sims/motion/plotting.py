"""Figures of the motion loop: Fig. 4 analogue (metric curves), Fig. 5 analogue (frames),
seed panel (Figs. 17–20 analogue). Every figure reads only the saved payload / NPZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sims.common.plotting import save

__all__ = ["fig4", "fig5", "seeds"]

ARM_STYLE = {
    "baseline": ("#555555", "baseline (real only)"),
    "iterative": ("#c0392b", "iterative fine-tuning"),
    "corrected": ("#1f77b4", "iterative + physics correction"),
    "corrected_pd": ("#e67e22", "iterative + PD-tracker correction (drifts)"),
}
PANELS = (
    ("fid", "FID ↓"),
    ("diversity", "Diversity →"),
    ("matching", "Matching score ↓"),
    ("phys_err", "physical error (mm) ↓"),
)
REAL_KEY = {"diversity": "diversity", "matching": "matching", "phys_err": "phys_err"}


def _setting_order(results: dict) -> list[str]:
    def key(s):
        n, lam = (float(p.split("=")[1]) for p in s.split(","))
        return (n, -lam)

    return sorted(results, key=key)


def _curves(ax, arms: dict, metric: str, real: dict | None, band: bool = True):
    for arm, (color, label) in ARM_STYLE.items():
        if arm not in arms:
            continue
        y = np.asarray(arms[arm][metric], float)
        gens = np.arange(len(y))
        ax.plot(gens, y, color=color, lw=1.8, label=label)
        ci = arms[arm].get(f"{metric}_ci")
        if band and ci is not None:
            ci = np.asarray(ci, float)
            ax.fill_between(gens, ci[:, 0], ci[:, 1], color=color, alpha=0.15, lw=0)
    y0 = float(arms["baseline"][metric][0])
    ax.axhline(y0, color="0.3", ls="--", lw=0.8, label="generation 0")
    if metric == "fid":
        floor = np.asarray(arms["baseline"]["fid_floor"], float)
        ax.axhline(np.nanmean(floor), color="green", ls=":", lw=1, label="real-vs-real floor")
    elif real and metric in REAL_KEY and REAL_KEY[metric] in real:
        ax.axhline(real[REAL_KEY[metric]], color="green", ls=":", lw=1, label="real training data")
    ax.set_xlabel("generation")
    ax.grid(alpha=0.3)


def fig4(payload: dict, path: str | Path) -> Path:
    """Fig. 4 analogue: one row per (n, λ), columns FID / Diversity / Matching / physical
    error per generation, three arms with 95 % bootstrap bands, the generation-0 value
    (dashed) and the real data's value or FID floor (dotted green)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = payload["results"]
    settings = _setting_order(res)
    fig, axes = plt.subplots(
        len(settings), 4, figsize=(15, 3.1 * len(settings) + 0.8), squeeze=False
    )
    for r, setting in enumerate(settings):
        n = setting.split(",")[0].split("=")[1]
        real = payload.get("real", {}).get(n)
        for c, (metric, title) in enumerate(PANELS):
            ax = axes[r, c]
            _curves(ax, res[setting], metric, real)
            ax.set_title(
                f"{title}   [{setting.replace(',', ', ').replace('lam', 'λ')}]", fontsize=9
            )
    axes[0, 0].legend(fontsize=7, loc="best")
    cfg = payload["config"]
    fig.suptitle(
        "Motion self-consuming loop (paper Fig. 4 analogue): MDM-shaped generator, "
        f"{cfg['finetune_steps']} fine-tuning steps per generation, "
        f"γ = {cfg['gamma']} physics correction",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    return save(fig, path, payload["provenance"])


def seeds(payload: dict, path: str | Path, setting: str | None = None) -> Path:
    """Seed panel (Figs. 17–20 analogue): every seed of one setting as thin lines, their
    mean as a thick line, per arm and metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_seed = payload["seeds"]
    if setting is None:
        setting = max(per_seed, key=lambda s: (len(per_seed[s]), s))
    runs = per_seed[setting]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, (metric, title) in zip(axes, PANELS, strict=True):
        for arm, (color, label) in ARM_STYLE.items():
            if not all(arm in runs[s] for s in runs):
                continue
            ys = np.array([runs[s][arm][metric] for s in sorted(runs)], float)
            for y in ys:
                ax.plot(y, color=color, lw=0.8, alpha=0.5)
            ax.plot(np.nanmean(ys, 0), color=color, lw=2.2, label=f"{label} (mean)")
        ax.set_title(f"{title}   [{setting}, {len(runs)} seeds]", fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path, payload["provenance"])


def fig5(frames: dict, path: str | Path, footer: str = "") -> Path:
    """Fig. 5 analogue: the same descriptions rendered from ground truth, the last
    iterative and the last corrected generation (and the last PD-corrected one when the run
    has that arm; rows: motions; columns: sources)."""
    from sims.motion import render

    sources = [("ground_truth", "ground truth"), ("iterative", "iterative (last gen.)")]
    sources += [
        ("corrected", "corrected (last gen.)"),
        ("corrected_pd", "PD-corrected (last gen.)"),
    ]
    sources = [(k, t) for k, t in sources if k in frames]
    rows = []
    for i, text in enumerate(frames["texts"]):
        motions = [frames[k][i] for k, _ in sources]
        rows.append((f'"{text}"', motions, [t for _, t in sources]))
    return render.strip(rows, path, n_frames=4, footer=footer)
