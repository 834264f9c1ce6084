"""Physics engines of the corrector: model variants, and an MJX step that never calls LAPACK.

**The XLA:CPU hang.** A jitted MJX correction on CPU could hang for ever (twice in ~150
generation steps of the long loop run; every time for a standalone jitted correction of
64 motions × 60 frames). A native stack of the hung process shows both XLA intra-op worker
threads inside ``lapack_spotrf_ffi`` → ``jax::CholeskyFactorization`` →
``jax::ParallelBatchMap`` → ``BlockingCounter::Wait``: jaxlib's CPU LAPACK kernels split a
*batched* factorisation into sub-tasks on the same intra-op thread pool that runs the custom
call itself and block until they finish. When two such custom calls run at once, each holds
one of the pool's threads and waits for sub-tasks that are queued behind the other: a
thread-pool starvation deadlock, the likelier the fewer cores (this machine has two). Under
``vmap`` every MJX Cholesky is batched: MJX factorises the dense mass matrix
(``smooth.factor_m``), the Newton solver its Hessian (``solver._update_gradient``) and the
``implicitfast`` integrator M − dt·∂f/∂v (``forward.implicit``), all with
``jax.scipy.linalg.cho_factor``/``cho_solve``.

**The fix, at the root:** on CPU the corrector's MJX models use ``opt.jacobian = SPARSE``
(MJX then factorises M with its own tree-structured LDLᵀ in plain JAX operations) and
``opt.solver = CG`` (no Hessian factorisation), and ``step`` below replaces
``mjx.step``'s implicit integration by the same sparse LDLᵀ of M + dt·diag(D̄): D (the
velocity derivative of the passive and actuator forces) is diagonal and constant for this
model (checked in ``inverse.consts``), so M + dt·diag(D̄) has M's sparsity. Nothing in the
jitted correction then lowers to a LAPACK custom call (tested on the lowered program:
``tests/sims/motion/test_engine.py``), so the deadlock cannot occur. On GPU (no such
kernels) MJX keeps its dense Newton defaults: ``lapack_free()`` decides at trace time.
Measured on this 2-core CPU (``benchmarks/mjx_hang.py``, load 2–6): 100 consecutive jitted
corrections of 64 motions × 60 frames per corrector, no hang (median 16.5 s per call for
``id``, 5.9 s for ``pd``; before the fix the first call hung).

Model variants (all derived from ``humanoid.build_model``, which stays the only module that
compiles the humanoid; here copies get other options):

* ``tracking_model``: the corrector model of ``settings`` with the hinge servos'
  control limits off (a feedforward input u = x_ref + f/kp may lie outside the joint
  range; forces stay clipped to the same limits) and a converged constraint solver
  (``SOLVER_ITERATIONS``, ``SOLVER_TOLERANCE``), so the contact forces are physics, not an
  artefact of an early stop.
* ``inverse_model``: the tracking model without contacts and joint limits, for the
  contact-free inverse dynamics of the reference (see ``sims.motion.tracking``).
"""

from __future__ import annotations

import copy
import functools
import threading

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from sims.motion import humanoid as hm

__all__ = [
    "SOLVER_ITERATIONS",
    "SOLVER_TOLERANCE",
    "CBatch",
    "device_model",
    "inverse_model",
    "lapack_free",
    "step",
    "tracking_model",
]

SOLVER_ITERATIONS = 30
SOLVER_TOLERANCE = 1e-10
LS_ITERATIONS = 20
MJX_ITERATIONS = 20
MJX_LS_ITERATIONS = 10
MJX_TOLERANCE = 1e-6
CG_ITERATIONS = 30
CG_LS_ITERATIONS = 20
TRACKING_KV_RATIO = 0.1
TRACKING_KP_SCALE = {"default": 1.0, "hip_x": 5.0, "hip_z": 5.0, "ankle_x": 10.0}


def lapack_free() -> bool:
    """Whether MJX models must avoid LAPACK-backed linear algebra: on the CPU backend."""
    return jax.default_backend() == "cpu"


@functools.lru_cache(maxsize=8)
def tracking_model(settings: hm.Settings = hm.CORRECTOR) -> mujoco.MjModel:
    """The feedforward tracker's forward model (see the module docstring; read-only)."""
    m = copy.copy(hm.build_model(settings))
    m.actuator_ctrllimited[: hm.N_JOINTS] = 0
    nj = hm.N_JOINTS
    scale = np.array(
        [
            TRACKING_KP_SCALE.get(
                j.removesuffix("_right").removesuffix("_left"), TRACKING_KP_SCALE["default"]
            )
            for j in hm.JOINTS
        ]
    )
    kp = m.actuator_gainprm[:nj, 0] * scale
    m.actuator_gainprm[:nj, 0] = kp
    m.actuator_biasprm[:nj, 1] = -kp
    m.actuator_biasprm[:nj, 2] = -TRACKING_KV_RATIO * kp
    m.opt.iterations = SOLVER_ITERATIONS
    m.opt.ls_iterations = LS_ITERATIONS
    m.opt.tolerance = SOLVER_TOLERANCE
    return m


@functools.lru_cache(maxsize=8)
def inverse_model(settings: hm.Settings = hm.CORRECTOR) -> mujoco.MjModel:
    """``tracking_model`` without contacts and joint limits (read-only)."""
    m = copy.copy(tracking_model(settings))
    m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT) | int(
        mujoco.mjtDisableBit.mjDSBL_LIMIT
    )
    return m


