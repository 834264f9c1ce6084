"""LeNet-style evaluator: features, FID (+ bootstrap CI, real-vs-real floor), KID, diversity,
class accuracy.

Paper: §4 "Digits toy": FID on the 84-d penultimate layer of a LeNet trained on MNIST,
generated vs test images, plus a diversity score. The paper used 100 generated samples;
we use ≥ 1,000 where the set allows, and always report the floor (real vs real at the same
sample size) and KID (unbiased) beside FID. Networks run in float32; the statistics are
computed in float64 NumPy.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import partial
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int
from threadpoolctl import threadpool_limits

from sims.common import optim
from sims.common.metrics import diversity, fid, fid_bootstrap, kid

F32 = jnp.float32


class LeNet(eqx.Module):
    """LeNet-5 shape: two conv + average-pool stages, then 120 → 84 → 10.

    28×28 uses 5×5 kernels (the classic layout); 8×8 uses 3×3 kernels with padding so the
    two pooling stages fit. ``features`` is the 84-d penultimate layer.
    """

    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    fc1: eqx.nn.Linear
    fc2: eqx.nn.Linear
    fc3: eqx.nn.Linear

    def __init__(self, side: int, *, key):
        k = jax.random.split(key, 5)
        small = side < 16
        ks, pad2 = (3, 1) if small else (5, 0)
        self.conv1 = eqx.nn.Conv2d(1, 6, ks, padding=ks // 2, key=k[0])
        self.conv2 = eqx.nn.Conv2d(6, 16, ks, padding=pad2, key=k[1])
        s = side // 2
        s = (s + 2 * pad2 - ks + 1) // 2
        self.fc1 = eqx.nn.Linear(16 * s * s, 120, key=k[2])
        self.fc2 = eqx.nn.Linear(120, 84, key=k[3])
        self.fc3 = eqx.nn.Linear(84, 10, key=k[4])

    @staticmethod
    def _pool(h):
        c, a, b = h.shape
        return h[:, : a // 2 * 2, : b // 2 * 2].reshape(c, a // 2, 2, b // 2, 2).mean((2, 4))

    def features(self, x: Float[Array, "1 h w"]) -> Float[Array, " 84"]:
        h = self._pool(jax.nn.relu(self.conv1(x)))
        h = self._pool(jax.nn.relu(self.conv2(h)))
        return jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(h.reshape(-1)))))

    def __call__(self, x):
        return self.fc3(self.features(x))


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    steps: int = 3000
    batch: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def _fingerprint(x: np.ndarray, y: np.ndarray, cfg: ClassifierConfig) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    h.update(np.ascontiguousarray(y, np.int32).tobytes())
    h.update(repr(dataclasses.astuple(cfg)).encode())
    return h.hexdigest()[:16]


@partial(jax.jit, static_argnames=("static", "opt", "steps", "batch"))
def _train(params, static, opt, key, x, y, *, steps: int, batch: int):
    state = opt.init(params)

    def loss(p, xb, yb):
        logits = jax.vmap(eqx.combine(p, static))(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry, k):
        p, s = carry
        idx = jax.random.randint(k, (batch,), 0, x.shape[0])
        k2 = jax.random.fold_in(k, 1)
        # One-pixel random shifts: a little augmentation so features generalise.
        shift = jax.random.randint(k2, (2,), -1, 2)
        xb = jnp.roll(x[idx], shift, axis=(2, 3))
        lv, g = jax.value_and_grad(loss)(p, xb, y[idx])
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), lv

    (params, _), losses = jax.lax.scan(step, (params, state), jax.random.split(key, steps))
    return params, losses


def train_classifier(
    x: Float[np.ndarray, "n 1 h w"],
    y: Int[np.ndarray, " n"],
    cfg: ClassifierConfig = ClassifierConfig(),
    cache_dir: Path | None = None,
) -> LeNet:
    """Trains (or loads from ``cache_dir``, keyed by a content hash of data + config) a LeNet."""
    side = x.shape[-1]
    template = LeNet(side, key=jax.random.key(cfg.seed))
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"lenet_{side}_{_fingerprint(x, y, cfg)}.eqx"
        if path.exists():
            return eqx.tree_deserialise_leaves(path, template)
    params, static = eqx.partition(template, eqx.is_inexact_array)
    opt = optim.adamw(cfg.lr, cfg.weight_decay)
    params, _ = _train(
        params,
        static,
        opt,
        jax.random.key(cfg.seed + 1),
        jnp.asarray(x, F32),
        jnp.asarray(y, jnp.int32),
        steps=cfg.steps,
        batch=cfg.batch,
    )
    model = eqx.combine(params, static)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        eqx.tree_serialise_leaves(tmp, model)
        tmp.replace(path)
    return model


@eqx.filter_jit
def _feats_logits(model: LeNet, x):
    f = jax.vmap(model.features)(x)
    return f, jax.vmap(model.fc3)(f)


def features_and_logits(model: LeNet, x, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (float64 NumPy) and logits, computed in fixed-size chunks."""
    x = jnp.asarray(x, F32)
    fs, ls = [], []
    for i in range(0, x.shape[0], chunk):
        f, lg = _feats_logits(model, x[i : i + chunk])
        fs.append(np.asarray(f, np.float64))
        ls.append(np.asarray(lg, np.float64))
    return np.concatenate(fs), np.concatenate(ls)


def accuracy(model: LeNet, x, y) -> float:
    _, logits = features_and_logits(model, x)
    return float(np.mean(np.argmax(logits, 1) == np.asarray(y)))


def evaluate(
    model: LeNet,
    images,
    labels,
    ref_features: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = 100,
) -> dict[str, float | list[float]]:
    """All per-generation metrics of conditioned samples against the reference features.

    NumPy's BLAS runs single-threaded here: on a shared CPU its spinning threads made the
    bootstrap ~10× slower (measured).
    """
    f, logits = features_and_logits(model, images)
    with threadpool_limits(1):
        return _metrics(f, logits, labels, ref_features, rng, n_boot)


def _metrics(f, logits, labels, ref_features, rng, n_boot):
    return {
        "fid": fid(f, ref_features),
        "fid_ci": list(fid_bootstrap(f, ref_features, rng, n_boot)),
        "kid": kid(f, ref_features),
        "diversity": diversity(f),
        "class_accuracy": float(np.mean(np.argmax(logits, 1) == np.asarray(labels))),
    }
