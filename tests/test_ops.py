"""fastconv.ops against the independent float64 references in tests/reference.py.

Every numeric test takes the `isa` fixture and so runs once per kernel path the machine has.
Error measure (the contract's): max|got - ref| / max(1, max|ref|) <= 1e-4.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import reference as ref
from fastconv import _core, ops

TOL = 1e-4


def check(got, expected, tol=TOL, what="result"):
    """float32, C-contiguous, the reference's shape and within tol of it."""
    assert isinstance(got, np.ndarray), f"{what}: not an ndarray but {type(got)}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert got.flags.c_contiguous, f"{what}: not C-contiguous"
    assert got.shape == np.shape(expected), f"{what}: shape {got.shape} != {np.shape(expected)}"
    err = ref.rel_err(got, expected)
    assert err <= tol, f"{what}: error {err:.3g} > {tol:g}"


def check_exact(got, expected, what="result"):
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert got.shape == np.shape(expected), f"{what}: shape {got.shape} != {np.shape(expected)}"
    np.testing.assert_array_equal(got, np.asarray(expected, np.float32), err_msg=what)


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def ints(rng, shape, lo=-3, hi=3):
    """Small integers as float32: every sum of their products is exact in float32."""
    return rng.integers(lo, hi + 1, size=shape).astype(np.float32)


def eff(k, d):
    return (k - 1) * d + 1


# ============================================================================================
# conv2d cases: every stride x padding x dilation x kernel combination


STRIDES = [1, 2, 3, (1, 2), (2, 1)]
PADDINGS = ["valid", "same"]
DILATIONS = [1, 2, (1, 2), (2, 1)]
KERNELS = [(1, 1), (3, 3), (5, 5), (2, 3)]
CINS = [1, 3, 1, 3, 2, 5, 8, 17]
COUTS = [1, 3, 5, 10, 17, 31, 33, 64]
BATCHES = [1, 3, 4, 5]


