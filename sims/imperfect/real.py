"""The project's real correctors placed on the imperfect-corrector map.

Paper: Def. 4.1 (π_γ), App. C (effective γ̂), Thm 4.3. A real corrector C is measured by what
*one pass* does to real data, in a stated feature space (``FEATURE_SPACES``): for each feature
j, with x the real samples and y = C(x),

    shift_j = (mean y_j − mean x_j)/sd x_j,       ratio_j = sd y_j / sd x_j,

pooled over every axis but the features and bootstrapped over the first (samples, batches or
motions). An ideal π_γ toward p_data leaves p_data where it is (shift 0, ratio 1).

Placing it on the map (``to_map``). Model each standardised feature as the 1-D loop of
``theory.chains.augment_stationary`` under a biased π_γ whose replacements come from
p_c = N(b_j, v_j) (mean and variance offsets; ``theory.operators.Affine.biased``). One pass of
that corrector on p_data = N(0, 1) has shift (1−q)b and variance q + (1−q)v + q(1−q)b²,
q = 1/(1+γ), so

    b_j = shift_j/(1 − q),     v_j = (ratio_j² − q − q(1−q)b_j²)/(1 − q)   (clipped at 0).

The map's bias is the RMS of b_j and its shrink √(geometric mean of v_j). The prediction
(``predicted_ratio``) is the exact stationary error of the independent-feature model,
Σ_j e²_j(γ, b_j, v_j) / Σ_j e²_j(0), at the experiment's (n, λ): < 1 says the correction
helps the loop, > 1 that it hurts. The model ignores everything that is not a per-feature
mean or variance (shape, correlations, the learned model's own error), which is where it
can fail; ``compare`` puts it beside the measured loops.

γ used: the loop's nominal γ (∞ for digits and motion: every sample is corrected, and one
pass on data is what the loop's corrector does), with the measured γ̂ reported beside it
where the project has one (``figures/effective_gamma.json``,
``figures/fig8_digits_effective_gamma.json``).
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import results
from sims.gaussian import imperfect_maps
from theory import gaussian as gauss
from theory import operators as ops

__all__ = [
    "FEATURE_SPACES",
    "compare",
    "digits_estimate",
    "gaussian_estimate",
    "measured_outcomes",
    "motion_estimate",
    "one_pass",
    "predicted_ratio",
    "to_map",
]

FEATURE_SPACES = {
    "gaussian": "the 2 coordinates of N(0, I₂) (p_data = p_θ*), batches of ⌊λn⌋ = 25 points",
    "digits": "pixels of held-out 8×8 digits (the 64 pixels, constant ones dropped)",
    "motion": "the 30 per-frame motion features of the loop's 64 real training motions "
    "(pooled over frames; ``sims.motion.drift``)",
}


def one_pass(x, y, *, n_boot: int = 200, seed: int = 0) -> dict:
    """Per-feature shift and std ratio of y = C(x) and their summaries with 95 % bootstrap CIs.

    Args:
        x, y: [rows, ..., p] real samples and their corrected versions (rows are resampled).
        n_boot: bootstrap resamples over rows.
        seed: NumPy seed of the bootstrap.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(
            f"x and y must have the same shape [rows, ..., p]; got {x.shape}, {y.shape}"
        )

    sd0 = x.reshape(-1, x.shape[-1]).std(0)
    keep = sd0 > 1e-3  # constant features carry no scale
    sd0 = sd0[keep]  # the units: every resample is measured in the full sample's std

    def stats(xs, ys):
        xf = xs.reshape(-1, xs.shape[-1])[:, keep]
        yf = ys.reshape(-1, ys.shape[-1])[:, keep]
        return (yf.mean(0) - xf.mean(0)) / sd0, yf.std(0) / np.maximum(xf.std(0), 1e-3 * sd0)

    shift, ratio = stats(x, y)
    rng = np.random.default_rng(seed)
    boot, boot_shift = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, x.shape[0], x.shape[0])
        s, r = stats(x[idx], y[idx])
        boot_shift.append(s)
        boot.append((np.sqrt(np.mean(s**2)), np.exp(np.mean(np.log(np.maximum(r, 1e-12))))))
    boot = np.asarray(boot)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    boot_shift = np.asarray(boot_shift)
    shift_se = np.std(boot_shift, axis=0, ddof=1)
    # The debiased RMS shift (``_debiased``) and its bootstrap interval.
    deb = lambda s: float(np.sqrt(np.mean(np.maximum(s**2 - shift_se**2, 0.0))))  # noqa: E731
    deb_boot = [deb(s) for s in boot_shift]
    deb_lo, deb_hi = np.percentile(deb_boot, [2.5, 97.5])
    return {
        "shift": shift,
        "shift_se": shift_se,
        "ratio": ratio,
        "rms_shift": float(np.sqrt(np.mean(shift**2))),
        "rms_shift_ci": [float(lo[0]), float(hi[0])],
        "rms_shift_debiased": deb(shift),
        "rms_shift_debiased_ci": [float(deb_lo), float(deb_hi)],
        "max_shift": float(np.max(np.abs(shift))),
        "ratio_gm": float(np.exp(np.mean(np.log(np.maximum(ratio, 1e-12))))),
        "ratio_gm_ci": [float(lo[1]), float(hi[1])],
        "ratio_range": [float(ratio.min()), float(ratio.max())],
        "features": int(shift.size),
    }


