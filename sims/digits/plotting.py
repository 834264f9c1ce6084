"""Digit figures: Fig. 7 (centroids), Fig. 8 (FID per generation), Fig. 3 (sample grids),
diversity and class-accuracy curves. Provenance goes into the PNG metadata."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sims.common.plotting import save

ARM_STYLE = {
    "baseline": ("tab:gray", "baseline (real only)"),
    "iterative": ("tab:red", "iterative fine-tuning"),
    "corrected": ("tab:blue", "iterative fine-tuning + K-means correction"),
}


def _tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows·cols, 1, h, w) in [-1, 1] → one (rows·(h+1), cols·(w+1)) mosaic in [0, 1]."""
    h, w = images.shape[-2:]
    out = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1))  # shown inverted: white gaps
    for i in range(min(rows * cols, len(images))):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = (images[i, 0] + 1) / 2
    return out


def fig7(centroids: np.ndarray, path, provenance: dict, levels: int | None = None) -> Path:
    """Fig. 7 analogue: the K centroids of every digit (rows = digits)."""
    c, k = centroids.shape[:2]
    flat = centroids.reshape(c * k, *centroids.shape[2:])
    if levels:
        flat = np.round((flat + 1) * levels / 2) * 2 / levels - 1
    fig, ax = plt.subplots(figsize=(0.45 * k + 0.6, 0.45 * c + 0.8))
    ax.imshow(1 - _tile(flat, c, k), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(
        [(i + 0.5) * (centroids.shape[-2] + 1) for i in range(c)], [str(i) for i in range(c)]
    )
    ax.set_xticks([])
    ax.set_title(f"K-means centroids per digit\n(K = {k}, rounded to pixel values)", fontsize=9)
    return save(fig, path, provenance)


def _wrap(text: str, fig) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=int(fig.get_figwidth() * 15)))


def _lam_keys(payload):
    return sorted(payload["results"], key=float)


def fig8(payload: dict, path, provenance: dict) -> Path:
    """Fig. 8 analogue: FID per generation for each λ, three arms, gen-0 line and floor."""
    lams = _lam_keys(payload)
    fig, axes = plt.subplots(1, len(lams), figsize=(4.2 * len(lams), 3.8), squeeze=False)
    floor = payload.get("floor", {})
    top = 0.0
    for ax, lam in zip(axes[0], lams, strict=True):
        for arm, (color, label) in ARM_STYLE.items():
            m = payload["results"][lam][arm]
            fid = np.asarray(m["fid"], float)
            ci = np.asarray(m["fid_ci"], float)
            t = np.arange(len(fid))
            ax.fill_between(t, ci[:, 0], ci[:, 1], color=color, alpha=0.15, lw=0)
            ax.plot(t, fid, color=color, lw=1.4, label=label)
            top = max(top, np.nanmax(ci))
        g0 = payload["results"][lam]["baseline"]["fid"][0]
        ax.axhline(g0, color="k", lw=0.8, ls="--", label="generation 0")
        if "fid" in floor:
            ax.axhline(floor["fid"], color="tab:green", lw=0.8, ls=":", label="real-vs-real floor")
        ax.set_title(f"λ = {lam}", fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(True, lw=0.3)
    for ax in axes[0]:
        ax.set_ylim(0, top * 1.05)
    axes[0, 0].set_ylabel("FID (LeNet features)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7)
    fig.suptitle(_wrap(payload.get("title", "Digits: FID per generation"), fig), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 0.88))
    return save(fig, path, provenance)


def curves(payload: dict, path, provenance: dict) -> Path:
    """Diversity and class accuracy per generation (rows) for each λ (columns)."""
    lams = _lam_keys(payload)
    fig, axes = plt.subplots(2, len(lams), figsize=(4.2 * len(lams), 6.4), squeeze=False)
    floor = payload.get("floor", {})
    for j, lam in enumerate(lams):
        for i, (metric, ylabel) in enumerate(
            (("diversity", "diversity (mean pair distance)"), ("class_accuracy", "class accuracy"))
        ):
            ax = axes[i, j]
            for arm, (color, label) in ARM_STYLE.items():
                v = payload["results"][lam][arm][metric]
                ax.plot(np.arange(len(v)), v, color=color, lw=1.3, label=label)
            if metric in floor:
                ax.axhline(floor[metric], color="tab:green", lw=0.8, ls=":", label="real images")
            ax.set_title(f"λ = {lam}", fontsize=10)
            ax.grid(True, lw=0.3)
            if j == 0:
                ax.set_ylabel(ylabel)
            if i == 1:
                ax.set_xlabel("generation")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7)
    fig.suptitle(_wrap(payload.get("title", "Digits: diversity and accuracy"), fig), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.93))
    return save(fig, path, provenance)


def fig3(grids: dict[str, np.ndarray], path, provenance: dict, title: str = "") -> Path:
    """Fig. 3 analogue: 10×10 sample grids (row = conditioning digit), one panel per entry."""
    fig, axes = plt.subplots(1, len(grids), figsize=(3.3 * len(grids), 3.7), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], grids.items(), strict=True):
        ax.imshow(1 - _tile(imgs, 10, 10), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(_wrap(title, fig), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return save(fig, path, provenance)


def grid_by_class(images: np.ndarray, labels: np.ndarray, per_class: int = 10) -> np.ndarray:
    """The first ``per_class`` images of each digit, ordered digit-major (rows of a grid)."""
    rows = []
    for c in range(10):
        row = np.full((per_class, *images.shape[1:]), -1.0, np.float32)  # blank if short
        idx = np.flatnonzero(labels == c)[:per_class]
        row[: len(idx)] = images[idx]
        rows.append(row)
    return np.concatenate(rows)
