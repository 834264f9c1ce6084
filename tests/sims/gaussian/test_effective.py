"""sims.gaussian.effective: run → report, and ``scsc effective-gamma`` (smoke sizes)."""

import pytest

from sims import cli
from sims.common import results
from sims.gaussian import effective


@pytest.mark.heavy
def test_effective_gamma_of_gaussian_correctors(tmp_path):
    cfg = effective.Config.smoke(corrections=("ideal", "identity"), n=500)
    res = effective.run(cfg)
    rows = {r["correction"]: r for r in res.data["rows"]}
    lo, hi = rows["ideal"]["ci"]
    assert lo <= 1.0 <= hi and rows["ideal"]["identifiable"]
    assert rows["identity"]["gamma_hat"] == pytest.approx(0.0, abs=1e-6)
    argv = ["effective-gamma", "--corrections", "ideal", "--gammas", "1", "--n", "400"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 0
    assert results.read_json(tmp_path / "effective_gamma.json")["rows"][0]["identifiable"]
    payload = effective.report(res, tmp_path / "api")
    assert payload["config"]["corrections"] == ["ideal", "identity"]
    assert "identity" in effective.table(res)


def test_deprecated_main_warns_and_delegates(monkeypatch):
    monkeypatch.setattr(effective, "run", lambda cfg: results.Results(cfg, {"rows": []}, 0.0))
    with pytest.warns(DeprecationWarning, match="effective.main"):
        assert effective.main(effective.Config.smoke()) == {"rows": []}


def test_effective_gamma_validation():
    with pytest.raises(ValueError, match="multiple"):
        effective.Config(n=1001)
    with pytest.raises(ValueError, match="correction"):
        effective.Config(corrections=("kmeans",))
    with pytest.raises(ValueError, match="criterion"):
        effective.Config(criterion="l2")
