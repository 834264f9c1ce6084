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
  ``fell_rate``, ``dropped`` (frames the ``id`` feasibility projection re-interpolated);
  ``penetration``, ``floating``, ``skating`` (mm, the parts of ``phys_err``);
* ``gap_closed`` and ``off_gap`` (``pull``): how far the motions moved toward the test
  motions' feature means since pass 0, and how far elsewhere.

``Config.samples`` corrects other motions instead, e.g. a loop chain's generated samples
(``sims.motion.run.checkpoint_samples``): real motions test the fixed points, generated
ones what the corrector does to the inputs it meets in the loop (``pull``).

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

__all__ = ["FEATURE_NAMES", "Config", "drift", "pull", "report", "run", "split"]


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
        samples: an .npz of motions to correct instead of the n real ones: a motion-loop
            chain checkpoint (its last generation's samples, conditioned on the held-out
            test descriptions in order) or a file with ``features`` [m, T, 30] and, unless
            m = n_test (then the test descriptions are used), ``texts`` and ``labels``.
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
    samples: str = option("", metavar="NPZ", default_text="none: the n real motions")

    def __post_init__(self):
        validate(self)
        if self.samples and not Path(self.samples).is_file():
            raise ValueError(f"samples must be an existing .npz file; got {self.samples!r}")
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


