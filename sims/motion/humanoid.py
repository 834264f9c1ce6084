"""The humanoid: MuJoCo's MJX test humanoid, adapted in code. The only module that builds models.

Source: ``mujoco/mjx/test_data/humanoid/humanoid.xml`` inside the installed ``mujoco-mjx``
wheel (Apache-2.0, © DeepMind; see the wheel's ``licenses/LICENSE``), read through
``importlib.resources``. It has a free root and 21 hinges (nq = 28, nv = 27), 40.8 kg, and
only the four foot capsules collide with the floor (explicit contact pairs).

Adaptations (``MjSpec``, never XML edits):

* the original torque motors are replaced by **position actuators** on the 21 hinges (PD
  servos: gain ``kp``, damping ``kv``) with **force limits** (``force_scale`` × the original
  motor gear, the dm_control humanoid's torque budget);
* a **bounded residual wrench** on the root (residual force control): six position
  actuators with a ``site`` transmission from a torso site to a world reference site
  (MuJoCo measures their "length" as the torso's position and rotation vector in the world),
  so their inputs are the *reference* root pose itself and their forces are clipped to
  ``residual_force`` (a fraction of body weight, < 1 so floating cannot be held) and
  ``residual_torque``. All inputs are therefore the reference trajectory, open loop, which
  is what ``mujoco.rollout`` needs; the feedback lives inside the model;
* sites at the ends of the foot capsules (heel/toe) and at a few other body points, with
  the radius of the geom they sit on, for the lowest point and foot contact;
* implicit-in-velocity integration (``implicitfast``) so stiff PD damping stays stable.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "CORRECTOR",
    "FPS",
    "GROUND_TRUTH",
    "JOINTS",
    "NQ",
    "NU",
    "Settings",
    "body_weight",
    "build_model",
    "device_model",
    "forward_kinematics",
    "joint_ranges",
    "rest_qpos",
    "to_float32",
]

FPS = 20  # motion frame rate (frames per second), as HumanML3D
NQ = 28
NV = 27
JOINTS = (
    "abdomen_z",
    "abdomen_y",
    "abdomen_x",
    "hip_x_right",
    "hip_z_right",
    "hip_y_right",
    "knee_right",
    "ankle_y_right",
    "ankle_x_right",
    "hip_x_left",
    "hip_z_left",
    "hip_y_left",
    "knee_left",
    "ankle_y_left",
    "ankle_x_left",
    "shoulder1_right",
    "shoulder2_right",
    "elbow_right",
    "shoulder1_left",
    "shoulder2_left",
    "elbow_left",
)
N_JOINTS = len(JOINTS)
RESIDUALS = tuple(f"residual_{kind}_{axis}" for kind in ("pos", "rot") for axis in "xyz")
NU = N_JOINTS + len(RESIDUALS)
# Original motor gears (N·m at |ctrl| = 1): the torque budget the limits scale.
_GEAR = {
    "abdomen_y": 40,
    "abdomen_z": 40,
    "abdomen_x": 40,
    "hip_x": 40,
    "hip_z": 40,
    "hip_y": 120,
    "knee": 80,
    "ankle_x": 20,
    "ankle_y": 20,
    "shoulder1": 20,
    "shoulder2": 20,
    "elbow": 40,
}

# Key points: (name, body, position in the body frame, radius of the geom there).
# Feet: both ends of both foot capsules (a capsule's lowest point is at an end).
_FOOT_ENDS = ((-0.07, -0.01), (0.14, -0.03), (-0.07, 0.01), (0.14, 0.03))
FOOT_RADIUS = 0.027
KEYPOINTS = (
    *(
        (f"{side}_foot{i}", f"foot_{side}", (x, y if side == "right" else -y, 0.0), FOOT_RADIUS)
        for side in ("right", "left")
        for i, (x, y) in enumerate(_FOOT_ENDS)
    ),
    ("right_knee", "shin_right", (0.0, 0.0, 0.0), 0.049),
    ("left_knee", "shin_left", (0.0, 0.0, 0.0), 0.049),
    ("right_hand", "hand_right", (0.0, 0.0, 0.0), 0.04),
    ("left_hand", "hand_left", (0.0, 0.0, 0.0), 0.04),
    ("butt", "pelvis", (-0.02, 0.0, 0.0), 0.09),
    ("head", "head", (0.0, 0.0, 0.0), 0.09),
)
FOOT_SITES = {"right": tuple(range(4)), "left": tuple(range(4, 8))}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Physics and controller settings of one humanoid model.

    Attributes:
        timestep: simulation step (s); must divide 1/FPS.
        kp_scale: joint servo stiffness per N·m of original gear (kp = kp_scale·gear, N·m/rad).
        kv_ratio: joint damping as a fraction of stiffness (kv = kv_ratio·kp, N·m·s/rad).
        force_scale: joint torque limit as a multiple of the original gear (N·m).
        residual_force: root residual force bound as a fraction of body weight (< 1).
        residual_torque: root residual torque bound (N·m).
        root_kp: root translational servo stiffness (N/m); rotational uses root_kp_rot.
        root_kv: root translational damping (N·s/m).
        root_kp_rot: root rotational stiffness (N·m/rad).
        root_kv_rot: root rotational damping (N·m·s/rad).
        solver_iterations: constraint-solver iterations (Newton).
        friction: foot–floor sliding friction coefficient.
    """

    timestep: float = 0.005
    kp_scale: float = 5.0
    kv_ratio: float = 0.1
    force_scale: float = 2.5
    residual_force: float = 0.5
    residual_torque: float = 100.0
    root_kp: float = 2000.0
    root_kv: float = 200.0
    root_kp_rot: float = 1000.0
    root_kv_rot: float = 100.0
    solver_iterations: int = 4
    friction: float = 1.0

    def __post_init__(self):
        steps = 1.0 / (FPS * self.timestep)
        if self.timestep <= 0 or abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"timestep must be > 0 and divide 1/{FPS} s; got {self.timestep}")
        if not 0 <= self.residual_force < 1:
            raise ValueError(
                f"residual_force must lie in [0, 1) (a fraction of body weight); "
                f"got {self.residual_force}"
            )
        for name in ("kp_scale", "force_scale", "root_kp", "root_kp_rot"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        for name in ("kv_ratio", "residual_torque", "root_kv", "root_kv_rot", "friction"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.solver_iterations < 1:
            raise ValueError(f"solver_iterations must be >= 1; got {self.solver_iterations}")

    @property
    def substeps(self) -> int:
        """Simulation steps per motion frame."""
        return round(1.0 / (FPS * self.timestep))


# The corrector's settings, and *different* ones that realise the ground-truth dataset
# (finer timestep, stiffer and stronger joints, weaker root residual), so real motions are
# not the corrector's own fixed points.
CORRECTOR = Settings()
GROUND_TRUTH = Settings(
    timestep=0.0025,
    kp_scale=8.0,
    kv_ratio=0.08,
    force_scale=3.0,
    residual_force=0.3,
    residual_torque=150.0,
    root_kp=1500.0,
    root_kv=150.0,
    root_kp_rot=1500.0,
    root_kv_rot=120.0,
    solver_iterations=6,
)


def _source_xml() -> str:
    path = resources.files("mujoco.mjx") / "test_data" / "humanoid" / "humanoid.xml"
    return path.read_text()


def _gear(joint: str) -> float:
    base = joint.removesuffix("_right").removesuffix("_left")
    return float(_GEAR[base])


@functools.lru_cache(maxsize=8)
def build_model(settings: Settings = CORRECTOR) -> mujoco.MjModel:
    """Compiles the adapted humanoid for ``settings`` (cached; treat the result as read-only)."""
    spec = mujoco.MjSpec.from_string(_source_xml())
    spec.option.timestep = settings.timestep
    spec.option.iterations = settings.solver_iterations
    spec.option.ls_iterations = 8
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    for act in list(spec.actuators):
        spec.delete(act)
    for pair in spec.pairs:
        pair.friction = np.array([settings.friction, settings.friction, 0.005, 1e-4, 1e-4])
    for name, body, pos, _ in KEYPOINTS:
        spec.body(body).add_site(name=name, pos=pos, size=[0.01, 0, 0])
    spec.body("torso").add_site(name="root", pos=[0, 0, 0])
    spec.worldbody.add_site(name="root_ref", pos=[0, 0, 0])
    for joint in JOINTS:
        kp = settings.kp_scale * _gear(joint)
        limit = settings.force_scale * _gear(joint)
        jrange = spec.joint(joint).range
        spec.add_actuator(
            name=joint,
            target=joint,
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            gaintype=mujoco.mjtGain.mjGAIN_FIXED,
            biastype=mujoco.mjtBias.mjBIAS_AFFINE,
            gainprm=[kp] + [0] * 9,
            biasprm=[0, -kp, -settings.kv_ratio * kp] + [0] * 7,
            ctrllimited=True,
            ctrlrange=np.deg2rad(jrange),
            forcelimited=True,
            forcerange=[-limit, limit],
        )
    weight = 9.81 * 40.84  # checked against the compiled mass below
    for rot in (False, True):
        for i in range(3):
            gear = np.zeros(6)
            gear[i + 3 * rot] = 1.0
            kp = settings.root_kp_rot if rot else settings.root_kp
            kv = settings.root_kv_rot if rot else settings.root_kv
            bound = settings.residual_torque if rot else settings.residual_force * weight
            spec.add_actuator(
                name=RESIDUALS[i + 3 * rot],
                target="root",
                refsite="root_ref",
                trntype=mujoco.mjtTrn.mjTRN_SITE,
                gear=gear,
                gaintype=mujoco.mjtGain.mjGAIN_FIXED,
                biastype=mujoco.mjtBias.mjBIAS_AFFINE,
                gainprm=[kp] + [0] * 9,
                biasprm=[0, -kp, -kv] + [0] * 7,
                ctrllimited=False,
                forcelimited=True,
                forcerange=[-bound, bound],
            )
    model = spec.compile()
    mass = float(model.body_subtreemass[1])
    if abs(mass - 40.84) > 0.05:
        raise RuntimeError(f"unexpected humanoid mass {mass:.3f} kg (source model changed?)")
    return model


def actuator_order() -> tuple[str, ...]:
    """Actuator names in control order: 21 joints, residual position x/y/z, rotation x/y/z."""
    m = build_model()
    return tuple(m.actuator(i).name for i in range(m.nu))


def residual_force(
    settings: Settings, target: Float[Array, "*b 3"], pos: Float[Array, "*b 3"], vel
) -> Float[Array, "*b 3"]:
    """Root residual force (N) the model applies for a reference root position ``target``
    at root position ``pos`` and linear velocity ``vel`` (what the site-transmission
    position actuators compute, clipped to their force range).

    NumPy inputs give NumPy (the C backend calls this inside a ``jax.pure_callback``, where
    dispatching JAX operations can deadlock the CPU client); JAX inputs give JAX."""
    bound = settings.residual_force * body_weight(settings)
    force = settings.root_kp * (target - pos) - settings.root_kv * vel
    xp = jnp if any(isinstance(a, jax.Array) for a in (target, pos, vel)) else np
    return xp.clip(force, -bound, bound)


def body_weight(settings: Settings = CORRECTOR) -> float:
    """Body weight in N."""
    m = build_model(settings)
    return float(m.body_subtreemass[1] * -m.opt.gravity[2])


def joint_ranges() -> Float[np.ndarray, "21 2"]:
    """Hinge ranges (rad), in ``JOINTS`` order."""
    m = build_model()
    return np.stack([m.joint(j).range for j in JOINTS])


def keypoint_radius() -> Float[np.ndarray, " k"]:
    """Radius of the geom under each key point (m): the lowest point is site z − radius."""
    return np.array([r for *_, r in KEYPOINTS])


@functools.lru_cache(maxsize=1)
def keypoint_site_ids() -> tuple[int, ...]:
    """Compiled site ids of ``KEYPOINTS`` (MuJoCo orders sites by body, not by insertion)."""
    m = build_model()
    return tuple(m.site(name).id for name, *_ in KEYPOINTS)


# Standing rest pose: arms down beside the body, legs straight (found by forward kinematics).
REST_JOINTS = {
    "shoulder1_right": 0.82,
    "shoulder2_right": -0.56,
    "elbow_right": -1.75,
    "shoulder1_left": 0.82,
    "shoulder2_left": -0.56,
    "elbow_left": -1.75,
}


def rest_qpos() -> Float[np.ndarray, " 28"]:
    """Standing pose at the origin, feet on the floor."""
    q = np.zeros(NQ)
    q[2] = 1.282
    q[3] = 1.0
    for j, v in REST_JOINTS.items():
        q[7 + JOINTS.index(j)] = v
    return q


def to_float32(tree):
    """Every float64 leaf of ``tree`` (JAX or NumPy arrays) as float32, the rest unchanged.

    NumPy fields too: MJX mixes them into traced arrays, and in an x64 session float64
    constants would promote (or scatter into) the float32 state.
    """
    return jax.tree.map(
        lambda a: (
            a.astype(np.float32)
            if isinstance(a, jax.Array | np.ndarray) and a.dtype == np.float64
            else a
        ),
        tree,
    )


@functools.lru_cache(maxsize=8)
def device_model(settings: Settings = CORRECTOR):
    """The model as an ``mjx.Model`` in float32 (MJX runs in its own precision)."""
    from mujoco import mjx

    # Cached across traces, so it must be built from concrete arrays even when first
    # requested inside a jit (a traced model in the cache would leak tracers).
    with jax.ensure_compile_time_eval():
        return to_float32(mjx.put_model(build_model(settings)))


@jax.jit
def _kinematics(flat: Float[Array, "b 28"]) -> tuple[Array, Array]:
    from mujoco import mjx

    mx = device_model()

    def one(q):
        d = mjx.make_data(mx).replace(qpos=q)
        d = mjx.kinematics(mx, d)
        return d.xpos, d.site_xpos

    body, sites = jax.vmap(one)(flat)
    return body, sites[:, np.asarray(keypoint_site_ids())]


def forward_kinematics(qpos: Float[Array, "*batch 28"]) -> dict[str, Array]:
    """Body and key-point positions from qpos (``mjx.kinematics``), any leading batch shape.

    The kernel is jitted (one compilation per batch size): called op by op from host code
    (rendering, the evaluator's plausibility metrics), the vmapped ``mjx.kinematics`` took
    ~4 s per call; inside a caller's ``jit`` the inner ``jit`` is inlined.

    Returns:
        ``{"body": [..., 17, 3], "sites": [..., K, 3]}`` in metres, sites in ``KEYPOINTS``
        order; float32.
    """
    qpos = jnp.asarray(qpos, jnp.float32)
    body, sites = _kinematics(qpos.reshape(-1, NQ))
    lead = qpos.shape[:-1]
    return {
        "body": body.reshape(*lead, *body.shape[1:]),
        "sites": sites.reshape(*lead, *sites.shape[1:]),
    }
