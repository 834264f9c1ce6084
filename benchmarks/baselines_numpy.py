"""Plain-NumPy references of the Fig. 2 Gaussian toy, the timing baselines for the JAX loops.

Paper: Gillman et al. (ICML 2024), §4 and Fig. 2; official ``gaussian_toy_example.py``.
Protocol (d = 2, target p* = N(0, I)): a fixed real set of ``n_real`` draws of p*; at each
generation draw k = ⌊λ·n_real⌋ points of the current fitted Gaussian, correct them with the
histogram rejection sampler (t = γ/(1+γ)), store the corrected set, and refit on the real
set together with the first ⌊(j+1)/(i+1)·k⌋ points of every stored set j ≤ i. The returned
trace is W2(fit, p*) after each generation, index 0 being the fit on the real set alone.

Two implementations of the same protocol, both seeded with ``np.random.default_rng(seed)``
(the official script is unseeded):

- ``official_style``: written the way the official script works (scikit-learn refits,
  one-candidate-at-a-time rejection sampling with ``scipy.stats`` densities, ``sqrtm``);
  deliberately slow, the faithful baseline.
- ``vectorised``: the fastest reasonable single-run NumPy (closed-form fits, batched
  rejection sampling, prefix sums for the pool, W2 through a 2×2 ``eigh``).

They consume their random streams differently, so they agree in distribution only. The
scikit-learn fit also adds ``reg_covar = 1e-6`` to the covariance diagonal, which the closed
form does not.

Run ``python benchmarks/baselines_numpy.py`` for a quick timing self-check.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import scipy.stats
from sklearn.mixture import GaussianMixture

__all__ = ["official_style", "vectorised", "w2_official", "w2_to_standard"]

_D = 2
_BINS = 10
_PHI0 = 1.0 / (2.0 * np.pi)  # N(0, I_2) density at its mode


def w2_official(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Gaussian W2 distance computed as the official script does, with ``scipy.linalg.sqrtm``.

    Args:
        mu1: mean of the first Gaussian, shape (d,).
        cov1: covariance of the first Gaussian, shape (d, d).
        mu2: mean of the second Gaussian, shape (d,).
        cov2: covariance of the second Gaussian, shape (d, d).

    Returns:
        sqrt(|mu1 − mu2|² + tr(cov1 + cov2 − 2 (cov2^½ cov1 cov2^½)^½)).
    """
    sqrt_c2 = scipy.linalg.sqrtm(cov2)
    cross = scipy.linalg.sqrtm(sqrt_c2 @ cov1 @ sqrt_c2)
    trace = np.real(np.trace(cov1 + cov2 - 2.0 * cross))
    return float(np.sqrt(np.sum((mu1 - mu2) ** 2) + trace))


def w2_to_standard(mean: np.ndarray, eigvals: np.ndarray) -> float:
    """Closed-form W2 between N(mean, S) and N(0, I) from the eigenvalues of S.

    With S = V diag(λ) Vᵀ, tr(S + I − 2 S^½) = Σ (√λᵢ − 1)², which is never negative.

    Args:
        mean: mean of the fitted Gaussian, shape (d,).
        eigvals: eigenvalues of its covariance S, shape (d,).

    Returns:
        The W2 distance.
    """
    root = np.sqrt(np.maximum(eigvals, 0.0))
    return float(np.sqrt(mean @ mean + np.sum((root - 1.0) ** 2)))


def _pool_counts(i: int, k: int) -> np.ndarray:
    """Points kept from each stored set j = 0..i at generation i: ⌊(j+1)/(i+1)·k⌋ (floats)."""
    return ((np.arange(1, i + 2) / (i + 1)) * k).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Official-style baseline
# ----------------------------------------------------------------------------------------


def _fit_gmm(data: np.ndarray, first: bool) -> tuple[np.ndarray, np.ndarray]:
    """One-component ``GaussianMixture`` fit, configured as in the official script."""
    if first:
        gmm = GaussianMixture(n_components=1, tol=1e-9, random_state=1)
    else:
        gmm = GaussianMixture(n_components=1, warm_start=True, random_state=1)
    gmm.fit(data)
    return gmm.means_[0], gmm.covariances_[0]


