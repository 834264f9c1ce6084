"""Effective correction strength γ̂ of the physics corrector (PAPER.md App. C criterion).

**Hook.** The estimator ``theory.constants.effective_gamma`` is built by the phase-diagram
issue and is not on this branch; ``effective_gamma`` below wires the physics corrector
into it in flattened motion-feature space and raises ``NotImplementedError`` until it
lands.
"""

from __future__ import annotations

import math

import jax
from jaxtyping import Array, Float

from sims.motion import humanoid as hm
from sims.motion import physics as ph

__all__ = ["effective_gamma"]


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
        **kwargs: passed on to ``theory.constants.effective_gamma``.
    """
    try:
        from theory.constants import effective_gamma as estimator
    except ImportError as e:
        raise NotImplementedError(
            "theory.constants.effective_gamma (phase-diagram issue) is not available on this "
            "branch; the motion γ̂ hook needs it"
        ) from e
    corrector = ph.make_corrector(math.inf, settings=settings, backend=backend)
    flat_model = model_features.reshape(model_features.shape[0], -1)
    flat_target = target_features.reshape(target_features.shape[0], -1)
    return estimator(key, corrector, flat_model, flat_target, labels, **kwargs)
