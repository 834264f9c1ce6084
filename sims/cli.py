"""Command line: ``scsc bound``, ``gaussian-toy``, ``phase``, ``workflows``, ``figures``.

Every argument is validated before any computation or compilation; a bad value exits with
status 2 and a message naming the parameter and its allowed range.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path


def _seeds(text: str) -> tuple[int, ...]:
    """``32`` → seeds 0..31; ``0,5,7`` → exactly those seeds."""
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be a count or a comma list; got {text!r}"
        ) from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"seeds must be >= 1; got {count}")
    return tuple(range(count))


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers; got {text!r}"
        ) from None


def _bound(args) -> int:
    import jax

    # A calculator: exact to float64, as a context (``main`` may be called in-process; a
    # global switch would change the precision of everything the caller runs next).
    with jax.enable_x64(True):
        return _bound_float64(args)


def _bound_float64(args) -> int:
    from theory import _checks, bounds

    _checks.check_nonneg("lam", args.lam, allow_inf=False)
    _checks.check_nonneg("gamma", args.gamma)
    _checks.check_nonneg("kappa", args.kappa, allow_inf=False)
    extra = (args.t, args.tau, args.err0)
    if any(v is not None for v in extra) and not all(v is not None for v in extra):
        raise ValueError("--t, --tau and --err0 go together (eq. (7) needs all three)")
    if args.t is not None:
        _checks.check_nonneg_int("t", args.t)
        _checks.check_nonneg("tau", args.tau, allow_inf=False)
        _checks.check_nonneg("err0", args.err0, allow_inf=False)
    out = {
        "lam": args.lam,
        "gamma": args.gamma,
        "kappa": args.kappa,
        "rho": float(bounds.rho(args.lam, args.kappa)),
        "contraction": float(bounds.contraction(args.lam, args.gamma, args.kappa)),
        "threshold": float(bounds.threshold(args.gamma, args.kappa)),
        "is_stable": bool(bounds.is_stable(args.lam, args.gamma, args.kappa)),
        "well_specified_rate": float(bounds.well_specified_rate(args.lam, args.gamma)),
    }
    if args.t is not None:
        out.update(t=args.t, tau=args.tau, err0=args.err0)
        out["bound"] = float(
            bounds.bound(args.t, args.lam, args.gamma, args.kappa, args.tau, args.err0)
        )
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


_W2 = ("w2_mean", "w2_median", "w2_q10", "w2_q90")
_ERR = ("param_err_mean", "param_err_median", "param_err_q10", "param_err_q90")
# What each panel plots, and so what its JSON keeps (the reference panel is the top level
# whenever the configured run is the paper's protocol).
_PANEL_KEYS = {
    "reference": (*_W2, "seconds"),
    "histogram": (*_W2, "seconds"),
    "theorem": (*_ERR, "bound", "exact_transient", "tau", "err0", "seconds"),
}


def run_gaussian_toy(cfg, out_dir: Path, panels: bool = True) -> dict:
    """Runs the configured protocol (and the two companion panels), saves JSON + figure."""
    import jax

    from sims.common import results
    from sims.gaussian import plotting, toy

    print(
        f"gaussian-toy: {cfg.workflow}/{cfg.correction}, {len(cfg.gammas)} γ × "
        f"{len(cfg.seeds)} seeds × {cfg.generations} generations",
        flush=True,
    )
    main = toy.main(cfg)
    print(f"  done in {main['seconds']:.1f} s (compilation included)", flush=True)
    payload = {
        "gammas": main["gammas"],
        **{k: main[k] for k in _W2},
        "final_w2": {
            "mean": main["w2_mean"][:, -1],
            "median": main["w2_median"][:, -1],
        },
        "diverged_runs": (main["diverged_at"] >= 0).sum(axis=1),
        "synth_ratio": main["synth_ratio"],
        "seconds": main["seconds"],
        "config": results.config_dict(cfg),
        "provenance": results.provenance(cfg, cfg.seeds),
    }
    if panels:
        panel_cfgs = {
            "reference": dataclasses.replace(cfg, workflow="toy", correction="histogram-reference"),
            "histogram": dataclasses.replace(cfg, workflow="toy", correction="histogram"),
            "theorem": toy.theorem_panel(cfg),
        }
        figure_panels = {}
        for name, panel_cfg in panel_cfgs.items():
            res = main if panel_cfg == cfg else toy.main(panel_cfg)
            print(f"  panel {name}: {res['seconds']:.1f} s", flush=True)
            if name == "theorem":
                res = {**res, **toy.bound_curves(panel_cfg, jax.random.key(12345))}
            figure_panels[name] = res
        payload["panels"] = {
            name: {"config": results.config_dict(panel_cfgs[name])}
            | ({"same_as": "top level"} if panel_cfgs[name] == cfg else {})
            | {k: res[k] for k in _PANEL_KEYS[name] if panel_cfgs[name] != cfg or k == "seconds"}
            for name, res in figure_panels.items()
        }
        png = plotting.fig2(figure_panels, out_dir / "fig2_gaussian_toy.png", payload["provenance"])
        print(f"  wrote {png}")
    path = results.write_json(out_dir / "gaussian_toy.json", payload, digits=5)
    print(f"  wrote {path}")
    return payload


def _gaussian_toy(args) -> int:
    from sims.gaussian import toy

    cfg = toy.Config(
        gammas=args.gammas,
        generations=args.generations,
        seeds=args.seeds,
        n_real=args.n_real,
        lam=args.lam,
        workflow=args.workflow,
        correction=args.correction,
    )
    run_gaussian_toy(cfg, Path(args.out), panels=not args.no_panels)
    return 0


def run_bounds(out_dir: Path) -> dict:
    """The theorem's threshold table, rates and eq. (7) curves (float64); saves JSON + PNG.

    The κ values are 0 (well specified) and the two worked examples of
    ``theory.constants.gaussian_on_bounded_data`` (a Gaussian fitted to bounded data).
    """
    import jax

    # float64 for these small calculator-style evaluations only: a global switch would
    # change the precision of every later run in the process (``scsc figures``).
    with jax.enable_x64(True):
        return _bounds_figure(out_dir)


def _bounds_figure(out_dir: Path) -> dict:
    import numpy as np

    from sims.common import results
    from sims.gaussian import plotting
    from theory import bounds, constants

    examples = {
        kind: constants.gaussian_on_bounded_data(kind) for kind in ("uniform", "truncated-laplace")
    }
    kappas = [0.0, *(float(e.kappa) for e in examples.values())]
    gamma_grid = np.concatenate([[0.0], np.logspace(-2, 2, 200)])
    table_gammas = [0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf")]
    lam_grid = np.linspace(0.0, 1.5, 301)
    rate_gammas = [0.0, 0.5, 1.0, 5.0]
    t = np.arange(0, 61)
    lam, tau, err0 = 0.3, 0.01, 1.0
    res = {
        "kappas": kappas,
        "kappa_labels": [
            "well specified",
            *(
                f"Gaussian fit to {e.kind} on [−{e.half_width:.3g}, {e.half_width:.3g}]"
                for e in examples.values()
            ),
        ],
        "examples": {
            k: {
                "kappa": float(e.kappa),
                "alpha": float(e.alpha),
                "L": float(e.lipschitz),
                "epsilon": float(e.epsilon),
            }
            for k, e in examples.items()
        },
        "gamma_grid": gamma_grid,
        "thresholds": [np.asarray(bounds.threshold(gamma_grid, k)) for k in kappas],
        "threshold_table": {
            f"kappa={k:.4g}": {f"{g:g}": float(bounds.threshold(g, k)) for g in table_gammas}
            for k in kappas
        },
        "lam_grid": lam_grid,
        "rate_gammas": rate_gammas,
        "theorem_rate": {
            f"{g:g}": np.where(
                np.asarray(bounds.is_stable(lam_grid, g)),
                np.asarray(bounds.contraction(lam_grid, g)),
                np.nan,
            )
            for g in rate_gammas
        },
        "exact_rate": {
            f"{g:g}": np.asarray(bounds.well_specified_rate(lam_grid, g)) for g in rate_gammas
        },
        "t": t,
        "eq7": {f"{g:g}": np.asarray(bounds.bound(t, lam, g, 0.0, tau, err0)) for g in rate_gammas},
        "eq7_lam": lam,
        "eq7_tau": tau,
        "eq7_err0": err0,
        "provenance": results.provenance(),
    }
    png = plotting.bounds(res, out_dir / "bounds.png", res["provenance"])
    path = results.write_json(out_dir / "bounds.json", res, digits=6)
    print(f"bounds: wrote {png} and {path}", flush=True)
    return res


def run_phase(cfg, out_dir: Path) -> dict:
    """Runs a phase diagram with a progress bar; saves NPZ (maps) + JSON (summary) + PNG."""
    import numpy as np
    from tqdm import tqdm

    from sims.common import results
    from sims.gaussian import phase as pd
    from sims.gaussian import plotting, sweep

    cells = cfg.n_lam * cfg.n_gamma
    print(
        f"phase: {cfg.workflow}, {cfg.n_lam} λ × {cfg.n_gamma} γ × {cfg.seeds} seeds × "
        f"{cfg.generations} generations (d = {cfg.dim}, n = {cfg.n_real})",
        flush=True,
    )
    with tqdm(total=cells, unit="cell", desc="phase diagram", mininterval=1.0) as bar:
        sweep._progress = bar
        try:
            res = pd.main(cfg)
        finally:
            sweep._progress = None
    summary = pd.summary(res)
    print(f"  done in {res['seconds']:.1f} s (compilation included)", flush=True)
    prov = results.provenance(cfg, range(cfg.seeds))
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = {k: np.asarray(v) for k, v in res.items() if k != "seconds"}
    np.savez_compressed(out_dir / "phase_diagram.npz", **maps)
    payload = {
        "config": results.config_dict(cfg),
        "provenance": prov,
        "summary": summary,
        "data": "phase_diagram.npz (every map, shape (n_lam, n_gamma); lams, gammas)",
    }
    results.write_json(out_dir / "phase_diagram.json", payload, digits=5)
    png = plotting.phase_diagram(res, payload["config"], out_dir / "phase_diagram.png", prov)
    print(f"  wrote {png} and its .npz/.json", flush=True)
    return payload


def run_workflows(cfg, out_dir: Path) -> dict:
    """replace / augment / accumulate comparison; saves JSON + PNG."""
    from sims.common import results
    from sims.gaussian import phase as pd
    from sims.gaussian import plotting

    res = pd.workflows(cfg)
    print(f"workflows: done in {res['seconds']:.1f} s (compilation included)", flush=True)
    payload = {
        **res,
        "collapse_tol": cfg.collapse_tol,
        "config": results.config_dict(cfg),
        "provenance": results.provenance(cfg, range(cfg.seeds)),
    }
    png = plotting.workflows(payload, out_dir / "workflows.png", payload["provenance"])
    path = results.write_json(out_dir / "workflows.json", payload, digits=4)
    print(f"  wrote {png} and {path}", flush=True)
    return payload


def _phase(args) -> int:
    from sims.gaussian import phase as pd

    fields = {f.name for f in dataclasses.fields(pd.Config)}
    cfg = pd.Config(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    run_phase(cfg, Path(args.out))
    return 0


def _workflows(args) -> int:
    from sims.gaussian import phase as pd

    fields = {f.name for f in dataclasses.fields(pd.WorkflowsConfig)}
    cfg = pd.WorkflowsConfig(
        **{k: v for k, v in vars(args).items() if k in fields and v is not None}
    )
    run_workflows(cfg, Path(args.out))
    return 0


def run_effective_gamma(cfg, out_dir: Path) -> dict:
    """γ̂ table of the Gaussian correctors (``sims.gaussian.effective``); prints it, saves JSON."""
    from sims.common import results
    from sims.gaussian import effective

    res = effective.main(cfg)
    print(f"{'correction':>20} {'γ':>5} {'γ̂':>8}  95% CI              rel. residual")
    for r in res["rows"]:
        lo, hi = r["ci"]
        print(
            f"{r['correction']:>20} {r['nominal_gamma']:>5g} {r['gamma_hat']:>8.3g}  "
            f"[{lo:.3g}, {hi:.3g}]{'':<8} {r['relative_residual']:.3g}"
        )
    payload = {**res, "config": results.config_dict(cfg), "provenance": results.provenance(cfg)}
    path = results.write_json(out_dir / "effective_gamma.json", payload, digits=5)
    print(f"  wrote {path}")
    return payload


def _effective_gamma(args) -> int:
    from sims.gaussian import effective

    cfg = effective.Config(
        corrections=tuple(args.corrections.split(",")),
        gammas=args.gammas,
        n=args.n,
        batch_size=args.batch_size,
        displacement=args.displacement,
        criterion=args.criterion,
        seed=args.seed,
    )
    run_effective_gamma(cfg, Path(args.out))
    return 0


def _figures(args) -> int:
    from sims.digits import cli as digits_cli
    from sims.gaussian import effective, toy
    from sims.gaussian import phase as pd
    from sims.motion.cli import figures as motion_figures
    from sims.motion.cli import loop_figures as motion_loop_figures

    out = Path(args.out)
    run_bounds(out)
    run_gaussian_toy(toy.Config(), out)
    run_phase(pd.Config(), out)
    run_workflows(pd.WorkflowsConfig(), out)
    motion_figures(out)
    motion_loop_figures(out)
    digits_cli.figures(out)
    run_effective_gamma(effective.Config(), out)
    return 0


def parser() -> argparse.ArgumentParser:
    from sims.digits import cli as digits_cli
    from sims.gaussian import effective, loop, sweep, toy
    from sims.gaussian import phase as pd
    from sims.motion import cli as motion_cli
    from theory import operators as ops

    p = argparse.ArgumentParser(prog="scsc", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bound", help="Theorem 4.3 quantities for given constants")
    b.add_argument("--lam", type=float, required=True, help="synthetic ratio λ >= 0")
    b.add_argument("--gamma", type=float, required=True, help="correction strength γ >= 0 (inf ok)")
    b.add_argument("--kappa", type=float, default=0.0, help="κ = εL/α >= 0")
    b.add_argument("--t", type=int, help="generation t (non-negative integer)")
    b.add_argument("--tau", type=float, help="τ_n(δ/t) >= 0")
    b.add_argument("--err0", type=float, help="‖θ_0 − θ*‖ >= 0")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=_bound)

    g = sub.add_parser("gaussian-toy", help="Fig. 2 protocol over many seeds")
    d = toy.Config()
    g.add_argument("--correction", choices=ops.CORRECTIONS, default=d.correction)
    g.add_argument("--workflow", choices=loop.WORKFLOWS, default=d.workflow)
    g.add_argument("--gammas", type=_floats, default=d.gammas, help="comma list, e.g. 0,0.1,1")
    g.add_argument("--generations", type=int, default=d.generations)
    g.add_argument(
        "--seeds", type=_seeds, default=d.seeds, help="a count N (0..N-1) or a comma list"
    )
    g.add_argument("--n-real", type=int, default=d.n_real)
    g.add_argument("--lam", type=float, default=d.lam)
    g.add_argument("--out", default="out/gaussian_toy", help="output directory")
    g.add_argument("--no-panels", action="store_true", help="skip the companion panels and figure")
    g.set_defaults(func=_gaussian_toy)

    ph = sub.add_parser("phase", help="phase diagram over λ × γ (theorem vs simulation)")
    pc = pd.Config()
    ph.add_argument("--workflow", choices=sweep.WORKFLOWS, default=pc.workflow)
    for name in ("n_lam", "n_gamma", "seeds", "generations", "n_real", "dim", "batch_size"):
        ph.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(pc, name))
    for name in ("lam_max", "gamma_min", "gamma_max", "kappa", "displacement", "collapse_tol"):
        ph.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(pc, name))
    ph.add_argument("--out", default="out/phase", help="output directory")
    ph.set_defaults(func=_phase)

    w = sub.add_parser("workflows", help="replace vs augment vs accumulate over generations")
    wc = pd.WorkflowsConfig()
    w.add_argument("--gammas", type=_floats, default=wc.gammas, help="comma list")
    w.add_argument("--lam", type=float, default=wc.lam)
    for name in ("seeds", "generations", "n_real", "dim"):
        w.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(wc, name))
    w.add_argument("--out", default="out/workflows", help="output directory")
    w.set_defaults(func=_workflows)

    e = sub.add_parser("effective-gamma", help="γ̂ of the Gaussian correctors (App. C)")
    ec = effective.Config()
    e.add_argument("--corrections", default=",".join(ec.corrections))
    e.add_argument("--gammas", type=_floats, default=ec.gammas, help="comma list")
    e.add_argument("--n", type=int, default=ec.n, help="model samples (multiple of batch)")
    e.add_argument("--batch-size", type=int, default=ec.batch_size, help="points per call")
    e.add_argument("--displacement", type=float, default=ec.displacement, help="‖μ_θ − μ*‖")
    e.add_argument("--criterion", choices=("energy", "ks"), default=ec.criterion)
    e.add_argument("--seed", type=int, default=ec.seed)
    e.add_argument("--out", default="out/effective_gamma")
    e.set_defaults(func=_effective_gamma)

    digits_cli.add_parser(sub)  # scsc digits ...
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
    if args.command != "bound":
        enable_compilation_cache()
    try:
        return args.func(args)
    except ValueError as e:
        print(f"scsc {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
