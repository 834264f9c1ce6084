"""Benchmark: the default phase diagram with today's engine ("tables") and the previous one
("stats"), plus the arithmetic floor on this machine.

Measures, in one invocation:

1. ``fresh``: for each engine, ``--reps`` fresh processes (persistent compilation cache off)
   that import ``sims.gaussian.phase`` and call ``phase.run`` (what ``scsc phase`` computes)
   twice on the same config: the first call is *cold* (tracing + compilation + run), the
   second *warm* (compiled). Medians over the processes, the tables/stats ratios, the cost per
   run-generation (cells × seeds × T) and the 1-minute load average beside every number.
2. ``floor``: throughputs of the kernels a generation needs, measured here in the engine's
   own layout (a ``lax.scan`` over T = 300 steps of (seeds, cells) = (32, 4096) float32
   arrays): a chain of fused multiply-adds, square roots and divisions, and gathers from a
   (32, 101) table. With the engine's per-run-generation counts (≈ 150 flops, 12 roots and
   divisions, 4 gathers) they give a floor for the default grid's warm run.
3. ``subgrid`` (``--subgrid``): 8 λ × 8 γ × 32 seeds × 300 generations compiled in this
   process, median of ``--reps``: point-by-point sampling (``sims.gaussian.loop``), the stats
   engine and the tables engine.

Usage: ``python benchmarks/phase_diagram.py [--reps 3] [--engines tables,stats] [--subgrid]
[--n-lam 64 --n-gamma 64] [--json out.json]``. On an idle machine the whole run takes ~6
minutes (the stats engine's six default grids dominate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

_FRESH = """
import json, sys, time
t0 = time.perf_counter()
from sims.gaussian import phase as pd
t1 = time.perf_counter()
cfg = pd.Config(engine=sys.argv[1], n_lam=int(sys.argv[2]), n_gamma=int(sys.argv[3]),
                batch_size=256 if sys.argv[1] == "stats" else None)
out = {"import_s": t1 - t0}
for name in ("cold_s", "warm_s"):
    start = time.perf_counter()
    pd.run(cfg)
    out[name] = time.perf_counter() - start
