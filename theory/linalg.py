"""Small dense linear algebra in plain JAX operations: nothing here lowers to LAPACK.

Why this module exists (issue #12, docs/design.md#the-mjx-on-cpu-hang): jaxlib 0.10.2 (the
newest jaxlib for Python 3.11) splits a *batched* CPU LAPACK factorisation into sub-tasks on
XLA's intra-op thread pool and blocks until they finish. When as many such calls run at once
as the pool has threads (two on a 2-core CPU), every thread waits for sub-tasks that no thread
is free to run: a deadlock. Measured on this CPU with four independent batched calls in one
jitted function: ``jnp.linalg.cholesky`` on 1024 × 28 × 28 and ``jnp.linalg.solve`` on
4096 × 64 × 64 hang on their first call (0 CPU-seconds of progress in 20 s), while 256 × 28 × 28
Cholesky, LU-only ``slogdet`` and ``eigvalsh`` finished: whether a kernel fans out depends on
the kernel and the batch's work, and changes between jaxlib versions. The project's matrices
are small (Gaussian covariances, 2 × 2 to 5 × 5 Jacobians and Hessians, d ≤ a few tens), so
the routines below, ``fori_loop``s of vector operations over a static size, vectorised over
any leading batch axes, replace every LAPACK call in the project's jitted code; they cannot
deadlock and run unchanged on GPU. The price, measured on 4096 matrices per
call on this CPU (``benchmarks/small_linalg.py``): faster than LAPACK at d ≤ 3, up to 1.7×
slower at d = 8 (``eigh`` 3×), 1.6–9× at d = 16; a d = 8 phase sweep takes ≈ 1.4× as long, and
the d = 2 experiments use closed forms and do not change.

Every public routine is jitted (a while loop run eagerly would be traced and compiled at
every call). Semantics follow ``jnp.linalg``: ``cholesky`` of a matrix that is not positive
definite is NaN, ``solve`` of a singular matrix is inf/NaN, ``det`` of a singular matrix is
0, ``logabsdet`` is ``slogdet(a)[1]`` (−inf when singular). ``eigh`` is the cyclic Jacobi
method (Golub & Van Loan, Matrix Computations, §8.5): each rotation zeroes one off-diagonal
pair; convergence is quadratic, and the default number of sweeps reaches float64 round-off
for the sizes used here (checked against NumPy in ``tests/theory/test_linalg.py``).
Eigenvalues come back ascending, eigenvectors as columns, as in ``jnp.linalg.eigh``.
"""

from __future__ import annotations

import math
from functools import partial, wraps

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["cho_solve", "cholesky", "det", "eigh", "eigvalsh", "inv", "logabsdet", "solve"]


def _cholesky(a):
    d = a.shape[-1]
    idx = jnp.arange(d)

    def column(j, low):
        v = a[:, j] - low @ low[j]  # columns ≥ j of low are still zero
        diag = jnp.sqrt(v[j])
        return low.at[:, j].set(jnp.where(idx > j, v / diag, jnp.where(idx == j, diag, 0.0)))

    return jax.lax.fori_loop(0, d, column, jnp.zeros_like(a))


@jax.jit
def cholesky(a: Float[Array, "... d d"]) -> Float[Array, "... d d"]:
    """Lower Cholesky factor L with L Lᵀ = a (NaN where a is not positive definite)."""
    return jnp.vectorize(_cholesky, signature="(d,d)->(d,d)")(a)


def _triangular(low, b, lower_first):
    """Solve L y = b (``lower_first``) or Lᵀ x = b by substitution; ``b`` is (d, k)."""
    d = low.shape[-1]

    def row(i, x):
        k = i if lower_first else d - 1 - i
        coeffs = low[k] if lower_first else low[:, k]
        return x.at[k].set((b[k] - coeffs @ x) / low[k, k])  # unsolved rows of x are zero

    return jax.lax.fori_loop(0, d, row, jnp.zeros_like(b))


