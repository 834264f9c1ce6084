"""The real correctors on the map: one-pass statistics, the inversion to map coordinates, the
prediction, reading the measured loops, and the orderings.

Z-tests: |estimate − truth| < K_SE bootstrap standard errors (K_SE = 4, stated per test);
each is also run on a planted wrong truth and must fail.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.gaussian import imperfect_maps
from sims.imperfect import real
from theory import gaussian as gauss
from theory import operators as ops

K_SE = 4.0


def test_one_pass_recovers_a_planted_affine_map():
    """y = 0.3 + 0.8 x per feature: shift (0.3 − 0.2 x̄)/sd, std ratio 0.8 exactly; constant
    features are dropped."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    x[:, 2] = 1.0
    y = 0.3 + 0.8 * x
    out = real.one_pass(x, y, n_boot=20)
    assert out["features"] == 2
    sd = x[:, :2].std(0)
    np.testing.assert_allclose(out["shift"], (0.3 - 0.2 * x[:, :2].mean(0)) / sd, rtol=1e-10)
    np.testing.assert_allclose(out["ratio"], 0.8, rtol=1e-12)
    assert out["ratio_gm_ci"][0] <= 0.8 + 1e-12 <= out["ratio_gm_ci"][1] + 1e-12
    with pytest.raises(ValueError, match="same shape"):
        real.one_pass(x, y[:10])


@pytest.mark.parametrize("gamma", [1.0, math.inf])
def test_to_map_inverts_one_pass_of_a_biased_corrector(gamma):
    """One pass of π_γ toward p_c = N(b, v) (``theory.operators.biased``), b = 0.5, v = 0.6,
    on 40,000 draws of N(0, 1): ``to_map`` returns (b, v) within K_SE bootstrap SEs (SE of b
    from the shift's SE; of v by the delta method from 200 resamples); a planted wrong
    truth (b = 0.45) is rejected."""
    b_true, v_true = 0.5, 0.6
    key = jax.random.key(3)
    x = jax.random.normal(key, (40_000, 1))
    corrector = ops.biased(gamma, gauss.Gaussian(jnp.asarray([b_true]), jnp.asarray([[v_true]])))
    y = corrector(jax.random.fold_in(key, 1), x)
    stats = real.one_pass(np.asarray(x), np.asarray(y), n_boot=200)
    b, v = real.to_map(stats["shift"], stats["ratio"], gamma)
    q = 0.0 if math.isinf(gamma) else 1.0 / (1.0 + gamma)
    se_b = stats["shift_se"][0] / (1.0 - q)
    assert abs(b[0] - b_true) < K_SE * se_b, (b, se_b)
    assert abs(b[0] - 0.45) >= K_SE * se_b
    # v's SE: resample and invert (the same bootstrap as one_pass, on the full inversion).
    rng = np.random.default_rng(1)
    xs, ys = np.asarray(x), np.asarray(y)
    vs = []
    for _ in range(100):
        idx = rng.integers(0, len(xs), len(xs))
        s = real.one_pass(xs[idx], ys[idx], n_boot=10)
        vs.append(real.to_map(s["shift"], s["ratio"], gamma)[1][0])
    se_v = np.std(vs, ddof=1)
    assert abs(v[0] - v_true) < K_SE * se_v, (v, se_v)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        real.to_map(stats["shift"], stats["ratio"], 0.0)


def test_predicted_ratio_is_the_exact_stationary_error_ratio():
    """One feature: the ratio of ``theory_cells``' e² at (γ, b, v) and at γ = 0; the ideal
    corrector (b = 0, v = 1) helps, a strongly biased one hurts."""
    n, lam = 50, 0.5
    th = imperfect_maps.theory_cells(n, lam, 2.0, 0.4, 0.0, 0.8)
    none = imperfect_maps.theory_cells(n, lam, 0.0, 0.4, 0.0, 0.8)
    want = (th["msq"] + (th["var"] - 1) ** 2) / (none["msq"] + (none["var"] - 1) ** 2)
    assert real.predicted_ratio(n, lam, 2.0, [0.4], [0.8]) == pytest.approx(float(want))
    assert real.predicted_ratio(n, lam, 2.0, [0.0], [1.0]) < 1.0
    assert real.predicted_ratio(n, lam, 2.0, [1.0, 1.0], [1.0, 1.0]) > 1.0


