"""Benchmark: physics correction throughput per corrector (id, pd) and backend (C, MJX).

For each corrector, backend and batch size B: B dataset motions of T frames (20 fps; 10
physics steps of 5 ms per frame, so (T − 1)·10 steps per motion) are corrected by the jitted
``sims.motion.physics.simulate`` end to end (for ``id``: spline, inverse dynamics, ground
reaction, projections, then the simulation; for ``pd``: lift, controls, simulation).
Reported per row:

- ``compile_s``: first call minus the median of the following calls (tracing + XLA
  compilation; for ``mujoco`` only the JAX wrapper around the callback compiles);
- ``median_s`` over ``--runs`` calls, ``motions_per_s`` = B / median_s;
- ``cpu_s``: process CPU time per call (all threads; the C backend's load-independent
  cost: on an idle 2-core machine wall ≈ cpu / 2), and the 1-minute load average before
  the row (the machine is shared: wall times move with the load).

Large batches are capped: a row whose estimate (the previous batch's seconds per motion × B
× (runs + 1), plus compile) exceeds ``--max-seconds`` is skipped and reported as such.

Usage (one command, rerun on an idle machine):
``python benchmarks/motion_correction.py --json benchmarks/results/motion_correction_cpu2.json``
(options: ``--frames 60 --runs 3 --correctors id,pd --mujoco-batches 1,4,16,64,256,1024
--mjx-batches 1,16,64,256,1024 --max-seconds 600``). The C backend uses
``SCSC_MUJOCO_THREADS`` threads (default: all cores).
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


def bench(corrector: str, backend: str, batch: int, motions: np.ndarray, runs: int) -> dict:
    from sims.motion import humanoid as hm
    from sims.motion import physics as ph

    reps = int(np.ceil(batch / len(motions)))
    ref = jnp.asarray(np.concatenate([motions] * reps)[:batch])
    load = os.getloadavg()[0]
    start = time.perf_counter()
    jax.block_until_ready(ph.simulate(ref, backend=backend, corrector=corrector))
    first = time.perf_counter() - start
    times, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(ph.simulate(ref, backend=backend, corrector=corrector))
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    med = float(np.median(times))
    steps = batch * (ref.shape[1] - 1) * hm.CORRECTOR.substeps
    return {
        "corrector": corrector,
        "backend": backend,
        "batch": batch,
        "compile_s": max(0.0, first - med),
        "median_s": med,
        "runs_s": times,
        "cpu_s": float(np.median(cpus)),
        "motions_per_s": batch / med,
        "steps_per_s": steps / med,
        "load_1min": load,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--correctors", default="id,pd")
    p.add_argument("--mujoco-batches", type=_ints, default=[1, 4, 16, 64, 256, 1024])
    p.add_argument("--mjx-batches", type=_ints, default=[1, 16, 64, 256, 1024])
    p.add_argument("--max-seconds", type=float, default=600.0, help="cap per row (estimate)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    correctors = [c.strip() for c in args.correctors.split(",") if c.strip()]
    if args.runs < 1 or args.frames < 20 or any(c not in ("id", "pd") for c in correctors):
        raise SystemExit("--runs must be >= 1, --frames >= 20, --correctors in {id, pd}")

    from sims.common import results
    from sims.motion import dataset as ds

    data = ds.load(ds.Config(n=64, frames=args.frames))
    motions = data["qpos"]
    rows = []
    head = ("corr", "backend", "B", "compile s", "median s", "cpu s", "motions/s", "load")
    print("{:>4} {:>8} {:>6} {:>10} {:>9} {:>8} {:>10} {:>6}".format(*head), flush=True)
    for corrector in correctors:
        for backend, batches in (("mujoco", args.mujoco_batches), ("mjx", args.mjx_batches)):
            per_motion, compile_s = None, 0.0
            for b in batches:
                if per_motion is not None:
                    estimate = compile_s + per_motion * b * (args.runs + 1)
                    if estimate > args.max_seconds:
                        print(
                            f"{corrector:>4} {backend:>8} {b:>6}  skipped: estimated "
                            f"{estimate:.0f} s > --max-seconds {args.max_seconds:.0f}",
                            flush=True,
                        )
                        rows.append(
                            {
                                "corrector": corrector,
                                "backend": backend,
                                "batch": b,
                                "skipped_estimate_s": estimate,
                            }
                        )
                        continue
                r = bench(corrector, backend, b, motions, args.runs)
                per_motion, compile_s = r["median_s"] / b, r["compile_s"]
                rows.append(r)
                print(
                    f"{corrector:>4} {backend:>8} {b:>6} {r['compile_s']:>10.1f} "
                    f"{r['median_s']:>9.3f} {r['cpu_s']:>8.2f} {r['motions_per_s']:>10.1f} "
                    f"{r['load_1min']:>6.2f}",
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
