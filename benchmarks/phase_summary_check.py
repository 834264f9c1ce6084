"""Do two phase diagrams' summary numbers agree within Monte-Carlo error?

The default phase diagram (64 λ × 64 γ × 32 seeds) summarises 4,096 cells that share their
32 seed keys, so its headline numbers (``sims.gaussian.phase.summary``: tightness range and
median, transient rate / exact contraction, autocorrelation − exact, stability counts) carry
the noise of one set of 32 seeds, not of 4,096 independent cells. This script measures that
noise directly: it reruns the default grid with R disjoint seed sets (seeds 32r .. 32r + 31,
r = 1..R) under the default engine, takes each number's replicate standard deviation s, and
reports z = (a − b)/(s·√2) for a reference payload ``--reference`` (default: the committed
``figures/phase_diagram.json``) against ``--candidate`` (default: a fresh default run, seeds
0..31, the default engine). Both engines draw the same law (``tests/sims/gaussian``), so one
engine's replicate spread stands for the other's. With ``--old-replicates R2`` it also runs R2
seed sets with the previous (stats) engine and reports the replicate means side by side.

Usage: ``python benchmarks/phase_summary_check.py [--replicates 8] [--old-replicates 0]
[--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import results
from sims.gaussian import phase as pd

ROOT = Path(__file__).resolve().parents[1]


def flat_summary(summary: dict) -> dict[str, float]:
    """The scalar headline numbers of ``phase.summary`` (lists and dicts flattened)."""
    out = {}
    for key, value in summary.items():
        if key == "seconds":
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, list):
                    out[f"{key}.{sub}[0]"], out[f"{key}.{sub}[1]"] = v
                else:
                    out[f"{key}.{sub}"] = v
        elif isinstance(value, list):
            out[f"{key}[0]"], out[f"{key}[1]"] = value
        else:
            out[key] = value
    return {k: float(v) for k, v in out.items() if v is not None}


def run_summary(offset: int, engine: str) -> dict[str, float]:
    """Default phase diagram with seeds offset..offset + 31 (``phase.run`` as ``scsc phase``)."""
    cfg = pd.Config(engine=engine, batch_size=256 if engine == "stats" else None)
    original = pd.seed_keys
    pd.seed_keys = lambda n: jax.vmap(jax.random.key)(jnp.arange(n) + offset)
    try:
        return flat_summary(pd.summary(pd.run(cfg).data))
    finally:
        pd.seed_keys = original


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicates", type=int, default=8, help="seed sets for the spread")
    p.add_argument("--old-replicates", type=int, default=0, help="seed sets, stats engine")
    p.add_argument("--reference", default=str(ROOT / "figures" / "phase_diagram.json"))
    p.add_argument("--candidate", help="a phase_diagram.json (default: run seeds 0..31 now)")
    p.add_argument("--json", help="write the table here")
    args = p.parse_args()
    if args.replicates < 2:
        p.error("--replicates must be >= 2")
    start = time.perf_counter()
    reference = flat_summary(results.read_json(args.reference)["summary"])
    if args.candidate:
        candidate = flat_summary(results.read_json(args.candidate)["summary"])
    else:
        candidate = run_summary(0, "tables")
    reps = [run_summary(32 * r, "tables") for r in range(1, args.replicates + 1)]
    old = [run_summary(32 * r, "stats") for r in range(1, args.old_replicates + 1)]
    rows = []
    print(f"{'number':<40} {'reference':>10} {'candidate':>10} {'rep. sd':>9} {'z':>6}", end="")
    print(f" {'tables mean':>11} {'stats mean':>10}" if old else "")
    for key in reference:
        if key not in candidate:
            continue
        values = np.array([r[key] for r in reps])
        sd = float(values.std(ddof=1))
        diff = candidate[key] - reference[key]
        z = diff / (sd * np.sqrt(2)) if sd > 0 else (0.0 if diff == 0 else np.inf)
        row = {
            "number": key,
            "reference": reference[key],
            "candidate": candidate[key],
            "replicate_sd": sd,
            "z": float(z),
            "tables_mean": float(values.mean()),
        }
        line = f"{key:<40} {reference[key]:>10.4g} {candidate[key]:>10.4g} {sd:>9.3g} {z:>6.2f}"
        if old:
            row["stats_mean"] = float(np.mean([r[key] for r in old]))
            line += f" {values.mean():>11.4g} {row['stats_mean']:>10.4g}"
        rows.append(row)
        print(line)
    worst = max(abs(r["z"]) for r in rows if np.isfinite(r["z"]))
    print(
        f"max |z| = {worst:.2f} over {len(rows)} numbers ({args.replicates} replicate seed sets;"
        f" {time.perf_counter() - start:.0f} s)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "rows": rows,
                    "replicates": args.replicates,
                    "old_replicates": args.old_replicates,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
