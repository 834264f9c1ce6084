"""Class-conditional DDPM in Equinox + Optax: schedule, U-Net, loss, train steps, sampler.

Paper: §4 "Digits toy": 400 steps, linear β from 1e-4 to 0.02, ε-prediction, classifier-free
guidance with weight w = 0.5 and label dropout 0.1. The network is a small U-Net sized per
resolution (``channels``: one entry per level; 8×8 uses two levels, 28×28 three).
Everything runs in JAX's default float32 (the networks are initialised in the default float
dtype; the schedule, noise and inputs are float32 explicitly).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from sims.common.diffusion import forward_noise, posterior_sample, respaced_timesteps, sinusoid

F32 = jnp.float32
NULL_LABEL = 10  # the "no label" class used for classifier-free guidance


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Linear β schedule (paper: T = 400, β from 1e-4 to 0.02)."""

    steps: int = 400
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def alpha_bar(self) -> Float[Array, " T"]:
        betas = np.linspace(self.beta_start, self.beta_end, self.steps, dtype=np.float64)
        return jnp.asarray(np.cumprod(1.0 - betas), F32)


class ResBlock(eqx.Module):
    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    emb: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, cin: int, cout: int, emb_dim: int, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.norm1 = eqx.nn.GroupNorm(min(8, cin), cin)
        self.conv1 = eqx.nn.Conv2d(cin, cout, 3, padding=1, key=k1)
        self.emb = eqx.nn.Linear(emb_dim, cout, key=k2)
        self.norm2 = eqx.nn.GroupNorm(min(8, cout), cout)
        self.conv2 = eqx.nn.Conv2d(cout, cout, 3, padding=1, key=k3)
        self.skip = None if cin == cout else eqx.nn.Conv2d(cin, cout, 1, key=k4)

    def __call__(self, x, e):
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.emb(e)[:, None, None]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class UNet(eqx.Module):
    """ε-network ε_θ(x_t, t, y) for one image (C, H, W); vmap over the batch.

    Levels ``channels[0] > ...``: one ResBlock per level on the way down (then 2× average
    pooling), a middle block, and one ResBlock per level on the way up (nearest upsampling,
    skip concatenation). Time and class embeddings are summed and added in every block.
    """

    t_mlp: eqx.nn.MLP
    label_emb: eqx.nn.Embedding
    conv_in: eqx.nn.Conv2d
    down: tuple
    mid: ResBlock
    up: tuple
    norm_out: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d
    emb_dim: int = eqx.field(static=True)

    def __init__(self, channels: tuple[int, ...], in_ch: int = 1, emb_dim: int = 64, *, key):
        keys = iter(jax.random.split(key, 4 + 2 * len(channels) + 1))
        self.emb_dim = emb_dim
        self.t_mlp = eqx.nn.MLP(
            emb_dim, emb_dim, emb_dim, 1, activation=jax.nn.silu, key=next(keys)
        )
        self.label_emb = eqx.nn.Embedding(NULL_LABEL + 1, emb_dim, key=next(keys))
        self.conv_in = eqx.nn.Conv2d(in_ch, channels[0], 3, padding=1, key=next(keys))
        down, prev = [], channels[0]
        for c in channels:
            down.append(ResBlock(prev, c, emb_dim, next(keys)))
            prev = c
        self.down = tuple(down)
        self.mid = ResBlock(prev, prev, emb_dim, next(keys))
        up = []
        for c in reversed(channels):
            up.append(ResBlock(prev + c, c, emb_dim, next(keys)))
            prev = c
        self.up = tuple(up)
        self.norm_out = eqx.nn.GroupNorm(min(8, prev), prev)
        self.conv_out = eqx.nn.Conv2d(prev, in_ch, 3, padding=1, key=next(keys))

    def __call__(self, x: Float[Array, "c h w"], t: Int[Array, ""], y: Int[Array, ""]):
        e = self.t_mlp(sinusoid(t, self.emb_dim)) + self.label_emb(y)
        h = self.conv_in(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < len(self.down) - 1:
                c, hh, ww = h.shape
                h = h.reshape(c, hh // 2, 2, ww // 2, 2).mean((2, 4))
        h = self.mid(h, e)
        for block in self.up:
            s = skips.pop()
            if h.shape[1:] != s.shape[1:]:
                h = jnp.repeat(jnp.repeat(h, 2, 1), 2, 2)
            h = block(jnp.concatenate([h, s], 0), e)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))


