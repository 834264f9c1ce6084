"""Motion physics engine on the C MuJoCo backend and in NumPy (fast path of the default run).

MJX-specific tests (backend parity, compile-once, jit/vmap) are in test_motion_mjx.py.
Shapes are shared (9 motions × 40 frames) so each jitted function compiles once.
"""

import math
from importlib import metadata, resources

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from sims.motion import corrupt as cr
from sims.motion import dataset as ds
from sims.motion import humanoid as hm
from sims.motion import metrics as mt
from sims.motion import physics as ph
from sims.motion import representation as rep

# Idempotence bounds: correcting a valid dataset motion moves hinges by < 0.15 rad RMS and
# the root by < 5 cm on average (the corrector's servos are softer than the ground truth's).
IDEMPOTENT_JOINT_RAD = 0.15
IDEMPOTENT_ROOT_M = 0.05
# MuJoCo contacts are soft (solref 15 ms): a loaded foot sinks a few millimetres, and the
# root residual may press down by up to half the body weight, so correction may add up to
# this much mean penetration (mm).
SOFT_CONTACT_MM = 3.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCSC_CACHE", str(tmp_path_factory.mktemp("cache")))
        first = ds.load(ds.Config.smoke())
        again = ds.load(ds.Config.smoke())  # from the cache
    np.testing.assert_array_equal(again["qpos"], first["qpos"])
    return first


@pytest.fixture(scope="module")
def batch(data):
    """One motion per class, qpos [9, 40, 28]."""
    idx = [int(np.flatnonzero(data["labels"] == c)[0]) for c in range(len(ds.CLASSES))]
    return jnp.asarray(data["qpos"][idx])


@pytest.fixture(scope="module")
def corrected(batch):
    return ph.simulate(batch, backend="mujoco")


def test_model_source_licence_and_shape():
    licences = [f for f in metadata.files("mujoco-mjx") if "LICENSE" in f.name.upper()]
    assert licences and "Apache" in licences[0].read_text()
    assert (resources.files("mujoco.mjx") / "test_data/humanoid/humanoid.xml").is_file()
    m = hm.build_model()
    assert (m.nq, m.nv, m.nu) == (28, 27, 27)
    assert math.isclose(m.body_subtreemass[1], 40.84, abs_tol=0.05)
    for settings in (hm.CORRECTOR, hm.GROUND_TRUTH):
        mm = hm.build_model(settings)
        pos = [mm.actuator(f"residual_pos_{a}").id for a in "xyz"]
        bound = mm.actuator_forcerange[pos, 1]
        assert np.all(bound < hm.body_weight(settings))  # floating must stay correctable
        assert mm.opt.timestep == settings.timestep
    assert hm.CORRECTOR != hm.GROUND_TRUTH


@pytest.mark.parametrize(
    "kwargs, name",
    [({"residual_force": 1.2}, "residual_force"), ({"timestep": 0.007}, "timestep")],
)
def test_settings_reject_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        hm.Settings(**kwargs)


