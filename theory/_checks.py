"""Input validation shared by the theory functions.

Checks run on concrete values only: inside `jit`/`grad`/`vmap` the arguments are tracers and
are passed through unchecked (validate at the edge, before tracing).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True when any leaf of ``x`` is a JAX tracer (no concrete value to check)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def as_float(x) -> jax.Array:
    """Converts to the default float dtype (float64 under ``jax_enable_x64``)."""
    return jnp.asarray(x, dtype=jnp.result_type(float))


def check_nonneg(name: str, x, *, allow_inf: bool = True) -> None:
    """Raises ValueError unless every entry of ``x`` is >= 0 (and not NaN).

    Args:
        name: parameter name used in the message.
        x: scalar or array.
        allow_inf: whether +inf is an admissible value.
    """
    if is_traced(x):
        return
    a = np.atleast_1d(np.asarray(x, dtype=float))
    upper = "inf]" if allow_inf else "inf)"
    bad = np.isnan(a) | (a < 0) | (np.isinf(a) & (not allow_inf))
    if np.any(bad):
        raise ValueError(f"{name} must lie in [0, {upper}; got {a[bad].ravel()[:3].tolist()}")


def check_nonneg_int(name: str, x) -> None:
    """Raises ValueError unless every entry of ``x`` is a non-negative integer."""
    if is_traced(x):
        return
    a = np.atleast_1d(np.asarray(x))
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be a non-negative integer; got {x!r}")
    af = a.astype(float)
    bad = ~np.isfinite(af) | (af < 0) | (af != np.round(af))
    if np.any(bad):
        raise ValueError(
            f"{name} must be a non-negative integer; got {af[bad].ravel()[:3].tolist()}"
        )


def check_positive_int(name: str, x: int) -> None:
    """Raises ValueError unless ``x`` is an integer >= 1 (sizes such as n, d, seeds)."""
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {x!r}")


def check_matrix(name: str, x, min_rows: int = 1) -> None:
    """Raises ValueError unless ``x`` is a finite 2-D (n, d) array with n >= ``min_rows``."""
    if is_traced(x):
        return
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d); got shape {a.shape}")
    if a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")


def check_vector(name: str, x, min_len: int = 1) -> None:
    """Raises ValueError unless ``x`` is a finite 1-D array of length >= ``min_len``."""
    if is_traced(x):
        return
    a = np.asarray(x)
    if a.ndim != 1 or a.shape[0] < min_len:
        raise ValueError(f"{name} must be a 1-D array of length >= {min_len}; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")


def check_p(p) -> None:
    """Raises ValueError unless the Wasserstein order ``p`` is a finite number >= 1."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not (1 <= p < math.inf):
        raise ValueError(f"p must be a finite number >= 1; got {p!r}")


def as_samples(name: str, x, min_rows: int) -> jax.Array:
    """(n,) or (n, d) samples as an (n, d) float array, validated."""
    if not is_traced(x) and np.ndim(x) == 1:
        x = np.asarray(x)[:, None]
    check_matrix(name, x, min_rows)
    return as_float(x)
