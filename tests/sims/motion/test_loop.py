"""The motion generator and self-consuming loop (sims.motion.generator / loop / cli).

One smoke run of the whole loop (four arms) is shared by the module; the resume test reuses
its compiled functions. It corrects with the C backend (``backend="mujoco"``, a
``pure_callback`` inside the jitted step): the MJX backend compiles each corrector into the
step (≈ 70–80 s per arm on 2 CPU cores) and runs it slower, and the arms, diagnostics and
resume under test do not depend on the backend. The default MJX step is compiled and run
in the ``slow`` case of ``test_jitted_step_outputs``; MJX vs C parity of both correctors is
in test_engine.py and test_mjx.py.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sims.common import optim, watchdog
from sims.common.diffusion import posterior_sample, respaced_timesteps
from sims.motion import cli as motion_cli
from sims.motion import dataset as ds
from sims.motion import evaluator as ev_mod
from sims.motion import generator as gen
from sims.motion import loop, report

MJX_CFG = loop.Config.smoke()
CFG = dataclasses.replace(MJX_CFG, backend="mujoco")


@pytest.fixture(scope="module")
def smoke_run(motion_cache, tmp_path_factory):
    """The smoke loop (four arms), recording which tracker each traced corrector uses."""
    from sims.motion import physics

    out = tmp_path_factory.mktemp("motion_run")
    make, seen = physics.make_corrector, []

    def spy(gamma, **kw):
        seen.append(kw["corrector"])
        return make(gamma, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(physics, "make_corrector", spy)
    try:
        payload = report.run_loop(CFG, out, progress=False)
    finally:
        mp.undo()
    return out, payload, seen


# ------------------------------------------------------------------ generator


def test_cosine_schedule_and_respacing():
    ab = gen.cosine_alpha_bar(1000)
    assert ab.shape == (1000,) and np.all(np.diff(ab) < 0) and 0 < ab[-1] < ab[0] < 1
    ts = respaced_timesteps(1000, 25)
    assert ts[0] == 0 and ts[-1] == 999 and len(ts) == 25 and np.all(np.diff(ts) > 0)
    # The reverse step's posterior: exact x̂₀ at the last step, Gaussian with DDPM's
    # posterior mean and variance before it (checked on 20,000 draws, 5 SE).
    key = jax.random.key(0)
    x, x0 = jnp.full((20_000,), 0.7, jnp.float32), jnp.full((20_000,), -0.4, jnp.float32)
    np.testing.assert_array_equal(posterior_sample(key, x, x0, 0.3, 1.0), x0)
    a, a_prev = 0.3, 0.6
    beta = 1 - a / a_prev
    mean = (np.sqrt(a_prev) * beta * -0.4 + np.sqrt(1 - beta) * (1 - a_prev) * 0.7) / (1 - a)
    var = beta * (1 - a_prev) / (1 - a)
    draw = np.asarray(posterior_sample(key, x, x0, a, a_prev), np.float64)
    assert abs(draw.mean() - mean) < 5 * np.sqrt(var / draw.size)
    assert abs(draw.var() - var) < 5 * var * np.sqrt(2 / draw.size)


def test_config_errors():
    with pytest.raises(ValueError, match="divisible"):
        gen.Config(width=10, heads=4)
    with pytest.raises(ValueError, match="sample_steps"):
        gen.Config(diffusion_steps=10, sample_steps=20)
    with pytest.raises(ValueError, match="training pool"):
        loop.Config(runs=((600, 1.0, 0),))
    with pytest.raises(ValueError, match="lam"):
        loop.Config(runs=((64, -1.0, 0),))
    with pytest.raises(ValueError, match="backend"):
        loop.Config(backend="bullet")
    with pytest.raises(ValueError, match="n_test"):
        loop.Config(n_test=8)


@pytest.mark.heavy
def test_generator_loss_decreases(motion_cache):
    # 36 motions of the smoke loop's dataset (generated once for the module and the loop).
    data = {k: v[:36] for k, v in ds.load(CFG.data).items() if k in ("features", "texts")}
    tok = ev_mod.Tokenizer.from_texts(data["texts"], 24)
    cfg = gen.Config.smoke()
    params, static = gen.init(cfg, tok.size, data["features"])
    ids, mask = tok.encode(data["texts"])
    ab = jnp.asarray(gen.cosine_alpha_bar(cfg.diffusion_steps), jnp.float32)
    opt = optax.adam(3e-3)
    x = jnp.asarray(data["features"], jnp.float32)
    valid = jnp.arange(36) < 30  # the last six rows are padding and must never be drawn
    x = x.at[30:].set(jnp.nan)
    params, _, losses = jax.jit(
        lambda p, k: gen.train_steps(
            p,
            opt.init(p),
            k,
            x,
            jnp.asarray(ids),
            jnp.asarray(mask),
            valid,
            static=static,
            optimizer=opt,
            steps=300,
            batch=16,
            alpha_bar=ab,
            cond_dropout=0.1,
        )
    )(params, jax.random.key(0))
    losses = np.asarray(losses)
    assert np.isfinite(losses).all()  # a NaN row drawn would poison the loss
    assert losses[-50:].mean() < 0.6 * losses[:50].mean()
    ts = jnp.asarray(respaced_timesteps(cfg.diffusion_steps, cfg.sample_steps))
    out = gen.sample(
        params,
        static,
        jax.random.key(1),
        jnp.asarray(ids[:5]),
        jnp.asarray(mask[:5]),
        alpha_bar=ab,
        timesteps=ts,
        guidance=2.5,
        frames=24,
    )
    assert out.shape == (5, 24, 30) and out.dtype == jnp.float32 and np.isfinite(out).all()


# ------------------------------------------------------------------ loop


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["mujoco", pytest.param("mjx", marks=pytest.mark.slow)])
def test_jitted_step_outputs(motion_cache, backend):
    """The loop step: sample, ``id`` correction of the valid rows, fine-tune.

    The C backend's step is the smoke run's (``make_step`` is cached per ``StepConfig``, so it
    compiles once per module). The default MJX step is ``slow`` (its compile alone is ≈ 80 s
    on 2 CPU cores); MJX ``id`` inside a caller's ``jit`` is tested in test_engine.py, MJX
    ``pd`` inside ``jit`` and ``vmap`` in test_mjx.py.
    """
    cfg = dataclasses.replace(MJX_CFG, backend=backend)
    assert cfg.corrector == "id" and MJX_CFG.backend == "mjx"
    s = loop.prepare(cfg)
    params, _ = gen.init(cfg.generator, s.tokenizer.size, s.data["features"][s.train_idx[:24]])
    opt = optim.adam(cfg.finetune_lr)
    k = 12
    step = loop.make_step(opt, loop.step_config(cfg, s, steps=cfg.finetune_steps, arm="corrected"))
    counts = loop.Counts(jnp.int32(24), jnp.int32(k), jnp.float32(np.inf))
    out = step(loop.Model(params, opt.init(params)), jax.random.key(3), s.arrays, counts)
    (new, _), losses, samples, synth, used, valid, corrected = out
    assert samples.shape == (CFG.n_test, CFG.data.frames, 30) and np.isfinite(samples).all()
    assert np.isfinite(np.asarray(losses)).all()
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(new))
    valid, corrected = np.asarray(valid), np.asarray(corrected)
    assert valid.sum() == k and not corrected[~valid].any()
    np.testing.assert_array_equal(np.asarray(used)[~valid], np.asarray(synth)[~valid])
    changed = np.any(np.asarray(used) != np.asarray(synth), axis=(1, 2))
    np.testing.assert_array_equal(changed, corrected)
    assert corrected.sum() >= k // 2  # generated motions rarely fall in the corrector


@pytest.mark.heavy
def test_smoke_run_payload_and_files(smoke_run):
    out, payload, _ = smoke_run
    res = payload["results"]["n=24,lam=1"]
    g = CFG.generations + 1
    assert list(res) == [*loop.ARMS, "corrected_pd"]
    for arm in res:
        for m in ("fid", "diversity", "matching", "phys_err"):
            assert len(res[arm][m]) == g and len(res[arm][f"{m}_ci"]) == g
            lo, hi = np.asarray(res[arm][f"{m}_ci"]).T
            assert np.all(lo <= hi)
        assert np.isfinite(res[arm]["fid"]).all()
    # Generation 0 is shared by the three arms.
    assert len({arms["fid"][0] for arms in res.values()}) == 1
    for arm in ("corrected", "corrected_pd"):
        diag = payload["diag"][f"n24_s0_lam1_{arm}"]
        assert all(d["corrected_fraction"] > 0.5 for d in diag[1:]), arm
        assert all(d["used_phys_err"] < d["synthetic_phys_err"] for d in diag[1:]), arm
    assert all(d["corrected_fraction"] == 0 for d in payload["diag"]["n24_s0_lam1_iterative"][1:])
    for name in ("results.json", "fig4_motion.png", "fig5_motion.png", "fig5_motion.npz"):
        assert (out / name).stat().st_size > 1000
    with np.load(out / "fig5_motion.npz") as z:
        assert {"iterative", "corrected", "corrected_pd"} <= set(z.files)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved) >= {"config", "provenance", "results", "corrector_drifts"}
    summary = report.loop_summary(payload)
    assert summary.count("FID") >= 4 and "corrector drift pd" in summary
    drift = payload["corrector_drift"]
    assert drift["passes"] == [0, 1, 2, 3, 4] and drift["joint_shift"][0] == 0
    assert np.isfinite(drift["phys_err"]).all()


@pytest.mark.heavy
def test_fourth_arm_is_corrected_by_the_pd_tracker(smoke_run):
    """``pd_runs`` adds ``corrected_pd``, traced with the pd tracker beside ``corrected``
    (id); its drift is reported beside the id tracker's, and pd moves real motions more."""
    _, payload, seen = smoke_run
    assert "pd" in seen and set(seen) <= {"id", "pd"}
    res = payload["results"]["n=24,lam=1"]
    assert res["corrected_pd"]["fid"][1:] != res["corrected"]["fid"][1:]
    drifts = payload["corrector_drifts"]
    assert set(drifts) == {"id", "pd"} and payload["corrector_drift"] == drifts["id"]
    assert drifts["pd"]["hinge_rms_change"][1] > drifts["id"]["hinge_rms_change"][1]


