"""Motion representation: qpos trajectories at ``FPS`` and per-frame model features.

A motion is a qpos trajectory ``[T, 28]`` (root position, root quaternion w-x-y-z, 21 hinge
angles) at ``humanoid.FPS``. Its features ``[T, 30]`` are, per frame::

    [0:21]  hinge angles (rad)
    [21]    root height (m)
    [22:28] root orientation, continuous 6-D form (first two columns of the rotation
            matrix; Zhou et al. 2019)
    [28:30] root planar velocity in the heading frame (m/s), forward difference
            (frame t -> t+1; zero at the last frame)

Features drop the starting ground position: ``to_qpos(to_features(q))`` equals ``q`` up to
float error with the root's x, y at frame 0 moved to the origin (round-trip tested).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.spatial.transform import Rotation
from jaxtyping import Array, Float

from sims.motion.humanoid import FPS, N_JOINTS

__all__ = ["N_FEATURES", "quat_to_6d", "rot6d_to_quat", "to_features", "to_qpos"]

N_FEATURES = N_JOINTS + 1 + 6 + 2
JOINT_SLICE = slice(0, N_JOINTS)
HEIGHT = N_JOINTS
ROT6D_SLICE = slice(N_JOINTS + 1, N_JOINTS + 7)
VEL_SLICE = slice(N_JOINTS + 7, N_JOINTS + 9)


def _wxyz_to_xyzw(q):
    return jnp.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def _xyzw_to_wxyz(q):
    return jnp.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def quat_to_6d(quat: Float[Array, "*b 4"]) -> Float[Array, "*b 6"]:
    """Quaternion (w, x, y, z) -> first two columns of its rotation matrix."""
    mat = Rotation.from_quat(_wxyz_to_xyzw(quat).reshape(-1, 4)).as_matrix()
    six = jnp.concatenate([mat[:, :, 0], mat[:, :, 1]], axis=-1)
    return six.reshape(*quat.shape[:-1], 6)


def rot6d_to_matrix(six: Float[Array, "*b 6"]) -> Float[Array, "*b 3 3"]:
    """Gram–Schmidt on the two columns (any 6-vector with independent halves is valid)."""
    a, b = six[..., :3], six[..., 3:]
    c1 = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = b - jnp.sum(c1 * b, axis=-1, keepdims=True) * c1
    c2 = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    c3 = jnp.cross(c1, c2)
    return jnp.stack([c1, c2, c3], axis=-1)


def rot6d_to_quat(six: Float[Array, "*b 6"]) -> Float[Array, "*b 4"]:
    """6-D form -> unit quaternion (w, x, y, z) with w >= 0."""
    mat = rot6d_to_matrix(six)
    q = Rotation.from_matrix(mat.reshape(-1, 3, 3)).as_quat()
    q = _xyzw_to_wxyz(q).reshape(*six.shape[:-1], 4)
    return q * jnp.where(q[..., :1] < 0, -1.0, 1.0).astype(q.dtype)


def heading(quat: Float[Array, "*b 4"]) -> Float[Array, " *b"]:
    """Yaw of the body's forward (x) axis in the ground plane (rad)."""
    w, x, y, z = (quat[..., i] for i in range(4))
    fx = 1 - 2 * (y * y + z * z)
    fy = 2 * (x * y + w * z)
    return jnp.arctan2(fy, fx)


def _rotate2(v, angle):
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def to_features(qpos: Float[Array, "*b T 28"]) -> Float[Array, "*b T 30"]:
    """qpos trajectory -> per-frame features (see the module docstring)."""
    quat = qpos[..., 3:7]
    yaw = heading(quat)
    step = qpos[..., 1:, :2] - qpos[..., :-1, :2]
    vel = _rotate2(step, -yaw[..., :-1]) * FPS
    vel = jnp.concatenate([vel, jnp.zeros_like(vel[..., :1, :])], axis=-2)
    return jnp.concatenate([qpos[..., 7:], qpos[..., 2:3], quat_to_6d(quat), vel], axis=-1)


def to_qpos(features: Float[Array, "*b T 30"]) -> Float[Array, "*b T 28"]:
    """Features -> qpos trajectory starting at the ground origin (inverse of ``to_features``)."""
    quat = rot6d_to_quat(features[..., ROT6D_SLICE])
    yaw = heading(quat)
    step = _rotate2(features[..., :-1, VEL_SLICE], yaw[..., :-1]) / FPS
    xy = jnp.concatenate([jnp.zeros_like(step[..., :1, :]), jnp.cumsum(step, axis=-2)], axis=-2)
    return jnp.concatenate(
        [xy, features[..., HEIGHT : HEIGHT + 1], quat, features[..., JOINT_SLICE]], axis=-1
    )
