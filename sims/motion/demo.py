"""Correction demo: corrupt dataset motions in each way, correct them, measure plausibility.

``main(cfg)`` returns plain arrays and dicts and writes nothing; ``scsc motion demo`` saves
``correction_demo.json`` (config, provenance, ground-truth metrics, and per corruption
``before`` / ``after`` dicts with the metric names of ``sims.motion.metrics``) and renders
the comparison.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from sims.motion import corrupt as cr
from sims.motion import dataset as ds
from sims.motion import metrics as mt
from sims.motion import physics as ph

__all__ = ["Config", "main"]


@dataclasses.dataclass(frozen=True)
class Config:
    """One demo run.

    Attributes:
        dataset: the ground-truth dataset (metrics on ground truth use all of it).
        per_class: motions per class that are corrupted and corrected (each corruption).
        backend: ``physics.BACKENDS``.
        seed: key of the corruptions.
    """

    dataset: ds.Config = dataclasses.field(default_factory=lambda: ds.Config(n=144, frames=60))
    per_class: int = 2
    backend: str = "mujoco"
    seed: int = 0

    def __post_init__(self):
        if self.backend not in ph.BACKENDS:
            raise ValueError(f"backend must be one of {ph.BACKENDS}; got {self.backend!r}")
        if not isinstance(self.per_class, int) or self.per_class < 1:
            raise ValueError(f"per_class must be an integer >= 1; got {self.per_class!r}")
        if self.per_class * len(ds.CLASSES) > self.dataset.n:
            raise ValueError(
                f"per_class × {len(ds.CLASSES)} classes must not exceed dataset.n = "
                f"{self.dataset.n}; got per_class = {self.per_class}"
            )

    @classmethod
    def smoke(cls) -> Config:
        return cls(dataset=ds.Config.smoke(), per_class=1)


def _pick(labels: np.ndarray, per_class: int) -> np.ndarray:
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(ds.CLASSES))])


def _info_summary(info) -> dict[str, float]:
    return {
        "fell_rate": float(np.mean(info["fell"])),
        "joint_error_rad": float(np.mean(info["joint_error"])),
        "root_error_m": float(np.mean(info["root_error"])),
        "residual_force_frac_weight": float(np.mean(info["residual_force"])),
    }


def main(cfg: Config) -> dict:
    """Runs the demo; returns metrics and the trajectories needed for rendering."""
    t0 = time.perf_counter()
    data = ds.load(cfg.dataset)
    gt_all = mt.summarize(mt.plausibility(jnp.asarray(data["qpos"])))
    idx = _pick(data["labels"], cfg.per_class)
    gt = jnp.asarray(data["qpos"][idx])
    sim, info = ph.simulate(gt, backend=cfg.backend)
    out = {
        "ground_truth": gt_all,
        "ground_truth_selected": mt.summarize(mt.plausibility(gt)),
        "valid_corrected": {
            "after": mt.summarize(mt.plausibility(sim)),
            "change": _info_summary(info),
        },
        "corruptions": {},
        "trajectories": {"ground_truth": np.asarray(gt), "valid_corrected": np.asarray(sim)},
        "indices": idx,
        "labels": data["labels"][idx],
        "texts": data["texts"][idx],
    }
    key = jax.random.key(cfg.seed)
    for i, kind in enumerate(cr.CORRUPTIONS):
        bad = cr.corrupt(jax.random.fold_in(key, i), gt, kind)
        fixed, info = ph.simulate(bad, backend=cfg.backend)
        out["corruptions"][kind] = {
            "matching_metric": cr.MATCHING_METRIC[kind],
            "before": mt.summarize(mt.plausibility(bad)),
            "after": mt.summarize(mt.plausibility(fixed)),
            "correction": _info_summary(info),
        }
        out["trajectories"][f"{kind}_corrupted"] = np.asarray(bad)
        out["trajectories"][f"{kind}_corrected"] = np.asarray(fixed)
    out["seconds"] = time.perf_counter() - t0
    return out