_KINDS = {
    "pd": lambda s: hm.build_model(s),
    "tracking": tracking_model,
    "inverse": inverse_model,
}


@functools.lru_cache(maxsize=16)
def device_model(kind: str, settings: hm.Settings = hm.CORRECTOR, lapack: bool | None = None):
    """An MJX model in float32: ``kind`` in {"pd" (today's corrector model), "tracking",
    "inverse"}; ``lapack`` False (default on CPU: ``not lapack_free()``) gives the sparse
    Jacobian and the CG solver (module docstring)."""
    from mujoco import mjx

    if lapack is None:
        lapack = not lapack_free()
    m = _KINDS[kind](settings)
    if not lapack:
        # CG needs more iterations than Newton: with the PD model's 4 (Newton's default here)
        # the PD tracker left C MuJoCo by 0.066 rad in 0.55 s, with 15 by 0.011, with 30 by
        # 1e-4 (tests/sims/motion/test_mjx.py; 2 motions × 12 frames; no slower to compile).
        # 1e-6 is a tolerance float32 can reach, so converged motions stop early under vmap.
        m = copy.copy(m)
        m.opt.jacobian = mujoco.mjtJacobian.mjJAC_SPARSE
        m.opt.solver = mujoco.mjtSolver.mjSOL_CG
        m.opt.iterations = CG_ITERATIONS
        m.opt.ls_iterations = CG_LS_ITERATIONS
        m.opt.tolerance = MJX_TOLERANCE
    if kind == "tracking":
        # float32 cannot reach the C model's 1e-10; under vmap every step would then run all
        # iterations of its slowest motion (measured 60 s per call at 64 × 60 with 30, 20).
        # 20 CG iterations: 15 matched the C model within 6e-4 rad over 3 s on one CPU
        # (8 motions; 6: 0.03), but on another (AMD Zen 1, no AVX-512) a squat left it by
        # 0.016 rad within 0.55 s (test_engine.py's parity test); 20 and 30 bring that back
        # to 1e-4 at the same cost per call (2.2 vs 2.1 s, 18 motions × 40 frames).
        m = copy.copy(m)
        m.opt.iterations = MJX_ITERATIONS
        m.opt.ls_iterations = MJX_LS_ITERATIONS
        m.opt.tolerance = MJX_TOLERANCE
    # Cached across traces: built from concrete arrays even when first asked for in a jit.
    with jax.ensure_compile_time_eval():
        return hm.to_float32(mjx.put_model(m))


def step(mx, d):
    """One ``implicitfast`` MJX step; with a sparse model, free of LAPACK calls.

    Dense models (GPU) use ``mjx.step``. Sparse ones: ``mjx.forward`` (sparse M
    factorisation; CG), then qacc = (M + dt·diag(D̄))⁻¹ (qfrc_smooth + qfrc_constraint) by
    MJX's sparse LDLᵀ, then MJX's own semi-implicit position/velocity update, as in
    ``mjx.euler`` (whose implicit damping is the same construction with D̄ = dof damping).
    """
    from mujoco import mjx
    from mujoco.mjx._src import forward as mjx_forward
    from mujoco.mjx._src import smooth

    if not mjx.is_sparse(mx):
        return mjx.step(mx, d)
    d = mjx.forward(mx, d)
    diag = _damping_diag(mx)
    adr = mx.M_rowadr + mx.M_rownnz - 1
    mass = d._impl.M.at[adr].add(mx.opt.timestep * diag)
    dh = d.tree_replace({"_impl.M": mass})
    dh = smooth.factor_m(mx, dh)
    qacc = smooth.solve_m(mx, dh, d.qfrc_smooth + d.qfrc_constraint)
    return mjx_forward._advance(mx, d, d.act_dot, qacc)


def _damping_diag(mx):
    """D̄ = −∂(passive + actuator force)/∂v for joint and site actuators with affine bias
    (diagonal for the corrector models: ``inverse.consts`` checks it on the C model)."""
    kv = -mx.actuator_biasprm[:, 2]
    diag = jnp.asarray(mx.dof_damping)
    nj = hm.N_JOINTS
    # Joint actuators act on their DoF; the root residual on the free joint's six DoFs with
    # unit moment norm (world axes; rotation isotropic).
    dof = np.asarray(mx.jnt_dofadr)[np.asarray(mx.actuator_trnid)[:nj, 0]]
    diag = diag.at[dof].add(kv[:nj])
    return diag.at[:6].add(kv[nj : nj + 6])


# ------------------------------------------------------------------ C MuJoCo batches


class CBatch:
    """A ``mujoco.batch.Batch`` of one model with bound fields, reused across calls (one
    call at a time: guarded by a lock, as ``jax.pure_callback`` may call from any thread)."""

    def __init__(self, model: mujoco.MjModel, nsim: int, fields: tuple[str, ...], nthread: int):
        from mujoco import batch as mb

        self.model = model
        self.batch = mb.Batch(model, nsim=nsim, nthread=nthread)
        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self.out = {f: self.batch.bind(f) for f in fields}
        self.lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def cbatch(model_kind: str, settings: hm.Settings, nsim: int, nthread: int) -> CBatch:
    fields = ("M", "qfrc_bias", "qfrc_passive", "site_xpos", "xanchor", "xaxis")
    return CBatch(_KINDS[model_kind](settings), nsim, fields, nthread)
