"""MJX engine of the correctors: no LAPACK call in the jitted correction on CPU (the XLA:CPU
thread-pool deadlock, ``sims.motion.engine``), and parity of the ``id`` tracker's MJX backend
with its C backend.

One jitted MJX ``id`` correction of 2 motions × 12 frames is shared by the module: its
lowering is checked for LAPACK calls and the same trace is compiled (≈ 1–2 min on the shared
2-core CPU) for the parity test. The ``pd`` corrector's lowering is checked on test_mjx.py's
jitted step. The repeated-call hang regression at the loop's shapes is
``test_mjx_correction_never_hangs`` (slow).
"""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.motion import engine
from sims.motion import humanoid as hm
from sims.motion import physics as ph
from sims.motion import representation as rep

FRAMES = 12
# Parity over 0.55 s (11 frames): float32 MJX with CG vs float64 C MuJoCo with Newton, both
# converged; measured 6e-5 rad / 8e-6 m on an Intel CPU and, with 20 CG iterations, 1.1e-4 rad
# on AMD Zen 1 (15 iterations: 0.016 rad there). The PD tracker's test allows 0.02 rad / 5 mm.
PARITY_RAD = 0.005
PARITY_M = 0.002


def test_dense_newton_mjx_step_does_call_lapack(assert_no_lapack):
    """The LAPACK check can fail: MJX's own dense Newton step lowers to LAPACK Cholesky."""
    from mujoco import mjx

    mx = engine.device_model("pd", hm.CORRECTOR, lapack=True)
    d = hm.to_float32(mjx.make_data(mx)).replace(qpos=jnp.asarray(hm.rest_qpos(), jnp.float32))
    lowered = jax.jit(jax.vmap(lambda q: engine.step(mx, d.replace(qpos=q)))).lower(
        jnp.stack([d.qpos, d.qpos])
    )
    with pytest.raises(AssertionError):
        assert_no_lapack(lowered)


@pytest.fixture(scope="module")
def refs(smoke_data):
    idx = [int(np.flatnonzero(smoke_data["labels"] == c)[0]) for c in (2, 6)]  # squat, march
    return jnp.asarray(rep.to_features(smoke_data["qpos"][idx, :FRAMES]), jnp.float32)


@pytest.fixture(scope="module")
def correct_id():
    """The jitted MJX ``id`` correction (γ = ∞) the module lowers once and compiles once."""
    return jax.jit(lambda x: ph.correct_motion(jax.random.key(0), x, backend="mjx", corrector="id"))


def test_id_mjx_correction_lowers_without_lapack(correct_id, refs, assert_no_lapack):
    assert_no_lapack(correct_id.lower(refs))


def test_id_mjx_matches_c_backend(correct_id, refs):
    out_mjx, info_mjx = correct_id(refs)
    out_c, info_c = ph.correct_motion(jax.random.key(0), refs, backend="mujoco", corrector="id")
    assert out_mjx.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out_mjx)))
    q_mjx, q_c = np.asarray(rep.to_qpos(out_mjx)), np.asarray(rep.to_qpos(out_c))
    assert np.abs(q_mjx[..., 7:] - q_c[..., 7:]).max() < PARITY_RAD
    assert np.abs(q_mjx[..., :3] - q_c[..., :3]).max() < PARITY_M
    for name in ("fell", "dropped", "corrected"):
        np.testing.assert_array_equal(info_mjx[name], info_c[name])
    np.testing.assert_allclose(info_mjx["residual_force"], info_c["residual_force"], atol=0.01)
    # It did track (the simulation is not the reference copied through).
    assert bool(np.all(info_c["corrected"]))
    assert np.abs(q_c - np.asarray(rep.to_qpos(refs))).max() > 1e-5


@pytest.mark.slow
def test_mjx_correction_never_hangs(tmp_path):
    """The loop's MJX correction shapes (64 motions × 60 frames), jitted, called repeatedly,
    each call under a timeout (a hang cannot be interrupted in-process: a child process
    runs ``benchmarks/mjx_hang.py``). Before the fix, this hung on the first call."""
    script = Path(__file__).parents[3] / "benchmarks" / "mjx_hang.py"
    out = tmp_path / "hang.json"
    cmd = [sys.executable, str(script), "--calls", "12", "--timeout", "300", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    import json

    res = json.loads(out.read_text())
    assert res["hangs"] == 0 and res["completed"] == 12 * len(res["correctors"])
