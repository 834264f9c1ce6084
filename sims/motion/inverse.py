"""Inverse-dynamics feedforward for the physics corrector: the backend-independent maths.

Everything here is written once for NumPy (the C MuJoCo backend, inside a
``jax.pure_callback`` where no JAX operation may be dispatched) and for ``jax.numpy`` (the
MJX backend, inside the caller's ``jit``): functions take arrays of either kind and the
array module ``xp``. The physics quantities at the motion frames (mass matrix, bias forces,
foot points, joint frames) come from a backend (``sims.motion.tracking``); this module turns
them into actuator inputs. The choices and their reasons are in ``sims.motion.tracking``'s
module docstring; the formulas are in the docstrings below.

Notation: T motion frames at ``humanoid.FPS``, S physics steps per frame (``dt`` each),
N = (T−1)·S steps; step k runs from state (q_k, v_k) to (q_{k+1}, v_{k+1}).
"""

from __future__ import annotations

import dataclasses
import functools

import mujoco
import numpy as np

from sims.motion import humanoid as hm

__all__ = [
    "Consts",
    "consts",
    "contact_forces",
    "controls",
    "feasible_frames",
    "feedforward",
    "quat_exp",
    "quat_log",
    "quat_mul",
    "reinterpolate",
    "spline_matrix",
    "states",
    "to_vectors",
]

# Contact availability: a foot point whose surface is below CONTACT_FULL (m) in the reference
# may carry ground reaction fully, above CONTACT_NONE not at all, linearly in between.
CONTACT_FULL = 0.0
CONTACT_NONE = 0.005
# Friction used by the ground-reaction solve, as a fraction of the contact's friction
# coefficient (a margin inside the cone the forward simulation can realise).
FRICTION_MARGIN = 0.5
RIDGE = 1e-3  # ridge weight of the ground-reaction solve (normalised units)
NNLS_ITERATIONS = 10
# Feasibility: a frame whose feedforward needs some hinge torque above HINGE_RATIO × its
# limit, or a root force above ROOT_RATIO × body weight, is dropped and re-interpolated.
HINGE_RATIO = 8.0
FOOT_RADIUS_DEFAULT = hm.FOOT_RADIUS
ROOT_RATIO = 6.0
DEVIATION_MIN = 0.2  # rad (or m) in the per-frame vectors; see ``feasible_frames``


# ------------------------------------------------------------------ model constants


@dataclasses.dataclass(frozen=True, eq=False)
class Consts:
    """Host-side constants of one tracking model (NumPy, float64).

    Attributes:
        dt: physics step (s); substeps: steps per motion frame.
        kp, kv: actuator stiffness and damping, control order (21 hinges, 3 + 3 root).
        limit: actuator force bound (N·m or N), control order.
        damping_diag: −diag(D), D = ∂(passive + actuator force)/∂v (diagonal here, checked).
        weight: body weight (N).
        foot_sites: the 8 foot key points' site ids; foot_radius (m).
        foot_hinge_mask: [8, 21] whether hinge j moves foot point i.
        hinge_jnt: joint ids of the 21 hinges (xanchor/xaxis rows).
        friction: contact friction coefficient.
    """

    dt: float
    substeps: int
    kp: np.ndarray
    kv: np.ndarray
    limit: np.ndarray
    damping_diag: np.ndarray
    weight: float
    foot_sites: np.ndarray
    foot_radius: float
    foot_hinge_mask: np.ndarray
    hinge_jnt: np.ndarray
    friction: float


