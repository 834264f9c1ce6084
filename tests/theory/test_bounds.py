"""theory.bounds against a NumPy reference (float64) and the paper's properties."""

import jax
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from theory import bounds

lams = st.floats(0.0, 3.0)
gammas = st.floats(0.0, 1e4)
kappas = st.floats(0.0, 5.0)


def ref_rho(lam, kappa):
    u = lam * (1 + kappa)
    return u / (1 - u) if u < 1 else np.inf


def ref_bound(t, lam, gamma, kappa, tau, err0):
    c = ref_rho(lam, kappa) / (1 + gamma)
    if not c < 1:
        return np.inf
    return tau * sum(c**i for i in range(t + 1)) + c**t * err0


@given(lams, gammas, kappas, st.integers(0, 60), st.floats(0, 2), st.floats(0, 5))
def test_matches_numpy_reference(lam, gamma, kappa, t, tau, err0):
    assert float(bounds.rho(lam, kappa)) == pytest.approx(ref_rho(lam, kappa), rel=1e-12)
    assert float(bounds.threshold(gamma, kappa)) == pytest.approx(
        (1 + gamma) / ((2 + gamma) * (1 + kappa)), rel=1e-12
    )
    got = float(bounds.bound(t, lam, gamma, kappa, tau, err0))
    assert got == pytest.approx(ref_bound(t, lam, gamma, kappa, tau, err0), rel=1e-9, abs=1e-300)


@given(gammas, gammas, kappas)
def test_threshold_increasing_in_gamma(g1, g2, kappa):
    assume(abs(g1 - g2) > 1e-6 * max(g1, g2, 1.0) and max(g1, g2) < 1e6)
    lo, hi = sorted((g1, g2))
    assert bounds.threshold(lo, kappa) < bounds.threshold(hi, kappa)


def test_threshold_limits():
    assert float(bounds.threshold(0.0)) == 0.5
    assert float(bounds.threshold(np.inf, 0.5)) == pytest.approx(1 / 1.5, rel=1e-15)
    assert float(bounds.threshold(1e12, 0.5)) == pytest.approx(1 / 1.5, rel=1e-9)


@given(lams, gammas, kappas)
def test_stable_iff_contraction_below_one(lam, gamma, kappa):
    thr = float(bounds.threshold(gamma, kappa))
    assume(abs(lam - thr) > 1e-9 * max(thr, 1e-300))
    assert bool(bounds.is_stable(lam, gamma, kappa)) == (bounds.contraction(lam, gamma, kappa) < 1)


@given(lams, kappas)
def test_gamma_zero_is_bertrand(lam, kappa):
    u = lam * (1 + kappa)
    assume(abs(u - 0.5) > 1e-12)
    assert bool(bounds.is_stable(lam, 0.0, kappa)) == (u < 0.5)
    assert float(bounds.contraction(lam, 0.0, kappa)) == pytest.approx(ref_rho(lam, kappa))


@given(st.floats(0.01, 0.45), gammas, gammas, kappas)
def test_contraction_monotone(lam, g1, g2, kappa):
    assume(abs(g1 - g2) > 1e-6 * max(g1, g2, 1) and lam * (1 + kappa) < 0.99)
    lo, hi = sorted((g1, g2))
    assert bounds.contraction(lam, hi, kappa) < bounds.contraction(lam, lo, kappa)
    assert bounds.contraction(lam * 0.9, lo, kappa) < bounds.contraction(lam, lo, kappa)


@given(
    st.floats(0.01, 0.49),
    st.floats(0, 50),
    st.floats(1e-3, 50),
    st.integers(1, 200),
    st.floats(1e-3, 1),
    st.floats(0, 5),
)
def test_bound_strictly_decreasing_in_gamma(lam, gamma, dgamma, t, tau, err0):
    assert bounds.bound(t, lam, gamma + dgamma, 0.0, tau, err0) < bounds.bound(
        t, lam, gamma, 0.0, tau, err0
    )


def test_bound_tends_to_tau_as_gamma_grows():
    tau = 0.3
    assert float(bounds.bound(50, 0.4, np.inf, 0.0, tau, 2.0)) == pytest.approx(tau)
    assert float(bounds.bound(50, 0.4, 1e9, 0.0, tau, 2.0)) == pytest.approx(tau, rel=1e-8)


def test_bound_inf_outside_theorem_and_differentiable_inside():
    assert np.isinf(bounds.bound(10, 0.5, 0.0, 0.0, 0.1, 1.0))  # λ = 1/2 at γ = 0
    assert np.isinf(bounds.rho(1.0))
    grad = jax.grad(lambda g: bounds.bound(10, 0.3, g, 0.1, 0.1, 1.0))(1.0)
    assert np.isfinite(grad) and grad < 0
    assert np.isfinite(jax.grad(bounds.rho)(0.2))


def test_well_specified_rate_below_theorem():
    lam = np.linspace(0.01, 0.49, 30)
    for g in (0.0, 0.5, 5.0):
        assert np.all(bounds.well_specified_rate(lam, g) < bounds.contraction(lam, g))
    assert float(bounds.well_specified_rate(3.0, 0.0)) < 1  # contracts beyond the theorem


def test_lemma_a7_reduces_to_scalar_rate():
    j = bounds.lemma_a7_jacobian(np.eye(3), 0.4, 2.0)
    np.testing.assert_allclose(j, np.eye(3) * float(bounds.well_specified_rate(0.4, 2.0)))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: bounds.rho(-0.1), "lam"),
        (lambda: bounds.contraction(0.1, -1.0), "gamma"),
        (lambda: bounds.threshold(0.0, -0.5), "kappa"),
        (lambda: bounds.bound(1.5, 0.1, 0.0, 0.0, 0.1, 1.0), "t"),
        (lambda: bounds.bound(-1, 0.1, 0.0, 0.0, 0.1, 1.0), "t"),
        (lambda: bounds.bound(1, 0.1, 0.0, 0.0, -0.1, 1.0), "tau"),
        (lambda: bounds.bound(1, 0.1, 0.0, 0.0, 0.1, np.nan), "err0"),
    ],
)
def test_invalid_inputs_raise(call, name):
    with pytest.raises(ValueError, match=name):
        call()
