"""Physical plausibility metrics of motions (PhysDiff definitions; paper §4, ``docs/paper.md``).

All lengths in **millimetres**, computed per motion from forward kinematics of its qpos
(key points: both ends of both foot capsules and a few body points, each minus the radius
of its geom, so "lowest point" is the lowest point of the body's surface there):

* ``penetration`` — mean over frames of the depth of the lowest point below the floor
  (0 when above); ``penetration_max`` — the deepest frame (the "deepest" variant).
* ``floating`` — mean over frames of the height of the lowest point above
  ``FLOAT_TOLERANCE`` (0 when at or below it).
* ``skating`` — mean over frames and both feet of a foot's horizontal displacement between
  consecutive frames while that foot is in contact (its lowest point below
  ``CONTACT_HEIGHT`` in both frames); ``skating_ratio`` — the fraction of contact frames
  whose horizontal foot speed exceeds ``SKATE_SPEED``.
* ``phys_err`` — penetration + floating + skating (the paper's "physical error").
* ``jerk`` — mean norm of the third time derivative of body positions (m/s³).
* ``fell`` — the head dropped below ``physics.FALL_HEAD_HEIGHT``; its batch mean is
  ``fell_rate``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from sims.motion import humanoid as hm
from sims.motion.physics import FALL_HEAD_HEIGHT

__all__ = [
    "CONTACT_HEIGHT",
    "FLOAT_TOLERANCE",
    "METRICS",
    "SKATE_SPEED",
    "plausibility",
    "summarize",
]

CONTACT_HEIGHT = 0.03  # m: a foot whose lowest point is below this touches the floor
FLOAT_TOLERANCE = 0.005  # m: lowest points within 5 mm above the floor are not floating
SKATE_SPEED = 0.1  # m/s: horizontal foot speed in contact that counts as skating
MM = 1000.0
METRICS = (
    "penetration",
    "penetration_max",
    "floating",
    "skating",
    "skating_ratio",
    "phys_err",
    "jerk",
    "fell",
)


@jax.jit
def plausibility(qpos: Float[Array, "B T 28"]) -> dict[str, Float[Array, " B"]]:
    """Per-motion plausibility metrics (see the module docstring); float32."""
    fk = hm.forward_kinematics(qpos)
    sites, body = fk["sites"], fk["body"]
    radius = jnp.asarray(hm.keypoint_radius(), jnp.float32)
    surface = sites[..., 2] - radius  # [B, T, K]
    lowest = jnp.min(surface, axis=-1)
    penetration_t = jnp.maximum(0.0, -lowest)
    floating_t = jnp.maximum(0.0, lowest - FLOAT_TOLERANCE)

    skate_sum = 0.0
    contact_count = 0.0
    fast_count = 0.0
    for ids in hm.FOOT_SITES.values():
        ids = jnp.asarray(ids)
        foot_low = jnp.min(surface[..., ids], axis=-1)  # [B, T]
        foot_xy = jnp.mean(sites[..., ids, :2], axis=-2)  # [B, T, 2]
        contact = (foot_low[:, 1:] < CONTACT_HEIGHT) & (foot_low[:, :-1] < CONTACT_HEIGHT)
        step = jnp.linalg.norm(foot_xy[:, 1:] - foot_xy[:, :-1], axis=-1)
        skate_sum = skate_sum + jnp.sum(jnp.where(contact, step, 0.0), axis=-1)
        contact_count = contact_count + jnp.sum(contact, axis=-1)
        fast = contact & (step * hm.FPS > SKATE_SPEED)
        fast_count = fast_count + jnp.sum(fast, axis=-1)
    frames = qpos.shape[1] - 1
    skating = skate_sum / (2 * frames)
    skating_ratio = fast_count / jnp.maximum(contact_count, 1)

    third = body[:, 3:] - 3 * body[:, 2:-1] + 3 * body[:, 1:-2] - body[:, :-3]
    jerk = jnp.mean(jnp.linalg.norm(third, axis=-1), axis=(-1, -2)) * hm.FPS**3
    head = sites[..., [name for name, *_ in hm.KEYPOINTS].index("head"), 2]  # = head_height

    out = {
        "penetration": MM * jnp.mean(penetration_t, axis=-1),
        "penetration_max": MM * jnp.max(penetration_t, axis=-1),
        "floating": MM * jnp.mean(floating_t, axis=-1),
        "skating": MM * skating,
        "skating_ratio": skating_ratio,
        "jerk": jerk,
        "fell": (jnp.min(head, axis=-1) < FALL_HEAD_HEIGHT).astype(jnp.float32),
    }
    out["phys_err"] = out["penetration"] + out["floating"] + out["skating"]
    return {k: out[k].astype(jnp.float32) for k in METRICS}


def summarize(per_motion: dict[str, Array]) -> dict[str, float]:
    """Batch means (``fell`` becomes ``fell_rate``), as plain floats."""
    out = {}
    for k, v in per_motion.items():
        out["fell_rate" if k == "fell" else k] = float(jnp.mean(jnp.asarray(v, jnp.float32)))
    return out
