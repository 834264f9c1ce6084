"""Multi-process phase grids: two CPU processes on loopback (``jax.distributed``) give exactly
the single-process result, through the ``scsc phase`` hand-off."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from sims import cli
from sims.gaussian import distributed

_SIZES = {"n-lam": 6, "n-gamma": 5, "seeds": 4, "generations": 40, "batch-size": 4}
SMOKE = [s for k, v in _SIZES.items() for s in (f"--{k}", str(v))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _phase(out, *extra) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # the session's compilation cache, if any
    env.pop("JAX_COORDINATOR_ADDRESS", None)
    cmd = [sys.executable, "-m", "sims.cli", "phase", *SMOKE, "--out", str(out), *extra]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.heavy  # three `scsc phase` processes: ~30–60 s
def test_two_processes_on_loopback_equal_one_process(tmp_path):
    """30 cells (padded to 32) in batches of 4: one process computes all 8 batches, each of
    two processes its own 4; the merged maps must be bit-identical to the single process's."""
    port = _free_port()
    dist = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [_phase(tmp_path / "two", *dist, "--process-id", str(i)) for i in (0, 1)]
    single = _phase(tmp_path / "one")
    for p in [*procs, single]:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out[-3000:]
    one = np.load(tmp_path / "one" / "phase_diagram.npz")
    two = np.load(tmp_path / "two" / "phase_diagram.npz")
    assert sorted(one.files) == sorted(two.files)
    for name in one.files:
        assert np.array_equal(one[name], two[name], equal_nan=True), name
    # The simulated maps are not trivially equal (e.g. all NaN).
    assert np.isfinite(one["stationary_w2_mean"]).all()


def test_distributed_flags_are_checked_before_work(capsys):
    assert cli.main(["phase", "--coordinator", "127.0.0.1:1234"]) == 2
    assert "go together" in capsys.readouterr().err
    bad = ["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"]
    assert cli.main(["phase", *bad]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    bad = ["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"]
    assert cli.main(["phase", *bad]) == 2
    assert "process_id" in capsys.readouterr().err


def test_share_covers_every_cell_once():
    total, lo, hi = distributed.share(30, 8)
    assert (total, lo, hi) == (32, 0, 32)  # one process: everything, padded to whole units
    with pytest.raises(ValueError, match="num_processes"):
        distributed.initialize("127.0.0.1:1234", 0, 0)
