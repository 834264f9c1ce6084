"""The feedforward tracker (``sims.motion.tracking`` / ``inverse``): maths in float64 on the C
backend, idempotence, corrections against the PD tracker, the feasibility projection.

C MuJoCo only (fast); MJX parity and the LAPACK-free lowering are in ``test_engine.py``.
One motion per class of the smoke dataset (9 × 40 frames) is shared by the module.
"""

import copy

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from scipy.optimize import nnls

from sims.motion import corrupt as cr
from sims.motion import dataset as ds
from sims.motion import engine
from sims.motion import humanoid as hm
from sims.motion import inverse as inv
from sims.motion import metrics as mt
from sims.motion import physics as ph
from sims.motion import tracking as tr

SETTINGS = hm.CORRECTOR
C = inv.consts(SETTINGS)
# Idempotence bounds on the 9 valid smoke motions (measured 0.0014 rad and 0.8 mm after one
# pass, 0.0019 rad / 1.2 mm after two; the PD tracker moves them by 0.058 rad and 1.2 cm).
IDEMPOTENT_RAD = 0.004
IDEMPOTENT_M = 0.002
TWO_PASS_RAD = 0.006
TWO_PASS_M = 0.003


@pytest.fixture(scope="module")
def batch(smoke_data):
    idx = [int(np.flatnonzero(smoke_data["labels"] == c)[0]) for c in range(len(ds.CLASSES))]
    return np.asarray(smoke_data["qpos"][idx], np.float64)


# ------------------------------------------------------------------ maths


