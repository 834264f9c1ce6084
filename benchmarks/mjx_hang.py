"""Hang check: many consecutive jitted MJX corrections at the motion loop's shapes.

Before the fix in ``sims.motion.engine``, a jitted MJX correction of 64 motions × 60 frames
on this 2-core CPU hung in jaxlib's batched LAPACK Cholesky (a thread-pool starvation
deadlock) on the first call. This script compiles the correction once per corrector, as the
loop's generation step does (``physics.correct_motion(key, x, γ = ∞, backend="mjx",
mask=...)`` inside ``jit``), then calls it ``--calls`` times with fresh keys and slightly
perturbed inputs. The calls run in a child process that reports after each one; a call that
does not return within ``--timeout`` seconds is counted as a hang (the child is killed and
restarted, recompiling, for the remaining calls). Prints one line per call and a summary;
``--json`` writes the summary.

Usage: ``python benchmarks/mjx_hang.py [--calls 100] [--corrector id,pd] [--batch 64]
[--frames 60] [--timeout 300] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sims.motion import dataset as ds
    from sims.motion import physics as ph

    data = ds.load(ds.Config(n=640, frames=60, seed=1))
    x0 = np.asarray(data["features"][: args.batch, : args.frames], np.float32)
    mask = jnp.arange(args.batch) < args.batch

    @jax.jit
    def correct(key, x):
        return ph.correct_motion(
            key, x, float("inf"), backend="mjx", mask=mask, corrector=args.corrector
        )

    t0 = time.perf_counter()
    jax.block_until_ready(correct(jax.random.key(0), jnp.asarray(x0)))
    print(f"COMPILED {time.perf_counter() - t0:.2f}", flush=True)
    rng = np.random.default_rng(0)
    for i in range(args.start, args.calls):
        x = x0 + rng.normal(0, 1e-3, x0.shape).astype(np.float32)
        t0 = time.perf_counter()
        out, info = correct(jax.random.key(i + 1), jnp.asarray(x))
        jax.block_until_ready(out)
        ok = bool(np.isfinite(np.asarray(out)).all())
        fell = float(np.mean(np.asarray(info["fell"])))
        print(f"CALL {i} {time.perf_counter() - t0:.3f} finite={ok} fell={fell:.3f}", flush=True)
    return 0


def _reader(stream, q):
    for line in stream:
        q.put(line)
    q.put(None)


def run_corrector(args, corrector: str) -> dict:
    done, hangs, times, compiles, restarts = 0, 0, [], [], 0
    start = 0
    while start < args.calls:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            "--corrector",
            corrector,
            "--calls",
            str(args.calls),
            "--start",
            str(start),
            "--batch",
            str(args.batch),
            "--frames",
            str(args.frames),
        ]
        env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        # The compile gets its own, longer allowance (minutes on a loaded 2-core CPU).
        limit = args.compile_timeout
        last = time.monotonic()
        hung = False
        while True:
            try:
                line = q.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() - last > limit:
                    hung = True
                    break
                continue
            if line is None:
                break
            last = time.monotonic()
            if line.startswith("COMPILED"):
                compiles.append(float(line.split()[1]))
                print(f"  [{corrector}] compiled + first call in {compiles[-1]:.1f} s", flush=True)
                limit = args.timeout
            elif line.startswith("CALL"):
                _, i, sec, *rest = line.split()
                times.append(float(sec))
                done += 1
                start = int(i) + 1
                print(f"  [{corrector}] call {i}: {float(sec):.2f} s {' '.join(rest)}", flush=True)
        if hung:
            hangs += 1
            print(f"  [{corrector}] HANG: no progress for {limit} s at call {start}", flush=True)
            proc.kill()
            proc.wait()
            start += 1  # the hung call is lost; continue after it
            restarts += 1
            continue
        rc = proc.wait()
        if rc != 0:
            raise SystemExit(f"child failed (exit {rc}) at call {start}")
    return {
        "corrector": corrector,
        "completed": done,
        "hangs": hangs,
        "restarts": restarts,
        "compile_and_first_call_s": compiles,
        "median_call_s": float(sorted(times)[len(times) // 2]) if times else None,
        "max_call_s": max(times) if times else None,
        "calls_s": times,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--corrector", default="id", help="id, pd or a comma list")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per call")
    p.add_argument("--compile-timeout", type=float, default=1800.0)
    p.add_argument("--json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.calls < 1 or args.batch < 1 or not 20 <= args.frames <= 60:
        raise SystemExit("--calls and --batch must be >= 1 and --frames in [20, 60]")
    if args.child:
        return child(args)
    names = [c.strip() for c in args.corrector.split(",") if c.strip()]
    if not names or any(c not in ("id", "pd") for c in names):
        raise SystemExit(f"--corrector must name id and/or pd; got {args.corrector!r}")
    load = os.getloadavg()
    print(
        f"MJX hang check: {args.calls} calls × {names}, {args.batch} × {args.frames} frames, "
        f"load {load[0]:.2f}",
        flush=True,
    )
    rows = [run_corrector(args, c) for c in names]
    summary = {
        "calls": args.calls,
        "batch": args.batch,
        "frames": args.frames,
        "timeout_s": args.timeout,
        "correctors": names,
        "completed": sum(r["completed"] for r in rows),
        "hangs": sum(r["hangs"] for r in rows),
        "rows": rows,
        "load_before": load,
        "load_after": os.getloadavg(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    for r in rows:
        print(
            f"{r['corrector']}: {r['completed']} calls, {r['hangs']} hangs, median "
            f"{r['median_call_s']:.2f} s, max {r['max_call_s']:.2f} s, compile + first call "
            f"{r['compile_and_first_call_s']}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0 if summary["hangs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