def default_channels(side: int) -> tuple[int, ...]:
    """Network width per resolution: 8×8 → (16, 32) (CPU); 28×28 → (32, 64, 128) (28 → 14 → 7)."""
    return (16, 32) if side < 16 else (32, 64, 128)


def init_model(key: jax.Array, side: int, channels: tuple[int, ...] | None = None) -> UNet:
    chans = channels or default_channels(side)
    if side % (2 ** (len(chans) - 1)):
        raise ValueError(
            f"image side {side} must be divisible by 2**(levels-1) for channels {chans}"
        )
    return UNet(chans, key=key)


def loss_fn(
    params,
    static,
    key: jax.Array,
    x0: Float[Array, "b c h w"],
    y: Int[Array, " b"],
    alpha_bar: Float[Array, " T"],
    label_dropout: float,
) -> Float[Array, ""]:
    """ε-prediction MSE at uniform t, labels dropped to NULL with probability ``label_dropout``."""
    model = eqx.combine(params, static)
    kt, kn, kd = jax.random.split(key, 3)
    t, eps, xt = forward_noise(kt, kn, x0, alpha_bar)
    y = jnp.where(jax.random.uniform(kd, (x0.shape[0],)) < label_dropout, NULL_LABEL, y)
    pred = jax.vmap(model)(xt, t, y)
    return jnp.mean((pred - eps) ** 2)


def split(model):
    return eqx.partition(model, eqx.is_inexact_array)


