"""Large λ × γ × seed sweeps of the Gaussian loop with the ideal corrector, one jitted call per
workflow, split over every local device and, with ``jax.distributed``, over processes.

Paper: Algorithm 1, eq. (5), Def. 4.1. Workflows: ``augment`` (fixed real set + k = ⌊λn⌋
fresh points: the theorem), ``accumulate`` (real + every synthetic set so far, kept as one
running merged group), and ``replace`` (n own samples, no real data; λ is ignored).

Every run starts from θ_0 = (real mean + ``displacement``·e₁, real covariance), so the
transient is measurable. Per cell (λ, γ) the sweep returns seed summaries (``CellStats``);
the per-run traces never leave the device.

Two engines draw the same law (``StatsSpec.engine``):

- ``"tables"`` (default, ``sims.gaussian.engine``): randomness per (seed, generation) shared
  by every cell, group draws tabulated over the group size, a batch of cells as one
  vectorised scan with summaries in the carry;
- ``"stats"`` (``sims.gaussian.sweep_stats``): the previous engine, each run drawn on its own
  from exact sufficient statistics; kept as the reference of the law tests and the benchmark.

Keys are per seed and shared by all cells (common random numbers), so a cell's numbers do not
depend on the device layout or the number of processes (bit for bit, at a fixed batch size;
another batch size changes them only by float rounding, as XLA vectorises other widths).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float

from sims.gaussian import distributed, sweep_stats
from sims.gaussian import engine as tables_engine
from sims.gaussian.cellstats import ENGINES, WORKFLOWS, CellStats, StatsSpec
from sims.gaussian.sweep_stats import RunTrace, cell, run, summarize
from theory import operators as ops
from theory._checks import check_positive_int

__all__ = [
    "ENGINES",
    "WORKFLOWS",
    "CellStats",
    "RunTrace",
    "StatsSpec",
    "cell",
    "default_batch",
    "grid",
    "run",
    "summarize",
]

_LANES = 1 << 15  # runs (cells × seeds) per batch of the tables engine: ~15 MB of state

_progress = None  # a tqdm bar while a CLI sweep runs (host callbacks tick it)


def _tick(cells):
    if _progress is not None:
        _progress.update(int(np.size(cells)))


def default_batch(spec: StatsSpec, seeds: int) -> int:
    """Cells per batch when ``grid`` is not told: the tables engine runs a batch as one
    vectorised scan of 2^15 runs (1,024 cells at 32 seeds: the default grid in four
    batches; on 2 cores 1,024 used ~15 % less CPU time than 4,096, whose state no longer
    fits in cache); the stats engine maps 256 cells at a time."""
    if spec.engine == "stats":
        return 256
    return max(1, _LANES // seeds)


def _tables_body(spec: StatsSpec, batch: int, mixed, keys, lams, gammas, codes):
    """One device's cells, in batches of ``batch``: the tables are drawn once and shared.
    ``mixed``: None (every cell runs ``spec.workflow``) or the workflow names the per-cell
    ``codes`` index (one compilation for all of them)."""
    dtype = jnp.result_type(float)
    layout = tables_engine.layout_for(spec, workflows=mixed)
    tabs, real = tables_engine.tables(layout, keys, spec.generations, spec.n_real, dtype)

    def one(args):
        lam, gamma, code = args
        code = None if mixed is None else code
        out = tables_engine.batch(spec, layout, tabs, real, lam, gamma, code)
        jax.debug.callback(_tick, lam)
        return out

    out = jax.lax.map(one, tuple(a.reshape(-1, batch) for a in (lams, gammas, codes)))
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), out)


def _stats_body(spec: StatsSpec, batch: int, keys, lams, gammas, codes):
    return sweep_stats.map_cells(spec, keys, lams, gammas, codes, batch_size=batch, tick=_tick)


@partial(jax.jit, static_argnames=("spec", "batch", "mesh", "mixed"))
def _cells(spec, keys, lams, gammas, codes, batch, mesh, mixed=None):
    if spec.engine == "tables":
        body = partial(_tables_body, spec, batch, mixed)
    else:
        body = partial(_stats_body, spec, batch)
    if mesh is None:
        return body(keys, lams, gammas, codes)
    cells = P("cells")
    # Cells are independent (no collectives), so varying-axis checks add nothing.
    sharded = jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(P(), cells, cells, cells),
        out_specs=cells,
        check_vma=False,
    )
    return sharded(keys, lams, gammas, codes)


def grid(
    spec: StatsSpec,
    keys: jax.Array,
    lams: Float[Array, " l"],
    gammas: Float[Array, " g"],
    *,
    workflows: tuple[str, ...] | None = None,
    batch_size: int | None = None,
    devices=None,
) -> CellStats:
    """Every (λ, γ) cell × every seed key; leaves shaped (l, g, ...).

    With ``workflows`` (names from ``WORKFLOWS``) the cells are workflow × λ × γ and the
    leaves are shaped (w, l, g, ...); the workflow is then data (one compilation).

    Cells are flattened, padded to whole batches on every device of every process, and this
    process's share (``sims.gaussian.distributed.share``; all of them in a single process) is
    split over a 1-D mesh of the local devices (``NamedSharding``/``shard_map``; each device
    maps over its cells in batches of ``batch_size``). With several processes the shares are
    gathered (``distributed.gather``), so every process returns the whole grid.

    Args:
        spec: static sweep description (``k_max`` must cover ⌊λn⌋ for the largest λ).
        keys: one PRNG key per seed.
        lams: λ values (≥ 0).
        gammas: γ values (≥ 0, inf allowed).
        workflows: optional workflow names (default ``spec.workflow`` alone, no leading axis).
        batch_size: cells per batch (default ``default_batch``); other sizes change results
            only by float rounding.
        devices: local devices to shard over; default all (``jax.local_devices()``); a single
            device runs unsharded.
    """
    names = (spec.workflow,) if workflows is None else tuple(workflows)
    for name in names:
        if name not in WORKFLOWS:
            raise ValueError(f"workflow must be one of {WORKFLOWS}; got {name!r}")
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
    codes = np.asarray([WORKFLOWS.index(name) for name in names])
    if len(names) == 1:
        spec = dataclasses.replace(spec, workflow=names[0])
    # One workflow: the tables engine specialises its step to it. Several: the workflow is
    # data (one compilation), as it always is in the stats engine.
    mixed = names if spec.engine == "tables" and len(names) > 1 else None
    out = _grid_one(spec, keys, lams, gammas, codes, batch_size, devices, mixed)
    if workflows is None:
        out = jax.tree.map(lambda a: a[0], out)
    return out


def _grid_one(spec, keys, lams, gammas, codes, batch_size, devices, mixed) -> CellStats:
    """One compiled grid: workflows × λ × γ cells; leaves shaped (w, l, g, ...)."""
    ww, ll, gg = np.meshgrid(codes, lams, gammas, indexing="ij")
    flat = [ll.ravel(), gg.ravel(), ww.ravel()]
    size = flat[0].size
    # Whole batches on every device: a remainder batch would compile the body twice. The
    # batch must not depend on the process count: XLA vectorises different batch widths
    # differently, which changes the numbers at the level of float rounding, so a share of
    # a multi-process run computes exactly the batches a single process would.
    batch = min(batch_size, -(-size // len(devices)))
    total, lo, hi = distributed.share(size, len(devices) * batch)
    flat = [np.concatenate([a, np.repeat(a[-1:], total - size)])[lo:hi] for a in flat]
    dtype = jnp.result_type(float)
    args = (jnp.asarray(flat[0], dtype), jnp.asarray(flat[1], dtype), jnp.asarray(flat[2]))
    mesh = None
    if len(devices) > 1:
        mesh = Mesh(np.asarray(devices), ("cells",))
        args = jax.device_put(args, NamedSharding(mesh, P("cells")))
    elif devices:
        args = jax.device_put(args, devices[0])
    out = jax.tree.map(np.asarray, _cells(spec, keys, *args, batch, mesh, mixed))
    out = distributed.gather(out)
    return jax.tree.map(lambda a: a[:size].reshape(*ll.shape, *a.shape[1:]), out)
