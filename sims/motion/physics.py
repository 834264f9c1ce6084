"""Physics correction: a humanoid tracks a motion in MuJoCo; the simulated motion is the correction.

``simulate(ref, settings, backend, corrector)`` tracks the reference at the simulation rate
(joint servos with torque limits, plus a bounded residual wrench on the root; see
``humanoid``) from the reference's first frame, lifted or lowered so its lowest point touches
the floor, and returns the simulated qpos at the motion frame rate with per-motion info.
``correct_motion`` / ``make_corrector`` wrap it in the project's corrector interface
(``theory.operators``): features in, features out, each motion corrected with probability
γ/(1+γ).

Correctors (``CORRECTORS``):

* ``id`` (default) — the feedforward tracker (``sims.motion.tracking``): inverse dynamics
  of a spline through the reference, a ground-reaction solve, a feasibility projection, and
  servos with that feedforward and damping relative to the reference velocity. Nearly a
  projection onto valid motion: a valid motion moves by ~0.002 rad RMS per pass.
* ``pd`` — the earlier PD tracker: servo targets are the reference, linearly interpolated,
  with damping against the absolute velocity (≈ 2 frames of lag) and no feedforward, so
  gravity, the hinge springs and the lag pull every motion toward the tracker's own fixed
  points (0.054 rad RMS per pass on valid motions). Kept for comparison; its C backend
  gives today's numbers bit for bit.

Backends (same numbers up to float32 vs float64 and solver details; parity is tested):

* ``mjx`` — pure JAX (``mujoco.mjx``): jittable, ``vmap`` over motions, ``lax.scan``
  over frames and substeps; runs inside the caller's ``jit``. The GPU path. On CPU the
  models are LAPACK-free (sparse Jacobian, CG solver, ``engine.step``): jaxlib's batched
  CPU LAPACK kernels can deadlock XLA's thread pool (``sims.motion.engine``).
* ``mujoco`` — C MuJoCo (multi-threaded ``mujoco.rollout``, open-loop inputs computed in
  batch beforehand; the ``id`` plan's physics through ``mujoco.batch``). Called from jitted
  code through ``jax.pure_callback``. The fast CPU path.

**Falls.** A motion *fell* when the head drops below ``FALL_HEAD_HEIGHT`` at any frame. Its
correction is rejected: the corrected sample is the uncorrected input (flagged in ``info``;
report ``fell_rate``), because a fallen body says nothing about the intended motion.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jax.scipy.spatial.transform import Rotation
from jaxtyping import Array, Bool, Float

from sims.motion import engine
from sims.motion import humanoid as hm
from sims.motion import representation as rep

__all__ = [
    "BACKENDS",
    "CORRECTORS",
    "FALL_HEAD_HEIGHT",
    "correct_motion",
    "lift_to_floor",
    "make_corrector",
    "reference_controls",
    "simulate",
]

BACKENDS = ("mjx", "mujoco")
CORRECTORS = ("id", "pd")
FALL_HEAD_HEIGHT = 0.6  # m; standing head centre is 1.47 m, a deep squat ~1.0 m


def lowest_point(qpos: Float[Array, "*b 28"]) -> Float[Array, " *b"]:
    """Height of the body's lowest point (m): min over key points of z − geom radius."""
    sites = hm.forward_kinematics(qpos)["sites"]
    return jnp.min(sites[..., 2] - jnp.asarray(hm.keypoint_radius(), jnp.float32), axis=-1)


def lift_to_floor(qpos: Float[Array, "*b 28"]) -> Float[Array, "*b 28"]:
    """Shifts the root height so the lowest point touches the floor (up or down)."""
    qpos = jnp.asarray(qpos, jnp.float32)
    return qpos.at[..., 2].add(-lowest_point(qpos))


def _rotvec(quat: Float[Array, "*b 4"]) -> Float[Array, "*b 3"]:
    xyzw = jnp.concatenate([quat[..., 1:], quat[..., :1]], axis=-1)
    return Rotation.from_quat(xyzw.reshape(-1, 4)).as_rotvec().reshape(*quat.shape[:-1], 3)


