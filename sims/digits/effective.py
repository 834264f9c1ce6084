"""Hook: the effective correction strength γ̂ of the K-means corrector (paper App. C).

The estimator lives in ``theory.constants.effective_gamma`` (phase-diagram issue). Here we
feed it the LeNet features (evaluator space) of: the model's samples (p_θ), the same
samples after correction (Π(X)), and real held-out images (p_θ* stand-in). When the
estimator is not available in this checkout, ``for_run`` returns ``{"status": ...}``
saying so, and nothing else changes.
"""

from __future__ import annotations

import jax
import numpy as np


def estimator():
    """``theory.constants.effective_gamma`` if this checkout has it, else None."""
    try:
        from theory.constants import effective_gamma
    except ImportError:
        return None
    return effective_gamma


def effective_gamma_features(
    key: jax.Array,
    model_features: np.ndarray,
    corrected_features: np.ndarray,
    real_features: np.ndarray,
    labels: np.ndarray | None = None,
) -> dict:
    """γ̂ in feature space: the corrector maps the model's feature rows to the corrected ones.

    The corrector handed to the estimator returns the precomputed corrected features of
    the batch it is given (row i of ``model_features`` ↦ row i of ``corrected_features``),
    so it must be called on exactly ``model_features``.
    """
    fn = estimator()
    if fn is None:
        return {"status": "theory.constants.effective_gamma not in this checkout (hook only)"}
    import jax.numpy as jnp

    model = jnp.asarray(model_features, jnp.float32)
    corrected = jnp.asarray(corrected_features, jnp.float32)

    def corrector(key, x, labels=None, *, mask=None):
        del key, labels, mask
        if x.shape != corrected.shape:
            raise ValueError("the feature-space corrector only maps the batch it was built for")
        return corrected

    out = fn(key, corrector, model, jnp.asarray(real_features, jnp.float32), labels=labels)
    return {"status": "ok", **{k: np.asarray(v).tolist() for k, v in dict(out).items()}}


def for_run(cfg, out: dict) -> dict | None:
    """γ̂ of the corrector on the last-generation samples of the largest-λ iterative chain."""
    from sims.digits import evaluator, loop

    if estimator() is None:
        return {"status": "theory.constants.effective_gamma not in this checkout (hook only)"}
    s = out["setup"]
    lam = max(cfg.lams)
    imgs, labels = out["final_samples"][f"iterative_lam{lam:g}"]
    key = jax.random.key(cfg.seed + 4242)
    corrected = np.asarray(loop.corrector_for(cfg, s)(key, imgs, labels))
    fm, _ = evaluator.features_and_logits(s.classifier, imgs)
    fc, _ = evaluator.features_and_logits(s.classifier, corrected)
    return effective_gamma_features(jax.random.fold_in(key, 1), fm, fc, s.ref_features, labels)