def to_map(shift, ratio, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (b_j, v_j) of the biased-π_γ model with this one-pass shift and std ratio
    (module docstring). γ > 0 (γ = 0 corrects nothing and has no such parameters)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0 to place a corrector on the map; got {gamma}")
    q = 0.0 if math.isinf(gamma) else 1.0 / (1.0 + gamma)
    shift, ratio = np.asarray(shift, float), np.asarray(ratio, float)
    b = shift / (1.0 - q)
    v = np.maximum((ratio**2 - q - q * (1.0 - q) * b**2) / (1.0 - q), 0.0)
    return b, v


def predicted_ratio(n: int, lam: float, gamma: float, b, v) -> float:
    """Σ_j e²_j(γ, b_j, v_j) / Σ_j e²_j(0): the map's exact stationary error of the
    independent-feature model relative to no correction, at real set size n and λ."""
    b, v = np.asarray(b, float), np.asarray(v, float)
    th = imperfect_maps.theory_cells(n, lam, gamma, b, 0.0, v)
    none = imperfect_maps.theory_cells(n, lam, 0.0, b, 0.0, v)
    e2 = th["msq"] + (th["var"] - 1.0) ** 2
    e2_none = none["msq"] + (none["var"] - 1.0) ** 2
    return float(np.sum(e2) / np.sum(e2_none))


def _debiased(shift, se) -> np.ndarray:
    """shift_j shrunk to sign·√max(0, shift_j² − se_j²): E shift² = b² + se², so the raw
    RMS of noisy per-feature shifts overstates the bias."""
    shift, se = np.asarray(shift, float), np.asarray(se, float)
    return np.sign(shift) * np.sqrt(np.maximum(shift**2 - se**2, 0.0))


def _summary(name, experiment, gamma, stats, gamma_hat=None) -> dict:
    b, v = to_map(_debiased(stats["shift"], stats["shift_se"]), stats["ratio"], gamma)
    # The bias CI: the debiased RMS shift's bootstrap interval times (1+γ)/γ (to_map's b).
    scale = 1.0 if math.isinf(gamma) else (1.0 + gamma) / gamma
    out = {
        "name": name,
        "experiment": experiment,
        "feature_space": FEATURE_SPACES[experiment],
        "gamma": gamma,
        "gamma_hat": gamma_hat,
        **{k: v_ for k, v_ in stats.items() if k not in ("shift", "shift_se", "ratio")},
        "bias": float(np.sqrt(np.mean(b**2))),
        "bias_ci": [scale * c for c in stats["rms_shift_debiased_ci"]],
        "shrink": float(np.sqrt(np.exp(np.mean(np.log(np.maximum(v, 1e-12)))))),
        "shift_per_feature": stats["shift"].tolist(),
        "shift_se_per_feature": stats["shift_se"].tolist(),
        "ratio_per_feature": stats["ratio"].tolist(),
        "b_per_feature": b.tolist(),
        "v_per_feature": v.tolist(),
    }
    return out


def _committed_gamma_hat(figures: Path, correction: str, gamma: float):
    path = Path(figures) / "effective_gamma.json"
    if not path.exists():
        return None
    for row in results.read_json(path).get("rows", []):
        if row["correction"] == correction and abs(row["nominal_gamma"] - gamma) < 1e-9:
            return {"gamma_hat": row["gamma_hat"], "ci": row["ci"], "source": str(path.name)}
    return None


def gaussian_estimate(
    correction: str,
    gamma: float,
    *,
    batches: int = 400,
    batch: int = 25,
    seed: int = 0,
    n_boot: int = 200,
    figures: Path | str = "figures",
) -> dict:
    """One pass of a Gaussian-toy corrector (``theory.operators.CORRECTIONS``) on p_data =
    N(0, I₂), in batches of ``batch`` points (the toy's ⌊λn⌋)."""
    target = gauss.standard(2)
    corrector = ops.make_corrector(correction, gamma, target)
    key = jax.random.key(seed)
    x = jax.random.normal(jax.random.fold_in(key, 0), (batches, batch, 2))
    keys = jax.random.split(jax.random.fold_in(key, 1), batches)
    y = jax.jit(jax.vmap(lambda k, xb: corrector(k, xb)))(keys, x)
    stats = one_pass(np.asarray(x), np.asarray(y), n_boot=n_boot, seed=seed)
    hat = _committed_gamma_hat(Path(figures), correction, gamma)
    # Placed at the measured strength γ̂ when the project has one (the reference sampler
    # corrects 5–8× more strongly than its nominal γ), else at the nominal γ.
    used = hat["gamma_hat"] if hat else gamma
    out = _summary(f"gaussian {correction} γ={gamma:g}", "gaussian", used, stats, hat)
    return {**out, "nominal_gamma": gamma}


def digits_estimate(
    *, seed: int = 0, k: int = 16, n_boot: int = 200, figures: Path | str = "figures"
) -> dict:
    """The digits K-means corrector (K = ``k`` per class, fitted on the real training images,
    γ = ∞ as in the loop) applied once to the held-out real images, in pixel space."""
    from sims.digits import data as digits_data
    from sims.digits import kmeans

    d = digits_data.load("digits8", seed=seed)
    key = jax.random.key(seed)
    cents = kmeans.class_centroids(key, jnp.asarray(d.x_train), jnp.asarray(d.y_train), k)
    correct = kmeans.kmeans_corrector(cents, levels=d.levels)
    y = np.asarray(
        correct(jax.random.fold_in(key, 1), jnp.asarray(d.x_test), jnp.asarray(d.y_test))
    )
    x = np.asarray(d.x_test).reshape(len(d.x_test), -1)
    stats = one_pass(x, y.reshape(len(y), -1), n_boot=n_boot, seed=seed)
    hat = None
    path = Path(figures) / "fig8_digits_effective_gamma.json"
    if path.exists():
        eg = results.read_json(path)
        hat = {
            name: {
                "gamma_hat": row.get("gamma"),
                "ci": row.get("ci"),
                "identifiable": row.get("identifiable"),
            }
            for name, row in eg.items()
            if isinstance(row, dict) and "gamma" in row
        }
    return _summary("digits K-means (K = 16)", "digits", math.inf, stats, hat)


def motion_estimate(
    corrector: str, *, n: int = 64, n_boot: int = 200, seed: int = 1, smoke: bool = False
) -> dict:
    """One pass of a motion physics corrector (``id`` or ``pd``, C MuJoCo backend, γ = ∞ as in
    the loop) on the loop's first ``n`` real training motions (cached dataset).

    ``smoke``: the drift smoke data instead (``drift.Config.smoke``: the first 32 training
    motions of 72 × 24 frames; seconds, where the loop's 640 × 60 dataset takes about a
    minute to generate when not cached); ``n`` is then ignored.
    """
    from sims.motion import dataset as ds
    from sims.motion import drift
    from sims.motion import physics as ph

    cfg = drift.Config.smoke(corrector) if smoke else drift.Config(corrector=corrector, n=n)
    data = ds.load(cfg.data)
    train, _ = drift.split(cfg.data, cfg.n_test)
    x = np.asarray(data["features"][train[: cfg.n]], np.float32)
    y, _ = ph.correct_motion(
        jax.random.key(seed), jnp.asarray(x), backend="mujoco", corrector=corrector
    )
    stats = one_pass(x, np.asarray(y), n_boot=n_boot, seed=seed)
    return _summary(f"motion {corrector}", "motion", math.inf, stats)


# ---------------------------------------------------------------------------------------
# measured loops


def _last(arm: dict, key: str = "fid") -> float:
    return float(arm[key][-1])


def measured_outcomes(figures: Path | str = "figures") -> list[dict]:
    """The committed loops' outcome per corrector and setting: the final metric of the
    corrected chain over the uncorrected (``iterative``) one (< 1: correction helped).
    Reads whatever exists: ``gaussian_toy.json`` (W2; main figure = histogram-reference,
    panel ``histogram``), ``fig8_digits.json`` (FID per λ), ``fig4_motion.json`` (FID per
    (n, λ); arm ``corrected`` is the run's ``corrector``, ``pd`` when the run predates that
    field, and ``corrected_pd`` the PD tracker)."""
    figures = Path(figures)
    rows = []
    toy = figures / "gaussian_toy.json"
    if toy.exists():
        t = results.read_json(toy)
        cfg = t["config"]
        curves = {cfg["correction"]: t["final_w2"]["mean"]}
        hist = t.get("panels", {}).get("histogram")
        if hist and "w2_mean" in hist:
            curves[hist["config"]["correction"]] = [float(c[-1]) for c in hist["w2_mean"]]
        for corr, finals in curves.items():
            for g, w in zip(cfg["gammas"], finals, strict=True):
                if g > 0:
                    rows.append(
                        {
                            "corrector": f"gaussian {corr} γ={g:g}",
                            "experiment": "gaussian",
                            "n": cfg["n_real"],
                            "lam": cfg["lam"],
                            "gamma": g,
                            "metric": "W2",
                            "ratio": float(w) / float(finals[0]),
                            "source": toy.name,
                        }
                    )
    dig = figures / "fig8_digits.json"
    if dig.exists():
        d = results.read_json(dig)
        n_train = d["config"].get("n_train") or 1000
        for lam, arms in d["results"].items():
            rows.append(
                {
                    "corrector": "digits K-means (K = 16)",
                    "experiment": "digits",
                    "n": n_train,
                    "lam": float(lam),
                    "gamma": math.inf,
                    "metric": "FID",
                    "ratio": _last(arms["corrected"]) / _last(arms["iterative"]),
                    "source": dig.name,
                }
            )
    mot = figures / "fig4_motion.json"
    if mot.exists():
        m = results.read_json(mot)
        main = m["config"].get("corrector", "pd")
        for setting, arms in m["results"].items():
            n_s, lam_s = (part.split("=")[1] for part in setting.split(","))
            for arm, corr in (("corrected", main), ("corrected_pd", "pd")):
                if arm in arms:
                    rows.append(
                        {
                            "corrector": f"motion {corr}",
                            "experiment": "motion",
                            "n": int(n_s),
                            "lam": float(lam_s),
                            "gamma": math.inf,
                            "metric": "FID",
                            "ratio": _last(arms[arm]) / _last(arms["iterative"]),
                            "source": mot.name,
                            "setting": setting,
                        }
                    )
    return rows


def compare(estimates: list[dict], outcomes: list[dict]) -> dict:
    """Predicted vs measured ratio for every measured loop whose corrector was estimated, the
    two orderings and the pairs where they disagree (where the prediction fails)."""
    by_name = {e["name"]: e for e in estimates}
    rows = []
    for o in outcomes:
        est = by_name.get(o["corrector"])
        if est is None:
            continue
        pred = predicted_ratio(
            int(o["n"]),
            float(o["lam"]),
            float(est["gamma"]),
            est["b_per_feature"],
            est["v_per_feature"],
        )
        rows.append(
            {
                **o,
                "predicted_ratio": pred,
                "predicted_helps": pred < 1.0,
                "measured_helps": o["ratio"] < 1.0,
            }
        )
    order_pred = sorted(range(len(rows)), key=lambda i: rows[i]["predicted_ratio"])
    order_meas = sorted(range(len(rows)), key=lambda i: rows[i]["ratio"])
    discordant = []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            a, b = rows[i], rows[j]
            dp = np.sign(a["predicted_ratio"] - b["predicted_ratio"])
            dm = np.sign(a["ratio"] - b["ratio"])
            if dp * dm < 0:
                discordant.append([_label(a), _label(b)])
    pairs = len(rows) * (len(rows) - 1) // 2
    sign_agree = sum(r["predicted_helps"] == r["measured_helps"] for r in rows)
    return {
        "rows": rows,
        "predicted_order": [_label(rows[i]) for i in order_pred],
        "measured_order": [_label(rows[i]) for i in order_meas],
        "pairs": pairs,
        "discordant_pairs": discordant,
        "concordance": 1.0 - len(discordant) / pairs if pairs else float("nan"),
        "helps_agree": f"{sign_agree}/{len(rows)}",
        "helps_disagree": [_label(r) for r in rows if r["predicted_helps"] != r["measured_helps"]],
    }


def _label(row: dict) -> str:
    return f"{row['corrector']} (n={row['n']}, λ={row['lam']:g})"
