"""Benchmark: physics correction throughput, MJX (JAX) vs C MuJoCo (``mujoco.rollout``).

For each backend and batch size B: B dataset motions of T frames (20 fps; the corrector
runs 10 physics steps of 5 ms per frame, so (T − 1)·10 steps per motion) are corrected by
the jitted ``sims.motion.physics.simulate`` (end to end: lifting the first frame, the
controls, the simulation, per-motion info). Reported per (backend, B):

- ``compile_s``: first call minus the median of the following calls (tracing + XLA
  compilation; for ``mujoco`` only the JAX wrapper around the callback compiles);
- ``median_s`` over ``--runs`` calls (compiled), ``motions_per_s`` = B / median_s and
  ``steps_per_s`` = B·(T − 1)·10 / median_s.

Usage: ``python benchmarks/motion_correction.py [--frames 60] [--runs 3]
[--mujoco-batches 1,4,16,64,256,1024,4096] [--mjx-batches 1,16,256,1024] [--json out.json]``.
The C backend uses ``SCSC_MUJOCO_THREADS`` threads (default: all cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def bench(backend: str, batch: int, motions: np.ndarray, runs: int) -> dict:
    from sims.motion import humanoid as hm
    from sims.motion import physics as ph

    reps = int(np.ceil(batch / len(motions)))
    ref = jnp.asarray(np.concatenate([motions] * reps)[:batch])
    start = time.perf_counter()
    jax.block_until_ready(ph.simulate(ref, backend=backend))
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(ph.simulate(ref, backend=backend))
        times.append(time.perf_counter() - start)
    med = float(np.median(times))
    steps = batch * (ref.shape[1] - 1) * hm.CORRECTOR.substeps
    return {
        "backend": backend,
        "batch": batch,
        "compile_s": max(0.0, first - med),
        "median_s": med,
        "runs_s": times,
        "motions_per_s": batch / med,
        "steps_per_s": steps / med,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mujoco-batches", type=_ints, default=[1, 4, 16, 64, 256, 1024, 4096])
    p.add_argument("--mjx-batches", type=_ints, default=[1, 16, 256, 1024])
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.runs < 1 or args.frames < 20:
        raise SystemExit("--runs must be >= 1 and --frames >= 20")

    from sims.common import results
    from sims.motion import dataset as ds

    data = ds.load(ds.Config(n=64, frames=args.frames))
    motions = data["qpos"]
    rows = []
    head = ("backend", "B", "compile s", "median s", "motions/s", "steps/s")
    print("{:>8} {:>6} {:>10} {:>9} {:>10} {:>10}".format(*head))
    for backend, batches in (("mujoco", args.mujoco_batches), ("mjx", args.mjx_batches)):
        for b in batches:
            r = bench(backend, b, motions, args.runs)
            rows.append(r)
            print(
                f"{backend:>8} {b:>6} {r['compile_s']:>10.1f} {r['median_s']:>9.3f} "
                f"{r['motions_per_s']:>10.1f} {r['steps_per_s']:>10.0f}",
                flush=True,
            )
            if args.json:  # partial results survive an interrupted run
                _save(args, rows, results)
    return 0


def _save(args, rows, results):
    results.write_json(
        args.json,
        {
            "frames": args.frames,
            "runs": args.runs,
            "threads": int(os.environ.get("SCSC_MUJOCO_THREADS", os.cpu_count() or 1)),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
            "provenance": results.provenance(),
            "rows": rows,
        },
        digits=5,
    )


if __name__ == "__main__":
    sys.exit(main())
