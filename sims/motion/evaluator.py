"""Motion–text evaluator: contrastive encoders and the HumanML3D metrics (paper §4, Fig. 4).

The paper scores generated motions with the HumanML3D evaluator (Guo et al. 2022): a motion
encoder and a text encoder trained contrastively on the real data, then FID, Diversity,
Matching score and R-precision in their shared embedding space. No pretrained language
model or evaluator is available offline, so ours is trained here, once per dataset, on the
templated descriptions of ``sims.motion.dataset``:

* **Tokenizer** — lower-case words (punctuation dropped), a vocabulary of the words of the
  training texts (sorted, so deterministic), ``<pad>`` = 0, ``<unk>`` = 1, fixed length.
* **Text encoder** — token + position embeddings, a per-token MLP, masked mean pooling,
  a linear map to the latent.
* **Motion encoder** — per-feature standardisation (training-set mean and std), three 1-D
  temporal convolutions (the last two with stride 2), mean and max pooling over time, a
  linear map to the latent.
* Both embeddings are L2-normalised; training minimises the symmetric InfoNCE loss
  (CLIP; the HumanML3D evaluator is trained contrastively too) with a learned temperature,
  a fixed number of Adam steps on random batches, the whole loop one jitted ``lax.scan``.

All distances are Euclidean in this normalised space (so in [0, 2]): they are not
numerically comparable with HumanML3D's published values, only between arms and
generations of our runs. Networks run in JAX's default float32; the
statistics run in float64 NumPy with the digit evaluator's Fréchet helpers.

Trained weights are cached under ``$SCSC_CACHE/motion`` (the dataset's cache directory) by
a content hash of the dataset config (``dataset.content_hash``), this config and
``EVALUATOR_VERSION``; writes are atomic (temp file, then rename).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int
from threadpoolctl import threadpool_limits

from sims.common import optim, results
from sims.common.metrics import diversity, fid, fid_bootstrap
from sims.motion import dataset as ds
from sims.motion.representation import N_FEATURES
from sims.motion.text import Tokenizer

__all__ = [
    "EVALUATOR_VERSION",
    "R_BATCH",
    "Config",
    "Encoders",
    "Evaluator",
    "Tokenizer",
    "diversity_ci",
    "embed_motions",
    "embed_texts",
    "evaluate",
    "info_nce",
    "load",
    "matching_score",
    "mean_ci",
    "plausibility_of",
    "r_precision",
    "train",
]

EVALUATOR_VERSION = 1
R_BATCH = 32  # HumanML3D: each motion's own description among 31 others
F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class Config:
    """Evaluator architecture and training.

    Attributes:
        max_len: tokens per description (longer ones are truncated; the dataset's longest
            template has 15 words).
        embed: token embedding width.
        width: channels of the motion convolutions.
        latent: width of the shared embedding space.
        kernel: temporal kernel size of the convolutions (odd).
        steps: Adam steps.
        batch: motion–text pairs per step.
        lr: Adam learning rate.
        seed: initialisation and batch sampling.
    """

    max_len: int = 24
    embed: int = 64
    width: int = 64
    latent: int = 64
    kernel: int = 5
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        for name in ("max_len", "embed", "width", "latent", "steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
        if not isinstance(self.kernel, int) or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd integer >= 1; got {self.kernel!r}")
        if not isinstance(self.batch, int) or self.batch < 2:
            raise ValueError(f"batch must be an integer >= 2 (contrastive); got {self.batch!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}")

    @classmethod
    def smoke(cls) -> Config:
        """A few seconds on CPU; still separates the dataset's classes."""
        return cls(embed=32, width=32, latent=32, steps=200, batch=32, lr=3e-3)


# ------------------------------------------------------------------ tokenizer


# ------------------------------------------------------------------ networks


def _normalise(z):
    return z / jnp.sqrt(jnp.sum(z * z, axis=-1, keepdims=True) + 1e-12)


