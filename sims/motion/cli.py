"""``scsc motion``: the self-consuming motion loop and the physics engine from the shell.

``scsc motion --quick|--long|--full`` runs the loop (``sims.motion.run``; ``--quick``:
n = 64, λ = 1, three arms, 6 generations, CPU < 15 min; ``--long``: n = 64 at λ ∈
{0.5, 1} with seeds 0–2 at λ = 1 and n = 256 at λ = 0.25, 20 generations; ``--full``:
paper scale, GPU). A run writes checkpoints, ``results.json`` (the Fig. 4 data schema),
``fig5_motion.npz`` and its figures into ``--out``; ``--resume`` continues a killed run.
Only ``scsc figures`` writes into ``figures/``.
``scsc motion demo|drift|render|dataset`` drive the physics engine alone.

Every flag is generated from a config dataclass (``sims.common.config``): the loop's from
``sims.motion.config.Config`` (``--physics`` is its ``backend``), ``demo`` from
``sims.motion.demo.Config``, ``drift`` from ``sims.motion.drift.Config``, ``render`` from
``RenderConfig`` and ``dataset`` from ``sims.motion.dataset.Config``; nested dataset
fields (``--n``, ``--frames``) through ``option(nested=...)``. Two small adapters
(``sims.common.config.Adapter``) hold the flags that are not one field each:

- ``LOOP_FLAGS``: ``--n``, ``--lams``, ``--seeds`` build ``runs`` as the product
  n × λ × seeds (a list not given is the preset's n or λ values, seeds ``0``), and
  ``--compare-pd`` / ``--no-compare-pd`` set ``pd_runs`` to every run / none; without it
  ``pd_runs`` is the preset's restricted to the runs that remain, and empty when
  ``--corrector pd`` is given (the corrected arm is the pd tracker already).
- ``SHARED_SEED``: ``demo`` and ``render``'s ``--seed`` seeds the corruptions and the
  dataset (as before the CLI was generated).

Every value is validated by the config dataclasses before any simulation or compilation.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import numpy as np

from sims.common import config, watchdog
from sims.common.config import option
from sims.motion import corrupt as cr
from sims.motion import dataset as ds
from sims.motion import physics as ph

__all__ = [
    "LOOP_FLAGS",
    "LOOP_MODES",
    "SHARED_SEED",
    "RenderConfig",
    "add_parser",
    "figures",
    "loop_config",
]

LOOP_MODES = ("quick", "long", "full", "smoke")


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """``scsc motion render``: dataset motions drawn, with a corruption and its correction.

    Attributes:
        dataset: the dataset the motions come from.
        index: dataset indices shown (space-separated).
        corruption: also show this corruption and its correction.
        backend: physics backend of the correction.
        seed: key of the corruption (``--seed`` seeds the dataset too).
        stride: GIF frame stride.
    """

    dataset: ds.Config = option(default_factory=ds.Config, nested=("n", "frames"))
    index: tuple[int, ...] = option((0,), nargs="+")
    corruption: str | None = option(None, choices=cr.CORRUPTIONS)
    backend: str = option("mujoco", choices=ph.BACKENDS)
    seed: int = option(0, check=config.nonneg_int)
    stride: int = option(2, check=config.positive_int)

    def __post_init__(self):
        config.validate(self)
        n = self.dataset.n
        if not self.index or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in self.index
        ):
            raise ValueError(f"index must lie in [0, n) = [0, {n}); got {list(self.index)}")


def _seed_everywhere(base, given: dict) -> dict:
    if "seed" in given:
        given.setdefault("dataset.seed", given["seed"])
    return given


SHARED_SEED = config.Adapter(apply=_seed_everywhere)


def _runs_and_pd(base, given: dict) -> dict:
    """``runs`` = n × λ × seeds and ``pd_runs`` from the loop's extra flags (module doc)."""
    ns, lams, seeds = (given.pop(k, None) for k in ("runs_n", "runs_lams", "runs_seeds"))
    compare = given.pop("compare_pd", None)
    runs = base.runs
    if ns or lams or seeds:
        ns = ns or tuple(sorted({r[0] for r in base.runs}))
        lams = lams or tuple(sorted({r[1] for r in base.runs}))
        runs = tuple((n, lam, s) for n in ns for lam in lams for s in seeds or (0,))
        given["runs"] = runs
    if compare is not None:
        given["pd_runs"] = runs if compare else ()
    elif given.get("corrector") == "pd":
        given["pd_runs"] = ()  # the corrected arm is the pd tracker already
    else:
        given["pd_runs"] = tuple(r for r in base.pd_runs if r in runs)
    return given


LOOP_FLAGS = config.Adapter(
    flags=(
        config.Flag(
            "--n",
            "runs_n",
            "comma list of real-set sizes n (runs = n × λ × seeds; default: the preset's)",
            config.comma_list(int, "integers"),
            "N,...",
        ),
        config.Flag(
            "--lams",
            "runs_lams",
            "comma list of λ >= 0 (runs = n × λ × seeds; default: the preset's)",
            config.comma_list(float, "numbers"),
            "LAM,...",
        ),
        config.Flag(
            "--seeds",
            "runs_seeds",
            "comma list of seeds >= 0 (with --n or --lams; default: 0)",
            config.comma_list(int, "integers"),
            "SEED,...",
        ),
        config.Flag(
            "--compare-pd",
            "compare_pd",
            "add the fourth arm, corrected by the pd tracker, to every run (--no-compare-pd: "
            "to none; default: the preset's, --long has it at n = 64, λ = 1)",
        ),
    ),
    apply=_runs_and_pd,
)


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


