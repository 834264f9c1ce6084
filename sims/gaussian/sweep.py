"""Large λ × γ × seed sweeps of the Gaussian loop with the ideal corrector: one compilation,
split over every local device and, with ``jax.distributed``, over processes.

Paper: Algorithm 1, eq. (5), Def. 4.1. Workflows (``SWEEP_WORKFLOWS``): ``augment`` (fixed
real set + k = ⌊λn⌋ fresh points: the theorem), ``accumulate`` (real + every synthetic set
so far, kept as one running merged group), and ``replace`` (n own samples, no real data; λ
is ignored).

Every run starts from θ_0 = (real mean + ``displacement``·e₁, real covariance), so the
transient is measurable. Per cell (λ, γ) the sweep returns seed summaries (``CellStats``);
the per-run traces never leave the device.

Two engines draw the same law (``StatsSpec.engine``):

- ``"tables"`` (default, ``sims.gaussian.engine``): randomness per (seed, generation) shared
  by every cell, group draws tabulated over the group size, a batch of cells as one
  vectorised scan with the summaries in the carry;
- ``"stats"`` (``sims.gaussian.sweep_stats``): the previous engine, each run drawn on its own
  from exact sufficient statistics; kept as the reference of the law tests and the benchmark.

Keys are per seed and shared by all cells (common random numbers), so a cell's numbers do not
depend on the device layout, the chunking or the number of processes (bit for bit, at a fixed
batch size; another batch size changes them only by float rounding, as XLA vectorises other
widths differently).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float

from sims.common import deprecation
from sims.gaussian import distributed, sweep_stats
from sims.gaussian import engine as tables_engine
from sims.gaussian.cellstats import ENGINES, SWEEP_WORKFLOWS, CellStats, StatsSpec
from sims.gaussian.sweep_stats import RunTrace, cell, run, summarize
from theory import operators as ops
from theory._checks import check_positive_int

__all__ = [
    "ENGINES",
    "SWEEP_WORKFLOWS",
    "CellStats",
    "RunTrace",
    "StatsSpec",
    "cell",
    "default_batch",
    "grid",
    "run",
    "summarize",
]

__getattr__ = deprecation.module_getattr(
    __name__, {"WORKFLOWS": "sims.gaussian.loop.SWEEP_WORKFLOWS"}
)

_LANES = 1 << 15  # runs (cells × seeds) per batch of the tables engine: ~15 MB of state


def default_batch(spec: StatsSpec, seeds: int) -> int:
    """Cells per batch when ``grid`` is not told: the tables engine runs a batch as one
    vectorised scan of 2^15 runs (1,024 cells at 32 seeds: the default grid in four
    batches; on 2 cores 1,024 used ~15 % less CPU time than 4,096, whose state no longer
    fits in cache); the stats engine maps 256 cells at a time."""
    if spec.engine == "stats":
        return 256
    return max(1, _LANES // seeds)


@partial(jax.jit, static_argnames=("layout", "generations", "n_real"))
def _draw(layout, keys, generations, n_real):
    """The tables engine's random tables, drawn once per grid and shared by every chunk."""
    return tables_engine.tables(layout, keys, generations, n_real, jnp.result_type(float))


def _sharded(body, mesh, n_shared: int, n_cells: int):
    if mesh is None:
        return body
    # Cells are independent (no collectives), so varying-axis checks add nothing.
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(P(),) * n_shared + (P("cells"),) * n_cells,
        out_specs=P("cells"),
        check_vma=False,
    )


@partial(jax.jit, static_argnames=("spec", "layout", "mesh", "mixed"))
def _tables_chunk(spec, layout, tabs, real, lams, gammas, codes, mesh, mixed):
    """One batch per device. ``mixed``: None (every cell runs ``spec.workflow``) or the
    workflow names the per-cell ``codes`` index (one compilation for all of them)."""

    def body(tabs, real, lams, gammas, codes):
        codes = None if mixed is None else codes
        return tables_engine.batch(spec, layout, tabs, real, lams, gammas, codes)

    return _sharded(body, mesh, 2, 3)(tabs, real, lams, gammas, codes)


@partial(jax.jit, static_argnames=("spec", "batch", "mesh"))
def _stats_chunk(spec, keys, lams, gammas, codes, batch, mesh):
    body = partial(sweep_stats.map_cells, spec, batch_size=batch)
    return _sharded(body, mesh, 1, 3)(keys, lams, gammas, codes)


