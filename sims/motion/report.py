"""Saving and plotting the motion loop's results (Figs. 4, 5, the seed panel), and the
summary table.

``run_loop(cfg, out_dir)`` runs ``sims.motion.loop.run`` into ``out_dir`` and writes
``results.json`` (the Fig. 4 data schema), ``fig5_motion.npz`` and the figures there;
``loop_figures(out)`` re-plots a finished long run (or the committed data) for
``scsc figures``.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from sims.common import results
from sims.motion import dataset as ds
from sims.motion import loop, plotting
from sims.motion import representation as rep

__all__ = ["FIG5_CLASSES", "LONG_RUN_DIR", "loop_figures", "loop_summary", "plot_loop", "run_loop"]

LONG_RUN_DIR = Path("out/motion_long")
FIG5_CLASSES = ("squat", "wave", "march")


def _fig5_frames(out: dict, setting: str) -> dict:
    """Ground truth, last iterative and last corrected sample for a few test descriptions
    (the first test motion of each class in ``FIG5_CLASSES``), as qpos."""
    n, lam = (p.split("=")[1] for p in setting.split(","))
    test = out["test"]
    idx = [
        int(np.flatnonzero(test["labels"] == ds.CLASSES.index(c))[0])
        for c in FIG5_CLASSES
        if (test["labels"] == ds.CLASSES.index(c)).any()
    ]
    seed = min(int(s) for s in out["seeds"][setting])

    def qpos(x):
        return np.asarray(rep.to_qpos(jnp.asarray(x[idx])), np.float32)

    name = f"n{n}_s{seed}_lam{lam}"
    return {
        "setting": np.array(setting),
        "texts": np.asarray(test["texts"][idx]).astype(str),
        "ground_truth": qpos(test["features"]),
        "iterative": qpos(out["samples"][f"{name}_iterative"]),
        "corrected": qpos(out["samples"][f"{name}_corrected"]),
    }


def _fmt(m: dict, key: str, i: int = -1) -> str:
    lo, hi = m[f"{key}_ci"][i] if f"{key}_ci" in m else (float("nan"), float("nan"))
    return f"{m[key][i]:.3f} [{lo:.3f}, {hi:.3f}]"


def loop_summary(payload: dict) -> str:
    """Last-generation table: per setting and arm, FID / Diversity / Matching / physical
    error with their 95 % intervals, and R-precision top-3."""
    lines = []
    for setting, arms in payload["results"].items():
        g = len(arms["baseline"]["fid"]) - 1
        lines.append(f"{setting}, generation {g} (generation 0 → last):")
        for arm, m in arms.items():
            lines.append(
                f"  {arm:10s} FID {m['fid'][0]:.3f} → {_fmt(m, 'fid')}  "
                f"Div {_fmt(m, 'diversity')}  Match {_fmt(m, 'matching')}  "
                f"phys {_fmt(m, 'phys_err')} mm  R@3 {m['r_precision'][-1][2]:.2f}"
            )
    for n, real in payload.get("real", {}).items():
        if real:
            lines.append(
                f"real n={n}: FID {real['fid']:.3f} (floor {real['fid_floor']:.3f}), "
                f"Div {real['diversity']:.3f}, Match {real['matching']:.3f}, "
                f"phys {real['phys_err']:.1f} mm, R@3 {real['r_precision'][2]:.2f}"
            )
    drift = payload.get("corrector_drift")
    if drift:
        fids = ", ".join(f"{v:.3f}" for v in drift["fid"])
        lines.append(
            f"corrector drift (real motions corrected 0..{drift['passes'][-1]} times): FID {fids}; "
            f"largest feature shift {drift['joint_shift'][-1]:.2f} std "
            f"({drift['joint_shift_feature'][-1]})"
        )
    return "\n".join(lines)


def plot_loop(payload: dict, frames: dict | None, out_dir: Path) -> list[Path]:
    """Fig. 4 analogue, the seed panel (when a setting has several seeds) and Fig. 5."""
    paths = [plotting.fig4(payload, out_dir / "fig4_motion.png")]
    if any(len(v) > 1 for v in payload["seeds"].values()):
        paths.append(plotting.seeds(payload, out_dir / "fig_motion_seeds.png"))
    if frames is not None:
        prov = payload["provenance"]
        footer = (
            f"{frames['setting']}, seed {min(payload['seeds'][str(frames['setting'])])}; "
            f"git {str(prov['git_sha'])[:8]}{' dirty' if prov['git_dirty'] else ''}"
        )
        paths.append(plotting.fig5(frames, out_dir / "fig5_motion.png", footer=footer))
    return paths


def run_loop(cfg, out_dir: Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Runs/resumes the loop into ``out_dir``; writes results.json, fig5_motion.npz and the
    figures there; returns the payload."""
    out_dir = Path(out_dir)
    prov = results.provenance(cfg, sorted({r[2] for r in cfg.runs}))
    out = loop.run(cfg, out_dir, resume=resume, progress=progress)
    payload = {
        "config": results.config_dict(cfg),
        "provenance": prov,
        **{
            k: out[k]
            for k in (
                "results",
                "seeds",
                "real",
                "corrector_drift",
                "diag",
                "losses",
                "gen0_losses",
            )
        },
        "timing": out["timing"],
    }
    results.write_json(out_dir / "results.json", payload, digits=6)
    setting = max(payload["results"], key=lambda s: (float(s.split("lam=")[1]), s))
    frames = _fig5_frames(out, setting)
    np.savez_compressed(out_dir / "fig5_motion.npz", **frames)
    for p in plot_loop(payload, frames, out_dir):
        print(f"  wrote {p}")
    print(loop_summary(payload))
    return payload


def loop_figures(out: Path, run_dir: Path = LONG_RUN_DIR) -> list[Path]:
    """``scsc figures``: copies the finished long run's data into ``out`` and re-plots.

    Without a finished run in ``run_dir`` the committed ``fig4_motion.json`` and
    ``fig5_motion.npz`` in ``out`` are re-plotted (nothing is recomputed).
    """
    out = Path(out)
    src = run_dir / "results.json"
    if src.exists() and (run_dir / "fig5_motion.npz").exists():
        results.write_json(out / "fig4_motion.json", results.read_json(src), digits=6)
        results.write_bytes(out / "fig5_motion.npz", (run_dir / "fig5_motion.npz").read_bytes())
    if not (out / "fig4_motion.json").exists():
        print(f"motion loop: no saved results in {run_dir} or {out}; run `scsc motion --long`")
        return []
    payload = results.read_json(out / "fig4_motion.json")
    frames = None
    if (out / "fig5_motion.npz").exists():
        with np.load(out / "fig5_motion.npz") as z:
            frames = {k: z[k] for k in z.files}
    paths = plot_loop(payload, frames, out)
    for p in paths:
        print(f"  wrote {p}")
    return paths
