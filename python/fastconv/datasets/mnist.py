"""MNIST handwritten digits, read from the standard IDX files.

``load_data(path=None, base_url=None)`` looks for the four files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each with or
without ``.gz``) in ``path``, then ``$FASTCONV_DATA/mnist/``, ``~/.fastconv/datasets/mnist/``,
``~/.keras/datasets/mnist/`` and ``/usr/share/datasets/mnist/``, then reads a Keras user's
``~/.keras/datasets/mnist.npz`` (``$KERAS_HOME``; Keras' layout: x_train, y_train, x_test,
y_test); ``path`` may also name such a ``.npz`` file, as in Keras' ``load_data(path="mnist.npz")``.
Failing all, it downloads the gzipped files (through pooch, as ``keras.utils.get_file``) from
``base_url`` (else ``$FASTCONV_DATASET_MIRROR``, else :data:`BASE_URL`, PyTorch's public S3 copy
of Yann LeCun's files) into ``path`` (or ``~/.fastconv/datasets/mnist/``) and checks each file's
SHA-256.
"""

from __future__ import annotations

import os

import numpy as np

from . import _idx

NAME = "mnist"
DIR_NAMES = ("mnist",)
#: Keras' own copy of MNIST, where ``keras.datasets.mnist.load_data()`` caches it.
KERAS_NPZ = "mnist.npz"

#: Mirror of the original gzipped IDX files (the one torchvision uses). Another well-known
#: one is https://storage.googleapis.com/cvdf-datasets/mnist/ .
BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

#: SHA-256 of the original gz files as distributed by LeCun et al. (published by torchvision,
#: TensorFlow Datasets and others; sizes 9,912,422 / 28,881 / 1,648,877 / 4,542 bytes).
SHA256 = dict(
    zip(
        _idx.FILE_NAMES,
        (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # train-images
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # train-labels
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # t10k-images
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # t10k-labels
        ),
    )
)

#: SHA-256 of the decompressed IDX files, accepted when a mirror recompressed the same data.
RAW_SHA256 = dict(
    zip(
        _idx.FILE_NAMES,
        (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # train-images
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # train-labels
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # t10k-images
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # t10k-labels
        ),
    )
)


def load_data(
    path: str | os.PathLike | None = None, base_url: str | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), as ``keras.datasets.mnist``."""
    return _idx.load_mnist_family(
        NAME,
        DIR_NAMES,
        path,
        _idx.resolve_base_url(base_url, BASE_URL, NAME),
        SHA256,
        RAW_SHA256,
        npz_name=KERAS_NPZ,
    )
