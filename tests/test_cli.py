import json
import subprocess
import sys

from sims import cli


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


def test_bound_bad_input_names_parameter(capsys):
    assert cli.main(["bound", "--lam", "-0.3", "--gamma", "1"]) == 2
    assert "lam must lie in [0, inf)" in capsys.readouterr().err


def test_gaussian_toy_smoke(tmp_path):
    args = [
        "gaussian-toy",
        "--generations",
        "6",
        "--seeds",
        "2",
        "--gammas",
        "0,1",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    data = json.loads((tmp_path / "gaussian_toy.json").read_text())
    assert len(data["w2_mean"]) == 2 and len(data["w2_mean"][0]) == 7
    assert (tmp_path / "fig2_gaussian_toy.png").stat().st_size > 10_000


def test_bounds_figure_keeps_the_callers_precision(tmp_path):
    """run_bounds computes in float64 without switching the rest of the process to it."""
    import jax

    with jax.enable_x64(False):
        res = cli.run_bounds(tmp_path)
        assert not jax.config.jax_enable_x64
    assert (tmp_path / "bounds.png").stat().st_size > 20_000
    assert abs(res["threshold_table"]["kappa=0"]["1"] - 2 / 3) < 1e-15  # float64, not float32
    assert res["examples"]["uniform"]["kappa"] > 0
