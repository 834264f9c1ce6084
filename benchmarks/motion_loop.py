"""Benchmark: seconds per generation of the motion loop, split by phase.

On the ``--quick`` configuration (n = 64, λ = 1: 64 synthetic motions, 128 evaluation
prompts, the default generator, 200 fine-tuning steps), each phase of one ``corrected``
generation is jitted on its own and timed (median of ``--runs`` calls after a compiling
call):

- ``sampling``: the 64 synthetic motions plus the 128 evaluation motions (two
  ``generator.sample`` calls);
- ``correction``: MJX inside the step, measured as ``fused`` − ``fused_iterative`` (the
  two compiled steps differ only by the correction). A standalone jitted MJX
  ``correct_motion`` of these 64 motions hung in XLA on this CPU every time we ran it (see
  docs/design.md), so it is not timed on its own; the C backend (``correct_motion`` with
  ``backend="mujoco"``) is timed standalone as a second row;
- ``finetune``: ``generator.train_steps`` (200 Adam steps, batch 32);
- ``evaluation``: ``evaluator.evaluate`` on the 128 motions (host NumPy + the encoders);
- ``fused``: the jitted ``loop.make_step`` step (sampling + correction + fine-tuning in one
  function), for comparison with the sum of its parts; ``fused_iterative``: the same
  without correction.

Usage: ``python benchmarks/motion_loop.py [--runs 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def timed(fn, runs: int) -> dict:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    med = float(np.median(times))
    return {"median_s": med, "compile_s": max(0.0, first - med), "runs_s": times}


def main(argv=None) -> int:
    from sims.common import optim, results
    from sims.motion import evaluator as ev_mod
    from sims.motion import generator as gen
    from sims.motion import loop, physics

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    cfg = loop.Config.quick()
    s = loop.prepare(cfg)
    n, k = cfg.runs[0][0], s.k_max
    params, _ = gen.init(cfg.generator, s.tokenizer.size, s.data["features"][s.train_idx[:n]])
    opt = optim.adam(cfg.finetune_lr)
    data = s.arrays
    st = loop.step_config(cfg, s, steps=cfg.finetune_steps)
    key = jax.random.key(0)

    sample = jax.jit(
        lambda p, ids, mask: gen.sample(
            p, s.static, key, ids, mask, alpha_bar=data.alpha_bar, timesteps=data.timesteps,
            guidance=st.guidance, frames=st.frames,
        )
    )  # fmt: skip
    synth = sample(params, data.real_ids[:k], data.real_mask[:k])
    valid = jnp.arange(data.real_x.shape[0]) < n
    train = jax.jit(
        lambda p: gen.train_steps(
            p, opt.init(p), key, data.real_x, data.real_ids, data.real_mask, valid,
            static=s.static, optimizer=opt, steps=cfg.finetune_steps, batch=cfg.batch,
            alpha_bar=data.alpha_bar, cond_dropout=st.cond_dropout,
        )
    )  # fmt: skip
    samples = np.asarray(sample(params, data.test_ids, data.test_mask))

    def correct(backend):
        fn = jax.jit(lambda x: physics.correct_motion(key, x, np.inf, backend=backend)[0])
        return lambda: fn(synth)

    def fused(correct_flag):
        step = loop.make_step(opt, dataclasses.replace(st, correct=correct_flag))
        counts = loop.Counts(jnp.int32(n), jnp.int32(k), jnp.float32(np.inf))
        return lambda: step(loop.Model(params, opt.init(params)), key, data, counts)

    rows = {
        "sampling_synthetic": timed(
            lambda: sample(params, data.real_ids[:k], data.real_mask[:k]), args.runs
        ),
        "sampling_eval": timed(lambda: sample(params, data.test_ids, data.test_mask), args.runs),
        "correction_mujoco": timed(correct("mujoco"), args.runs),
        "finetune": timed(lambda: train(params), args.runs),
        "evaluation": timed(
            lambda: ev_mod.evaluate(
                s.evaluator,
                key,
                samples,
                s.data["texts"][s.test_idx],
                s.data["labels"][s.test_idx],
                s.data["features"][s.test_idx],
                cfg.n_boot,
            )["fid"],
            args.runs,
        ),
        "fused": timed(fused(True), args.runs),
        "fused_iterative": timed(fused(False), args.runs),
    }
    med = {name: r["median_s"] for name, r in rows.items()}
    split = {
        "sampling": med["sampling_synthetic"] + med["sampling_eval"],
        "correction": med["fused"] - med["fused_iterative"],
        "finetune": med["finetune"],
        "evaluation": med["evaluation"],
    }
    print(
        f"motion loop, one corrected generation (n = {n}, λ = 1, {k} synthetic, "
        f"{cfg.n_test} eval), backend {jax.default_backend()}, median of {args.runs}:"
    )
    for name, v in split.items():
        print(f"  {name:12s} {v:8.2f} s")
    print(f"  {'sum':12s} {sum(split.values()):8.2f} s")
    print(
        f"  fused step (sampling + correction + fine-tuning) {med['fused']:.2f} s "
        f"+ evaluation {med['evaluation']:.2f} s; iterative step {med['fused_iterative']:.2f} s"
    )
    print(f"  C MuJoCo correction instead of MJX: {med['correction_mujoco']:.2f} s")
    out = {
        "split_s": split,
        "rows": rows,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "devices": [str(d) for d in jax.devices()],
        },
        "provenance": results.provenance(cfg),
    }
    if args.json:
        results.write_json(args.json, out, digits=5)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
