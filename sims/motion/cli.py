"""``scsc motion``: the self-consuming motion loop and the physics engine from the shell.

``scsc motion --quick|--long|--full`` runs the loop (``sims.motion.loop``; ``--quick``:
n = 64, λ = 1, three arms, 6 generations, CPU < 15 min; ``--long``: n = 64 at λ ∈
{0.5, 1} with seeds 0–2 at λ = 1 and n = 256 at λ = 0.25, 20 generations; ``--full``:
paper scale, GPU). A run writes checkpoints, ``results.json`` (the Fig. 4 data schema),
``fig5_motion.npz`` and its figures into ``--out``; ``--resume`` continues a killed run.
Only ``scsc figures`` writes into ``figures/``.
``scsc motion demo|render|dataset`` drive the physics engine alone.

Arguments are validated (by the config dataclasses) before any simulation or compilation.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from sims.common import watchdog

__all__ = ["LOOP_MODES", "add_parser", "figures", "loop_config"]

LOOP_MODES = ("quick", "long", "full", "smoke")


def _dataset_cfg(args):
    from sims.motion import dataset as ds

    return ds.Config(n=args.n, frames=args.frames, seed=args.seed)


def run_demo(cfg, out_dir: Path, gif: bool = True, prov: dict | None = None) -> dict:
    """Runs ``demo.main`` and saves JSON, trajectories (NPZ) and the comparison figure."""
    from sims.common import results
    from sims.motion import demo, render

    print(
        f"motion demo: {cfg.per_class} motion(s) × 9 classes × 4 corruptions, "
        f"correctors {', '.join(cfg.correctors)}, backend {cfg.backend}, "
        f"dataset n = {cfg.dataset.n}",
        flush=True,
    )
    prov = prov or results.provenance(cfg, [cfg.seed, cfg.dataset.seed])
    res = demo.main(cfg)
    payload = {
        "config": results.config_dict(cfg),
        "provenance": prov,
        "ground_truth": res["ground_truth"],
        "ground_truth_selected": res["ground_truth_selected"],
        "valid_corrected": res["valid_corrected"],
        "corruptions": res["corruptions"],
        "correctors": res["correctors"],
        "by_corrector": res["by_corrector"],
        "texts": [str(t) for t in res["texts"]],
        "seconds": res["seconds"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = results.write_json(out_dir / "correction_demo.json", payload, digits=5)
    print(f"  done in {res['seconds']:.1f} s; wrote {path}")
    print(demo.table(res))
    traj = res["trajectories"]
    i = 0  # first selected motion, shown under every corruption
    j = int(np.flatnonzero(res["labels"] == 6)[0]) if 6 in res["labels"] else 0  # march
    shown = [i, j]  # only the rendered motions' trajectories are kept (small files)
    np.savez_compressed(
        out_dir / "correction_demo.npz",
        **{k: v[shown] for k, v in traj.items()},
        texts=np.asarray(res["texts"])[shown],
        labels=res["labels"][shown],
        indices=np.asarray(res["indices"])[shown],
    )
    names = res["correctors"]

    def corrected(kind, j):
        return traj[f"{kind}_corrected" + ("" if j == 0 else f"_{names[j]}")]

    rows = []
    for kind, entry in res["corruptions"].items():
        metric = entry["matching_metric"]
        after = [res["by_corrector"][c]["corruptions"][kind]["after"][metric] for c in names]
        rows.append(
            (
                kind,
                [
                    traj["ground_truth"][i],
                    traj[f"{kind}_corrupted"][i],
                    *(corrected(kind, j)[i] for j in range(len(names))),
                ],
                [
                    "ground truth",
                    f"{kind}: {metric} {entry['before'][metric]:.1f}",
                    *(f"corrected ({c}): {a:.1f}" for c, a in zip(names, after, strict=True)),
                ],
            )
        )
    footer = (
        f'"{res["texts"][i]}"; metric values are batch means over {len(res["texts"])} '
        f"motions (mm; jerk m/s³). git {str(prov['git_sha'])[:8]}"
        f"{' dirty' if prov['git_dirty'] else ''}, config {prov['config_hash']}"
    )
    png = render.strip(rows, out_dir / "motion_correction.png", n_frames=4, footer=footer)
    print(f"  wrote {png}")
    if gif:
        anim = render.animate(
            [
                traj["ground_truth"][j],
                traj["slide_corrupted"][j],
                *(corrected("slide", k)[j] for k in range(len(names))),
            ],
            ["ground truth", "corrupted (feet slide)", *(f"corrected ({c})" for c in names)],
            out_dir / "motion_correction.gif",
            suptitle=str(res["texts"][j]),
            stride=2,
        )
        print(f"  wrote {anim}")
    return payload


def render_dataset(cfg, out_dir: Path, prov: dict | None = None) -> Path:
    """One example of every class, as key-frame strips, with the dataset's texts."""
    from sims.common import results
    from sims.motion import dataset as ds
    from sims.motion import render

    data = ds.load(cfg)
    idx = [int(np.flatnonzero(data["labels"] == c)[0]) for c in range(len(ds.CLASSES))]
    titles = ["\n".join(textwrap.wrap(str(data["texts"][i]), 34)) for i in idx]
    rows = [("", [data["qpos"][i] for i in idx[k : k + 5]], titles[k : k + 5]) for k in (0, 5)]
    prov = prov or results.provenance(cfg, [cfg.seed])
    footer = (
        f"dataset n = {cfg.n}, T = {cfg.frames} frames at 20 fps, realised in physics; "
        f"config {prov['config_hash']}, git {str(prov['git_sha'])[:8]}"
    )
    path = render.strip(rows, out_dir / "motion_dataset.png", n_frames=4, footer=footer)
    results.write_json(
        out_dir / "motion_dataset.json",
        {
            "config": results.config_dict(cfg),
            "provenance": prov,
            "shown": {"indices": idx, "texts": [str(data["texts"][i]) for i in idx]},
            "classes": list(ds.CLASSES),
            "distinct_texts": len(set(data["texts"].tolist())),
            "redrawn_falls": int(data["redrawn"]),
        },
    )
    return path


