"""``scsc``: every command and flag still there, smoke runs, bad values rejected up front."""

import argparse
import json
import subprocess
import sys

import jax
import pytest

from sims import cli
from sims.common import config
from sims.gaussian import bounds, effective, phase, toy, workflows
from sims.imperfect import report as imperfect

# Every (sub)command and its flags before the CLI was generated from the Configs (scsc
# 0.1.0, commit 1f46e3b). Flags may be added; none may disappear.
FLAGS_BEFORE = {
    "": [],
    "bound": ["--lam", "--gamma", "--kappa", "--t", "--tau", "--err0", "--json"],
    "gaussian-toy": [
        "--correction",
        "--workflow",
        "--gammas",
        "--generations",
        "--seeds",
        "--n-real",
        "--lam",
        "--out",
        "--no-panels",
    ],
    "phase": [
        "--workflow",
        "--n-lam",
        "--n-gamma",
        "--seeds",
        "--generations",
        "--n-real",
        "--dim",
        "--batch-size",
        "--lam-max",
        "--gamma-min",
        "--gamma-max",
        "--kappa",
        "--displacement",
        "--collapse-tol",
        "--out",
    ],
    "workflows": ["--gammas", "--lam", "--seeds", "--generations", "--n-real", "--dim", "--out"],
    "effective-gamma": [
        "--corrections",
        "--gammas",
        "--n",
        "--batch-size",
        "--displacement",
        "--criterion",
        "--seed",
        "--out",
    ],
    "digits": [
        "--quick",
        "--long",
        "--full",
        "--smoke",
        "--out",
        "--resume",
        "--generations",
        "--lams",
        "--gamma",
        "--mnist-path",
        "--seed",
        "--no-progress",
    ],
    "motion": [
        "--quick",
        "--long",
        "--full",
        "--smoke",
        "--out",
        "--resume",
        "--generations",
        "--n",
        "--lams",
        "--seeds",
        "--gamma",
        "--physics",
        "--no-progress",
        "--watchdog",
        "--corrector",
        "--compare-pd",
        "--no-compare-pd",
    ],
    "motion demo": [
        "--n",
        "--frames",
        "--seed",
        "--backend",
        "--per-class",
        "--out",
        "--no-gif",
        "--smoke",
    ],
    "motion drift": ["--corrector", "--passes", "--n", "--backend", "--out", "--smoke"],
    "motion render": [
        "--n",
        "--frames",
        "--seed",
        "--backend",
        "--index",
        "--corruption",
        "--stride",
        "--out",
    ],
    "motion dataset": ["--n", "--frames", "--seed", "--backend", "--out"],
    "figures": ["--out"],
    # Added after 0.1.0 (issue 13): frozen from here on.
    "imperfect": [
        "--smoke",
        "--quick",
        "--n-real",
        "--lam",
        "--gamma",
        "--n-gamma",
        "--gamma-min",
        "--gamma-max",
        "--n-bias",
        "--bias-max",
        "--n-lam",
        "--lam-min",
        "--lam-max",
        "--n-shrink",
        "--shrink-max",
        "--replace-shrink-min",
        "--seeds",
        "--generations",
        "--seed",
        "--batch-size",
        "--real",
        "--n-boot",
        "--figures",
        "--misspecified",
        "--out",
    ],
}
CHOICES_BEFORE = {
    ("gaussian-toy", "--correction"): {"ideal", "histogram", "histogram-reference", "identity"},
    ("gaussian-toy", "--workflow"): {"augment", "replace", "accumulate", "toy"},
    ("phase", "--workflow"): {"augment", "accumulate", "replace"},
    ("effective-gamma", "--criterion"): {"energy", "ks"},
    ("motion", "--physics"): {"mjx", "mujoco"},
    ("motion", "--corrector"): {"id", "pd"},
    ("motion demo", "--backend"): {"mjx", "mujoco"},
    ("motion render", "--backend"): {"mjx", "mujoco"},
    ("motion drift", "--backend"): {"mjx", "mujoco"},
}


def _commands(p: argparse.ArgumentParser, path=()):
    """(path, parser) for the top level and every (nested) subcommand."""
    yield " ".join(path), p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                yield from _commands(sp, (*path, name))


COMMANDS = dict(_commands(cli.parser()))