def test_features_round_trip():
    rng = np.random.default_rng(0)
    q = np.tile(hm.rest_qpos(), (3, 25, 1))
    quat = rng.normal(size=(3, 25, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat *= np.sign(quat[..., :1])
    q[..., 3:7] = quat
    q[..., :2] = np.cumsum(rng.normal(size=(3, 25, 2)) * 0.05, axis=1)
    q[..., 7:] += 0.2 * rng.normal(size=(3, 25, 21))
    f = rep.to_features(jnp.asarray(q, jnp.float32))
    assert f.shape == (3, 25, rep.N_FEATURES)
    back = np.asarray(rep.to_qpos(f))
    want = q.copy()
    want[..., :2] -= q[:, :1, :2]  # features start at the ground origin
    np.testing.assert_allclose(back, want, atol=2e-5)


def test_forward_kinematics_matches_c_mujoco():
    m = hm.build_model()
    d = mujoco.MjData(m)
    rng = np.random.default_rng(1)
    lo, hi = hm.joint_ranges().T
    qs = np.tile(hm.rest_qpos(), (4, 1))
    qs[:, 7:] = rng.uniform(lo, hi, (4, 21))
    fk = hm.forward_kinematics(jnp.asarray(qs))
    for q, body, sites in zip(qs, fk["body"], fk["sites"], strict=True):
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(body, d.xpos, atol=1e-5)
        np.testing.assert_allclose(sites, d.site_xpos[list(hm.keypoint_site_ids())], atol=1e-5)


def test_dataset_classes_texts_determinism_and_cache(data):
    cfg = ds.Config.smoke()
    assert data["qpos"].shape == (cfg.n, cfg.frames, 28)
    assert data["features"].shape == (cfg.n, cfg.frames, rep.N_FEATURES)
    assert set(data["labels"].tolist()) == set(range(len(ds.CLASSES)))
    assert len(set(data["texts"].tolist())) > len(ds.CLASSES)
    # Determinism of the drawing and the kinematic references (cheap to redo).
    rng = np.random.default_rng(cfg.seed)
    p = ds.sample_params(rng, cfg.n, cfg.frames)
    np.testing.assert_array_equal(p["cls"], data["labels"])
    np.testing.assert_allclose(ds.make_reference(p, 0, cfg.frames), data["reference"][0], atol=1e-6)
    # The data are the simulation, not the kinematic reference.
    assert np.abs(data["qpos"] - data["reference"]).max() > 1e-3


def test_dataset_config_validation():
    with pytest.raises(ValueError, match="n must"):
        ds.Config(n=0)
    with pytest.raises(ValueError, match="frames must"):
        ds.Config(frames=5)


def test_metrics_on_constructed_motions():
    frames = 40
    still = np.tile(hm.rest_qpos(), (1, frames, 1)).astype(np.float32)
    sunk = still.copy()
    sunk[..., 2] -= 0.05
    lifted = still.copy()
    lifted[..., 2] += 0.15
    sliding = still.copy()
    sliding[..., 0] += 0.2 * np.arange(frames) / hm.FPS  # 0.2 m/s, feet on the floor
    m = mt.plausibility(jnp.asarray(np.concatenate([still, sunk, lifted, sliding])))
    np.testing.assert_allclose(m["penetration"], [0, 50, 0, 0], atol=0.05)
    np.testing.assert_allclose(m["floating"], [0, 0, 150 - 5, 0], atol=0.05)
    np.testing.assert_allclose(m["skating"], [0, 0, 0, 200 / hm.FPS], atol=0.05)
    np.testing.assert_allclose(m["skating_ratio"], [0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(m["jerk"][:3], 0, atol=1e-3)
    np.testing.assert_allclose(m["phys_err"], m["penetration"] + m["floating"] + m["skating"])


def test_ground_truth_is_plausible_but_not_perfect(batch):
    s = mt.summarize(mt.plausibility(batch))
    assert s["fell_rate"] == 0
    assert s["penetration"] < SOFT_CONTACT_MM and s["floating"] < 1.0
    assert s["skating"] < 5.0


def test_correction_is_near_idempotent_on_valid_motions(batch, corrected):
    sim, info = corrected
    assert not np.any(info["fell"])
    assert float(jnp.mean(info["joint_error"])) < IDEMPOTENT_JOINT_RAD
    assert float(jnp.mean(info["root_error"])) < IDEMPOTENT_ROOT_M
    before = mt.summarize(mt.plausibility(batch))
    after = mt.summarize(mt.plausibility(sim))
    assert after["phys_err"] < before["phys_err"] + SOFT_CONTACT_MM


@pytest.mark.parametrize("kind", cr.CORRUPTIONS)
def test_correction_reduces_the_matching_metric(batch, kind):
    bad = cr.corrupt(jax.random.key(3), batch, kind)
    sim, info = ph.simulate(bad, backend="mujoco")
    metric = cr.MATCHING_METRIC[kind]
    before, after = mt.plausibility(bad), mt.plausibility(sim)
    assert float(jnp.mean(after[metric])) < 0.5 * float(jnp.mean(before[metric]))
    # Penetration never grows by more than the soft-contact depth.
    assert (
        float(jnp.mean(after["penetration"]))
        <= float(jnp.mean(before["penetration"])) + SOFT_CONTACT_MM
    )
    assert not np.any(info["fell"])


def test_corrector_interface_gamma_and_mask(batch):
    x = rep.to_features(batch)
    key = jax.random.key(0)
    ident = ph.make_corrector(0.0, backend="mujoco")(key, x)
    np.testing.assert_array_equal(ident, x)  # γ = 0: nothing corrected
    full, info = ph.correct_motion(key, x, backend="mujoco")
    assert bool(jnp.all(info["corrected"]))
    assert float(jnp.max(jnp.abs(full - x))) > 1e-3
    mask = jnp.arange(9) < 4
    out = ph.make_corrector(backend="mujoco")(key, x.reshape(9, -1), mask=mask)
    assert out.shape == (9, 40 * rep.N_FEATURES)
    np.testing.assert_array_equal(out.reshape(x.shape)[4:], x[4:])
    np.testing.assert_allclose(out.reshape(x.shape)[:4], full[:4], atol=1e-6)
    # γ = 1: about half corrected, decided per motion by the key.
    _, info = ph.correct_motion(
        jax.random.key(5), jnp.tile(x, (4, 1, 1))[:9], 1.0, backend="mujoco"
    )
    assert 0 < int(jnp.sum(info["corrected"])) < 9


def test_fallen_motion_keeps_its_input(batch):
    lying = np.array(batch)
    lying[0, :, 3:7] = [math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0]  # pitched 90°
    lying[0, :, 2] = 0.2
    x = rep.to_features(jnp.asarray(lying))
    out, info = ph.correct_motion(jax.random.key(0), x, backend="mujoco")
    assert bool(info["fell"][0]) and not bool(info["corrected"][0])
    np.testing.assert_array_equal(out[0], x[0])


def test_simulate_rejects_bad_input():
    with pytest.raises(ValueError, match="backend"):
        ph.simulate(jnp.zeros((1, 5, 28)), backend="warp")
    with pytest.raises(ValueError, match="shape"):
        ph.simulate(jnp.zeros((5, 28)))


def test_cli_rejects_bad_arguments_before_work(capsys):
    from sims import cli

    assert cli.main(["motion", "demo", "--per-class", "0", "--out", "/nonexistent/x"]) == 2
    assert "per_class must" in capsys.readouterr().err
    assert cli.main(["motion", "render", "--n", "0"]) == 2
    assert "n must" in capsys.readouterr().err
    assert cli.main(["motion", "render", "--index", "99", "--n", "18", "--frames", "40"]) == 2
    assert "index must" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_demo_and_render_smoke(tmp_path, monkeypatch):
    """``scsc motion demo --smoke`` and ``render`` end to end (≈ 2 min: data + compiles)."""
    import json

    from sims import cli

    monkeypatch.setenv("SCSC_CACHE", str(tmp_path / "cache"))
    assert cli.main(["motion", "demo", "--smoke", "--no-gif", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "correction_demo.json").read_text())
    for kind, metric in cr.MATCHING_METRIC.items():
        entry = out["corruptions"][kind]
        assert set(entry["before"]) == set(entry["after"]) >= {metric, "phys_err", "fell_rate"}
        assert entry["after"][metric] < entry["before"][metric]
    assert (tmp_path / "motion_correction.png").stat().st_size > 20_000
    args = ["motion", "render", "--n", "18", "--frames", "40", "--index", "0"]
    png = tmp_path / "r.png"
    assert cli.main([*args, "--corruption", "sink", "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000


def test_plausibility_gamma_of_the_physics_corrector(data):
    """Sunk motions vs clean ones: the corrector moves them most of the way (large γ̂);
    clean vs clean is not identifiable."""
    from sims.motion import effective as mg

    q = jnp.asarray(data["qpos"])
    half = q.shape[0] // 2
    model, target = q[:half], q[half : 2 * half]
    sunk = cr.corrupt(jax.random.key(0), model, "sink")
    r = mg.plausibility_gamma(jax.random.key(1), sunk, target, n_boot=100)
    assert bool(r.identifiable) and float(r.ci[0]) > 3.0, r.message
    same = mg.plausibility_gamma(jax.random.key(2), model, target, n_boot=20)
    assert not bool(same.identifiable) and np.isnan(float(same.gamma))
