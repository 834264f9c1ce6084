"""The motion self-consuming loop: MDM-shaped generator, physics correction, three arms.

Paper: §4 "Human motion", Algorithm 1, Figs. 1, 4, 5, 12–20. For every (n, seed) a shared
generation-0 model is trained on the first n real training motions. Each later
generation t of a chain, **in one jitted function** (``generation_step``):

1. samples ⌊λn⌋ motions from the model t−1 for descriptions drawn at random from the n
   real training descriptions;
2. ``corrected`` arm: corrects them with the MJX physics corrector π_γ
   (``physics.correct_motion``; γ = ∞ as in the paper, partial γ as an option);
3. fine-tunes the model t−1 for ``finetune_steps`` Adam steps on real ∪ synthetic
   (fresh synthetic every generation, as eq. (5));
4. samples one motion per held-out test description (the evaluation set).

Arms: ``baseline`` fine-tunes on the real motions only (⌊λn⌋ = 0, so it is one chain per
(n, seed), shared by every λ); ``iterative`` on real ∪ raw synthetic; ``corrected`` on
real ∪ corrected synthetic. The evaluation (``evaluator.evaluate``: FID, Diversity,
Matching, R-precision, class accuracy, physical error, with bootstrap CIs) runs on the
host after the step, against the held-out test motions.

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
atomically after every generation of every chain.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.common import results
from sims.common.diffusion import respaced_timesteps
from sims.motion import dataset as ds
from sims.motion import evaluator as ev_mod
from sims.motion import generator as gen
from sims.motion import physics
from theory._checks import check_nonneg, check_positive_int

__all__ = [
    "ARMS",
    "Config",
    "Setup",
    "chains",
    "finetune_and_sample",
    "generation_step",
    "prepare",
    "run",
]

ARMS = ("baseline", "iterative", "corrected")
F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class Config:
    """One motion experiment (defaults: ``--quick``).

    Attributes:
        runs: (n, λ, seed) triples; every (n, seed) gets its own generation-0 model and
            baseline, every triple an ``iterative`` and a ``corrected`` chain.
        generations: fine-tuning generations after generation 0 (paper: 50).
        data: the loop's dataset (training pool + test split).
        n_test: held-out test motions (evaluation prompts and FID reference; ≥ 32).
        evaluator_data: the dataset the evaluator is trained on (independent draw).
        evaluator: evaluator architecture and training.
        generator: generator architecture and sampling.
        gen0_steps: Adam steps of generation 0 (warm-up, then cosine decay).
        lr: generation-0 peak learning rate.
        finetune_steps: Adam steps per later generation (constant ``finetune_lr``; the
            optimiser state carries over between generations).
        finetune_lr: fine-tuning learning rate.
        batch: minibatch size.
        gamma: correction strength of the ``corrected`` arm (inf: the paper's).
        backend: physics backend of the corrector (``mjx``: inside the jitted step).
        n_boot: bootstrap resamples of the metric intervals.
    """

    runs: tuple[tuple[int, float, int], ...] = ((64, 1.0, 0),)
    generations: int = 6
    data: ds.Config = dataclasses.field(default_factory=lambda: ds.Config(n=640, frames=60, seed=1))
    n_test: int = 128
    evaluator_data: ds.Config = dataclasses.field(
        default_factory=lambda: ds.Config(n=512, frames=60, seed=0)
    )
    evaluator: ev_mod.Config = dataclasses.field(default_factory=ev_mod.Config)
    generator: gen.Config = dataclasses.field(default_factory=gen.Config)
    gen0_steps: int = 3000
    lr: float = 1e-3
    finetune_steps: int = 200
    finetune_lr: float = 2e-4
    batch: int = 32
    gamma: float = math.inf
    backend: str = "mjx"
    n_boot: int = 100

    def __post_init__(self):
        if not self.runs:
            raise ValueError("runs must hold at least one (n, lam, seed) triple")
        pool = self.data.n - self.n_test
        for run in self.runs:
            if len(run) != 3:
                raise ValueError(f"each run must be (n, lam, seed); got {run!r}")
            n, lam, seed = run
            check_positive_int("n", n)
            if n > pool:
                raise ValueError(
                    f"n must be <= the training pool data.n - n_test = {pool}; got {n}"
                )
            check_nonneg("lam", lam, allow_inf=False)
            if not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        if len(set(self.runs)) != len(self.runs):
            raise ValueError(f"runs must be distinct; got {self.runs}")
        check_positive_int("n_test", self.n_test)
        if self.n_test < ev_mod.R_BATCH:
            raise ValueError(f"n_test must be >= {ev_mod.R_BATCH} (R-precision); got {self.n_test}")
        for name in ("generations", "gen0_steps", "finetune_steps", "batch", "n_boot"):
            check_positive_int(name, getattr(self, name))
        if self.n_boot < 10:
            raise ValueError(f"n_boot must be >= 10; got {self.n_boot}")
        for name in ("lr", "finetune_lr"):
            check_nonneg(name, getattr(self, name), allow_inf=False)
        check_nonneg("gamma", self.gamma)
        if self.backend not in physics.BACKENDS:
            raise ValueError(f"backend must be one of {physics.BACKENDS}; got {self.backend!r}")
        if self.evaluator_data.frames != self.data.frames:
            raise ValueError("evaluator_data and data must have the same frames per motion")

    @classmethod
    def quick(cls) -> Config:
        """``scsc motion --quick``: n = 64, λ = 1, three arms, 6 generations (CPU, < 15 min)."""
        return cls()

    @classmethod
    def long(cls) -> Config:
        """``scsc motion --long``: n = 64 at λ ∈ {0.5, 1} (seeds 0–2 at λ = 1) and n = 256 at
        λ = 0.25; 20 generations (CPU in the background, or GPU)."""
        runs = ((64, 1.0, 0), (64, 0.5, 0), (256, 0.25, 0), (64, 1.0, 1), (64, 1.0, 2))
        return cls(runs=runs, generations=20)

    @classmethod
    def full(cls) -> Config:
        """``scsc motion --full``: paper scale (GPU). n ∈ {64, 128, 256, 512 = the whole
        pool} × λ ∈ {0.25, 0.5, 0.75, 1}, three seeds at n = 64, 50 generations, MDM-sized
        generator, 100 sampling steps."""
        runs = tuple((n, lam, 0) for n in (64, 128, 256, 512) for lam in (0.25, 0.5, 0.75, 1.0))
        runs += tuple((64, lam, s) for s in (1, 2) for lam in (0.25, 0.5, 0.75, 1.0))
        return cls(
            runs=runs,
            generations=50,
            generator=gen.Config.gpu(),
            gen0_steps=20_000,
            lr=2e-4,
            finetune_steps=1000,
            finetune_lr=5e-5,
            batch=64,
        )

    @classmethod
    def smoke(cls) -> Config:
        """Tests: tiny data, networks and schedule; 2 generations."""
        return cls(
            runs=((24, 1.0, 0),),
            generations=2,
            data=ds.Config(n=64, frames=24, seed=1),
            n_test=32,
            evaluator_data=ds.Config(n=48, frames=24, seed=0),
            evaluator=ev_mod.Config.smoke(),
            generator=gen.Config.smoke(),
            gen0_steps=20,
            finetune_steps=5,
            batch=8,
            n_boot=10,
        )


def n_synth(n: int, lam: float) -> int:
    """⌊λn⌋ synthetic motions per generation (paper: eq. (5))."""
    return math.floor(lam * n + 1e-9)


def chains(cfg: Config) -> list[dict]:
    """Every chain: name, arm, n, λ (None for the baseline), seed, synthetic count."""
    out, groups = [], []
    for n, lam, seed in cfg.runs:
        if (n, seed) not in groups:
            groups.append((n, seed))
            out.append(
                {
                    "name": f"n{n}_s{seed}_baseline",
                    "arm": "baseline",
                    "n": n,
                    "lam": None,
                    "seed": seed,
                    "k": 0,
                }
            )
        for arm in ("iterative", "corrected"):
            out.append(
                {
                    "name": f"n{n}_s{seed}_lam{lam:g}_{arm}",
                    "arm": arm,
                    "n": n,
                    "lam": lam,
                    "seed": seed,
                    "k": n_synth(n, lam),
                }
            )
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
    tokenizer: ev_mod.Tokenizer
    evaluator: ev_mod.Evaluator
    real_x: jax.Array
    real_ids: jax.Array
    real_mask: jax.Array
    test_ids: jax.Array
    test_mask: jax.Array
    k_max: int
    static: object
    alpha_bar: jax.Array
    timesteps: jax.Array


def _split(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng([cfg.data.seed, 12345]).permutation(cfg.data.n)
    return perm[cfg.n_test :], perm[: cfg.n_test]


def prepare(cfg: Config) -> Setup:
    """Loads (or generates) the data, splits it, loads (or trains) the evaluator."""
    data = ds.load(cfg.data)
    train_idx, test_idx = _split(cfg)
    evaluator = ev_mod.load(cfg.evaluator_data, cfg.evaluator)
    tok = ev_mod.Tokenizer.from_texts(data["texts"][train_idx], cfg.generator.max_len)
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
        real_x=jnp.asarray(data["features"][real], F32),
        real_ids=jnp.asarray(ids[real]),
        real_mask=jnp.asarray(mask[real]),
        test_ids=jnp.asarray(ids[test_idx]),
        test_mask=jnp.asarray(mask[test_idx]),
        k_max=max(1, max(n_synth(n, lam) for n, lam, _ in cfg.runs)),
        static=static,
        alpha_bar=jnp.asarray(gen.cosine_alpha_bar(cfg.generator.diffusion_steps), F32),
        timesteps=jnp.asarray(
            respaced_timesteps(cfg.generator.diffusion_steps, cfg.generator.sample_steps)
        ),
    )


@functools.cache
def _adam(lr: float) -> optax.GradientTransformation:
    # One object per rate: it is a static argument of the jitted step.
    return optax.adam(lr)


@functools.cache
def _gen0_optimizer(lr: float, steps: int) -> optax.GradientTransformation:
    warmup = min(100, steps // 10 + 1)
    return optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, warmup, steps, lr / 10))


# ------------------------------------------------------------------ the jitted steps


@functools.partial(
    jax.jit,
    static_argnames=("static", "optimizer", "steps", "batch", "cond_dropout", "guidance", "frames"),
)
def finetune_and_sample(
    params,
    opt_state,
    k_train,
    k_eval,
    x,
    ids,
    mask,
    valid,
    test_ids,
    test_mask,
    alpha_bar,
    timesteps,
    *,
    static,
    optimizer,
    steps,
    batch,
    cond_dropout,
    guidance,
    frames,
):
    """``steps`` optimiser steps on the ``valid`` rows of (x, ids, mask), then one motion
    per test description. Generation 0 calls it directly (fresh optimiser, real rows only);
    ``generation_step`` calls it after sampling and correcting the synthetic motions.

    Returns:
        ``(params, opt_state, losses [steps], samples [n_test, T, 30])``.
    """
    params, opt_state, losses = gen.train_steps(
        params,
        opt_state,
        k_train,
        x,
        ids,
        mask,
        valid,
        static=static,
        optimizer=optimizer,
        steps=steps,
        batch=batch,
        alpha_bar=alpha_bar,
        cond_dropout=cond_dropout,
    )
    samples = gen.sample(
        params,
        static,
        k_eval,
        test_ids,
        test_mask,
        alpha_bar=alpha_bar,
        timesteps=timesteps,
        guidance=guidance,
        frames=frames,
    )
    return params, opt_state, losses, samples


@functools.partial(
    jax.jit,
    static_argnames=(
        "static",
        "optimizer",
        "steps",
        "batch",
        "cond_dropout",
        "guidance",
        "frames",
        "k_max",
        "correct",
        "backend",
    ),
)
def generation_step(
    params,
    opt_state,
    key,
    real_x,
    real_ids,
    real_mask,
    n_real,
    k_synth,
    gamma,
    test_ids,
    test_mask,
    alpha_bar,
    timesteps,
    *,
    static,
    optimizer,
    steps,
    batch,
    cond_dropout,
    guidance,
    frames,
    k_max,
    correct,
    backend,
):
    """One generation of one chain: sample → (correct) → fine-tune → sample the test prompts.

    Paper: Algorithm 1 with eq. (5)'s fresh ⌊λn⌋ synthetic motions. ``n_real``, ``k_synth``
    (⌊λn⌋) and ``gamma`` are traced; ``correct`` (static) switches the physics in.

    Returns:
        ``(params, opt_state, losses [steps], eval_samples [n_test, T, 30], synthetic
        [k_max, T, 30] (raw), used [k_max, T, 30] (after correction), valid [k_max],
        corrected [k_max])``.
    """
    k_prompt, k_pool, k_corr, k_train, k_eval = jax.random.split(key, 5)
    prompt = jax.random.randint(k_prompt, (k_max,), 0, n_real)
    synth = gen.sample(
        params,
        static,
        k_pool,
        real_ids[prompt],
        real_mask[prompt],
        alpha_bar=alpha_bar,
        timesteps=timesteps,
        guidance=guidance,
        frames=frames,
    )
    valid_synth = jnp.arange(k_max) < k_synth
    if correct:
        used, info = physics.correct_motion(k_corr, synth, gamma, backend=backend, mask=valid_synth)
        corrected = info["corrected"]
    else:
        used, corrected = synth, jnp.zeros(k_max, bool)
    x = jnp.concatenate([real_x, used])
    ids = jnp.concatenate([real_ids, real_ids[prompt]])
    mask = jnp.concatenate([real_mask, real_mask[prompt]])
    valid = jnp.concatenate([jnp.arange(real_x.shape[0]) < n_real, valid_synth])
    params, opt_state, losses, samples = finetune_and_sample(
        params,
        opt_state,
        k_train,
        k_eval,
        x,
        ids,
        mask,
        valid,
        test_ids,
        test_mask,
        alpha_bar,
        timesteps,
        static=static,
        optimizer=optimizer,
        steps=steps,
        batch=batch,
        cond_dropout=cond_dropout,
        guidance=guidance,
        frames=frames,
    )
    return params, opt_state, losses, samples, synth, used, valid_synth, corrected


# ------------------------------------------------------------------ evaluation


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


def _synth_diag(synth, used, valid, corrected) -> dict:
    """Physical error of the synthetic training motions before and after correction."""
    k = int(np.sum(valid))
    if k == 0:
        return {}
    raw = np.asarray(synth)[:k]
    out = np.asarray(used)[:k]
    finite = bool(np.isfinite(raw).all() and np.isfinite(out).all())
    before = ev_mod.plausibility_of(raw)["phys_err"] if finite else np.full(k, np.nan)
    after = ev_mod.plausibility_of(out)["phys_err"] if finite else np.full(k, np.nan)
    return {
        "synthetic_phys_err": float(np.mean(before)),
        "used_phys_err": float(np.mean(after)),
        "corrected_fraction": float(np.mean(np.asarray(corrected)[:k])),
    }


def corrector_drift(cfg: Config, s: Setup, passes: int = 4) -> dict:
    """Is the corrector idempotent? Applies π_∞ ``passes`` times to the real training
    motions of the smallest n and scores every pass against the test set.

    A projection onto the data would leave real motions (nearly) where they are after the
    first pass; a corrector whose fixed points differ from the data moves them further at
    every pass, and a self-consuming loop compounds that drift. Uses the C MuJoCo backend
    (the same physics as MJX, tested equal in ``test_motion_mjx``) to avoid compiling
    another MJX shape.

    Returns:
        ``passes`` [0..passes], ``fid``, ``matching``, ``phys_err`` per pass, and
        ``joint_shift``: per pass, the largest |mean feature shift| / feature std over the
        30 features, with ``joint_shift_feature`` naming it.
    """
    from sims.motion import humanoid as hm

    n = min(r[0] for r in cfg.runs)
    idx = s.train_idx[:n]
    x0 = np.asarray(s.data["features"][idx], np.float32)
    std = x0.reshape(-1, x0.shape[-1]).std(0) + 1e-6
    names = [*hm.JOINTS, "root_height", *(f"root_6d_{i}" for i in range(6)), "vel_x", "vel_y"]
    out = {
        "passes": list(range(passes + 1)),
        "fid": [],
        "matching": [],
        "phys_err": [],
        "joint_shift": [],
        "joint_shift_feature": [],
    }
    x = x0
    for p in range(passes + 1):
        if p:
            x = np.asarray(
                physics.correct_motion(jax.random.key(p), jnp.asarray(x), backend="mujoco")[0]
            )
        m = {"fid": np.nan, "matching": np.nan}
        if n >= ev_mod.R_BATCH:
            m = ev_mod.evaluate(
                s.evaluator,
                jax.random.key(0),
                x,
                s.data["texts"][idx],
                s.data["labels"][idx],
                s.data["features"][s.test_idx],
                cfg.n_boot,
            )
        m["phys_err"] = float(np.mean(ev_mod.plausibility_of(x)["phys_err"]))
        shift = np.abs((x - x0).mean((0, 1)) / std)
        for k in ("fid", "matching", "phys_err"):
            out[k].append(float(m[k]))
        out["joint_shift"].append(float(shift.max()))
        out["joint_shift_feature"].append(names[int(shift.argmax())])
    return out


# ------------------------------------------------------------------ checkpoints


def save_state(path: Path, state: dict) -> None:
    """Atomically writes a chain state (params, optimiser state, samples, metrics)."""
    leaves = jax.tree_util.tree_leaves((state["params"], state["opt_state"]))
    buf = io.BytesIO()
    meta = {k: state[k] for k in ("t", "metrics", "losses", "diag", "hash")}
    np.savez(
        buf,
        **{f"leaf{i}": np.asarray(v) for i, v in enumerate(leaves)},
        samples=np.asarray(state["samples"]),
        meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
    )
    results.write_bytes(path, buf.getvalue())


def load_state(path: Path, template: tuple) -> dict:
    """Reads a chain state; ``template`` = (params, opt_state) gives the tree structure."""
    with np.load(path) as z:
        leaves, treedef = jax.tree_util.tree_flatten(template)
        new = [jnp.asarray(z[f"leaf{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
        params, opt_state = jax.tree_util.tree_unflatten(treedef, new)
        return {
            "params": params,
            "opt_state": opt_state,
            "samples": z["samples"],
            **json.loads(bytes(z["meta"]).decode()),
        }


# ------------------------------------------------------------------ the experiment


def _statics(cfg: Config, s: Setup) -> dict:
    g = cfg.generator
    return {
        "static": s.static,
        "batch": cfg.batch,
        "cond_dropout": g.cond_dropout,
        "guidance": g.guidance,
        "frames": cfg.data.frames,
    }


def generation_zero(cfg: Config, s: Setup, n: int, seed: int) -> dict:
    """Trains the shared generation-0 model of (n, seed) and evaluates it."""
    key = _chain_key(seed, f"gen0_n{n}", 0)
    k_init, k_run, k_eval = jax.random.split(key, 3)
    real = s.train_idx[:n]
    params, _ = gen.init(
        dataclasses.replace(cfg.generator, seed=int(jax.random.randint(k_init, (), 0, 2**30))),
        s.tokenizer.size,
        s.data["features"][real],
    )
    k_train, k_sample = jax.random.split(k_run)
    opt = _gen0_optimizer(cfg.lr, cfg.gen0_steps)
    params, _, losses, samples = finetune_and_sample(
        params,
        opt.init(params),
        k_train,
        k_sample,
        s.real_x,
        s.real_ids,
        s.real_mask,
        jnp.arange(s.real_x.shape[0]) < n,
        s.test_ids,
        s.test_mask,
        s.alpha_bar,
        s.timesteps,
        optimizer=opt,
        steps=cfg.gen0_steps,
        **_statics(cfg, s),
    )
    metrics = _evaluate(cfg, s, samples, k_eval)
    return {
        "params": params,
        "losses": np.asarray(losses),
        "samples": np.asarray(samples),
        "metrics": metrics,
    }


def step_chain(cfg: Config, s: Setup, state: dict, chain: dict) -> tuple[dict, dict]:
    """One generation of one chain (the jitted step, then the host-side evaluation).

    Returns the new state and the seconds spent in the step and in the evaluation.
    """
    t = state["t"] + 1
    key = _chain_key(chain["seed"], chain["name"], t)
    k_step, k_eval = jax.random.split(key)
    t0 = time.perf_counter()
    params, opt_state, losses, samples, synth, used, valid, corrected = generation_step(
        state["params"],
        state["opt_state"],
        k_step,
        s.real_x,
        s.real_ids,
        s.real_mask,
        jnp.int32(chain["n"]),
        jnp.int32(chain["k"]),
        jnp.float32(cfg.gamma),
        s.test_ids,
        s.test_mask,
        s.alpha_bar,
        s.timesteps,
        optimizer=_adam(cfg.finetune_lr),
        steps=cfg.finetune_steps,
        k_max=s.k_max,
        correct=chain["arm"] == "corrected",
        backend=cfg.backend,
        **_statics(cfg, s),
    )
    samples = np.asarray(samples)
    timing = {"step": time.perf_counter() - t0}
    t0 = time.perf_counter()
    metrics = _evaluate(cfg, s, samples, k_eval)
    diag = _synth_diag(synth, used, valid, corrected)
    timing["evaluation"] = time.perf_counter() - t0
    new = {
        "params": params,
        "opt_state": opt_state,
        "samples": samples,
        "t": t,
        "metrics": [*state["metrics"], metrics],
        "losses": [*state["losses"], float(np.mean(np.asarray(losses)))],
        "diag": [*state["diag"], diag],
        "hash": state["hash"],
    }
    return new, timing


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
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
    h = results.claim_run_dir(ckpt_dir, cfg, resume)
    s = prepare(cfg)
    timing = {
        "setup": time.perf_counter() - t_start,
        "gen0": 0.0,
        "step": 0.0,
        "evaluation": 0.0,
        "generations": 0,
    }
    opt = _adam(cfg.finetune_lr)
    all_chains = chains(cfg)
    groups = sorted({(c["n"], c["seed"]) for c in all_chains})
    gen0 = {}
    for n, seed in groups:
        path = ckpt_dir / f"gen0_n{n}_s{seed}.npz" if ckpt_dir is not None else None
        template, _ = gen.init(cfg.generator, s.tokenizer.size, s.data["features"][:1])
        if path is not None and path.exists():
            st = load_state(path, (template, opt.init(template)))
        else:
            t0 = time.perf_counter()
            g0 = generation_zero(cfg, s, n, seed)
            timing["gen0"] += time.perf_counter() - t0
            st = {
                "params": g0["params"],
                "opt_state": opt.init(g0["params"]),
                "samples": g0["samples"],
                "t": 0,
                "metrics": [g0["metrics"]],
                "losses": g0["losses"][-100:].tolist(),
                "diag": [],
                "hash": h,
            }
            if path is not None:
                save_state(path, st)
        gen0[n, seed] = st
    states = {}
    for c in all_chains:
        path = ckpt_dir / "chains" / f"{c['name']}.npz" if ckpt_dir is not None else None
        g0 = gen0[c["n"], c["seed"]]
        if path is not None and path.exists():
            states[c["name"]] = load_state(path, (g0["params"], g0["opt_state"]))
        else:
            states[c["name"]] = {**g0, "losses": [], "diag": [{}]}
    todo = sum(max(0, cfg.generations - st["t"]) for st in states.values())
    bar = tqdm(total=todo, desc="motion", disable=not progress, dynamic_ncols=True)
    for t in range(1, cfg.generations + 1):
        for c in all_chains:
            st = states[c["name"]]
            if st["t"] >= t:
                continue
            st, tm = step_chain(cfg, s, st, c)
            states[c["name"]] = st
            for k, v in tm.items():
                timing[k] += v
            timing["generations"] += 1
            if ckpt_dir is not None:
                save_state(ckpt_dir / "chains" / f"{c['name']}.npz", st)
                if on_checkpoint is not None:
                    on_checkpoint(c["name"], t)
            bar.set_postfix_str(f"gen {t} {c['name']} FID {st['metrics'][-1]['fid']:.3f}")
            bar.update(1)
    bar.close()
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
        for arm in ARMS:
            name = (
                f"n{n}_s{seed}_baseline" if arm == "baseline" else f"n{n}_s{seed}_lam{lam:g}_{arm}"
            )
            arms[arm] = _series(states[name]["metrics"])
        seeds.setdefault(setting, {})[str(seed)] = arms
        res.setdefault(setting, arms)  # the smallest seed (runs are sorted)
    ns = sorted({n for n, _, _ in cfg.runs})
    idx = s.test_idx
    return {
        "results": res,
        "seeds": seeds,
        "real": {str(n): real_reference(cfg, s, n) for n in ns},
        "corrector_drift": corrector_drift(cfg, s),
        "diag": {name: st["diag"] for name, st in states.items()},
        "losses": {name: st["losses"] for name, st in states.items()},
        "gen0_losses": {f"n={n},seed={sd}": g["losses"] for (n, sd), g in gen0.items()},
        "timing": timing,
        "samples": {name: st["samples"] for name, st in states.items()},
        "test": {
            "features": s.data["features"][idx],
            "texts": s.data["texts"][idx],
            "labels": s.data["labels"][idx],
        },
    }