def _write(path, payload):
    path.write_text(json.dumps({**payload, "provenance": {"schema_version": 1}}))


def test_measured_outcomes_read_whatever_arms_exist(tmp_path):
    """An old motion file (no ``corrector`` field: ``corrected`` is PD) and a new one (``id``
    plus ``corrected_pd``); a digits file; a missing toy file is skipped."""
    fid = lambda *v: {"fid": list(v)}  # noqa: E731
    _write(
        tmp_path / "fig4_motion.json",
        {
            "config": {},
            "results": {"n=64,lam=1": {"iterative": fid(1.0, 2.0), "corrected": fid(1.0, 3.0)}},
        },
    )
    rows = real.measured_outcomes(tmp_path)
    assert [(r["corrector"], r["ratio"], r["n"], r["lam"]) for r in rows] == [
        ("motion pd", 1.5, 64, 1.0)
    ]
    arms = {"iterative": fid(2.0), "corrected": fid(1.0), "corrected_pd": fid(4.0)}
    _write(
        tmp_path / "fig4_motion.json",
        {"config": {"corrector": "id"}, "results": {"n=64,lam=0.5": arms}},
    )
    _write(
        tmp_path / "fig8_digits.json",
        {"config": {}, "results": {"0.5": {"iterative": fid(2.0), "corrected": fid(1.0)}}},
    )
    rows = real.measured_outcomes(tmp_path)
    got = {(r["corrector"], r["lam"]): r["ratio"] for r in rows}
    assert got == {
        ("digits K-means (K = 16)", 0.5): 0.5,
        ("motion id", 0.5): 0.5,
        ("motion pd", 0.5): 2.0,
    }


def test_compare_counts_discordant_pairs_and_sign_disagreements():
    """Two estimates: an ideal one (predicted to help) and a biased one (to hurt); measured
    outcomes planted so that one pair is discordant and one sign disagrees."""
    est = [
        {"name": "good", "gamma": 1.0, "b_per_feature": [0.0], "v_per_feature": [1.0]},
        {"name": "bad", "gamma": 1.0, "b_per_feature": [1.0], "v_per_feature": [1.0]},
    ]
    outcomes = [
        {"corrector": "good", "n": 50, "lam": 0.5, "ratio": 1.2},
        {"corrector": "bad", "n": 50, "lam": 0.5, "ratio": 0.9},
        {"corrector": "unknown", "n": 50, "lam": 0.5, "ratio": 0.1},
    ]
    c = real.compare(est, outcomes)
    assert len(c["rows"]) == 2 and c["pairs"] == 1 and len(c["discordant_pairs"]) == 1
    assert c["concordance"] == 0.0 and c["helps_agree"] == "0/2"
    assert c["predicted_order"][0].startswith("good") and c["measured_order"][0].startswith("bad")


def test_gaussian_estimates_ideal_vs_reference_sampler():
    """The exact histogram corrector barely moves N(0, I) (std ratio ≈ √(24/25), the
    resampling of a batch of 25), the published reference sampler shrinks it more."""
    h = real.gaussian_estimate("histogram", 1.0, batches=100, n_boot=20, figures="/nonexistent")
    r = real.gaussian_estimate(
        "histogram-reference", 1.0, batches=100, n_boot=20, figures="/nonexistent"
    )
    assert h["gamma_hat"] is None and h["gamma"] == 1.0
    assert 0.95 < h["ratio_gm"] < 1.0 and r["ratio_gm"] < h["ratio_gm"]
    assert set(h) >= {"bias", "bias_ci", "shrink", "feature_space"}


@pytest.mark.heavy
def test_digits_and_motion_estimates():
    """The cached digits (K-means) and motion (``id``, ``pd``; C MuJoCo) one-pass estimates:
    snapping to centroids shrinks pixel spread; ``id`` moves real motions far less than
    ``pd`` (the drift table of docs/results/physics.md), here on the drift smoke data (the
    loop's dataset alone takes about a minute to generate)."""
    pytest.importorskip("mujoco")
    d = real.digits_estimate(n_boot=20)
    assert d["ratio_gm"] < 0.9 and math.isinf(d["gamma"])
    i = real.motion_estimate("id", n_boot=20, smoke=True)
    p = real.motion_estimate("pd", n_boot=20, smoke=True)
    assert i["rms_shift"] < p["rms_shift"] and i["features"] == p["features"] == 30
