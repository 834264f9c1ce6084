"""The motion self-consuming loop on the shared runner: setup, the chains, collection.

Paper: §4 "Human motion", Algorithm 1, Figs. 1, 4, 5, 12–20. For every (n, seed) a shared
generation-0 model is trained on the first n real training motions; each later generation
of a chain is one jitted ``step.make_step`` call followed by the host-side evaluation.

Arms: ``baseline`` fine-tunes on the real motions only (⌊λn⌋ = 0, so it is one chain per
(n, seed), shared by every λ); ``iterative`` on real ∪ raw synthetic; ``corrected`` on
real ∪ corrected synthetic (``cfg.corrector``); for the runs in ``cfg.pd_runs`` also
``corrected_pd``, corrected by the ``pd`` tracker. The evaluation (``evaluator.evaluate``:
FID, Diversity, Matching, R-precision, class accuracy, physical error, with bootstrap CIs)
runs on the host after the step, against the held-out test motions.

Data: ``data`` (default 640 motions, seed 1) is split once into ``n_test`` held-out test
motions and a training pool; a run with n uses the pool's first n (nested subsets). The
evaluator is trained on an independent draw of the dataset (``evaluator_data``, seed 0),
so it has seen none of the loop's motions, as the HumanML3D evaluator is trained apart
from the generator.

Shapes are static: the real buffer holds the largest n of the run and the synthetic buffer
the largest ⌊λn⌋, with traced counts and masks, so all chains of an arm kind share one
compilation (λ, n and γ are traced values).

Randomness: chain ``name``, generation t uses ``fold_in(fold_in(key(seed), crc32(name)),
t)``; a resumed run equals an uninterrupted one (tested). Checkpoints are written
atomically after every generation of every chain (``sims.common.runner``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import optim, runner
from sims.common.checkpoint import ChainState
from sims.common.diffusion import respaced_timesteps
from sims.motion import dataset as ds
from sims.motion import drift as drift_mod
from sims.motion import evaluator as ev_mod
from sims.motion import generator as gen
from sims.motion.config import ARMS, PD_ARM, Config
from sims.motion.step import Counts, LoopData, Model, StepConfig, make_finetune, make_step
from sims.motion.text import Tokenizer
from theory import operators as ops

__all__ = [
    "Chain",
    "MotionLoop",
    "Setup",
    "chains",
    "checkpoint_samples",
    "n_synth",
    "prepare",
    "run",
]

F32 = jnp.float32


def n_synth(n: int, lam: float) -> int:
    """⌊λn⌋ synthetic motions per generation (paper: eq. (5); ``theory.operators.n_synthetic``)."""
    return int(ops.n_synthetic(lam, n))


class Chain(NamedTuple):
    """One chain: ``name`` (file name, folded into its keys), ``arm``, real-set size ``n``,
    ``lam`` (None: the baseline), ``seed``, synthetic count ``k`` and ``group`` (its
    generation-0 model)."""

    name: str
    arm: str
    n: int
    lam: float | None
    seed: int
    k: int
    group: str


def _group(n: int, seed: int) -> str:
    return f"gen0_n{n}_s{seed}"


def _groups(cfg: Config) -> list[tuple[int, int]]:
    return sorted({(n, seed) for n, _, seed in cfg.runs})


def _arms(cfg: Config, run: tuple[int, float, int]) -> tuple[str, ...]:
    """The arms of one run: ``ARMS``, plus ``PD_ARM`` for the runs in ``cfg.pd_runs``."""
    return ARMS + ((PD_ARM,) if run in cfg.pd_runs else ())


def _chain_name(n: int, seed: int, lam: float, arm: str) -> str:
    return f"n{n}_s{seed}_baseline" if arm == "baseline" else f"n{n}_s{seed}_lam{lam:g}_{arm}"


def _corrector(cfg: Config, arm: str) -> str:
    return "pd" if arm == PD_ARM else cfg.corrector


def chains(cfg: Config) -> list[Chain]:
    """Every chain: one baseline per (n, seed), an iterative and a corrected chain per run
    (and a ``corrected_pd`` chain per run in ``cfg.pd_runs``)."""
    out, seen = [], set()
    for n, lam, seed in cfg.runs:
        if (n, seed) not in seen:
            seen.add((n, seed))
            out.append(
                Chain(f"n{n}_s{seed}_baseline", "baseline", n, None, seed, 0, _group(n, seed))
            )
        for arm in _arms(cfg, (n, lam, seed))[1:]:
            name = _chain_name(n, seed, lam, arm)
            out.append(Chain(name, arm, n, lam, seed, n_synth(n, lam), _group(n, seed)))
    return out


def _chain_key(seed: int, name: str, t: int) -> jax.Array:
    return jax.random.fold_in(
        jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode())), t
    )


# ------------------------------------------------------------------ setup


@dataclasses.dataclass
class Setup:
    """Everything fixed before generation 0: data split, tokenizer, buffers, evaluator."""

    data: dict
    train_idx: np.ndarray
    test_idx: np.ndarray
    tokenizer: Tokenizer
    evaluator: ev_mod.Evaluator
    arrays: LoopData
    k_max: int
    static: object


def _split(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng([cfg.data.seed, 12345]).permutation(cfg.data.n)
    return perm[cfg.n_test :], perm[: cfg.n_test]


def prepare(cfg: Config) -> Setup:
    """Loads (or generates) the data, splits it, loads (or trains) the evaluator."""
    data = ds.load(cfg.data)
    train_idx, test_idx = _split(cfg)
    evaluator = ev_mod.load(cfg.evaluator_data, cfg.evaluator)
    tok = Tokenizer.from_texts(data["texts"][train_idx], cfg.generator.max_len)
    n_max = max(n for n, _, _ in cfg.runs)
    ids, mask = tok.encode(data["texts"])
    real = train_idx[:n_max]
    _, static = gen.init(cfg.generator, tok.size, data["features"][real[:1]])
    return Setup(
        data=data,
        train_idx=train_idx,
        test_idx=test_idx,
        tokenizer=tok,
        evaluator=evaluator,
        arrays=LoopData(
            real_x=jnp.asarray(data["features"][real], F32),
            real_ids=jnp.asarray(ids[real]),
            real_mask=jnp.asarray(mask[real]),
            test_ids=jnp.asarray(ids[test_idx]),
            test_mask=jnp.asarray(mask[test_idx]),
            alpha_bar=jnp.asarray(gen.cosine_alpha_bar(cfg.generator.diffusion_steps), F32),
            timesteps=jnp.asarray(
                respaced_timesteps(cfg.generator.diffusion_steps, cfg.generator.sample_steps)
            ),
        ),
        k_max=max(1, max(n_synth(n, lam) for n, lam, _ in cfg.runs)),
        static=static,
    )


def step_config(cfg: Config, s: Setup, *, steps: int, arm: str = "baseline") -> StepConfig:
    """The static part of a generation of ``arm`` (``steps`` optimiser steps)."""
    g = cfg.generator
    return StepConfig(
        static=s.static,
        steps=steps,
        batch=cfg.batch,
        cond_dropout=g.cond_dropout,
        guidance=g.guidance,
        frames=cfg.data.frames,
        k_max=s.k_max,
        correct=arm in ("corrected", PD_ARM),
        backend=cfg.backend,
        corrector=_corrector(cfg, arm),
    )


# ------------------------------------------------------------------ evaluation


def checkpoint_samples(path: str | Path) -> np.ndarray:
    """The last generation's samples [n_test, T, 30] of a chain checkpoint (``MotionLoop``),
    read without the run's config.

    The chain arrays are ``{"model", "samples"}``; ``equinox.tree_serialise_leaves`` writes
    their leaves one ``np.save`` record after another in key order, so the samples are the
    last record. (Loading the whole state needs a template built from the run's config:
    ``sims.common.checkpoint.load``.)
    """
    import io
    import json

    try:
        with np.load(path) as z:
            tree, meta = io.BytesIO(bytes(z["tree"])), json.loads(bytes(z["meta"]).decode())
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a motion-loop chain checkpoint ({e})") from None
    last = None
    while tree.tell() < len(tree.getbuffer()):
        last = np.load(tree, allow_pickle=False)
    if last is None or last.ndim != 3 or "t" not in meta:
        raise ValueError(f"{path}: not a motion-loop chain checkpoint (no [n, T, d] samples)")
    return np.asarray(last, np.float32)


def _evaluate(cfg: Config, s: Setup, samples: np.ndarray, key: jax.Array) -> dict:
    d, idx = s.data, s.test_idx
    return ev_mod.evaluate(
        s.evaluator,
        key,
        np.asarray(samples),
        d["texts"][idx],
        d["labels"][idx],
        d["features"][idx],
        cfg.n_boot,
    )


def real_reference(cfg: Config, s: Setup, n: int) -> dict:
    """The metrics of the n real training motions themselves (against the test set)."""
    idx = s.train_idx[:n]
    d = s.data
    if n < ev_mod.R_BATCH:
        return {}
    return ev_mod.evaluate(
        s.evaluator,
        jax.random.key(n),
        d["features"][idx],
        d["texts"][idx],
        d["labels"][idx],
        d["features"][s.test_idx],
        cfg.n_boot,
    )


def _synth_diag(synth, used, valid, corrected, real) -> dict:
    """Physical error of the synthetic training motions before and after correction, and
    how far the correction moved them toward the ``real`` training motions
    (``drift.pull``: ``gap_closed``, ``off_gap``; on the motions the loop corrects, not on
    data)."""
    k = int(np.sum(valid))
    if k == 0:
        return {}
    raw = np.asarray(synth)[:k]
    out = np.asarray(used)[:k]
    finite = bool(np.isfinite(raw).all() and np.isfinite(out).all())
    before = ev_mod.plausibility_of(raw)["phys_err"] if finite else np.full(k, np.nan)
    after = ev_mod.plausibility_of(out)["phys_err"] if finite else np.full(k, np.nan)
    toward = drift_mod.pull(raw, out, real, n_boot=0) if finite else {}
    return {
        "synthetic_phys_err": float(np.mean(before)),
        "used_phys_err": float(np.mean(after)),
        "corrected_fraction": float(np.mean(np.asarray(corrected)[:k])),
        **{name: toward.get(name, math.nan) for name in ("gap_closed", "off_gap")},
    }


def corrector_drift(cfg: Config, s: Setup, passes: int = 4, corrector: str | None = None) -> dict:
    """Is the corrector idempotent? ``drift.drift`` (C backend) on the real training motions
    of the smallest n (at least the evaluator's batch ``R_BATCH``, within the training pool),
    against the test set (``corrector``: default ``cfg.corrector``).

    A projection onto the data would leave real motions (nearly) where they are after the
    first pass; a corrector whose fixed points differ from the data moves them further at
    every pass, and a self-consuming loop compounds that drift.

    Returns:
        ``drift.drift``'s per-pass lists, plus the names of the earlier schema:
        ``joint_shift`` (= ``max_feature_shift``, feature standard deviations) and
        ``joint_shift_feature`` (= ``max_feature_shift_name``).
    """
    n = max(min(r[0] for r in cfg.runs), ev_mod.R_BATCH)
    idx, d = s.train_idx[:n], s.data
    out = drift_mod.drift(
        s.evaluator,
        d["features"][idx],
        d["texts"][idx],
        d["labels"][idx],
        d["features"][s.test_idx],
        corrector=corrector or cfg.corrector,
        passes=passes,
        n_boot=cfg.n_boot,
    )
    return {
        **out,
        "joint_shift": out["max_feature_shift"],
        "joint_shift_feature": out["max_feature_shift_name"],
    }


# ------------------------------------------------------------------ the experiment


@dataclasses.dataclass(frozen=True)
class MotionLoop:
    """The motion loop as a ``runner.ChainExperiment``.

    Chain arrays: ``model`` (generator parameters and Adam state, carried across
    generations) and ``samples`` (the last generation's evaluation samples). History:
    ``metrics`` (generation 0 first), ``losses`` (mean per generation; generation 0's last
    100 training losses in the group state) and ``diag`` (synthetic-data diagnostics).
    """

    cfg: Config
    setup: Setup

    @property
    def _finetune_opt(self):
        return optim.adam(self.cfg.finetune_lr)

    def chains(self) -> list[Chain]:
        return chains(self.cfg)

    def template(self, group: str) -> ChainState:
        del group
        s = self.setup
        params, _ = gen.init(self.cfg.generator, s.tokenizer.size, s.data["features"][:1])
        samples = np.zeros(
            (self.cfg.n_test, self.cfg.data.frames, s.arrays.real_x.shape[-1]), np.float32
        )
        return ChainState(
            {"model": Model(params, self._finetune_opt.init(params)), "samples": samples}
        )

    def generation_zero(self, group: str) -> ChainState:
        """Trains the shared generation-0 model of (n, seed) and evaluates it."""
        cfg, s = self.cfg, self.setup
        n, seed = next(g for g in _groups(cfg) if _group(*g) == group)
        k_init, k_run, k_eval = jax.random.split(_chain_key(seed, f"gen0_n{n}", 0), 3)
        params, _ = gen.init(
            dataclasses.replace(cfg.generator, seed=int(jax.random.randint(k_init, (), 0, 2**30))),
            s.tokenizer.size,
            s.data["features"][s.train_idx[:n]],
        )
        opt = optim.adam_warmup_cosine(cfg.lr, cfg.gen0_steps)
        train = make_finetune(opt, step_config(cfg, s, steps=cfg.gen0_steps))
        model, losses, samples = train(Model(params, opt.init(params)), k_run, s.arrays, n)
        samples = np.asarray(samples)
        model = Model(model.params, self._finetune_opt.init(model.params))
        history = {
            "metrics": [_evaluate(cfg, s, samples, k_eval)],
            "losses": np.asarray(losses)[-100:].tolist(),
            "diag": [],
        }
        return ChainState({"model": model, "samples": samples}, 0, history)

    def start(self, gen0: ChainState, chain: Chain) -> ChainState:
        del chain
        return dataclasses.replace(gen0, history={**gen0.history, "losses": [], "diag": [{}]})

    def step(self, state: ChainState, chain: Chain) -> tuple[ChainState, dict[str, float]]:
        """One generation (the jitted step, then the host-side evaluation)."""
        cfg, s = self.cfg, self.setup
        k_step, k_eval = jax.random.split(_chain_key(chain.seed, chain.name, state.t + 1))
        fn = make_step(
            self._finetune_opt,
            step_config(cfg, s, steps=cfg.finetune_steps, arm=chain.arm),
        )
        counts = Counts(jnp.int32(chain.n), jnp.int32(chain.k), jnp.float32(cfg.gamma))
        t0 = time.perf_counter()
        out = fn(state.arrays["model"], k_step, s.arrays, counts)
        samples = np.asarray(out.samples)
        timing = {"step": time.perf_counter() - t0}
        t0 = time.perf_counter()
        metrics = _evaluate(cfg, s, samples, k_eval)
        real = s.data["features"][s.train_idx[: chain.n]]
        diag = _synth_diag(out.synthetic, out.used, out.valid, out.corrected, real)
        timing["evaluation"] = time.perf_counter() - t0
        new = state.advance(
            {"model": out.model, "samples": samples},
            metrics=metrics,
            losses=float(np.mean(np.asarray(out.losses))),
            diag=diag,
        )
        return new, timing

    def status(self, state: ChainState) -> str:
        return f"FID {state.history['metrics'][-1]['fid']:.3f}"


def run(
    cfg: Config,
    ckpt_dir: Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    on_checkpoint: Callable[[str, int], None] | None = None,
) -> dict:
    """Runs (or resumes) every chain to ``cfg.generations``; returns the results.

    Args:
        cfg: the experiment.
        ckpt_dir: where states are written atomically after every generation (None:
            nothing is written).
        resume: continue from the states in ``ckpt_dir`` (same config, generations aside).
        progress: a tqdm bar with the current FID.
        on_checkpoint: called with (chain name, generation) after each checkpoint (tests use
            it to interrupt a run).

    Returns:
        dict with ``results`` ("n=<n>,lam=<λ>" → arm → metric lists, generation 0 first;
        the smallest seed of that setting), ``seeds`` (the same per seed), ``real`` (n →
        the metrics of the real training motions), ``corrector_drift``
        (``corrector_drift``), ``diag`` (chain → synthetic-data
        diagnostics per generation), ``losses``, ``gen0_losses``, ``timing`` (seconds),
        ``samples`` (chain → evaluation samples of the last generation), ``test`` (the
        test split's features, texts and labels).
    """
    t_start = time.perf_counter()
    s = prepare(cfg)
    setup_s = time.perf_counter() - t_start
    states, gen0, timing = runner.run_chains(
        MotionLoop(cfg, s),
        cfg,
        ckpt_dir,
        generations=cfg.generations,
        resume=resume,
        progress=progress,
        desc="motion",
        on_checkpoint=on_checkpoint,
    )
    timing = {"setup": setup_s, "step": 0.0, "evaluation": 0.0, **timing}
    timing["total"] = time.perf_counter() - t_start
    return _collect(cfg, s, states, gen0, timing)


FIG4_METRICS = ("fid", "diversity", "matching", "phys_err")
EXTRA_METRICS = (
    "r_precision",
    "class_accuracy",
    "penetration",
    "floating",
    "skating",
    "fell_rate",
    "fid_floor",
)


def _series(metrics: list[dict]) -> dict:
    out = {}
    for m in FIG4_METRICS:
        out[m] = [g[m] for g in metrics]
        out[f"{m}_ci"] = [g[f"{m}_ci"] for g in metrics]
    for m in EXTRA_METRICS:
        out[m] = [g[m] for g in metrics]
    return out


def _collect(cfg: Config, s: Setup, states: dict, gen0: dict, timing: dict) -> dict:
    res, seeds = {}, {}
    for n, lam, seed in sorted(cfg.runs, key=lambda r: (r[0], r[1], r[2])):
        setting = f"n={n},lam={lam:g}"
        arms = {}
        for arm in _arms(cfg, (n, lam, seed)):
            arms[arm] = _series(states[_chain_name(n, seed, lam, arm)].history["metrics"])
        seeds.setdefault(setting, {})[str(seed)] = arms
        res.setdefault(setting, arms)  # the smallest seed (runs are sorted)
    ns = sorted({n for n, _, _ in cfg.runs})
    idx = s.test_idx
    used = {_corrector(cfg, a) for r in cfg.runs for a in _arms(cfg, r)[2:]}
    drifts = {c: corrector_drift(cfg, s, corrector=c) for c in sorted(used)}
    return {
        "results": res,
        "seeds": seeds,
        "real": {str(n): real_reference(cfg, s, n) for n in ns},
        "corrector_drift": drifts[cfg.corrector],
        "corrector_drifts": drifts,
        "diag": {name: st.history["diag"] for name, st in states.items()},
        "losses": {name: st.history["losses"] for name, st in states.items()},
        "gen0_losses": {
            f"n={n},seed={sd}": gen0[_group(n, sd)].history["losses"] for n, sd in _groups(cfg)
        },
        "timing": timing,
        "samples": {name: st.arrays["samples"] for name, st in states.items()},
        "test": {
            "features": s.data["features"][idx],
            "texts": s.data["texts"][idx],
            "labels": s.data["labels"][idx],
        },
    }