def reference_controls(ref: Float[Array, "T 28"], substeps: int) -> Float[Array, "T-1 s 27"]:
    """Actuator inputs at the simulation rate: the reference, linearly interpolated.

    Joint servos get the hinge angles; the root residual gets the root position and the root
    rotation vector (what MuJoCo's site transmission measures against the world site).
    """
    per_frame = jnp.concatenate([ref[:, 7:], ref[:, :3], _rotvec(ref[:, 3:7])], axis=-1)
    alpha = (jnp.arange(1, substeps + 1, dtype=per_frame.dtype) / substeps)[None, :, None]
    return (1 - alpha) * per_frame[:-1, None] + alpha * per_frame[1:, None]


_HEAD = [name for name, *_ in hm.KEYPOINTS].index("head")


def head_height(qpos: Float[Array, "*b 28"]) -> Float[Array, " *b"]:
    """Height of the head's centre (m)."""
    return hm.forward_kinematics(qpos)["sites"][..., _HEAD, 2]


def _lowest_head(sim: Float[Array, "B T 28"]) -> Float[Array, " B"]:
    """Per motion, the head's lowest height over the frames (m): ``fell`` is it below
    ``FALL_HEAD_HEIGHT``."""
    return jnp.min(head_height(sim), axis=-1)


def _lowest_head_np(sim: np.ndarray, settings: hm.Settings) -> np.ndarray:
    """Per motion, the head's lowest height over the frames (m), by C kinematics.

    The C backends compute it on the host, next to the rollout: MJX kinematics inside their
    jit cost 6–8 s of XLA compilation per shape and nothing at run time that C does not do
    in milliseconds.
    """
    from sims.motion import tracking

    return tracking.keypoints_np(sim, settings)[..., _HEAD, 2].min(axis=-1).astype(np.float32)


def _info(ref, sim, residual, kept, lowest_head) -> dict[str, Array]:
    joint_err = jnp.sqrt(jnp.mean((sim[..., 7:] - ref[..., 7:]) ** 2, axis=(-1, -2)))
    root_err = jnp.mean(jnp.linalg.norm(sim[..., :3] - ref[..., :3], axis=-1), axis=-1)
    return {
        "joint_error": joint_err,  # RMS hinge-angle error (rad)
        "root_error": root_err,  # mean root position error (m)
        "residual_force": residual,  # mean |residual force| / body weight
        "fell": lowest_head < FALL_HEAD_HEIGHT,
        "dropped": jnp.sum(~kept, axis=-1).astype(jnp.int32),  # frames re-interpolated (id)
    }


# ---------------------------------------------------------------- MJX backend


def _simulate_mjx_one(ref: Float[Array, "T 28"], settings: hm.Settings):
    from mujoco import mjx

    # Today's corrector model; on CPU with the sparse Jacobian and CG (engine: no LAPACK).
    mx = engine.device_model("pd", settings)
    ref = jnp.asarray(ref, jnp.float32)
    start = lift_to_floor(ref[0])
    ctrl = reference_controls(ref, settings.substeps)
    d = hm.to_float32(mjx.make_data(mx)).replace(qpos=start, ctrl=ctrl[0, 0])

    def substep(d, c):
        # x64 sessions leak float64 into a few fields; MJX runs in float32 regardless.
        d = hm.to_float32(engine.step(mx, d.replace(ctrl=c)))
        force = hm.residual_force(
            settings, c[hm.N_JOINTS : hm.N_JOINTS + 3], d.qpos[:3], d.qvel[:3]
        )
        return d, jnp.linalg.norm(force)

    def frame(d, c):
        d, force = jax.lax.scan(substep, d, c)
        return d, (d.qpos, jnp.mean(force))

    _, (qpos, force) = jax.lax.scan(frame, d, ctrl)
    sim = jnp.concatenate([start[None], qpos], axis=0)
    return sim, jnp.mean(force)


def _simulate_mjx(ref: Float[Array, "B T 28"], settings: hm.Settings):
    sim, force = jax.vmap(_simulate_mjx_one, in_axes=(0, None))(ref, settings)
    weight = hm.body_weight(settings)
    return sim, force / weight, jnp.ones(ref.shape[:2], bool), _lowest_head(sim)


# ---------------------------------------------------------------- C MuJoCo backend


