"""Text-to-motion diffusion generator shaped like MDM (Tevet et al. 2023; paper §4 "Human
motion").

As MDM: a transformer encoder over the frames of a motion with one extra token carrying the
condition (text embedding + diffusion-time embedding); it predicts the clean motion x₀
(not the noise); condition dropout in training and classifier-free guidance in sampling
(``x̂₀ = x̂₀(∅) + w·(x̂₀(c) − x̂₀(∅))``, MDM's w = 2.5). Ours differs where offline parts force
it or CPU time asks for it:

* **Text encoder** — no pretrained CLIP is available offline, so the descriptions are
  encoded by a small learned encoder trained with the generator (token + position
  embeddings, a per-token MLP, masked mean pooling, a linear map), over the evaluator's
  word tokenizer (``text.Tokenizer``: the vocabulary of the dataset's templated
  descriptions).
* **Schedule** — cosine ᾱ (Nichol & Dhariwal 2021) over ``diffusion_steps`` (MDM: 1000,
  cosine), sampled by ancestral DDPM steps on a respaced subsequence of ``sample_steps``
  timesteps (the respacing of improved-diffusion, which MDM's code base inherits).
* **Loss** — the simple x₀ MSE only (MDM adds velocity/foot-contact/position terms).
* **Size** — the default (width 64, 2 layers) trains on this CPU in about a minute;
  ``Config.gpu()`` is MDM-sized (width 512, 8 layers, 4 heads).

Motions live in the feature space of ``sims.motion.representation`` ``[T, 30]``; the
network works on features standardised by the real training set's per-feature mean and
std (fields of the model with gradients stopped, so Adam leaves them unchanged).

All functions are pure: parameters and optimiser state in, new ones out; the training loop
and the sampler are ``lax.scan`` s, so both compose into one jitted generation step
(``sims.motion.loop``).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int

from sims.common.diffusion import forward_noise, posterior_sample, sinusoid
from sims.motion.representation import N_FEATURES
from theory._checks import check_nonneg, check_positive_int

__all__ = [
    "Config",
    "Denoiser",
    "cosine_alpha_bar",
    "init",
    "loss",
    "sample",
    "train_steps",
]

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class Config:
    """Generator architecture, diffusion and sampling.

    Attributes:
        width: transformer width (MDM: 512).
        depth: transformer encoder layers (MDM: 8).
        heads: attention heads (MDM: 4).
        ff: width of the feed-forward layers (MDM: 1024).
        text_width: width of the text encoder's token embeddings.
        max_len: tokens per description.
        diffusion_steps: T of the cosine schedule (MDM: 1000).
        sample_steps: respaced reverse steps of the sampler (= diffusion_steps: plain DDPM).
        guidance: classifier-free guidance scale w (MDM: 2.5; 1 is no guidance).
        cond_dropout: probability of the null condition in training (MDM: 0.1).
        seed: initialisation.
    """

    width: int = 64
    depth: int = 2
    heads: int = 4
    ff: int = 128
    text_width: int = 32
    max_len: int = 24
    diffusion_steps: int = 1000
    sample_steps: int = 25
    guidance: float = 2.5
    cond_dropout: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in (
            "width",
            "depth",
            "heads",
            "ff",
            "text_width",
            "max_len",
            "diffusion_steps",
            "sample_steps",
        ):
            check_positive_int(name, getattr(self, name))
        if self.width % 2:
            raise ValueError(f"width must be even (sinusoidal time embedding); got {self.width}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        if self.sample_steps > self.diffusion_steps:
            raise ValueError(
                f"sample_steps must be <= diffusion_steps={self.diffusion_steps}; "
                f"got {self.sample_steps}"
            )
        check_nonneg("guidance", self.guidance, allow_inf=False)
        if not 0 <= self.cond_dropout < 1:
            raise ValueError(f"cond_dropout must lie in [0, 1); got {self.cond_dropout}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}")

    @classmethod
    def smoke(cls) -> Config:
        """Tests: a tiny network and a short schedule."""
        return cls(
            width=16, depth=1, heads=2, ff=32, text_width=16, diffusion_steps=100, sample_steps=4
        )

    @classmethod
    def gpu(cls) -> Config:
        """MDM-sized network (width 512, 8 layers, 4 heads, ff 1024), 100 sampling steps."""
        return cls(width=512, depth=8, heads=4, ff=1024, text_width=128, sample_steps=100)


# ------------------------------------------------------------------ schedule


def cosine_alpha_bar(steps: int, s: float = 0.008) -> np.ndarray:
    """ᾱ_t, t = 1..steps, of the cosine schedule (Nichol & Dhariwal 2021, eq. 17), with
    β_t clipped at 0.999 as there. Float64 NumPy, strictly decreasing in (0, 1)."""
    u = np.arange(steps + 1) / steps
    f = np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
    beta = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1 - beta)


# ------------------------------------------------------------------ network


class Block(eqx.Module):
    """Pre-norm transformer encoder layer (self-attention, GELU feed-forward)."""

    norm1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP

    def __init__(self, width: int, heads: int, ff: int, *, key):
        k1, k2 = jax.random.split(key)
        self.norm1 = eqx.nn.LayerNorm(width)
        self.attn = eqx.nn.MultiheadAttention(heads, width, key=k1)
        self.norm2 = eqx.nn.LayerNorm(width)
        self.mlp = eqx.nn.MLP(width, width, ff, 1, activation=jax.nn.gelu, key=k2)

    def __call__(self, h: Float[Array, "n w"]) -> Float[Array, "n w"]:
        a = jax.vmap(self.norm1)(h)
        h = h + self.attn(a, a, a)
        return h + jax.vmap(self.mlp)(jax.vmap(self.norm2)(h))


class Denoiser(eqx.Module):
    """x̂₀(x_t, t, c): the MDM-shaped network plus its text encoder and feature scaling."""

    token: eqx.nn.Embedding
    text_pos: Float[Array, "L e"]
    text_mlp: eqx.nn.MLP
    text_out: eqx.nn.Linear
    null: Float[Array, " w"]
    time_mlp: eqx.nn.MLP
    inp: eqx.nn.Linear
    frame_pos: Float[Array, "T1 w"]
    blocks: tuple[Block, ...]
    out_norm: eqx.nn.LayerNorm
    out: eqx.nn.Linear
    feat_mean: Float[Array, " d"]
    feat_std: Float[Array, " d"]

    def __init__(self, cfg: Config, vocab_size: int, frames: int, feat_mean, feat_std, *, key):
        k = jax.random.split(key, 8 + cfg.depth)
        e, w = cfg.text_width, cfg.width
        self.token = eqx.nn.Embedding(vocab_size, e, key=k[0])
        self.text_pos = 0.02 * jax.random.normal(k[1], (cfg.max_len, e))
        self.text_mlp = eqx.nn.MLP(e, e, 2 * e, 1, activation=jax.nn.gelu, key=k[2])
        self.text_out = eqx.nn.Linear(e, w, key=k[3])
        self.null = 0.02 * jax.random.normal(k[4], (w,))
        self.time_mlp = eqx.nn.MLP(w, w, w, 1, activation=jax.nn.silu, key=k[5])
        self.inp = eqx.nn.Linear(N_FEATURES, w, key=k[6])
        self.frame_pos = 0.02 * jax.random.normal(k[7], (frames + 1, w))
        self.blocks = tuple(Block(w, cfg.heads, cfg.ff, key=kk) for kk in k[8:])
        self.out_norm = eqx.nn.LayerNorm(w)
        self.out = eqx.nn.Linear(w, N_FEATURES, key=jax.random.fold_in(key, 99))
        self.feat_mean = jnp.asarray(feat_mean, F32)
        self.feat_std = jnp.asarray(feat_std, F32)

    def condition(self, ids: Int[Array, " L"], mask: Bool[Array, " L"]) -> Float[Array, " w"]:
        """The text condition vector of one tokenised description."""
        h = jax.vmap(self.token)(ids) + self.text_pos
        h = h + jax.vmap(self.text_mlp)(h)
        m = mask.astype(h.dtype)[:, None]
        return self.text_out(jnp.sum(h * m, 0) / jnp.maximum(jnp.sum(m), 1.0))

    def __call__(
        self, x_t: Float[Array, "T d"], t: Int[Array, ""], c: Float[Array, " w"]
    ) -> Float[Array, "T d"]:
        """x̂₀ in standardised feature space from x_t (standardised) at timestep index t."""
        w = self.null.shape[0]
        cond = c + self.time_mlp(sinusoid(t, w))
        h = jnp.concatenate([cond[None], jax.vmap(self.inp)(x_t)]) + self.frame_pos
        for block in self.blocks:
            h = block(h)
        return jax.vmap(self.out)(jax.vmap(self.out_norm)(h[1:]))

    def standardise(self, x: Float[Array, "*b T d"]) -> Float[Array, "*b T d"]:
        return (x - jax.lax.stop_gradient(self.feat_mean)) / jax.lax.stop_gradient(self.feat_std)

    def unstandardise(self, z: Float[Array, "*b T d"]) -> Float[Array, "*b T d"]:
        return z * jax.lax.stop_gradient(self.feat_std) + jax.lax.stop_gradient(self.feat_mean)


def init(
    cfg: Config, vocab_size: int, real_features: Float[np.ndarray, "n T d"]
) -> tuple[Denoiser, Denoiser]:
    """A fresh denoiser, split into (trainable float leaves, static rest) by ``eqx.partition``.

    The feature scaling comes from ``real_features`` (std floored at 1e-3).
    """
    x = np.asarray(real_features, np.float64)
    if x.ndim != 3 or x.shape[-1] != N_FEATURES:
        raise ValueError(f"real_features must have shape [n, T, {N_FEATURES}]; got {x.shape}")
    flat = x.reshape(-1, N_FEATURES)
    model = Denoiser(
        cfg,
        vocab_size,
        x.shape[1],
        flat.mean(0),
        np.maximum(flat.std(0), 1e-3),
        key=jax.random.key(cfg.seed),
    )
    return eqx.partition(model, eqx.is_inexact_array)


# ------------------------------------------------------------------ training


def loss(
    params,
    static,
    key: jax.Array,
    x: Float[Array, "B T d"],
    ids: Int[Array, "B L"],
    mask: Bool[Array, "B L"],
    alpha_bar: Float[Array, " S"],
    cond_dropout: float,
) -> Float[Array, ""]:
    """Mean squared x₀ error at uniform timesteps, condition dropped with ``cond_dropout``."""
    model = eqx.combine(params, static)
    k_t, k_eps, k_drop = jax.random.split(key, 3)
    x0 = model.standardise(x)
    t, _, x_t = forward_noise(k_t, k_eps, x0, alpha_bar)
    c = jax.vmap(model.condition)(ids, mask)
    drop = jax.random.bernoulli(k_drop, cond_dropout, (x.shape[0],))
    c = jnp.where(drop[:, None], model.null, c)
    pred = jax.vmap(model)(x_t, t, c)
    return jnp.mean((pred - x0) ** 2)


def train_steps(
    params,
    opt_state,
    key: jax.Array,
    x: Float[Array, "N T d"],
    ids: Int[Array, "N L"],
    mask: Bool[Array, "N L"],
    valid: Bool[Array, " N"],
    *,
    static,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch: int,
    alpha_bar: Float[Array, " S"],
    cond_dropout: float,
):
    """``steps`` optimiser steps on minibatches drawn uniformly (with replacement) from the
    rows of ``x`` where ``valid`` is True (a traced mask: the rest of the buffer is padding).

    Returns:
        ``(params, opt_state, losses [steps])``.
    """

    p_row = valid.astype(F32) / jnp.sum(valid)

    def step(carry, k):
        p, s = carry
        k_idx, k_loss = jax.random.split(k)
        idx = jax.random.choice(k_idx, x.shape[0], (batch,), p=p_row)
        lv, g = jax.value_and_grad(loss)(
            p, static, k_loss, x[idx], ids[idx], mask[idx], alpha_bar, cond_dropout
        )
        u, s = optimizer.update(g, s, p)
        return (optax.apply_updates(p, u), s), lv

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jax.random.split(key, steps)
    )
    return params, opt_state, losses


# ------------------------------------------------------------------ sampling


def sample(
    params,
    static,
    key: jax.Array,
    ids: Int[Array, "B L"],
    mask: Bool[Array, "B L"],
    *,
    alpha_bar: Float[Array, " S"],
    timesteps: Int[Array, " K"],
    guidance: float,
    frames: int,
) -> Float[Array, "B T d"]:
    """Ancestral sampling on the respaced ``timesteps`` with classifier-free guidance.

    Between visited timesteps s < t the step uses β = 1 − ᾱ_t/ᾱ_s and the Gaussian posterior
    q(x_s | x_t, x̂₀) (DDPM eq. 7); at the last step ᾱ_s = 1, so the output is x̂₀ itself.

    Returns:
        Motions in (unstandardised) feature space ``[B, frames, 30]``.
    """
    model = eqx.combine(params, static)
    b = ids.shape[0]
    c = jax.vmap(model.condition)(ids, mask)
    c2 = jnp.concatenate([c, jnp.broadcast_to(model.null, c.shape)])
    ab = alpha_bar[timesteps]
    ab_prev = jnp.concatenate([jnp.ones(1, ab.dtype), ab[:-1]])
    k_init, k_steps = jax.random.split(key)
    x = jax.random.normal(k_init, (b, frames, N_FEATURES), F32)

    def body(x, inp):
        i, k = inp
        t = timesteps[i]
        pred = jax.vmap(model, in_axes=(0, None, 0))(jnp.concatenate([x, x]), t, c2)
        x0 = pred[b:] + guidance * (pred[:b] - pred[b:])
        a, a_prev = ab[i].astype(F32), ab_prev[i].astype(F32)
        return posterior_sample(k, x, x0, a, a_prev), None

    idx = jnp.arange(timesteps.shape[0])[::-1]
    x, _ = jax.lax.scan(body, x, (idx, jax.random.split(k_steps, timesteps.shape[0])))
    return model.unstandardise(x)
