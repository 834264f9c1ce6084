import json

from sims import cli


def test_bound_json(capsys):
    assert (
        cli.main(
            [
                "bound",
                "--lam",
                "0.3",
                "--gamma",
                "1",
                "--t",
                "50",
                "--tau",
                "0.01",
                "--err0",
                "1",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert abs(out["threshold"] - 2 / 3) < 1e-6 and out["is_stable"]
    assert abs(out["contraction"] - (0.3 / 0.7) / 2) < 1e-6


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
