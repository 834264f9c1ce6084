"""MJX engine of the correctors: no LAPACK call in the jitted correction on CPU (the XLA:CPU
thread-pool deadlock, ``sims.motion.engine``), and parity of the ``id`` tracker's MJX backend
with its C backend.

The parity test compiles one jitted MJX correction of 2 motions × 12 frames (≈ 2 min on the
shared 2-core CPU); the lowering tests trace without compiling. The repeated-call hang
regression at the loop's shapes is ``test_mjx_correction_never_hangs`` (slow).
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
from sims.motion import tracking as tr

FRAMES = 12
# Parity over 0.55 s (11 frames): float32 MJX with CG vs float64 C MuJoCo with Newton, both
# converged; measured 6e-5 rad / 8e-6 m on an Intel CPU and, with 20 CG iterations, 1.1e-4 rad
# on AMD Zen 1 (15 iterations: 0.016 rad there). The PD tracker's test allows 0.02 rad / 5 mm.
PARITY_RAD = 0.005
PARITY_M = 0.002


def _lowered(corrector: str, shape=(2, FRAMES)) -> str:
    x = jnp.zeros((*shape, rep.N_FEATURES), jnp.float32)
    x = x.at[..., rep.ROT6D_SLICE].set(jnp.asarray([1.0, 0, 0, 0, 1, 0], jnp.float32))
    x = x.at[..., rep.HEIGHT].set(1.28)

    def f(x):
        return ph.correct_motion(jax.random.key(0), x, backend="mjx", corrector=corrector)

    return jax.jit(f).lower(x).as_text()


@pytest.mark.parametrize("corrector", ["id", "pd"])
def test_mjx_correction_lowers_without_lapack(corrector):
    """On CPU the jitted correction contains no LAPACK custom call (so no batched LAPACK
    kernel can starve XLA's intra-op pool): the sparse-Jacobian CG models and
    ``engine.step``'s sparse LDLᵀ."""
    assert jax.default_backend() == "cpu"
    text = _lowered(corrector)
    assert "custom_call" not in text or "lapack" not in text.lower()


def test_dense_newton_mjx_step_does_call_lapack():
    """The check above can fail: MJX's own dense Newton step lowers to LAPACK Cholesky."""
    from mujoco import mjx

    mx = engine.device_model("pd", hm.CORRECTOR, lapack=True)
    d = hm.to_float32(mjx.make_data(mx)).replace(qpos=jnp.asarray(hm.rest_qpos(), jnp.float32))
    text = (
        jax.jit(jax.vmap(lambda q: engine.step(mx, d.replace(qpos=q))))
        .lower(jnp.stack([d.qpos, d.qpos]))
        .as_text()
    )
    assert "lapack" in text.lower()


@pytest.fixture(scope="module")
def refs(smoke_data):
    idx = [int(np.flatnonzero(smoke_data["labels"] == c)[0]) for c in (2, 6)]  # squat, march
    return np.asarray(smoke_data["qpos"][idx, :FRAMES], np.float64)


def test_id_mjx_matches_c_backend(refs):
    sim_mjx, force_mjx, kept_mjx = jax.jit(lambda r: tr.simulate_mjx(r, hm.CORRECTOR))(
        jnp.asarray(refs, jnp.float32)
    )
    sim_c, force_c, kept_c = tr.simulate_mujoco_np(refs, hm.CORRECTOR)
    sim_mjx = np.asarray(sim_mjx)
    assert sim_mjx.dtype == np.float32 and np.isfinite(sim_mjx).all()
    assert np.abs(sim_mjx[..., 7:] - sim_c[..., 7:]).max() < PARITY_RAD
    assert np.abs(sim_mjx[..., :3] - sim_c[..., :3]).max() < PARITY_M
    np.testing.assert_array_equal(np.asarray(kept_mjx), kept_c)
    np.testing.assert_allclose(np.asarray(force_mjx), force_c, atol=0.01)
    # It did track (the simulation is not the reference copied through).
    assert np.abs(sim_c - refs).max() > 1e-5


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