def _demo(args) -> int:
    from sims.motion import demo

    cfg = (
        demo.Config.smoke()
        if args.smoke
        else demo.Config(
            dataset=_dataset_cfg(args),
            per_class=args.per_class,
            backend=args.backend,
            seed=args.seed,
        )
    )
    run_demo(cfg, Path(args.out), gif=not args.no_gif)
    return 0


def _render(args) -> int:
    import jax

    from sims.motion import corrupt as cr
    from sims.motion import dataset as ds
    from sims.motion import physics as ph
    from sims.motion import render

    cfg = _dataset_cfg(args)
    if args.corruption is not None and args.corruption not in cr.CORRUPTIONS:
        raise ValueError(f"corruption must be one of {cr.CORRUPTIONS}; got {args.corruption!r}")
    if any(i < 0 or i >= cfg.n for i in args.index):
        raise ValueError(f"index must lie in [0, n) = [0, {cfg.n}); got {args.index}")
    data = ds.load(cfg)
    gt = data["qpos"][list(args.index)]
    motions, titles = [], []
    for k, i in enumerate(args.index):
        motions.append(gt[k])
        titles.append(f"#{i} ground truth")
        if args.corruption:
            bad = cr.corrupt(jax.random.key(args.seed), gt[k : k + 1], args.corruption)
            fixed, _ = ph.simulate(bad, backend=args.backend)
            motions += [np.asarray(bad[0]), np.asarray(fixed[0])]
            titles += [f"{args.corruption} (uncorrected)", "corrected"]
    out = Path(args.out)
    suptitle = " | ".join(str(data["texts"][i]) for i in args.index)
    if out.suffix == ".png":
        path = render.strip([("", motions, titles)], out, footer=suptitle)
    else:
        path = render.animate(motions, titles, out, suptitle=suptitle, stride=args.stride)
    print(f"wrote {path}")
    return 0