@pytest.mark.heavy
def test_checkpoint_samples_are_the_chains_samples(smoke_run, tmp_path):
    """``run.checkpoint_samples`` (no config needed) reads what the full template load reads."""
    from sims.common import checkpoint as ck
    from sims.motion import run

    out, _, _ = smoke_run
    exp = run.MotionLoop(CFG, run.prepare(CFG))
    files = sorted(out.rglob("*.npz"))
    chains = [f for f in files if "gen0" not in f.name and "fig5" not in f.name]
    assert chains, files
    for f in chains:
        want = ck.load(f, exp.template("")).arrays["samples"]
        np.testing.assert_array_equal(run.checkpoint_samples(f), want)
    (tmp_path / "x.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a motion-loop chain checkpoint"):
        run.checkpoint_samples(tmp_path / "x.npz")


def test_resume_equals_uninterrupted(smoke_run, tmp_path):
    _, payload, _ = smoke_run

    class Stop(Exception):
        pass

    def stop(name, t):
        if t == 2 and name.endswith("iterative"):
            raise Stop

    with pytest.raises(Stop):
        loop.run(CFG, tmp_path, progress=False, on_checkpoint=stop)
    with pytest.raises(ValueError, match="resume"):
        loop.run(CFG, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another config"):
        loop.run(dataclasses.replace(CFG, finetune_steps=6), tmp_path, resume=True, progress=False)
    resumed = loop.run(CFG, tmp_path, resume=True, progress=False)
    for arm in payload["results"]["n=24,lam=1"]:
        for m in ("fid", "diversity", "matching", "phys_err"):
            np.testing.assert_allclose(
                resumed["results"]["n=24,lam=1"][arm][m],
                payload["results"]["n=24,lam=1"][arm][m],
                rtol=1e-6,
                err_msg=f"{arm} {m}",
            )


def test_cli_modes_and_overrides():
    from sims.cli import parser

    args = parser().parse_args(
        [
            "motion",
            "--long",
            "--n",
            "64",
            "--lams",
            "0.5,1",
            "--seeds",
            "0,1",
            "--generations",
            "3",
            "--physics",
            "mujoco",
        ]
    )
    cfg = motion_cli.loop_config(args)
    assert cfg.runs == ((64, 0.5, 0), (64, 0.5, 1), (64, 1.0, 0), (64, 1.0, 1))
    assert cfg.generations == 3 and cfg.backend == "mujoco"
    # --long keeps its pd arm on the runs at n = 64, λ = 1 that remain.
    assert cfg.pd_runs == ((64, 1.0, 0), (64, 1.0, 1))
    long = loop.Config.long()
    assert long.pd_runs == ((64, 1.0, 0), (64, 1.0, 1), (64, 1.0, 2))
    every = motion_cli.loop_config(parser().parse_args(["motion", "--quick", "--compare-pd"]))
    assert every.pd_runs == every.runs
    pd = motion_cli.loop_config(parser().parse_args(["motion", "--long", "--corrector", "pd"]))
    assert pd.pd_runs == ()
    with pytest.raises(ValueError, match="subset of runs"):
        dataclasses.replace(CFG, pd_runs=((24, 0.5, 0),))
    with pytest.raises(ValueError, match="same chain"):
        dataclasses.replace(CFG, corrector="pd", pd_runs=CFG.runs)
    quick = motion_cli.loop_config(parser().parse_args(["motion", "--quick"]))
    assert quick.runs == ((64, 1.0, 0),) and quick.generations >= 5
    assert {(n, lam) for n, lam, _ in loop.Config.long().runs} >= {(64, 0.5), (64, 1.0)}
    with pytest.raises(ValueError, match="n must be"):
        motion_cli.loop_config(parser().parse_args(["motion", "--quick", "--n", "0"]))


def test_watchdog_restarts_a_stalled_run_with_resume(tmp_path):
    import sys

    # Stalls (no checkpoint) unless resumed; the resumed child exits 0.
    code = "import sys, time; time.sleep(0 if '--resume' in sys.argv else 60)"
    rc = watchdog.supervise([sys.executable, "-c", code], tmp_path, 1.0, poll_s=0.2)
    assert rc == 0
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert watchdog.supervise(failing, tmp_path, 5.0, poll_s=0.2) == 3  # not restarted
    with pytest.raises(ValueError, match="watchdog"):
        watchdog.supervise(failing, tmp_path, 0.0)