def _as_matrix_rhs(fn):
    """Lift a (d,d),(d,k) kernel to jnp.linalg's conventions (b a vector when one axis short)."""

    @wraps(fn)
    def lifted(a, b):
        if b.ndim == a.ndim - 1:
            return lifted(a, b[..., None])[..., 0]
        return jnp.vectorize(fn, signature="(d,d),(d,k)->(d,k)")(a, b)

    return jax.jit(lifted)  # jitted: eager callers reuse one compilation per shape


@_as_matrix_rhs
def cho_solve(low: Float[Array, "... d d"], b: Float[Array, "... d k"]) -> Float[Array, "..."]:
    """x with (L Lᵀ) x = b, from the lower Cholesky factor L (``jax.scipy`` ``cho_solve``)."""
    return _triangular(low, _triangular(low, b, True), False)


def _lu(a, b):
    """Gaussian elimination with partial pivoting: (U, the transformed b, ±1 permutation sign)."""
    d = a.shape[-1]
    idx = jnp.arange(d)

    def step(k, carry):
        u, rhs, sign = carry
        p = jnp.argmax(jnp.where(idx >= k, jnp.abs(u[:, k]), -1.0))
        swap = jnp.where(idx == k, p, jnp.where(idx == p, k, idx))
        u, rhs = u[swap], rhs[swap]
        pivot = u[k, k]
        factors = jnp.where(
            (idx > k) & (pivot != 0), u[:, k] / jnp.where(pivot != 0, pivot, 1.0), 0.0
        )
        u = u - factors[:, None] * u[k][None, :]
        rhs = rhs - factors[:, None] * rhs[k][None, :]
        return u, rhs, jnp.where(p != k, -sign, sign)

    return jax.lax.fori_loop(0, d, step, (a, b, jnp.ones((), a.dtype)))


@_as_matrix_rhs
def solve(a: Float[Array, "... d d"], b: Float[Array, "... d k"]) -> Float[Array, "..."]:
    """x with a x = b (LU with partial pivoting, then back substitution)."""
    u, rhs, _ = _lu(a, b)
    d = a.shape[-1]

    def row(i, x):
        k = d - 1 - i
        return x.at[k].set((rhs[k] - u[k] @ x) / u[k, k])  # rows < k of x are still zero

    return jax.lax.fori_loop(0, d, row, jnp.zeros_like(rhs))


@jax.jit
def inv(a: Float[Array, "... d d"]) -> Float[Array, "... d d"]:
    """a⁻¹ = solve(a, I)."""
    return solve(a, jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape))


def _lu_diag(a):
    u, _, sign = _lu(a, jnp.zeros((*a.shape[:-1], 0), a.dtype))
    return jnp.diagonal(u), sign


@jax.jit
def det(a: Float[Array, "... d d"]) -> Float[Array, "..."]:
    """det a = ± Π diag U (0 for a singular matrix)."""
    diag, sign = jnp.vectorize(_lu_diag, signature="(d,d)->(d),()")(a)
    return sign * jnp.prod(diag, axis=-1)


@jax.jit
def logabsdet(a: Float[Array, "... d d"]) -> Float[Array, "..."]:
    """log |det a| (``jnp.linalg.slogdet(a)[1]``; −inf for a singular matrix)."""
    diag, _ = jnp.vectorize(_lu_diag, signature="(d,d)->(d),()")(a)
    return jnp.sum(jnp.log(jnp.abs(diag)), axis=-1)


def default_sweeps(d: int, dtype) -> int:
    """Jacobi sweeps used by ``eigh``: ⌈log₂ d⌉ + 3 in float64, + 2 in float32.

    Measured on random symmetric matrices (64 per size, error of the eigenvalues relative to
    the largest, against NumPy): float64 reaches round-off (≤ 3e-14) after 3, 4, 5, 6, 7 sweeps
    at d = 3, 5, 8, 16, 32, float32 (≤ 3e-6) after 3, 4, 4, 5, 5; the default adds one sweep.
    """
    return math.ceil(math.log2(max(d, 2))) + (3 if jnp.dtype(dtype) == jnp.float64 else 2)


