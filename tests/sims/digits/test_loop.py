"""The digits loop end to end at smoke scale: finite metrics for every arm, and
checkpoint → kill → resume gives the same numbers as an uninterrupted run."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from sims.digits import loop, report


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("digits_cache")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("digits_full")
    return out, loop.run(loop.Config.smoke(), out, cache_dir=cache, progress=False)


@pytest.mark.heavy
def test_smoke_loop_has_finite_metrics_for_all_arms(uninterrupted):
    _, res = uninterrupted
    cfg = loop.Config.smoke()
    assert set(res["results"]) == {"0.5"}
    for arm in loop.ARMS:
        m = res["results"]["0.5"][arm]
        for key in loop.METRICS:
            v = np.asarray(m[key], float)
            assert len(v) == cfg.generations + 1 and np.all(np.isfinite(v)), (arm, key)
        lo, hi = np.asarray(m["fid_ci"]).T
        assert np.all(lo <= hi)
    # one shared generation-0 model: identical generation-0 metrics in every arm
    g0 = {arm: res["results"]["0.5"][arm]["fid"][0] for arm in loop.ARMS}
    assert len(set(g0.values())) == 1
    # the arms differ after generation 0
    assert (
        res["results"]["0.5"]["iterative"]["fid"][1] != res["results"]["0.5"]["corrected"]["fid"][1]
    )
    assert np.isfinite(res["floor"]["fid"])


@pytest.mark.heavy
def test_kill_then_resume_equals_uninterrupted(uninterrupted, tmp_path, cache):
    _, full = uninterrupted
    cfg = loop.Config.smoke()
    calls = []

    def kill(name, t):
        calls.append((name, t))
        if len(calls) == 4:  # 3 chains: the 4th checkpoint is mid-generation 2
            raise Killed

    with pytest.raises(Killed):
        loop.run(cfg, tmp_path, cache_dir=cache, progress=False, on_checkpoint=kill)
    metas = {p.stem: json.loads(bytes(np.load(p)["meta"]).decode())["t"]
             for p in (tmp_path / "chains").glob("*.npz")}  # fmt: skip
    assert sorted(metas.values()) == [1, 1, 2]  # killed with chains at different generations
    with pytest.raises(ValueError, match="--resume"):
        loop.run(cfg, tmp_path, cache_dir=cache, progress=False)
    resumed = loop.run(cfg, tmp_path, resume=True, cache_dir=cache, progress=False)
    assert resumed["results"] == full["results"]
    for name, (imgs, _) in full["final_samples"].items():
        np.testing.assert_array_equal(resumed["final_samples"][name][0], imgs)
    other = dataclasses.replace(cfg, k=3)
    with pytest.raises(ValueError, match="another config"):
        loop.run(other, tmp_path, resume=True, cache_dir=cache, progress=False)


def test_cli_validates_before_work(capsys):
    from sims import cli

    assert cli.main(["digits", "--quick", "--lams", "0.5,-1"]) == 2
    assert "lams" in capsys.readouterr().err
    assert cli.main(["digits", "--quick", "--generations", "0"]) == 2
    assert "generations" in capsys.readouterr().err
    assert cli.main(["digits", "--quick", "--mnist-path", "x.npz"]) == 2
    assert cli.main(["digits", "--full", "--gamma", "-1"]) == 2


@pytest.mark.slow  # a second smoke run; the notebook test covers the plotting in the default run
def test_cli_writes_results_and_figures(uninterrupted, tmp_path, cache):
    """The CLI's saving path on the smoke run: fig8 schema, samples, four PNGs, re-plot."""
    from sims.common import results

    cfg = loop.Config.smoke()
    payload = report.run_digits(cfg, tmp_path / "run", progress=False)
    data = results.read_json(tmp_path / "run" / "results.json")
    assert {"config", "provenance", "results"} <= set(data)
    arms = data["results"]["0.5"]
    assert set(arms) == set(loop.ARMS)
    assert all(set(m) == set(loop.METRICS) for m in arms.values())
    np.testing.assert_allclose(
        payload["results"]["0.5"]["baseline"]["fid"], arms["baseline"]["fid"], rtol=1e-5
    )
    for name in ("fig7_digits_centroids", "fig8_digits", "fig3_digits_samples"):
        assert (tmp_path / "run" / f"{name}.png").stat().st_size > 5_000
    paths = report.figures(tmp_path / "figs", run_dir=tmp_path / "run")
    assert len(paths) == 4 and (tmp_path / "figs" / "fig8_digits.json").exists()


def test_figures_without_saved_results_is_a_no_op(tmp_path, capsys):
    assert report.figures(tmp_path / "figs", run_dir=tmp_path / "none") == []
    assert "scsc digits --long" in capsys.readouterr().out


def test_mode_configs_are_valid():
    q, lg, f = loop.Config.quick(), loop.Config.long(), loop.Config.full()
    assert q.lams == (0.5, 1.5) and q.generations == 10 and q.source == "digits8"
    assert lg.lams == loop.PAPER_LAMS and lg.generations >= 25
    assert f.source == "mnist5k" and f.sample_steps == f.diffusion_steps == 400
    assert loop.Config.full("x.npz").source == "mnist"
    assert [c[0] for c in loop.chains(q)][:2] == ["baseline", "iterative_lam0.5"]
    assert loop.n_synth(0.2, 1000) == 200 and loop.n_synth(1.5, 999) == 1499


def test_effective_gamma_feature_plumbing(monkeypatch):
    """The estimator is handed a corrector mapping model features to corrected ones."""
    from sims.digits import effective

    rng = np.random.default_rng(0)
    fm, fc, fr = rng.normal(size=(20, 4)), rng.normal(size=(20, 4)), rng.normal(size=(15, 4))

    @dataclasses.dataclass
    class Fake:
        gamma: float
        criterion: str

    def fake(key, corrector, model, target, labels=None):
        out = corrector(key, model, labels)
        np.testing.assert_allclose(out, fc, rtol=1e-6)
        assert target.shape == (15, 4)
        return Fake(gamma=3.0, criterion="energy")

    monkeypatch.setattr(effective, "effective_gamma", fake)
    res = effective.effective_gamma_features(jax.random.key(0), fm, fc, fr)
    assert res == {"status": "ok", "gamma": 3.0, "criterion": "energy"}