def _exit(argv) -> int:
    """``scsc argv``'s exit status (argparse errors raise SystemExit, others return)."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


def test_no_command_or_flag_disappeared():
    assert set(FLAGS_BEFORE) <= set(COMMANDS)
    for name, flags in FLAGS_BEFORE.items():
        now = {s for a in COMMANDS[name]._actions for s in a.option_strings}
        assert set(flags) <= now, (name, set(flags) - now)
    for (name, flag), choices in CHOICES_BEFORE.items():
        action = next(a for a in COMMANDS[name]._actions if flag in a.option_strings)
        assert choices <= set(action.choices), (name, flag, choices - set(action.choices))


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=lambda n: n or "scsc")
def test_help(name, capsys):
    assert _exit([*name.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: scsc") and "--help" in out


def _parse(argv):
    args = cli.parser().parse_args(argv)
    return config.from_args(args)


def test_defaults_and_flag_meanings_are_unchanged():
    """No flag given: the Config defaults (what every command used before); flags keep
    their meaning (a seed count or a seed list, comma lists, presets then overrides)."""
    assert _parse(["gaussian-toy"]) == toy.Config()
    assert _parse(["phase"]) == phase.Config()
    assert _parse(["workflows"]) == workflows.Config()
    assert _parse(["effective-gamma"]) == effective.Config()
    assert _parse(["gaussian-toy", "--seeds", "32"]).seeds == tuple(range(32))
    assert _parse(["gaussian-toy", "--seeds", "0,5,7"]).seeds == (0, 5, 7)
    assert _parse(["gaussian-toy", "--gammas", "0,0.1,inf"]).gammas == (0.0, 0.1, float("inf"))
    assert _parse(["gaussian-toy", "--init-offset", "none"]).init_offset is None
    assert _parse(["gaussian-toy", "--init-offset", "2"]).init_offset == 2.0
    ec = _parse(["effective-gamma", "--corrections", "ideal,identity", "--n", "400"])
    assert ec.corrections == ("ideal", "identity") and ec.n == 400
    assert cli.parser().parse_args(["gaussian-toy", "--no-panels"]).no_panels
    assert _parse(["phase", "--smoke"]) == phase.Config.smoke()
    assert _parse(["phase", "--smoke", "--seeds", "8"]) == phase.Config.smoke(seeds=8)
    assert _parse(["phase", "--quick"]) == phase.Config.quick()
    assert _parse(["bound", "--lam", "0.3", "--gamma", "inf"]) == bounds.Query(0.3, float("inf"))


def test_motion_defaults_and_flag_meanings_are_unchanged():
    """scsc motion: presets, the adapters (runs = n × λ × seeds, pd_runs, a shared
    --seed) and every subcommand's defaults as before the CLI was generated."""
    from sims.motion import cli as motion_cli
    from sims.motion import dataset as ds
    from sims.motion import demo, drift
    from sims.motion.config import Config

    for mode in ("quick", "long", "full", "smoke"):
        assert _parse(["motion", f"--{mode}"]) == getattr(Config, mode)()
    cfg = _parse(["motion", "--quick", "--n", "64,128", "--lams", "0.5", "--seeds", "3"])
    assert cfg.runs == ((64, 0.5, 3), (128, 0.5, 3)) and cfg.pd_runs == ()
    assert _parse(["motion", "--long", "--no-compare-pd"]).pd_runs == ()
    assert _parse(["motion", "--quick", "--physics", "mujoco"]).backend == "mujoco"
    assert _parse(["motion", "demo"]) == demo.Config()
    assert _parse(["motion", "demo", "--smoke"]) == demo.Config.smoke()
    d = _parse(["motion", "demo", "--n", "200", "--frames", "40", "--seed", "3"])
    assert d == demo.Config(dataset=ds.Config(n=200, frames=40, seed=3), seed=3)
    assert _parse(["motion", "drift"]) == drift.Config()
    assert _parse(["motion", "drift", "--smoke"]) == drift.Config.smoke()
    args = cli.parser().parse_args(["motion", "drift", "--corrector", "id,pd"])
    assert args.correctors == ("id", "pd")
    r = _parse(["motion", "render", "--index", "3", "5", "--corruption", "slide"])
    assert r == motion_cli.RenderConfig(index=(3, 5), corruption="slide")
    assert _parse(["motion", "dataset", "--n", "30"]) == ds.Config(n=30)
    args = cli.parser().parse_args(["motion", "--long", "--watchdog", "900"])
    assert args.watchdog == 900 and args._preset == "long" and args.out is None


def test_bound_json():
    # A fresh process: the CLI must switch float64 on itself (tests run in float32).
    args = ["bound", "--lam", "0.3", "--gamma", "1", "--t", "50", "--tau", "0.01", "--err0", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "sims.cli", *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert abs(out["threshold"] - 2 / 3) < 1e-15 and out["is_stable"]
    assert abs(out["contraction"] - (0.3 / 0.7) / 2) < 1e-15  # float64, not float32
    c = 3 / 14
    assert abs(out["bound"] - (0.01 * sum(c**i for i in range(51)) + c**50)) < 1e-15


_COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, *a, **k: _COMPILES.append(event) if event.startswith("/jax/core/compile") else 0
)

