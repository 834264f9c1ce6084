"""A safety net for long runs: restart a child process that stops writing checkpoints.

Checkpoints are atomic and a resumed run equals an uninterrupted one, so a restart loses at
most the generation in progress. A hang is still a bug to root-cause; this only keeps a
background run alive while it is found.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def newest_checkpoint(out: Path) -> float:
    times = [p.stat().st_mtime for p in (*out.glob("*.npz"), *out.glob("chains/*.npz"))]
    return max(times, default=0.0)


def command_without_watchdog() -> list[str]:
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--watchdog":
            skip = True
        elif not a.startswith("--watchdog="):
            argv.append(a)
    return [sys.executable, "-m", "sims.cli", *argv]


def supervise(
    cmd: list[str], out: Path, stale_s: float, max_restarts: int = 20, poll_s: float = 10.0
) -> int:
    """Runs ``cmd`` (this very command without ``--watchdog``) in a child process; when no
    checkpoint appears in ``out`` for ``stale_s`` seconds, kills the child and restarts it
    with ``--resume`` (a resumed run equals an uninterrupted one). A child that exits is
    not restarted: its exit code is returned.

    Why: on a 2-core CPU the jitted corrected step (MJX inside) hung twice in ~300 calls of
    the ``--long`` run (0 % CPU, every XLA thread waiting), the MJX-on-CPU hang described in
    ``docs/design.md``; checkpoints make a restart lose at most the generation in progress.
    """
    if not stale_s > 0:
        raise ValueError(f"watchdog must be > 0 seconds; got {stale_s}")
    cmd = list(cmd)
    for _ in range(max_restarts + 1):
        child = subprocess.Popen(cmd)
        started = time.time()
        while child.poll() is None:
            time.sleep(poll_s)
            if time.time() - max(started, newest_checkpoint(out)) > stale_s:
                print(f"watchdog: no checkpoint for {stale_s:.0f} s; restarting with --resume")
                child.terminate()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                break
        else:
            return child.returncode
        if "--resume" not in cmd:
            cmd.append("--resume")
    print(f"watchdog: gave up after {max_restarts} restarts")
    return 1
