"""Corruptions of valid motions, each breaking one kind of physical plausibility.

Used by the property tests and the demo: correction should reduce the matching metric.

* ``sink`` — the whole motion lowered by ``depth`` (penetration);
* ``levitate`` — raised by ``height`` (floating);
* ``snap`` — one frame's joints and root displaced (jerk);
* ``slide`` — the root drifts horizontally at ``speed`` while the legs do not step (skating).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["CORRUPTIONS", "MATCHING_METRIC", "corrupt"]

CORRUPTIONS = ("sink", "levitate", "snap", "slide")
MATCHING_METRIC = {
    "sink": "penetration",
    "levitate": "floating",
    "snap": "jerk",
    "slide": "skating",
}


def corrupt(
    key: jax.Array,
    qpos: Float[Array, "B T 28"],
    kind: str,
    *,
    depth: float = 0.08,
    height: float = 0.15,
    snap_angle: float = 0.8,
    snap_shift: float = 0.1,
    speed: float = 0.4,
) -> Float[Array, "B T 28"]:
    """Returns corrupted copies (see the module docstring; lengths in m, angles in rad)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {CORRUPTIONS}; got {kind!r}")
    qpos = jnp.asarray(qpos, jnp.float32)
    batch, frames = qpos.shape[:2]
    if kind == "sink":
        return qpos.at[..., 2].add(-depth)
    if kind == "levitate":
        return qpos.at[..., 2].add(height)
    if kind == "snap":
        k1, k2, k3 = jax.random.split(key, 3)
        t0 = jax.random.randint(k1, (batch,), frames // 4, 3 * frames // 4)
        at = jnp.arange(frames)[None, :] == t0[:, None]  # [B, T]
        sign = jax.random.choice(k2, jnp.array([-1.0, 1.0], jnp.float32), (batch, 21))
        joints = snap_angle * sign
        shift = snap_shift * jax.random.normal(k3, (batch, 3), jnp.float32)
        qpos = qpos.at[..., 7:].add(jnp.where(at[..., None], joints[:, None], 0.0))
        return qpos.at[..., :3].add(jnp.where(at[..., None], shift[:, None], 0.0))
    angle = jax.random.uniform(key, (batch,), jnp.float32, maxval=2 * jnp.pi)
    t = jnp.arange(frames, dtype=jnp.float32) / 20.0
    drift = speed * t[None, :, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)[:, None]
    return qpos.at[..., :2].add(drift)