class Encoders(eqx.Module):
    """Text and motion encoders into one L2-normalised latent space, plus the temperature.

    ``feat_mean`` / ``feat_std`` standardise the motion features; they are fixed at the
    training set's statistics (gradients are stopped).
    """

    token: eqx.nn.Embedding
    position: Float[Array, "L e"]
    text_mlp: eqx.nn.MLP
    text_out: eqx.nn.Linear
    convs: tuple[eqx.nn.Conv1d, ...]
    motion_out: eqx.nn.Linear
    log_scale: Float[Array, ""]
    feat_mean: Float[Array, " d"]
    feat_std: Float[Array, " d"]

    def __init__(self, cfg: Config, vocab_size: int, feat_mean, feat_std, *, key):
        k = jax.random.split(key, 8)
        e, w, pad = cfg.embed, cfg.width, cfg.kernel // 2
        self.token = eqx.nn.Embedding(vocab_size, e, key=k[0])
        self.position = 0.02 * jax.random.normal(k[1], (cfg.max_len, e))
        self.text_mlp = eqx.nn.MLP(e, e, 2 * e, 1, activation=jax.nn.gelu, key=k[2])
        self.text_out = eqx.nn.Linear(e, cfg.latent, key=k[3])
        self.convs = (
            eqx.nn.Conv1d(N_FEATURES, w, cfg.kernel, padding=pad, key=k[4]),
            eqx.nn.Conv1d(w, w, cfg.kernel, stride=2, padding=pad, key=k[5]),
            eqx.nn.Conv1d(w, w, cfg.kernel, stride=2, padding=pad, key=k[6]),
        )
        self.motion_out = eqx.nn.Linear(2 * w, cfg.latent, key=k[7])
        self.log_scale = jnp.asarray(np.log(10.0))
        self.feat_mean = jnp.asarray(feat_mean)
        self.feat_std = jnp.asarray(feat_std)

    def text(self, ids: Int[Array, " L"], mask: Bool[Array, " L"]) -> Float[Array, " z"]:
        """Embedding of one tokenised description."""
        h = jax.vmap(self.token)(ids) + self.position
        h = h + jax.vmap(self.text_mlp)(h)
        m = mask.astype(h.dtype)[:, None]
        pooled = jnp.sum(h * m, 0) / jnp.maximum(jnp.sum(m), 1.0)
        return _normalise(self.text_out(pooled))

    def motion(self, x: Float[Array, "T d"]) -> Float[Array, " z"]:
        """Embedding of one motion's features ``[T, 30]``."""
        mean = jax.lax.stop_gradient(self.feat_mean)
        std = jax.lax.stop_gradient(self.feat_std)
        h = ((x - mean) / std).T
        for conv in self.convs:
            h = jax.nn.gelu(conv(h))
        pooled = jnp.concatenate([h.mean(1), h.max(1)])
        return _normalise(self.motion_out(pooled))


def info_nce(
    text_z: Float[Array, "b z"], motion_z: Float[Array, "b z"], log_scale: Float[Array, ""]
) -> Float[Array, ""]:
    """Symmetric InfoNCE (CLIP): cross-entropy of pair i against the batch, both ways.

    The scale exp(log_scale) is clipped at 100, as CLIP clips its learned temperature.
    """
    scale = jnp.exp(jnp.minimum(log_scale, jnp.log(100.0).astype(log_scale.dtype)))
    logits = scale * text_z @ motion_z.T
    target = jnp.arange(logits.shape[0])
    a = optax.softmax_cross_entropy_with_integer_labels(logits, target).mean()
    b = optax.softmax_cross_entropy_with_integer_labels(logits.T, target).mean()
    return (a + b) / 2


def _loss(params, static, ids, mask, x):
    model = eqx.combine(params, static)
    tz = jax.vmap(model.text)(ids, mask)
    mz = jax.vmap(model.motion)(x)
    return info_nce(tz, mz, model.log_scale)


