"""Correctors and retrain: identities, Monte-Carlo against exact laws (k = 5 standard errors)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

from theory import gaussian as gauss
from theory import operators as ops

K_SE = 5.0
TARGET = gauss.standard(2)


def batch(seed=0, k=25):
    return jax.random.normal(jax.random.key(seed), (k, 2)) * 0.8 + jnp.asarray([[0.7, -0.3]])


def many(corrector, x, reps=4000, mask=None):
    keys = jax.random.split(jax.random.key(42), reps)
    return np.asarray(jax.jit(jax.vmap(lambda k: corrector(k, x, mask=mask)))(keys))


def test_ideal_gamma_zero_is_identity_and_keeps_one_over_one_plus_gamma():
    x = batch()
    np.testing.assert_array_equal(ops.ideal(0.0, TARGET)(jax.random.key(0), x), x)
    for gamma in (0.5, 3.0):
        out = many(ops.ideal(gamma, TARGET), x, reps=2000)
        kept = np.all(out == np.asarray(x)[None], axis=-1).mean()
        p = 1 / (1 + gamma)
        assert abs(kept - p) < K_SE * np.sqrt(p * (1 - p) / (2000 * 25))


def exact_histogram_mixture(x, gamma, bins=10):
    """Moments of (1−t)·hist + t·N(0, I), hist from NumPy's own histogramdd."""
    x = np.asarray(x)
    counts, edges = np.histogramdd(x, bins=bins)
    w = counts / counts.sum()
    cx = 0.5 * (edges[0][1:] + edges[0][:-1])
    cy = 0.5 * (edges[1][1:] + edges[1][:-1])
    widths = np.array([edges[0][1] - edges[0][0], edges[1][1] - edges[1][0]])
    centers = np.stack(np.meshgrid(cx, cy, indexing="ij"), -1).reshape(-1, 2)
    w = w.reshape(-1)
    mean_h = w @ centers
    second_h = np.einsum("k,ki,kj->ij", w, centers, centers) + np.diag(widths**2 / 12)
    t = gamma / (1 + gamma)
    mean = (1 - t) * mean_h
    second = (1 - t) * second_h + t * np.eye(2)
    return mean, second - np.outer(mean, mean)


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_histogram_sampler_matches_mixture_moments(gamma):
    x = batch(1)
    out = many(ops.histogram(gamma, TARGET), x).reshape(-1, 2)
    mean, cov = exact_histogram_mixture(x, gamma)
    se = np.sqrt(np.diag(cov) / out.shape[0])
    assert np.all(np.abs(out.mean(0) - mean) < K_SE * se)
    np.testing.assert_allclose(np.cov(out.T), cov, atol=0.03)


def reference_law_moments(x, gamma, bins=10, grid=801, half=7.0):
    """Moments of the official sampler's accepted law ∝ min(φ, f/M), by quadrature (NumPy)."""
    x = np.asarray(x)
    hist, xe, ye = np.histogram2d(x[:, 0], x[:, 1], bins=bins, density=True)
    t = gamma / (1 + gamma)
    phi0 = 1 / (2 * np.pi)
    envelope = ((1 - t) * hist.max() + t * phi0) / phi0
    g = np.linspace(-half, half, grid)
    cx, cy = np.meshgrid(g, g, indexing="ij")
    phi = phi0 * np.exp(-0.5 * (cx**2 + cy**2))
    ix = np.trunc((cx - xe[0]) / (xe[1] - xe[0])).astype(int)
    iy = np.trunc((cy - ye[0]) / (ye[1] - ye[0])).astype(int)
    inside = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)
    emp = np.where(inside, hist[np.clip(ix, 0, bins - 1), np.clip(iy, 0, bins - 1)], 0.0)
    dens = np.minimum(phi, ((1 - t) * emp + t * phi) / envelope)
    dens /= dens.sum()
    pts = np.stack([cx, cy], -1).reshape(-1, 2)
    mean = dens.reshape(-1) @ pts
    cov = np.einsum("k,ki,kj->ij", dens.reshape(-1), pts - mean, pts - mean)
    return mean, cov


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_histogram_reference_matches_its_accepted_law(gamma):
    x = batch(2)
    out = many(ops.histogram_reference(gamma, TARGET), x).reshape(-1, 2)
    assert np.all(np.isfinite(out))
    mean, cov = reference_law_moments(x, gamma)
    se = np.sqrt(np.diag(cov) / out.shape[0])
    assert np.all(np.abs(out.mean(0) - mean) < K_SE * se)
    np.testing.assert_allclose(np.cov(out.T), cov, atol=0.03)


