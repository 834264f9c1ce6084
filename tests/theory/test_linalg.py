"""theory.linalg against NumPy in float64, and no LAPACK call left in the project's jitted code.

The no-LAPACK checks are why the module exists (the batched CPU LAPACK deadlock, see
``theory/linalg.py``): a source scan of ``theory/`` and ``sims/`` for ``jnp.linalg`` /
``jax.scipy.linalg`` factorisations, and the lowered programs of entry points that used them.
Both are shown to fail on a planted use.
"""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory import bounds, chains, constants, linalg
from theory import gaussian as gauss

ROOT = Path(__file__).resolve().parents[2]
SIZES = [1, 2, 3, 5, 8, 16]


def spd(rng, d, batch=()):
    a = rng.normal(size=(*batch, d, d))
    return a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", SIZES)
def test_cholesky_and_cho_solve_match_numpy(d):
    rng = np.random.default_rng(d)
    a = spd(rng, d, (3,))
    low = np.asarray(linalg.cholesky(jnp.asarray(a)))
    np.testing.assert_allclose(low, np.linalg.cholesky(a), rtol=1e-10, atol=1e-12)
    b = rng.normal(size=(3, d, 2))
    x = linalg.cho_solve(jnp.asarray(low), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_cholesky_of_an_indefinite_matrix_is_nan():
    assert np.isnan(np.asarray(linalg.cholesky(jnp.array([[1.0, 2.0], [2.0, 1.0]])))).any()


@pytest.mark.parametrize("d", SIZES)
def test_solve_inv_det_match_numpy_on_general_matrices(d):
    rng = np.random.default_rng(10 + d)
    a = rng.normal(size=(4, d, d))
    b = rng.normal(size=(4, d))
    np.testing.assert_allclose(
        np.asarray(linalg.solve(jnp.asarray(a), jnp.asarray(b))),
        np.linalg.solve(a, b[..., None])[..., 0],
        rtol=1e-8,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        np.asarray(linalg.inv(jnp.asarray(a))), np.linalg.inv(a), rtol=1e-8, atol=1e-9
    )
    np.testing.assert_allclose(np.asarray(linalg.det(jnp.asarray(a))), np.linalg.det(a), rtol=1e-9)
    np.testing.assert_allclose(
        np.asarray(linalg.logabsdet(jnp.asarray(a))),
        np.linalg.slogdet(a)[1],
        rtol=1e-10,
        atol=1e-12,
    )


def test_pivoting_signs_and_singular_matrices():
    swap = jnp.array([[0.0, 1.0], [1.0, 0.0]])  # needs a row exchange: no pivot at (0, 0)
    assert float(linalg.det(swap)) == -1.0
    np.testing.assert_allclose(np.asarray(linalg.solve(swap, jnp.array([2.0, 3.0]))), [3.0, 2.0])
    singular = jnp.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    assert float(linalg.det(singular)) == 0.0
    assert float(linalg.logabsdet(singular)) == -np.inf
    assert not np.isfinite(np.asarray(linalg.solve(singular, jnp.ones(3)))).all()


def check_eigh(a, w, v, tol):
    scale = np.linalg.norm(a)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), atol=tol * scale)
    eye = np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, eye, atol=tol)
    np.testing.assert_allclose(a @ v, v * w[..., None, :], atol=tol * scale)


@pytest.mark.parametrize("d", [*SIZES, 32])
def test_eigh_matches_numpy(d):
    rng = np.random.default_rng(20 + d)
    a = rng.normal(size=(3, d, d))
    a = a + np.swapaxes(a, -1, -2)
    w, v = linalg.eigh(jnp.asarray(a))
    check_eigh(a, np.asarray(w), np.asarray(v), 1e-11)
    np.testing.assert_allclose(
        np.asarray(linalg.eigvalsh(jnp.asarray(a))),
        np.linalg.eigvalsh(a),
        atol=1e-11 * np.abs(a).max() * d,
    )


