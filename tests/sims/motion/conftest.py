"""Fixtures shared by the motion tests of the feedforward tracker, drift and engine."""

import pytest

from sims.motion import dataset as ds


@pytest.fixture(scope="session")
def motion_cache(tmp_path_factory):
    """One ``SCSC_CACHE`` for the session's smoke datasets and evaluators."""
    path = tmp_path_factory.mktemp("motion_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SCSC_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def smoke_data(motion_cache):
    """The smoke dataset (18 motions × 40 frames), realised once per session."""
    return ds.load(ds.Config.smoke())