def reference_law_cells(x, gamma, bins=10, sub=40):
    """Cell probabilities of the official accepted law ∝ min(φ, f̃/M) (NumPy/SciPy).

    Cells are the floor cells i, j ∈ {−1, …, bins − 1} of the histogram grid (cell −1 reads
    bin 0 under the truncating lookup) plus everything outside them, where f̃ = t·φ. Each
    cell is integrated by a sub × sub midpoint rule (the integrand is smooth inside a cell);
    the outside mass is exact through Φ.
    """
    x = np.asarray(x, float)
    hist, xe, ye = np.histogram2d(x[:, 0], x[:, 1], bins=bins, density=True)
    lo, w = np.array([xe[0], ye[0]]), np.array([xe[1] - xe[0], ye[1] - ye[0]])
    t = gamma / (1 + gamma) if np.isfinite(gamma) else 1.0
    phi0 = 1 / (2 * np.pi)
    envelope = ((1 - t) * hist.max() + t * phi0) / phi0
    mid = (np.arange(sub) + 0.5) / sub
    mass = np.zeros((bins + 1, bins + 1))
    for i in range(-1, bins):
        for j in range(-1, bins):
            cx = lo[0] + (i + mid) * w[0]
            cy = lo[1] + (j + mid) * w[1]
            gx, gy = np.meshgrid(cx, cy, indexing="ij")
            phi = phi0 * np.exp(-0.5 * (gx**2 + gy**2))
            f = (1 - t) * hist[max(i, 0), max(j, 0)] + t * phi
            mass[i + 1, j + 1] = np.minimum(phi, f / envelope).mean() * w[0] * w[1]
    inside = np.prod(ndtr(lo + bins * w) - ndtr(lo - w))
    outside = min(1.0, t / envelope) * (1 - inside)
    z = mass.sum() + outside
    return mass / z, outside / z, lo, w


@pytest.mark.parametrize("gamma", [0.0, 1.0, np.inf])
def test_histogram_reference_cell_probabilities(gamma):
    """Every cell's frequency (and the outside's) within 5 SE of the official law's mass."""
    x = batch(6)
    out = many(ops.histogram_reference(gamma, TARGET), x, reps=8000).reshape(-1, 2)
    assert np.all(np.isfinite(out))
    probs, p_out, lo, w = reference_law_cells(x, gamma)
    idx = np.floor((out - lo) / w).astype(int) + 1
    inside = np.all((idx >= 0) & (idx <= 10), axis=1)
    counts = np.zeros_like(probs)
    np.add.at(counts, (idx[inside, 0], idx[inside, 1]), 1)
    n = out.shape[0]
    observed = np.append(counts.ravel(), (~inside).sum())
    expected = n * np.append(probs.ravel(), p_out)
    slack = K_SE * np.sqrt(expected * (1 - expected / n)) + 1e-4 * n
    assert np.all(np.abs(observed - expected) <= slack), np.max(np.abs(observed - expected) / slack)


@pytest.mark.heavy
def test_masked_rows_untouched_and_histogram_ignores_them():
    x = batch(3)
    mask = jnp.arange(25) < 10
    poisoned = x.at[10:].set(1e6)  # would wreck the histogram range if it were used
    for corr in (ops.histogram(0.0, TARGET), ops.histogram_reference(0.0, TARGET)):
        out = np.asarray(corr(jax.random.key(0), poisoned, mask=mask))
        np.testing.assert_array_equal(out[10:], np.asarray(poisoned)[10:])
        assert np.all(np.abs(out[:10]) < 10)


def test_make_corrector_and_retrain():
    with pytest.raises(ValueError, match="correction must be one of"):
        ops.make_corrector("kmeans", 1.0, TARGET)
    with pytest.raises(ValueError, match="gamma"):
        ops.make_corrector("ideal", -1.0, TARGET)
    real, synth = batch(4, 10), batch(5, 8)
    g = ops.retrain(real, synth, 0.5)  # ⌊0.5·10⌋ = 5 synthetic rows
    ref = np.concatenate([np.asarray(real), np.asarray(synth)[:5]])
    np.testing.assert_allclose(g.mean, ref.mean(0), rtol=1e-5)
    assert int(ops.n_synthetic(0.29, 100)) == 29


@pytest.mark.parametrize("name", ops.CORRECTIONS)
def test_correctors_trace_under_strict_promotion(name, strict_jax):
    """No implicit rank or dtype promotion (float64 data, traced γ, masked buffer)."""
    x = jnp.asarray(np.random.default_rng(7).normal(0.5, 0.8, size=(25, 2)))
    correct = jax.jit(
        lambda g, k, x: ops.make_corrector(name, g, TARGET)(k, x, mask=jnp.arange(25) < 20)
    )
    out = correct(jnp.asarray(1.0), jax.random.key(0), x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.all(np.isfinite(out))
