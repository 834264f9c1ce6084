"""The Gaussian family: fit, sample, densities, distances and the exact population map.

Paper: §4 (Gaussian toy), Def. 4.1 (π_γ), eq. (5) (G_λ), Lemma A.7 (Jacobian at θ*).
A Gaussian θ = (μ, Σ) is a pytree; parameter-space distances use
‖θ − θ'‖² = ‖μ − μ'‖² + ‖Σ − Σ'‖_F², the norm in which we read Theorem 4.3.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theory import bounds, linalg
from theory._checks import as_float, check_nonneg, is_traced

__all__ = [
    "Factor",
    "Gaussian",
    "factorize",
    "fit",
    "fit_groups",
    "flatten",
    "from_standard",
    "kl",
    "logpdf",
    "mixture_moments",
    "param_distance",
    "population_contraction",
    "population_jacobian",
    "population_map",
    "sample",
    "sqrtm_psd",
    "standard",
    "unflatten",
    "validate",
    "w2",
]


@partial(jax.tree_util.register_dataclass, data_fields=["mean", "cov"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Gaussian:
    """N(mean, cov) as a pytree; leading batch axes are allowed under ``vmap``."""

    mean: Float[Array, " d"]
    cov: Float[Array, "d d"]

    @property
    def dim(self) -> int:
        return self.mean.shape[-1]


def standard(d: int, dtype=None) -> Gaussian:
    """N(0, I_d)."""
    dtype = dtype or jnp.result_type(float)
    return Gaussian(jnp.zeros(d, dtype), jnp.eye(d, dtype=dtype))


def validate(g: Gaussian, name: str = "gaussian", tol: float = 1e-10) -> None:
    """Raises ValueError unless ``g`` has finite entries and a symmetric PSD covariance."""
    if is_traced(g):
        return
    mean, cov = np.asarray(g.mean, float), np.asarray(g.cov, float)
    d = mean.shape[-1]
    if cov.shape[-2:] != (d, d):
        raise ValueError(f"{name}.cov must have shape ({d}, {d}); got {cov.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise ValueError(f"{name} has non-finite entries")
    if not np.allclose(cov, np.swapaxes(cov, -1, -2), atol=tol * max(1.0, np.abs(cov).max())):
        raise ValueError(f"{name}.cov must be symmetric")
    lo = np.linalg.eigvalsh(cov).min()
    if lo < -tol * max(1.0, np.abs(cov).max()):
        raise ValueError(f"{name}.cov must be positive semi-definite; smallest eigenvalue {lo:.3g}")


def sqrtm_psd(a: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """Symmetric square root of a symmetric PSD matrix.

    d ≤ 2 uses the closed form √A = (A + √det A · I)/√(tr A + 2√det A) (batched LAPACK eigh
    calls dominate the loops' run time otherwise); larger d uses ``theory.linalg.eigh`` (no
    LAPACK). Negative round-off is clipped in both.
    """
    d = a.shape[-1]
    if d > 2:
        w, v = linalg.eigh(a)
        return (v * jnp.sqrt(jnp.clip(w, 0.0))[None, :]) @ v.T
    if d == 1:
        return jnp.sqrt(jnp.clip(a, 0.0))
    s = jnp.sqrt(jnp.clip(a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0], 0.0))
    t = jnp.sqrt(jnp.clip(a[0, 0] + a[1, 1] + 2.0 * s, 0.0))
    t_safe = jnp.where(t > 0, t, 1.0)
    root = (a + s * jnp.eye(2, dtype=a.dtype)) / t_safe
    return jnp.where(t > 0, 0.5 * (root + root.T), 0.0)


def fit(x: Float[Array, "n d"], weights: Float[Array, " n"] | None = None) -> Gaussian:
    """Weighted maximum-likelihood Gaussian: weighted mean and 1/N covariance.

    Two passes (mean, then centred second moment) so a collapsed covariance far from the
    origin keeps its precision. ``weights`` of 0/1 act as a mask for static shapes.

    Args:
        x: samples.
        weights: non-negative weights (default all ones); their sum must be positive.
    """
    if weights is None:
        weights = jnp.ones(x.shape[0], x.dtype)
    weights = weights.astype(x.dtype)
    total = jnp.sum(weights)
    mean = weights @ x / total
    xc = x - mean[None, :]
    cov = (xc * weights[:, None]).T @ xc / total
    return Gaussian(mean, 0.5 * (cov + cov.T))


def fit_groups(
    counts: Float[Array, " g"],
    centers: Float[Array, "g d"],
    s1: Float[Array, "g d"],
    s2: Float[Array, "g d d"],
) -> Gaussian:
    """MLE of the union of groups given each group's size and centred sums.

    Group g has ``counts[g]`` points x with Σ(x − c_g) = ``s1[g]`` and
    Σ(x − c_g)(x − c_g)ᵀ = ``s2[g]``, c_g any reference point near the group (for
    precision). Merged like Chan et al.'s parallel variance:
    μ = Σ(n_g c_g + s1_g)/N and N Σ̂ = Σ_g [s2_g + s1_g δ_gᵀ + δ_g s1_gᵀ + n_g δ_g δ_gᵀ],
    δ_g = c_g − μ. Equals ``fit`` on the concatenated points.
    """
    total = jnp.sum(counts)
    mean = (counts @ centers + jnp.sum(s1, axis=0)) / total
    delta = centers - mean[None, :]
    cross = jnp.einsum("gi,gj->ij", s1, delta)
    scatter = (
        jnp.sum(s2, axis=0) + cross + cross.T + jnp.einsum("g,gi,gj->ij", counts, delta, delta)
    )
    cov = scatter / total
    return Gaussian(mean, 0.5 * (cov + cov.T))


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["mean", "root", "inv_root", "log_norm"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Factor:
    """N(μ, Σ) with Σ^{1/2}, Σ^{-1/2} and log((2π)^{-d/2} det Σ^{-1/2}) computed once.

    Pass a Factor instead of a Gaussian to ``sample``/``logpdf`` when the same distribution
    is drawn or evaluated many times (e.g. inside a rejection loop): the factorisation is
    then not repeated.
    """

    mean: Float[Array, " d"]
    root: Float[Array, "d d"]
    inv_root: Float[Array, "d d"]
    log_norm: Float[Array, ""]


def factorize(g: Gaussian | Factor) -> Factor:
    """The ``Factor`` of ``g`` (identity on a Factor); ``inv_root`` needs Σ positive definite."""
    if isinstance(g, Factor):
        return g
    root = sqrtm_psd(g.cov)
    log_norm = -0.5 * linalg.logabsdet(g.cov) - 0.5 * g.dim * jnp.log(2 * jnp.pi)
    return Factor(g.mean, root, linalg.inv(root), log_norm)


def sample(key: jax.Array, g: Gaussian | Factor, n: int) -> Float[Array, "n d"]:
    """n i.i.d. draws of N(μ, Σ) as μ + Σ^{1/2} z (valid for singular Σ)."""
    return from_standard(g, jax.random.normal(key, (n, g.mean.shape[-1]), dtype=g.mean.dtype))


def from_standard(g: Gaussian | Factor, z: Float[Array, "n d"]) -> Float[Array, "n d"]:
    """μ + Σ^{1/2} z row by row: standard normal rows z become draws of N(μ, Σ)."""
    root = g.root if isinstance(g, Factor) else sqrtm_psd(g.cov)
    return g.mean[None, :] + z @ root


def logpdf(g: Gaussian | Factor, x: Float[Array, "... d"]) -> Float[Array, "..."]:
    """log N(x; μ, Σ) for a positive-definite Σ."""
    f = factorize(g)
    z = (x.reshape(-1, f.mean.shape[-1]) - f.mean[None, :]) @ f.inv_root
    return f.log_norm - 0.5 * jnp.sum(z**2, axis=-1).reshape(x.shape[:-1])


def w2(g1: Gaussian, g2: Gaussian) -> Float[Array, ""]:
    """Wasserstein-2 distance (Bures form).

    W2² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}); both square roots are
    symmetric eigen-decompositions, and round-off below zero is clipped.
    """
    s1 = sqrtm_psd(g1.cov)
    cross = sqrtm_psd(s1 @ g2.cov @ s1)
    sq = jnp.sum((g1.mean - g2.mean) ** 2) + jnp.trace(g1.cov + g2.cov - 2.0 * cross)
    return jnp.sqrt(jnp.clip(sq, 0.0))


def kl(g1: Gaussian, g2: Gaussian) -> Float[Array, ""]:
    """KL(N₁ ‖ N₂) for positive-definite covariances."""
    chol2 = linalg.cholesky(g2.cov)
    solve = partial(linalg.cho_solve, chol2)
    diff = g2.mean - g1.mean
    logdet2 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol2)))
    logdet1 = linalg.logabsdet(g1.cov)
    return 0.5 * (jnp.trace(solve(g1.cov)) + diff @ solve(diff) - g1.dim + logdet2 - logdet1)


def mixture_moments(
    weights: Float[Array, " k"], means: Float[Array, "k d"], covs: Float[Array, "k d d"]
) -> Gaussian:
    """Mean and covariance of the mixture Σ_k w_k N(m_k, S_k) (weights sum to 1)."""
    mean = weights @ means
    dev = means - mean[None, :]
    cov = jnp.einsum("k,kij->ij", weights, covs) + jnp.einsum("k,ki,kj->ij", weights, dev, dev)
    return Gaussian(mean, cov)


def population_map(
    theta: Gaussian, lam, gamma, data: Gaussian, target: Gaussian | None = None
) -> Gaussian:
    """Exact population map π_γ ∘ G^∞_λ of the Gaussian family.

    Paper: eq. (5) with population expectations. Synthetic data follow
    π_γ p_θ = (p_θ + γ p_θ*)/(1+γ) (Def. 4.1); the MLE on real (weight 1) and synthetic
    (weight λ) data matches the moments of the three-component mixture
    p_data/(1+λ) + λ/((1+λ)(1+γ)) p_θ + λγ/((1+λ)(1+γ)) p_θ*. With p_data = p_θ* = N(0, I):
    μ' = aμ and Σ' − I = a(Σ − I) + a(1 − a) μμᵀ, a = λ/((1+λ)(1+γ)), so only the mean
    contracts at exactly a; the covariance has a second-order term in μ.

    Args:
        theta: current model (μ, Σ).
        lam: λ ≥ 0.
        gamma: γ ≥ 0 (inf allowed).
        data: moments of p_data (for the Gaussian family θ* is p_data's moments).
        target: p_θ* used by the correction; defaults to ``data``.
    """
    target = data if target is None else target
    lam, inv = as_float(lam), 1.0 / (1.0 + as_float(gamma))
    w_model = lam * inv / (1.0 + lam)
    w_target = lam * (1.0 - inv) / (1.0 + lam)
    weights = jnp.stack([1.0 / (1.0 + lam), w_model, w_target])
    means = jnp.stack([data.mean, theta.mean, target.mean])
    covs = jnp.stack([data.cov, theta.cov, target.cov])
    return mixture_moments(weights, means, covs)


def flatten(g: Gaussian) -> Float[Array, " p"]:
    """θ as a vector (μ, vec Σ) of length d + d²."""
    return jnp.concatenate([g.mean, g.cov.reshape(-1)])


def unflatten(theta: Float[Array, " p"], d: int) -> Gaussian:
    """Inverse of ``flatten``."""
    return Gaussian(theta[:d], theta[d:].reshape(d, d))


def param_distance(g1: Gaussian, g2: Gaussian) -> Float[Array, ""]:
    """‖θ₁ − θ₂‖ = sqrt(‖μ₁ − μ₂‖² + ‖Σ₁ − Σ₂‖_F²)."""
    return jnp.sqrt(jnp.sum((g1.mean - g2.mean) ** 2) + jnp.sum((g1.cov - g2.cov) ** 2))


def population_jacobian(lam, gamma, data: Gaussian) -> Float[Array, "p p"]:
    """Jacobian of θ ↦ π_γ G^∞_λ(θ) at θ* = ``data`` (well-specified), by ``jax.jacobian``.

    Paper: Lemma A.7. Its spectral radius is λ/((1+λ)(1+γ)) = ``population_contraction``.
    """
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    d = data.dim

    def flat_map(theta):
        return flatten(population_map(unflatten(theta, d), lam, gamma, data))

    return jax.jacobian(flat_map)(flatten(data))


def population_contraction(lam, gamma) -> Float[Array, "..."]:
    """Exact contraction λ/((1+λ)(1+γ)) of the Gaussian population map at θ*.

    Paper: Lemma A.7 for a well-specified family (A⁻¹C = I); see
    ``theory.bounds.well_specified_rate``.
    """
    return bounds.well_specified_rate(lam, gamma)
