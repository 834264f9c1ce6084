"""Is the corrector a projection? Apply it again and again to real motions and measure the drift.

Paper: Def. 4.1 and Thm 4.3 need π_γ to pull toward p_θ* (the data); a corrector whose fixed
points are not the data pulls a self-consuming loop toward its own fixed points instead (for
the 1-D Gaussian mean exactly: ``theory.chains.mean_chain`` with a ``target_mean`` off the
data mean moves the loop's fixed point by λγ/(1+γ+λγ) of the offset). Real dataset motions
are already physically valid, so a projection onto valid motion must leave them where they
are: ``run`` corrects the loop's real training motions ``passes`` times (γ = ∞) and, after
every pass p = 0 … passes (0: uncorrected), measures against the original motions and the
held-out test motions:

* ``hinge_rms_change`` (rad): mean over motions of the RMS over frames and hinges of the
  hinge-angle change (the per-motion measure of ``physics.simulate``'s ``joint_error``);
* ``root_change`` (m): mean over motions and frames of the root position change (motions
  compared in features, which start at the ground origin);
* ``max_feature_shift`` (feature standard deviations) and ``max_feature_shift_name``: the
  largest |mean change| of one of the 30 features over its standard deviation in the
  original motions (a systematic pull shows here, noise averages out);
* ``fid`` with ``fid_ci`` (95 % bootstrap) against the held-out test motions, ``matching``,
  ``phys_err`` (mm), via ``evaluator.evaluate`` exactly as the loop scores a generation;
  ``fell_rate``, ``dropped`` (frames the ``id`` feasibility projection re-interpolated).

``run(cfg)`` returns the numbers and writes nothing; ``report(res, out)`` writes
``drift.json`` and ``drift.png``. ``drift(...)`` is the computation on given motions, for
callers that have the data and evaluator already (the loop).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sims.common.config import at_least, option, positive_int, validate
from sims.motion import dataset as ds
from sims.motion import evaluator as ev_mod
from sims.motion import physics as ph
from sims.motion import representation as rep

__all__ = ["FEATURE_NAMES", "Config", "drift", "report", "run", "split"]


def _feature_names() -> tuple[str, ...]:
    from sims.motion import humanoid as hm

    return (*hm.JOINTS, "root_height", *(f"root_6d_{i}" for i in range(6)), "vel_x", "vel_y")


FEATURE_NAMES = _feature_names()


@dataclasses.dataclass(frozen=True)
class Config:
    """One drift measurement (defaults: the loop's data, the C backend).

    Attributes:
        corrector: the physics tracker (``physics.CORRECTORS``).
        passes: corrections applied in turn (≥ 1).
        n: real training motions corrected (the loop's first n; ≥ 32 for the evaluator).
        backend: physics backend of the correction.
        data: the loop's dataset (training pool + held-out test split).
        n_test: held-out test motions (the FID reference; as the loop's ``n_test``).
        evaluator_data: the evaluator's training data (as the loop's).
        evaluator: evaluator architecture and training.
        n_boot: bootstrap resamples of the intervals.
    """

    # ``scsc motion drift --corrector id,pd`` runs one config per corrector (sims.motion.cli).
    corrector: str = option("id", choices=ph.CORRECTORS, flag=None)
    passes: int = option(4, check=positive_int)
    n: int = option(64, check=at_least(ev_mod.R_BATCH))
    backend: str = option("mujoco", choices=ph.BACKENDS)
    data: ds.Config = option(default_factory=lambda: ds.Config(n=640, frames=60, seed=1), flag=None)
    n_test: int = option(128, check=positive_int)
    evaluator_data: ds.Config = option(
        default_factory=lambda: ds.Config(n=512, frames=60, seed=0), flag=None
    )
    evaluator: ev_mod.Config = option(default_factory=ev_mod.Config, flag=None)
    n_boot: int = option(100, check=at_least(10))

    def __post_init__(self):
        validate(self)
        if self.n > self.data.n - self.n_test:
            raise ValueError(
                f"n must be <= the training pool data.n - n_test = {self.data.n - self.n_test}; "
                f"got {self.n}"
            )
        if self.evaluator_data.frames != self.data.frames:
            raise ValueError("evaluator_data and data must have the same frames per motion")

    @classmethod
    def smoke(cls, corrector: str = "id") -> Config:
        """Tests: small data and evaluator, two passes."""
        return cls(
            corrector=corrector,
            passes=2,
            n=32,
            data=ds.Config(n=72, frames=24, seed=1),
            n_test=32,
            evaluator_data=ds.Config(n=48, frames=24, seed=0),
            evaluator=ev_mod.Config.smoke(),
            n_boot=10,
        )


def split(data_cfg: ds.Config, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, test) indices: the motion loop's split of its dataset (tested equal)."""
    perm = np.random.default_rng([data_cfg.seed, 12345]).permutation(data_cfg.n)
    return perm[n_test:], perm[:n_test]


def _changes(x: np.ndarray, x0: np.ndarray, std: np.ndarray) -> dict:
    q = np.asarray(rep.to_qpos(jnp.asarray(x)))
    q0 = np.asarray(rep.to_qpos(jnp.asarray(x0)))
    hinge = np.sqrt(np.mean((q[..., 7:] - q0[..., 7:]) ** 2, axis=(1, 2)))
    root = np.linalg.norm(q[..., :3] - q0[..., :3], axis=-1)
    shift = np.abs((x - x0).mean((0, 1)) / std)
    return {
        "hinge_rms_change": float(hinge.mean()),
        "root_change": float(root.mean()),
        "max_feature_shift": float(shift.max()),
        "max_feature_shift_name": FEATURE_NAMES[int(shift.argmax())],
    }


def drift(
    evaluator: ev_mod.Evaluator,
    features: np.ndarray,
    texts,
    labels: np.ndarray,
    test_features: np.ndarray,
    *,
    corrector: str = "id",
    passes: int = 4,
    backend: str = "mujoco",
    n_boot: int = 100,
) -> dict:
    """Corrects ``features`` [n, T, 30] ``passes`` times; the metrics per pass (module
    docstring) as lists indexed by pass (0 = uncorrected), plus ``fid_within_pass0_ci``:
    whether each pass's FID lies inside the uncorrected motions' FID interval."""
    x0 = np.asarray(features, np.float32)
    std = x0.reshape(-1, x0.shape[-1]).std(0) + 1e-6
    keys = (
        "hinge_rms_change",
        "root_change",
        "max_feature_shift",
        "max_feature_shift_name",
        "fid",
        "fid_ci",
        "matching",
        "matching_ci",
        "phys_err",
        "phys_err_ci",
        "fell_rate",
        "dropped",
        "seconds",
    )
    out = {"passes": list(range(passes + 1)), **{k: [] for k in keys}}
    x = x0
    for p in range(passes + 1):
        t0 = time.perf_counter()
        fell, dropped = 0.0, 0.0
        if p:
            y, info = ph.correct_motion(
                jax.random.key(p), jnp.asarray(x), backend=backend, corrector=corrector
            )
            x = np.asarray(y)
            fell = float(np.mean(np.asarray(info["fell"])))
            dropped = float(np.mean(np.asarray(info["dropped"])))
        seconds = time.perf_counter() - t0
        # The loop's evaluation call (loop.corrector_drift): same key, same reference.
        m = ev_mod.evaluate(evaluator, jax.random.key(0), x, texts, labels, test_features, n_boot)
        row = {
            **_changes(x, x0, std),
            **{k: m[k] for k in ("fid", "fid_ci", "matching", "matching_ci", "phys_err")},
            "phys_err_ci": m["phys_err_ci"],
            "fell_rate": fell,
            "dropped": dropped,
            "seconds": seconds,
        }
        for k in keys:
            out[k].append(row[k])
    lo, hi = out["fid_ci"][0]
    out["fid_within_pass0_ci"] = [bool(lo <= f <= hi) for f in out["fid"]]
    return out


def run(cfg: Config) -> dict:
    """Loads the loop's data and evaluator (cached), runs ``drift``; writes nothing."""
    t0 = time.perf_counter()
    data = ds.load(cfg.data)
    train, test = split(cfg.data, cfg.n_test)
    idx = train[: cfg.n]
    evaluator = ev_mod.load(cfg.evaluator_data, cfg.evaluator)
    res = drift(
        evaluator,
        data["features"][idx],
        data["texts"][idx],
        data["labels"][idx],
        data["features"][test],
        corrector=cfg.corrector,
        passes=cfg.passes,
        backend=cfg.backend,
        n_boot=cfg.n_boot,
    )
    return {
        "corrector": cfg.corrector,
        "backend": cfg.backend,
        **res,
        "total_seconds": time.perf_counter() - t0,
        "config": cfg,
    }


def summary(res: dict) -> str:
    """A table: one row per pass."""
    lines = [
        f"corrector {res['corrector']} ({res['backend']}): pass  hinge rad  root cm  "
        "max shift (sd, feature)  FID [95 % CI]  phys mm"
    ]
    for p in res["passes"]:
        lo, hi = res["fid_ci"][p]
        lines.append(
            f"  {p:>2}  {res['hinge_rms_change'][p]:.4f}  {100 * res['root_change'][p]:.3f}  "
            f"{res['max_feature_shift'][p]:.2f} ({res['max_feature_shift_name'][p]})  "
            f"{res['fid'][p]:.3f} [{lo:.3f}, {hi:.3f}]  {res['phys_err'][p]:.2f}"
        )
    return "\n".join(lines)


def report(res: dict | list[dict], out: str | Path) -> list[Path]:
    """Writes ``drift.json`` (one result, or ``{"correctors": [...]}`` for several) and
    ``drift.png`` (the four drift measures per pass, one line per corrector)."""
    import matplotlib.pyplot as plt

    from sims.common import results
    from sims.common.plotting import save

    out = Path(out)
    many = isinstance(res, list)
    rows = res if many else [res]
    cfgs = [r["config"] for r in rows]
    prov = results.provenance(cfgs[0], [0])

    def payload(r):
        return {
            **{k: v for k, v in r.items() if k != "config"},
            "config": results.config_dict(r["config"]),
        }

    body = {"correctors": [payload(r) for r in rows]} if many else payload(rows[0])
    path = results.write_json(out / "drift.json", {**body, "provenance": prov}, digits=6)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    colors = {"id": "#1f77b4", "pd": "#c0392b"}
    for r in rows:
        p = np.asarray(r["passes"])
        c = colors.get(r["corrector"])
        label = f"{r['corrector']} ({r['backend']})"
        axes[0].plot(p, r["hinge_rms_change"], "o-", color=c, label=label)
        axes[1].plot(p, 100 * np.asarray(r["root_change"]), "o-", color=c)
        axes[2].plot(p, r["max_feature_shift"], "o-", color=c)
        ci = np.asarray(r["fid_ci"], float)
        axes[3].plot(p, r["fid"], "o-", color=c)
        axes[3].fill_between(p, ci[:, 0], ci[:, 1], color=c, alpha=0.15)
    lo, hi = rows[0]["fid_ci"][0]
    axes[3].axhspan(lo, hi, color="#999999", alpha=0.2, label="pass-0 FID 95 % CI")
    titles = (
        "hinge RMS change (rad)",
        "root change (cm)",
        "max |mean feature shift| (sd)",
        "FID vs held-out motions",
    )
    for ax, t in zip(axes, titles, strict=True):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("correction passes")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[3].legend(fontsize=8)
    n = cfgs[0].n
    fig.suptitle(
        f"Corrector drift on {n} real motions (idempotence: a projection stays flat); "
        f"git {str(prov['git_sha'])[:8]}{' dirty' if prov['git_dirty'] else ''}",
        fontsize=10,
    )
    fig.tight_layout()
    png = save(fig, out / "drift.png", prov)
    return [path, png]