def _demo(cfg, args) -> int:
    run_demo(cfg, Path(args.out), gif=not args.no_gif)
    return 0


def _render(cfg, args) -> int:
    import jax

    from sims.motion import render

    data = ds.load(cfg.dataset)
    gt = data["qpos"][list(cfg.index)]
    motions, titles = [], []
    for k, i in enumerate(cfg.index):
        motions.append(gt[k])
        titles.append(f"#{i} ground truth")
        if cfg.corruption:
            bad = cr.corrupt(jax.random.key(cfg.seed), gt[k : k + 1], cfg.corruption)
            fixed, _ = ph.simulate(bad, backend=cfg.backend)
            motions += [np.asarray(bad[0]), np.asarray(fixed[0])]
            titles += [f"{cfg.corruption} (uncorrected)", "corrected"]
    out = Path(args.out)
    suptitle = " | ".join(str(data["texts"][i]) for i in cfg.index)
    if out.suffix == ".png":
        path = render.strip([("", motions, titles)], out, footer=suptitle)
    else:
        path = render.animate(motions, titles, out, suptitle=suptitle, stride=cfg.stride)
    print(f"wrote {path}")
    return 0


def _drift(cfg, args) -> int:
    """``scsc motion drift``: the corrector applied again and again to real motions."""
    from sims.motion import drift

    if not args.correctors:
        raise ValueError(f"corrector must name at least one of {', '.join(ph.CORRECTORS)}")
    # One validated config per corrector, all built before anything runs.
    cfgs = [dataclasses.replace(cfg, corrector=c) for c in args.correctors]
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


def _dataset(cfg, args) -> int:
    if args.backend is not None:
        print(
            "note: scsc motion dataset ignores --backend (the C engine realises it)",
            file=sys.stderr,
        )
    path = render_dataset(cfg, Path(args.out))
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
    from sims.cli import add_command, loop_flags
    from sims.motion import demo, drift
    from sims.motion.config import Config

    def watchdog_flag(q):
        loop_flags(q)
        q.add_argument(
            "--watchdog",
            type=float,
            metavar="SECONDS",
            help="run the loop in a child process and restart it with --resume when no "
            "checkpoint was written for SECONDS (e.g. 900; see docs/design.md: rare XLA CPU "
            "hangs)",
        )

    p = add_command(
        sub,
        "motion",
        Config,
        _loop,
        help="human-motion loop (--quick/--long/--full) and physics engine "
        "(demo/drift/render/dataset)",
        extra=watchdog_flag,
        presets=LOOP_MODES,
        adapter=LOOP_FLAGS,
    )
    msub = p.add_subparsers(dest="motion_command")

    add_command(
        msub,
        "demo",
        demo.Config,
        _demo,
        help="corrupt, correct and measure dataset motions",
        out="out/motion_demo",
        extra=lambda q: q.add_argument("--no-gif", action="store_true", help="no GIF"),
        presets=("smoke",),
        adapter=SHARED_SEED,
    )

    def correctors(q):
        q.add_argument(
            "--corrector",
            dest="correctors",
            default=("id",),
            type=config.comma_list(str, "corrector names", choices=ph.CORRECTORS),
            help="id or pd, or a comma list (id,pd: one run each, one plot) (default: id)",
        )

    add_command(
        msub,
        "drift",
        drift.Config,
        _drift,
        help="idempotence: correct real motions repeatedly, measure the drift",
        out="out/motion_drift",
        extra=correctors,
        presets=("smoke",),
    )
    add_command(
        msub,
        "render",
        RenderConfig,
        _render,
        help="GIF/PNG of dataset motions (and their correction)",
        extra=lambda q: q.add_argument(
            "--out", default="out/motion.gif", help="a .gif or .png (default: out/motion.gif)"
        ),
        presets=(),
        adapter=SHARED_SEED,
    )
    add_command(
        msub,
        "dataset",
        ds.Config,
        _dataset,
        help="figure of one motion per class",
        out="out/motion_dataset",
        extra=lambda q: q.add_argument(
            "--backend", choices=ph.BACKENDS, help="ignored (kept for old scripts)"
        ),
        presets=(),
    )


# ------------------------------------------------------------------ the loop


def loop_config(args):
    """The loop config ``scsc motion`` flags describe (``sims.common.config.from_args``
    with ``LOOP_FLAGS``); every value validated (ValueError) up front."""
    from sims.motion.config import Config

    return config.from_args(args, Config)


def _loop(cfg, args) -> int:
    mode = args._preset
    if mode is None:
        raise ValueError(
            "scsc motion needs a loop mode (--quick, --long, --full) or a subcommand "
            "(demo, drift, render, dataset)"
        )
    out = Path(args.out or f"out/motion_{mode}")
    if args.watchdog is not None:
        return watchdog.supervise(watchdog.command_without_watchdog(), out, args.watchdog)
    print(
        f"motion --{mode}: runs (n, λ, seed) = {list(cfg.runs)}, "
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
