"""Configuration of the motion loop: one frozen ``Config`` with ``quick``/``long``/``full``/
``smoke`` presets, validated on construction (before any data, evaluator or compilation).

Paper: §4 "Human motion", Figs. 1, 4, 5 (``full`` is the paper-scale setting).
"""

from __future__ import annotations

import dataclasses
import math

from sims.common.config import (
    at_least,
    nonneg,
    nonneg_int,
    nonneg_or_inf,
    option,
    positive_int,
    validate,
)
from sims.motion import dataset as ds
from sims.motion import evaluator as ev_mod
from sims.motion import generator as gen
from sims.motion import physics

__all__ = ["ARMS", "PD_ARM", "Config"]

ARMS = ("baseline", "iterative", "corrected")
# The fourth arm: corrected by the ``pd`` tracker (whose fixed points drift away from the
# data) beside ``corrected`` (the loop's ``corrector``), for the runs in ``Config.pd_runs``;
# it shows what corrector quality does to the loop.
PD_ARM = "corrected_pd"


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
        corrector: the physics tracker of the ``corrected`` arm: ``id`` (inverse-dynamics
            feedforward, a near-projection onto valid motion; default) or ``pd`` (the
            earlier PD tracker, whose fixed points drift away from the data).
        pd_runs: runs (a subset of ``runs``) that also get the fourth arm ``corrected_pd``,
            corrected by the ``pd`` tracker (needs ``corrector`` ≠ ``pd``).
        n_boot: bootstrap resamples of the metric intervals.
    """

    # runs and pd_runs come from --n/--lams/--seeds and --compare-pd (sims.motion.cli).
    runs: tuple[tuple[int, float, int], ...] = option(((64, 1.0, 0),), flag=None)
    generations: int = option(6, check=positive_int)
    data: ds.Config = option(default_factory=lambda: ds.Config(n=640, frames=60, seed=1), flag=None)
    n_test: int = option(128, check=at_least(ev_mod.R_BATCH))
    evaluator_data: ds.Config = option(
        default_factory=lambda: ds.Config(n=512, frames=60, seed=0), flag=None
    )
    evaluator: ev_mod.Config = option(default_factory=ev_mod.Config, flag=None)
    generator: gen.Config = option(default_factory=gen.Config, flag=None)
    gen0_steps: int = option(3000, check=positive_int)
    lr: float = option(1e-3, check=nonneg)
    finetune_steps: int = option(200, check=positive_int)
    finetune_lr: float = option(2e-4, check=nonneg)
    batch: int = option(32, check=positive_int)
    gamma: float = option(math.inf, check=nonneg_or_inf)
    backend: str = option("mjx", choices=physics.BACKENDS, flag="--physics")
    corrector: str = option("id", choices=physics.CORRECTORS)
    pd_runs: tuple[tuple[int, float, int], ...] = option((), flag=None)
    n_boot: int = option(100, check=at_least(10))

    def __post_init__(self):
        validate(self)
        if not self.runs:
            raise ValueError("runs must hold at least one (n, lam, seed) triple")
        pool = self.data.n - self.n_test
        for run in self.runs:
            if len(run) != 3:
                raise ValueError(f"each run must be (n, lam, seed); got {run!r}")
            n, lam, seed = run
            positive_int("n", n)
            if n > pool:
                raise ValueError(
                    f"n must be <= the training pool data.n - n_test = {pool}; got {n}"
                )
            nonneg("lam", lam)
            nonneg_int("seed", seed)
        if len(set(self.runs)) != len(self.runs):
            raise ValueError(f"runs must be distinct; got {self.runs}")
        if any(r not in self.runs for r in self.pd_runs):
            raise ValueError(f"pd_runs must be a subset of runs {self.runs}; got {self.pd_runs}")
        if self.pd_runs and self.corrector == "pd":
            raise ValueError(
                "pd_runs adds a pd-corrected arm beside the corrected arm; with corrector='pd' "
                "they would be the same chain (use corrector='id' or no pd_runs)"
            )
        if self.evaluator_data.frames != self.data.frames:
            raise ValueError("evaluator_data and data must have the same frames per motion")

    @classmethod
    def quick(cls) -> Config:
        """``scsc motion --quick``: n = 64, λ = 1, three arms, 6 generations (CPU, < 15 min)."""
        return cls()

    @classmethod
    def long(cls) -> Config:
        """``scsc motion --long``: n = 64 at λ ∈ {0.5, 1} (seeds 0–2 at λ = 1) and n = 256 at
        λ = 0.25; 20 generations (CPU in the background, or GPU); the ``pd`` arm beside the
        ``id`` one at n = 64, λ = 1 (three seeds)."""
        runs = ((64, 1.0, 0), (64, 0.5, 0), (256, 0.25, 0), (64, 1.0, 1), (64, 1.0, 2))
        pd_runs = tuple(r for r in runs if r[:2] == (64, 1.0))
        return cls(runs=runs, generations=20, pd_runs=pd_runs)

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
        """Tests: tiny data, networks and schedule; 2 generations; all four arms."""
        return cls(
            runs=((24, 1.0, 0),),
            pd_runs=((24, 1.0, 0),),
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