def _correct_official(x: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """Histogram rejection sampler, one candidate at a time, as in the official script."""
    k = x.shape[0]
    hist, xedges, yedges = np.histogram2d(x[:, 0], x[:, 1], bins=_BINS, density=True)
    xdelta = xedges[1] - xedges[0]
    ydelta = yedges[1] - yedges[0]
    mean = np.zeros(_D)
    cov = np.eye(_D)
    phi_mode = scipy.stats.multivariate_normal.pdf(mean, mean=mean, cov=cov)
    envelope = ((1.0 - t) * np.max(hist) + t * phi_mode) / phi_mode
    accepted = []
    while len(accepted) < k:
        c = rng.multivariate_normal(mean, cov)
        u = rng.uniform()
        i_x = int((c[0] - xedges[0]) / xdelta)
        i_y = int((c[1] - yedges[0]) / ydelta)
        emp = hist[i_x][i_y] if 0 <= i_x < _BINS and 0 <= i_y < _BINS else 0.0
        phi = scipy.stats.multivariate_normal.pdf(c, mean=mean, cov=cov)
        f = (1.0 - t) * emp + t * phi
        if f / (envelope * phi) > u:
            accepted.append(c)
    return np.array(accepted)


def official_style(
    gamma: float, seed: int, generations: int = 500, n_real: int = 50, lam: float = 0.5
) -> np.ndarray:
    """The Fig. 2 toy written the way the official script works (slow, faithful baseline).

    A Python loop over generations; refits with scikit-learn's ``GaussianMixture``; the
    rejection sampler draws one candidate at a time with ``rng.multivariate_normal`` and
    evaluates densities with ``scipy.stats.multivariate_normal.pdf``; the pool is rebuilt
    by concatenation each generation and the augmented data shuffled before fitting.

    Args:
        gamma: correction strength γ ≥ 0 (t = γ/(1+γ)).
        seed: seed of ``np.random.default_rng``.
        generations: number of generations.
        n_real: size of the fixed real set.
        lam: synthetic fraction λ; k = ⌊λ·n_real⌋ points per generation.

    Returns:
        W2 to N(0, I) after each generation, shape (generations + 1,).
    """
    rng = np.random.default_rng(seed)
    t = gamma / (1.0 + gamma)
    k = int(lam * n_real)
    zero, eye = np.zeros(_D), np.eye(_D)
    real = rng.multivariate_normal(zero, eye, size=n_real)
    mean, cov = _fit_gmm(real, first=True)
    w2 = [w2_official(mean, cov, zero, eye)]
    sets: list[np.ndarray] = []
    for i in range(generations):
        synthetic = rng.multivariate_normal(mean, cov, size=k)
        sets.append(_correct_official(synthetic, t, rng))
        pool = np.empty((0, _D))
        for j in range(i + 1):
            pool = np.concatenate([pool, sets[j][: int((j + 1) / (i + 1) * k)]])
        augmented = np.concatenate([real, pool])
        rng.shuffle(augmented)
        mean, cov = _fit_gmm(augmented, first=False)
        w2.append(w2_official(mean, cov, zero, eye))
    return np.array(w2)


# ----------------------------------------------------------------------------------------
# Vectorised baseline
# ----------------------------------------------------------------------------------------


def _correct_vectorised(
    x: np.ndarray, t: float, rng: np.random.Generator, batch: int, max_batch: int = 1 << 16
) -> np.ndarray:
    """Histogram rejection sampler on batches of candidates, accepted ones kept in order.

    Same acceptance rule as ``_correct_official``. Batches start at ``batch`` candidates and
    double (up to ``max_batch``) while the k slots are not filled, so a low acceptance rate
    costs few rounds.
    """
    k = x.shape[0]
    hist, xedges, yedges = np.histogram2d(x[:, 0], x[:, 1], bins=_BINS, density=True)
    lo = np.array([xedges[0], yedges[0]])
    width = np.array([xedges[1] - xedges[0], yedges[1] - yedges[0]])
    envelope = ((1.0 - t) * np.max(hist) + t * _PHI0) / _PHI0
    flat_hist = np.append(hist.ravel(), 0.0)  # last entry: outside the histogram
    out = np.empty((k, _D))
    filled = 0
    while filled < k:
        c = rng.standard_normal((batch, _D))
        u = rng.random(batch)
        idx = np.trunc((c - lo) / width)  # int() truncation toward zero
        inside = np.all((idx >= 0) & (idx < _BINS), axis=1)
        flat = np.where(inside, idx[:, 0] * _BINS + idx[:, 1], _BINS * _BINS).astype(np.intp)
        phi = _PHI0 * np.exp(-0.5 * np.einsum("nd,nd->n", c, c))
        f = (1.0 - t) * flat_hist[flat] + t * phi
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = c[f / (envelope * phi) > u]
        take = min(k - filled, keep.shape[0])
        out[filled : filled + take] = keep[:take]
        filled += take
        batch = min(2 * batch, max_batch)
    return out


def vectorised(
    gamma: float, seed: int, generations: int = 500, n_real: int = 50, lam: float = 0.5
) -> np.ndarray:
    """The Fig. 2 toy as fast as reasonable NumPy allows while staying a single run.

    Closed-form fits (mean and 1/N covariance) from prefix sums: for every stored set the
    cumulative sums of x and of x xᵀ over its first 0..k points are kept, so the pool's
    moments at generation i are one gather over i + 1 sets. Sampling and W2 reuse one
    ``eigh`` of the 2×2 covariance per generation. Rejection sampling is batched.

    Args:
        gamma: correction strength γ ≥ 0 (t = γ/(1+γ)).
        seed: seed of ``np.random.default_rng``.
        generations: number of generations.
        n_real: size of the fixed real set.
        lam: synthetic fraction λ; k = ⌊λ·n_real⌋ points per generation.

    Returns:
        W2 to N(0, I) after each generation, shape (generations + 1,).
    """
    rng = np.random.default_rng(seed)
    t = gamma / (1.0 + gamma)
    k = int(lam * n_real)
    real = rng.standard_normal((n_real, _D))
    real_s1 = real.sum(axis=0)
    real_s2 = real.T @ real
    # Prefix sums per stored set: s1[j, m] = Σ of its first m points, s2 likewise of x xᵀ.
    s1 = np.zeros((generations, k + 1, _D))
    s2 = np.zeros((generations, k + 1, _D, _D))

    def moments(total_s1, total_s2, count):
        mean = total_s1 / count
        cov = total_s2 / count - np.outer(mean, mean)
        return mean, cov

    mean, cov = moments(real_s1, real_s2, n_real)
    eigvals, eigvecs = np.linalg.eigh(cov)
    w2 = np.empty(generations + 1)
    w2[0] = w2_to_standard(mean, eigvals)
    for i in range(generations):
        root = eigvecs * np.sqrt(np.maximum(eigvals, 0.0))  # cov = root @ root.T
        synthetic = mean + rng.standard_normal((k, _D)) @ root.T
        x = _correct_vectorised(synthetic, t, rng, batch=4 * k)
        np.cumsum(x, axis=0, out=s1[i, 1:])
        np.cumsum(x[:, :, None] * x[:, None, :], axis=0, out=s2[i, 1:])
        counts = _pool_counts(i, k)
        rows = np.arange(i + 1)
        total_s1 = real_s1 + s1[rows, counts].sum(axis=0)
        total_s2 = real_s2 + s2[rows, counts].sum(axis=0)
        mean, cov = moments(total_s1, total_s2, n_real + counts.sum())
        eigvals, eigvecs = np.linalg.eigh(cov)
        w2[i + 1] = w2_to_standard(mean, eigvals)
    return w2


def _main() -> None:
    """Time each implementation for one seed at γ = 0 over 20 generations."""
    generations = 20
    for name, fn in (("official_style", official_style), ("vectorised", vectorised)):
        start = time.perf_counter()
        w2 = fn(0.0, seed=0, generations=generations)
        elapsed = time.perf_counter() - start
        print(f"{name:>15}: {elapsed:8.3f} s for {generations} generations; final W2 {w2[-1]:.4f}")


if __name__ == "__main__":
    _main()
