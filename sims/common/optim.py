"""The optimisers of the learned models, one object per hyper-parameter setting.

The jitted training steps close over (or take as a static argument) an optax
``GradientTransformation``, which hashes by the identity of its functions: a fresh
``optax.adam(lr)`` per call would compile the step again. These constructors return the same
object for the same hyper-parameters, so every chain, generation and run in a process shares
one compilation per setting (tests rely on it to stay fast).
"""

from __future__ import annotations

import functools

import optax

__all__ = ["adam", "adam_linear_decay", "adam_warmup_cosine", "adamw"]


@functools.cache
def adam(lr: float) -> optax.GradientTransformation:
    """Constant-rate Adam (the fine-tuning generations; its state carries over)."""
    return optax.adam(lr)


@functools.cache
def adamw(lr: float, weight_decay: float) -> optax.GradientTransformation:
    """AdamW (the digit classifier)."""
    return optax.adamw(lr, weight_decay=weight_decay)


@functools.cache
def adam_linear_decay(lr: float, steps: int) -> optax.GradientTransformation:
    """Adam with the rate decayed linearly from ``lr`` to 0 over ``steps`` (paper §4,
    digit generation 0)."""
    return optax.adam(optax.linear_schedule(lr, 0.0, steps))


@functools.cache
def adam_warmup_cosine(lr: float, steps: int) -> optax.GradientTransformation:
    """Adam with a linear warm-up (≤ 100 steps) then cosine decay to lr/10 (motion
    generation 0)."""
    warmup = min(100, steps // 10 + 1)
    return optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, warmup, steps, lr / 10))
