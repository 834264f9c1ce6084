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
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.common import optim, runner
from sims.common.checkpoint import ChainState
from sims.digits import data as data_mod
from sims.digits import ddpm, evaluator, kmeans
from sims.digits.config import ARMS, METRICS, PAPER_LAMS, Config

__all__ = [
    "ARMS",
    "METRICS",
    "PAPER_LAMS",
    "Chain",
    "Config",
    "DigitsLoop",
    "Setup",
    "chains",
    "n_synth",
    "prepare",
    "run",
]

GROUP = "gen0"  # the one generation-0 model every chain starts from


class Chain(NamedTuple):
    """One chain: ``name`` (file name), ``arm``, ``lam`` (None: the baseline), ``index``
    (its position, folded into its keys) and ``group`` (its generation 0)."""

    name: str
    arm: str
    lam: float | None
    index: int = 0
    group: str = GROUP


def chains(cfg: Config) -> list[Chain]:
    """Every chain; the baseline is one chain shared by all λ."""
    specs = [("baseline", "baseline", None)]
    for lam in cfg.lams:
        for arm in ("iterative", "corrected"):
            specs.append((f"{arm}_lam{lam:g}", arm, lam))
    return [Chain(name, arm, lam, i) for i, (name, arm, lam) in enumerate(specs)]


def n_synth(lam: float | None, n_real: int) -> int:
    """⌈λn⌉ synthetic images per generation (the paper's digit protocol: ⌈λ·12000⌉; the
    Gaussian and motion loops use ⌊λn⌋, ``theory.operators.n_synthetic``); 0 for the
    baseline."""
    return 0 if lam is None else math.ceil(lam * n_real - 1e-9)


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


def corrector_for(cfg: Config, s: Setup):
    """The ``corrected`` arm's corrector: K-means snapping of strength ``cfg.gamma``."""
    return kmeans.kmeans_corrector(s.centroids, cfg.gamma, levels=s.data.levels)


