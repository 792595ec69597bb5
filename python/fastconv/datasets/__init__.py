"""Data sets shaped as ``keras.datasets`` returns them.

- :mod:`~fastconv.datasets.mnist` and :mod:`~fastconv.datasets.fashion_mnist`: the standard IDX
  files, found locally or downloaded with a SHA-256 check.
- :mod:`~fastconv.datasets.digits`: the UCI handwritten digits, shipped inside the package and
  resized to MNIST's 28x28, so the main job needs no download.
"""

from . import digits, fashion_mnist, mnist

__all__ = ["digits", "fashion_mnist", "mnist"]
