"""Motion–text evaluator (sims/motion/evaluator.py): training, cache, metrics, bad input.

One dataset (64 motions × 40 frames: every R-precision batch is full, and the physics
realisation pads to 64 anyway) and one trained smoke evaluator are shared by all tests.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.motion import dataset as ds
from sims.motion import evaluator as ev
from sims.motion import text

DATA = ds.Config(n=64, frames=40)
CFG = ev.Config.smoke()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCSC_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def data(cache):
    return ds.load(DATA)


@pytest.fixture(scope="module")
def trained(cache, data):
    return ev.load(DATA, CFG)


@pytest.fixture(scope="module")
def halves(data):
    """Two disjoint random halves of the real motions (32 each)."""
    idx = np.random.default_rng(1).permutation(DATA.n)
    return idx[:32], idx[32:]


def test_tokenizer_deterministic_padded_and_unknown_words():
    a = ev.Tokenizer.from_texts(["b a, c", "a d"], max_len=3)
    b = ev.Tokenizer.from_texts(["a d", "b a, c"], max_len=3)
    assert a == b and a.vocab == ("a", "b", "c", "d") and a.size == 6
    ids, mask = a.encode(["A d zz", "c b a d", ""])
    np.testing.assert_array_equal(ids, [[2, 5, text.UNK], [4, 3, 2], [text.UNK, 0, 0]])
    np.testing.assert_array_equal(mask, ids != text.PAD)
    assert ids.dtype == np.int32


@pytest.mark.heavy
def test_contrastive_loss_decreases(trained):
    losses = trained.losses
    assert losses.shape == (CFG.steps,) and np.isfinite(losses).all()
    assert losses[-20:].mean() < 0.25 * losses[:20].mean()


@pytest.mark.heavy
def test_networks_run_in_float32(trained):
    leaves = jax.tree_util.tree_leaves(trained.model)
    floats = [
        a for a in leaves if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.floating)
    ]
    assert floats and all(a.dtype == jnp.float32 for a in floats)


@pytest.mark.heavy
def test_cache_returns_identical_parameters(trained, cache):
    again = ev.load(DATA, CFG)
    for a, b in zip(
        jax.tree_util.tree_leaves(trained.model),
        jax.tree_util.tree_leaves(again.model),
        strict=True,
    ):
        if isinstance(a, jax.Array):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(again.losses, trained.losses)
    np.testing.assert_array_equal(again.centroids, trained.centroids)
    assert again.tokenizer == trained.tokenizer
    files = list((ds._cache_dir()).glob("evaluator_*.npz"))
    assert len(files) == 1 and not list(ds._cache_dir().glob("*.tmp*"))
    other = dataclasses.replace(CFG, seed=1)
    assert ev.content_hash(DATA, other) != ev.content_hash(DATA, CFG)


@pytest.mark.heavy
def test_embeddings_unit_norm(trained, data):
    mz = ev.embed_motions(trained, data["features"][:5])
    tz = ev.embed_texts(trained, data["texts"][:5])
    assert mz.shape == tz.shape == (5, CFG.latent)
    np.testing.assert_allclose(np.linalg.norm(mz, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(tz, axis=1), 1, atol=1e-5)


@pytest.mark.heavy
def test_metrics_on_real_data(trained, data):
    m = ev.evaluate(
        trained,
        jax.random.key(0),
        data["features"],
        data["texts"],
        data["labels"],
        data["features"],
    )
    assert m["finite"]
    for k in ("fid", "fid_floor", "diversity", "diversity_real", "matching", "class_accuracy"):
        assert np.isfinite(m[k]), k
    assert m["fid"] < 1e-6 and m["fid_ci"][0] <= m["fid"] <= m["fid_ci"][1]
    assert m["fid_floor_n"] == 32 and m["fid_floor"] > 0
    r = m["r_precision"]
    assert r[0] <= r[1] <= r[2]
    # Chance is 1/32 ≈ 0.03 (top-1) and 3/32 ≈ 0.09 (top-3).
    assert r[0] > 0.3 and r[2] > 0.6
    assert m["class_accuracy"] > 0.8


@pytest.mark.heavy
def test_fid_real_split_small_vs_corrupted_large(trained, data, halves):
    a, b = halves
    x = data["features"]
    real_b = ev.embed_motions(trained, x[b])
    floor = ev.fid(ev.embed_motions(trained, x[a]), real_b)
    rng = np.random.default_rng(2)
    noisy = x[a] + rng.normal(0, 0.3, x[a].shape).astype(np.float32)
    shuffled = np.stack([f[rng.permutation(len(f))] for f in x[a]])  # frames out of order
    for bad in (noisy, shuffled):
        assert ev.fid(ev.embed_motions(trained, bad), real_b) > 1.5 * floor
    # Mismatched texts: the same motions, so FID is unchanged but matching and R-precision fall.
    key = jax.random.key(3)
    texts, labels = data["texts"], data["labels"]
    good = ev.evaluate(trained, key, x, texts, labels, x)
    perm = np.roll(np.arange(DATA.n), 7)
    bad = ev.evaluate(trained, key, x[perm], texts, labels, x)
    assert bad["matching"] > good["matching"] + 0.2
    assert bad["r_precision"][0] < good["r_precision"][0] - 0.3
    assert bad["class_accuracy"] < good["class_accuracy"]


@pytest.mark.heavy
def test_non_finite_motions_are_a_result(trained, data):
    x = data["features"].copy()
    x[0, 3, 2] = np.nan
    m = ev.evaluate(trained, jax.random.key(0), x, data["texts"], data["labels"], data["features"])
    assert m["finite"] is False and np.isnan(m["fid"])


@pytest.mark.heavy
def test_same_key_same_numbers(trained, data):
    args = (data["features"], data["texts"], data["labels"], data["features"])
    m1 = ev.evaluate(trained, jax.random.key(5), *args, n_boot=20)
    m2 = ev.evaluate(trained, jax.random.key(5), *args, n_boot=20)
    assert m1 == m2


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"steps": 0}, "steps"),
        ({"batch": 1}, "batch"),
        ({"kernel": 4}, "kernel"),
        ({"lr": 0.0}, "lr"),
        ({"max_len": 0}, "max_len"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config_raises(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ev.Config(**kwargs)


@pytest.mark.heavy
def test_bad_inputs_raise(trained, data):
    x, t, y = data["features"], data["texts"], data["labels"]
    key = jax.random.key(0)
    cases = [
        ((x[..., :29], t, y, x), {}, "features"),
        ((x[:31], t[:31], y[:31], x), {}, "features"),
        ((x, t[:-1], y, x), {}, "texts"),
        ((x, t, y[:-1], x), {}, "labels"),
        ((x, t, y + 9, x), {}, "labels"),
        ((x, t, y, x[:3]), {}, "real_features"),
        ((x, t, y, x[..., :2]), {}, "real_features"),
        ((x, t, y, x), {"n_boot": 1}, "n_boot"),
    ]
    for args, kw, name in cases:
        with pytest.raises(ValueError, match=name):
            ev.evaluate(trained, key, *args, **kw)
    with pytest.raises(ValueError, match="features"):
        ev.train(x[:10], t[:10], y[:10], CFG)  # fewer motions than a batch
    with pytest.raises(ValueError, match="data_cfg"):
        ev.load(CFG, CFG)
    with pytest.raises(ValueError, match="max_len"):
        ev.Tokenizer.from_texts(["a"], max_len=0)


@pytest.mark.heavy
def test_plausibility_and_intervals(trained, data):
    x = data["features"]
    key = jax.random.key(4)
    good = ev.evaluate(trained, key, x, data["texts"], data["labels"], x, n_boot=30)
    for k in ("diversity", "matching", "phys_err"):
        lo, hi = good[f"{k}_ci"]
        assert lo <= good[k] <= hi, k
    assert good["phys_err"] < 5 and good["fell_rate"] == 0  # real motions: ~1 mm
    sunk = x.copy()
    sunk[..., 21] -= 0.08  # root height feature: the body sinks 8 cm into the floor
    bad = ev.evaluate(trained, key, sunk, data["texts"], data["labels"], x, n_boot=30)
    assert bad["penetration"] > 50 and bad["phys_err"] > bad["phys_err_ci"][0] > good["phys_err"]