@functools.lru_cache(maxsize=8)
def _thread_data(settings: hm.Settings, nthread: int):
    m = hm.build_model(settings)
    return m, [mujoco.MjData(m) for _ in range(nthread)]


def _nthread() -> int:
    return int(os.environ.get("SCSC_MUJOCO_THREADS", os.cpu_count() or 1))


def simulate_mujoco_np(ref: np.ndarray, settings: hm.Settings, start: np.ndarray, ctrl: np.ndarray):
    """C MuJoCo rollout (NumPy in, NumPy out): qpos at frames, mean residual force."""
    from mujoco import rollout

    m, datas = _thread_data(settings, _nthread())
    batch = ref.shape[0]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    size = mujoco.mj_stateSize(m, spec)
    d = datas[0]
    init = np.empty((batch, size))
    for b in range(batch):
        mujoco.mj_resetData(m, d)
        d.qpos[:] = start[b]
        d.ctrl[:] = ctrl[b, 0, 0]
        mujoco.mj_forward(m, d)
        mujoco.mj_getState(m, d, init[b], spec)
    controls = np.asarray(ctrl, np.float64).reshape(batch, -1, m.nu)
    state, _ = rollout.rollout(m, datas, init, controls)
    sub = settings.substeps
    at_frames = state[:, sub - 1 :: sub, 1 : 1 + m.nq]
    sim = np.concatenate([start[:, None], at_frames], axis=1)
    root_pos, root_vel = state[..., 1:4], state[..., 1 + m.nq : 4 + m.nq]
    target = controls[..., hm.N_JOINTS : hm.N_JOINTS + 3]
    force = np.linalg.norm(
        np.asarray(hm.residual_force(settings, target, root_pos, root_vel)), axis=-1
    ).mean(axis=1)
    return sim.astype(np.float32), (force / hm.body_weight(settings)).astype(np.float32)


def _simulate_mujoco(ref: Float[Array, "B T 28"], settings: hm.Settings):
    ref = jnp.asarray(ref, jnp.float32)
    start = lift_to_floor(ref[:, 0])
    ctrl = jax.vmap(reference_controls, in_axes=(0, None))(ref, settings.substeps)
    batch, frames = ref.shape[:2]
    shapes = (
        jax.ShapeDtypeStruct((batch, frames, hm.NQ), jnp.float32),
        jax.ShapeDtypeStruct((batch,), jnp.float32),
        jax.ShapeDtypeStruct((batch,), jnp.float32),
    )

    def host(r, s, c):
        sim, force = simulate_mujoco_np(np.asarray(r), settings, np.asarray(s), np.asarray(c))
        return sim, force, _lowest_head_np(sim, settings)

    sim, force, head = jax.pure_callback(
        host, shapes, ref, start, ctrl, vmap_method="broadcast_all"
    )
    return sim, force, jnp.ones(ref.shape[:2], bool), head


def _simulate_id_mujoco(ref: Float[Array, "B T 28"], settings: hm.Settings):
    from sims.motion import tracking

    batch, frames = ref.shape[:2]
    shapes = (
        jax.ShapeDtypeStruct((batch, frames, hm.NQ), jnp.float32),
        jax.ShapeDtypeStruct((batch,), jnp.float32),
        jax.ShapeDtypeStruct((batch, frames), jnp.bool_),
        jax.ShapeDtypeStruct((batch,), jnp.float32),
    )

    def host(r):
        sim, force, kept = tracking.simulate_mujoco_np(np.asarray(r), settings)
        return sim, force, np.asarray(kept, bool), _lowest_head_np(sim, settings)

    return jax.pure_callback(host, shapes, ref, vmap_method="broadcast_all")


def _simulate_id_mjx(ref: Float[Array, "B T 28"], settings: hm.Settings):
    from sims.motion import tracking

    sim, force, kept = tracking.simulate_mjx(ref, settings)
    return sim, force, kept, _lowest_head(sim)


# ---------------------------------------------------------------- public API