@dataclasses.dataclass(frozen=True)
class DigitsLoop:
    """The digit loop as a ``runner.ChainExperiment``.

    Chain arrays: ``params``, ``opt_state`` (constant-rate Adam, carried across
    generations), ``pool`` and ``pool_labels`` (the last generation's class-balanced
    samples). History: ``metrics`` (generation 0 first) and ``losses`` (mean loss per
    fine-tuning generation; generation 0's training losses in the group state).
    """

    cfg: Config
    setup: Setup
    finetune: optax.GradientTransformation

    @classmethod
    def create(cls, cfg: Config, setup: Setup) -> DigitsLoop:
        return cls(cfg, setup, optim.adam(cfg.finetune_lr))

    def chains(self) -> list[Chain]:
        return chains(self.cfg)

    @property
    def _n(self) -> int:
        return len(self.setup.data.y_train)

    def _arrays(self, params, pool, labels) -> dict:
        return {
            "params": params,
            "opt_state": self.finetune.init(params),
            "pool": pool,
            "pool_labels": labels,
        }

    def template(self, group: str) -> ChainState:
        del group
        s, size = self.setup, _pool_size(self.cfg, self._n)
        params, _ = ddpm.split(
            ddpm.init_model(jax.random.key(0), s.data.shape[-1], self.cfg.channels)
        )
        pool = np.zeros((size, *s.data.shape), np.float32)
        return ChainState(self._arrays(params, pool, _pool_labels(size)))

    def generation_zero(self, group: str) -> ChainState:
        """Trains the shared model (Adam, lr decayed linearly to 0), samples, evaluates."""
        del group
        cfg, s = self.cfg, self.setup
        key = jax.random.fold_in(jax.random.key(cfg.seed), 1_000_003)
        k_init, k_train, k_pool = jax.random.split(key, 3)
        params, _ = ddpm.split(ddpm.init_model(k_init, s.data.shape[-1], cfg.channels))
        opt = optim.adam_linear_decay(cfg.lr, cfg.gen0_steps)
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
        pool, labels = _draw(cfg, s, params, k_pool, _pool_size(cfg, self._n))
        metrics = _evaluate(cfg, s, pool, labels, 0, 0)
        history = {"metrics": [metrics], "losses": losses.tolist()}
        return ChainState(self._arrays(params, pool, labels), 0, history)

    def start(self, gen0: ChainState, chain: Chain) -> ChainState:
        del chain
        a = gen0.arrays
        arrays = self._arrays(a["params"], a["pool"], a["pool_labels"])
        history = {"metrics": list(gen0.history["metrics"]), "losses": []}
        return ChainState(arrays, 0, history, gen0.run_hash)

    def step(self, state: ChainState, chain: Chain) -> tuple[ChainState, dict[str, float]]:
        """One generation: synthetic (+ correction) → one epoch → sample → evaluate."""
        cfg, s, a = self.cfg, self.setup, state.arrays
        t = state.t + 1
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), chain.index), t)
        k_corr, k_train, k_pool = jax.random.split(key, 3)
        k = n_synth(chain.lam, self._n)
        timing = {}
        t0 = time.perf_counter()
        x, y = s.data.x_train, s.data.y_train
        if k:
            synth, synth_y = a["pool"][:k], a["pool_labels"][:k]
            if chain.arm == "corrected":
                synth = np.asarray(
                    corrector_for(cfg, s)(k_corr, jnp.asarray(synth), jnp.asarray(synth_y))
                )
            x, y = np.concatenate([x, synth]), np.concatenate([y, synth_y])
        timing["correction"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        params, opt_state, losses = ddpm.train_steps(
            a["params"],
            a["opt_state"],
            k_train,
            x,
            y,
            s.alpha_bar,
            static=s.static,
            optimizer=self.finetune,
            n_steps=cfg.finetune_epochs * -(-len(y) // cfg.batch),
            batch=cfg.batch,
            label_dropout=cfg.label_dropout,
        )
        jax.block_until_ready(params)
        timing["finetune"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool, labels = _draw(cfg, s, params, k_pool, _pool_size(cfg, self._n))
        timing["sampling"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = _evaluate(cfg, s, pool, labels, chain.index, t)
        timing["evaluation"] = time.perf_counter() - t0
        arrays = {"params": params, "opt_state": opt_state, "pool": pool, "pool_labels": labels}
        return state.advance(arrays, metrics=metrics, losses=float(np.mean(losses))), timing

    def status(self, state: ChainState) -> str:
        return f"FID {state.history['metrics'][-1]['fid']:.2f}"


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
    t_start = time.perf_counter()
    s = prepare(cfg, cache_dir)
    setup_s = time.perf_counter() - t_start
    states, gen0, timing = runner.run_chains(
        DigitsLoop.create(cfg, s),
        cfg,
        ckpt_dir,
        generations=cfg.generations,
        resume=resume,
        progress=progress,
        desc="digits",
        on_checkpoint=on_checkpoint,
    )
    timing = {"setup": setup_s, **timing, "total": time.perf_counter() - t_start}
    g0 = gen0[GROUP]
    results = {}
    for lam in cfg.lams:
        per = {}
        for arm in ARMS:
            name = "baseline" if arm == "baseline" else f"{arm}_lam{lam:g}"
            ms = states[name].history["metrics"]
            per[arm] = {m: [g[m] for g in ms] for m in METRICS}
        results[f"{lam:g}"] = per

    def samples(st: ChainState):
        return st.arrays["pool"][: cfg.n_eval], st.arrays["pool_labels"][: cfg.n_eval]

    return {
        "results": results,
        "floor": s.floor,
        "classifier_accuracy": s.classifier_accuracy,
        "losses": {name: st.history["losses"] for name, st in states.items()},
        "gen0_losses": g0.history["losses"][-50:],
        "timing": timing,
        "final_samples": {name: samples(st) for name, st in states.items()},
        "gen0_samples": samples(g0),
        "centroids": s.centroids,
        "levels": s.data.levels,
        "n_train": len(s.data.y_train),
        "n_test": len(s.data.y_test),
        "setup": s,
    }
