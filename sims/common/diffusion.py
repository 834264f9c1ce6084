"""DDPM arithmetic shared by the digit (``sims.digits.ddpm``) and motion
(``sims.motion.generator``) diffusion models: the forward noising of a training batch,
timestep embedding, respacing, and the reverse step's Gaussian posterior (Ho et al. 2020,
eq. 4 and 6–7; Nichol & Dhariwal 2021 §4).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["forward_noise", "posterior_sample", "respaced_timesteps", "sinusoid"]

F32 = jnp.float32


def sinusoid(t: Float[Array, ""], dim: int) -> Float[Array, " dim"]:
    """Transformer-style sinusoidal embedding of a timestep (``dim`` even)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=F32) / half)
    ang = jnp.asarray(t).astype(F32) * freqs
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)])


def respaced_timesteps(steps: int, sample_steps: int) -> np.ndarray:
    """The ``sample_steps`` timestep indices (0-based, increasing, evenly spaced, last =
    steps − 1) a strided sampler visits; all of them when ``sample_steps`` = steps."""
    return np.unique(np.round(np.linspace(0, steps - 1, sample_steps)).astype(np.int32))


def posterior_sample(key: jax.Array, x: Array, x0: Array, a: Array, a_prev: Array) -> Array:
    """A draw of q(x_s | x_t = x, x̂₀ = x0) between visited timesteps s < t with ᾱ_t = a,
    ᾱ_s = a_prev (β = 1 − a/a_prev); at the last step a_prev = 1, so it returns x0."""
    beta = 1.0 - a / a_prev
    mean = (jnp.sqrt(a_prev) * beta / (1.0 - a)) * x0 + (
        jnp.sqrt(1.0 - beta) * (1.0 - a_prev) / (1.0 - a)
    ) * x
    var = beta * (1.0 - a_prev) / (1.0 - a)
    return mean + jnp.sqrt(var) * jax.random.normal(key, x.shape, F32)


def forward_noise(
    k_t: jax.Array, k_eps: jax.Array, x0: Float[Array, "b ..."], alpha_bar: Float[Array, " S"]
) -> tuple[Array, Array, Array]:
    """A training batch's uniform timesteps t, noise ε and x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε
    (Ho et al. 2020, eq. 4). Returns ``(t [b], eps, x_t)``."""
    b = x0.shape[0]
    t = jax.random.randint(k_t, (b,), 0, alpha_bar.shape[0])
    eps = jax.random.normal(k_eps, x0.shape, F32)
    ab = alpha_bar[t].reshape((b,) + (1,) * (x0.ndim - 1))
    return t, eps, jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * eps
