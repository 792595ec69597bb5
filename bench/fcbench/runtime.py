"""Thread counts for a fair comparison (fastconv, NumPy's OpenBLAS, PyTorch) and Winograd on for
one call."""

from __future__ import annotations

import ctypes
import glob
import os

import fastconv
import numpy as np


def set_blas_threads(n: int) -> bool:
    """Sets NumPy's OpenBLAS thread count (scipy-openblas builds and plain OpenBLAS)."""
    libdirs = [os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")]
    libdirs.append(os.path.join(os.path.dirname(np.__file__), ".libs"))
    for d in libdirs:
        for path in glob.glob(os.path.join(d, "*openblas*")):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in (
                "scipy_openblas_set_num_threads64_",
                "openblas_set_num_threads64_",
                "openblas_set_num_threads",
            ):
                if hasattr(lib, name):
                    getattr(lib, name)(ctypes.c_int(n))
                    return True
    return False


def torch_or_none():
    """The torch module, or None when it is not importable."""
    try:
        import torch
    except Exception:
        return None
    return torch


def setup_torch(threads: int):
    """PyTorch at its best settings for this comparison; returns torch or None."""
    torch = torch_or_none()
    if torch is None:
        return None
    from fcbench.baselines.pytorch import torch_at_best

    return torch_at_best(torch, threads)


def configure(threads: int = 0):
    """The same thread count for fastconv, NumPy's BLAS and PyTorch (0: fastconv's count).

    Returns (threads, whether the BLAS count could be set, torch or None)."""
    threads = threads or fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    blas_ok = set_blas_threads(threads)
    return threads, blas_ok, setup_torch(threads)


def with_winograd(fn):
    """fn run with fastconv's opt-in Winograd F(2x2, 3x3) switched on (restored after)."""

    def call():
        previous = fastconv.winograd_enabled()
        fastconv.set_winograd(True)
        try:
            return fn()
        finally:
            fastconv.set_winograd(previous)

    return call


def has_winograd() -> bool:
    return hasattr(fastconv, "set_winograd")
