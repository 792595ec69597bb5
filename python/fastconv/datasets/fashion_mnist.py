"""Fashion-MNIST (Zalando Research, MIT license), read from the standard IDX files.

Same files, search order and download rules as :mod:`fastconv.datasets.mnist`, with the
directory name ``fashion_mnist`` (``fashion-mnist`` is accepted too: Debian's package
``dataset-fashion-mnist`` installs the four gz files in ``/usr/share/datasets/fashion-mnist/``).
"""

from __future__ import annotations

import os

import numpy as np

from . import _idx

NAME = "fashion_mnist"
DIR_NAMES = ("fashion_mnist", "fashion-mnist")

#: Zalando's own download location (the links of the data set's README).
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

#: SHA-256 of Zalando's gz files (MD5 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd... as in
#: their README; the SHA-256 values are the ones TensorFlow Datasets pins).
SHA256 = dict(
    zip(
        _idx.FILE_NAMES,
        (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",  # train-images
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",  # train-labels
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",  # t10k-images
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",  # t10k-labels
        ),
    )
)

#: SHA-256 of the decompressed IDX files, computed from Debian's dataset-fashion-mnist files
#: (which are recompressed, so their gz hashes differ; their content is the original).
RAW_SHA256 = dict(
    zip(
        _idx.FILE_NAMES,
        (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # train-images
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # train-labels
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # t10k-images
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # t10k-labels
        ),
    )
)


def load_data(
    path: str | os.PathLike | None = None, base_url: str | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), as ``keras.datasets.fashion_mnist``."""
    return _idx.load_mnist_family(
        NAME,
        DIR_NAMES,
        path,
        _idx.resolve_base_url(base_url, BASE_URL, NAME),
        SHA256,
        RAW_SHA256,
    )