def _conv_cases():
    cases = []
    for i, (s, p, d, k) in enumerate(itertools.product(STRIDES, PADDINGS, DILATIONS, KERNELS)):
        r = np.random.default_rng(1000 + i)
        dh, dw = ref.pair(d)
        lo_h = eff(k[0], dh) if p == "valid" else 1
        lo_w = eff(k[1], dw) if p == "valid" else 1
        h = int(r.integers(lo_h, max(13, lo_h + 3) + 1))
        w = int(r.integers(lo_w, max(13, lo_w + 3) + 1))
        cases.append(
            dict(
                n=BATCHES[i % 4],
                h=h,
                w=w,
                cin=CINS[i % len(CINS)],
                cout=COUTS[(i // 3) % len(COUTS)],
                k=k,
                strides=s,
                padding=p,
                dilation=d,
                bias=(i % 5 != 4),
            )
        )
    extra = [
        # kernel larger than the image under 'same'; 1x1 images; channel counts around SIMD widths
        dict(n=2, h=3, w=3, cin=3, cout=5, k=(5, 5), strides=1, padding="same", dilation=1),
        dict(n=1, h=1, w=1, cin=1, cout=1, k=(3, 3), strides=1, padding="same", dilation=1),
        dict(n=3, h=1, w=1, cin=3, cout=10, k=(1, 1), strides=1, padding="valid", dilation=1),
        dict(n=1, h=2, w=7, cin=3, cout=17, k=(3, 3), strides=2, padding="same", dilation=2),
        dict(n=2, h=7, w=9, cin=17, cout=31, k=(3, 3), strides=1, padding="same", dilation=1),
        dict(n=2, h=6, w=5, cin=33, cout=33, k=(3, 3), strides=1, padding="valid", dilation=1),
        dict(n=1, h=9, w=9, cin=64, cout=65, k=(3, 3), strides=2, padding="same", dilation=1),
        dict(n=2, h=8, w=8, cin=31, cout=16, k=(2, 2), strides=2, padding="valid", dilation=1),
        dict(n=1, h=13, w=12, cin=7, cout=129, k=(1, 1), strides=3, padding="same", dilation=1),
        dict(n=5, h=11, w=4, cin=1, cout=32, k=(5, 5), strides=(3, 1), padding="same", dilation=2),
        # 4 channels (RGBA), the most the few-channel paths take; a row shorter than their blocks
        dict(n=2, h=9, w=8, cin=4, cout=20, k=(3, 3), strides=1, padding="same", dilation=1),
        dict(n=3, h=6, w=17, cin=4, cout=7, k=(1, 2), strides=1, padding="valid", dilation=1),
        dict(n=2, h=5, w=3, cin=1, cout=40, k=(3, 3), strides=1, padding="same", dilation=(1, 2)),
    ]
    for c in extra:
        c.setdefault("bias", True)
    return cases + extra


CONV_CASES = _conv_cases()


def _conv_id(c):
    return (
        f"n{c['n']}-{c['h']}x{c['w']}x{c['cin']}-k{c['k'][0]}x{c['k'][1]}x{c['cout']}"
        f"-s{c['strides']}-{c['padding']}-d{c['dilation']}".replace(" ", "")
    )


def _kw(c):
    return dict(strides=c["strides"], padding=c["padding"], dilation_rate=c["dilation"])


def _rkw(c):
    return dict(strides=c["strides"], padding=c["padding"], dilation=c["dilation"])


@functools.cache
def conv_case_data(i, integer=False):
    """Inputs and float64 reference outputs of CONV_CASES[i] (cached across ISA runs)."""
    c = CONV_CASES[i]
    r = np.random.default_rng(5000 + i + (100000 if integer else 0))
    gen = (lambda s: ints(r, s)) if integer else (lambda s: r.standard_normal(s, np.float32))
    x = gen((c["n"], c["h"], c["w"], c["cin"]))
    k = gen((*c["k"], c["cin"], c["cout"]))
    b = gen((c["cout"],)) if c["bias"] else None
    y = ref.conv2d(x, k, b, **_rkw(c))
    dy = gen(y.shape)
    grads = ref.conv2d_grad(x, k, dy, **_rkw(c))
    return x, k, b, y, dy, grads


@pytest.mark.parametrize("i", range(len(CONV_CASES)), ids=[_conv_id(c) for c in CONV_CASES])
def test_conv2d_forward(isa, i):
    c = CONV_CASES[i]
    x, k, b, y, _, _ = conv_case_data(i)
    check(ops.conv2d(x, k, b, **_kw(c)), y, what="conv2d")


@pytest.mark.parametrize("i", range(len(CONV_CASES)), ids=[_conv_id(c) for c in CONV_CASES])
def test_conv2d_grad(isa, i):
    c = CONV_CASES[i]
    x, k, _, _, dy, (dx, dk, db) = conv_case_data(i)
    gx, gk, gb = ops.conv2d_grad(x, k, dy, **_kw(c))
    check(gx, dx, what="dx")
    check(gk, dk, what="dkernel")
    check(gb, db, what="dbias")


EXACT_IDS = list(range(0, len(CONV_CASES), 7))


@pytest.mark.parametrize("i", EXACT_IDS, ids=[_conv_id(CONV_CASES[i]) for i in EXACT_IDS])
def test_conv2d_exact_on_small_integers(isa, i):
    c = CONV_CASES[i]
    x, k, b, y, dy, (dx, dk, db) = conv_case_data(i, integer=True)
    check_exact(ops.conv2d(x, k, b, **_kw(c)), y, "conv2d")
    gx, gk, gb = ops.conv2d_grad(x, k, dy, **_kw(c))
    check_exact(gx, dx, "dx")
    check_exact(gk, dk, "dkernel")
    check_exact(gb, db, "dbias")


FUSED_IDS = list(range(3, len(CONV_CASES), 11))


@pytest.mark.parametrize("i", FUSED_IDS, ids=[_conv_id(CONV_CASES[i]) for i in FUSED_IDS])
def test_conv2d_fused_relu_and_need_dx(isa, i):
    c = CONV_CASES[i]
    x, k, b, y, dy, (dx, dk, db) = conv_case_data(i)
    fused = ops.conv2d(x, k, b, activation="relu", **_kw(c))
    check(fused, ref.relu(y), what="fused relu vs reference")
    unfused = ops.relu(ops.conv2d(x, k, b, **_kw(c)))
    check(fused, unfused, tol=1e-6, what="fused relu vs relu(conv2d)")
    assert (fused >= 0).all()

    full = ops.conv2d_grad(x, k, dy, need_dx=True, **_kw(c))
    part = ops.conv2d_grad(x, k, dy, need_dx=False, **_kw(c))
    assert len(part) == 3 and part[0] is None
    check(part[1], full[1], tol=1e-6, what="dkernel with need_dx=False")
    check(part[2], full[2], tol=1e-6, what="dbias with need_dx=False")
    check(part[1], dk, what="dkernel")


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


def test_conv2d_reference_matches_hand_formula():
    # the reference itself against an explicit 7-fold loop on a tiny case
    r = np.random.default_rng(0)
    x = r.standard_normal((2, 5, 6, 2))
    k = r.standard_normal((2, 3, 2, 3))
    sh, sw, dh, dw = 2, 1, 1, 2
    oh, (pt, _) = ref.out_and_pad(5, 2, sh, dh, "same")
    ow, (pl, _) = ref.out_and_pad(6, 3, sw, dw, "same")
    y = np.zeros((2, oh, ow, 3))
    for n, i, j, a, b, ci, co in itertools.product(
        range(2), range(oh), range(ow), range(2), range(3), range(2), range(3)
    ):
        hi, wi = i * sh + a * dh - pt, j * sw + b * dw - pl
        if 0 <= hi < 5 and 0 <= wi < 6:
            y[n, i, j, co] += x[n, hi, wi, ci] * k[a, b, ci, co]
    got = ref.conv2d(x, k, strides=(sh, sw), padding="same", dilation=(dh, dw))
    np.testing.assert_allclose(got, y, atol=1e-12)


# ============================================================================================
# the lecture models' layer shapes


MNIST_CONV = [  # batch 64
    dict(n=64, h=28, w=28, cin=1, cout=32),
    dict(n=64, h=13, w=13, cin=32, cout=64),
    dict(n=64, h=5, w=5, cin=64, cout=128),
]
CATS_CONV = [  # batch 32 in the lecture, 2 here to stay fast
    dict(n=2, h=180, w=180, cin=3, cout=32),
    dict(n=2, h=89, w=89, cin=32, cout=64),
    dict(n=2, h=43, w=43, cin=64, cout=128),
    dict(n=2, h=20, w=20, cin=128, cout=256),
    dict(n=2, h=9, w=9, cin=256, cout=256),
]
LECTURE_CONV = MNIST_CONV + CATS_CONV
LECTURE_POOL = [(64, 26, 32), (64, 11, 64), (2, 178, 32), (2, 87, 64), (2, 41, 128), (2, 18, 256)]
LECTURE_DENSE = [(64, 1152, 10), (2, 12544, 1)]


@functools.cache
def lecture_conv_data(i):
    c = LECTURE_CONV[i]
    r = np.random.default_rng(70 + i)
    x = r.standard_normal((c["n"], c["h"], c["w"], c["cin"]), np.float32)
    k = (r.standard_normal((3, 3, c["cin"], c["cout"])) / np.sqrt(9 * c["cin"])).astype(np.float32)
    b = r.standard_normal(c["cout"], np.float32)
    y = ref.conv2d(x, k, b)
    dy = r.standard_normal(y.shape, np.float32)
    return x, k, b, y, dy, ref.conv2d_grad(x, k, dy)


@pytest.mark.parametrize(
    "i", range(len(LECTURE_CONV)), ids=[f"{c['h']}x{c['cin']}->{c['cout']}" for c in LECTURE_CONV]
)
def test_lecture_conv_layers(isa, i):
    x, k, b, y, dy, (dx, dk, db) = lecture_conv_data(i)
    check(ops.conv2d(x, k, b, activation="relu"), ref.relu(y), what="conv2d+relu")
    gx, gk, gb = ops.conv2d_grad(x, k, dy)
    check(gx, dx, what="dx")
    check(gk, dk, what="dkernel")
    check(gb, db, what="dbias")


@pytest.mark.parametrize("n,hw,c", LECTURE_POOL)
def test_lecture_pool_layers(isa, n, hw, c):
    r = np.random.default_rng(hw * 1000 + c)
    x = r.standard_normal((n, hw, hw, c), np.float32)
    y = ref.max_pool2d(x)
    dy = r.standard_normal(y.shape, np.float32)
    check(ops.max_pool2d(x), y, what="max_pool2d")
    check(ops.max_pool2d_grad(x, dy), ref.max_pool2d_grad(x, dy), what="max_pool2d_grad")


@pytest.mark.parametrize("n,fin,fout", LECTURE_DENSE)
def test_lecture_dense_layers(isa, n, fin, fout):
    r = np.random.default_rng(fin + fout)
    x = r.standard_normal((n, fin), np.float32)
    k = (r.standard_normal((fin, fout)) / np.sqrt(fin)).astype(np.float32)
    b = r.standard_normal(fout, np.float32)
    dy = r.standard_normal((n, fout), np.float32)
    check(ops.dense(x, k, b), ref.dense(x, k, b), what="dense")
    for got, exp, name in zip(
        ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy), "dx dk db".split()
    ):
        check(got, exp, what=name)


# ============================================================================================
# pooling


POOL_SIZES = [1, 2, 3, (2, 3)]
POOL_STRIDES = [None, 1, 2, 3, (1, 2)]
POOL_CHANNELS = [1, 3, 5, 17, 33, 64]


def _pool_cases():
    cases = []
    for i, (p, s, pad) in enumerate(itertools.product(POOL_SIZES, POOL_STRIDES, PADDINGS)):
        r = np.random.default_rng(300 + i)
        ph, pw = ref.pair(p)
        lo_h, lo_w = (ph, pw) if pad == "valid" else (1, 1)
        cases.append(
            dict(
                n=BATCHES[i % 4],
                h=int(r.integers(lo_h, 14)),
                w=int(r.integers(lo_w, 14)),
                c=POOL_CHANNELS[i % len(POOL_CHANNELS)],
                pool_size=p,
                strides=s,
                padding=pad,
            )
        )
    return cases


POOL_CASES = _pool_cases()
POOL_IDS = [
    f"n{c['n']}-{c['h']}x{c['w']}x{c['c']}-p{c['pool_size']}-s{c['strides']}-{c['padding']}".replace(
        " ", ""
    )
    for c in POOL_CASES
]


def _pkw(c):
    return dict(pool_size=c["pool_size"], strides=c["strides"], padding=c["padding"])


@functools.cache
def pool_case_data(i):
    c = POOL_CASES[i]
    r = np.random.default_rng(7000 + i)
    x = r.standard_normal((c["n"], c["h"], c["w"], c["c"]), np.float32)
    oh, ow = ref.pool_output_shape((c["h"], c["w"]), c["pool_size"], c["strides"], c["padding"])
    dy = r.standard_normal((c["n"], oh, ow, c["c"]), np.float32)
    return x, dy


@pytest.mark.parametrize("i", range(len(POOL_CASES)), ids=POOL_IDS)
def test_max_pool2d(isa, i):
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    check(ops.max_pool2d(x, **_pkw(c)), ref.max_pool2d(x, **_pkw(c)), what="max_pool2d")
    check(
        ops.max_pool2d_grad(x, dy, **_pkw(c)),
        ref.max_pool2d_grad(x, dy, **_pkw(c)),
        what="max_pool2d_grad",
    )


@pytest.mark.parametrize("i", range(len(POOL_CASES)), ids=POOL_IDS)
def test_max_pool2d_grad_overwrites_every_cell(isa, i):
    """dx comes from np.empty: every cell, reached by a window or not, must be written."""
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    plan = ops._PoolPlan(x, c["pool_size"], c["strides"], c["padding"], "max_pool2d_grad")
    dx = np.full(x.shape, np.nan, np.float32)
    _core.max_pool2d_backward(x, dy, dx, *plan.args())
    check(dx, ref.max_pool2d_grad(x, dy, **_pkw(c)), what="max_pool2d_grad into a dirty buffer")


@pytest.mark.parametrize("i", range(len(POOL_CASES)), ids=POOL_IDS)
def test_avg_pool2d(isa, i):
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    check(ops.avg_pool2d(x, **_pkw(c)), ref.avg_pool2d(x, **_pkw(c)), what="avg_pool2d")
    check(
        ops.avg_pool2d_grad(x, dy, **_pkw(c)),
        ref.avg_pool2d_grad(x, dy, **_pkw(c)),
        what="avg_pool2d_grad",
    )


@pytest.mark.parametrize("pool_size,strides", [(2, None), (3, 1), (3, 2), ((2, 3), (1, 2))])
@pytest.mark.parametrize("padding", PADDINGS)
def test_max_pool2d_ties_go_to_first_max(isa, rng, pool_size, strides, padding):
    x = rng.integers(0, 2, size=(3, 9, 8, 5)).astype(np.float32)  # ties everywhere
    kw = dict(pool_size=pool_size, strides=strides, padding=padding)
    y = ops.max_pool2d(x, **kw)
    check_exact(y, ref.max_pool2d(x, **kw), "max_pool2d")
    dy = ints(rng, y.shape, 1, 3)  # positive integers: exact sums of the routed gradients
    check_exact(ops.max_pool2d_grad(x, dy, **kw), ref.max_pool2d_grad(x, dy, **kw), "dx")


def test_max_pool2d_tie_hand_case(isa):
    x = np.array([[5, 5], [5, 1]], np.float32).reshape(1, 2, 2, 1)
    dx = ops.max_pool2d_grad(x, np.array([[[[7.0]]]], np.float32))
    check_exact(dx, np.array([[7, 0], [0, 0]], np.float32).reshape(1, 2, 2, 1), "dx")
    x = np.array([[1, 2], [2, 2]], np.float32).reshape(1, 2, 2, 1)
    dx = ops.max_pool2d_grad(x, np.array([[[[3.0]]]], np.float32))
    check_exact(dx, np.array([[0, 3], [0, 0]], np.float32).reshape(1, 2, 2, 1), "dx")


def test_max_pool2d_same_ignores_padding(isa, rng):
    # all values negative: a zero-padded max would return 0 at the border
    x = (-1.0 - rng.random((2, 5, 7, 3))).astype(np.float32)
    for p, s in [(2, 2), (3, 2), (2, 1), (3, 3)]:
        y = ops.max_pool2d(x, p, s, "same")
        assert (y < 0).all(), f"padding taken as a value: pool {p} strides {s}"
        check(y, ref.max_pool2d(x, p, s, "same"))
        dy = np.ones_like(y)
        check(ops.max_pool2d_grad(x, dy, p, s, "same"), ref.max_pool2d_grad(x, dy, p, s, "same"))


def test_max_pool2d_infinite_values(isa, rng):
    x = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
    x[0, :3, :3, :] = -np.inf  # whole windows of -inf: the first inside cell gets the gradient
    x[1, 2, 2, 1] = np.inf
    for p, s, pad in [(2, 2, "same"), (3, 1, "same"), (2, 1, "valid"), (3, 2, "same")]:
        y = ops.max_pool2d(x, p, s, pad)
        check_exact(y, ref.max_pool2d(x, p, s, pad), "max_pool2d")
        dy = ints(rng, y.shape, 1, 3)
        check_exact(
            ops.max_pool2d_grad(x, dy, p, s, pad), ref.max_pool2d_grad(x, dy, p, s, pad), "dx"
        )


def test_avg_pool2d_same_averages_only_inside_cells(isa):
    x = np.ones((1, 5, 7, 2), np.float32)
    for p, s in [(2, 2), (3, 2), (2, 1), (3, 3), ((2, 3), (1, 2))]:
        check(
            ops.avg_pool2d(x, p, s, "same"),
            np.ones((1, *ref.pool_output_shape((5, 7), p, s, "same"), 2)),
        )


def test_pool_defaults(isa, rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    check(ops.max_pool2d(x), ref.max_pool2d(x, 2, 2, "valid"))
    check(ops.avg_pool2d(x), ref.avg_pool2d(x, 2, 2, "valid"))
    check(ops.max_pool2d(x, 3), ref.max_pool2d(x, 3, 3, "valid"))
    check(ops.avg_pool2d(x, (2, 3), padding="same"), ref.avg_pool2d(x, (2, 3), (2, 3), "same"))


# ============================================================================================
# dense


DENSE_CASES = [
    (b, i, o)
    for b, i, o in itertools.product(
        [1, 3, 5, 64], [1, 3, 17, 33, 130], [1, 3, 5, 10, 17, 31, 33, 64]
    )
    if (b + i + o) % 3 == 0
]


@pytest.mark.parametrize("batch,fin,fout", DENSE_CASES)
def test_dense(isa, batch, fin, fout):
    r = np.random.default_rng(batch * 10000 + fin * 100 + fout)
    x = r.standard_normal((batch, fin), np.float32)
    k = r.standard_normal((fin, fout), np.float32)
    b = r.standard_normal(fout, np.float32)
    dy = r.standard_normal((batch, fout), np.float32)
    check(ops.dense(x, k, b), ref.dense(x, k, b), what="dense")
    check(ops.dense(x, k), ref.dense(x, k), what="dense without bias")
    relu_y = ops.dense(x, k, b, activation="relu")
    check(relu_y, ref.dense(x, k, b, activation="relu"), what="dense relu")
    check(relu_y, ops.relu(ops.dense(x, k, b)), tol=1e-6, what="fused relu vs relu(dense)")
    for got, exp, name in zip(
        ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy), "dx dk db".split()
    ):
        check(got, exp, what=name)


@pytest.mark.parametrize("batch,fin,fout", [(1, 1, 1), (3, 17, 33), (64, 1152, 10), (5, 31, 64)])
def test_dense_exact_on_small_integers(isa, rng, batch, fin, fout):
    x, k, b = ints(rng, (batch, fin)), ints(rng, (fin, fout)), ints(rng, (fout,))
    dy = ints(rng, (batch, fout))
    check_exact(ops.dense(x, k, b), ref.dense(x, k, b), "dense")
    for got, exp, name in zip(
        ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy), "dx dk db".split()
    ):
        check_exact(got, exp, name)


