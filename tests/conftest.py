"""Session-wide test settings: Hypothesis profiles, the data and compilation caches, a guard
on x64.

No precision is set here: model code is tested in the precision it runs in (float32 by
default), and ``tests/theory/conftest.py`` scopes float64 and strict promotion to the theory
tests. The guard makes a test fail when it leaves ``jax_enable_x64`` changed (a
``jax.config.update`` in the code under test would otherwise switch every later test to
float64 silently).
"""

import os
import tempfile

import jax
import pytest
from hypothesis import settings

# ``sims.cli.main`` switches on a persistent XLA compilation cache (``~/.cache/scsc/jax``
# unless ``SCSC_JAX_CACHE`` says otherwise), process-wide, and tests call it in-process: off
# by default here, so a test run writes nothing outside temporary directories and its timing
# does not depend on which test called the CLI first. ``make test`` opts in with a
# temporary directory for the whole run (every process, from the start; also through
# ``JAX_COMPILATION_CACHE_DIR`` for notebook kernels), and so can ``SCSC_JAX_CACHE=<dir>``
# by hand (reruns then skip most compilation).
if os.environ.setdefault("SCSC_JAX_CACHE", "off").lower() not in ("off", "0", ""):
    from sims.cli import enable_compilation_cache

    enable_compilation_cache()

# The motion datasets and evaluators are cached under ``$SCSC_CACHE`` (default
# ``~/.cache/scsc``): a temporary directory for the session unless the caller chose one
# (``make test`` passes one directory to all its pytest processes and workers, so a dataset
# or evaluator is built once per run; writes are atomic, so concurrent builders are safe).
if "SCSC_CACHE" not in os.environ:
    _DATA_CACHE = tempfile.TemporaryDirectory(prefix="scsc-test-cache-")
    os.environ["SCSC_CACHE"] = _DATA_CACHE.name

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# The slowest test files first (worker-seconds on the 2-core AMD CPU, 2026-12-03; files of
# different areas never share a pytest run, so only the order within an area matters; the
# others follow in collection order): ``make test`` schedules whole files on pytest-xdist
# workers (``--dist loadfile --no-loadscope-reorder``), and a long file started last leaves
# the other worker idle for its length (longest-processing-time-first scheduling).
SLOWEST_FIRST = (
    "tests/sims/motion/test_loop.py",  # 360 s
    "tests/sims/motion/test_engine.py",  # 170
    "tests/sims/motion/test_mjx.py",  # 150
    "tests/test_notebooks.py",  # 160
    "tests/test_cli.py",  # 130
    "tests/sims/gaussian/test_sweep.py",  # 125
    "tests/sims/gaussian/test_sweep_law.py",  # 125
    "tests/sims/motion/test_motion.py",  # 120
    "tests/sims/gaussian/test_engine_imperfect.py",  # 110
    "tests/sims/digits/test_loop.py",  # 110
    "tests/sims/gaussian/test_loop.py",  # 110
    "tests/sims/motion/test_drift.py",  # 105
    "tests/sims/digits/test_digits.py",  # 105
    "tests/sims/motion/test_evaluator.py",  # 85
    "tests/theory/test_imperfect.py",  # 75
    "tests/theory/test_sampling.py",  # 70
    "tests/sims/motion/test_tracking.py",  # 65
    "tests/theory/test_linalg.py",  # 65
    "tests/theory/test_operators.py",  # 50
    "tests/sims/imperfect/test_real.py",  # 50
)


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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
