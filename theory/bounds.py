"""Stability bounds of self-correcting self-consuming loops.

Paper: Gillman et al. (ICML 2024), Theorem 4.3 / A.8 / A.11, Lemma A.7, Prop. B.2.
Notation: λ = ``lam`` (synthetic augmentation ratio), γ = ``gamma`` (correction strength),
κ = εL/α = ``kappa`` (misspecification constant), u = λ(1+κ).

Bertrand et al. (ICLR 2024) is the γ = 0 case of the same functions: ``threshold(0, kappa)``
is their condition λ(1+κ) < 1/2 and ``contraction(lam, 0, kappa)`` their rate ρ(λ). There is
deliberately no second copy of these formulas.

Every function is pure, vectorised (NumPy broadcasting over all arguments), differentiable
where the result is finite, float64-safe (computes in the default float dtype, float64 under
``jax_enable_x64``) and accepts γ = +inf. Invalid concrete inputs raise ``ValueError`` naming
the parameter; traced inputs (inside ``jit``/``grad``) are not checked.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from theory import linalg
from theory._checks import as_float, check_nonneg, check_nonneg_int

__all__ = [
    "bound",
    "contraction",
    "is_stable",
    "lemma_a7_jacobian",
    "prop_b2_constant",
    "rho",
    "threshold",
    "well_specified_rate",
]


def rho(lam, kappa=0.0) -> Float[Array, "..."]:
    """ρ(λ) = u/(1−u) with u = λ(1+κ); +inf when u ≥ 1.

    Paper: Thm 4.3, ρ(λ) = λ(α+εL)/(α − λ(α+εL)).

    Args:
        lam: synthetic ratio λ ≥ 0.
        kappa: κ = εL/α ≥ 0.

    Returns:
        ρ(λ), broadcast over the inputs.
    """
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("kappa", kappa, allow_inf=False)
    u = as_float(lam) * (1.0 + as_float(kappa))
    ok = u < 1.0
    u_safe = jnp.where(ok, u, 0.0)  # keeps gradients finite on the finite branch
    return jnp.where(ok, u_safe / (1.0 - u_safe), jnp.inf)


def _inv_one_plus(gamma) -> Float[Array, "..."]:
    """1/(1+γ), exact 0 at γ = +inf."""
    return 1.0 / (1.0 + as_float(gamma))


def contraction(lam, gamma, kappa=0.0) -> Float[Array, "..."]:
    """Guaranteed contraction factor ρ(λ)/(1+γ) of π_γ∘G_λ near θ*.

    Paper: Thm A.8, ‖∇_θ π_γ G^∞_λ(θ*)‖₂ ≤ ρ(λ)/(1+γ).

    Args:
        lam: λ ≥ 0.
        gamma: γ ≥ 0, +inf allowed (then the factor is 0 wherever ρ is finite).
        kappa: κ ≥ 0.

    Returns:
        ρ(λ)/(1+γ); +inf where ρ(λ) = inf.
    """
    check_nonneg("gamma", gamma)
    r = rho(lam, kappa)
    finite = jnp.isfinite(r)
    r_safe = jnp.where(finite, r, 0.0)
    return jnp.where(finite, r_safe * _inv_one_plus(gamma), jnp.inf)


def threshold(gamma, kappa=0.0) -> Float[Array, "..."]:
    """Largest admissible λ: λ*(γ, κ) = (1+γ)/((2+γ)(1+κ)).

    Paper: Thm 4.3 condition λ(1+κ) < (1+γ)/(2+γ). Equals 1/(2(1+κ)) at γ = 0 (Bertrand et
    al.) and tends to 1/(1+κ) as γ → ∞; written as (1 − 1/(2+γ))/(1+κ) so γ = inf is exact.

    Args:
        gamma: γ ≥ 0, +inf allowed.
        kappa: κ ≥ 0.

    Returns:
        λ*(γ, κ).
    """
    check_nonneg("gamma", gamma)
    check_nonneg("kappa", kappa, allow_inf=False)
    return (1.0 - 1.0 / (2.0 + as_float(gamma))) / (1.0 + as_float(kappa))


def is_stable(lam, gamma, kappa=0.0) -> Array:
    """Whether the theorem's condition λ < λ*(γ, κ) holds (boolean array).

    Paper: Thm 4.3. Equivalent to ``contraction(lam, gamma, kappa) < 1``.
    """
    check_nonneg("lam", lam, allow_inf=False)
    return as_float(lam) < threshold(gamma, kappa)


def bound(t, lam, gamma, kappa, tau, err0) -> Float[Array, "..."]:
    """Right-hand side of eq. (7): τ Σ_{i=0}^{t} c^i + c^t ‖θ_0 − θ*‖, c = ρ(λ)/(1+γ).

    Paper: Thm 4.3 / A.11, eq. (7). With probability 1−δ, for all t > 0,
    ‖θ_t^n − θ*‖ ≤ τ_n(δ/t) Σ_{i=0}^{t} c^i + c^t ‖θ_0^n − θ*‖.

    Args:
        t: generation, a non-negative integer (scalar or array).
        lam: λ ≥ 0.
        gamma: γ ≥ 0, +inf allowed (the bound then tends to τ).
        kappa: κ ≥ 0.
        tau: the caller's value of τ_n(δ/t) ≥ 0 (this function does not know δ).
        err0: ‖θ_0 − θ*‖ ≥ 0.

    Returns:
        The bound; +inf where the theorem's condition fails (c ≥ 1).
    """
    check_nonneg_int("t", t)
    check_nonneg("tau", tau, allow_inf=False)
    check_nonneg("err0", err0, allow_inf=False)
    c = contraction(lam, gamma, kappa)
    ok = c < 1.0
    c_safe = jnp.where(ok, c, 0.0)
    tf = as_float(t)
    c_pow_t = jnp.where(tf == 0, 1.0, c_safe**tf)  # 0**0 = 1 without a NaN gradient
    geometric = (1.0 - c_pow_t * c_safe) / (1.0 - c_safe)  # Σ_{i=0}^{t} c^i
    value = as_float(tau) * geometric + c_pow_t * as_float(err0)
    return jnp.where(ok, value, jnp.inf)


def well_specified_rate(lam, gamma) -> Float[Array, "..."]:
    """Exact Jacobian norm at θ* for a well-specified family: λ/((1+λ)(1+γ)).

    Paper: Lemma A.7 with A⁻¹C = I. Always below 1 (for every λ ≥ 0, γ ≥ 0) and never above
    the theorem's ``contraction(lam, gamma, 0)`` = λ/((1−λ)(1+γ)) where that applies.
    """
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    lam = as_float(lam)
    return lam / (1.0 + lam) * _inv_one_plus(gamma)


def lemma_a7_jacobian(a_inv_c: Float[Array, "d d"], lam, gamma) -> Float[Array, "d d"]:
    """Jacobian of π_γ G^∞_λ at θ*: J = (I + λA⁻¹C)⁻¹ (λ/(1+γ)) A⁻¹C.

    Paper: Lemma A.7, with A = ∇²_θ'θ' H₁ and C = ∇²_θ'θ' E_{p_θ}[log p_θ'] at (θ*, θ*).

    Args:
        a_inv_c: the matrix A⁻¹C (identity for a well-specified family).
        lam: λ ≥ 0 (scalar).
        gamma: γ ≥ 0 (scalar, inf allowed).
    """
    check_nonneg("lam", lam, allow_inf=False)
    check_nonneg("gamma", gamma)
    m = as_float(a_inv_c)
    lam = as_float(lam)
    eye = jnp.eye(m.shape[-1], dtype=m.dtype)
    return linalg.solve(eye + lam * m, lam * _inv_one_plus(gamma) * m)


def prop_b2_constant(lam, gamma, big_b, kappa=0.0) -> Float[Array, "..."]:
    """Constant c = 2B + ρ(λ)(2+γ)/(1+γ) of Prop. B.2.

    Paper: Prop. B.2 (Assumption 3 from Bertrand et al.'s version, with an extra c·d_U).

    Args:
        lam: λ ≥ 0.
        gamma: γ ≥ 0, inf allowed (then (2+γ)/(1+γ) → 1).
        big_b: Bertrand's constant B ≥ 0.
        kappa: κ ≥ 0.
    """
    check_nonneg("big_b", big_b, allow_inf=False)
    ratio = 1.0 + _inv_one_plus(gamma)  # (2+γ)/(1+γ)
    return 2.0 * as_float(big_b) + rho(lam, kappa) * ratio
