"""The feedforward (inverse-dynamics) tracker: the default physics corrector ``"id"``.

The corrector π_γ of the paper (Def. 4.1; §4 "Human motion": a physics simulator imitates
the motion, the simulated motion is the correction) should be a projection onto physically
valid motion: a valid motion must come back (nearly) unchanged, or a self-consuming loop
drifts toward the corrector's own fixed points (``sims.motion.drift``). The PD tracker
(``physics``, corrector ``"pd"``) is not one: its servos damp against the absolute velocity
(−kv·q̇, ≈ 2 frames of lag) and nothing compensates gravity or the hinge springs, so every
pass moves real motions by 0.054 rad RMS and 1.2 cm. This tracker moves them by 0.0017 rad
and 0.8 mm (64 real motions of the loop, C backend), and still corrects sunk, levitating,
snapped and sliding motions at least as well as PD (``scsc motion demo``).

Pipeline (``plan``, the same code for both backends; formulas in ``sims.motion.inverse``):

1. **Smooth reference.** Not-a-knot cubic splines through the frames for the hinges and the
   root position, and for the root rotation vector relative to the first frame (unwrapped
   across π): a C² rotation spline that passes through every frame. Sampled at the physics
   rate; velocities and accelerations are the integrator's own finite differences
   (v_k = (q_k ⊖ q_{k−1})/dt, a_k = (v_{k+1} − v_k)/dt), so a MuJoCo step from (q_k, v_k)
   with a_k lands exactly on q_{k+1}. (Analytic spline derivatives would not: the
   semi-implicit Euler update would drift from them by O(dt).)
2. **Inverse dynamics** on a contact-free, limit-free copy of the model
   (``engine.inverse_model``), discrete-time for ``implicitfast`` (``mjENBL_INVDISCRETE``):
   τ_k = (M_k + dt·D̄) a_k + qfrc_bias − qfrc_passive with D̄ the (diagonal, constant) velocity
   derivative of damping and servo forces; equal to ``mj_inverse`` to 1e-9 (tested). M and
   the bias come from one multi-threaded ``mujoco.batch`` forward call over all frames (no
   Python call per frame or step) and are interpolated linearly to the steps; a_k is exact.
   Evaluating them at every step instead changed the one-pass drift of 64 real motions by
   3e-5 rad (0.00172 vs 0.00169 rad, measured) and made the correction 1.7× slower.
   Joint limits are left out: references lie inside their ranges, and the limit forces of
   the forward model then stay ≈ 0.
3. **Ground reaction.** A small non-negative least-squares solve per frame
   (``inverse.contact_forces``): forces at the 8 foot-capsule ends, in a friction pyramid
   (half the contact friction: a margin inside the cone), available to points whose
   reference height is below 0 (fully) to 5 mm (not at all; a wider band, 5–20 mm, gave
   more drift on marching motions: measured), chosen to minimise the root's residual wrench
   (ridge 1e-3). Semismooth Newton on the 6-dim dual with a fixed number of iterations and
   an unrolled 6×6 Cholesky: jittable, no LAPACK. Whatever the feet cannot supply stays
   with the bounded root residual (≤ 50 % of body weight and the torque bound, unchanged).
   Feedforward = τ − G (G interpolated linearly between frames).
4. **Projections onto valid motion** (before the feedforward is final; ``inverse``):
   *floor* — the whole reference is shifted vertically so that its lowest point lies on the
   floor for 10 % of the frames (M and b do not depend on the root's translation, so only
   positions move): sunk and levitating motions land exactly on their clean versions;
   *stance slip* — the root moves against the contact-weighted slip of feet in contact,
   beyond 0.1 m/s (valid motions' stance feet slip < 0.08 m/s in 99 % of frames, the slide
   corruption 0.4 m/s); *feasibility* — a frame whose contact-free τ needs > 8× a hinge's
   torque limit or > 6× body weight at the root (valid motions: < 0.5 of that; one-frame
   snaps: > 6) is dropped and re-interpolated from its neighbours, choosing among the
   flagged neighbourhood the frame that deviates most from its neighbours' mean (a spline
   through a snap rings: its neighbours also look infeasible). Without this step the
   tracker chases snaps (tested).
5. **Control law.** A position servo outputs f = kp(u − x) − kv·ẋ; with
   u = x_ref + (f_ff + kv·ẋ_ref)/kp it outputs f_ff + kp(x_ref − x) + kv(ẋ_ref − ẋ), clipped
   to the *same* force limits as the PD tracker (hinge control limits off: u may lie outside
   the joint range). For the root residual, x is the torso position and world rotation
   vector (the site transmission's length), ẋ the world linear and angular velocity; the
   free joint's angular DoFs are in the body frame, so the world torque is R·f_ff,ang
   (tested: a known feedforward produces exactly that actuator force).
6. **Servo gains.** The PD tracker's gains, except stiffer hip_x, hip_z (×5) and ankle_x
   (×10) servos (``engine.TRACKING_KP_SCALE``): in double support the feet's lateral squeeze
   and twist are internal forces the root wrench does not determine, the physical ones
   differ from the solve's, and the joints that carry them (whose spread in the data is
   only 0.002–0.01 rad) deflect by Δf/kp. With the PD gains those deflections, ≈ 1.8 data
   standard deviations of ankle_x, raised the evaluator's FID of real motions from 0.133
   to 0.175 after one pass; with the stiffer ones 0.134 (measured; ×10 on hip_z excites a
   5 ms oscillation). Damping stays kv = 0.1·kp: relative to the reference velocity it adds
   no lag.
7. **Forward simulation** from the spline's first state (with the reference's velocity),
   lifted if it starts below the floor: C ``mujoco.rollout`` (multi-threaded; Newton, 30
   iterations, tolerance 1e-10: converged, 1.5 iterations per step on average) or MJX
   (``lax.scan``; on CPU sparse Jacobian + CG, 20 iterations: within 1e-4 rad of the C
   backend over 0.55 s; over 2 s ≤ 0.005 rad on 17 of 18 motions, 0.006; see ``engine``). Falls
   are rejected by ``physics`` as for PD.

Backends: ``simulate_mujoco_np`` (NumPy and C MuJoCo; called through ``jax.pure_callback``,
so no JAX operation runs inside) and ``simulate_mjx`` (jittable, float32).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from sims.motion import engine
from sims.motion import humanoid as hm
from sims.motion import inverse as inv

__all__ = ["plan", "simulate_mjx", "simulate_mujoco_np"]


def _nthread() -> int:
    return int(os.environ.get("SCSC_MUJOCO_THREADS", os.cpu_count() or 1))


def _lowest(sites, xp):
    """Lowest surface point over the key points (site z − geom radius)."""
    radius = xp.asarray(hm.keypoint_radius(), dtype=sites.dtype)
    return xp.min(sites[..., 2] - radius, axis=-1)


# ------------------------------------------------------------------ physics at the frames


def frame_physics_np(qpos, qvel, settings: hm.Settings) -> dict[str, np.ndarray]:
    """C MuJoCo (``mujoco.batch``, multi-threaded): mass matrix, bias − passive force, key
    points and hinge frames of the contact-free model at states [B, T, ·] (float64)."""
    b, t = qpos.shape[:2]
    cb = engine.cbatch("inverse", settings, b * t, _nthread())
    m = cb.model
    with cb.lock:
        cb.qpos[:] = qpos.reshape(b * t, -1)
        cb.qvel[:] = qvel.reshape(b * t, -1)
        cb.batch.forward(stage=int(mujoco.mjtStage.mjSTAGE_VEL))
        out = {k: np.array(v) for k, v in cb.out.items()}
    rows = np.repeat(np.arange(m.nv), m.M_rownnz)
    cols = np.asarray(m.M_colind)
    mass = np.zeros((b * t, m.nv, m.nv))
    mass[:, rows, cols] = out["M"]
    mass[:, cols, rows] = out["M"]
    c = inv.consts(settings)
    return {
        "mass": mass.reshape(b, t, m.nv, m.nv),
        "bias": (out["qfrc_bias"] - out["qfrc_passive"]).reshape(b, t, m.nv),
        "keypoints": out["site_xpos"][:, list(hm.keypoint_site_ids())].reshape(b, t, -1, 3),
        "sites": out["site_xpos"][:, c.foot_sites].reshape(b, t, 8, 3),
        "anchors": out["xanchor"][:, c.hinge_jnt].reshape(b, t, hm.N_JOINTS, 3),
        "axes": out["xaxis"][:, c.hinge_jnt].reshape(b, t, hm.N_JOINTS, 3),
    }


def keypoints_np(qpos, settings: hm.Settings) -> np.ndarray:
    """Key-point positions ``[..., K, 3]`` (``KEYPOINTS`` order, float64) of qpos
    ``[..., 28]`` by C MuJoCo kinematics (``mujoco.batch``, multi-threaded): the host
    counterpart of ``humanoid.forward_kinematics`` for code already running on the host."""
    flat = np.asarray(qpos, np.float64).reshape(-1, hm.NQ)
    cb = engine.cbatch("inverse", settings, flat.shape[0], _nthread())
    with cb.lock:
        cb.qpos[:] = flat
        cb.batch.forward(stage=int(mujoco.mjtStage.mjSTAGE_POS))
        sites = np.array(cb.out["site_xpos"][:, list(hm.keypoint_site_ids())])
    return sites.reshape(*np.shape(qpos)[:-1], -1, 3)


def frame_physics_mjx(qpos, qvel, settings: hm.Settings) -> dict:
    """The same quantities from MJX (float32, jittable)."""
    from mujoco import mjx

    # Dense: no factorisation is called here (so no LAPACK), and dense M needs no conversion.
    mx = engine.device_model("inverse", settings, lapack=True)
    c = inv.consts(settings)
    b, t = qpos.shape[:2]
    template = hm.to_float32(mjx.make_data(mx))

    def one(q, v):
        d = template.replace(qpos=q, qvel=v)
        d = mjx.kinematics(mx, d)
        d = mjx.com_pos(mx, d)
        d = mjx.crb(mx, d)
        d = mjx.com_vel(mx, d)
        d = mjx.passive(mx, d)
        d = mjx.rne(mx, d)
        return (
            mjx.full_m(mx, d),
            d.qfrc_bias - d.qfrc_passive,
            d.site_xpos,
            d.xanchor,
            d.xaxis,
        )

    mass, bias, site, anchor, axis = jax.vmap(one)(
        qpos.reshape(b * t, -1).astype(jnp.float32), qvel.reshape(b * t, -1).astype(jnp.float32)
    )
    return {
        "mass": mass.reshape(b, t, *mass.shape[1:]),
        "bias": bias.reshape(b, t, -1),
        "keypoints": site[:, np.asarray(hm.keypoint_site_ids())].reshape(b, t, -1, 3),
        "sites": site[:, c.foot_sites].reshape(b, t, 8, 3),
        "anchors": anchor[:, c.hinge_jnt].reshape(b, t, hm.N_JOINTS, 3),
        "axes": axis[:, c.hinge_jnt].reshape(b, t, hm.N_JOINTS, 3),
    }


# ------------------------------------------------------------------ the plan


def _evaluate(vec, q0, settings, physics, xp, stride):
    """Spline states of ``vec`` and their feedforward after the ground reaction."""
    c = inv.consts(settings)
    qpos, qvel, qacc = inv.states(vec, q0, c.substeps, c.dt, xp)
    qf, vf = qpos[:, ::stride], qvel[:, ::stride]
    ph = physics(qf, vf, settings)
    # Floor projection: the whole reference is shifted vertically so that its lowest point
    # lies at FLOOR_TARGET for FLOOR_QUANTILE of the frames. M and b do not depend on the
    # root's translation (uniform gravity, no contacts in the inverse model): only
    # positions move.
    low = _lowest(ph["keypoints"], xp)  # [B, T/stride]
    dz = FLOOR_TARGET - xp.quantile(low, FLOOR_QUANTILE, axis=1)
    if not SHIFT:
        dz = dz * 0
    up = xp.asarray([0.0, 0.0, 1.0], dtype=qpos.dtype) * dz[:, None]
    qpos = _shift(qpos, up, xp)
    qf = _shift(qf, up, xp)
    sites = ph["sites"] + up[:, None, None]
    anchors = ph["anchors"] + up[:, None, None]
    tau = inv.feedforward(ph["mass"], ph["bias"], qacc, c, xp, stride)
    ff, _ = inv.required(tau, qf, sites, anchors, ph["axes"], c, xp, stride)
    lift = -_lowest(ph["keypoints"][:, 0], xp) - dz
    at_frames = sites[:, :: c.substeps // stride]
    return qpos, qvel, ff, xp.maximum(lift, 0.0) if SHIFT else lift, dz, at_frames, tau


FLOOR_TARGET = 0.0
FLOOR_QUANTILE = 0.1
SHIFT = True


def _shift(qpos, up, xp):
    return xp.concatenate([qpos[..., :3] + up[:, None], qpos[..., 3:]], axis=-1)


def plan(
    ref, settings: hm.Settings, physics, xp, *, project: bool = True, stride: int | None = None
) -> dict:
    """Controls of the feedforward tracker for reference motions (backend-independent).

    Args:
        ref: reference qpos [B, T, 28] at ``humanoid.FPS``.
        settings: corrector settings (model, gains, limits, timestep).
        physics: ``frame_physics_np`` or ``frame_physics_mjx`` (matching ``xp``).
        xp: ``numpy`` or ``jax.numpy``.
        project: apply the feasibility projection (drop and re-interpolate frames).
        stride: steps between inverse-dynamics evaluations (default: one per frame; 1: at
            every step, exact; see ``inverse.feedforward``).

    Returns:
        ``ctrl`` [B, N, 27], ``qpos0`` [B, 28] (first state, lifted so its lowest point
        touches the floor), ``qvel0`` [B, 27], ``kept`` [B, T] (frames not dropped),
        ``feedforward`` [B, N, 27] (generalized force after the ground reaction).
    """
    c = inv.consts(settings)
    st = c.substeps if stride is None else stride
    vec, q0 = inv.to_vectors(ref, xp)
    keep = xp.ones(ref.shape[:2], dtype=bool)
    if xp is np:
        qpos, qvel, ff, lift, dz, sites, tau = _evaluate(vec, q0, settings, physics, xp, st)
        if project:
            keep = inv.feasible_frames(tau, vec, c, xp)
            slip = inv.stance_slip(sites, keep, xp)
            # The second round only for the motions the projections changed (same numbers
            # as recomputing all: rows are independent).
            redo = np.flatnonzero(~keep.all(1) | (np.abs(slip).max((1, 2)) > 0))
            if len(redo):
                vec = inv.reinterpolate(inv.remove_slip(vec, slip, xp), keep, xp)
                sub = _evaluate(vec[redo], q0[redo], settings, physics, xp, st)
                for full, part in zip((qpos, qvel, ff, lift, dz), sub[:5], strict=True):
                    full[redo] = part
    else:
        # Both rounds in one loop body: traced and compiled once.
        def body(i, carry):
            vec, _, kept, _, _ = carry
            _, _, ff, lift, dz, sites, tau = _evaluate(vec, q0, settings, physics, xp, st)
            first = (i == 0) & project
            k = inv.feasible_frames(tau, vec, c, xp) | ~first
            slip = inv.stance_slip(sites, k, xp) * first
            vec = inv.reinterpolate(inv.remove_slip(vec, slip, xp), k, xp)
            return vec, ff, kept & k, lift, dz

        n = ref.shape[1] - 1
        zero = xp.zeros(ref.shape[0], vec.dtype)
        init = (vec, xp.zeros((ref.shape[0], n * c.substeps, hm.NV), vec.dtype), keep, zero, zero)
        vec, ff, keep, lift, dz = jax.lax.fori_loop(0, 2 if project else 1, body, init)
        qpos, qvel, _ = inv.states(vec, q0, c.substeps, c.dt, xp)
        qpos = _shift(qpos, xp.asarray([0.0, 0.0, 1.0], dtype=qpos.dtype) * dz[:, None], xp)
    start = qpos[:, 0]
    start = xp.concatenate([start[:, :2], start[:, 2:3] + lift[:, None], start[:, 3:]], -1)
    return {
        "ctrl": inv.controls(qpos, qvel, ff, c, xp),
        "qpos0": start,
        "qvel0": qvel[:, 0],
        "kept": keep,
        "feedforward": ff,
    }


# ------------------------------------------------------------------ forward simulation


def simulate_mujoco_np(
    ref: np.ndarray, settings: hm.Settings, project: bool = True, stride: int | None = None
):
    """C backend (NumPy in and out): plan in batch, then one multi-threaded rollout.

    Returns:
        ``(sim [B, T, 28] float32, residual [B] (mean |root residual force| / weight),
        kept [B, T])``.
    """
    from mujoco import rollout

    ref = np.asarray(ref, np.float64)
    p = plan(ref, settings, frame_physics_np, np, project=project, stride=stride)
    m = engine.tracking_model(settings)
    datas = _datas(settings, _nthread())
    d = datas[0]
    batch = ref.shape[0]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    init = np.empty((batch, mujoco.mj_stateSize(m, spec)))
    for b in range(batch):
        mujoco.mj_resetData(m, d)
        d.qpos[:] = p["qpos0"][b]
        d.qvel[:] = p["qvel0"][b]
        d.ctrl[:] = p["ctrl"][b, 0]
        mujoco.mj_forward(m, d)
        mujoco.mj_getState(m, d, init[b], spec)
    ctrl = np.ascontiguousarray(p["ctrl"])
    state, _ = rollout.rollout(m, datas, init, ctrl)
    s = settings.substeps
    sim = np.concatenate([p["qpos0"][:, None], state[:, s - 1 :: s, 1 : 1 + m.nq]], axis=1)
    pos, vel = state[..., 1:4], state[..., 1 + m.nq : 4 + m.nq]
    force = hm.residual_force(settings, ctrl[..., hm.N_JOINTS : hm.N_JOINTS + 3], pos, vel)
    residual = np.linalg.norm(force, axis=-1).mean(axis=1) / hm.body_weight(settings)
    return sim.astype(np.float32), residual.astype(np.float32), p["kept"]


_DATAS: dict = {}


def _datas(settings, nthread):
    key = (settings, nthread)
    if key not in _DATAS:
        m = engine.tracking_model(settings)
        _DATAS[key] = [mujoco.MjData(m) for _ in range(nthread)]
    return _DATAS[key]


def simulate_mjx(ref, settings: hm.Settings, project: bool = True):
    """MJX backend (jittable): the same plan in float32 JAX, then ``lax.scan`` over frames
    and steps with ``engine.step``. Returns what ``simulate_mujoco_np`` returns (JAX)."""
    from mujoco import mjx

    ref = jnp.asarray(ref, jnp.float32)
    p = plan(ref, settings, frame_physics_mjx, jnp, project=project)
    mx = engine.device_model("tracking", settings)
    s = settings.substeps
    b = ref.shape[0]
    ctrl = p["ctrl"].reshape(b, -1, s, hm.NU)

    def one(q0, v0, c):
        d = hm.to_float32(mjx.make_data(mx)).replace(qpos=q0, qvel=v0, ctrl=c[0, 0])

        def sub(d, u):
            d = hm.to_float32(engine.step(mx, d.replace(ctrl=u)))
            force = hm.residual_force(
                settings, u[hm.N_JOINTS : hm.N_JOINTS + 3], d.qpos[:3], d.qvel[:3]
            )
            return d, jnp.linalg.norm(force)

        def frame(d, cf):
            d, f = jax.lax.scan(sub, d, cf)
            return d, (d.qpos, jnp.mean(f))

        _, (q, f) = jax.lax.scan(frame, d, c)
        return jnp.concatenate([q0[None], q], 0), jnp.mean(f)

    sim, force = jax.vmap(one)(p["qpos0"], p["qvel0"], ctrl)
    return sim, force / hm.body_weight(settings), p["kept"]