def grid(
    spec: StatsSpec,
    keys: jax.Array,
    lams: Float[Array, " l"],
    gammas: Float[Array, " g"],
    *,
    workflows: tuple[str, ...] | None = None,
    batch_size: int | None = None,
    devices=None,
    on_cells: Callable[[int], None] | None = None,
) -> CellStats:
    """Every (λ, γ) cell × every seed key, one compilation; leaves shaped (l, g, ...).

    With ``workflows`` (names from ``SWEEP_WORKFLOWS``) the cells are workflow × λ × γ and the
    leaves are shaped (w, l, g, ...): the workflow is data, so this still compiles once.

    Cells are flattened and padded to whole batches on every device of every process; this
    process takes its share (``sims.gaussian.distributed.share``; all of them in a single
    process) and dispatches it in chunks of one batch per local device, each split over a
    1-D device mesh (``NamedSharding``/``shard_map``). Every chunk has the same shapes, so
    one compilation serves all of them; they are all dispatched before the first is awaited
    (the devices never wait on the host), the results are reassembled on the host and, with
    several processes, gathered (``distributed.gather``), so every process returns the whole
    grid. The tables engine draws its random tables once per grid and shares them.

    Args:
        spec: static sweep description (``k_max`` must cover ⌊λn⌋ for the largest λ).
        keys: one PRNG key per seed (at least two).
        lams: λ values (≥ 0).
        gammas: γ values (≥ 0, inf allowed).
        workflows: optional workflow names (default ``spec.workflow`` alone, no leading axis).
        batch_size: cells per batch (default ``default_batch``); other sizes change the
            numbers only by float rounding.
        devices: local devices to shard over; default all (``jax.local_devices()``); a single
            device runs unsharded.
        on_cells: the progress hook, a plain callable ``on_cells(done: int)``. It is called
            on the host, never inside the compiled computation, each time a chunk's results
            have arrived, with the cumulative number of grid cells finished (padding
            excluded; non-decreasing; the last call passes the total). With several
            processes it is this process's count times the process count. None: no reports.
    """
    names = (spec.workflow,) if workflows is None else tuple(workflows)
    for name in names:
        if name not in SWEEP_WORKFLOWS:
            raise ValueError(f"workflow must be one of {SWEEP_WORKFLOWS}; got {name!r}")
    lams = np.asarray(lams, dtype=float)
    gammas = np.asarray(gammas, dtype=float)
    if lams.ndim != 1 or gammas.ndim != 1 or lams.size == 0 or gammas.size == 0:
        raise ValueError(f"lams and gammas must be non-empty 1-D; got {lams.shape}, {gammas.shape}")
    if np.any(~np.isfinite(lams) | (lams < 0)):
        raise ValueError(f"lams must be finite and >= 0; got {lams[~(lams >= 0)][:3]}")
    if np.any(np.isnan(gammas) | (gammas < 0)):
        raise ValueError(f"gammas must lie in [0, inf]; got {gammas[~(gammas >= 0)][:3]}")
    k_needed = int(np.max(np.asarray(ops.n_synthetic(lams, spec.n_real))))
    if set(names) != {"replace"} and k_needed > spec.k_max:
        raise ValueError(
            f"k_max = {spec.k_max} < ⌊λ n⌋ = {k_needed} for the largest λ; raise k_max"
        )
    seeds = int(keys.shape[0])
    if seeds < 2:
        raise ValueError(f"need at least 2 seed keys (standard errors); got {seeds}")
    batch_size = default_batch(spec, seeds) if batch_size is None else batch_size
    check_positive_int("batch_size", batch_size)
    devices = jax.local_devices() if devices is None else list(devices)
    if len(names) == 1:
        spec = dataclasses.replace(spec, workflow=names[0])
    # One workflow: the tables engine specialises its step to it. Several: the workflow is
    # data (one compilation), as it always is in the stats engine.
    mixed = names if spec.engine == "tables" and len(names) > 1 else None

    codes = np.asarray([SWEEP_WORKFLOWS.index(name) for name in names])
    ww, ll, gg = np.meshgrid(codes, lams, gammas, indexing="ij")
    flat = [ll.ravel(), gg.ravel(), ww.ravel()]
    size = flat[0].size
    # Whole batches on every device: a remainder batch would compile the body twice. The
    # batch does not depend on the process count, so a process computes exactly the
    # batches a single process would (bit-identical results).
    batch = min(batch_size, -(-size // len(devices)))
    step = len(devices) * batch  # cells per dispatched chunk
    total, lo, hi = distributed.share(size, step)
    flat = [np.concatenate([a, np.repeat(a[-1:], total - size)])[lo:hi] for a in flat]
    dtype = jnp.result_type(float)
    mesh = Mesh(np.asarray(devices), ("cells",)) if len(devices) > 1 else None
    if spec.engine == "tables":
        layout = tables_engine.layout_for(spec, workflows=mixed)
        shared = _draw(layout, keys, spec.generations, spec.n_real)
        chunk = partial(_tables_chunk, spec, layout, *shared)
        tail = {"mesh": mesh, "mixed": mixed}
    else:
        chunk = partial(_stats_chunk, spec, keys)
        tail = {"batch": batch, "mesh": mesh}
    pending = []
    for start in range(0, hi - lo, step):
        part = [a[start : start + step] for a in flat]
        args = (jnp.asarray(part[0], dtype), jnp.asarray(part[1], dtype), jnp.asarray(part[2]))
        if mesh is not None:
            args = jax.device_put(args, NamedSharding(mesh, P("cells")))
        pending.append(chunk(*args, **tail))
    parts = []
    procs = distributed.process_count()
    for i, out in enumerate(pending):
        parts.append(jax.tree.map(np.asarray, out))  # waits for this chunk only
        if on_cells is not None:
            on_cells(min((i + 1) * step * procs, size))
    out = distributed.gather(jax.tree.map(lambda *a: np.concatenate(a), *parts))
    shape = ll.shape if workflows is not None else ll.shape[1:]
    return jax.tree.map(lambda a: a[:size].reshape(*shape, *a.shape[1:]), out)
