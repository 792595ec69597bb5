"""The UCI handwritten digits (Alpaydin & Kaynak, CC BY 4.0), shipped inside the package.

1,797 images of 8x8 pixels in 0..16 (see ``data/DIGITS_ATTRIBUTION.txt``). ``load_data()``
resizes them bilinearly to 20x20, scales them to 0..255 and centres them in 28x28 like MNIST's
20x20 digits, then splits them (stratified, fixed seed) into 1,347 training and 450 test images,
returned exactly as :func:`fastconv.datasets.mnist.load_data` returns MNIST.

By default the training set also holds each training digit shifted by one pixel up, down, left
and right (6,735 images). With 1,347 digits alone, the lecture's recipe (5 epochs, batch 64) is
110 optimizer steps, too few to converge reliably: test accuracy measured 0.71 to 0.96 across
seeds; with the shifted copies, 0.98 to 0.99. ``shifted_copies=False`` gives the plain split.
The test set is never altered.
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

NUM_SAMPLES = 1797
NUM_TEST = 450
SPLIT_SEED = 1797
_DIGIT_SIZE = 20
_IMAGE_SIZE = 28

#: The shipped file: 1,797 rows of 64 pixels (0..16) and the label.
DATA_FILE = resources.files(__package__).joinpath("data", "digits.csv.gz")


def _load_raw():
    """The shipped file as (images (1797, 8, 8) uint8 in 0..16, labels (1797,) uint8)."""
    with DATA_FILE.open("rb") as f:
        table = np.loadtxt(gzip.open(f, "rt"), delimiter=",", dtype=np.int64)
    if table.shape != (NUM_SAMPLES, 65):
        raise ValueError(f"digits.csv.gz: expected a 1797x65 table, got {table.shape}")
    return table[:, :64].reshape(-1, 8, 8).astype(np.uint8), table[:, 64].astype(np.uint8)


def _bilinear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling with half-pixel centres (as Pillow and
    tf.image.resize do when enlarging), edges clamped."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def _to_mnist_like(images: np.ndarray) -> np.ndarray:
    """(n, 8, 8) in 0..16 -> (n, 28, 28) uint8 in 0..255, the digit in the central 20x20."""
    a = _bilinear_matrix(_DIGIT_SIZE, images.shape[1])
    big = np.einsum("ij,njk,lk->nil", a, images.astype(np.float64), a)  # A @ img @ A.T
    big = np.clip(np.rint(big * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    pad = (_IMAGE_SIZE - _DIGIT_SIZE) // 2
    out = np.zeros((len(images), _IMAGE_SIZE, _IMAGE_SIZE), np.uint8)
    out[:, pad : pad + _DIGIT_SIZE, pad : pad + _DIGIT_SIZE] = big
    return out


def _split_indices(labels: np.ndarray):
    """Deterministic stratified split: each class gives its share of the 450 test images
    (largest-remainder rounding); both parts are then shuffled."""
    rng = np.random.RandomState(SPLIT_SEED)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * NUM_TEST / len(labels)
    n_test = np.floor(quota).astype(int)
    short = NUM_TEST - n_test.sum()
    n_test[np.argsort(-(quota - n_test), kind="stable")[:short]] += 1
    train, test = [], []
    for c, k in zip(classes, n_test):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.append(idx[:k])
        train.append(idx[k:])
    train, test = np.concatenate(train), np.concatenate(test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def load_data(
    shifted_copies: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes
    (6735, 28, 28), (6735,), (450, 28, 28), (450,) (or 1,347 training images without the
    shifted copies); pixels 0..255, labels 0..9."""
    images, labels = _load_raw()
    x = _to_mnist_like(images)
    train, test = _split_indices(labels)
    x_train, y_train = x[train], labels[train]
    if shifted_copies:
        # The 4-pixel black border makes a 1-pixel roll a clean shift.
        copies = [np.roll(x_train, shift, axis=(1, 2)) for shift in SHIFTS]
        x_train = np.concatenate([x_train, *copies])
        y_train = np.tile(y_train, 1 + len(SHIFTS))
    return (x_train, y_train), (x[test], labels[test])
