"""Effective correction strength γ̂ of the physics corrector (paper App. C criterion).

Two spaces: ``effective_gamma`` works in flattened motion features (what the generator
sees); ``plausibility_gamma`` in the space of per-motion plausibility metrics
(log1p of penetration, floating and skating in mm, and of jerk), where physical
corruptions are visible. In raw features, corruptions of a few centimetres are swamped by
the spread between motions (different classes and amplitudes), so with a few dozen motions
the estimator reports γ̂ as not identifiable there, which is the honest answer.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from sims.motion import humanoid as hm
from sims.motion import physics as ph
from sims.motion import representation as rep

__all__ = ["effective_gamma", "plausibility_features", "plausibility_gamma"]


def effective_gamma(
    key: jax.Array,
    model_features: Float[Array, "n T 30"],
    target_features: Float[Array, "m T 30"],
    labels: Array | None = None,
    *,
    backend: str = "mujoco",
    settings: hm.Settings = hm.CORRECTOR,
    **kwargs,
):
    """γ̂ of the physics corrector (γ = ∞ setting) from model and target motion samples.

    Args:
        key: PRNG key.
        model_features: generated (uncorrected) motions, features ``[n, T, 30]``.
        target_features: real motions, ``[m, T, 30]``.
        labels: optional class labels of ``model_features``.
        backend: ``physics.BACKENDS``.
        settings: corrector settings.
        **kwargs: passed on to ``theory.effective_gamma.effective_gamma``.
    """
    from theory.effective_gamma import effective_gamma as estimator

    corrector = ph.make_corrector(math.inf, settings=settings, backend=backend)
    flat_model = model_features.reshape(model_features.shape[0], -1)
    flat_target = target_features.reshape(target_features.shape[0], -1)
    return estimator(key, corrector, flat_model, flat_target, labels, **kwargs)


def plausibility_features(qpos: Float[Array, "B T 28"]) -> Float[Array, "B 4"]:
    """log1p of (penetration, floating, skating) in mm and of jerk, one row per motion."""
    from sims.motion import metrics as mt

    m = mt.plausibility(qpos)
    cols = [m["penetration"], m["floating"], m["skating"], m["jerk"]]
    return jnp.log1p(jnp.stack(cols, axis=-1))


def plausibility_gamma(
    key: jax.Array,
    model_qpos: Float[Array, "n T 28"],
    target_qpos: Float[Array, "m T 28"],
    *,
    backend: str = "mujoco",
    settings: hm.Settings = hm.CORRECTOR,
    **kwargs,
):
    """γ̂ of the physics corrector (γ = ∞ setting) in plausibility-metric space.

    The corrector runs once on ``model_qpos``; its output, the model and the target are
    mapped by ``plausibility_features`` and compared by ``theory.effective_gamma.effective_gamma``
    (its pair bootstrap resamples the fixed corrected rows; the corrector's randomness is not
    resampled).
    """
    from theory.effective_gamma import effective_gamma as estimator

    k_correct, k_est = jax.random.split(key)
    feats = rep.to_features(model_qpos)
    corrected = ph.make_corrector(math.inf, settings=settings, backend=backend)(k_correct, feats)
    fixed = plausibility_features(rep.to_qpos(corrected))
    return estimator(
        k_est,
        lambda k, x, labels=None: fixed.astype(x.dtype),
        plausibility_features(model_qpos),
        plausibility_features(target_qpos),
        **kwargs,
    )