def _check(backend: str, corrector: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if corrector not in CORRECTORS:
        raise ValueError(f"corrector must be one of {CORRECTORS}; got {corrector!r}")


def simulate(
    ref: Float[Array, "B T 28"],
    settings: hm.Settings = hm.CORRECTOR,
    backend: str = "mjx",
    corrector: str = "id",
) -> tuple[Float[Array, "B T 28"], dict[str, Array]]:
    """Tracks each reference motion in physics.

    Args:
        ref: reference qpos trajectories at ``humanoid.FPS`` (T >= 2; T >= 4 for ``id``,
            whose spline needs four knots).
        settings: model and controller settings (``humanoid.CORRECTOR`` by default).
        backend: ``"mjx"`` (jittable, vmappable) or ``"mujoco"`` (C, via pure_callback).
        corrector: ``"id"`` (feedforward tracker, default) or ``"pd"`` (module docstring).

    Returns:
        ``(sim, info)``: the simulated qpos at the frame rate (float32; frame 0 is the lifted
        first reference frame) and per-motion ``joint_error`` (rad RMS), ``root_error`` (m),
        ``residual_force`` (mean |root residual force| / body weight), ``fell`` and
        ``dropped`` (frames the ``id`` feasibility projection re-interpolated; 0 for ``pd``).
    """
    _check(backend, corrector)
    min_frames = 4 if corrector == "id" else 2
    if ref.ndim != 3 or ref.shape[-1] != hm.NQ or ref.shape[1] < min_frames:
        raise ValueError(
            f"ref must have shape [batch, T >= {min_frames}, {hm.NQ}]; got {ref.shape}"
        )
    return _simulate_jit(jnp.asarray(ref, jnp.float32), settings, backend, corrector)


# Each returns (sim [B, T, 28], residual force / weight [B], kept [B, T], lowest head [B]).
_SIMULATORS = {
    ("pd", "mjx"): _simulate_mjx,
    ("pd", "mujoco"): _simulate_mujoco,
    ("id", "mjx"): _simulate_id_mjx,
    ("id", "mujoco"): _simulate_id_mujoco,
}


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _simulate_jit(ref, settings, backend, corrector):
    sim, force, kept, lowest_head = _SIMULATORS[corrector, backend](ref, settings)
    return sim, _info(ref, sim, force, kept, lowest_head)


def correct_motion(
    key: jax.Array,
    x: Float[Array, "B T 30"],
    gamma: float | Array = math.inf,
    *,
    settings: hm.Settings = hm.CORRECTOR,
    backend: str = "mjx",
    mask: Bool[Array, " B"] | None = None,
    corrector: str = "id",
) -> tuple[Float[Array, "B T 30"], dict[str, Array]]:
    """Physics correction π_γ of a batch of motions in feature space.

    Each motion is corrected with probability γ/(1+γ) (γ = inf: always); a motion that
    falls keeps its input (see the module docstring); rows with ``mask`` False come back
    unchanged. ``corrector``: ``CORRECTORS`` (``"id"`` default, ``"pd"`` the earlier
    tracker). Returns the corrected features and ``info`` (``simulate``'s, plus
    ``corrected``: whether the row was replaced by its simulation).
    """
    _check(backend, corrector)
    x = jnp.asarray(x, jnp.float32)
    keep_p = 1.0 / (1.0 + jnp.asarray(gamma, jnp.float32))
    draw = jax.random.uniform(key, (x.shape[0],)) >= keep_p
    valid = jnp.ones(x.shape[0], bool) if mask is None else jnp.asarray(mask)
    sim, info = simulate(rep.to_qpos(x), settings, backend, corrector)
    use = draw & valid & ~info["fell"]
    out = jnp.where(use[:, None, None], rep.to_features(sim), x)
    return out, {**info, "corrected": use}


def make_corrector(
    gamma: float | Array = math.inf,
    *,
    settings: hm.Settings = hm.CORRECTOR,
    backend: str = "mjx",
    corrector: str = "id",
):
    """The physics corrector in the project interface ``corrector(key, x, labels=None, *, mask)``.

    ``x`` is ``[B, T, 30]`` or flattened ``[B, T·30]`` features; the same shape comes back.
    """
    _check(backend, corrector)

    def correct(key, x, labels=None, *, mask=None):
        del labels
        shape = x.shape
        feats = x.reshape(shape[0], -1, rep.N_FEATURES)
        out, _ = correct_motion(
            key, feats, gamma, settings=settings, backend=backend, mask=mask, corrector=corrector
        )
        return out.reshape(shape).astype(x.dtype)

    return correct
