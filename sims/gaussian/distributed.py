"""Phase grids over several processes with ``jax.distributed`` (one or many machines).

Each process computes its contiguous share of the (padded) cell list on its own devices and
the shares are gathered, so every process ends with the whole grid. Cells are independent and
their random numbers depend only on the seed keys, so the merged grid equals the
single-process grid exactly (tested with two CPU processes on loopback). This is JAX's own
multi-process runtime, not a scheduler: start the same command once per process.

Usage: ``scsc phase --coordinator HOST:PORT --num-processes N --process-id I`` in each of the N
processes (process 0 hosts the coordinator and writes the outputs), or set the environment
JAX reads (``JAX_COORDINATOR_ADDRESS`` and a cluster it detects, e.g. SLURM or Open MPI) and
start ``scsc phase`` without the flags.
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["gather", "initialize", "is_leader", "process_count", "share"]


def _check(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    given = {
        "--coordinator": coordinator,
        "--num-processes": num_processes,
        "--process-id": process_id,
    }
    missing = [flag for flag, value in given.items() if value is None]
    if missing and len(missing) < 3:
        raise ValueError(
            f"--coordinator, --num-processes and --process-id go together; missing {missing}"
        )
    if missing:
        return
    host, _, port = str(coordinator).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"coordinator must be HOST:PORT (port 1..65535); got {coordinator!r}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be an integer >= 1; got {num_processes!r}")
    if (
        isinstance(process_id, bool)
        or not isinstance(process_id, int)
        or not 0 <= process_id < num_processes
    ):
        raise ValueError(
            f"process_id must be an integer in [0, {num_processes - 1}]; got {process_id!r}"
        )


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins a ``jax.distributed`` run; call before any JAX computation.

    With all three arguments they are passed to ``jax.distributed.initialize``; with none,
    JAX's environment is honoured: if ``JAX_COORDINATOR_ADDRESS`` is set, JAX reads it and
    detects the process count and id from the cluster (SLURM, Open MPI, ...). Otherwise
    nothing happens (a single process).

    Returns:
        Whether more than one process takes part.

    Raises:
        ValueError: a partial or malformed set of arguments (before anything starts).
    """
    _check(coordinator, num_processes, process_id)
    if coordinator is not None:
        if num_processes == 1:
            return False
        jax.distributed.initialize(coordinator, num_processes, process_id)
    elif os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize()
    else:
        return False
    return jax.process_count() > 1


def process_count() -> int:
    return jax.process_count()


def is_leader() -> bool:
    """Process 0: the one that writes results."""
    return jax.process_index() == 0


def share(size: int, unit: int) -> tuple[int, int, int]:
    """This process's contiguous share of ``size`` items padded to whole ``unit``s per process.

    Returns:
        (padded total, start, stop): the total is a multiple of processes × unit, and process
        i takes items [i·total/P, (i+1)·total/P).
    """
    procs = jax.process_count()
    per = -(-size // (procs * unit)) * unit
    lo = jax.process_index() * per
    return per * procs, lo, lo + per


def gather(tree):
    """Concatenates every process's share along the leading axis (process order); the
    identity in a single process."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