print(json.dumps(out))
"""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load() -> float:
    return os.getloadavg()[0]


def fresh(engine: str, reps: int, n_lam: int, n_gamma: int) -> dict:
    env = {**os.environ, "SCSC_JAX_CACHE": "off", "PYTHONPATH": ROOT}
    runs = []
    for _ in range(reps):
        before = load()
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _FRESH, engine, str(n_lam), str(n_gamma)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        run = json.loads(done.stdout.strip().splitlines()[-1])
        run["process_s"] = time.perf_counter() - start
        run["load_before"], run["load_after"] = before, load()
        runs.append(run)
        print(f"  {engine}: {json.dumps({k: round(v, 2) for k, v in run.items()})}", flush=True)
    med = {k: float(np.median([r[k] for r in runs])) for k in ("cold_s", "warm_s", "process_s")}
    return {"runs": runs, **{f"median_{k}": v for k, v in med.items()}}


def _timed(fn, reps: int) -> tuple[float, list[float]]:
    fn()  # compile
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def floor(reps: int, seeds: int = 32, cells: int = 4096, steps: int = 300) -> dict:
    """Kernel throughputs in the engine's layout and the floor they imply."""
    import jax
    import jax.numpy as jnp

    shape = (seeds, cells)
    x0 = jnp.linspace(0.5, 1.5, seeds * cells, dtype=jnp.float32).reshape(shape)
    table = jnp.linspace(0.0, 1.0, seeds * 101, dtype=jnp.float32).reshape(seeds, 101)
    index = (jnp.arange(seeds * cells) % 101).reshape(shape).astype(jnp.int32)
    fma_per_step, root_per_step, gather_per_step = 64, 8, 4

    def scan(body):
        run = jax.jit(lambda x: jax.lax.scan(lambda c, _: (body(c), None), x, None, steps)[0])
        return lambda: jax.block_until_ready(run(x0))

    def fma(c):  # 64 dependent multiply-adds = 128 flops per element
        for _ in range(fma_per_step):
            c = c * 0.999 + 0.001
        return c

    def roots(c):  # 4 square roots and 4 divisions per element
        for _ in range(root_per_step // 2):
            c = jnp.sqrt(c + 1.0) / (c + 2.0)
        return c + 0.5

    def gathers(c):
        out = c
        for i in range(gather_per_step):
            out = out + jnp.take_along_axis(table + i, index, axis=1)
        return out * 1e-3

    lanes = seeds * cells * steps
    out = {}
    for name, body, per in (
        ("fma", fma, 2 * fma_per_step),
        ("root_div", roots, root_per_step),
        ("gather", gathers, gather_per_step),
    ):
        before = load()
        t, times = _timed(scan(body), reps)
        out[name] = {
            "seconds": t,
            "times": times,
            "per_step": per,
            "ns_per_op": t / (lanes * per) * 1e9,
            "load": before,
        }
    # What one run-generation of the d = 2 tables engine needs (counted in engine._Two and
    # the accumulators): ~150 flops, ~12 roots/divisions/logs, 4 gathers.
    need = {"fma": 150, "root_div": 12, "gather": 4}
    per_rg = sum(need[k] * out[k]["ns_per_op"] for k in need)
    out["need_per_run_generation"] = need
    out["floor_ns_per_run_generation"] = per_rg
    out["floor_default_grid_s"] = per_rg * 1e-9 * 64 * 64 * 32 * 300
    return out


def subgrid(reps: int, n_lam: int = 8, n_gamma: int = 8, seeds: int = 32, generations: int = 300):
    import dataclasses

    import jax
    import jax.numpy as jnp

    from sims.gaussian import loop, sweep
    from sims.gaussian import phase as pd
    from sims.gaussian.toy import real_sets
    from theory import gaussian as gauss

    cfg = pd.Config(n_lam=n_lam, n_gamma=n_gamma, seeds=seeds, generations=generations)
    lams, gammas = cfg.lams(), cfg.gammas()
    keys = pd.seed_keys(seeds)
    spec = cfg.spec()
    lspec = loop.LoopSpec("augment", "ideal", generations, cfg.n_real, spec.k_max)
    reals = real_sets(keys, cfg.n_real, cfg.dim)
    target = gauss.standard(cfg.dim)

    def explicit():
        jax.block_until_ready(
            loop.sweep(lspec, keys, reals, jnp.asarray(lams), jnp.asarray(gammas), target)
        )

    res = {"cells": n_lam * n_gamma, "seeds": seeds, "generations": generations}
    rg = n_lam * n_gamma * seeds * generations
    for name, fn in (
        ("explicit", explicit),
        (
            "stats",
            lambda: sweep.grid(
                dataclasses.replace(spec, engine="stats"), keys, lams, gammas, batch_size=256
            ),
        ),
        ("tables", lambda: sweep.grid(spec, keys, lams, gammas)),
    ):
        before = load()
        t, times = _timed(fn, reps)
        res[name] = {
            "seconds": t,
            "times": times,
            "ns_per_run_generation": t / rg * 1e9,
            "load": before,
        }
        print(f"  sub-grid {name}: {t:.3f} s ({t / rg * 1e9:.0f} ns per run-generation)")
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3, help="fresh processes / timed repeats")
    p.add_argument("--engines", default="tables,stats")
    p.add_argument("--n-lam", type=int, default=64)
    p.add_argument("--n-gamma", type=int, default=64)
    p.add_argument("--subgrid", action="store_true", help="also the in-process 8 × 8 sub-grid")
    p.add_argument("--no-floor", action="store_true")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()
    if args.reps < 1:
        p.error("--reps must be >= 1")
    import jax

    rg = args.n_lam * args.n_gamma * 32 * 300
    res = {
        "cpu_count": os.cpu_count(),
        "device": str(jax.devices()[0]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "grid": [args.n_lam, args.n_gamma, 32, 300],
        "fresh": {},
    }
    print(
        f"{args.n_lam} × {args.n_gamma} grid × 32 seeds × 300 generations = {rg:,} "
        f"run-generations; {os.cpu_count()} CPUs; fresh processes:",
        flush=True,
    )
    for engine in args.engines.split(","):
        res["fresh"][engine] = fresh(engine, args.reps, args.n_lam, args.n_gamma)
    for engine, r in res["fresh"].items():
        r["warm_ns_per_run_generation"] = r["median_warm_s"] / rg * 1e9
        print(
            f"{engine:>7}: cold {r['median_cold_s']:.2f} s, warm {r['median_warm_s']:.2f} s "
            f"({r['warm_ns_per_run_generation']:.0f} ns per run-generation), process "
            f"{r['median_process_s']:.1f} s (medians of {args.reps})"
        )
    if {"tables", "stats"} <= set(res["fresh"]):
        t, s = res["fresh"]["tables"], res["fresh"]["stats"]
        res["ratio_cold"] = s["median_cold_s"] / t["median_cold_s"]
        res["ratio_warm"] = s["median_warm_s"] / t["median_warm_s"]
        print(f"stats / tables: cold {res['ratio_cold']:.1f}×, warm {res['ratio_warm']:.1f}×")
    if not args.no_floor:
        res["floor"] = f = floor(args.reps)
        print(
            "kernels (ns per element-op, scan of (32, 4096) f32): "
            + ", ".join(f"{k} {f[k]['ns_per_op']:.3f}" for k in ("fma", "root_div", "gather"))
            + f"; floor {f['floor_ns_per_run_generation']:.1f} ns per run-generation = "
            f"{f['floor_default_grid_s']:.2f} s for the default grid"
        )
    if args.subgrid:
        res["subgrid"] = subgrid(args.reps)
    res["load_end"] = load()
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
