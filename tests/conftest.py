"""Session-wide test settings: Hypothesis profiles, the compilation cache, a guard on x64.

No precision is set here: model code is tested in the precision it runs in (float32 by
default), and ``tests/theory/conftest.py`` scopes float64 and strict promotion to the theory
tests. The guard makes a test fail when it leaves ``jax_enable_x64`` changed (a
``jax.config.update`` in the code under test would otherwise switch every later test to
float64 silently).
"""

import os

import jax
import pytest
from hypothesis import settings

# ``sims.cli.main`` switches on a persistent XLA compilation cache (``~/.cache/scsc/jax``
# unless ``SCSC_JAX_CACHE`` says otherwise), process-wide, and tests call it in-process: off
# by default here, so a test run writes nothing outside temporary directories and its timing
# does not depend on which test called the CLI first. ``SCSC_JAX_CACHE=<dir> make test-fast``
# opts in, for the whole session from the start (reruns then skip most compilation).
if os.environ.setdefault("SCSC_JAX_CACHE", "off").lower() not in ("off", "0", ""):
    from sims.cli import enable_compilation_cache

    enable_compilation_cache()

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _x64_unchanged():
    before = jax.config.jax_enable_x64
    yield
    after = jax.config.jax_enable_x64
    if after != before:
        jax.config.update("jax_enable_x64", before)  # spare the tests that follow
        pytest.fail(f"the test left jax_enable_x64 = {after} (was {before}); use a context")


@pytest.fixture
def float64():
    """float64 for one test that is about exactness (an identity that holds to 1e-9), not
    about the precision the code runs in; a context, undone when the test ends."""
    with jax.enable_x64(True):
        yield
