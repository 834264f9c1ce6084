"""Benchmark: λ × γ × seed sweeps from exact sufficient statistics vs explicit sampling.

Measures, in one invocation on this machine:

- ``explicit``: ``sims.gaussian.loop.sweep`` (every synthetic point drawn, ideal π_γ, augment) on a
  sub-grid (default 8 λ × 8 γ × 32 seeds × 300 generations), compiled, median of reps;
- ``statistics``: ``sims.gaussian.sweep.grid`` on the same cells, seeds and generations, compiled,
  median of reps; the ratio is the speed-up of the sufficient-statistic sampler;
- ``default grid``: the whole default phase diagram (64 × 64 × 32 seeds × 300 generations,
  d = 2) in a fresh process, compilation included (the acceptance number, target < 180 s),
  once on one XLA host device and once with one host device per core
  (``--xla_force_host_platform_device_count``), so the cells shard over both cores.

Usage: ``python benchmarks/phase_diagram.py [--reps 3] [--skip-full] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

_FULL = """
import time
from sims.gaussian import phase as pd
start = time.perf_counter()
pd.main(pd.Config())
print(time.perf_counter() - start)
"""


def _median_time(fn, reps: int) -> tuple[float, list[float]]:
    fn()  # compile
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def subgrid(reps: int, n_lam: int, n_gamma: int, seeds: int, generations: int) -> dict:
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

    def explicit():
        out = loop.sweep(
            lspec, keys, reals, jnp.asarray(lams), jnp.asarray(gammas), gauss.standard(cfg.dim)
        )
        jax.block_until_ready(out)

    def statistics():
        sweep.grid(spec, keys, lams, gammas, batch_size=cfg.batch_size)

    t_exp, all_exp = _median_time(explicit, reps)
    t_stat, all_stat = _median_time(statistics, reps)
    return {
        "cells": n_lam * n_gamma,
        "seeds": seeds,
        "generations": generations,
        "explicit_s": t_exp,
        "explicit_all": all_exp,
        "statistics_s": t_stat,
        "statistics_all": all_stat,
        "speedup": t_exp / t_stat,
    }


def full_grid(devices: int) -> float:
    env = {**os.environ, "SCSC_JAX_CACHE": "off"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-c", _FULL], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n-lam", type=int, default=8)
    p.add_argument("--n-gamma", type=int, default=8)
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--generations", type=int, default=300)
    p.add_argument("--skip-full", action="store_true", help="skip the two full-grid runs")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()
    res = {"subgrid": subgrid(args.reps, args.n_lam, args.n_gamma, args.seeds, args.generations)}
    s = res["subgrid"]
    print(
        f"sub-grid {s['cells']} cells × {s['seeds']} seeds × {s['generations']} generations: "
        f"explicit {s['explicit_s']:.2f} s, statistics {s['statistics_s']:.3f} s "
        f"(median of {args.reps}) → {s['speedup']:.0f}× faster",
        flush=True,
    )
    if not args.skip_full:
        cores = os.cpu_count() or 1
        res["full_grid_1_device_s"] = full_grid(1)
        print(f"default grid, 1 host device: {res['full_grid_1_device_s']:.1f} s", flush=True)
        res[f"full_grid_{cores}_devices_s"] = full_grid(cores)
        print(f"default grid, {cores} host devices: {res[f'full_grid_{cores}_devices_s']:.1f} s")
    res["cpu_count"] = os.cpu_count()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
