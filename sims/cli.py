"""Command line: ``scsc bound``, ``gaussian-toy``, ``phase``, ``workflows``, ``figures``.

One subcommand per experiment. Its flags are generated from the experiment's ``Config``
dataclass (``sims.common.config``: one flag per field, parsed from the field's type, help
from the class docstring, ranges and choices from the field's metadata), so a flag, its
default and its validation are declared once, on the field. Every value is validated when
the config is built, before any computation or compilation; a bad value exits with status
2 and a message naming the parameter and its allowed range.

The CLI only parses, builds the config, calls the experiment's ``run(cfg)`` and
``report(results, out)`` (``sims.gaussian.{bounds,toy,phase,workflows,effective}``,
``sims.digits.report``) and prints what happened; notebooks call the same two functions.
To add a command, write a handler ``handler(cfg, args) -> int`` and register it with
``add_command`` (flags that are not config fields, such as ``--out``, go in ``extra``;
flags that set fields only together, such as ``scsc motion``'s ``--n``/``--lams``/
``--seeds`` → ``runs``, go in a ``sims.common.config.Adapter``). ``scsc motion`` and its
subcommands ``demo``, ``drift``, ``render``, ``dataset`` are registered the same way by
``sims.motion.cli.add_parser``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from sims.common import config, deprecation


def add_command(
    sub,
    name: str,
    cls,
    handler: Callable[[object, argparse.Namespace], int],
    *,
    help: str,
    out: str | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    presets=None,
    default_preset: str | None = None,
    adapter: config.Adapter | None = None,
) -> argparse.ArgumentParser:
    """Adds subcommand ``name`` whose flags are ``cls``'s fields (``sims.common.config``).

    Args:
        sub: the top-level subparsers.
        name: the subcommand.
        cls: the config dataclass; ``main`` builds it from the flags (validating it) and
            passes it to ``handler``.
        handler: ``handler(cfg, args) -> exit status``.
        help: one line for ``scsc --help``.
        out: default of ``--out`` (None: no ``--out`` flag).
        extra: adds the flags that are not config fields.
        presets, default_preset, adapter: as in ``sims.common.config.add_arguments``.
    """
    p = sub.add_parser(name, help=help, description=help)
    config.add_arguments(p, cls, presets=presets, default_preset=default_preset, adapter=adapter)
    if out is not None:
        p.add_argument("--out", default=out, help=f"output directory (default: {out})")
    if extra is not None:
        extra(p)
    p.set_defaults(func=handler)
    return p


def tqdm_hook(bar) -> Callable[[int], None]:
    """The engine's progress hook ``on_cells(done)`` driving a tqdm bar."""
    return lambda done: bar.update(done - bar.n)


def _wrote(out: Path, files) -> None:
    for name in files:
        print(f"  wrote {out / name}", flush=True)


# --- handlers: build nothing, validate nothing (the config did), run, report, print ---


def _bound(q, args) -> int:
    from sims.gaussian import bounds

    out = bounds.evaluate(q)
    if args.json:
        print(
            json.dumps(
                {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in out.items()}
            )
        )
    else:
        for k, v in out.items():
            print(f"{k:>20}: {v}")
        if not out["is_stable"]:
            print("  (condition λ(1+κ) < (1+γ)/(2+γ) fails: no guarantee)")
    return 0


def _bounds_figure(cfg, out: Path) -> dict:
    from sims.gaussian import bounds

    payload = bounds.report(bounds.run(cfg), out)
    print(f"bounds: wrote {out / bounds.FILES[1]} and {out / bounds.FILES[0]}", flush=True)
    return payload


def _gaussian_toy(cfg, out: Path, panels: bool = True) -> dict:
    from sims.gaussian import toy

    print(
        f"gaussian-toy: {cfg.workflow}/{cfg.correction}, {len(cfg.gammas)} γ × "
        f"{len(cfg.seeds)} seeds × {cfg.generations} generations",
        flush=True,
    )
    res = toy.run(cfg, panels=panels)
    print(f"  done in {res.data['main']['seconds']:.1f} s (compilation included)", flush=True)
    for name, panel in res.data.get("panels", {}).items():
        print(f"  panel {name}: {panel['seconds']:.1f} s", flush=True)
    payload = toy.report(res, out)
    _wrote(out, toy.FILES[::-1] if panels else toy.FILES[:1])
    return payload


