"""Data adapters: in-memory arrays and datasets/generators, as batches of (x, y).

Arrays are validated once and sliced (or gathered in shuffled order) per batch; datasets and
generators are read as they come and each batch is validated by the trainer.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _random, distribution

__all__ = ["ArrayData", "IterData", "as_array", "is_array_like", "unpack_batch"]


def is_array_like(x):
    return isinstance(x, (np.ndarray, list)) or (
        hasattr(x, "__array__") and not hasattr(x, "__next__")
    )


def as_array(x, what):
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"`{what}` must be a numeric array (int, uint, float or bool); received dtype "
            f"{a.dtype}."
        )
    return a


class ArrayData:
    """Batches of in-memory arrays (targets already validated and converted)."""

    def __init__(self, x, y, batch_size, shuffle=False, shard=False):
        self.x, self.y = x, y
        self.n = len(x)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shard = shard  # data-parallel: yield this process's part of each global batch
        self.steps = max(1, math.ceil(self.n / batch_size))

    def __iter__(self):
        perm = _random.get_rng().permutation(self.n) if self.shuffle else None
        if self.shard:
            perm = distribution.broadcast_order(perm)
        bs = self.batch_size
        for s in range(self.steps):
            lo, hi = s * bs, min(self.n, (s + 1) * bs)
            if self.shard:
                lo, hi = distribution.local_range(lo, hi)
            if perm is None:
                sel = slice(lo, hi)
                xb = self.x[sel]
                yb = None if self.y is None else self.y[sel]
            else:
                idx = np.sort(perm[lo:hi])  # sorted: cache-friendlier gathers
                xb = self.x.take(idx, axis=0)
                yb = None if self.y is None else self.y.take(idx, axis=0)
            yield np.ascontiguousarray(xb, dtype=np.float32), yb


class IterData:
    """Batches from a dataset object (``__iter__``, maybe ``__len__``) or a Python generator."""

    def __init__(self, obj, steps=None, shard=False):
        self.obj = obj
        self.shard = shard  # data-parallel: yield this process's part of each global batch
        self.is_iterator = hasattr(obj, "__next__")
        self._it = obj if self.is_iterator else None
        if steps is None and not self.is_iterator:
            try:
                steps = len(obj)
            except TypeError:
                steps = None
        self.steps = steps
        self.exhausted = False

    def __iter__(self):
        source = self._it if self.is_iterator else self.obj
        it = distribution.local_batches(source) if self.shard else iter(source)
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(it)
            except StopIteration:
                if self.is_iterator:
                    self.exhausted = True
                return
            count += 1
            yield unpack_batch(batch)


def unpack_batch(batch):
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 3:
            if batch[2] is not None:
                raise ValueError("fastconv does not support sample weights in dataset batches")
            return batch[0], batch[1]
        raise ValueError(
            f"A dataset batch must be `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`; "
            f"received a sequence of length {len(batch)}."
        )
    if isinstance(batch, dict):
        raise ValueError("fastconv does not support dict batches; yield (x, y) tuples")
    return batch, None