def _random_states(n, rng):
    q = np.tile(hm.rest_qpos(), (n, 1))
    quat = rng.normal(size=(n, 4))
    q[:, 3:7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    q[:, 7:] += 0.3 * rng.normal(size=(n, 21))
    return q, rng.normal(size=(n, 27)), 5 * rng.normal(size=(n, 27))


def test_host_keypoints_match_mjx_kinematics():
    """``keypoints_np`` (C, float64; the C backends' fall check) against
    ``humanoid.forward_kinematics`` (MJX, float32) on random poses, to float32 round-off; and
    a planted wrong pose (the root 1 cm up, 1000× the tolerance) is seen as such."""
    q, _, _ = _random_states(12, np.random.default_rng(5))
    q = q.reshape(3, 4, hm.NQ)
    mjx_sites = np.asarray(hm.forward_kinematics(q)["sites"])
    np.testing.assert_allclose(tr.keypoints_np(q, SETTINGS), mjx_sites, atol=1e-5)
    shifted = q.copy()
    shifted[..., 2] += 0.01
    lifted = tr.keypoints_np(shifted, SETTINGS)[..., 2] - mjx_sites[..., 2]
    assert lifted.min() > 0.01 - 1e-5  # every key point moved up with the root


def test_discrete_inverse_dynamics_matches_mj_inverse():
    """(M + dt·D̄) a + qfrc_bias − qfrc_passive from the batched forward quantities equals
    MuJoCo's own ``mj_inverse`` with ``mjENBL_INVDISCRETE`` (float64, 1e-9 relative)."""
    q, v, a = _random_states(5, np.random.default_rng(0))
    ph_ = tr.frame_physics_np(q[None], v[None], SETTINGS)
    tau = ph_["mass"][0] @ a[..., None]
    tau = tau[..., 0] + C.dt * C.damping_diag * a + ph_["bias"][0]
    m = copy.copy(engine.inverse_model(SETTINGS))
    m.opt.enableflags |= int(mujoco.mjtEnableBit.mjENBL_INVDISCRETE)
    m.actuator_forcelimited[:] = 0  # a clamped actuator drops its velocity derivative
    d = mujoco.MjData(m)
    for i in range(5):
        d.qpos[:], d.qvel[:], d.qacc[:] = q[i], v[i], a[i]
        mujoco.mj_inverse(m, d)
        np.testing.assert_allclose(tau[i], d.qfrc_inverse, rtol=1e-9, atol=1e-9)


def _contact_free_rollout(qpos, qvel, ff):
    """Forward simulation of the inverse model (no contacts, limits or force clipping) with
    the control law's inputs for the feedforward ``ff``."""
    from mujoco import rollout

    m = copy.copy(engine.inverse_model(SETTINGS))
    m.actuator_forcelimited[:] = 0
    d = mujoco.MjData(m)
    ctrl = inv.controls(qpos, qvel, ff, C, np)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    init = np.empty((len(qpos), mujoco.mj_stateSize(m, spec)))
    for b in range(len(qpos)):
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos[b, 0], qvel[b, 0], ctrl[b, 0]
        mujoco.mj_forward(m, d)
        mujoco.mj_getState(m, d, init[b], spec)
    state, _ = rollout.rollout(m, [d], init, np.ascontiguousarray(ctrl))
    return state[..., 1 : 1 + m.nq]


@pytest.mark.parametrize("stride, tol", [(1, 1e-8), (None, 3e-3)])
def test_inverse_then_forward_reproduces_the_spline(batch, stride, tol):
    """Inverse/forward consistency in float64: the feedforward of the spline states, applied
    through the control law to the contact-free model, reproduces those states. Exact
    (round-off, < 1e-8 rad) with inverse dynamics at every step; with M and b at the frames
    only and interpolated (the default), within 3e-3 (measured 1.1e-3 rad over 0.55 s, the
    servos' feedback included)."""
    ref = batch[:3, :12]
    s = C.substeps
    st = s if stride is None else stride
    vec, q0 = inv.to_vectors(ref, np)
    qpos, qvel, qacc = inv.states(vec, q0, s, C.dt, np)
    phys = tr.frame_physics_np(qpos[:, ::st], qvel[:, ::st], SETTINGS)
    tau = inv.feedforward(phys["mass"], phys["bias"], qacc, C, np, st)
    sim = _contact_free_rollout(qpos, qvel, tau)
    assert np.abs(sim[..., 7:] - qpos[:, 1:, 7:]).max() < tol
    assert np.abs(sim[..., :3] - qpos[:, 1:, :3]).max() < tol
    # Orientation: angle between simulated and spline quaternions.
    dots = np.abs(np.sum(sim[..., 3:7] * qpos[:, 1:, 3:7], axis=-1))
    assert 2 * np.arccos(np.clip(dots, -1, 1)).max() < 10 * tol


def test_control_law_maps_a_known_feedforward_to_the_actuator_force():
    """u = x_ref + (f_ff + kv·ẋ_ref)/kp: at the reference state the actuators output f_ff
    (hinges as torques, the root residual as the free joint's generalized force, angular
    part in the body frame); off the reference f_ff + kp(x_ref − x) + kv(ẋ_ref − ẋ)."""
    rng = np.random.default_rng(1)
    q, v, _ = _random_states(1, rng)
    ff = rng.uniform(-0.3, 0.3, (1, 1, 27)) * np.concatenate([[60.0] * 6, C.limit[:21]])
    qpos, qvel = q[:, None].repeat(2, 1), v[:, None].repeat(2, 1)
    ctrl = inv.controls(qpos, qvel, ff, C, np)[0, 0]
    m = engine.tracking_model(SETTINGS)
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:], d.ctrl[:] = q[0], v[0], ctrl
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(d.actuator_force[:21], ff[0, 0, 6:], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(d.qfrc_actuator[:6], ff[0, 0, :6], rtol=1e-9, atol=1e-9)
    dq, dv = 0.01 * rng.normal(size=21), 0.1 * rng.normal(size=21)
    d.qpos[7:] += dq
    d.qvel[6:] += dv
    mujoco.mj_forward(m, d)
    want = ff[0, 0, 6:] - C.kp[:21] * dq - C.kv[:21] * dv
    np.testing.assert_allclose(d.actuator_force[:21], want, rtol=1e-9, atol=1e-9)


def test_spline_interpolates_and_rotations_unwrap(float64):
    w = inv.spline_matrix(10, 5)
    s = 5
    np.testing.assert_allclose(w[1::s], np.eye(10), atol=1e-12)  # k = 0, S, 2S, … are knots
    # A yaw turning through 1.5π: rotation vectors stay continuous across π.
    yaw = np.linspace(0, 1.5 * np.pi, 12)
    ref = np.tile(hm.rest_qpos(), (1, 12, 1))
    ref[0, :, 3] = np.cos(yaw / 2)
    ref[0, :, 6] = np.sin(yaw / 2)
    vec, q0 = inv.to_vectors(ref, np)
    assert np.abs(np.diff(vec[0, :, 3:6], axis=0)).max() < 0.5
    np.testing.assert_allclose(np.abs(vec[0, :, 5]), yaw, atol=1e-9)
    back = inv.from_vectors(vec, q0, np)
    np.testing.assert_allclose(np.abs(np.sum(back[..., 3:7] * ref[..., 3:7], -1)), 1, atol=1e-9)
    # The same in JAX (scan), as the MJX backend computes it.
    vj, _ = inv.to_vectors(jnp.asarray(ref), jnp)
    np.testing.assert_allclose(np.asarray(vj), vec, atol=1e-9)


def test_ground_reaction_nnls_matches_scipy(float64):
    """The NumPy solver beats SciPy's NNLS on the ridge objective; the JAX one (the MJX
    backend's) is the same algorithm, compared in float64 (``float64`` fixture)."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 6, 32)) * rng.uniform(0, 1, (40, 1, 32))
    b = rng.normal(size=(40, 6))
    rho = 1e-3
    lam, resid = inv.nnls_ridge(a, b, rho, inv.NNLS_ITERATIONS, np)
    assert lam.min() >= 0
    np.testing.assert_allclose(resid, b - np.einsum("pmn,pn->pm", a, lam), atol=1e-12)

    def objective(x, i):
        return 0.5 * np.sum((a[i] @ x - b[i]) ** 2) + 0.5 * rho * np.sum(x**2)

    for i in range(40):
        aug = np.vstack([a[i], np.sqrt(rho) * np.eye(32)])
        ref, _ = nnls(aug, np.concatenate([b[i], np.zeros(32)]))
        assert objective(lam[i], i) <= objective(ref, i) * (1 + 1e-9) + 1e-12
    lj, _ = inv.nnls_ridge(jnp.asarray(a), jnp.asarray(b), rho, inv.NNLS_ITERATIONS, jnp)
    np.testing.assert_allclose(np.asarray(lj), lam, atol=1e-8)


# ------------------------------------------------------------------ the corrector


@pytest.fixture(scope="module")
def corrected(batch):
    one, _, kept = tr.simulate_mujoco_np(batch, SETTINGS)
    two, _, _ = tr.simulate_mujoco_np(one.astype(np.float64), SETTINGS)
    return one, two, kept


def _change(a, b):
    hinge = np.mean(np.sqrt(np.mean((a[..., 7:] - b[..., 7:]) ** 2, axis=(1, 2))))
    return hinge, np.mean(np.linalg.norm(a[..., :3] - b[..., :3], axis=-1))


def test_idempotent_on_valid_motions(batch, corrected):
    one, two, kept = corrected
    assert kept.all()  # no frame of a valid motion is dropped
    h1, r1 = _change(one, batch)
    h2, r2 = _change(two, batch)
    assert h1 < IDEMPOTENT_RAD and r1 < IDEMPOTENT_M, (h1, r1)
    assert h2 < TWO_PASS_RAD and r2 < TWO_PASS_M, (h2, r2)
    pd, _ = ph.simulate(jnp.asarray(batch), backend="mujoco", corrector="pd")
    hp, rp = _change(np.asarray(pd), batch)
    assert hp > 5 * h1 and rp > 5 * r1  # the PD tracker is no projection (planted wrong law)


def test_feasibility_projection_drops_the_snap_and_recovers_the_motion(batch):
    bad = np.asarray(cr.corrupt(jax.random.key(3), jnp.asarray(batch), "snap"), np.float64)
    snapped = np.abs(bad - batch).max(-1) > 1e-4  # [B, T]: one frame per motion
    assert (snapped.sum(1) == 1).all()
    p = tr.plan(bad, SETTINGS, tr.frame_physics_np, np)
    np.testing.assert_array_equal(~p["kept"], snapped)
    sim, _, _ = tr.simulate_mujoco_np(bad, SETTINGS)
    h, r = _change(sim, batch)
    assert h < 0.01 and r < 0.005, (h, r)  # lands on the clean motion (snap: 0.8 rad)
    jerk = lambda q: float(jnp.mean(mt.plausibility(jnp.asarray(q, jnp.float32))["jerk"]))  # noqa: E731
    assert jerk(sim) < 1.5 * jerk(batch) < jerk(bad) / 5
    # Without the projection the tracker chases the snap.
    free, _, _ = tr.simulate_mujoco_np(bad, SETTINGS, project=False)
    assert jerk(free) > 2 * jerk(sim)


@pytest.mark.parametrize("kind", cr.CORRUPTIONS)
def test_id_corrects_each_corruption_at_least_as_well_as_pd(batch, kind):
    bad = cr.corrupt(jax.random.key(4), jnp.asarray(batch, jnp.float32), kind)
    metric = cr.MATCHING_METRIC[kind]
    before = float(jnp.mean(mt.plausibility(bad)[metric]))
    after = {}
    for c in ph.CORRECTORS:
        sim, info = ph.simulate(bad, backend="mujoco", corrector=c)
        assert not np.any(info["fell"])
        after[c] = float(jnp.mean(mt.plausibility(sim)[metric]))
    assert after["id"] < 0.5 * before
    # At least as well: within 0.05 mm (soft-contact penetration differs by round-off-level
    # load changes) or 5 % on the corruption's own metric.
    assert after["id"] <= max(after["pd"] * 1.05, after["pd"] + 0.05), after


def test_correct_motion_rejects_unknown_corrector():
    with pytest.raises(ValueError, match="corrector"):
        ph.correct_motion(jax.random.key(0), jnp.zeros((1, 8, 30)), corrector="lqr")
    with pytest.raises(ValueError, match="T >= 4"):
        ph.simulate(jnp.zeros((1, 3, 28)), backend="mujoco")