def test_eigh_on_repeated_and_clustered_eigenvalues():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    for spectrum in ([1, 1, 1, 2, 2, 5], [1, 1 + 1e-9, 1 + 2e-9, 3, 3, 3], [0, 0, 0, 0, 0, 1]):
        a = (q * np.array(spectrum, float)) @ q.T
        w, v = linalg.eigh(jnp.asarray(a))
        check_eigh(a, np.asarray(w), np.asarray(v), 1e-12)
    w, v = linalg.eigh(jnp.eye(4))
    np.testing.assert_array_equal(np.asarray(w), np.ones(4))


def test_too_few_sweeps_fail_the_eigh_check():
    """Planted: one Jacobi sweep is not converged, and the tolerance above sees it."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8))
    a = a + a.T
    w, v = linalg.eigh(jnp.asarray(a), sweeps=1)
    with pytest.raises(AssertionError):
        check_eigh(a, np.asarray(w), np.asarray(v), 1e-11)


# --- no LAPACK in the project's jitted code ---------------------------------------------------

LINALG_CALL = re.compile(
    r"jnp\.linalg\.(cholesky|solve|inv|det|slogdet|eigh|eigvalsh|eig|svd|qr|lstsq|pinv|matrix_power)\b"
    r"|jax\.scipy\.linalg\.\w+|jax\.lax\.linalg\.\w+|from jax(\.numpy|\.scipy)? import linalg"
)


def linalg_uses(text: str) -> list[str]:
    return [m.group(0) for m in LINALG_CALL.finditer(text)]


def test_no_lapack_factorisation_in_the_source():
    """Every factorisation in theory/ and sims/ goes through theory.linalg (docstrings that
    name the replaced calls excepted: only code lines are scanned)."""
    found = []
    for path in [*ROOT.glob("theory/*.py"), *ROOT.glob("sims/**/*.py")]:
        if path.name == "linalg.py" and path.parent.name == "theory":
            continue
        code = [
            ln
            for ln in path.read_text().splitlines()
            if not ln.lstrip().startswith(("#", "``", '"'))
        ]
        for line in code:
            found += [f"{path.relative_to(ROOT)}: {u}" for u in linalg_uses(line.split("#")[0])]
    assert found == []
    assert linalg_uses("x = jnp.linalg.cholesky(a)") == ["jnp.linalg.cholesky"]  # planted


def lapack_targets(fn, *args) -> set[str]:
    text = jax.jit(fn).lower(*args).as_text()
    return {t for t in re.findall(r"@?(lapack_\w+)", text)}


def test_entry_points_lower_without_lapack():
    rng = np.random.default_rng(0)
    g3 = gauss.Gaussian(jnp.zeros(3), jnp.asarray(spd(rng, 3)))
    gs = gauss.Gaussian(jnp.zeros((5, 3)), jnp.asarray(spd(rng, 3, (5,))))
    x = jnp.asarray(rng.normal(size=(7, 3)))
    programs = {
        "kl": (jax.vmap(gauss.kl, in_axes=(0, None)), gs, g3),
        "w2 d=3": (jax.vmap(gauss.w2, in_axes=(0, None)), gs, g3),
        "logpdf": (gauss.logpdf, g3, x),
        "lemma_a7_jacobian": (lambda m: bounds.lemma_a7_jacobian(m, 0.5, 1.0), jnp.eye(3)),
        "augment_stationary": (lambda: chains.augment_stationary(50, 0.5, 1.0),),
        "fisher_curvature": (
            lambda t: constants.fisher_curvature(
                lambda th, y: -jnp.sum((y - th[:1]) ** 2) * th[1], t, x[:, :1]
            ),
            jnp.array([0.0, 1.0]),
        ),
    }
    for name, (fn, *args) in programs.items():
        assert lapack_targets(fn, *args) == set(), name
    assert lapack_targets(jnp.linalg.cholesky, g3.cov)  # planted: the check sees LAPACK
