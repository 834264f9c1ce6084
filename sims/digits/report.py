"""Saving and plotting the digit loop's results (Figs. 3, 7, 8), and the summary table.

``report(cfg, results, out_dir)`` writes ``results.json`` (the Fig. 8 data schema),
``samples.npz`` and the figures; ``figures(out)`` re-plots a finished long run (or the
committed data) into ``figures/`` for ``scsc figures``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from sims.common import results
from sims.digits import effective, loop, plotting
from sims.digits.plotting import grid_by_class

__all__ = ["LONG_RUN_DIR", "figures", "payload_of", "plot_all", "report", "run_digits", "summary"]

LONG_RUN_DIR = Path("out/digits_long")


def _title(cfg, out: dict) -> str:
    sampler = (
        "plain DDPM sampler"
        if cfg.sample_steps == cfg.diffusion_steps
        else f"strided sampler, {cfg.sample_steps} of {cfg.diffusion_steps} steps"
    )
    return (
        f"{cfg.source}: n = {out['n_train']} real, {cfg.n_eval} generated vs {out['n_test']} test "
        f"images per FID; {sampler}; w = {cfg.guidance}; K = {cfg.k}, γ = {cfg.gamma:g}; "
        f"bands: 95% bootstrap CI"
    )


def payload_of(cfg, out: dict, provenance: dict | None = None) -> dict:
    """The Fig. 8 data file: config, provenance, results (λ → arm → metric lists), + floor."""
    return {
        "config": results.config_dict(cfg),
        "provenance": provenance or results.provenance(cfg, [cfg.seed]),
        "results": out["results"],
        "floor": {k: v for k, v in out["floor"].items()},
        "classifier_test_accuracy": out["classifier_accuracy"],
        "title": _title(cfg, out),
        "timing_seconds": out["timing"],
        "effective_gamma": out.get("effective_gamma"),
    }


def _samples_npz(cfg, out: dict) -> bytes:
    lam = max(cfg.lams)
    arrays = {"centroids": out["centroids"], "levels": np.asarray(out["levels"])}
    arrays["gen0_images"], arrays["gen0_labels"] = out["gen0_samples"]
    names = {
        "baseline": "baseline",
        "iterative": f"iterative_lam{lam:g}",
        "corrected": f"corrected_lam{lam:g}",
    }
    for arm, name in names.items():
        imgs, labels = out["final_samples"][name]
        arrays[f"{arm}_images"] = grid_by_class(imgs, labels)
        arrays[f"{arm}_labels"] = np.repeat(np.arange(10), 10)
    arrays["gen0_images"] = grid_by_class(*out["gen0_samples"])
    arrays["gen0_labels"] = np.repeat(np.arange(10), 10)
    arrays["lam"] = np.asarray(lam)
    arrays["generation"] = np.asarray(cfg.generations)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def plot_all(payload: dict, samples: dict, out_dir: Path) -> list[Path]:
    """Writes Fig. 7, Fig. 8, Fig. 3 and the diversity/accuracy curves into ``out_dir``."""
    prov = payload["provenance"]
    lam = float(samples["lam"])
    gen = int(samples["generation"])
    grids = {
        "generation 0": samples["gen0_images"],
        f"iterative, gen {gen}, λ = {lam:g}": samples["iterative_images"],
        f"corrected, gen {gen}, λ = {lam:g}": samples["corrected_images"],
        f"baseline, gen {gen}": samples["baseline_images"],
    }
    return [
        plotting.fig7(
            samples["centroids"],
            out_dir / "fig7_digits_centroids.png",
            prov,
            int(samples["levels"]),
        ),
        plotting.fig8(payload, out_dir / "fig8_digits.png", prov),
        plotting.curves(payload, out_dir / "fig8_digits_diversity_accuracy.png", prov),
        plotting.fig3(
            grids,
            out_dir / "fig3_digits_samples.png",
            prov,
            "Samples (row = conditioning digit); " + payload.get("title", ""),
        ),
    ]


def summary(payload: dict, last: int = 10) -> str:
    """A plain table of the last generation (FID [95% CI], KID, diversity, accuracy per arm)
    and the mean ± standard error of FID over the last ``last`` generations (FID moves from
    generation to generation with the model, so one generation is a noisy read-out)."""
    fl = payload["floor"]
    lines = [
        f"floor (real vs real, n = {fl.get('n')}): FID {fl['fid']:.3f} "
        f"[{fl['fid_ci'][0]:.3f}, {fl['fid_ci'][1]:.3f}], KID {fl['kid']:.4f}, "
        f"diversity {fl['diversity']:.3f}, accuracy {fl['class_accuracy']:.3f}"
    ]
    for lam, arms in sorted(payload["results"].items(), key=lambda kv: float(kv[0])):
        for arm, m in arms.items():
            lo, hi = m["fid_ci"][-1]
            tail = np.asarray(m["fid"][1:], float)[-last:]
            se = tail.std(ddof=1) / np.sqrt(len(tail)) if len(tail) > 1 else float("nan")
            lines.append(
                f"λ={lam:>4} {arm:>9}: gen0 FID {m['fid'][0]:.3f} → last {m['fid'][-1]:.3f} "
                f"[{lo:.3f}, {hi:.3f}]  KID {m['kid'][-1]:.4f}  div {m['diversity'][-1]:.3f}  "
                f"acc {m['class_accuracy'][-1]:.3f}  | FID mean of last {len(tail)}: "
                f"{tail.mean():.3f} ± {se:.3f}"
            )
    return "\n".join(lines)


def report(cfg, out: dict, out_dir: Path, provenance: dict | None = None) -> dict:
    """Saves ``loop.run``'s results into ``out_dir`` (results.json with the γ̂ of the
    corrector, samples.npz, the figures), prints the summary, returns the payload."""
    out_dir = Path(out_dir)
    if "effective_gamma" not in out:
        out = {**out, "effective_gamma": effective.for_run(cfg, out)}
    payload = payload_of(cfg, out, provenance)
    results.write_json(out_dir / "results.json", payload, digits=6)
    results.write_bytes(out_dir / "samples.npz", _samples_npz(cfg, out))
    with np.load(out_dir / "samples.npz") as z:
        samples = dict(z)
    for p in plot_all(payload, samples, out_dir):
        print(f"  wrote {p}")
    print(summary(payload))
    return payload


def run_digits(cfg, out_dir: Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Runs/resumes into ``out_dir`` (checkpoints there) and ``report``s the results."""
    out_dir = Path(out_dir)
    prov = results.provenance(cfg, [cfg.seed])  # the code that runs, not the code at the end
    out = loop.run(cfg, out_dir, resume=resume, cache_dir=out_dir / "cache", progress=progress)
    return report(cfg, out, out_dir, prov)


def figures(out: Path, run_dir: Path = LONG_RUN_DIR) -> list[Path]:
    """``scsc figures``: copies the finished long run's data into ``out`` and re-plots.

    Without a run in ``run_dir`` the committed ``fig8_digits.json`` and
    ``fig3_digits_samples.npz`` in ``out`` are re-plotted (nothing is recomputed).
    """
    out = Path(out)
    src = run_dir / "results.json"
    if src.exists() and (run_dir / "samples.npz").exists():
        payload = results.read_json(src)
        results.write_json(out / "fig8_digits.json", payload, digits=6)
        results.write_bytes(out / "fig3_digits_samples.npz", (run_dir / "samples.npz").read_bytes())
    if not (out / "fig8_digits.json").exists():
        print(f"digits: no saved results in {run_dir} or {out}; run `scsc digits --long` first")
        return []
    payload = results.read_json(out / "fig8_digits.json")
    with np.load(out / "fig3_digits_samples.npz") as z:
        samples = dict(z)
    paths = plot_all(payload, samples, out)
    for p in paths:
        print(f"  wrote {p}")
    return paths
