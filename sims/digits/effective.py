"""The effective correction strength γ̂ of the K-means corrector (paper App. C).

The estimator is ``theory.effective_gamma.effective_gamma``. We feed it the LeNet features
(the evaluator's space) of: the model's samples (p_θ), the same samples after the K-means
correction (Π(X)), and held-out real images (stand-in for p_θ*).

After a run: ``python -m sims.digits.effective out/digits_long`` writes
``effective_gamma.json`` into the run directory (generation-0 samples and the last
generation of the largest-λ iterative chain).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from theory.effective_gamma import effective_gamma


def _plain(out) -> dict:
    items = (
        {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
        if dataclasses.is_dataclass(out)
        else dict(out)
    )
    return {k: v if isinstance(v, str) else np.asarray(v).tolist() for k, v in items.items()}


def effective_gamma_features(
    key: jax.Array,
    model_features: np.ndarray,
    corrected_features: np.ndarray,
    real_features: np.ndarray,
    labels: np.ndarray | None = None,
    **kwargs,
) -> dict:
    """γ̂ in feature space: the corrector maps the model's feature rows to the corrected ones.

    The corrector handed to the estimator returns the precomputed corrected features of
    the batch it is given (row i of ``model_features`` ↦ row i of ``corrected_features``),
    so it is valid only for exactly ``model_features`` (the estimator applies it once).
    """
    model = jnp.asarray(model_features, jnp.float32)
    corrected = jnp.asarray(corrected_features, jnp.float32)

    def corrector(key, x, labels=None, *, mask=None):
        del key, labels, mask
        if x.shape != corrected.shape:
            raise ValueError("the feature-space corrector only maps the batch it was built for")
        return corrected

    out = effective_gamma(
        key, corrector, model, jnp.asarray(real_features, jnp.float32), labels, **kwargs
    )
    return {"status": "ok", **_plain(out)}


def for_samples(cfg, setup, images: np.ndarray, labels: np.ndarray, key: jax.Array) -> dict:
    """γ̂ of the run's corrector on given model samples, in the setup's LeNet feature space."""
    from sims.digits import evaluator, loop

    corrected = np.asarray(loop.corrector_for(cfg, setup)(key, images, labels))
    fm, _ = evaluator.features_and_logits(setup.classifier, images)
    fc, _ = evaluator.features_and_logits(setup.classifier, corrected)
    return effective_gamma_features(
        jax.random.fold_in(key, 1), fm, fc, setup.ref_features, np.asarray(labels)
    )


def for_run(cfg, out: dict) -> dict:
    """γ̂ on the last-generation samples of the largest-λ iterative chain of ``loop.run``."""
    lam = max(cfg.lams)
    imgs, labels = out["final_samples"][f"iterative_lam{lam:g}"]
    return {
        "samples": f"iterative_lam{lam:g}, generation {cfg.generations}",
        **for_samples(cfg, out["setup"], imgs, labels, jax.random.key(cfg.seed + 4242)),
    }


def from_run_dir(run_dir: Path) -> dict:
    """Recomputes γ̂ from a finished (or partial) run's checkpoints; writes effective_gamma.json."""
    from sims.common import checkpoint, results
    from sims.digits import loop

    run_dir = Path(run_dir)
    raw = json.loads((run_dir / "run.json").read_text())["config"]
    raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    raw["gamma"] = float(raw["gamma"])
    cfg = loop.Config(**raw)
    setup = loop.prepare(cfg, run_dir / "cache")
    lam = max(cfg.lams)
    payload = {"config": results.config_dict(cfg), "provenance": results.provenance(cfg)}
    key = jax.random.key(cfg.seed + 4242)
    chain = f"iterative_lam{lam:g}"
    template = loop.DigitsLoop.create(cfg, setup).template(loop.GROUP)
    for name, path in (
        ("generation 0", run_dir / f"{loop.GROUP}.npz"),
        (chain, run_dir / "chains" / f"{chain}.npz"),
    ):
        st = checkpoint.load(path, template)
        imgs, labels = st.arrays["pool"][: cfg.n_eval], st.arrays["pool_labels"][: cfg.n_eval]
        payload[name] = {"generation": st.t, **for_samples(cfg, setup, imgs, labels, key)}
    results.write_json(run_dir / "effective_gamma.json", payload, digits=6)
    return payload


if __name__ == "__main__":
    print(json.dumps(from_run_dir(Path(sys.argv[1])), indent=1, default=str))