def _drift(args) -> int:
    """``scsc motion drift``: the corrector applied again and again to real motions."""
    from sims.motion import drift

    names = [c.strip() for c in args.corrector.split(",") if c.strip()]
    cfgs = [
        drift.Config.smoke(c)
        if args.smoke
        else drift.Config(corrector=c, passes=args.passes, n=args.n, backend=args.backend)
        for c in names
    ]
    if not cfgs:
        raise ValueError("corrector must name at least one of id, pd")
    rows = []
    for cfg in cfgs:
        print(
            f"motion drift: corrector {cfg.corrector}, {cfg.passes} passes, n = {cfg.n}, "
            f"backend {cfg.backend}",
            flush=True,
        )
        res = drift.run(cfg)
        print(drift.summary(res), flush=True)
        rows.append(res)
    for path in drift.report(rows if len(rows) > 1 else rows[0], Path(args.out)):
        print(f"  wrote {path}")
    return 0


def _dataset(args) -> int:
    path = render_dataset(_dataset_cfg(args), Path(args.out))
    print(f"wrote {path}")
    return 0


def figures(out_dir: Path) -> None:
    """Regenerates the committed motion figures (C backend, ≈ 2 min on 2 CPU cores)."""
    from sims.common import results
    from sims.motion import dataset as ds
    from sims.motion import demo

    # Provenance taken before anything is written (a written figure dirties the tree).
    data_cfg, demo_cfg = ds.Config(), demo.Config()
    data_prov = results.provenance(data_cfg, [data_cfg.seed])
    demo_prov = results.provenance(demo_cfg, [demo_cfg.seed, demo_cfg.dataset.seed])
    print(f"  wrote {render_dataset(data_cfg, out_dir, data_prov)}")
    run_demo(demo_cfg, out_dir, gif=True, prov=demo_prov)


def add_parser(sub) -> None:
    """Adds ``scsc motion ...`` to the top-level subparsers."""
    from sims.motion import dataset as ds
    from sims.motion import physics as ph

    d = ds.Config()
    p = sub.add_parser(
        "motion",
        help="human-motion loop (--quick/--long/--full) and physics engine (demo/render/dataset)",
    )
    mode = p.add_mutually_exclusive_group()
    for m in LOOP_MODES:
        mode.add_argument(
            f"--{m}",
            dest="mode",
            action="store_const",
            const=m,
            help=f"run the self-consuming loop, {m} setting",
        )
    p.add_argument("--out", dest="loop_out", help="loop output directory (out/motion_<mode>)")
    p.add_argument("--resume", action="store_true", help="continue the loop run in --out")
    p.add_argument("--generations", type=int, help="override the mode's generation count")
    p.add_argument("--n", dest="loop_n", help="comma list of real-set sizes n (with --lams)")
    p.add_argument("--lams", help="comma list of λ >= 0 (runs = n × λ × seeds)")
    p.add_argument("--seeds", help="comma list of seeds >= 0")
    p.add_argument("--gamma", type=float, help="correction strength of the corrected arm")
    p.add_argument("--physics", choices=ph.BACKENDS, help="corrector backend (default mjx)")
    p.add_argument(
        "--corrector",
        choices=ph.CORRECTORS,
        help="physics tracker of the corrected arm (default id)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--watchdog",
        type=float,
        metavar="SECONDS",
        help="run the loop in a child process and restart it with --resume when no "
        "checkpoint was written for SECONDS (e.g. 900; see docs/design.md: rare XLA CPU hangs)",
    )
    p.set_defaults(func=_loop, mode=None)
    msub = p.add_subparsers(dest="motion_command")

    def common(q, n=d.n):
        q.add_argument("--n", type=int, default=n, help="dataset size (motions)")
        q.add_argument("--frames", type=int, default=d.frames, help="frames per motion (20 fps)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--backend", choices=ph.BACKENDS, default="mujoco")

    q = msub.add_parser("demo", help="corrupt, correct and measure dataset motions")
    common(q, n=144)
    q.add_argument("--per-class", type=int, default=2, help="motions per class per corruption")
    q.add_argument("--out", default="out/motion_demo")
    q.add_argument("--no-gif", action="store_true")
    q.add_argument("--smoke", action="store_true", help="tiny configuration (tests)")
    q.set_defaults(func=_demo)

    q = msub.add_parser(
        "drift", help="idempotence: correct real motions repeatedly, measure the drift"
    )
    q.add_argument(
        "--corrector", default="id", help="id or pd (or a comma list, e.g. id,pd: one plot)"
    )
    q.add_argument("--passes", type=int, default=4, help="correction passes")
    q.add_argument("--n", type=int, default=64, help="real training motions (the loop's first n)")
    q.add_argument("--backend", choices=ph.BACKENDS, default="mujoco")
    q.add_argument("--out", default="out/motion_drift")
    q.add_argument("--smoke", action="store_true", help="tiny configuration (tests)")
    q.set_defaults(func=_drift)

    q = msub.add_parser("render", help="GIF/PNG of dataset motions (and their correction)")
    common(q)
    q.add_argument("--index", type=int, nargs="+", default=[0], help="dataset indices")
    q.add_argument("--corruption", help="also show this corruption and its correction")
    q.add_argument("--stride", type=int, default=2, help="GIF frame stride")
    q.add_argument("--out", default="out/motion.gif", help=".gif or .png")
    q.set_defaults(func=_render)

    q = msub.add_parser("dataset", help="figure of one motion per class")
    common(q)
    q.add_argument("--out", default="out/motion_dataset")
    q.set_defaults(func=_dataset)