@functools.lru_cache(maxsize=8)
def consts(settings: hm.Settings) -> Consts:
    """The constants of the corrector model for ``settings`` (cached)."""
    from sims.motion import engine

    m = engine.tracking_model(settings)
    nj = hm.N_JOINTS
    kp = m.actuator_gainprm[:, 0].copy()
    kv = -m.actuator_biasprm[:, 2].copy()
    limit = m.actuator_forcerange[:, 1].copy()
    # D from the actuator moments at two states: constant and diagonal for this model (hinge
    # servos act on their own DoF; the root's rotational gains are isotropic, so R^T k R = k).
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    diags = []
    for _ in range(2):
        d.qpos[:] = hm.rest_qpos()
        quat = rng.normal(size=4)
        d.qpos[3:7] = quat / np.linalg.norm(quat)
        d.qpos[7:] += 0.3 * rng.normal(size=nj)
        mujoco.mj_forward(m, d)
        mom = np.zeros((m.nu, m.nv))
        mujoco.mju_sparse2dense(
            mom, d.actuator_moment, d.moment_rownnz, d.moment_rowadr, d.moment_colind
        )
        deriv = (mom.T * kv) @ mom + np.diag(m.dof_damping)
        if np.abs(deriv - np.diag(np.diag(deriv))).max() > 1e-9:
            raise RuntimeError("velocity derivative of the corrector model is not diagonal")
        diags.append(np.diag(deriv))
    if np.abs(diags[0] - diags[1]).max() > 1e-9:
        raise RuntimeError("velocity derivative of the corrector model is not constant")
    foot_idx = [i for side in ("right", "left") for i in hm.FOOT_SITES[side]]
    foot = np.array([hm.keypoint_site_ids()[i] for i in foot_idx])
    hinge_jnt = np.array([m.joint(j).id for j in hm.JOINTS])
    mask = np.zeros((8, nj), bool)
    for i, site in enumerate(foot):
        body = m.site_bodyid[site]
        while body > 0:
            for j, jnt in enumerate(hinge_jnt):
                if m.jnt_bodyid[jnt] == body:
                    mask[i, j] = True
            body = m.body_parentid[body]
    return Consts(
        dt=float(m.opt.timestep),
        substeps=settings.substeps,
        kp=kp,
        kv=kv,
        limit=limit,
        damping_diag=diags[0],
        weight=float(m.body_subtreemass[1] * -m.opt.gravity[2]),
        foot_sites=foot,
        foot_radius=hm.FOOT_RADIUS,
        foot_hinge_mask=mask,
        hinge_jnt=hinge_jnt,
        friction=float(settings.friction),
    )


# ------------------------------------------------------------------ quaternions (w, x, y, z)