def pull(x, y, reference, *, n_boot: int = 200, seed: int = 0) -> dict:
    """Does one correction y = C(x) move the motions x toward the data ``reference``?

    Def. 4.1's π_γ pulls p_θ toward p_θ*: of the gap between a model's samples and the data
    it closes the fraction γ/(1+γ) (all of it at γ = ∞). Idempotence on real motions
    (``drift``) is necessary for that but not sufficient: a corrector can leave valid motions
    alone and still move *generated* ones anywhere. Per feature j (pooled over frames,
    in units of the reference's standard deviation sd_j):

        gap_j = (mean ref_j − mean x_j)/sd_j,     move_j = (mean y_j − mean x_j)/sd_j,

    ``gap_closed`` = ⟨move, gap⟩/|gap|² (1: the mean gap closed, 0: nothing moved toward
    the data, < 0: away from it), ``off_gap`` = RMS over features of move − gap_closed·gap
    (the part of the move that is not toward the data: a bias), and the same for the log
    standard deviations (``sd_gap_closed``, ``sd_off_gap``). ``gap_rms`` says how far x was
    from the data (on real motions the gap is only sampling noise and the fractions mean
    little). 95 % bootstrap intervals (``*_ci``; none when ``n_boot`` = 0) resample the
    motions of x (with their y) and of the reference.

    Args:
        x, y: [n, T, 30] motions and their corrections.
        reference: [m, T', 30] data motions (the held-out test set).
        n_boot: bootstrap resamples.
        seed: NumPy seed of the bootstrap.
    """
    x, y, ref = (np.asarray(a, np.float64) for a in (x, y, reference))
    if x.shape != y.shape or x.ndim != 3 or ref.ndim != 3 or ref.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"x, y must be [n, T, d] of one shape and reference [m, T', d]; got "
            f"{x.shape}, {y.shape}, {ref.shape}"
        )
    d = x.shape[-1]
    sd = ref.reshape(-1, d).std(0) + 1e-6

    def closed(move, gap):
        c = float(move @ gap / max(gap @ gap, 1e-12))
        return c, float(np.sqrt(np.mean((move - c * gap) ** 2)))

    def stats(xs, ys, rs):
        xf, yf, rf = (a.reshape(-1, d) for a in (xs, ys, rs))
        gap, move = (rf.mean(0) - xf.mean(0)) / sd, (yf.mean(0) - xf.mean(0)) / sd
        lsd = lambda a: np.log(a.std(0) + 1e-6 * sd)  # noqa: E731
        sd_gap, sd_move = lsd(rf) - lsd(xf), lsd(yf) - lsd(xf)
        return (*closed(move, gap), *closed(sd_move, sd_gap), float(np.sqrt(np.mean(gap**2))))

    names = ("gap_closed", "off_gap", "sd_gap_closed", "sd_off_gap", "gap_rms")
    point = stats(x, y, ref)
    out = {k: v for k, v in zip(names, point, strict=True)}
    if n_boot == 0:
        return out
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        i = rng.integers(0, x.shape[0], x.shape[0])
        j = rng.integers(0, ref.shape[0], ref.shape[0])
        boot.append(stats(x[i], y[i], ref[j]))
    lo, hi = np.percentile(np.asarray(boot), [2.5, 97.5], axis=0)
    out.update({f"{k}_ci": [float(a), float(b)] for k, a, b in zip(names, lo, hi, strict=True)})
    return out


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
        "penetration",
        "floating",
        "skating",
        "gap_closed",
        "gap_closed_ci",
        "off_gap",
        "gap_rms",
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
        keep = ("fid", "fid_ci", "matching", "matching_ci", "phys_err", "phys_err_ci")
        toward = pull(x0, x, test_features, n_boot=n_boot, seed=p)
        row = {
            **_changes(x, x0, std),
            **{k: m[k] for k in (*keep, "penetration", "floating", "skating")},
            **{k: toward[k] for k in ("gap_closed", "gap_closed_ci", "off_gap", "gap_rms")},
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
    features, texts, labels = data["features"][idx], data["texts"][idx], data["labels"][idx]
    if cfg.samples:
        features, texts, labels = _samples(cfg, data["texts"][test], data["labels"][test])
    evaluator = ev_mod.load(cfg.evaluator_data, cfg.evaluator)
    res = drift(
        evaluator,
        features,
        texts,
        labels,
        data["features"][test],
        corrector=cfg.corrector,
        passes=cfg.passes,
        backend=cfg.backend,
        n_boot=cfg.n_boot,
    )
    return {
        "corrector": cfg.corrector,
        "backend": cfg.backend,
        "motions": cfg.samples or "real",
        **res,
        "total_seconds": time.perf_counter() - t0,
        "config": cfg,
    }


def _samples(cfg: Config, test_texts, test_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, texts, labels) of ``cfg.samples`` (see ``Config``)."""
    from sims.motion import run as run_mod

    with np.load(cfg.samples, allow_pickle=False) as z:
        names = set(z.files)
        if "features" in names:
            x = np.asarray(z["features"], np.float32)
            texts = z["texts"].astype(str) if "texts" in names else None
            labels = z["labels"] if "labels" in names else None
    if "features" not in names:
        x = run_mod.checkpoint_samples(cfg.samples)
        texts = labels = None
    if x.ndim != 3 or x.shape[1:] != (cfg.data.frames, len(FEATURE_NAMES)):
        raise ValueError(
            f"{cfg.samples}: motions must be [m, {cfg.data.frames}, {len(FEATURE_NAMES)}]; "
            f"got {x.shape}"
        )
    if texts is None or labels is None:
        if x.shape[0] != cfg.n_test:
            raise ValueError(
                f"{cfg.samples}: without texts and labels the motions must be the "
                f"{cfg.n_test} test descriptions' samples; got {x.shape[0]} motions"
            )
        texts, labels = test_texts, test_labels
    return x, texts, labels


def summary(res: dict) -> str:
    """A table: one row per pass."""
    lines = [
        f"corrector {res['corrector']} ({res['backend']}) on {res.get('motions', 'real')} "
        "motions: pass  hinge rad  root cm  max shift (sd, feature)  FID [95 % CI]  phys mm  "
        "gap closed"
    ]
    for p in res["passes"]:
        lo, hi = res["fid_ci"][p]
        lines.append(
            f"  {p:>2}  {res['hinge_rms_change'][p]:.4f}  {100 * res['root_change'][p]:.3f}  "
            f"{res['max_feature_shift'][p]:.2f} ({res['max_feature_shift_name'][p]})  "
            f"{res['fid'][p]:.3f} [{lo:.3f}, {hi:.3f}]  {res['phys_err'][p]:.2f}  "
            f"{res['gap_closed'][p]:+.2f}"
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
    what = f"{cfgs[0].n} real motions" if not cfgs[0].samples else Path(cfgs[0].samples).name
    fig.suptitle(
        f"Corrector drift on {what} (idempotence: a projection stays flat on real motions); "
        f"git {str(prov['git_sha'])[:8]}{' dirty' if prov['git_dirty'] else ''}",
        fontsize=10,
    )
    fig.tight_layout()
    png = save(fig, out / "drift.png", prov)
    return [path, png]
