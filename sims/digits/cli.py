"""``scsc digits``: the digit self-consuming loop (paper Figs. 3, 7, 8) from one command.

``--quick`` (8×8, λ ∈ {0.5, 1.5}, 10 generations, CPU minutes), ``--long`` (8×8, all four
λ, 25 generations, CPU background), ``--full`` (28×28 MNIST, paper settings, GPU). A run
writes checkpoints, ``results.json``, ``samples.npz`` and its figures into ``--out``;
``--resume`` continues a killed run there. Only ``scsc figures`` writes into ``figures/``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

MODES = ("quick", "long", "full", "smoke")


def add_parser(sub) -> None:
    """Adds the ``digits`` subcommand to ``scsc``'s subparsers."""
    d = sub.add_parser("digits", help="digit-image loop: DDPM + K-means correction (Figs. 3, 7, 8)")
    mode = d.add_mutually_exclusive_group()
    for m in MODES:
        mode.add_argument(f"--{m}", dest="mode", action="store_const", const=m)
    d.set_defaults(mode="quick", func=_digits)
    d.add_argument("--out", help="output directory (default out/digits_<mode>)")
    d.add_argument("--resume", action="store_true", help="continue the run in --out")
    d.add_argument("--generations", type=int, help="override the mode's generation count")
    d.add_argument("--lams", help="comma list of λ >= 0, e.g. 0.5,1.5")
    d.add_argument("--gamma", type=float, help="corrector strength of the corrected arm (inf ok)")
    d.add_argument("--mnist-path", help="full MNIST (.npz or IDX folder) for --full")
    d.add_argument("--seed", type=int, help="master seed (>= 0)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args):
    """The mode's config with the overrides; every value validated (ValueError) up front."""
    from sims.digits.loop import Config

    if args.mode == "full":
        cfg = Config.full(args.mnist_path)
    elif args.mnist_path:
        raise ValueError("--mnist-path goes with --full")
    else:
        cfg = getattr(Config, args.mode)()
    over = {}
    if args.generations is not None:
        over["generations"] = args.generations
    if args.lams is not None:
        try:
            over["lams"] = tuple(float(s) for s in args.lams.split(",") if s.strip())
        except ValueError:
            raise ValueError(f"lams must be comma-separated numbers; got {args.lams!r}") from None
    if args.gamma is not None:
        over["gamma"] = args.gamma
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {args.seed}")
        over["seed"] = args.seed
    return dataclasses.replace(cfg, **over)  # __post_init__ validates


def _digits(args) -> int:
    cfg = config_from_args(args)
    out = Path(args.out or f"out/digits_{args.mode}")
    print(
        f"digits --{args.mode}: {cfg.source}, λ = {cfg.lams}, {cfg.generations} generations → {out}"
    )
    from sims.digits.report import run_digits

    run_digits(cfg, out, resume=args.resume, progress=not args.no_progress)
    return 0


_REPORT = ("LONG_RUN_DIR", "figures", "report", "run_digits", "summary")


def __getattr__(name: str):
    # The run/report functions live in sims.digits.report (imported lazily: ``scsc --help``
    # and ``scsc bound`` must not pay for JAX model code).
    if name in _REPORT:
        from sims.digits import report

        return getattr(report, name)
    raise AttributeError(f"module 'sims.digits.cli' has no attribute {name!r}")


__all__ = ["MODES", "add_parser", "config_from_args", *_REPORT]