# (argv, text the error message must contain): out-of-range values (the Config's own
# validation) and unparsable ones (argparse), for every command.
BAD = [
    (["bound", "--lam", "-0.3", "--gamma", "1"], "lam must lie in [0, inf)"),
    (["bound", "--lam", "0.3", "--gamma", "-1"], "gamma must lie in [0, inf]"),
    (["bound", "--lam", "0.3", "--gamma", "1", "--t", "5"], "t, tau and err0 go together"),
    (
        ["bound", "--lam", "0.3", "--gamma", "1", "--t", "-1", "--tau", "0", "--err0", "1"],
        "t must be a non-negative integer",
    ),
    (["bound", "--gamma", "1"], "--lam"),
    (["gaussian-toy", "--generations", "0"], "generations must be an integer >= 1"),
    (["gaussian-toy", "--seeds", "0"], "seeds must be >= 1"),
    (["gaussian-toy", "--seeds", "3,-1"], "seeds must be non-negative integers"),
    (["gaussian-toy", "--seeds", "a"], "seeds must be a count or a comma list"),
    (["gaussian-toy", "--gammas", "0,-1"], "gammas must lie in [0, inf]"),
    (["gaussian-toy", "--gammas", "0,x"], "--gammas"),
    (["gaussian-toy", "--workflow", "freshest"], "--workflow"),
    (["gaussian-toy", "--lam", "0.01"], "lam * n_real must be >= 1"),
    (["gaussian-toy", "--delta", "1"], "delta must lie in (0, 1)"),
    (["gaussian-toy", "--init-cov-scale", "0"], "init_cov_scale"),
    (["phase", "--n-gamma", "1"], "n_gamma must be >= 2"),
    (["phase", "--seeds", "1"], "seeds must be >= 2"),
    (["phase", "--gamma-min", "0"], "gamma_min"),
    (["phase", "--collapse-tol", "2"], "collapse_tol must lie in (0, 1)"),
    (["phase", "--generations", "3"], "generations must be >= 4"),
    (["phase", "--kappa", "-1"], "kappa must lie in [0, inf)"),
    (["phase", "--n-lam", "2.5"], "--n-lam"),
    (["phase", "--workflow", "toy"], "--workflow"),
    (["workflows", "--lam", "-0.5"], "lam must lie in [0, inf)"),
    (["workflows", "--seeds", "1"], "seeds must be >= 2"),
    (["workflows", "--n-real", "abc"], "--n-real"),
    (["effective-gamma", "--corrections", "ideal,kmeans"], "corrections must be each one of"),
    (["effective-gamma", "--n", "1001"], "multiple of batch_size"),
    (["effective-gamma", "--criterion", "l2"], "--criterion"),
    (["effective-gamma", "--displacement", "-1"], "displacement must lie in [0, inf)"),
    (["imperfect", "--seeds", "1"], "seeds must be >= 2"),
    (["imperfect", "--real", "gaussian,physics"], "real must be each one of"),
    (["imperfect", "--gamma-min", "0"], "gamma_min"),
    (["imperfect", "--generations", "3"], "generations must be >= 4"),
    (["imperfect", "--n-boot", "5"], "n_boot must be >= 10"),
    (["imperfect", "--bias-max", "-1"], "bias_max must lie in [0, inf)"),
    (["imperfect", "--misspecified", "full"], "--misspecified"),
    (["digits", "--smoke", "--lams", "a"], "lams"),
    (["digits", "--smoke", "--seed", "-1"], "seed"),
    (["motion", "--smoke", "--lams", "a"], "lams"),
    (["motion", "--smoke", "--generations", "x"], "--generations"),
    (["motion"], "needs a loop mode"),
    (["motion", "--quick", "--n", "0"], "n must be an integer >= 1"),
    (["motion", "--quick", "--n", "64", "--seeds", "-1"], "seed must be a non-negative"),
    (["motion", "--quick", "--gamma", "-1"], "gamma must lie in [0, inf]"),
    (["motion", "--quick", "--physics", "gpu"], "--physics"),
    (["motion", "--long", "--corrector", "pd", "--compare-pd"], "same chain"),
    (["motion", "--quick", "--n-test", "8"], "n_test must be >= 32"),
    (["motion", "demo", "--per-class", "100"], "per_class"),
    (["motion", "demo", "--frames", "10"], "frames must be an integer in [20, 400]"),
    (["motion", "demo", "--correctors", "id,zz"], "correctors must be each one of"),
    (["motion", "drift", "--corrector", "xyz"], "--corrector"),
    (["motion", "drift", "--n", "8"], "n must be >= 32"),
    (["motion", "render", "--index", "600"], "index must lie in [0, n)"),
    (["motion", "render", "--corruption", "bogus"], "--corruption"),
    (["motion", "dataset", "--seed", "-2"], "seed must be a non-negative integer"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_exit_2_naming_the_parameter_before_any_compilation(argv, message, capsys):
    del _COMPILES[:]
    assert _exit(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not _COMPILES, _COMPILES


def test_gaussian_toy_smoke(tmp_path):
    args = ["gaussian-toy", "--smoke", "--generations", "6", "--seeds", "2", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    data = json.loads((tmp_path / "gaussian_toy.json").read_text())
    assert len(data["w2_mean"]) == 2 and len(data["w2_mean"][0]) == 7
    assert data["config"]["seeds"] == [0, 1] and set(data["panels"]) == set(
        toy.panel_configs(toy.Config())
    )
    assert (tmp_path / "fig2_gaussian_toy.png").stat().st_size > 10_000


def test_gaussian_toy_no_panels(tmp_path):
    args = ["gaussian-toy", "--smoke", "--generations", "6", "--seeds", "0,5", "--no-panels"]
    assert cli.main([*args, "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "gaussian_toy.json").read_text())
    assert "panels" not in data and data["config"]["seeds"] == [0, 5]
    assert not (tmp_path / "fig2_gaussian_toy.png").exists()


HEAVY = pytest.mark.heavy  # phase-diagram and workflow runs: in make test, not make test-fast


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("phase", marks=HEAVY),
        pytest.param("workflows", marks=HEAVY),
        pytest.param("effective-gamma", marks=HEAVY),
        pytest.param("imperfect", marks=HEAVY),  # ~25 s: maps, estimates, misspecified map
    ],
)
def test_smoke_commands(name, tmp_path, capsys):
    assert cli.main([name, "--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    files = {
        "phase": phase.FILES,
        "workflows": workflows.FILES,
        "effective-gamma": effective.FILES,
        "imperfect": imperfect.FILES,
    }
    for f in files[name]:
        assert (tmp_path / f).stat().st_size > 0 and f"wrote {tmp_path / f}" in out


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["digits", "--smoke"], ["motion", "--smoke"]])
def test_learned_model_smoke_commands(argv, tmp_path):
    """The digits and motion loops' smoke variants through ``scsc`` (minutes: slow)."""
    assert cli.main([*argv, "--no-progress", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "results.json").exists()


def test_bounds_figure_keeps_the_callers_precision(tmp_path):
    """bounds.run computes in float64 without switching the rest of the process to it."""
    with jax.enable_x64(False):
        res = bounds.run(bounds.Config())
        payload = bounds.report(res, tmp_path)
        assert not jax.config.jax_enable_x64
    assert (tmp_path / "bounds.png").stat().st_size > 20_000
    assert abs(res.data["threshold_table"]["kappa=0"]["1"] - 2 / 3) < 1e-15  # not float32
    assert res.data["examples"]["uniform"]["kappa"] > 0
    assert payload["provenance"]["x64"]  # records how the numbers were computed


def test_deprecated_cli_functions_warn_and_delegate(monkeypatch, tmp_path):
    calls = []
    for name in ("_gaussian_toy", "_phase", "_workflows", "_effective_gamma", "_bounds_figure"):
        monkeypatch.setattr(cli, name, lambda *a, name=name, **k: calls.append(name) or {})
    cfg = object()
    with pytest.warns(DeprecationWarning, match="run_gaussian_toy"):
        cli.run_gaussian_toy(cfg, tmp_path, panels=False)
    for old in ("run_phase", "run_workflows", "run_effective_gamma"):
        with pytest.warns(DeprecationWarning, match=old):
            getattr(cli, old)(cfg, tmp_path)
    with pytest.warns(DeprecationWarning, match="run_bounds"):
        cli.run_bounds(tmp_path)
    assert calls == ["_gaussian_toy", "_phase", "_workflows", "_effective_gamma", "_bounds_figure"]


def test_config_generator_rejects_what_it_cannot_parse():
    """A field type without a parser is a clear error when the command is built."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Odd:
        x: dict = dataclasses.field(default_factory=dict)

    with pytest.raises(TypeError, match="parse="):
        config.add_arguments(argparse.ArgumentParser(), Odd)