@partial(jax.jit, static_argnames=("static", "opt", "steps", "batch"))
def _train(params, static, opt, key, ids, mask, x, *, steps: int, batch: int):
    state = opt.init(params)

    def step(carry, k):
        p, s = carry
        idx = jax.random.choice(k, x.shape[0], (batch,), replace=False)
        lv, g = jax.value_and_grad(_loss)(p, static, ids[idx], mask[idx], x[idx])
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), lv

    (params, _), losses = jax.lax.scan(step, (params, state), jax.random.split(key, steps))
    return params, losses


# ------------------------------------------------------------------ training and cache


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """A trained evaluator.

    Attributes:
        model: the encoders (float32).
        tokenizer: the tokenizer of the training texts.
        centroids: per-class mean motion embedding of the training motions, ``[classes, z]``
            (nearest centroid is the class recognition rule).
        losses: the training loss per step.
        config: the evaluator config.
    """

    model: Encoders
    tokenizer: Tokenizer
    centroids: np.ndarray
    losses: np.ndarray
    config: Config


def _check_features(features, name: str = "features") -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 3 or x.shape[-1] != N_FEATURES or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape [n >= 1, T >= 1, {N_FEATURES}]; got {tuple(x.shape)}"
        )
    return x


def _check_labels(labels, n: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be {n} integers; got shape {y.shape}, dtype {y.dtype}")
    if y.min() < 0 or y.max() >= len(ds.CLASSES):
        raise ValueError(f"{name} must lie in [0, {len(ds.CLASSES)}); got {y.min()}..{y.max()}")
    return y


def _check_texts(texts, n: int, name: str = "texts") -> np.ndarray:
    t = np.asarray(texts, dtype=object)
    if t.shape != (n,):
        raise ValueError(f"{name} must be {n} strings (one per motion); got shape {t.shape}")
    return t


def _template(cfg: Config, tok: Tokenizer, x: np.ndarray) -> Encoders:
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    std = np.maximum(flat.std(0), 1e-3)  # constant features (none today) would divide by 0
    model = Encoders(
        cfg, tok.size, flat.mean(0), std, key=jax.random.fold_in(jax.random.key(cfg.seed), 0)
    )
    return model


def train(
    features: Float[np.ndarray, "n T d"],
    texts,
    labels: Int[np.ndarray, " n"],
    cfg: Config = Config(),
) -> Evaluator:
    """Trains the encoders contrastively on real motions and their descriptions (no cache).

    Args:
        features: real motion features ``[n, T, 30]`` (``n >= cfg.batch``).
        texts: their descriptions, ``n`` strings.
        labels: their class indices (for the class centroids).
        cfg: architecture and training.

    Returns:
        The trained ``Evaluator``.
    """
    x = _check_features(features)
    n = x.shape[0]
    t = _check_texts(texts, n)
    y = _check_labels(labels, n)
    if n < cfg.batch:
        raise ValueError(f"features must hold at least cfg.batch = {cfg.batch} motions; got {n}")
    tok = Tokenizer.from_texts(t, cfg.max_len)
    model = _template(cfg, tok, x)
    ids, mask = tok.encode(t)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    params, losses = _train(
        params,
        static,
        optim.adam(cfg.lr),
        jax.random.fold_in(jax.random.key(cfg.seed), 1),
        jnp.asarray(ids),
        jnp.asarray(mask),
        jnp.asarray(x, F32),
        steps=cfg.steps,
        batch=cfg.batch,
    )
    model = eqx.combine(params, static)
    return _finish(model, tok, x, y, np.asarray(losses, np.float32), cfg)


def _finish(model, tok, x, y, losses, cfg) -> Evaluator:
    z = _embed_motions(model, x)
    centroids = np.stack([z[y == c].mean(0) for c in range(len(ds.CLASSES))])
    return Evaluator(model, tok, centroids, losses, cfg)


def content_hash(data_cfg: ds.Config, cfg: Config) -> str:
    """Hash of what the trained evaluator depends on (dataset content hash, this config,
    ``EVALUATOR_VERSION``)."""
    blob = json.dumps(
        {
            "dataset": ds.content_hash(data_cfg),
            "config": results.config_dict(cfg),
            "evaluator": EVALUATOR_VERSION,
        },
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load(data_cfg: ds.Config, cfg: Config = Config(), cache: bool = True) -> Evaluator:
    """The evaluator trained on the dataset ``data_cfg``, from the cache when present.

    Args:
        data_cfg: the real dataset (loaded through ``dataset.load``, itself cached).
        cfg: architecture and training.
        cache: read and write ``$SCSC_CACHE/motion/evaluator_<hash>.npz``.

    Returns:
        The trained ``Evaluator``; a cached one has bit-identical parameters.
    """
    if not isinstance(data_cfg, ds.Config):
        raise ValueError(f"data_cfg must be a dataset.Config; got {type(data_cfg).__name__}")
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be an evaluator.Config; got {type(cfg).__name__}")
    data = ds.load(data_cfg)
    path = ds._cache_dir() / f"evaluator_{content_hash(data_cfg, cfg)}.npz"
    if cache and path.exists():
        x = _check_features(data["features"])
        tok = Tokenizer.from_texts(data["texts"], cfg.max_len)
        params, static = eqx.partition(_template(cfg, tok, x), eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        with np.load(path) as f:
            stored = [f[f"leaf_{i}"] for i in range(len(leaves))]
            losses = f["losses"]
        for a, b in zip(leaves, stored, strict=True):
            if np.shape(a) != b.shape:
                raise ValueError(f"cached evaluator {path} does not match the config; delete it")
        params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(b) for b in stored])
        model = eqx.combine(params, static)
        return _finish(model, tok, x, data["labels"], losses, cfg)
    ev = train(data["features"], data["texts"], data["labels"], cfg)
    if cache:
        leaves = jax.tree_util.tree_leaves(eqx.filter(ev.model, eqx.is_array))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp, losses=ev.losses, **{f"leaf_{i}": np.asarray(a) for i, a in enumerate(leaves)}
        )
        os.replace(tmp, path)
    return ev


