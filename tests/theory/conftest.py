"""The theory tests run in float64 with strict promotion; nothing else does.

``theory/`` is pure maths checked against float64 oracles (NumPy, SciPy, closed forms), so
its tests switch on ``jax_enable_x64``, strict dtype promotion and rank promotion ``raise``.
The switch is a context (``jax.enable_x64`` and the promotion contexts, thread-local and
undone afterwards), never ``jax.config.update``: the model code under ``tests/sims`` is
tested in the precision it runs in (float32 by default; MJX, Equinox and Optax as they are).

Two scopes need it: test execution (an autouse fixture per module, set up before the
module's own fixtures, which compile under it) and collection, because module-level arrays
(``TARGET = gauss.standard(2)``) are built when pytest imports the test file.
"""

import contextlib

import jax
import pytest


@contextlib.contextmanager
def strict_float64():
    """float64, strict dtype promotion, rank promotion ``raise`` (jax >= 0.10.2 contexts)."""
    with (
        jax.enable_x64(True),
        jax.numpy_dtype_promotion("strict"),
        jax.numpy_rank_promotion("raise"),
    ):
        yield


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Imports (collects) the theory test modules under ``strict_float64``."""
    with strict_float64():
        return (yield)


@pytest.fixture(scope="module", autouse=True)
def _theory_strict_float64():
    with strict_float64():
        yield


@pytest.fixture(scope="module")
def strict_jax():
    """The old opt-in name (``pytestmark = pytest.mark.usefixtures("strict_jax")``), kept so
    such files still run; the autouse fixture above already applies to every theory test."""
    assert jax.config.jax_enable_x64
    yield
