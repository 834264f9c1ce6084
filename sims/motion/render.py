"""Rendering motions: MuJoCo's offscreen renderer needs EGL/OSMesa, which this machine lacks,
so motions are drawn as matplotlib 3-D stick figures from forward-kinematics body positions
(GIF via Pillow, or a PNG strip of key frames). Feet below the floor are drawn red.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sims.motion import humanoid as hm

__all__ = ["animate", "key_times", "strip"]

# Body indices of the compiled model (world = 0): torso 1, head 2, waist 3, pelvis 4,
# right hip/knee/ankle 5-7, left 8-10, right shoulder/elbow/hand 11-13, left 14-16.
BONES = (
    (1, 2), (1, 3), (3, 4), (4, 5), (5, 6), (6, 7), (4, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 14), (14, 15), (15, 16),
)  # fmt: skip
_COLORS = ("#1f5fa8", "#b03a2e", "#2e7d32", "#6a1b9a")


def key_times(qpos: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames from the start to the pose farthest from the first frame (the peak)."""
    q = np.asarray(qpos)
    dev = np.abs(q[:, 7:] - q[:1, 7:]).sum(-1) + 5 * np.abs(q[:, :3] - q[:1, :3]).sum(-1)
    return np.linspace(0, int(np.argmax(dev)), n).astype(int)


def _positions(qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fk = hm.forward_kinematics(np.asarray(qpos, np.float32))
    return np.asarray(fk["body"]), np.asarray(fk["sites"])


def _draw(ax, body, sites, color, center):
    ax.cla()
    r = 0.9
    ax.set_xlim(center[0] - r, center[0] + r)
    ax.set_ylim(center[1] - r, center[1] + r)
    ax.set_zlim(-0.2, 1.8)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=12, azim=-60)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    g = np.linspace(-r, r, 7)
    for v in g:
        ax.plot([center[0] + v] * 2, [center[1] - r, center[1] + r], [0, 0], c="0.8", lw=0.5)
        ax.plot([center[0] - r, center[0] + r], [center[1] + v] * 2, [0, 0], c="0.8", lw=0.5)
    for a, b in BONES:
        ax.plot(*zip(body[a], body[b], strict=True), c=color, lw=2.5)
    for ids in hm.FOOT_SITES.values():
        heel = sites[[ids[0], ids[2]]].mean(0)
        toe = sites[[ids[1], ids[3]]].mean(0)
        low = sites[list(ids), 2].min() - hm.FOOT_RADIUS
        ax.plot(*zip(heel, toe, strict=True), c="red" if low < -0.01 else color, lw=3)
    ax.scatter(*body[2], s=120, color=color)


def animate(
    motions: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | Path,
    suptitle: str = "",
    stride: int = 1,
) -> Path:
    """GIF of motions side by side (each qpos [T, 28]), at ``FPS / stride`` frames per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    data = [_positions(q) for q in motions]
    frames = min(len(q) for q in motions)
    fig = plt.figure(figsize=(3.0 * len(motions), 3.4), dpi=80)
    axes = [fig.add_subplot(1, len(motions), i + 1, projection="3d") for i in range(len(motions))]
    centers = [b[:, 4].mean(0) for b, _ in data]

    def update(t):
        for i, (ax, (body, sites)) in enumerate(zip(axes, data, strict=True)):
            _draw(ax, body[t], sites[t], _COLORS[i % len(_COLORS)], centers[i])
            ax.set_title(titles[i], fontsize=8)
        fig.suptitle(f"{suptitle}  t = {t / hm.FPS:.2f} s", fontsize=8)
        return []

    anim = FuncAnimation(fig, update, frames=range(0, frames, stride), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(path, writer=PillowWriter(fps=max(1, hm.FPS // stride)))
    plt.close(fig)
    return path


def strip(
    rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[str]]],
    path: str | Path,
    n_frames: int = 5,
    footer: str = "",
) -> Path:
    """PNG grid: one row per (row title, motions, motion titles); each motion drawn at
    ``n_frames`` evenly spaced times, overlaid with fading colour (early frames lighter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = max(len(m) for _, m, _ in rows)
    fig = plt.figure(figsize=(2.7 * ncol, 2.9 * len(rows)), dpi=80)
    for r, (row_title, motions, titles) in enumerate(rows):
        for c, (q, title) in enumerate(zip(motions, titles, strict=True)):
            ax = fig.add_subplot(len(rows), ncol, r * ncol + c + 1, projection="3d")
            body, sites = _positions(q)
            center = body[:, 4].mean(0)
            times = key_times(q, n_frames)
            for k, t in enumerate(times):
                alpha = 0.25 + 0.75 * (k + 1) / n_frames
                color = matplotlib.colors.to_rgba(_COLORS[c % len(_COLORS)], alpha)
                if k == 0:
                    _draw(ax, body[t], sites[t], color, center)
                else:
                    for a, b in BONES:
                        ax.plot(*zip(body[t, a], body[t, b], strict=True), c=color, lw=1.8)
                    ax.scatter(*body[t, 2], s=60, color=color)
                    for ids in hm.FOOT_SITES.values():
                        low = sites[t, list(ids), 2].min() - hm.FOOT_RADIUS
                        heel = sites[t, [ids[0], ids[2]]].mean(0)
                        toe = sites[t, [ids[1], ids[3]]].mean(0)
                        ax.plot(
                            *zip(heel, toe, strict=True),
                            c="red" if low < -0.01 else color,
                            lw=2.5,
                        )
            ax.set_title(f"{row_title}\n{title}" if c == 0 and row_title else title, fontsize=7)
    if footer:
        fig.text(0.01, 0.005, footer, fontsize=6, color="0.4")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
