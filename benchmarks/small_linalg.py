"""Benchmark: theory.linalg (plain JAX) against jnp.linalg (LAPACK) on batched small matrices.

Why: theory.linalg replaced every LAPACK call in the project's jitted code because batched
CPU LAPACK kernels can deadlock XLA's intra-op pool (``theory/linalg.py``). This measures what
that costs: per routine (``eigh``, ``cholesky``, ``solve``, ``logabsdet``) and size d, the
median wall time of one jitted call on a batch of matrices, for both implementations in the
same invocation, and their ratio (> 1: theory.linalg is slower). One routine per jitted call,
so LAPACK's single call cannot deadlock here.

Usage: ``python benchmarks/small_linalg.py [--batch 4096] [--sizes 2,3,5,8,16] [--runs 7]
[--json benchmarks/results/small_linalg_cpu2.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import results
from theory import linalg

ROUTINES = {
    "eigh": (jnp.linalg.eigh, linalg.eigh),
    "cholesky": (jnp.linalg.cholesky, linalg.cholesky),
    "solve": (lambda a: jnp.linalg.solve(a, a[..., :1]), lambda a: linalg.solve(a, a[..., :1])),
    "logabsdet": (lambda a: jnp.linalg.slogdet(a)[1], linalg.logabsdet),
}


def median_call(fn, a, runs: int) -> tuple[float, float]:
    """(compile + first call, median of ``runs`` further calls) in seconds."""
    start = time.perf_counter()
    jax.block_until_ready(fn(a))
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(fn(a))
        times.append(time.perf_counter() - start)
    return first, float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--sizes", default="2,3,5,8,16")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.batch < 1 or args.runs < 1 or min(sizes) < 1:
        p.error("--batch, --runs and every size must be >= 1")
    rows = []
    print(f"{'routine':<10} {'d':>3} {'lapack s':>10} {'linalg s':>10} {'ratio':>7}")
    for name, (lapack, plain) in ROUTINES.items():
        for d in sizes:
            x = jax.random.normal(jax.random.key(d), (args.batch, d, d))
            a = x @ jnp.swapaxes(x, -1, -2) + d * jnp.eye(d)
            c_lapack, t_lapack = median_call(jax.jit(lapack), a, args.runs)
            c_plain, t_plain = median_call(jax.jit(plain), a, args.runs)
            row = {"routine": name, "d": d, "batch": args.batch, "lapack_s": t_lapack,
                   "linalg_s": t_plain, "ratio": t_plain / t_lapack,
                   "lapack_first_s": c_lapack, "linalg_first_s": c_plain}  # fmt: skip
            rows.append(row)
            print(f"{name:<10} {d:>3} {t_lapack:>10.4f} {t_plain:>10.4f} {row['ratio']:>7.2f}")
    if args.json:
        payload = {
            "batch": args.batch,
            "runs": args.runs,
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
            "load_1min": os.getloadavg()[0],
            "provenance": results.provenance(),
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