def _phase(cfg, out: Path) -> dict:
    from tqdm import tqdm

    from sims.gaussian import phase

    print(
        f"phase: {cfg.workflow}, {cfg.n_lam} λ × {cfg.n_gamma} γ × {cfg.seeds} seeds × "
        f"{cfg.generations} generations (d = {cfg.dim}, n = {cfg.n_real})",
        flush=True,
    )
    cells = cfg.n_lam * cfg.n_gamma
    with tqdm(total=cells, unit="cell", desc="phase diagram", mininterval=1.0) as bar:
        res = phase.run(cfg, progress=tqdm_hook(bar))
    print(f"  done in {res.data['seconds']:.1f} s (compilation included)", flush=True)
    payload = phase.report(res, out)
    _wrote(out, phase.FILES)
    return payload


def _workflows(cfg, out: Path) -> dict:
    from sims.gaussian import workflows

    res = workflows.run(cfg)
    print(f"workflows: done in {res.data['seconds']:.1f} s (compilation included)", flush=True)
    payload = workflows.report(res, out)
    _wrote(out, workflows.FILES)
    return payload


def _effective_gamma(cfg, out: Path) -> dict:
    from sims.gaussian import effective

    res = effective.run(cfg)
    print(effective.table(res), flush=True)
    payload = effective.report(res, out)
    _wrote(out, effective.FILES)
    return payload


def _imperfect(cfg, out: Path) -> dict:
    from sims.imperfect import report as imperfect

    print(
        f"imperfect: maps of {cfg.n_gamma} γ × {cfg.n_bias} biases / {cfg.n_lam} λ / "
        f"{cfg.n_shrink} shrinks × {cfg.seeds} seeds × {cfg.generations} generations; "
        f"real correctors: {', '.join(cfg.real)}",
        flush=True,
    )
    res = imperfect.run(cfg)
    print(f"  done in {res.seconds:.1f} s (compilation included)", flush=True)
    payload = imperfect.report(res, out)
    comp = payload["comparison"]
    print(
        f"  map prediction vs measured loops: helps/hurts agree {comp['helps_agree']}, "
        f"pair concordance {comp['concordance']:.2f}",
        flush=True,
    )
    _wrote(out, [f for f in imperfect.FILES if f in payload["files"]])
    return payload


def _imperfect_command(cfg, args) -> int:
    _imperfect(cfg, Path(args.out))
    return 0


def _toy_command(cfg, args) -> int:
    _gaussian_toy(cfg, Path(args.out), panels=not args.no_panels)
    return 0


def _phase_command(cfg, args) -> int:
    from sims.gaussian import distributed, phase

    # Several processes (the flags, or the environment JAX reads): each computes its share
    # of the cells, every process receives the whole grid, process 0 writes it.
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    if distributed.is_leader():
        _phase(cfg, Path(args.out))
    else:
        phase.run(cfg)
    return 0


def _distributed_flags(q) -> None:
    q.add_argument(
        "--coordinator", metavar="HOST:PORT", help="process 0's address (jax.distributed)"
    )
    q.add_argument("--num-processes", type=int, metavar="N", help="processes sharing the grid")
    q.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1 (0 writes)")


def _workflows_command(cfg, args) -> int:
    _workflows(cfg, Path(args.out))
    return 0


def _effective_gamma_command(cfg, args) -> int:
    _effective_gamma(cfg, Path(args.out))
    return 0


def _digits_command(cfg, args) -> int:
    from sims.digits import report

    mode = args._preset or "quick"
    out = Path(args.out or f"out/digits_{mode}")
    print(f"digits --{mode}: {cfg.source}, λ = {cfg.lams}, {cfg.generations} generations → {out}")
    report.run_digits(cfg, out, resume=args.resume, progress=not args.no_progress)
    return 0


def loop_flags(q) -> None:
    """The flags of a learned-model loop that are not config fields."""
    q.add_argument("--out", help="output directory (default out/<command>_<preset>)")
    q.add_argument("--resume", action="store_true", help="continue the run in --out")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


def _figures(args) -> int:
    from sims.digits import report as digits_report
    from sims.gaussian import bounds, effective, phase, toy, workflows
    from sims.imperfect import report as imperfect
    from sims.motion.cli import figures as motion_figures
    from sims.motion.report import loop_figures as motion_loop_figures

    out = Path(args.out)
    _bounds_figure(bounds.Config(), out)
    _gaussian_toy(toy.Config(), out)
    _phase(phase.Config(), out)
    _workflows(workflows.Config(), out)
    motion_figures(out)
    motion_loop_figures(out)
    digits_report.figures(out)
    _effective_gamma(effective.Config(), out)
    # Last: it reads the loops' results and γ̂ the steps above wrote into ``out``.
    _imperfect(imperfect.Config(figures=str(out)), out)
    return 0