# ------------------------------------------------------------------ embeddings


@eqx.filter_jit
def _motion_batch(model: Encoders, x):
    return jax.vmap(model.motion)(x)


@eqx.filter_jit
def _text_batch(model: Encoders, ids, mask):
    return jax.vmap(model.text)(ids, mask)


def _chunks(n: int, chunk: int):
    return [(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def _embed_motions(model: Encoders, x: np.ndarray, chunk: int = 256) -> np.ndarray:
    # Fixed-size chunks (the last one padded) so every call reuses one compiled shape.
    out = []
    for lo, hi in _chunks(len(x), chunk):
        part = x[lo:hi]
        size = chunk if len(x) > chunk else len(x)
        pad = np.concatenate([part, np.repeat(part[-1:], size - len(part), 0)])
        out.append(np.asarray(_motion_batch(model, jnp.asarray(pad, F32)), np.float64)[: hi - lo])
    return np.concatenate(out)


def embed_motions(ev: Evaluator, features: Float[np.ndarray, "n T d"]) -> np.ndarray:
    """Motion embeddings ``[n, latent]`` (float64 NumPy, unit norm unless non-finite)."""
    return _embed_motions(ev.model, _check_features(features))


def embed_texts(ev: Evaluator, texts) -> np.ndarray:
    """Description embeddings ``[n, latent]`` (float64 NumPy, unit norm)."""
    ids, mask = ev.tokenizer.encode(texts)
    return np.asarray(_text_batch(ev.model, jnp.asarray(ids), jnp.asarray(mask)), np.float64)


# ------------------------------------------------------------------ metrics (float64 NumPy)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def matching_score(motion_z: np.ndarray, text_z: np.ndarray) -> float:
    """Mean distance between each motion's embedding and its own description's."""
    return float(np.mean(np.linalg.norm(motion_z - text_z, axis=1)))


def r_precision(
    motion_z: np.ndarray, text_z: np.ndarray, rng: np.random.Generator, top: int = 3
) -> np.ndarray:
    """R-precision top-1..``top`` in shuffled batches of ``R_BATCH`` pairs (HumanML3D).

    For each motion, its own description and the other 31 of its batch are ranked by
    distance to the motion; top-k counts the own one among the k closest. An incomplete
    last batch is dropped (as HumanML3D does). The dataset's descriptions are templated,
    so a batch may hold the very same text twice: ties are counted in the motion's favour
    (the rank is the number of strictly closer descriptions), since no evaluator can tell
    identical descriptions apart.

    Returns:
        ``[top]`` fractions, non-decreasing.
    """
    n = len(motion_z)
    if n < R_BATCH:
        raise ValueError(f"motions must number at least {R_BATCH} for R-precision; got {n}")
    order = rng.permutation(n)[: n // R_BATCH * R_BATCH].reshape(-1, R_BATCH)
    hits = np.zeros(top)
    for idx in order:
        d = _pairwise(motion_z[idx], text_z[idx])
        rank = np.sum(d < np.diag(d)[:, None], axis=1)
        hits += [(rank < k).sum() for k in range(1, top + 1)]
    return hits / order.size


def class_accuracy(ev: Evaluator, motion_z: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of motions whose nearest class centroid is their conditioning class."""
    pred = np.argmin(_pairwise(motion_z, ev.centroids), axis=1)
    return float(np.mean(pred == labels))


def _percentile_ci(vals: np.ndarray, level: float = 0.95) -> list[float]:
    a = (1 - level) / 2
    return [float(v) for v in np.quantile(vals, [a, 1 - a])]


def mean_ci(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> list[float]:
    """95 % percentile-bootstrap interval of the mean of per-motion ``values``."""
    v = np.asarray(values, np.float64)
    idx = rng.integers(0, len(v), (n_boot, len(v)))
    return _percentile_ci(v[idx].mean(1))


def diversity_ci(z: np.ndarray, rng: np.random.Generator, n_boot: int) -> list[float]:
    """95 % percentile-bootstrap interval of ``diversity`` (motions resampled; pairs of a
    motion with its own copy are left out, so a resample is not biased toward 0)."""
    d = _pairwise(z, z)
    vals = np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, len(z), len(z))
        distinct = i[:, None] != i[None, :]
        vals[b] = d[np.ix_(i, i)][distinct].mean()
    return _percentile_ci(vals)


def _rng(key: jax.Array) -> np.random.Generator:
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


PLAUSIBILITY = ("penetration", "floating", "skating", "phys_err", "fell_rate")


def plausibility_of(features: Float[np.ndarray, "n T d"]) -> dict[str, np.ndarray]:
    """Per-motion plausibility metrics (``metrics.plausibility``, mm) of feature motions."""
    from sims.motion import metrics
    from sims.motion import representation as rep

    qpos = rep.to_qpos(jnp.asarray(features, F32))
    out = {k: np.asarray(v, np.float64) for k, v in metrics.plausibility(qpos).items()}
    out["fell_rate"] = out.pop("fell")
    return out


def evaluate(
    ev: Evaluator,
    key: jax.Array,
    features: Float[np.ndarray, "n T d"],
    texts,
    labels: Int[np.ndarray, " n"],
    real_features: Float[np.ndarray, "m T d"],
    n_boot: int = 100,
) -> dict[str, float | list[float] | bool]:
    """All per-generation metrics of a set of motions against real ones.

    Args:
        ev: the trained evaluator.
        key: PRNG key (R-precision batches, bootstraps, real split).
        features: the motions to score, ``[n, T, 30]`` with ``n >= 32``.
        texts: their conditioning descriptions.
        labels: their conditioning classes.
        real_features: real motions ``[m, T', 30]``, ``m >= 4`` (the FID reference).
        n_boot: bootstrap resamples for the intervals (>= 10).

    Returns:
        ``fid`` (against all real motions) with its bootstrap ``fid_ci`` (95 %, shift
        removed: ``sims.common.metrics.fid_bootstrap``); ``fid_floor``: FID between two
        disjoint random halves of the real motions of ``fid_floor_n = min(n, m // 2)``
        motions each (the value a perfect generator reaches at that sample size);
        ``diversity`` (mean distance over all pairs, the expectation of HumanML3D's
        random-pair estimate) with ``diversity_ci`` and ``diversity_real``; ``matching``
        with ``matching_ci``; ``r_precision`` [top-1, top-2, top-3]; ``class_accuracy``;
        the plausibility means ``penetration``, ``floating``, ``skating``, ``phys_err``
        (mm; their sum, the paper's physical error) with ``phys_err_ci``, and
        ``fell_rate``; ``finite``: False when some embedding was NaN/inf (then every
        evaluator metric is NaN; a diverged generator is a result, not a crash). All
        intervals are 95 % bootstrap intervals over the scored motions.
    """
    x = _check_features(features)
    n = x.shape[0]
    t = _check_texts(texts, n)
    y = _check_labels(labels, n)
    real = _check_features(real_features, "real_features")
    if n < R_BATCH:
        raise ValueError(f"features must hold at least {R_BATCH} motions (R-precision); got {n}")
    if real.shape[0] < 4:
        raise ValueError(f"real_features must hold at least 4 motions; got {real.shape[0]}")
    if not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10; got {n_boot!r}")
    mz = embed_motions(ev, x)
    tz = embed_texts(ev, t)
    rz = embed_motions(ev, real)
    k_r, k_boot, k_split, k_ci = (_rng(k) for k in jax.random.split(key, 4))
    half = min(n, real.shape[0] // 2)
    split = k_split.permutation(real.shape[0])
    nan = float("nan")
    phys = plausibility_of(x) if np.isfinite(x).all() else None
    out = {k: (nan if phys is None else float(np.mean(phys[k]))) for k in PLAUSIBILITY}
    out["phys_err_ci"] = [nan, nan] if phys is None else mean_ci(phys["phys_err"], k_ci, n_boot)
    if not (np.isfinite(mz).all() and np.isfinite(rz).all()):
        return {
            "fid": nan,
            "fid_ci": [nan, nan],
            "fid_floor": nan,
            "fid_floor_n": half,
            "diversity": nan,
            "diversity_ci": [nan, nan],
            "diversity_real": nan,
            "matching": nan,
            "matching_ci": [nan, nan],
            "r_precision": [nan] * 3,
            "class_accuracy": nan,
            **out,
            "finite": False,
        }
    # FID is clipped at 0: identical sets give round-off of either sign (~1e-15).
    # Single-threaded BLAS: on a shared CPU its spinning threads slow the bootstrap ~10×
    # (measured for the digit evaluator).
    with threadpool_limits(1):
        dist = np.linalg.norm(mz - tz, axis=1)
        return {
            "fid": max(fid(mz, rz), 0.0),
            "fid_ci": list(fid_bootstrap(mz, rz, k_boot, n_boot)),
            "fid_floor": max(fid(rz[split[:half]], rz[split[half : 2 * half]]), 0.0),
            "fid_floor_n": half,
            "diversity": diversity(mz),
            "diversity_ci": diversity_ci(mz, k_ci, n_boot),
            "diversity_real": diversity(rz),
            "matching": float(np.mean(dist)),
            "matching_ci": mean_ci(dist, k_ci, n_boot),
            "r_precision": r_precision(mz, tz, k_r).tolist(),
            "class_accuracy": class_accuracy(ev, mz, y),
            **out,
            "finite": True,
        }
