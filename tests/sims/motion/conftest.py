"""Fixtures shared by the motion tests of the feedforward tracker, drift and engine."""

import os
from pathlib import Path

import jax
import pytest

from sims.motion import dataset as ds


@pytest.fixture(scope="session")
def motion_cache():
    """The session's ``SCSC_CACHE`` (a temporary directory, tests/conftest.py) for the smoke
    datasets and evaluators; modules that test the cache itself use their own."""
    return Path(os.environ["SCSC_CACHE"])


@pytest.fixture(scope="session")
def smoke_data(motion_cache):
    """The smoke dataset (18 motions × 40 frames), realised once per session."""
    return ds.load(ds.Config.smoke())


@pytest.fixture(scope="session")
def assert_no_lapack():
    """The check that a lowered jitted correction contains no LAPACK custom call on CPU (so
    no batched LAPACK kernel can starve XLA's intra-op pool; ``sims.motion.engine``): the
    sparse-Jacobian CG models and ``engine.step``'s sparse LDLᵀ.
    ``test_dense_newton_mjx_step_does_call_lapack`` shows the check can fail."""

    def check(lowered) -> None:
        assert jax.default_backend() == "cpu"
        assert "lapack" not in lowered.as_text().lower()

    return check