# ============================================================================================
# relu, softmax, sigmoid, losses


@pytest.mark.parametrize("shape", [(7,), (3, 33), (2, 5, 7, 17), (1, 1, 1, 1), (4, 13, 13, 64)])
def test_relu_and_grad(isa, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:: max(1, x.size // 5)] = 0.0  # exact zeros: gradient 0 there
    dy = rng.standard_normal(shape).astype(np.float32)
    y = ops.relu(x)
    check_exact(y, ref.relu(x), "relu")
    check_exact(ops.relu_grad(x, dy), ref.relu_grad(x, dy), "relu_grad(x)")
    check_exact(ops.relu_grad(y, dy), ref.relu_grad(x, dy), "relu_grad(relu(x))")


@pytest.mark.parametrize("batch,classes", [(1, 1), (1, 10), (5, 3), (64, 10), (3, 33), (2, 1000)])
def test_softmax_sigmoid(isa, rng, batch, classes):
    z = (rng.standard_normal((batch, classes)) * 5).astype(np.float32)
    z[0, 0] = 80.0  # would overflow exp() in float32 without the max shift
    check(ops.softmax(z), ref.softmax(z), what="softmax")
    check(ops.sigmoid(z), ref.sigmoid(z), what="sigmoid")
    big = np.array([[-1000.0, 0.0, 1000.0, -88.0, 89.0]], np.float32)
    check(ops.sigmoid(big), ref.sigmoid(big), what="sigmoid extremes")
    check(ops.softmax(big), ref.softmax(big), what="softmax extremes")
    assert np.isfinite(ops.softmax(big)).all() and np.isfinite(ops.sigmoid(big)).all()


@pytest.mark.parametrize("batch,classes", [(1, 2), (5, 3), (64, 10), (3, 33), (4, 1000)])
def test_losses(isa, rng, batch, classes):
    z = (rng.standard_normal((batch, classes)) * 4).astype(np.float32)
    z[0, -1] = 60.0
    labels = rng.integers(0, classes, size=batch)
    labels[0] = 0  # far from the big logit: a large, finite loss
    for lab in (labels.astype(np.int64), labels.astype(np.int32)):
        loss, dz = ops.sparse_softmax_cross_entropy(z, lab)
        exp_loss, exp_dz = ref.sparse_softmax_cross_entropy(z, labels)
        check(loss, exp_loss, what="sparse CE loss")
        check(dz, exp_dz, what="sparse CE dlogits")

    onehot = np.eye(classes, dtype=np.float32)[labels]
    soft = rng.random((batch, classes)).astype(np.float32) * 0.7  # rows not summing to 1
    for t in (onehot, soft):
        loss, dz = ops.softmax_cross_entropy(z, t)
        exp_loss, exp_dz = ref.softmax_cross_entropy(z, t)
        check(loss, exp_loss, what="CE loss")
        check(dz, exp_dz, what="CE dlogits")

    zb = (rng.standard_normal((batch, classes)) * 4).astype(np.float32)
    zb[0, 0], zb[-1, -1] = 90.0, -90.0
    tb = rng.random((batch, classes)).astype(np.float32)
    tb[0, 0], tb[-1, -1] = 0.0, 1.0  # very wrong: large finite losses
    loss, dz = ops.sigmoid_binary_cross_entropy(zb, tb)
    exp_loss, exp_dz = ref.sigmoid_binary_cross_entropy(zb, tb)
    check(loss, exp_loss, what="BCE loss")
    check(dz, exp_dz, what="BCE dlogits")
    zc = zb[:, 0].copy()
    tc = (rng.random(batch) > 0.5).astype(np.float32)
    check(ops.sigmoid_binary_cross_entropy(zc, tc)[0], ref.sigmoid_bce_loss(zc, tc), what="BCE 1-D")


# ============================================================================================
# gradients against central finite differences of the float64 reference


def _directional(grad, v):
    g = np.asarray(grad, np.float64)
    return float((g * v).sum()), float(np.abs(g * v).sum())


def assert_fd(analytic_grad, f, x0, v, eps, what, tol=1e-4):
    got, scale = _directional(analytic_grad, v)
    fd = ref.central_difference(f, np.asarray(x0, np.float64), v, eps)
    assert abs(got - fd) <= tol * max(1.0, scale), f"{what}: {got} vs finite difference {fd}"


FD_CONV = [5, 27, 58, 77, 101, 130, 151, len(CONV_CASES) - 1, len(CONV_CASES) - 7]


@pytest.mark.parametrize("i", FD_CONV, ids=[_conv_id(CONV_CASES[i]) for i in FD_CONV])
def test_conv2d_grad_finite_differences(isa, i):
    c = CONV_CASES[i]
    x, k, b, _, dy, _ = conv_case_data(i)
    b = np.zeros(c["cout"], np.float32) if b is None else b
    r = np.random.default_rng(i)
    gx, gk, gb = ops.conv2d_grad(x, k, dy, **_kw(c))

    def loss(xx, kk, bb):
        return float((ref.conv2d(xx, kk, bb, **_rkw(c)) * dy).sum())

    vx, vk, vb = (r.standard_normal(a.shape) for a in (x, k, b))
    assert_fd(gx, lambda t: loss(t, k, b), x, vx, 1e-3, "dx")
    assert_fd(gk, lambda t: loss(x, t, b), k, vk, 1e-3, "dkernel")
    assert_fd(gb, lambda t: loss(x, k, t), b, vb, 1e-3, "dbias")


@pytest.mark.parametrize("i", [0, 9, 14, 21, 33, 38])
def test_pool_grads_finite_differences(isa, i):
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    v = np.random.default_rng(i).standard_normal(x.shape)
    kw = _pkw(c)
    assert_fd(
        ops.max_pool2d_grad(x, dy, **kw),
        lambda t: float((ref.max_pool2d(t, **kw) * dy).sum()),
        x,
        v,
        1e-6,
        "max_pool2d_grad",
    )
    assert_fd(
        ops.avg_pool2d_grad(x, dy, **kw),
        lambda t: float((ref.avg_pool2d(t, **kw) * dy).sum()),
        x,
        v,
        1e-3,
        "avg_pool2d_grad",
    )


def test_dense_grad_finite_differences(isa, rng):
    x = rng.standard_normal((5, 17)).astype(np.float32)
    k = rng.standard_normal((17, 33)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    dy = rng.standard_normal((5, 33)).astype(np.float32)
    gx, gk, gb = ops.dense_grad(x, k, dy)

    def loss(xx, kk, bb):
        return float((ref.dense(xx, kk, bb) * dy).sum())

    assert_fd(gx, lambda t: loss(t, k, b), x, rng.standard_normal(x.shape), 1e-3, "dx")
    assert_fd(gk, lambda t: loss(x, t, b), k, rng.standard_normal(k.shape), 1e-3, "dkernel")
    assert_fd(gb, lambda t: loss(x, k, t), b, rng.standard_normal(b.shape), 1e-3, "dbias")


def test_relu_grad_finite_differences(isa, rng):
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    assert_fd(
        ops.relu_grad(x, dy),
        lambda t: float((ref.relu(t) * dy).sum()),
        x,
        rng.standard_normal(x.shape),
        1e-6,
        "relu_grad",
    )


@pytest.mark.parametrize("batch,classes", [(1, 2), (6, 10), (3, 33)])
def test_loss_grads_finite_differences(isa, rng, batch, classes):
    z = (rng.standard_normal((batch, classes)) * 3).astype(np.float32)
    w = rng.standard_normal(batch)  # a random weighting of the per-sample losses
    v = rng.standard_normal(z.shape)
    labels = rng.integers(0, classes, size=batch)
    _, dz = ops.sparse_softmax_cross_entropy(z, labels)
    assert_fd(
        dz * w[:, None],
        lambda t: float((ref.sparse_softmax_cross_entropy_loss(t, labels) * w).sum()),
        z,
        v,
        1e-6,
        "sparse CE",
    )
    t = rng.random((batch, classes)).astype(np.float32)
    _, dz = ops.softmax_cross_entropy(z, t)
    assert_fd(
        dz * w[:, None],
        lambda q: float((ref.softmax_cross_entropy_loss(q, t) * w).sum()),
        z,
        v,
        1e-6,
        "softmax CE",
    )
    wb = rng.standard_normal(z.shape)
    _, dz = ops.sigmoid_binary_cross_entropy(z, t)
    assert_fd(
        dz * wb,
        lambda q: float((ref.sigmoid_bce_loss(q, t) * wb).sum()),
        z,
        v,
        1e-6,
        "sigmoid BCE",
    )


# ============================================================================================
# input handling: dtype conversion, non-contiguous views, empty batches, NaN


def _views(a):
    """float64, Fortran order, a strided view and a reversed view of the same values."""
    big = np.zeros((*a.shape[:-1], a.shape[-1] * 2), a.dtype)
    big[..., ::2] = a
    yield "float64", a.astype(np.float64)
    yield "fortran", np.asfortranarray(a)
    yield "strided", big[..., ::2]
    rev = np.ascontiguousarray(a[::-1])[::-1]
    yield "reversed", rev


def test_conv2d_converts_inputs(isa, rng):
    x = rng.standard_normal((3, 7, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 2, 3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    kw = dict(strides=(2, 1), padding="same")
    y = ops.conv2d(x, k, b, **kw)
    check(y, ref.conv2d(x, k, b, **kw))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = ops.conv2d_grad(x, k, dy, **kw)
    for name, xv in _views(x):
        check(ops.conv2d(xv, k, b, **kw), y, tol=1e-6, what=f"x {name}")
        for g, e in zip(ops.conv2d_grad(xv, k, dy, **kw), grads):
            check(g, e, tol=1e-6, what=f"grad, x {name}")
    for name, kv in _views(k):
        check(ops.conv2d(x, kv, b, **kw), y, tol=1e-6, what=f"kernel {name}")
        for g, e in zip(ops.conv2d_grad(x, kv, dy, **kw), grads):
            check(g, e, tol=1e-6, what=f"grad, kernel {name}")
    for name, dyv in _views(dy):
        for g, e in zip(ops.conv2d_grad(x, k, dyv, **kw), grads):
            check(g, e, tol=1e-6, what=f"grad, dy {name}")
    kt = np.ascontiguousarray(k.transpose(3, 2, 0, 1)).transpose(2, 3, 1, 0)  # PyTorch layout view
    check(ops.conv2d(x, kt, b[::-1][::-1], **kw), y, tol=1e-6, what="kernel transposed view")
    check(ops.conv2d(x, k, b.astype(np.float64), **kw), y, tol=1e-6, what="bias float64")


def test_dense_pool_relu_losses_convert_inputs(isa, rng):
    x = rng.standard_normal((5, 17)).astype(np.float32)
    k = rng.standard_normal((17, 6)).astype(np.float32)
    dy = rng.standard_normal((5, 6)).astype(np.float32)
    y = ops.dense(x, k)
    grads = ops.dense_grad(x, k, dy)
    for name, xv in _views(x):
        check(ops.dense(xv, k), y, tol=1e-6, what=f"dense x {name}")
        check(ops.dense(x, np.asfortranarray(k)), y, tol=1e-6, what="dense kernel.T view")
        for g, e in zip(ops.dense_grad(xv, k, dy), grads):
            check(g, e, tol=1e-6, what=f"dense grad x {name}")
    for name, dyv in _views(dy):
        for g, e in zip(ops.dense_grad(x, k, dyv), grads):
            check(g, e, tol=1e-6, what=f"dense grad dy {name}")

    xi = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    ym = ops.max_pool2d(xi, 3, 2, "same")
    ya = ops.avg_pool2d(xi, 3, 2, "same")
    dyp = rng.standard_normal(ym.shape).astype(np.float32)
    gm = ops.max_pool2d_grad(xi, dyp, 3, 2, "same")
    ga = ops.avg_pool2d_grad(xi, dyp, 3, 2, "same")
    for name, xv in _views(xi):
        check(ops.max_pool2d(xv, 3, 2, "same"), ym, tol=0, what=f"max_pool x {name}")
        check(ops.avg_pool2d(xv, 3, 2, "same"), ya, tol=1e-6, what=f"avg_pool x {name}")
        check(ops.max_pool2d_grad(xv, dyp, 3, 2, "same"), gm, tol=1e-6, what=f"max grad {name}")
        check(ops.avg_pool2d_grad(xv, dyp, 3, 2, "same"), ga, tol=1e-6, what=f"avg grad {name}")
        check(ops.relu(xv), ops.relu(xi), tol=0, what=f"relu {name}")
        check(ops.relu_grad(xv, xv), ops.relu_grad(xi, xi), tol=0, what=f"relu_grad {name}")
    for name, dyv in _views(dyp):
        check(ops.max_pool2d_grad(xi, dyv, 3, 2, "same"), gm, tol=1e-6, what=f"max dy {name}")
        check(ops.avg_pool2d_grad(xi, dyv, 3, 2, "same"), ga, tol=1e-6, what=f"avg dy {name}")

    z = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.random((4, 5)).astype(np.float32)
    for name, zv in _views(z):
        check(ops.softmax(zv), ops.softmax(z), tol=1e-6, what=f"softmax {name}")
        check(ops.sigmoid(zv), ops.sigmoid(z), tol=1e-6, what=f"sigmoid {name}")
        for g, e in zip(ops.softmax_cross_entropy(zv, t), ops.softmax_cross_entropy(z, t)):
            check(g, e, tol=1e-6, what=f"CE {name}")
        for g, e in zip(
            ops.sigmoid_binary_cross_entropy(zv, t), ops.sigmoid_binary_cross_entropy(z, t)
        ):
            check(g, e, tol=1e-6, what=f"BCE {name}")
        lab = np.array([0, 4, 2, 1])
        for g, e in zip(
            ops.sparse_softmax_cross_entropy(zv, lab), ops.sparse_softmax_cross_entropy(z, lab)
        ):
            check(g, e, tol=1e-6, what=f"sparse CE {name}")


def test_empty_batch(isa):
    x = np.zeros((0, 7, 6, 3), np.float32)
    k = np.ones((3, 3, 3, 5), np.float32)
    b = np.ones(5, np.float32)
    y = ops.conv2d(x, k, b, strides=2, padding="same")
    assert y.shape == (0, 4, 3, 5) and y.dtype == np.float32
    dx, dk, db = ops.conv2d_grad(x, k, np.zeros((0, 5, 4, 5), np.float32))
    assert dx.shape == x.shape and dx.dtype == np.float32
    check_exact(dk, np.zeros(k.shape), "dkernel")
    check_exact(db, np.zeros(5), "dbias")
    assert ops.conv2d_grad(x, k, np.zeros((0, 5, 4, 5), np.float32), need_dx=False)[0] is None

    assert ops.max_pool2d(x).shape == (0, 3, 3, 3)
    assert ops.avg_pool2d(x, 3, 2, "same").shape == (0, 4, 3, 3)
    assert ops.max_pool2d_grad(x, np.zeros((0, 3, 3, 3), np.float32)).shape == x.shape
    assert ops.avg_pool2d_grad(x, np.zeros((0, 3, 3, 3), np.float32)).shape == x.shape
    assert ops.relu(x).shape == x.shape
    assert ops.relu_grad(x, x).shape == x.shape

    xd = np.zeros((0, 12), np.float32)
    kd = np.ones((12, 4), np.float32)
    assert ops.dense(xd, kd, np.ones(4, np.float32)).shape == (0, 4)
    gx, gk, gb = ops.dense_grad(xd, kd, np.zeros((0, 4), np.float32))
    assert gx.shape == (0, 12)
    check_exact(gk, np.zeros((12, 4)), "dense dkernel")
    check_exact(gb, np.zeros(4), "dense dbias")


def test_empty_batch_losses(isa):
    z = np.zeros((0, 5), np.float32)
    assert ops.softmax(z).shape == (0, 5) and ops.sigmoid(z).shape == (0, 5)
    loss, dz = ops.sparse_softmax_cross_entropy(z, np.zeros(0, np.int64))
    assert loss.shape == (0,) and dz.shape == (0, 5)
    loss, dz = ops.softmax_cross_entropy(z, z)
    assert loss.shape == (0,) and dz.shape == (0, 5)
    loss, dz = ops.sigmoid_binary_cross_entropy(z, z)
    assert loss.shape == (0, 5) and dz.shape == (0, 5)


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
    x = r.standard_normal((n, h, w, cin)).astype(np.float32)
    kern = r.standard_normal((*k, cin, cout)).astype(np.float32)
    b = r.standard_normal(cout).astype(np.float32)
    dy = r.standard_normal((n, oh, ow, cout)).astype(np.float32)
    kw, rkw = (
        dict(strides=s, padding=pad, dilation_rate=d),
        dict(strides=s, padding=pad, dilation=d),
    )
    check(ops.conv2d(x, kern, b, **kw), ref.conv2d(x, kern, b, **rkw), what="conv2d")
    grads = ops.conv2d_grad(x, kern, dy, **kw)
    for got, exp, name in zip(grads, ref.conv2d_grad(x, kern, dy, **rkw), "dx dk db".split()):
        check(got, exp, what=name)
    bsz, fin, fout = int(r.integers(1, 100)), int(r.integers(1, 600)), int(r.integers(1, 200))
    xd = r.standard_normal((bsz, fin)).astype(np.float32)
    kd = r.standard_normal((fin, fout)).astype(np.float32)
    dyd = r.standard_normal((bsz, fout)).astype(np.float32)
    check(ops.dense(xd, kd), ref.dense(xd, kd), what="dense")
    for got, exp, name in zip(ops.dense_grad(xd, kd, dyd), ref.dense_grad(xd, kd, dyd), "xkb"):
        check(got, exp, what=f"dense d{name}")


def test_nan_propagates(isa, rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    x[1, 2, 3, 1] = np.nan
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    for kw in (dict(), dict(padding="same", strides=2), dict(dilation_rate=2)):
        rkw = {("dilation" if a == "dilation_rate" else a): v for a, v in kw.items()}
        y = ops.conv2d(x, k, **kw)
        expected_nan = np.isnan(ref.conv2d(x, k, **rkw))
        assert expected_nan.any()
        np.testing.assert_array_equal(np.isnan(y), expected_nan, err_msg=f"conv2d {kw}")
        yr = ops.conv2d(x, k, activation="relu", **kw)
        np.testing.assert_array_equal(np.isnan(yr), expected_nan, err_msg=f"conv2d relu {kw}")
    kn = k.copy()
    kn[1, 1, 0, 2] = np.nan
    assert np.isnan(ops.conv2d(x[:1], kn, padding="same")[..., 2]).all()
    assert not np.isnan(ops.conv2d(x[:1], kn, padding="same")[..., :2]).any()

    dy = rng.standard_normal((2, 4, 5, 4)).astype(np.float32)
    dy[0, 1, 1, 0] = np.nan
    xc = np.nan_to_num(x)
    gx, gk, gb = ops.conv2d_grad(xc, k, dy)
    rx, _, _ = ref.conv2d_grad(xc, k, dy)
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(rx), err_msg="conv2d_grad dx")
    assert np.isnan(gk[..., 0]).all() and np.isnan(gb[0])

    xd = rng.standard_normal((3, 5)).astype(np.float32)
    xd[1, 2] = np.nan
    kd = rng.standard_normal((5, 4)).astype(np.float32)
    yd = ops.dense(xd, kd)
    assert np.isnan(yd[1]).all() and not np.isnan(yd[[0, 2]]).any()
    assert np.isnan(ops.dense(xd, kd, activation="relu")[1]).all()

    for pool in (ops.max_pool2d, ops.avg_pool2d):
        for kw in (dict(), dict(pool_size=3, strides=1, padding="same")):
            y = pool(x, **kw)
            touched = np.isnan(ref.avg_pool2d(x, **kw))  # the windows that hold the NaN
            np.testing.assert_array_equal(np.isnan(y), touched, err_msg=f"{pool.__name__} {kw}")

    r = ops.relu(np.array([np.nan, -1.0, 1.0], np.float32))
    assert np.isnan(r[0]) and r[1] == 0 and r[2] == 1


# ============================================================================================
# output-shape helpers


@pytest.mark.parametrize("i", range(0, len(CONV_CASES), 3))
def test_conv2d_output_shape(i):
    c = CONV_CASES[i]
    expected = ref.conv_output_shape(
        (c["h"], c["w"]), c["k"], c["strides"], c["padding"], c["dilation"]
    )
    got = ops.conv2d_output_shape((c["h"], c["w"]), c["k"], **_kw(c))
    assert tuple(got) == expected
    got = ops.conv2d_output_shape((c["n"], c["h"], c["w"], c["cin"]), c["k"], **_kw(c))
    assert tuple(got) == expected
    x, k, b, y, _, _ = conv_case_data(i)
    assert y.shape[1:3] == expected


@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_pool2d_output_shape(i):
    c = POOL_CASES[i]
    expected = ref.pool_output_shape((c["h"], c["w"]), **_pkw(c))
    assert tuple(ops.pool2d_output_shape((c["h"], c["w"]), **_pkw(c))) == expected
    assert tuple(ops.pool2d_output_shape((2, c["h"], c["w"], 3), **_pkw(c))) == expected


def test_output_shape_helpers_refuse_empty_outputs():
    with pytest.raises(ValueError):
        ops.conv2d_output_shape((2, 2), 3)
    with pytest.raises(ValueError):
        ops.conv2d_output_shape((5, 5), 3, dilation_rate=3)
    with pytest.raises(ValueError):
        ops.pool2d_output_shape((1, 4), 2)
    assert tuple(ops.conv2d_output_shape((2, 2), 3, padding="same")) == (2, 2)
    assert tuple(ops.pool2d_output_shape((1, 4), 2, padding="same")) == (1, 2)


# ============================================================================================
# optimizers: several steps against the Keras formulas, in place


def _opt_arrays(rng, shape=(33, 17)):
    w = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(6)]
    grads[2][0, :] = 0.0  # zero gradients are a corner for rmsprop
    return w, grads


def _assert_in_place(arr, before_id, before_ptr, name):
    assert id(arr) == before_id and arr.ctypes.data == before_ptr, f"{name} replaced"


@pytest.mark.parametrize(
    "lr,momentum,nesterov",
    [(0.01, 0.0, False), (0.1, 0.9, False), (0.05, 0.9, True), (0.3, 0.5, True)],
)
def test_sgd_update(rng, lr, momentum, nesterov):
    w, grads = _opt_arrays(rng)
    buf = np.zeros_like(w) if momentum else None
    w64, m64 = w.astype(np.float64), np.zeros(w.shape)
    wid, wptr = id(w), w.ctypes.data
    for g in grads:
        ops.sgd_update(w, g, buf, learning_rate=lr, momentum=momentum, nesterov=nesterov)
        w64, m64 = ref.sgd_step(w64, g, m64, lr, momentum, nesterov)
        _assert_in_place(w, wid, wptr, "param")
        check(w, w64, tol=1e-5, what="param")
        if momentum:
            check(buf, m64, tol=1e-5, what="momentum buffer")


@pytest.mark.parametrize("lr,rho,eps", [(0.001, 0.9, 1e-7), (0.01, 0.5, 1e-3)])
def test_rmsprop_update(rng, lr, rho, eps):
    w, grads = _opt_arrays(rng)
    vel = np.zeros_like(w)
    w64, v64 = w.astype(np.float64), np.zeros(w.shape)
    ids = (id(w), w.ctypes.data, id(vel), vel.ctypes.data)
    for g in grads:
        ops.rmsprop_update(w, g, vel, learning_rate=lr, rho=rho, epsilon=eps)
        w64, v64 = ref.rmsprop_step(w64, g, v64, lr, rho, eps)
        _assert_in_place(w, ids[0], ids[1], "param")
        _assert_in_place(vel, ids[2], ids[3], "velocity")
        check(w, w64, tol=1e-5, what="param")
        check(vel, v64, tol=1e-5, what="velocity")
    d = ops.rmsprop_update
    w2, v2 = np.ones(3, np.float32), np.zeros(3, np.float32)
    d(w2, np.ones(3, np.float32), v2, learning_rate=0.001)  # defaults rho=0.9 eps=1e-7
    check(w2, ref.rmsprop_step(np.ones(3), np.ones(3), np.zeros(3), 0.001)[0], tol=1e-6)


@pytest.mark.parametrize("lr,b1,b2,eps", [(0.001, 0.9, 0.999, 1e-7), (0.1, 0.5, 0.9, 1e-4)])
def test_adam_update(rng, lr, b1, b2, eps):
    w, grads = _opt_arrays(rng)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w64, m64, v64 = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    ids = (id(w), w.ctypes.data, id(m), m.ctypes.data, id(v), v.ctypes.data)
    for t, g in enumerate(grads, start=1):
        ops.adam_update(
            w, g, m, v, learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, iteration=t
        )
        w64, m64, v64 = ref.adam_step(w64, g, m64, v64, lr, t, b1, b2, eps)
        _assert_in_place(w, ids[0], ids[1], "param")
        _assert_in_place(m, ids[2], ids[3], "m")
        _assert_in_place(v, ids[4], ids[5], "v")
        check(w, w64, tol=1e-5, what=f"param step {t}")
        check(m, m64, tol=1e-5, what=f"m step {t}")
        check(v, v64, tol=1e-5, what=f"v step {t}")
    w2, m2, v2 = np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
    ops.adam_update(w2, np.full(3, 2, np.float32), m2, v2, learning_rate=0.001, iteration=1)
    exp = ref.adam_step(np.ones(3), np.full(3, 2.0), np.zeros(3), np.zeros(3), 0.001, 1)[0]
    check(w2, exp, tol=1e-6, what="adam defaults")


def test_optimizers_accept_converted_grads(rng):
    w = rng.standard_normal((4, 6)).astype(np.float32)
    g = rng.standard_normal((6, 4)).T  # float64, non-contiguous
    w1 = w.copy()
    ops.sgd_update(w1, g, None, learning_rate=0.1)
    check(w1, ref.sgd_step(w, g, None, 0.1)[0], tol=1e-6)


# ============================================================================================
# optional: the references themselves cross-checked against PyTorch


def _torch_conv(x, k, strides, padding, dilation):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    kh, kw = k.shape[:2]
    sh, sw = ref.pair(strides)
    dh, dw = ref.pair(dilation)
    _, (pt, pb) = ref.out_and_pad(x.shape[1], kh, sh, dh, padding)
    _, (pl, pr) = ref.out_and_pad(x.shape[2], kw, sw, dw, padding)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    kt = torch.tensor(k.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    y = tf.conv2d(tf.pad(xt, (pl, pr, pt, pb)), kt, stride=(sh, sw), dilation=(dh, dw))
    return xt, kt, y


@pytest.mark.parametrize("i", range(0, len(CONV_CASES), 4))
def test_reference_conv_matches_torch(i):
    c = CONV_CASES[i]
    x, k, b, y, dy, (dx, dk, db) = conv_case_data(i)
    xt, kt, yt = _torch_conv(x, k, c["strides"], c["padding"], c["dilation"])
    y0 = ref.conv2d(x, k, None, **_rkw(c))
    np.testing.assert_allclose(yt.detach().numpy().transpose(0, 2, 3, 1), y0, atol=1e-9)
    import torch

    (yt * torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy().transpose(0, 2, 3, 1), dx, atol=1e-9)
    np.testing.assert_allclose(kt.grad.numpy().transpose(2, 3, 1, 0), dk, atol=1e-9)


@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_reference_pools_match_torch(i):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    c = POOL_CASES[i]
    x, dy = pool_case_data(i)
    ph, pw = ref.pair(c["pool_size"])
    sh, sw = ref.pair(c["strides"] if c["strides"] is not None else c["pool_size"])
    _, (pt, pb) = ref.out_and_pad(x.shape[1], ph, sh, 1, c["padding"])
    _, (pl, pr) = ref.out_and_pad(x.shape[2], pw, sw, 1, c["padding"])
    dyt = torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64)

    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    y = tf.max_pool2d(tf.pad(xt, (pl, pr, pt, pb), value=-np.inf), (ph, pw), (sh, sw))
    (y * dyt).sum().backward()
    np.testing.assert_allclose(
        y.detach().numpy().transpose(0, 2, 3, 1), ref.max_pool2d(x, **_pkw(c))
    )
    np.testing.assert_allclose(
        xt.grad.numpy().transpose(0, 2, 3, 1), ref.max_pool2d_grad(x, dy, **_pkw(c)), atol=1e-12
    )

    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    s = tf.avg_pool2d(tf.pad(xt, (pl, pr, pt, pb)), (ph, pw), (sh, sw), divisor_override=1)
    ones = tf.pad(torch.ones((1, 1, *x.shape[1:3]), dtype=torch.float64), (pl, pr, pt, pb))
    y = s / tf.avg_pool2d(ones, (ph, pw), (sh, sw), divisor_override=1)
    (y * dyt).sum().backward()
    np.testing.assert_allclose(
        y.detach().numpy().transpose(0, 2, 3, 1), ref.avg_pool2d(x, **_pkw(c)), atol=1e-12
    )
    np.testing.assert_allclose(
        xt.grad.numpy().transpose(0, 2, 3, 1), ref.avg_pool2d_grad(x, dy, **_pkw(c)), atol=1e-12
    )


def test_reference_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    r = np.random.default_rng(3)
    z = r.standard_normal((6, 7)) * 3
    lab = r.integers(0, 7, 6)
    t = r.random((6, 7))
    zt = torch.tensor(z)
    np.testing.assert_allclose(
        tf.cross_entropy(zt, torch.tensor(lab), reduction="none").numpy(),
        ref.sparse_softmax_cross_entropy(z, lab)[0],
    )
    np.testing.assert_allclose(
        -(torch.tensor(t) * tf.log_softmax(zt, -1)).sum(-1).numpy(),
        ref.softmax_cross_entropy(z, t)[0],
    )
    np.testing.assert_allclose(
        tf.binary_cross_entropy_with_logits(zt, torch.tensor(t), reduction="none").numpy(),
        ref.sigmoid_binary_cross_entropy(z, t)[0],
    )
    np.testing.assert_allclose(torch.softmax(zt, -1).numpy(), ref.softmax(z))
    np.testing.assert_allclose(torch.sigmoid(zt).numpy(), ref.sigmoid(z))


def test_reference_optimizers_match_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    w0 = r.standard_normal(10)
    grads = [r.standard_normal(10) for _ in range(5)]
    # torch SGD (dampening 0) keeps b = mu*b + g and steps w -= lr*b; Keras' m = -lr*b
    for mom, nest in [(0.0, False), (0.9, False), (0.9, True)]:
        p = torch.tensor(w0, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1, momentum=mom, nesterov=nest)
        w, m = w0.copy(), np.zeros(10)
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
            w, m = ref.sgd_step(w, g, m, 0.1, mom, nest)
        np.testing.assert_allclose(p.detach().numpy(), w, atol=1e-12)
    # torch Adam puts eps outside sqrt(v_hat): eps_torch = eps_keras / sqrt(1 - b2^t) per step,
    # so compare with eps tiny where both agree
    p = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-12)
    w, m, v = w0.copy(), np.zeros(10), np.zeros(10)
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        w, m, v = ref.adam_step(w, g, m, v, 0.01, t, eps=1e-12)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9)


# ============================================================================================
# more input handling: misaligned buffers, other dtypes, parameter types, inputs left untouched


def _misaligned(a, offset):
    """A C-contiguous float32 copy of `a` whose data starts `offset` bytes past a fresh buffer
    (offset 1: not even 4-byte aligned; 4, 12: aligned for float32 but not for SIMD)."""
    a = np.asarray(a, np.float32)
    buf = np.frombuffer(bytearray(a.nbytes + 64), np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start : start + a.nbytes].view(np.float32).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("offset", [1, 4, 12])
def test_misaligned_buffers(isa, rng, offset):
    x = rng.standard_normal((2, 9, 11, 17)).astype(np.float32)
    k = rng.standard_normal((3, 3, 17, 33)).astype(np.float32)
    dy = rng.standard_normal((2, 5, 6, 33)).astype(np.float32)
    kw = dict(strides=2, padding="same")
    xm, km, dym = (_misaligned(a, offset) for a in (x, k, dy))
    assert xm.ctypes.data % 64 == offset
    check(ops.conv2d(xm, km, **kw), ref.conv2d(x, k, **kw), what="conv2d")
    for got, exp in zip(ops.conv2d_grad(xm, km, dym, **kw), ref.conv2d_grad(x, k, dy, **kw)):
        check(got, exp, what="conv2d_grad")
    kd64 = rng.standard_normal((x[0].size, 33)).astype(np.float32)
    xd, kd = _misaligned(x.reshape(2, -1), offset), _misaligned(kd64, offset)
    check(ops.dense(xd, kd), ref.dense(xd, kd), what="dense")
    check(ops.relu(xm), ref.relu(x), what="relu")
    check(ops.max_pool2d(xm, 3, 2, "same"), ref.max_pool2d(x, 3, 2, "same"), what="max_pool2d")
    check(ops.avg_pool2d(xm, 3, 2, "same"), ref.avg_pool2d(x, 3, 2, "same"), what="avg_pool2d")
    if offset % 4 == 0:  # in-place updates need float32-aligned C-contiguous arrays
        w = rng.standard_normal(37).astype(np.float32)
        g = rng.standard_normal(37).astype(np.float32)
        wm, mm, vm = (
            _misaligned(w, offset),
            _misaligned(np.zeros(37), offset),
            _misaligned(np.zeros(37), offset),
        )
        ops.adam_update(wm, g, mm, vm, learning_rate=0.01, iteration=1)
        check(wm, ref.adam_step(w, g, np.zeros(37), np.zeros(37), 0.01, 1)[0], tol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64, np.uint8])
def test_other_numeric_dtypes_are_converted(isa, rng, dtype):
    x = rng.integers(0, 4, size=(2, 6, 5, 3)).astype(dtype)
    k = rng.integers(-2, 3, size=(3, 3, 3, 4)).astype(dtype)
    check_exact(ops.conv2d(x, k, padding="same"), ref.conv2d(x, k, padding="same"), "conv2d")
    check_exact(ops.max_pool2d(x), ref.max_pool2d(x), "max_pool2d")
    check_exact(ops.relu(x), ref.relu(x), "relu")
    xd, kd = x.reshape(2, -1), rng.integers(-2, 3, size=(90, 4)).astype(dtype)
    check_exact(ops.dense(xd, kd), ref.dense(xd, kd), "dense")


def test_parameter_types(isa, rng):
    x = rng.standard_normal((1, 9, 8, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    exp = ref.conv2d(x, k, strides=(2, 1), dilation=(1, 2), padding="same")
    for s, d in [
        ((2, 1), (1, 2)),
        ([2, 1], [1, 2]),
        ((np.int64(2), np.int32(1)), np.array([1, 2])),
    ]:
        check(ops.conv2d(x, k, strides=s, dilation_rate=d, padding="same"), exp)
    check(ops.conv2d(x, k, strides=np.int64(2)), ref.conv2d(x, k, strides=2))
    check(ops.max_pool2d(x, np.int64(2), [1, 2]), ref.max_pool2d(x, 2, (1, 2)))
    check(
        ops.avg_pool2d(x, (np.int32(3), 2), None, "same"), ref.avg_pool2d(x, (3, 2), None, "same")
    )


def _snapshot(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def test_inputs_are_not_modified_and_outputs_are_fresh(isa, rng):
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    dy = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    dyp = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    xd, kd = x.reshape(2, -1), rng.standard_normal((126, 5)).astype(np.float32)
    dyd = rng.standard_normal((2, 5)).astype(np.float32)
    z = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.random((4, 5)).astype(np.float32)
    lab = np.array([1, 0, 4, 2])
    inputs = (x, k, b, dy, dyp, xd, kd, dyd, z, t, lab)
    before = _snapshot(*inputs)
    for a in inputs:
        a.flags.writeable = False  # read-only inputs must be accepted
    calls = [
        (ops.conv2d(x, k, b, padding="same", activation="relu"), (x, k, b)),
        (ops.conv2d_grad(x, k, dy, padding="same"), (x, k, dy)),
        (ops.relu(x), (x,)),
        (ops.relu_grad(x, x), (x,)),
        (ops.max_pool2d(x), (x,)),
        (ops.max_pool2d_grad(x, dyp), (x, dyp)),
        (ops.avg_pool2d_grad(x, dyp), (x, dyp)),
        (ops.dense(xd, kd, activation="relu"), (xd, kd)),
        (ops.dense_grad(xd, kd, dyd), (xd, kd)),
        (ops.softmax(z), (z,)),
        (ops.sigmoid(z), (z,)),
        (ops.softmax_cross_entropy(z, t), (z, t)),
        (ops.sparse_softmax_cross_entropy(z, lab), (z,)),
        (ops.sigmoid_binary_cross_entropy(z, t), (z, t)),
    ]
    for a, b0 in zip(inputs, before):
        np.testing.assert_array_equal(a, b0, err_msg="an op modified its input")
    for i, (out, ins) in enumerate(calls):
        for o in out if isinstance(out, tuple) else (out,):
            if o is None:
                continue
            assert o.flags.writeable, f"call {i}: read-only output"
            assert not any(np.shares_memory(o, a) for a in ins), f"call {i}: output aliases input"


def test_relu_keeps_the_shape(isa):
    for shape in [(), (0,), (5,), (2, 0, 3), (2, 3, 1, 1, 2)]:
        x = np.full(shape, -1.5, np.float32)
        assert ops.relu(x).shape == shape, f"relu of shape {shape}"
        assert ops.relu_grad(x, x).shape == shape, f"relu_grad of shape {shape}"
    assert ops.relu(np.float32(2.5)) == 2.5


def test_dense_with_zero_input_features(isa, rng):
    """in_features == 0: y = bias and dbias = dy.sum(0) (or a clean refusal)."""
    x, k = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    try:
        y = ops.dense(x, k, b)
        grads = ops.dense_grad(x, k, dy)
    except ValueError:
        return
    check(y, ref.dense(x, k, b), what="dense")
    for got, exp, name in zip(grads, ref.dense_grad(x, k, dy), "dx dk db".split()):
        check(got, exp, what=name)


@pytest.mark.parametrize(
    "shape, pool, strides, padding",
    [
        ((3, 6, 7, 5), 2, None, "valid"),
        ((2, 7, 7, 33), 3, 2, "same"),  # overlapping windows, padded edge
        ((1, 5, 4, 17), (2, 3), 1, "same"),
    ],
)
def test_max_pool2d_relu_grad_is_relu_grad_of_max_pool_grad(
    isa, rng, shape, pool, strides, padding
):
    # x is a ReLU output: many exact zeros (whole zero windows included) and ties
    x = np.maximum(rng.integers(-3, 3, size=shape), 0).astype(np.float32)
    x[0, :2, :2, :] = 0.0
    out_h, out_w = ops.pool2d_output_shape(shape, pool, strides, padding)
    dy = rng.standard_normal((shape[0], out_h, out_w, shape[3])).astype(np.float32)
    expected = ref.relu_grad(x, ref.max_pool2d_grad(x, dy, pool, strides, padding))
    got = ops.max_pool2d_relu_grad(x, dy, pool, strides, padding)
    assert ref.rel_err(got, expected) <= 1e-6
    assert np.all(got[x == 0] == 0)


# A first layer (conv, then max pooling whose windows tile its output) fused both ways.
FIRST_LAYER_POOL_CASES = [
    (4, (28, 28), 1, (3, 3), 32, {}, 2),  # the lecture's first MNIST layer, smaller batch
    (3, (13, 11), 3, (3, 3), 17, {}, 2),  # odd sizes: a row and a column under no window
    (2, (12, 12), 3, (3, 3), 33, dict(padding="same"), 2),
    (2, (15, 14), 2, (2, 3), 5, dict(strides=2, padding="same"), (3, 2)),
    (1, (9, 10), 4, (5, 5), 16, dict(padding="same", dilation_rate=2), 3),
    (2, (7, 9), 1, (1, 1), 3, dict(strides=(1, 2)), 1),
    (2, (9, 9), 8, (3, 3), 12, {}, 2),  # 8 channels: the general paths
]


def _first_layer_data(rng, n, hw, cin, k, cout, conv_kw):
    """x, kernel, bias and the reference's convolution arguments of a FIRST_LAYER_POOL_CASES row."""
    x = rng.standard_normal((n, *hw, cin)).astype(np.float32)
    kernel = rng.standard_normal((*k, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    rkw = dict(
        strides=conv_kw.get("strides", 1),
        padding=conv_kw.get("padding", "valid"),
        dilation=conv_kw.get("dilation_rate", 1),
    )
    return x, kernel, bias, rkw


@pytest.mark.parametrize("n, hw, cin, k, cout, conv_kw, pool", FIRST_LAYER_POOL_CASES)
def test_conv2d_relu_max_pool_weight_grad(isa, rng, n, hw, cin, k, cout, conv_kw, pool):
    """The fused first-layer gradient against the float64 chain it replaces: ReLU mask, max
    pooling's gradient (ties to the first maximal cell), then the convolution's weight gradient."""
    x, kernel, bias, rkw = _first_layer_data(rng, n, hw, cin, k, cout, conv_kw)
    y = f32(ref.relu(ref.conv2d(x, kernel, bias, **rkw)))
    y[0, :2, :2, :] = 0.0  # a whole zero window passes nothing back through the ReLU
    y[-1, 2:4, 2:4, :3] = 1.5  # ties: the first maximal cell takes the gradient
    oh, ow = ops.pool2d_output_shape(y.shape, pool)
    pool_dy = rng.standard_normal((n, oh, ow, cout)).astype(np.float32)
    dz = ref.relu_grad(y, ref.max_pool2d_grad(y, pool_dy, pool))
    _, dk_ref, db_ref = ref.conv2d_grad(x, kernel, dz, **rkw)
    dk, db = ops.conv2d_relu_max_pool_weight_grad(x, kernel, y, pool_dy, pool_size=pool, **conv_kw)
    check(dk, dk_ref, what="dkernel")
    check(db, db_ref, what="dbias")


@pytest.mark.parametrize("n, hw, cin, k, cout, conv_kw, pool", FIRST_LAYER_POOL_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_max_pool(isa, rng, n, hw, cin, k, cout, conv_kw, pool, activation):
    """The fused forward pass against the float64 convolution and pooling; without the kept
    convolution output, the same pooled result."""
    conv_kw = dict(conv_kw, activation=activation)
    x, kernel, bias, rkw = _first_layer_data(rng, n, hw, cin, k, cout, conv_kw)
    y_ref = ref.conv2d(x, kernel, bias, activation=activation, **rkw)
    y, pooled = ops.conv2d_max_pool(x, kernel, bias, pool_size=pool, **conv_kw)
    check(y, y_ref, what="conv output")
    check(pooled, ref.max_pool2d(y_ref, pool), what="pooled")
    alone, pooled_alone = ops.conv2d_max_pool(
        x, kernel, bias, pool_size=pool, keep_conv_output=False, **conv_kw
    )
    assert alone is None
    np.testing.assert_array_equal(pooled_alone, pooled)


def test_first_layer_fused_ops_without_bias_and_with_nan(rng):
    """No bias; NaN in the conv output wins its window in the fused backward as in the two
    passes (fastconv's max pooling lets NaN win, unlike the reference's)."""
    x = rng.standard_normal((2, 10, 9, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    y, pooled = ops.conv2d_max_pool(x, kernel, activation="relu")
    np.testing.assert_array_equal(y, ops.conv2d(x, kernel, activation="relu"))
    np.testing.assert_array_equal(pooled, ops.max_pool2d(y))
    y[0, 1, 1, 2] = np.nan
    pool_dy = rng.standard_normal(pooled.shape).astype(np.float32)
    dk, db = ops.conv2d_relu_max_pool_weight_grad(x, kernel, y, pool_dy)
    _, dk2, db2 = ops.conv2d_grad(x, kernel, ops.max_pool2d_relu_grad(y, pool_dy), need_dx=False)
    np.testing.assert_allclose(dk, dk2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, db2, rtol=1e-5, atol=1e-5)


def test_first_layer_fused_core_calls_refuse_pools_that_do_not_tile():
    """The bindings check what ops validates, without products that could wrap around."""
    x = np.zeros((1, 10, 10, 1), np.float32)
    kernel = np.zeros((3, 3, 1, 4), np.float32)
    y = np.zeros((1, 8, 8, 4), np.float32)
    pooled = np.zeros((1, 4, 4, 4), np.float32)
    dk, db = np.zeros((3, 3, 1, 4), np.float32), np.zeros(4, np.float32)
    huge = (2**62, 1)
    with pytest.raises(ValueError, match="tile|non-overlapping"):
        _core.conv2d_forward_max_pool(
            x, kernel, None, y, pooled, (8, 8), (1, 1), (1, 1), (0, 0), huge, True
        )
    with pytest.raises(ValueError, match="tile|non-overlapping"):
        _core.conv2d_backward_weight_through_max_pool(
            x, y, pooled, dk, db, (1, 1), (1, 1), (0, 0), huge
        )


def test_conv2d_relu_max_pool_weight_grad_rejects_bad_shapes(rng):
    x = rng.standard_normal((2, 10, 10, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    y = np.zeros((2, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"pool_dy.*\(2, 4, 4, 8\)"):
        ops.conv2d_relu_max_pool_weight_grad(x, kernel, y, np.zeros((2, 4, 4, 7), np.float32))
    with pytest.raises(ValueError, match=r"y.*\(2, 8, 8, 8\)"):
        ops.conv2d_relu_max_pool_weight_grad(
            x, kernel, np.zeros((2, 9, 8, 8), np.float32), np.zeros((2, 4, 4, 8), np.float32)
        )


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
    plan = ops._ConvPlan(x, kernel, 1, "valid", 1)
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
    (2, 17, 19, 40, 24, (3, 3), 1, 1, "same"),
    (1, 23, 20, 33, 17, (3, 5), 1, 1, "same"),
    (2, 15, 16, 48, 32, (3, 3), (2, 1), 1, "same"),
    (1, 30, 31, 20, 64, (5, 3), 1, (2, 1), "same"),
    (1, 41, 43, 64, 40, (3, 3), 1, 1, "valid"),
    (2, 14, 14, 24, 20, (3, 3), (1, 2), 1, "same"),
]


@pytest.mark.parametrize("case", INDIRECT_DX_CASES, ids=[str(c) for c in INDIRECT_DX_CASES])
def test_conv2d_input_gradient_indirect_paths(isa, case):
    n, h, w, c, o, k, strides, dilation, padding = case
    r = np.random.default_rng(41)
    x = r.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = r.standard_normal((*k, c, o)).astype(np.float32)
    kw = dict(strides=strides, padding=padding, dilation_rate=dilation)
    dy = r.standard_normal(ops.conv2d(x, kernel, **kw).shape).astype(np.float32)
    expected = ref.conv2d_grad(x, kernel, dy, strides=strides, padding=padding, dilation=dilation)
    check(ops.conv2d_grad(x, kernel, dy, **kw)[0], expected[0], what="conv2d dx")
