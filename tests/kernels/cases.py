"""The kernel tests' shared case grids: every conv2d stride x padding x dilation x kernel
combination and every pooling size x stride x padding one, with their cached inputs and float64
reference outputs (the conv, pooling, output-shape and reference-vs-PyTorch tests share them)."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import reference as ref
from checks import ints

STRIDES = [1, 2, 3, (1, 2), (2, 1)]
PADDINGS = ["valid", "same"]
DILATIONS = [1, 2, (1, 2), (2, 1)]
KERNELS = [(1, 1), (3, 3), (5, 5), (2, 3)]
CINS = [1, 3, 1, 3, 2, 5, 8, 17]
COUTS = [1, 3, 5, 10, 17, 31, 33, 64]
BATCHES = [1, 3, 4, 5]


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """One conv2d problem: an NHWC input, a (kh, kw, cin, cout) kernel and its arguments."""

    n: int
    h: int
    w: int
    cin: int
    cout: int
    k: tuple
    strides: object = 1
    padding: str = "valid"
    dilation: object = 1
    bias: bool = True

    @property
    def id(self):
        return (
            f"n{self.n}-{self.h}x{self.w}x{self.cin}-k{self.k[0]}x{self.k[1]}x{self.cout}"
            f"-s{self.strides}-{self.padding}-d{self.dilation}".replace(" ", "")
        )

    @property
    def kw(self):
        """fastconv.ops' keyword arguments."""
        return dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation)

    @property
    def rkw(self):
        """tests/reference.py's keyword arguments."""
        return dict(strides=self.strides, padding=self.padding, dilation=self.dilation)


def _conv_cases():
    cases = []
    for i, (s, p, d, k) in enumerate(itertools.product(STRIDES, PADDINGS, DILATIONS, KERNELS)):
        r = np.random.default_rng(1000 + i)
        dh, dw = ref.pair(d)
        lo_h = (k[0] - 1) * dh + 1 if p == "valid" else 1
        lo_w = (k[1] - 1) * dw + 1 if p == "valid" else 1
        h = int(r.integers(lo_h, max(13, lo_h + 3) + 1))
        w = int(r.integers(lo_w, max(13, lo_w + 3) + 1))
        cin, cout = CINS[i % len(CINS)], COUTS[(i // 3) % len(COUTS)]
        cases.append(ConvCase(BATCHES[i % 4], h, w, cin, cout, k, s, p, d, bias=(i % 5 != 4)))
    extra = [
        # kernel larger than the image under 'same'; 1x1 images; channel counts around SIMD widths
        ConvCase(2, 3, 3, 3, 5, (5, 5), 1, "same", 1),
        ConvCase(1, 1, 1, 1, 1, (3, 3), 1, "same", 1),
        ConvCase(3, 1, 1, 3, 10, (1, 1), 1, "valid", 1),
        ConvCase(1, 2, 7, 3, 17, (3, 3), 2, "same", 2),
        ConvCase(2, 7, 9, 17, 31, (3, 3), 1, "same", 1),
        ConvCase(2, 6, 5, 33, 33, (3, 3), 1, "valid", 1),
        ConvCase(1, 9, 9, 64, 65, (3, 3), 2, "same", 1),
        ConvCase(2, 8, 8, 31, 16, (2, 2), 2, "valid", 1),
        ConvCase(1, 13, 12, 7, 129, (1, 1), 3, "same", 1),
        ConvCase(5, 11, 4, 1, 32, (5, 5), (3, 1), "same", 2),
        # 4 channels (RGBA), the most the few-channel paths take; a row shorter than their blocks
        ConvCase(2, 9, 8, 4, 20, (3, 3), 1, "same", 1),
        ConvCase(3, 6, 17, 4, 7, (1, 2), 1, "valid", 1),
        ConvCase(2, 5, 3, 1, 40, (3, 3), 1, "same", (1, 2)),
    ]
    return cases + extra


CONV_CASES = _conv_cases()


def conv_params(indices=None):
    """pytest.mark.parametrize arguments over CONV_CASES (all, or the given indices)."""
    indices = range(len(CONV_CASES)) if indices is None else list(indices)
    return dict(argvalues=indices, ids=[CONV_CASES[i].id for i in indices])


@functools.cache
def conv_case_data(i, integer=False):
    """Inputs and float64 reference outputs of CONV_CASES[i] (cached across ISA runs)."""
    c = CONV_CASES[i]
    r = np.random.default_rng(5000 + i + (100000 if integer else 0))
    gen = (lambda s: ints(r, s)) if integer else (lambda s: r.standard_normal(s, np.float32))
    x = gen((c.n, c.h, c.w, c.cin))
    k = gen((*c.k, c.cin, c.cout))
    b = gen((c.cout,)) if c.bias else None
    y = ref.conv2d(x, k, b, **c.rkw)
    dy = gen(y.shape)
    grads = ref.conv2d_grad(x, k, dy, **c.rkw)
    return x, k, b, y, dy, grads


POOL_SIZES = [1, 2, 3, (2, 3), (9, 8)]  # (9, 8): more cells than the run kernels keep on the stack
POOL_STRIDES = [None, 1, 2, 3, (1, 2)]
POOL_CHANNELS = [1, 3, 5, 17, 33, 64]


@dataclasses.dataclass(frozen=True)
class PoolCase:
    """One pooling problem: an NHWC input and the window arguments."""

    n: int
    h: int
    w: int
    c: int
    pool_size: object = 2
    strides: object = None
    padding: str = "valid"

    @property
    def id(self):
        return (
            f"n{self.n}-{self.h}x{self.w}x{self.c}-p{self.pool_size}-s{self.strides}"
            f"-{self.padding}".replace(" ", "")
        )

    @property
    def kw(self):
        """The keyword arguments of fastconv.ops' and the reference's pools alike."""
        return dict(pool_size=self.pool_size, strides=self.strides, padding=self.padding)


def _pool_cases():
    cases = []
    for i, (p, s, pad) in enumerate(itertools.product(POOL_SIZES, POOL_STRIDES, PADDINGS)):
        r = np.random.default_rng(300 + i)
        ph, pw = ref.pair(p)
        lo_h, lo_w = (ph, pw) if pad == "valid" else (1, 1)
        h, w = int(r.integers(lo_h, 14)), int(r.integers(lo_w, 14))
        cases.append(
            PoolCase(BATCHES[i % 4], h, w, POOL_CHANNELS[i % len(POOL_CHANNELS)], p, s, pad)
        )
    return cases


POOL_CASES = _pool_cases()


def pool_params(indices=None):
    """pytest.mark.parametrize arguments over POOL_CASES (all, or the given indices)."""
    indices = range(len(POOL_CASES)) if indices is None else list(indices)
    return dict(argvalues=indices, ids=[POOL_CASES[i].id for i in indices])


@functools.cache
def pool_case_data(i):
    c = POOL_CASES[i]
    r = np.random.default_rng(7000 + i)
    x = r.standard_normal((c.n, c.h, c.w, c.c), np.float32)
    oh, ow = ref.pool_output_shape((c.h, c.w), c.pool_size, c.strides, c.padding)
    dy = r.standard_normal((c.n, oh, ow, c.c), np.float32)
    return x, dy
