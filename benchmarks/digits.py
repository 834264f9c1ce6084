"""Benchmark: seconds per generation of the digits loop, per phase, on this machine.

One chain of each uncorrected/corrected arm at one λ, after a warm-up generation (so
compilation is excluded), ``--repeats`` timed generations each; prints the median seconds
per phase (sampling, correction, fine-tuning, evaluation) and the device. The phases are
those of ``sims.digits.loop.DigitsLoop.step``; a generation of the ``--long`` run costs the sum
over its 9 chains (baseline + 4 λ × 2 arms).

Usage: ``python benchmarks/digits.py [--mode long|full] [--lam 1.0] [--repeats 3]
[--gen0-steps 200] [--json out.json]``. Generation 0 is trained only briefly
(``--gen0-steps``): model quality does not change the cost of a generation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import jax


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("quick", "long", "full"), default="long")
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gen0-steps", type=int, default=200)
    ap.add_argument("--mnist-path", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from sims.digits import loop

    base = (
        loop.Config.full(args.mnist_path)
        if args.mode == "full"
        else getattr(loop.Config, args.mode)()
    )
    cfg = dataclasses.replace(base, lams=(args.lam,), gen0_steps=args.gen0_steps)
    t0 = time.perf_counter()
    s = loop.prepare(cfg)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    exp = loop.DigitsLoop.create(cfg, s)
    g0 = exp.generation_zero(loop.GROUP)
    gen0 = time.perf_counter() - t0
    out = {"device": str(jax.devices()[0]), "backend": jax.default_backend(),
           "config": dataclasses.asdict(cfg), "setup_s": setup,
           "gen0_s_incl_compile": gen0, "arms": {}}  # fmt: skip
    for chain in loop.chains(cfg)[1:3]:  # iterative and corrected at args.lam
        st, warm = exp.step(exp.start(g0, chain), chain)  # compiles
        runs = []
        for _ in range(args.repeats):
            st, tm = exp.step(st, chain)
            runs.append(tm)
        arm = chain.arm
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        med["total"] = sum(med.values())
        out["arms"][arm] = {"median_s": med, "runs": runs, "warmup_s": warm}
        print(f"{arm:>9} λ={args.lam:g}: " + ", ".join(f"{k} {v:.2f}s" for k, v in med.items()))
    print(f"device: {out['device']}; setup {setup:.1f}s, generation 0 {gen0:.1f}s (compile incl.)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