# ------------------------------------------------------------------ the loop


def _ints(name: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers; got {text!r}") from None


def loop_config(args):
    """The mode's config with the overrides; every value validated (ValueError) up front."""
    import dataclasses

    from sims.motion.loop import Config

    cfg = getattr(Config, args.mode)()
    over = {}
    if args.loop_n or args.lams or args.seeds:
        ns = _ints("n", args.loop_n) if args.loop_n else tuple(sorted({r[0] for r in cfg.runs}))
        try:
            lams = (
                tuple(float(v) for v in args.lams.split(",") if v.strip())
                if args.lams
                else tuple(sorted({r[1] for r in cfg.runs}))
            )
        except ValueError:
            raise ValueError(f"lams must be comma-separated numbers; got {args.lams!r}") from None
        seeds = _ints("seeds", args.seeds) if args.seeds else (0,)
        over["runs"] = tuple((n, lam, s) for n in ns for lam in lams for s in seeds)
    for name, value in (
        ("generations", args.generations),
        ("gamma", args.gamma),
        ("backend", args.physics),
        ("corrector", args.corrector),
    ):
        if value is not None:
            over[name] = value
    return dataclasses.replace(cfg, **over)


def _loop(args) -> int:
    if args.mode is None:
        raise ValueError(
            "scsc motion needs a loop mode (--quick, --long, --full) or a subcommand "
            "(demo, render, dataset)"
        )
    cfg = loop_config(args)
    out = Path(args.loop_out or f"out/motion_{args.mode}")
    if args.watchdog is not None:
        return watchdog.supervise(watchdog.command_without_watchdog(), out, args.watchdog)
    print(
        f"motion --{args.mode}: runs (n, λ, seed) = {list(cfg.runs)}, "
        f"{cfg.generations} generations, γ = {cfg.gamma}, physics {cfg.backend} → {out}"
    )
    from sims.motion.report import run_loop

    run_loop(cfg, out, resume=args.resume, progress=not args.no_progress)
    return 0


_REPORT = ("FIG5_CLASSES", "LONG_RUN_DIR", "loop_figures", "loop_summary", "plot_loop", "run_loop")


def __getattr__(name: str):
    # The loop's run/report functions live in sims.motion.report (imported lazily).
    if name in _REPORT:
        from sims.motion import report

        return getattr(report, name)
    raise AttributeError(f"module 'sims.motion.cli' has no attribute {name!r}")