def quat_mul(a, b, xp):
    """Hamilton product a ⊗ b."""
    aw, ax, ay, az = (a[..., i] for i in range(4))
    bw, bx, by, bz = (b[..., i] for i in range(4))
    return xp.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conj(q, xp):
    return q * xp.asarray([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def quat_log(q, xp):
    """Rotation vector (angle in [0, π]) of a unit quaternion (either sign)."""
    q = q * xp.where(q[..., :1] < 0, -1.0, 1.0).astype(q.dtype)
    v, w = q[..., 1:], q[..., 0]
    s = xp.sqrt(xp.sum(v * v, axis=-1))
    safe = xp.where(s > 1e-12, s, 1.0)
    # 2 atan2(s, w) / s, with its limit 2/w at s → 0 (w → 1).
    scale = xp.where(s > 1e-12, 2.0 * xp.arctan2(s, w) / safe, 2.0 / xp.maximum(w, 1e-12))
    return v * scale[..., None]


def quat_exp(r, xp):
    """Unit quaternion of a rotation vector."""
    theta = xp.sqrt(xp.sum(r * r, axis=-1))
    safe = xp.where(theta > 1e-12, theta, 1.0)
    # sin(θ/2)/θ with its limit 1/2 − θ²/48.
    k = xp.where(theta > 1e-6, xp.sin(0.5 * theta) / safe, 0.5 - theta * theta / 48.0)
    return xp.concatenate([xp.cos(0.5 * theta)[..., None], r * k[..., None]], axis=-1)


def quat_rotate(q, v, xp):
    """R(q) v."""
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * _cross(u, v, xp)
    return v + w * t + _cross(u, t, xp)


def quat_rotate_inv(q, v, xp):
    """R(q)^T v."""
    return quat_rotate(quat_conj(q, xp), v, xp)


# ------------------------------------------------------------------ splines


@functools.lru_cache(maxsize=16)
def spline_matrix(frames: int, substeps: int) -> np.ndarray:
    """Linear map from T knot values to an interpolating cubic spline at the physics rate.

    Not-a-knot cubic spline through the frames (C², no end condition imposed on a motion
    that is cut mid-movement), evaluated at t_k = k·dt for k = −1, 0, …, N (k = −1 on the
    first segment's polynomial, for the first step's velocity). Shape [N + 2, T], float64.
    """
    from scipy.interpolate import CubicSpline

    n = (frames - 1) * substeps
    t = np.arange(frames, dtype=np.float64)
    k = np.arange(-1, n + 1, dtype=np.float64) / substeps
    return CubicSpline(t, np.eye(frames), bc_type="not-a-knot", axis=0)(k)


def _unwrap(phi, xp):
    """Sequentially picks, per frame, φ or its equivalent (|φ| − 2π)·φ/|φ| (the same
    rotation), whichever is closer to the previous frame's choice."""
    theta = xp.sqrt(xp.sum(phi * phi, axis=-1, keepdims=True))
    alt = phi * ((theta - 2 * np.pi) / xp.where(theta > 1e-9, theta, 1.0))

    def pick(prev, cur, other):
        d0 = xp.sum((cur - prev) ** 2, axis=-1, keepdims=True)
        d1 = xp.sum((other - prev) ** 2, axis=-1, keepdims=True)
        return xp.where(d1 < d0, other, cur)

    if xp is np:
        out = [phi[:, 0]]
        for t in range(1, phi.shape[1]):
            out.append(pick(out[-1], phi[:, t], alt[:, t]))
        return np.stack(out, axis=1)
    import jax

    def body(prev, x):
        cur = pick(prev, *x)
        return cur, cur

    moved = (xp.moveaxis(phi[:, 1:], 1, 0), xp.moveaxis(alt[:, 1:], 1, 0))
    _, rest = jax.lax.scan(body, phi[:, 0], moved)
    return xp.concatenate([phi[:, :1], xp.moveaxis(rest, 0, 1)], axis=1)


def to_vectors(ref, xp):
    """Reference qpos [B, T, 28] → per-frame vectors [B, T, 27] = (root position, root
    rotation vector relative to the first frame (unwrapped), 21 hinges) and the first
    frame's quaternion [B, 4]."""
    q0 = ref[:, 0, 3:7]
    rel = quat_mul(quat_conj(q0, xp)[:, None], ref[:, :, 3:7], xp)
    phi = _unwrap(quat_log(rel, xp), xp)
    return xp.concatenate([ref[:, :, :3], phi, ref[:, :, 7:]], axis=-1), q0


def from_vectors(vec, q0, xp):
    """Inverse of ``to_vectors`` (any number of samples along axis 1)."""
    quat = quat_mul(q0[:, None], quat_exp(vec[..., 3:6], xp), xp)
    return xp.concatenate([vec[..., :3], quat, vec[..., 6:]], axis=-1)


def states(vec, q0, substeps: int, dt: float, xp):
    """Spline states at the physics rate, consistent with the semi-implicit integrator.

    q_k = spline(t_k) for k = −1 … N; v_k = (q_k ⊖ q_{k−1})/dt for k = 0 … N (the root's
    angular part in the body frame, log(q_{k−1}^{-1} q_k)/dt, as ``mj_differentiatePos``);
    a_k = (v_{k+1} − v_k)/dt for k = 0 … N−1. A MuJoCo step from (q_k, v_k) with
    acceleration a_k lands exactly on (q_{k+1}, v_{k+1}).

    Returns:
        ``qpos`` [B, N+1, 28] (k = 0 … N), ``qvel`` [B, N+1, 27], ``qacc`` [B, N, 27].
    """
    frames = vec.shape[1]
    w = xp.asarray(spline_matrix(frames, substeps), dtype=vec.dtype)
    sub = xp.einsum("kt,btd->bkd", w, vec)
    q = from_vectors(sub, q0, xp)
    dq = quat_mul(quat_conj(q[:, :-1, 3:7], xp), q[:, 1:, 3:7], xp)
    v = xp.concatenate(
        [q[:, 1:, :3] - q[:, :-1, :3], quat_log(dq, xp), q[:, 1:, 7:] - q[:, :-1, 7:]], axis=-1
    ) / xp.asarray(dt, dtype=vec.dtype)
    a = (v[:, 1:] - v[:, :-1]) / xp.asarray(dt, dtype=vec.dtype)
    return q[:, 1:], v, a


# ------------------------------------------------------------------ inverse dynamics


def _segments(x, substeps: int):
    """[B, N, …] at the steps → [B, T−1, S, …] per frame segment."""
    b, n = x.shape[:2]
    return x.reshape(b, n // substeps, substeps, *x.shape[2:])


def _lerp_frames(f, substeps: int, xp):
    """Values at frames [B, T, …] → linear interpolation at steps k = 0 … N−1, [B, N, …]."""
    alpha = xp.asarray(np.arange(substeps) / substeps, dtype=f.dtype)
    alpha = alpha.reshape(1, 1, substeps, *([1] * (f.ndim - 2)))
    out = (1 - alpha) * f[:, :-1, None] + alpha * f[:, 1:, None]
    return out.reshape(f.shape[0], -1, *f.shape[2:])


def feedforward(mass, bias, qacc, c: Consts, xp, stride: int | None = None):
    """Generalized force of the contact-free inverse dynamics at every step.

    τ_k = (M_k + dt·diag(D̄)) a_k + b_k with b = qfrc_bias − qfrc_passive and D̄ = −D the
    velocity derivative of the passive and actuator forces: the discrete-time inverse of
    ``implicitfast`` (``mjENBL_INVDISCRETE``), in which those forces act on v_{k+1}. M and b
    are evaluated at the frames and interpolated linearly to the steps (they change slowly
    with the configuration); a_k is exact.

    Args:
        mass: [B, T, 27, 27] at the frames; bias: [B, T, 27]; qacc: [B, N, 27].
        stride: steps between the points where M and b are given (default: a frame's
            ``substeps``; 1 evaluates them at every step, exactly).

    Returns:
        τ [B, N, 27].
    """
    s = c.substeps if stride is None else stride
    a = _segments(qacc, s)  # [B, T-1, S, nv]
    alpha = xp.asarray(np.arange(s) / s, dtype=qacc.dtype)[None, None, :, None]
    m0 = xp.einsum("btij,btsj->btsi", mass[:, :-1], a)
    m1 = xp.einsum("btij,btsj->btsi", mass[:, 1:], a)
    ma = ((1 - alpha) * m0 + alpha * m1).reshape(qacc.shape)
    damp = xp.asarray(c.dt * c.damping_diag, dtype=qacc.dtype)
    return ma + damp * qacc + _lerp_frames(bias, s, xp)


def _spd_solve(h, g, xp):
    """Solves H x = g for small SPD H [..., n, n] by an unrolled Cholesky (no LAPACK call:
    see ``sims.motion.engine`` on batched LAPACK kernels under XLA:CPU)."""
    n = h.shape[-1]
    low = [[None] * n for _ in range(n)]
    for j in range(n):
        s = h[..., j, j] - sum(low[j][k] ** 2 for k in range(j))
        low[j][j] = xp.sqrt(xp.maximum(s, 1e-12))
        for i in range(j + 1, n):
            s = h[..., i, j] - sum(low[i][k] * low[j][k] for k in range(j))
            low[i][j] = s / low[j][j]
    y = [None] * n
    for i in range(n):
        y[i] = (g[..., i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
    return xp.stack(x, axis=-1)


def nnls_ridge(a, b, ridge: float, iterations: int, xp):
    """min_{λ ≥ 0} ½‖Aλ − b‖² + ½ρ‖λ‖² for a batch of small problems (A [..., m, n]).

    Semismooth Newton on the dual: with y = b − Aλ, optimality is λ = max(0, Aᵀy)/ρ and
    F(y) = b − y − A max(0, Aᵀy)/ρ = 0, the gradient of the concave dual
    g(y) = bᵀy − ½‖y‖² − ‖max(0, Aᵀy)‖²/(2ρ); each step solves
    (I + A_S A_Sᵀ/ρ) Δ = F(y) over the active columns S and takes the best of the steps
    1, ½, ¼, ⅛ by g (monotone, fixed iteration count: jittable). m is small (6).

    Returns:
        (λ [..., n], y [..., m]).
    """
    m = a.shape[-2]
    eye = xp.eye(m, dtype=a.dtype)
    at = xp.swapaxes(a, -1, -2)

    def lam_of(y):
        s = (at @ y[..., None])[..., 0]
        return s, xp.maximum(s, 0.0) / ridge

    def dual(y, lam):
        return xp.sum(b * y, -1) - 0.5 * xp.sum(y * y, -1) - 0.5 * ridge * xp.sum(lam * lam, -1)

    def newton(y, s, lam):
        grad = b - y - (a @ lam[..., None])[..., 0]
        act = (s > 0).astype(a.dtype)
        hess = eye + ((a * act[..., None, :]) @ at) / ridge
        step = _spd_solve(hess, grad, xp)
        best_y, best_g, best_s, best_l = y, dual(y, lam), s, lam
        for t in (1.0, 0.5, 0.25, 0.125):
            cand = y + t * step
            cs, cl = lam_of(cand)
            gc = dual(cand, cl)
            better = gc > best_g
            best_y = xp.where(better[..., None], cand, best_y)
            best_s = xp.where(better[..., None], cs, best_s)
            best_l = xp.where(better[..., None], cl, best_l)
            best_g = xp.where(better, gc, best_g)
        return best_y, best_s, best_l

    y = b
    s, lam = lam_of(y)
    if xp is np:
        for _ in range(iterations):
            y, s, lam = newton(y, s, lam)
    else:
        import jax

        y, s, lam = jax.lax.fori_loop(0, iterations, lambda _, c: newton(*c), (y, s, lam))
    return lam, b - (a @ lam[..., None])[..., 0]


def _cross(u, v, xp):
    """u × v over the last axis (broadcasting; faster than ``np.cross`` on small axes)."""
    u0, u1, u2 = u[..., 0], u[..., 1], u[..., 2]
    v0, v1, v2 = v[..., 0], v[..., 1], v[..., 2]
    return xp.stack([u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0], axis=-1)


def _pyramid(c: Consts, xp, dtype):
    """Friction-pyramid edge directions [4, 3] (world; floor normal +z)."""
    mu = FRICTION_MARGIN * c.friction
    e = np.array([[mu, 0, 1], [-mu, 0, 1], [0, mu, 1], [0, -mu, 1]])
    return xp.asarray(e, dtype=dtype)


def contact_forces(tau_root, qpos, sites, anchors, axes, c: Consts, xp):
    """Ground reaction at the frames: the feet's share of the root's required wrench.

    Foot points (the 8 foot-capsule ends, at the bottom of their sphere) whose surface in the
    reference lies below ``CONTACT_FULL`` may push (weight 1, falling linearly to 0 at
    ``CONTACT_NONE``); forces lie in the friction pyramid (``FRICTION_MARGIN`` of the
    contact's friction). λ ≥ 0 minimises the root residual (force rows scaled by 1/body
    weight, torque rows by 1/(body weight · 1 m)) with a small ridge (``nnls_ridge``). What
    the feet cannot supply is left to the bounded root residual.

    Args:
        tau_root: required root generalized force at the frames [B, T, 6] (linear part in
            the world frame, angular part in the root body frame, as the free joint's DoFs).
        qpos: reference qpos at the frames [B, T, 28].
        sites: foot site positions [B, T, 8, 3]; anchors, axes: hinge joint frames
            [B, T, 21, 3].

    Returns:
        Generalized contact force at the frames [B, T, 27].
    """
    dt = qpos.dtype
    w = c.weight
    point = sites - xp.asarray([0.0, 0.0, c.foot_radius], dtype=dt)
    height = point[..., 2]
    avail = xp.clip((CONTACT_NONE - height) / (CONTACT_NONE - CONTACT_FULL), 0.0, 1.0)
    edges = _pyramid(c, xp, dt)  # [4, 3]
    force = avail[..., None, None] * edges * w  # [B, T, 8, 4, 3] per unit λ (body weights)
    root = qpos[..., :3]
    quat = qpos[..., 3:7]
    arm = point - root[..., None, :]  # [B, T, 8, 3]
    torque = _cross(arm[..., None, :], force, xp)  # world
    torque_b = quat_rotate_inv(quat[..., None, None, :], torque, xp)
    cols = xp.concatenate([force, torque_b], axis=-1)  # [B, T, 8, 4, 6]
    cols = cols.reshape(*cols.shape[:2], -1, 6)  # [B, T, 32, 6]
    scale = xp.asarray([1 / w] * 3 + [1 / w] * 3, dtype=dt)
    a = xp.swapaxes(cols * scale, -1, -2)  # [B, T, 6, 32]
    lam, _ = nnls_ridge(a, tau_root * scale, RIDGE, NNLS_ITERATIONS, xp)
    lam = lam.reshape(*lam.shape[:2], 8, 4)
    f = xp.einsum("btpe,btpex->btpx", lam, force)  # [B, T, 8, 3] world forces
    g_root = xp.concatenate(
        [f.sum(-2), quat_rotate_inv(quat[..., None, :], _cross(arm, f, xp), xp).sum(-2)], axis=-1
    )
    # Hinge j: Σ_i axis_j · ((p_i − anchor_j) × F_i) over the foot points i below it in the
    # tree = axis_j · (Σ_i p_i × F_i − anchor_j × Σ_i F_i).
    mask = xp.asarray(c.foot_hinge_mask, dtype=dt)  # [8, 21]
    moment = xp.einsum("btpx,pj->btjx", _cross(point, f, xp), mask)
    total = xp.einsum("btpx,pj->btjx", f, mask)
    g_hinge = xp.sum(axes * (moment - _cross(anchors, total, xp)), axis=-1)
    return xp.concatenate([g_root, g_hinge], axis=-1)


def required(tau, qpos_frames, sites, anchors, axes, c: Consts, xp, stride: int | None = None):
    """Feedforward after the ground reaction: τ − G at every step (G from the frames,
    interpolated linearly), and G at the frames."""
    s = c.substeps if stride is None else stride
    tau_frames = xp.concatenate([tau[:, ::s], tau[:, -1:]], axis=1)  # a_N := a_{N−1}
    g = contact_forces(tau_frames[..., :6], qpos_frames, sites, anchors, axes, c, xp)
    return tau - _lerp_frames(g, s, xp), g


def feasible_frames(tau, vec, c: Consts, xp):
    """Frames kept by the feasibility projection [B, T] (bool; False: drop, re-interpolate).

    Infeasibility, from the contact-free τ (before the ground reaction, which at a snapped
    frame would be an absurd push from displaced feet): per frame, r = max(max_j |τ_j| /
    (``HINGE_RATIO`` · limit_j), |τ_root,lin| / (``ROOT_RATIO`` · body weight)) at the frame's
    own step (a cubic spline's acceleration is piecewise linear: its extremes lie on the
    knots). Valid motions stay below r = 0.5, one-frame snaps exceed 6 (measured). Which
    frame to drop: a spline through a one-frame spike rings (the neighbours' accelerations
    are 0.63 of the spike's, and their configuration-dependent M can make their τ the
    larger), so among the frames within one of an infeasible one, the frame dropped is the
    local peak of the deviation ‖x_j − (x_{j−1} + x_{j+1})/2‖ of the per-frame vectors
    (``to_vectors``): the snap itself, if that deviation exceeds ``DEVIATION_MIN`` (smooth
    motion at 20 fps deviates by ~0.03; the demo's snaps by ~3.7).
    """
    s = c.substeps
    knots = xp.concatenate([tau[:, ::s], tau[:, -1:]], axis=1)  # [B, T, nv]
    limit = xp.asarray(c.limit[: hm.N_JOINTS], dtype=tau.dtype)
    hinge = xp.max(xp.abs(knots[..., 6:]) / limit, axis=-1) / HINGE_RATIO
    root = xp.sqrt(xp.sum(knots[..., :3] ** 2, axis=-1)) / (c.weight * ROOT_RATIO)
    bad = xp.maximum(hinge, root) > 1.0
    f = xp.zeros_like(bad[:, :1])
    near = bad | xp.concatenate([f, bad[:, :-1]], 1) | xp.concatenate([bad[:, 1:], f], 1)
    dev = vec[:, 1:-1] - 0.5 * (vec[:, :-2] + vec[:, 2:])
    dev = xp.sqrt(xp.sum(dev * dev, axis=-1))
    z = xp.zeros_like(dev[:, :1])
    dev = xp.concatenate([z, dev, z], axis=1)
    left = xp.concatenate([z, dev[:, :-1]], axis=1)
    right = xp.concatenate([dev[:, 1:], z], axis=1)
    peak = (dev >= left) & (dev >= right) & (dev > DEVIATION_MIN)
    return ~(near & peak)


def reinterpolate(vec, keep, xp):
    """Replaces the frames with ``keep`` False by linear interpolation between the nearest
    kept frames (held constant beyond the first/last kept frame); all-False rows stay."""
    frames = vec.shape[1]
    idx = xp.arange(frames)
    big = frames * 4
    prev = _cummax(xp.where(keep, idx, -big), xp)
    nxt = -_cummax(xp.where(keep, -idx, -big)[:, ::-1], xp)[:, ::-1]
    prev_ok, next_ok = prev >= 0, nxt < frames
    lo = xp.where(prev_ok, prev, xp.where(next_ok, nxt, idx))
    hi = xp.where(next_ok, nxt, lo)
    span = xp.maximum(hi - lo, 1)
    wt = xp.where(hi > lo, (idx - lo) / span, 0.0).astype(vec.dtype)[..., None]
    take = np.take_along_axis if xp is np else _take_along
    vlo = take(vec, lo[..., None], 1)
    vhi = take(vec, hi[..., None], 1)
    out = (1 - wt) * vlo + wt * vhi
    return xp.where(keep[..., None], vec, out)


SLIP_DEADBAND = 0.1  # m/s


def stance_slip(sites, keep, xp, stride_frames: int = 1):
    """Horizontal slip of the feet in contact between consecutive frames [B, T−1, 2].

    Per foot, contact c = min over the two frames of the foot's largest point availability
    (``CONTACT_FULL``/``CONTACT_NONE``); the slip is the contact-weighted mean of the feet's
    horizontal displacement, soft-thresholded at ``SLIP_DEADBAND`` (only the part beyond it
    counts), and 0 across a frame that is not kept.

    Args:
        sites: foot points at the frames [B, T, 8, 3] (site centres); keep: [B, T].
    """
    h = sites[..., 2] - FOOT_RADIUS_DEFAULT
    avail = xp.clip((CONTACT_NONE - h) / (CONTACT_NONE - CONTACT_FULL), 0.0, 1.0)
    num = 0.0
    den = 0.0
    for side in (slice(0, 4), slice(4, 8)):
        a = xp.max(avail[..., side], axis=-1)
        cpair = xp.minimum(a[:, 1:], a[:, :-1])
        xy = xp.mean(sites[..., side, :2], axis=-2)
        num = num + cpair[..., None] * (xy[:, 1:] - xy[:, :-1])
        den = den + cpair
    mean = num / xp.maximum(den, 1.0)[..., None]
    speed = xp.sqrt(xp.sum(mean * mean, axis=-1) + 1e-20) * hm.FPS
    shrink = xp.maximum(0.0, 1.0 - SLIP_DEADBAND / speed)
    ok = keep[:, 1:] & keep[:, :-1]
    return mean * (shrink * ok)[..., None]


def remove_slip(vec, slip, xp):
    """Moves the root horizontally against the accumulated stance slip (per-frame vectors)."""
    cum = xp.cumsum(slip, axis=1)
    cum = xp.concatenate([xp.zeros_like(cum[:, :1]), cum], axis=1)
    return xp.concatenate([vec[..., :2] - cum, vec[..., 2:]], axis=-1)


def _take_along(x, idx, axis):
    import jax.numpy as jnp

    return jnp.take_along_axis(x, idx, axis=axis)


def _cummax(x, xp):
    if xp is np:
        return np.maximum.accumulate(x, axis=1)
    import jax

    return jax.lax.cummax(x, axis=1)


def controls(qpos, qvel, ff, c: Consts, xp):
    """Actuator inputs realising the feedforward with relative damping, at every step.

    A position servo outputs f = kp(u − x) − kv·ẋ (clipped to its force range); with
    u = x_ref + (f_ff + kv·ẋ_ref)/kp it outputs f_ff + kp(x_ref − x) + kv(ẋ_ref − ẋ): the
    feedforward on the reference, and PD feedback relative to the reference *velocity*
    (no damping lag). For the root residual, x is the torso position and its world
    rotation vector (the site transmission's length) and ẋ the world linear and angular
    velocity; the free joint's angular DoFs are in the body frame, so the world torque is
    R f_ff,ang.

    Args:
        qpos: [B, N+1, 28], qvel: [B, N+1, 27] (``states``); ff: [B, N, 27].

    Returns:
        ctrl [B, N, 27] in actuator order (21 hinges, residual position xyz, rotation xyz).
    """
    q, v = qpos[:, :-1], qvel[:, :-1]
    quat = q[..., 3:7]
    kp = xp.asarray(c.kp, dtype=ff.dtype)
    kv = xp.asarray(c.kv, dtype=ff.dtype)
    nj = hm.N_JOINTS
    hinge = q[..., 7:] + (ff[..., 6:] + kv[:nj] * v[..., 6:]) / kp[:nj]
    lin = q[..., :3] + (ff[..., :3] + kv[nj : nj + 3] * v[..., :3]) / kp[nj : nj + 3]
    torque_w = quat_rotate(quat, ff[..., 3:6], xp)
    omega_w = quat_rotate(quat, v[..., 3:6], xp)
    rot = quat_log(quat, xp) + (torque_w + kv[nj + 3 :] * omega_w) / kp[nj + 3 :]
    return xp.concatenate([hinge, lin, rot], axis=-1)
