"""Reuse of the large op outputs of a model's steps: the memory plan's allocator.

Each training or inference step makes the same outputs in the same order (activations,
gradients, losses), step after step. Allocated afresh, every large array is a new ``mmap``
whose pages the kernels then fault in (glibc hands arrays over 32 MB straight to the kernel and
back), which costs as much as a tenth of a step. A ``BufferPool`` keeps each buffer once its
last array is gone and hands it out again for the next output of the same size, so a steady-state
step allocates nothing large and faults no pages, whatever the malloc settings. Buffers no array
uses are shared by whatever output comes next, so memory stays at what one step holds at once.

A buffer is free when nothing refers to it but the pool: every array handed out is a view whose
``base`` is the buffer, so its reference count tells (NumPy keeps ``base`` at the owner, however
many views deep). An array a user keeps is therefore never handed out again while it lives.
Only the steps that a model runs inside ``pool.active()`` use it; other op calls allocate as
before.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from contextvars import ContextVar

import numpy as np

__all__ = ["BufferPool", "ALIGN", "aligned_empty"]

ALIGN = 64  # a cache line: the kernels stream large outputs to whole, aligned lines
POOLED_BYTES = 128 << 10  # glibc mmaps from 128 KiB up; smaller ones reuse its free lists
# getrefcount of a free buffer, seen from `_take`: the pool's list, the loop variable, the call
_FREE_REFCOUNT = 3

_active_pool: ContextVar[BufferPool | None] = ContextVar("fastconv_buffer_pool", default=None)


def _raw(nbytes: int) -> np.ndarray:
    return np.empty(nbytes + ALIGN, dtype=np.uint8)


def _view(raw: np.ndarray, nbytes: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def aligned_empty(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An uninitialised float32 (or ``dtype``) array on a 64-byte boundary: from the active
    pool inside a model's step, else newly allocated."""
    nbytes = np.dtype(dtype).itemsize * math.prod(shape)
    if nbytes < POOLED_BYTES:
        return np.empty(shape, dtype=dtype)
    pool = _active_pool.get()
    raw = pool._take(nbytes) if pool is not None else _raw(nbytes)
    return _view(raw, nbytes, shape, dtype)


class BufferPool:
    """Buffers of large float32 outputs, kept between steps and reused by size (see above)."""

    def __init__(self) -> None:
        self._by_size: dict[int, list[np.ndarray]] = {}
        self.allocations = 0  # buffers made: constant once steps repeat

    def _take(self, nbytes: int) -> np.ndarray:
        buffers = self._by_size.setdefault(nbytes, [])
        for raw in buffers:
            if sys.getrefcount(raw) == _FREE_REFCOUNT:
                return raw
        raw = _raw(nbytes)
        buffers.append(raw)
        self.allocations += 1
        return raw

    @contextlib.contextmanager
    def active(self) -> Iterator[BufferPool]:
        """Large op outputs inside the block come from (and return to) this pool."""
        token = _active_pool.set(self)
        try:
            yield self
        finally:
            _active_pool.reset(token)

    def release_free(self) -> int:
        """Return the buffers no array uses to the system; the bytes released."""
        released = 0
        for nbytes, buffers in list(self._by_size.items()):
            kept = []
            for raw in buffers:
                # the list, the loop variable and the call: the free count seen from here
                if sys.getrefcount(raw) == _FREE_REFCOUNT:
                    released += raw.nbytes
                else:
                    kept.append(raw)
            if kept:
                self._by_size[nbytes] = kept
            else:
                del self._by_size[nbytes]
        return released

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool, in use or free."""
        return sum(raw.nbytes for buffers in self._by_size.values() for raw in buffers)