def parser() -> argparse.ArgumentParser:
    from sims.digits import config as digits_config
    from sims.gaussian import bounds, effective, phase, toy, workflows
    from sims.imperfect import report as imperfect
    from sims.motion import cli as motion_cli

    p = argparse.ArgumentParser(prog="scsc", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def json_flag(q):
        q.add_argument("--json", action="store_true", help="print one JSON object")

    def panels_flag(q):
        q.add_argument(
            "--no-panels", action="store_true", help="skip the companion panels and figure"
        )

    add_command(
        sub,
        "bound",
        bounds.Query,
        _bound,
        help="Theorem 4.3 quantities for given constants",
        extra=json_flag,
    )
    add_command(
        sub,
        "gaussian-toy",
        toy.Config,
        _toy_command,
        help="Fig. 2 protocol over many seeds",
        out="out/gaussian_toy",
        extra=panels_flag,
    )
    add_command(
        sub,
        "phase",
        phase.Config,
        _phase_command,
        help="phase diagram over λ × γ (theorem vs simulation)",
        out="out/phase",
        extra=_distributed_flags,
    )
    add_command(
        sub,
        "workflows",
        workflows.Config,
        _workflows_command,
        help="replace vs augment vs accumulate over generations",
        out="out/workflows",
    )
    add_command(
        sub,
        "effective-gamma",
        effective.Config,
        _effective_gamma_command,
        help="γ̂ of the Gaussian correctors (App. C)",
        out="out/effective_gamma",
    )
    add_command(
        sub,
        "imperfect",
        imperfect.Config,
        _imperfect_command,
        help="imperfect correctors: bias/shrink maps, the real correctors on them",
        out="out/imperfect",
    )

    add_command(
        sub,
        "digits",
        digits_config.Config,
        _digits_command,
        help="digit-image loop: DDPM + K-means correction (Figs. 3, 7, 8)",
        extra=loop_flags,
        presets=("quick", "long", "full", "smoke"),
        default_preset="quick",
    )
    motion_cli.add_parser(sub)  # scsc motion ...

    f = sub.add_parser("figures", help="regenerate the committed figures")
    f.add_argument("--out", default="figures")
    f.set_defaults(func=_figures)
    return p


def enable_compilation_cache() -> None:
    """Persistent XLA compilation cache for CLI runs (repeat runs skip most compilation).

    Directory ``$SCSC_JAX_CACHE`` (default ``~/.cache/scsc/jax``); ``SCSC_JAX_CACHE=off``
    disables it. Cached executables give identical numbers; only start-up time changes.
    """
    import os

    import jax

    where = os.environ.get("SCSC_JAX_CACHE", str(Path.home() / ".cache" / "scsc" / "jax"))
    if where.lower() in ("off", "0", ""):
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        # The one place a command's arguments become a config: validation runs here,
        # before any computation or compilation.
        cfg = config.from_args(args) if hasattr(args, "_config_cls") else None
        if args.command != "bound":
            enable_compilation_cache()
        return args.func(args) if cfg is None else args.func(cfg, args)
    except ValueError as e:
        name = " ".join(filter(None, (args.command, getattr(args, "motion_command", None))))
        print(f"scsc {name}: error: {e}", file=sys.stderr)
        return 2


# --- deprecated names (figure assembly moved to the experiments' ``report``) -------------


def _run_gaussian_toy(cfg, out_dir: Path, panels: bool = True) -> dict:
    return _gaussian_toy(cfg, Path(out_dir), panels)


def _run_bounds(out_dir: Path) -> dict:
    from sims.gaussian import bounds

    return _bounds_figure(bounds.Config(), Path(out_dir))


run_gaussian_toy = deprecation.alias(
    "sims.cli.run_gaussian_toy", "sims.gaussian.toy.report(toy.run(cfg), out)", _run_gaussian_toy
)
run_bounds = deprecation.alias(
    "sims.cli.run_bounds", "sims.gaussian.bounds.report(bounds.run(cfg), out)", _run_bounds
)
run_phase = deprecation.alias(
    "sims.cli.run_phase",
    "sims.gaussian.phase.report(phase.run(cfg), out)",
    lambda cfg, out_dir: _phase(cfg, Path(out_dir)),
)
run_workflows = deprecation.alias(
    "sims.cli.run_workflows",
    "sims.gaussian.workflows.report(workflows.run(cfg), out)",
    lambda cfg, out_dir: _workflows(cfg, Path(out_dir)),
)
run_effective_gamma = deprecation.alias(
    "sims.cli.run_effective_gamma",
    "sims.gaussian.effective.report(effective.run(cfg), out)",
    lambda cfg, out_dir: _effective_gamma(cfg, Path(out_dir)),
)


if __name__ == "__main__":
    sys.exit(main())
