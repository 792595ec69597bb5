"""ops.conv2d and ops.conv2d_grad against the float64 reference in tests/reference.py.

Every numeric test takes the `isa` fixture and so runs once per kernel path the machine has.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import reference as ref
from checks import assert_fd, check, check_all, check_exact
from fastconv import _core, ops

from kernels.cases import CONV_CASES, ConvCase, conv_case_data, conv_params

GRADS = ("dx", "dkernel", "dbias")

# ============================================================================================
# the grid of kernel, stride, padding and dilation combinations


@pytest.mark.parametrize("i", **conv_params())
def test_conv2d_forward(isa, i):
    x, k, b, y, _, _ = conv_case_data(i)
    check(ops.conv2d(x, k, b, **CONV_CASES[i].kw), y, what="conv2d")


@pytest.mark.parametrize("i", **conv_params())
def test_conv2d_grad(isa, i):
    x, k, _, _, dy, grads = conv_case_data(i)
    check_all(ops.conv2d_grad(x, k, dy, **CONV_CASES[i].kw), grads, GRADS)


@pytest.mark.parametrize("i", **conv_params(range(0, len(CONV_CASES), 7)))
def test_conv2d_exact_on_small_integers(isa, i):
    c = CONV_CASES[i]
    x, k, b, y, dy, grads = conv_case_data(i, integer=True)
    check_exact(ops.conv2d(x, k, b, **c.kw), y, "conv2d")
    for got, exp, name in zip(ops.conv2d_grad(x, k, dy, **c.kw), grads, GRADS):
        check_exact(got, exp, name)


@pytest.mark.parametrize("i", **conv_params(range(3, len(CONV_CASES), 11)))
def test_conv2d_fused_relu_and_need_dx(isa, i):
    c = CONV_CASES[i]
    x, k, b, y, dy, (dx, dk, db) = conv_case_data(i)
    fused = ops.conv2d(x, k, b, activation="relu", **c.kw)
    check(fused, ref.relu(y), what="fused relu vs reference")
    unfused = ops.relu(ops.conv2d(x, k, b, **c.kw))
    check(fused, unfused, tol=1e-6, what="fused relu vs relu(conv2d)")
    assert (fused >= 0).all()

    full = ops.conv2d_grad(x, k, dy, need_dx=True, **c.kw)
    part = ops.conv2d_grad(x, k, dy, need_dx=False, **c.kw)
    assert len(part) == 3 and part[0] is None
    check(part[1], full[1], tol=1e-6, what="dkernel with need_dx=False")
    check(part[2], full[2], tol=1e-6, what="dbias with need_dx=False")
    check(part[1], dk, what="dkernel")


FD_CONV = [5, 27, 58, 77, 101, 130, 151, len(CONV_CASES) - 1, len(CONV_CASES) - 7]


@pytest.mark.parametrize("i", **conv_params(FD_CONV))
def test_conv2d_grad_finite_differences(isa, i):
    c = CONV_CASES[i]
    x, k, b, _, dy, _ = conv_case_data(i)
    b = np.zeros(c.cout, np.float32) if b is None else b
    r = np.random.default_rng(i)
    gx, gk, gb = ops.conv2d_grad(x, k, dy, **c.kw)

    def loss(xx, kk, bb):
        return float((ref.conv2d(xx, kk, bb, **c.rkw) * dy).sum())

    vx, vk, vb = (r.standard_normal(a.shape) for a in (x, k, b))
    assert_fd(gx, lambda t: loss(t, k, b), x, vx, 1e-3, "dx")
    assert_fd(gk, lambda t: loss(x, t, b), k, vk, 1e-3, "dkernel")
    assert_fd(gb, lambda t: loss(x, k, t), b, vb, 1e-3, "dbias")


@pytest.mark.parametrize("i", range(0, len(CONV_CASES), 3))
def test_conv2d_output_shape(i):
    c = CONV_CASES[i]
    expected = ref.conv_output_shape((c.h, c.w), c.k, c.strides, c.padding, c.dilation)
    assert tuple(ops.conv2d_output_shape((c.h, c.w), c.k, **c.kw)) == expected
    assert tuple(ops.conv2d_output_shape((c.n, c.h, c.w, c.cin), c.k, **c.kw)) == expected
    assert conv_case_data(i)[3].shape[1:3] == expected


def test_conv2d_same_padding_puts_the_odd_pad_bottom_right(isa):
    # hand-computed: 2x2 ones kernel, 'same' on 3x3 -> pad 0 top/left, 1 bottom/right
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    k = np.ones((2, 2, 1, 1), np.float32)
    expected = np.array([[8, 12, 7], [20, 24, 13], [13, 15, 8]], np.float32).reshape(1, 3, 3, 1)
    check_exact(ops.conv2d(x, k, padding="same"), expected)
    # stride 2 on 4 wide, kernel 3: out 2, pad_total = (2-1)*2+3-4 = 1 -> 0 left, 1 right
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    k = np.zeros((3, 3, 1, 1), np.float32)
    k[0, 0] = 1  # picks the top-left cell of each window
    expected = np.array([[0, 2], [8, 10]], np.float32).reshape(1, 2, 2, 1)
    check_exact(ops.conv2d(x, k, strides=2, padding="same"), expected)


# ============================================================================================
# shapes off the grid: the lecture models' layers, unusual geometries, random ones

MNIST_CONV = [  # batch 64
    ConvCase(64, 28, 28, 1, 32, (3, 3)),
    ConvCase(64, 13, 13, 32, 64, (3, 3)),
    ConvCase(64, 5, 5, 64, 128, (3, 3)),
]
CATS_CONV = [  # batch 32 in the lecture, 2 here to stay fast
    ConvCase(2, 180, 180, 3, 32, (3, 3)),
    ConvCase(2, 89, 89, 32, 64, (3, 3)),
    ConvCase(2, 43, 43, 64, 128, (3, 3)),
    ConvCase(2, 20, 20, 128, 256, (3, 3)),
    ConvCase(2, 9, 9, 256, 256, (3, 3)),
]
LECTURE_CONV = MNIST_CONV + CATS_CONV


@functools.cache
def lecture_conv_data(i):
    c = LECTURE_CONV[i]
    r = np.random.default_rng(70 + i)
    x = r.standard_normal((c.n, c.h, c.w, c.cin), np.float32)
    k = (r.standard_normal((3, 3, c.cin, c.cout)) / np.sqrt(9 * c.cin)).astype(np.float32)
    b = r.standard_normal(c.cout, np.float32)
    y = ref.conv2d(x, k, b)
    dy = r.standard_normal(y.shape, np.float32)
    return x, k, b, y, dy, ref.conv2d_grad(x, k, dy)


@pytest.mark.parametrize(
    "i", range(len(LECTURE_CONV)), ids=[f"{c.h}x{c.cin}->{c.cout}" for c in LECTURE_CONV]
)
def test_lecture_conv_layers(isa, i):
    x, k, b, y, dy, grads = lecture_conv_data(i)
    check(ops.conv2d(x, k, b, activation="relu"), ref.relu(y), what="conv2d+relu")
    check_all(ops.conv2d_grad(x, k, dy), grads, GRADS)


UNUSUAL_CONV = [
    ConvCase(7, 1, 1, 3, 300, (1, 1)),  # 1x1 images, many filters
    ConvCase(1, 2, 3, 5, 300, (7, 7), 1, "same"),  # kernel much bigger than the image
    ConvCase(7, 9, 11, 3, 5, (2, 2), (5, 4)),  # strides bigger than the kernel
    ConvCase(2, 13, 13, 5, 7, (3, 3), (4, 5), "same"),
    ConvCase(3, 17, 9, 6, 9, (3, 3), 2, "same", 2),  # dilation together with stride
    ConvCase(2, 15, 15, 7, 11, (3, 2), (3, 2), "valid", (2, 3)),
    ConvCase(2, 21, 19, 300, 5, (3, 3)),  # 300 input channels
    ConvCase(1, 11, 11, 129, 257, (2, 2), 1, "same"),
    ConvCase(1, 4, 4, 2, 3, (9, 9), 3, "same"),
    ConvCase(2, 40, 3, 3, 8, (1, 3), (7, 1), "same"),
    ConvCase(1, 3, 40, 3, 8, (3, 1), (1, 7)),
]


@pytest.mark.parametrize("c", UNUSUAL_CONV, ids=[c.id for c in UNUSUAL_CONV])
def test_conv2d_and_grads_on_unusual_shapes(isa, rng, c):
    x = rng.standard_normal((c.n, c.h, c.w, c.cin)).astype(np.float32)
    kern = rng.standard_normal((*c.k, c.cin, c.cout)).astype(np.float32)
    b = rng.standard_normal(c.cout).astype(np.float32)
    expected = ref.conv2d(x, kern, b, **c.rkw)
    check(ops.conv2d(x, kern, b, **c.kw), expected, what="conv2d")
    check(ops.conv2d(x, kern, b, activation="relu", **c.kw), ref.relu(expected), what="relu")
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    check_all(ops.conv2d_grad(x, kern, dy, **c.kw), ref.conv2d_grad(x, kern, dy, **c.rkw), GRADS)


def test_three_to_five_to_three_hundred_channels(isa, rng):
    x = rng.standard_normal((7, 12, 10, 3)).astype(np.float32)
    k1 = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    k2 = rng.standard_normal((3, 3, 5, 300)).astype(np.float32)
    h1 = ops.conv2d(x, k1, padding="same", activation="relu")
    check(h1, ref.conv2d(x, k1, padding="same", activation="relu"), what="3 -> 5")
    h2 = ops.conv2d(h1, k2, strides=2, padding="same")
    assert h2.shape == (7, 6, 5, 300)
    check(h2, ref.conv2d(h1, k2, strides=2, padding="same"), what="5 -> 300")


@pytest.mark.parametrize("dilation", [2**20, 2**31, 2**40])
def test_huge_dilation_with_same_padding_uses_only_the_centre_tap(isa, rng, dilation):
    # 'same' with a huge dilation: pad_total = 2*d, top = d, so only the centre tap is inside
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    kern = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    y = ops.conv2d(x, kern, padding="same", dilation_rate=dilation)
    check(y, np.einsum("nhwc,co->nhwo", x.astype(np.float64), kern[1, 1]), what="centre tap")
    dx, dk, db = ops.conv2d_grad(x, kern, np.ones_like(y), padding="same", dilation_rate=dilation)
    assert np.all(np.isfinite(dx)) and np.all(dk[0] == 0) and np.all(dk[:, 0] == 0)


@pytest.mark.parametrize("seed", range(24))
def test_random_sweep(isa, seed):
    """Random layer geometries beyond the grid above: conv forward/backward and dense."""
    r = np.random.default_rng(90000 + seed)
    while True:
        n, h, w = int(r.integers(1, 4)), int(r.integers(1, 30)), int(r.integers(1, 30))
        cin, cout = int(r.integers(1, 70)), int(r.integers(1, 140))
        k = (int(r.integers(1, 6)), int(r.integers(1, 6)))
        s = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        d = (int(r.integers(1, 3)), int(r.integers(1, 3)))
        pad = ("valid", "same")[int(r.integers(0, 2))]
        oh, ow = ref.conv_output_shape((h, w), k, s, pad, d)
        if oh > 0 and ow > 0:
            break
    c = ConvCase(n, h, w, cin, cout, k, s, pad, d)
    x = r.standard_normal((n, h, w, cin)).astype(np.float32)
    kern = r.standard_normal((*k, cin, cout)).astype(np.float32)
    b = r.standard_normal(cout).astype(np.float32)
    dy = r.standard_normal((n, oh, ow, cout)).astype(np.float32)
    check(ops.conv2d(x, kern, b, **c.kw), ref.conv2d(x, kern, b, **c.rkw), what="conv2d")
    check_all(ops.conv2d_grad(x, kern, dy, **c.kw), ref.conv2d_grad(x, kern, dy, **c.rkw), GRADS)
    bsz, fin, fout = int(r.integers(1, 100)), int(r.integers(1, 600)), int(r.integers(1, 200))
    xd = r.standard_normal((bsz, fin)).astype(np.float32)
    kd = r.standard_normal((fin, fout)).astype(np.float32)
    dyd = r.standard_normal((bsz, fout)).astype(np.float32)
    check(ops.dense(xd, kd), ref.dense(xd, kd), what="dense")
    check_all(ops.dense_grad(xd, kd, dyd), ref.dense_grad(xd, kd, dyd), ("dense dx", "dk", "db"))


# ============================================================================================
# particular kernel paths: streamed stores, the indirect input gradient


@pytest.mark.parametrize(
    "in_c, filters, width",
    [
        (3, 32, 402),
        (3, 48, 270),
        (8, 32, 402),
    ],  # the few-channel path (one group partial) and igemm
)
def test_conv2d_streamed_output_matches_cached_stores(isa, in_c, filters, width):
    """Outputs over 48 MB are written with non-temporal stores when 64-byte aligned: the same
    bits as ordinary stores into a buffer 16 bytes off the alignment, and right where sampled."""
    r = np.random.default_rng(31)
    x = r.standard_normal((1, 1026, width, in_c), dtype=np.float32)
    kernel = r.standard_normal((3, 3, in_c, filters), dtype=np.float32)
    bias = r.standard_normal(filters, dtype=np.float32)
    plan = ops.conv._ConvPlan(x, kernel, 1, "valid", 1)
    size = int(np.prod(plan.out_shape))
    assert size * 4 >= 48 << 20
    raw = np.empty(size + 32, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    aligned = raw[start : start + size].reshape(plan.out_shape)
    assert aligned.ctypes.data % 64 == 0
    raw2 = np.empty(size + 32, np.float32)
    start2 = (-raw2.ctypes.data % 64) // 4 + 4
    shifted = raw2[start2 : start2 + size].reshape(plan.out_shape)
    assert shifted.ctypes.data % 64 == 16
    for y in (aligned, shifted):
        _core.conv2d_forward(x, kernel, bias, y, *plan.args(), True)
    np.testing.assert_array_equal(aligned, shifted)
    for oy, ox in ((0, 0), (511, 200), (1023, width - 3)):
        patch = x[:, oy : oy + 3, ox : ox + 3, :]
        expected = np.maximum(ref.conv2d(patch, kernel, bias)[0, 0, 0], 0.0)
        check(aligned[0, oy, ox], expected, what=f"streamed conv2d at ({oy}, {ox})")


# Input gradients that take the indirect GEMM over input pixels ('same' padding or large images,
# enough channels), where a kernel row's taps run as one wide tap away from the borders.
INDIRECT_DX_CASES = [
    ConvCase(2, 17, 19, 40, 24, (3, 3), 1, "same"),
    ConvCase(1, 23, 20, 33, 17, (3, 5), 1, "same"),
    ConvCase(2, 15, 16, 48, 32, (3, 3), (2, 1), "same"),
    ConvCase(1, 30, 31, 20, 64, (5, 3), 1, "same", (2, 1)),
    ConvCase(1, 41, 43, 64, 40, (3, 3), 1, "valid"),
    ConvCase(2, 14, 14, 24, 20, (3, 3), (1, 2), "same"),
]


@pytest.mark.parametrize("c", INDIRECT_DX_CASES, ids=[c.id for c in INDIRECT_DX_CASES])
def test_conv2d_input_gradient_indirect_paths(isa, c):
    r = np.random.default_rng(41)
    x = r.standard_normal((c.n, c.h, c.w, c.cin)).astype(np.float32)
    kernel = r.standard_normal((*c.k, c.cin, c.cout)).astype(np.float32)
    dy = r.standard_normal(ops.conv2d(x, kernel, **c.kw).shape).astype(np.float32)
    expected = ref.conv2d_grad(x, kernel, dy, **c.rkw)
    check(ops.conv2d_grad(x, kernel, dy, **c.kw)[0], expected[0], what="conv2d dx")