@partial(jax.jit, static_argnames=("static", "optimizer", "label_dropout"), donate_argnums=(0, 1))
def train_step(
    params,
    opt_state,
    key: jax.Array,
    xb: Float[Array, "b c h w"],
    yb: Int[Array, " b"],
    alpha_bar: Float[Array, " T"],
    *,
    static,
    optimizer: optax.GradientTransformation,
    label_dropout: float = 0.1,
):
    """One Adam step on a minibatch. Returns (params, opt_state, loss)."""
    loss, g = jax.value_and_grad(loss_fn)(params, static, key, xb, yb, alpha_bar, label_dropout)
    updates, opt_state = optimizer.update(g, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def batch_order(key: jax.Array, n: int, n_steps: int, batch: int) -> np.ndarray:
    """Minibatch indices (n_steps, batch): consecutive shuffled epochs of n items.

    One epoch of N images is ⌈N/batch⌉ steps (the last batch wraps into the next shuffle),
    so "one epoch of real ∪ synthetic" (paper) is a fixed step count and shapes stay static.
    """
    epochs = -(-n_steps * batch // n)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, epochs))
    return np.asarray(perms).reshape(-1)[: n_steps * batch].reshape(n_steps, batch)


def train_steps(
    params,
    opt_state,
    key: jax.Array,
    x: Float[Array, "n c h w"],
    y: Int[Array, " n"],
    alpha_bar: Float[Array, " T"],
    *,
    static,
    optimizer: optax.GradientTransformation,
    n_steps: int,
    batch: int,
    label_dropout: float = 0.1,
):
    """``n_steps`` jitted Adam steps over shuffled epochs of (x, y).

    A Python loop over one compiled step: XLA:CPU runs convolutions inside a ``while`` loop
    (what ``lax.scan`` lowers to) about 7–25× slower than at top level (measured here), and
    the per-step dispatch is negligible beside a step.

    Returns:
        (params, opt_state, losses[n_steps]) as NumPy losses.
    """
    k_perm, k_loss = jax.random.split(key)
    order = batch_order(k_perm, x.shape[0], n_steps, batch)
    x, y = jnp.asarray(x, F32), jnp.asarray(y, jnp.int32)
    params = jax.tree_util.tree_map(jnp.copy, params)  # the step donates its inputs
    opt_state = jax.tree_util.tree_map(jnp.copy, opt_state)
    losses = []
    for i in range(n_steps):
        idx = jnp.asarray(order[i])
        params, opt_state, loss = train_step(
            params,
            opt_state,
            jax.random.fold_in(k_loss, i),
            x[idx],
            y[idx],
            alpha_bar,
            static=static,
            optimizer=optimizer,
            label_dropout=label_dropout,
        )
        losses.append(loss)
    return params, opt_state, np.asarray(jnp.stack(losses)) if losses else np.zeros(0)


def respace(schedule: Schedule, sample_steps: int):
    """Strided sampler (Nichol & Dhariwal 2021): ``sample_steps`` evenly spaced timesteps.

    Returns (timesteps, ᾱ at them, ᾱ at the previous kept step); equals plain DDPM when
    ``sample_steps`` = T.
    """
    T = schedule.steps
    ts = respaced_timesteps(T, sample_steps)
    betas = np.linspace(schedule.beta_start, schedule.beta_end, T, dtype=np.float64)
    ab = np.cumprod(1.0 - betas)[ts]
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    return jnp.asarray(ts), jnp.asarray(ab, F32), jnp.asarray(ab_prev, F32)


def _denoise(model, x, labels, t, a, a_prev, key, guidance):
    """One reverse step x_t → x_{t'} with classifier-free guidance.

    ε̂ = (1 + w) ε_θ(x, t, y) − w ε_θ(x, t, ∅); x̂₀ is clipped to [−1, 1] and the posterior
    q(x_{t'} | x_t, x̂₀) of the (respaced) chain is sampled.
    """
    n = labels.shape[0]
    tt = jnp.full((2 * n,), t)
    both = jax.vmap(model)(
        jnp.concatenate([x, x]), tt, jnp.concatenate([labels, jnp.full_like(labels, NULL_LABEL)])
    )
    eps = (1.0 + guidance) * both[:n] - guidance * both[n:]
    x0 = jnp.clip((x - jnp.sqrt(1.0 - a) * eps) / jnp.sqrt(a), -1.0, 1.0)
    return posterior_sample(key, x, x0, a, a_prev)


def _sampler_inputs(key, n, shape, schedule, sample_steps):
    ts, ab, ab_prev = respace(schedule, sample_steps)
    k0, kloop = jax.random.split(key)
    x = jax.random.normal(k0, (n, *shape), F32)
    keys = jax.random.split(kloop, ts.shape[0])
    return x, (ts[::-1], ab[::-1], ab_prev[::-1], keys)


@partial(jax.jit, static_argnames=("static", "schedule", "shape", "sample_steps"))
def sample_scan(
    params,
    key: jax.Array,
    labels: Int[Array, " n"],
    guidance: Float[Array, ""] | float,
    *,
    static,
    schedule: Schedule,
    shape: tuple[int, int, int],
    sample_steps: int,
) -> Float[Array, "n c h w"]:
    """Ancestral sampling with classifier-free guidance as one ``lax.scan`` (GPU default).

    Returns samples clipped to [−1, 1].
    """
    model = eqx.combine(params, static)
    x, xs = _sampler_inputs(key, labels.shape[0], shape, schedule, sample_steps)

    def step(x, inp):
        t, a, a_prev, k = inp
        return _denoise(model, x, labels, t, a, a_prev, k, guidance), None

    x, _ = jax.lax.scan(step, x, xs)
    return jnp.clip(x, -1.0, 1.0)


@partial(jax.jit, static_argnames=("static",))
def _denoise_jit(params, x, labels, t, a, a_prev, key, guidance, *, static):
    return _denoise(eqx.combine(params, static), x, labels, t, a, a_prev, key, guidance)


def sample_loop(
    params,
    key: jax.Array,
    labels: Int[Array, " n"],
    guidance: Float[Array, ""] | float,
    *,
    static,
    schedule: Schedule,
    shape: tuple[int, int, int],
    sample_steps: int,
) -> Float[Array, "n c h w"]:
    """The same chain as ``sample_scan`` (same keys, same step), driven from Python.

    The CPU default: XLA:CPU runs the U-Net's convolutions inside a ``while`` loop several
    times slower than at top level (7× measured on 8×8 digits).
    """
    labels = jnp.asarray(labels, jnp.int32)
    x, (ts, ab, ab_prev, keys) = _sampler_inputs(
        key, labels.shape[0], shape, schedule, sample_steps
    )
    g = jnp.asarray(guidance, F32)
    for i in range(ts.shape[0]):
        x = _denoise_jit(params, x, labels, ts[i], ab[i], ab_prev[i], keys[i], g, static=static)
    return jnp.clip(x, -1.0, 1.0)


def sample(params, key, labels, guidance, *, static, schedule, shape, sample_steps, sampler="auto"):
    """Sampler by name: ``scan``, ``loop`` or ``auto`` (loop on CPU, scan elsewhere)."""
    if sampler == "auto":
        sampler = "loop" if jax.default_backend() == "cpu" else "scan"
    fn = {"scan": sample_scan, "loop": sample_loop}.get(sampler)
    if fn is None:
        raise ValueError(f"sampler must be 'scan', 'loop' or 'auto'; got {sampler!r}")
    return fn(
        params,
        key,
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(guidance, F32),
        static=static,
        schedule=schedule,
        shape=shape,
        sample_steps=sample_steps,
    )
