"""Distribution metrics on feature embeddings, shared by the digit and motion evaluators.

FID (Fréchet distance of fitted Gaussians) with a shift-free bootstrap interval, KID
(unbiased polynomial-kernel MMD²) and diversity (mean pairwise distance). All in float64
NumPy on the host: they run once per generation on a few thousand rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["diversity", "fid", "fid_bootstrap", "frechet", "kid"]


def _mean_cov(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet(mu1, s1, mu2, s2) -> float:
    """‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) via symmetric eigendecompositions.

    tr((Σ₁Σ₂)^{1/2}) equals tr((Σ₁^{1/2}Σ₂Σ₁^{1/2})^{1/2}) (similar matrices), and the
    latter is symmetric PSD, so no complex round-off as with ``sqrtm(Σ₁Σ₂)``.
    """
    r = _sqrt_psd(s1)
    w = np.linalg.eigvalsh(r @ s2 @ r)
    tr_sqrt = np.sum(np.sqrt(np.clip(w, 0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples)."""
    return frechet(*_mean_cov(f1), *_mean_cov(f2))


def fid_bootstrap(
    f1: np.ndarray, f2: np.ndarray, rng: np.random.Generator, n_boot: int = 100, level=0.95
) -> tuple[float, float]:
    """Bootstrap CI of FID (both sets resampled with replacement), centred on the estimate.

    A resample repeats rows, which shifts FID upward (a resample describes the law worse
    than the sample), so the plain percentile interval can miss the estimate F altogether.
    We keep the bootstrap's spread and drop its shift: [F − (q_hi − m), F + (m − q_lo)],
    m the bootstrap median; clipped at 0.
    """
    vals = np.empty(n_boot)
    point = fid(f1, f2)
    for b in range(n_boot):
        i = rng.integers(0, len(f1), len(f1))
        j = rng.integers(0, len(f2), len(f2))
        vals[b] = frechet(*_mean_cov(f1[i]), *_mean_cov(f2[j]))
    a = (1 - level) / 2
    lo, med, hi = np.quantile(vals, [a, 0.5, 1 - a])
    return float(max(point - (hi - med), 0.0)), float(point + (med - lo))


def kid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Kernel Inception Distance: unbiased MMD² with k(x, y) = (xᵀy/d + 1)³ (Bińkowski 2018)."""
    d = f1.shape[1]
    kxx = (f1 @ f1.T / d + 1) ** 3
    kyy = (f2 @ f2.T / d + 1) ** 3
    kxy = (f1 @ f2.T / d + 1) ** 3
    m, n = len(f1), len(f2)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def diversity(f: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of feature rows (the expectation of the
    paper's "mean distance of random pairs", without its sampling noise)."""
    sq = np.sum(f * f, 1)
    d = np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0, None))
    n = len(f)
    return float(d.sum() / (n * (n - 1)))
