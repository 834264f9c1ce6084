"""One generation of the motion loop as one jitted function, with few arguments.

Paper: Algorithm 1 with eq. (5)'s fresh ⌊λn⌋ synthetic motions. A generation of a chain:

1. samples ⌊λn⌋ motions from the model t−1 for descriptions drawn at random from the n
   real training descriptions;
2. ``corrected`` arm: corrects them with the physics corrector π_γ, called through the
   project's corrector interface (``physics.make_corrector``; γ = ∞ as in the paper,
   partial γ as an option);
3. fine-tunes the model t−1 for ``steps`` optimiser steps on real ∪ synthetic (fresh
   synthetic every generation, as eq. (5));
4. samples one motion per held-out test description (the evaluation set).

The inputs come in four bundles: the ``Model`` (parameters and optimiser state), a key,
the run's fixed arrays (``LoopData``) and the chain's traced counts (``Counts``: n, ⌊λn⌋,
γ, so every chain of an arm kind shares one compilation). What is static (shapes, the
network's static part, whether to correct) is a hashable ``StepConfig``; the optimiser is
closed over by ``make_step``/``make_finetune``, which return one compiled function per
(optimiser, config) pair.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int

from sims.motion import generator as gen
from sims.motion import physics

__all__ = [
    "Counts",
    "LoopData",
    "Model",
    "StepConfig",
    "StepOut",
    "TrainSet",
    "make_finetune",
    "make_step",
]


class Model(NamedTuple):
    """The generator's parameters and its optimiser state (carried across generations)."""

    params: Any
    opt_state: Any


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LoopData:
    """The run's fixed arrays: the real buffer (the largest n of the run; a chain uses its
    first n rows), the test descriptions, the noise schedule and the sampling timesteps."""

    real_x: Float[Array, "N T d"]
    real_ids: Int[Array, "N L"]
    real_mask: Bool[Array, "N L"]
    test_ids: Int[Array, "m L"]
    test_mask: Bool[Array, "m L"]
    alpha_bar: Float[Array, " S"]
    timesteps: Int[Array, " s"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Counts:
    """A chain's traced values: real-set size n, synthetic count ⌊λn⌋ and strength γ."""

    n_real: Int[Array, ""]
    k_synth: Int[Array, ""]
    gamma: Float[Array, ""]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainSet:
    """Training rows (x, description ids and mask) and which rows are real data (``valid``;
    the rest of a fixed-size buffer is padding)."""

    x: Float[Array, "N T d"]
    ids: Int[Array, "N L"]
    mask: Bool[Array, "N L"]
    valid: Bool[Array, " N"]


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What is static in a generation (hashable; one compilation per value).

    Attributes:
        static: the generator's static (non-array) part.
        steps: optimiser steps per generation.
        batch: minibatch size.
        cond_dropout: probability of the null description in training.
        guidance: classifier-free guidance weight of the sampler.
        frames: frames per motion.
        k_max: size of the synthetic buffer (the run's largest ⌊λn⌋).
        correct: whether the synthetic motions pass through the physics corrector.
        backend: the corrector's physics backend.
        corrector: the physics tracker (``physics.CORRECTORS``).
    """

    static: Any
    steps: int
    batch: int
    cond_dropout: float
    guidance: float
    frames: int
    k_max: int = 1
    correct: bool = False
    backend: str = "mjx"
    corrector: str = "id"


class StepOut(NamedTuple):
    """A generation's outputs: the new model, the mean-able losses [steps], the evaluation
    samples [n_test, T, d], the raw synthetic motions [k_max, T, d], the ones used for
    training (after correction), which synthetic rows are valid and which were corrected."""

    model: Model
    losses: Float[Array, " steps"]
    samples: Float[Array, "m T d"]
    synthetic: Float[Array, "k T d"]
    used: Float[Array, "k T d"]
    valid: Bool[Array, " k"]
    corrected: Bool[Array, " k"]


def _sample(cfg: StepConfig, params, key, data: LoopData, ids, mask):
    return gen.sample(
        params,
        cfg.static,
        key,
        ids,
        mask,
        alpha_bar=data.alpha_bar,
        timesteps=data.timesteps,
        guidance=cfg.guidance,
        frames=cfg.frames,
    )


def _finetune_and_sample(
    optimizer: optax.GradientTransformation,
    cfg: StepConfig,
    model: Model,
    k_train: jax.Array,
    k_eval: jax.Array,
    data: LoopData,
    train: TrainSet,
):
    """``cfg.steps`` optimiser steps on ``train``, then one motion per test description."""
    params, opt_state, losses = gen.train_steps(
        model.params,
        model.opt_state,
        k_train,
        train.x,
        train.ids,
        train.mask,
        train.valid,
        static=cfg.static,
        optimizer=optimizer,
        steps=cfg.steps,
        batch=cfg.batch,
        alpha_bar=data.alpha_bar,
        cond_dropout=cfg.cond_dropout,
    )
    samples = _sample(cfg, params, k_eval, data, data.test_ids, data.test_mask)
    return Model(params, opt_state), losses, samples


@functools.cache
def make_finetune(
    optimizer: optax.GradientTransformation, cfg: StepConfig
) -> Callable[[Model, jax.Array, LoopData, Int[Array, ""]], tuple]:
    """The jitted generation 0: train on the first ``n_real`` real rows, sample the tests.

    Returns:
        ``fn(model, key, data, n_real) -> (model, losses [steps], samples [n_test, T, d])``.
    """

    @jax.jit
    def finetune(model: Model, key: jax.Array, data: LoopData, n_real):
        valid = jnp.arange(data.real_x.shape[0]) < n_real
        train = TrainSet(data.real_x, data.real_ids, data.real_mask, valid)
        k_train, k_eval = jax.random.split(key)
        return _finetune_and_sample(optimizer, cfg, model, k_train, k_eval, data, train)

    return finetune


@functools.cache
def make_step(
    optimizer: optax.GradientTransformation, cfg: StepConfig
) -> Callable[[Model, jax.Array, LoopData, Counts], StepOut]:
    """The jitted generation t−1 → t of one chain (sample → correct → fine-tune → sample).

    Returns:
        ``fn(model, key, data, counts) -> StepOut``.
    """

    @jax.jit
    def step(model: Model, key: jax.Array, data: LoopData, counts: Counts) -> StepOut:
        k_prompt, k_pool, k_corr, k_train, k_eval = jax.random.split(key, 5)
        prompt = jax.random.randint(k_prompt, (cfg.k_max,), 0, counts.n_real)
        ids, mask = data.real_ids[prompt], data.real_mask[prompt]
        synth = _sample(cfg, model.params, k_pool, data, ids, mask)
        valid_synth = jnp.arange(cfg.k_max) < counts.k_synth
        if cfg.correct:
            correct = physics.make_corrector(
                counts.gamma, backend=cfg.backend, corrector=cfg.corrector
            )
            used = correct(k_corr, synth, mask=valid_synth)
            # The interface returns samples only; a corrected row is one that changed (a
            # kept or fallen motion comes back bit for bit).
            corrected = jnp.any(used != synth, axis=(1, 2))
        else:
            used, corrected = synth, jnp.zeros(cfg.k_max, bool)
        valid_real = jnp.arange(data.real_x.shape[0]) < counts.n_real
        train = TrainSet(
            jnp.concatenate([data.real_x, used]),
            jnp.concatenate([data.real_ids, ids]),
            jnp.concatenate([data.real_mask, mask]),
            jnp.concatenate([valid_real, valid_synth]),
        )
        new, losses, samples = _finetune_and_sample(
            optimizer, cfg, model, k_train, k_eval, data, train
        )
        return StepOut(new, losses, samples, synth, used, valid_synth, corrected)

    return step
