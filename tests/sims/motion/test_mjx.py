"""MJX backend of the PD tracker: parity with C MuJoCo, compile-once, use inside a caller's jit and
vmap, and no LAPACK call in its lowering (the feedforward tracker's MJX parity and lowering
are in test_engine.py).

One jitted function is compiled for the whole module (≈ 1–2 min on 2 CPU cores): the
issue-6 use, the physics corrector inside the caller's ``jit`` and ``vmap`` (over groups of
motions, here one group of 2 motions × 12 frames). Everything else reuses it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.motion import dataset as ds
from sims.motion import physics as ph
from sims.motion import representation as rep

FRAMES = 12
# Parity tolerance over 0.55 s: float32 (MJX) vs float64 (C) and MJX's own contact and
# solver code; contact is chaotic, so longer horizons drift apart (not a bug).
PARITY_JOINT_RAD = 0.02
PARITY_ROOT_M = 0.005


@pytest.fixture(scope="module")
def refs():
    rng = np.random.default_rng(4)
    p = ds.sample_params(rng, 18, FRAMES)
    idx = [int(np.flatnonzero(p["cls"] == ds.CLASSES.index(c))[0]) for c in ("wave", "squat")]
    p["amplitude"][:] = 1.0
    p["tempo"][:] = 1.2
    return jnp.asarray(np.stack([ds.make_reference(p, i, FRAMES) for i in idx]), jnp.float32)


@pytest.fixture(scope="module")
def step():
    """A caller's jitted step: vmap over groups, physics correction (MJX) of each group."""

    @jax.jit
    def step(keys, xs):
        return jax.vmap(lambda k, x: ph.correct_motion(k, x * 1.0, backend="mjx", corrector="pd"))(
            keys, xs
        )

    return step


@pytest.fixture(scope="module")
def mjx_result(step, refs):
    keys = jax.random.split(jax.random.key(0), 1)
    out, info = step(keys, rep.to_features(refs)[None])
    return out[0], jax.tree.map(lambda a: a[0], info)


def test_mjx_matches_c_mujoco(refs, mjx_result):
    out_mjx, info_mjx = mjx_result
    out_c, info_c = ph.correct_motion(
        jax.random.key(0), rep.to_features(refs), backend="mujoco", corrector="pd"
    )
    assert out_mjx.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out_mjx)))
    q_mjx, q_c = rep.to_qpos(out_mjx), rep.to_qpos(out_c)
    assert float(jnp.max(jnp.abs(q_mjx[..., 7:] - q_c[..., 7:]))) < PARITY_JOINT_RAD
    assert float(jnp.max(jnp.abs(q_mjx[..., :3] - q_c[..., :3]))) < PARITY_ROOT_M
    np.testing.assert_array_equal(info_mjx["fell"], info_c["fell"])
    np.testing.assert_allclose(info_mjx["residual_force"], info_c["residual_force"], atol=0.02)
    # The correction did something (the kinematic reference is not a fixed point).
    assert float(jnp.max(jnp.abs(q_mjx - refs))) > 1e-3


def test_pd_mjx_correction_lowers_without_lapack(step, refs, mjx_result, assert_no_lapack):
    del mjx_result  # traced already: lowering reuses the trace
    keys = jax.random.split(jax.random.key(0), 1)
    assert_no_lapack(step.lower(keys, rep.to_features(refs)[None]))


def test_batch_compiles_once(step, refs, mjx_result):
    del mjx_result  # compiled already
    x = rep.to_features(refs).at[:, :, 0].add(0.05)
    keys = jax.random.split(jax.random.key(1), 1)
    before = step._cache_size()
    out, info = step(keys, x[None])
    jax.block_until_ready(out)
    assert step._cache_size() == before == 1
    assert bool(jnp.all(info["corrected"]))  # γ = ∞