def _round_robin(d: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (P, Q) of a round-robin tournament on d indices: each of the d−1 (d even) or d
    (d odd, one index idle per round) rounds holds disjoint pairs, and every pair meets once."""
    players = list(range(d + d % 2))  # an odd d gets a dummy index d, dropped below
    rounds = []
    for _ in range(len(players) - 1):
        half = len(players) // 2
        ends = zip(players[:half], players[::-1][:half], strict=True)
        pairs = [(min(x, y), max(x, y)) for x, y in ends if max(x, y) < d]
        rounds.append((np.array([p for p, _ in pairs]), np.array([q for _, q in pairs])))
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


def _rotate(m, v, p: np.ndarray, q: np.ndarray):
    """Jacobi rotations on the disjoint static pairs (p_i, q_i) at once: m ← Jᵀ m J zeroes
    every m[p_i, q_i] and v ← v J. Disjoint rotations commute and leave each other's 2 × 2
    blocks alone, so this equals applying them one after another."""
    apq = m[p, q]
    off = apq != 0
    tau = (m[q, q] - m[p, p]) / (2.0 * jnp.where(off, apq, 1.0))
    t = jnp.where(tau >= 0, 1.0, -1.0) / (jnp.abs(tau) + jnp.sqrt(1.0 + tau * tau))
    t = jnp.where(off, t, 0.0)
    c = 1.0 / jnp.sqrt(1.0 + t * t)
    s = t * c

    def right(x):  # x @ J: columns p_i, q_i change
        xp, xq = x[:, p], x[:, q]
        return (
            x.at[:, p]
            .set(c[None, :] * xp - s[None, :] * xq)
            .at[:, q]
            .set(s[None, :] * xp + c[None, :] * xq)
        )

    m = right(m)
    mp, mq = m[p], m[q]
    m = m.at[p].set(c[:, None] * mp - s[:, None] * mq).at[q].set(s[:, None] * mp + c[:, None] * mq)
    return m, right(v)


def _jacobi(a, sweeps):
    d = a.shape[-1]
    if d == 1:
        return a[:, 0], jnp.ones_like(a)
    rounds = _round_robin(d)

    def sweep(_, carry):
        for p, q in rounds:
            carry = _rotate(*carry, p, q)
        return carry

    sym = 0.5 * (a + a.T)
    m, v = jax.lax.fori_loop(0, sweeps, sweep, (sym, jnp.eye(d, dtype=a.dtype)))
    w = jnp.diagonal(m)
    order = jnp.argsort(w)
    return w[order], v[:, order]


@partial(jax.jit, static_argnames="sweeps")
def eigh(
    a: Float[Array, "... d d"], sweeps: int | None = None
) -> tuple[Float[Array, "... d"], Float[Array, "... d d"]]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric part of ``a``.

    Args:
        a: symmetric matrices (only (a + aᵀ)/2 is used).
        sweeps: Jacobi sweeps over all d(d−1)/2 pairs (static; default ``default_sweeps``).
    """
    n = default_sweeps(a.shape[-1], a.dtype) if sweeps is None else int(sweeps)
    return jnp.vectorize(lambda m: _jacobi(m, n), signature="(d,d)->(d),(d,d)")(a)


@jax.jit
def eigvalsh(a: Float[Array, "... d d"]) -> Float[Array, "... d"]:
    """Ascending eigenvalues of the symmetric part of ``a`` (closed form for d ≤ 2)."""
    d = a.shape[-1]
    if d == 1:
        return a[..., 0]
    if d == 2:
        half_tr = 0.5 * (a[..., 0, 0] + a[..., 1, 1])
        off = 0.5 * (a[..., 0, 1] + a[..., 1, 0])
        r = jnp.sqrt((0.5 * (a[..., 0, 0] - a[..., 1, 1])) ** 2 + off**2)
        return jnp.stack([half_tr - r, half_tr + r], axis=-1)
    return eigh(a)[0]
