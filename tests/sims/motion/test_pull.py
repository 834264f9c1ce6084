"""``sims.motion.drift.pull``: the fraction of the feature-mean gap a correction closes."""

import numpy as np
import pytest

from sims.motion import drift as dr


@pytest.fixture(scope="module")
def motions():
    """Generated-like motions x [64, 20, 6] off the reference by a known mean gap."""
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, (256, 20, 6))
    x = rng.normal(0.0, 1.0, (64, 20, 6)) + np.array([0.8, -0.5, 0.3, 0.0, 0.6, -0.2])
    return x, ref


def _gap(x, ref):
    sd = ref.reshape(-1, ref.shape[-1]).std(0)
    return (ref.reshape(-1, 6).mean(0) - x.reshape(-1, 6).mean(0)), sd


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0, -0.5])
def test_a_move_along_the_gap_is_that_fraction(motions, fraction):
    x, ref = motions
    gap, _ = _gap(x, ref)
    r = dr.pull(x, x + fraction * gap, ref, n_boot=50)
    assert r["gap_closed"] == pytest.approx(fraction, abs=1e-6)
    assert r["off_gap"] == pytest.approx(0.0, abs=1e-6)
    lo, hi = r["gap_closed_ci"]
    assert lo <= r["gap_closed"] + 1e-9 and r["gap_closed"] - 1e-9 <= hi
    # The planted wrong reading: moving away from the data is not "toward" it.
    if fraction < 0:
        assert hi < 0


def test_an_orthogonal_move_is_off_gap(motions):
    x, ref = motions
    gap, sd = _gap(x, ref)
    g = gap / sd
    ortho = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    ortho = ortho - (ortho @ g) / (g @ g) * g  # ⟂ gap in standardised units
    r = dr.pull(x, x + 0.3 * ortho * sd, ref, n_boot=20)
    assert r["gap_closed"] == pytest.approx(0.0, abs=1e-6)
    assert r["off_gap"] == pytest.approx(0.3 * np.sqrt(np.mean(ortho**2)), rel=1e-5)  # sd + 1e-6


def test_spread_toward_the_data(motions):
    x, ref = motions
    scale = 0.4 * np.arange(1, 7) / 6 + 0.6  # x's spread, per feature (ref: 1)
    xs = x.mean((0, 1)) + (x - x.mean((0, 1))) * scale
    # y rescales x's spread by (sd_ref/sd_x)^0.3: 30 % of the log-spread gap closed.
    sd_x, sd_ref = xs.reshape(-1, 6).std(0), ref.reshape(-1, 6).std(0)
    m = xs.mean((0, 1))
    y = m + (xs - m) * (sd_ref / sd_x) ** 0.3
    r = dr.pull(xs, y, ref, n_boot=20)
    assert r["sd_gap_closed"] == pytest.approx(0.3, abs=1e-6)
    assert r["gap_closed"] == pytest.approx(0.0, abs=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        dr.pull(np.zeros((4, 3, 2)), np.zeros((4, 3, 3)), np.zeros((5, 3, 2)))
