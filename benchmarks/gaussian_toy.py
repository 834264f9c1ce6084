"""Benchmark: the full Fig. 2 protocol in JAX against two NumPy implementations, same run.

Measures, on this machine and in this one invocation:

- JAX: wall time of the whole ``sims.gaussian.toy.seed_sweep`` call for the paper's protocol
  (8 γ × 32 seeds × 500 generations, ``toy`` + ``histogram-reference``), *compilation
  included*: each repetition runs in a fresh Python process, so nothing is cached; the
  per-run cost is that wall time / 256; measured again with the CLI's persistent
  compilation cache warm (what a repeated ``make figures`` pays);
- ``official_style``: the official script's way (Python loop, scikit-learn refits,
  one-candidate rejection sampling), a few single runs of 500 generations;
- ``vectorised``: the same protocol in fast single-run NumPy, several runs.

Prints the median seconds per (γ, seed, 500 generations) for each and the two ratios.
Usage: ``python benchmarks/gaussian_toy.py [--official-runs 2] [--vectorised-runs 5]
[--jax-reps 3] [--json out.json]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import baselines_numpy

_JAX_CALL = """
import os, time, jax
from sims import cli
from sims.gaussian import toy
cli.enable_compilation_cache()  # no-op when SCSC_JAX_CACHE=off
start = time.perf_counter()
res = toy.seed_sweep(toy.Config())
first = time.perf_counter() - start
start = time.perf_counter()
toy.seed_sweep(toy.Config())  # same process: compiled, the steady-state cost of further sweeps
print(first, time.perf_counter() - start, len(res["gammas"]) * len(toy.Config().seeds))
"""


def time_jax(reps: int, cache: str = "off") -> tuple[list[float], list[float], int]:
    """Whole-call wall times (fresh process each, compilation included), the wall time of a
    second call in the same process (compiled), and runs per call.

    ``cache="off"`` compiles from scratch every time (the headline number); a directory
    measures the CLI's persistent compilation cache once warm.
    """
    walls, steady, runs = [], [], 0
    env = {**os.environ, "SCSC_JAX_CACHE": cache}
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", _JAX_CALL], capture_output=True, text=True, check=True, env=env
        )
        wall, again, runs = out.stdout.split()
        walls.append(float(wall))
        steady.append(float(again))
    return walls, steady, int(runs)


def time_numpy(fn, runs: int, generations: int) -> list[float]:
    """Seconds per single run of ``fn`` (γ alternating 0 and 1, seeds 0, 1, …)."""
    out = []
    for i in range(runs):
        start = time.perf_counter()
        fn(gamma=float(i % 2), seed=i, generations=generations)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jax-reps", type=int, default=3)
    p.add_argument("--official-runs", type=int, default=2)
    p.add_argument("--vectorised-runs", type=int, default=5)
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args()

    walls, steady, runs = time_jax(args.jax_reps)
    jax_per_run = float(np.median(walls)) / runs
    print(
        f"JAX full protocol: {np.median(walls):.2f} s median over {args.jax_reps} fresh calls "
        f"(all: {', '.join(f'{w:.2f}' for w in walls)}), {runs} runs per call "
        f"-> {jax_per_run * 1e3:.1f} ms per run",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as cache:
        time_jax(1, cache)  # fills the cache
        warm, _, _ = time_jax(args.jax_reps, cache)
    warm_per_run = float(np.median(warm)) / runs
    print(
        f"JAX, warm compilation cache: {np.median(warm):.2f} s median "
        f"-> {warm_per_run * 1e3:.1f} ms per run",
        flush=True,
    )
    steady_per_run = float(np.median(steady)) / runs
    print(
        f"JAX, second call in the same process (compiled): {np.median(steady):.2f} s median "
        f"-> {steady_per_run * 1e3:.1f} ms per run",
        flush=True,
    )
    vec = time_numpy(baselines_numpy.vectorised, args.vectorised_runs, 500)
    print(f"NumPy vectorised: median {np.median(vec):.3f} s per run ({len(vec)} runs)", flush=True)
    off = time_numpy(baselines_numpy.official_style, args.official_runs, 500)
    print(f"NumPy official-style: median {np.median(off):.1f} s per run ({len(off)} runs)")
    ratios = {
        "official_style": float(np.median(off)) / jax_per_run,
        "vectorised": float(np.median(vec)) / jax_per_run,
    }
    print(
        f"speed-up per run, cold compile: {ratios['official_style']:.0f}x vs official-style, "
        f"{ratios['vectorised']:.1f}x vs vectorised NumPy"
    )
    print(
        f"speed-up per run, warm cache: {np.median(off) / warm_per_run:.0f}x vs official-style, "
        f"{np.median(vec) / warm_per_run:.1f}x vs vectorised NumPy"
    )
    print(
        f"speed-up per run, compiled: {np.median(off) / steady_per_run:.0f}x vs official-style, "
        f"{np.median(vec) / steady_per_run:.1f}x vs vectorised NumPy"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "jax_call_seconds": walls,
                    "jax_warm_cache_seconds": warm,
                    "jax_compiled_seconds": steady,
                    "runs_per_call": runs,
                    "jax_seconds_per_run": jax_per_run,
                    "vectorised_seconds": vec,
                    "official_style_seconds": off,
                    "ratios": ratios,
                    "ratios_warm_cache": {
                        "official_style": float(np.median(off)) / warm_per_run,
                        "vectorised": float(np.median(vec)) / warm_per_run,
                    },
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
