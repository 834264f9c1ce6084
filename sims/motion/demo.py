"""Correction demo: corrupt dataset motions in each way, correct them, measure plausibility.

Both correctors (``physics.CORRECTORS``: the feedforward tracker ``id`` and the earlier PD
tracker ``pd``) correct the same corrupted motions, side by side. ``main(cfg)`` returns plain
arrays and dicts and writes nothing; ``scsc motion demo`` saves ``correction_demo.json``
(config, provenance, ground-truth metrics; per corruption ``before`` / ``after`` dicts with
the metric names of ``sims.motion.metrics`` for the first corrector of ``cfg.correctors``
(the schema the figures read), and ``by_corrector``: the same for every corrector, with
``to_clean``: how far each correction lands from the clean motion) and renders the
comparison.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from sims.common.config import non_empty, nonneg_int, option, positive_int, validate
from sims.motion import corrupt as cr
from sims.motion import dataset as ds
from sims.motion import metrics as mt
from sims.motion import physics as ph

__all__ = ["Config", "main", "table"]


@dataclasses.dataclass(frozen=True)
class Config:
    """One demo run.

    Attributes:
        dataset: the ground-truth dataset (metrics on ground truth use all of it).
        per_class: motions per class that are corrupted and corrected (each corruption).
        backend: physics backend of the correction.
        seed: key of the corruptions (on the command line, ``--seed`` seeds the dataset
            too).
        correctors: ``physics.CORRECTORS`` compared (the first fills the top-level entries).
    """

    dataset: ds.Config = option(
        default_factory=lambda: ds.Config(n=144, frames=60), nested=("n", "frames")
    )
    per_class: int = option(2, check=positive_int)
    backend: str = option("mujoco", choices=ph.BACKENDS)
    seed: int = option(0, check=nonneg_int)
    correctors: tuple[str, ...] = option(("id", "pd"), choices=ph.CORRECTORS, check=non_empty())

    def __post_init__(self):
        validate(self)
        if self.per_class * len(ds.CLASSES) > self.dataset.n:
            raise ValueError(
                f"per_class × {len(ds.CLASSES)} classes must not exceed dataset.n = "
                f"{self.dataset.n}; got per_class = {self.per_class}"
            )

    @classmethod
    def smoke(cls) -> Config:
        """Tests: tiny dataset, one motion per class."""
        return cls(dataset=ds.Config.smoke(), per_class=1)


def _pick(labels: np.ndarray, per_class: int) -> np.ndarray:
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(ds.CLASSES))])


def _info_summary(info) -> dict[str, float]:
    return {
        "fell_rate": float(np.mean(info["fell"])),
        "joint_error_rad": float(np.mean(info["joint_error"])),
        "root_error_m": float(np.mean(info["root_error"])),
        "residual_force_frac_weight": float(np.mean(info["residual_force"])),
        "dropped_frames": float(np.mean(info["dropped"])),
    }


def _to_clean(fixed, clean) -> dict[str, float]:
    """Distance of a correction from the clean motion it was corrupted from."""
    f, c = np.asarray(fixed), np.asarray(clean)
    return {
        "hinge_rad": float(np.mean(np.sqrt(np.mean((f[..., 7:] - c[..., 7:]) ** 2, axis=(1, 2))))),
        "root_m": float(np.mean(np.linalg.norm(f[..., :3] - c[..., :3], axis=-1))),
    }


def main(cfg: Config) -> dict:
    """Runs the demo; returns metrics and the trajectories needed for rendering.

    Trajectories: ``ground_truth``, ``valid_corrected``, ``<kind>_corrupted`` and
    ``<kind>_corrected`` (first corrector), ``<kind>_corrected_<corrector>`` for the others.
    """
    t0 = time.perf_counter()
    data = ds.load(cfg.dataset)
    gt_all = mt.summarize(mt.plausibility(jnp.asarray(data["qpos"])))
    idx = _pick(data["labels"], cfg.per_class)
    gt = jnp.asarray(data["qpos"][idx])
    key = jax.random.key(cfg.seed)
    bad = {
        kind: cr.corrupt(jax.random.fold_in(key, i), gt, kind)
        for i, kind in enumerate(cr.CORRUPTIONS)
    }
    by = {}
    traj = {"ground_truth": np.asarray(gt)}
    for j, corrector in enumerate(cfg.correctors):
        suffix = "" if j == 0 else f"_{corrector}"
        sim, info = ph.simulate(gt, backend=cfg.backend, corrector=corrector)
        entry = {
            "valid_corrected": {
                "after": mt.summarize(mt.plausibility(sim)),
                "change": _info_summary(info),
            },
            "corruptions": {},
        }
        traj[f"valid_corrected{suffix}"] = np.asarray(sim)
        for kind in cr.CORRUPTIONS:
            fixed, info = ph.simulate(bad[kind], backend=cfg.backend, corrector=corrector)
            entry["corruptions"][kind] = {
                "matching_metric": cr.MATCHING_METRIC[kind],
                "before": mt.summarize(mt.plausibility(bad[kind])),
                "after": mt.summarize(mt.plausibility(fixed)),
                "correction": _info_summary(info),
                "to_clean": _to_clean(fixed, gt),
            }
            traj[f"{kind}_corrected{suffix}"] = np.asarray(fixed)
        by[corrector] = entry
    for kind in cr.CORRUPTIONS:
        traj[f"{kind}_corrupted"] = np.asarray(bad[kind])
    first = by[cfg.correctors[0]]
    return {
        "ground_truth": gt_all,
        "ground_truth_selected": mt.summarize(mt.plausibility(gt)),
        "valid_corrected": first["valid_corrected"],
        "corruptions": first["corruptions"],
        "by_corrector": by,
        "correctors": list(cfg.correctors),
        "trajectories": traj,
        "indices": idx,
        "labels": data["labels"][idx],
        "texts": data["texts"][idx],
        "seconds": time.perf_counter() - t0,
    }


def table(res: dict) -> str:
    """Side by side: each corruption's own metric before and after every corrector, and
    how far each correction lands from the clean motion."""
    names = res["correctors"]
    head = "  ".join(f"{c:>22s}" for c in names)
    lines = [f"{'corruption':10s} {'metric':12s} {'before':>8s}  {head}"]
    for kind in cr.CORRUPTIONS:
        m = cr.MATCHING_METRIC[kind]
        before = res["by_corrector"][names[0]]["corruptions"][kind]["before"][m]
        cells = []
        for c in names:
            e = res["by_corrector"][c]["corruptions"][kind]
            d = e["to_clean"]
            cells.append(
                f"{e['after'][m]:7.2f} ({d['hinge_rad']:.3f} rad {100 * d['root_m']:.1f} cm)"
            )
        lines.append(f"{kind:10s} {m:12s} {before:8.2f}  " + "  ".join(f"{x:>22s}" for x in cells))
    cells = []
    for c in names:
        ch = res["by_corrector"][c]["valid_corrected"]["change"]
        cells.append(f"({ch['joint_error_rad']:.3f} rad {100 * ch['root_error_m']:.1f} cm)")
    lines.append(
        f"{'valid':10s} {'(change)':12s} {'':8s}  " + "  ".join(f"{x:>22s}" for x in cells)
    )
    return "\n".join(lines)
