"""Property tests (hypothesis): every op and gradient, the fused first-layer ops, the losses and
the optimizer updates against the float64 reference (tests/reference.py), on every ISA (the `isa`
fixture, which also splits every kernel over all threads), over shapes drawn at random; and
arguments that do not fit, which must raise ValueError or TypeError.

EXAMPLES examples per test and ISA (derandomized, so CI runs the same cases every time; set
FASTCONV_PROPERTY_EXAMPLES to search longer locally).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import reference as ref
from fastconv import ops

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402

EXAMPLES = int(os.environ.get("FASTCONV_PROPERTY_EXAMPLES", "25"))
TOL = 1e-4  # max|got - ref| / max(1, max|ref|)

prop = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def close(got, expected, tol=TOL):
    got = got if isinstance(got, (tuple, list)) else (got,)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == np.float32, (i, g.dtype)
        err = ref.rel_err(g, e)
        assert err <= tol, f"output {i}: relative error {err:.2e} > {tol:.0e}"


def arrays(seed, *shapes):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(np.float32) for s in shapes]


@st.composite
def conv_problems(draw, max_hw=11):
    """(x shape, kernel shape, keyword arguments) of a valid convolution."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    cin, cout = draw(st.integers(1, 9)), draw(st.integers(1, 18))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["valid", "same"]))
    if padding == "valid":
        assume((kh - 1) * dilation[0] < h and (kw - 1) * dilation[1] < w)
    kw_args = dict(strides=strides, padding=padding, dilation_rate=dilation)
    ref_args = dict(strides=strides, padding=padding, dilation=dilation)
    return (n, h, w, cin), (kh, kw, cin, cout), kw_args, ref_args, draw(st.integers(0, 2**32))


@st.composite
def pool_problems(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 19))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    pool = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.sampled_from(["valid", "same"]))
    if padding == "valid":
        assume(pool[0] <= h and pool[1] <= w)
    return (n, h, w, c), pool, strides, padding, draw(st.integers(0, 2**32))


# ---------------------------------------------------------------------------- convolution
@prop
@given(p=conv_problems(), bias=st.booleans(), relu=st.booleans())
def test_conv2d(isa, p, bias, relu):
    xs, ks, kw_args, ref_args, seed = p
    x, k, b = arrays(seed, xs, ks, ks[3:])
    b = b if bias else None
    act = "relu" if relu else None
    close(
        ops.conv2d(x, k, b, activation=act, **kw_args),
        ref.conv2d(x, k, b, activation=act, **ref_args),
    )


@prop
@given(p=conv_problems())
def test_conv2d_grad(isa, p):
    xs, ks, kw_args, ref_args, seed = p
    x, k = arrays(seed, xs, ks)
    (dy,) = arrays(seed + 1, ref.conv2d(x, k, **ref_args).shape)
    close(ops.conv2d_grad(x, k, dy, **kw_args), ref.conv2d_grad(x, k, dy, **ref_args))


@st.composite
def first_layer_problems(draw):
    """A convolution whose output a max pooling tiles (the fused first-layer ops)."""
    xs, ks, kw_args, ref_args, seed = draw(conv_problems(max_hw=14))
    oh, ow = ref.conv2d(np.zeros(xs, np.float32), np.zeros(ks, np.float32), **ref_args).shape[1:3]
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    assume(pool[0] <= oh and pool[1] <= ow)
    return xs, ks, kw_args, ref_args, pool, seed


@prop
@given(p=first_layer_problems(), relu=st.booleans())
def test_conv2d_max_pool(isa, p, relu):
    xs, ks, kw_args, ref_args, pool, seed = p
    x, k, b = arrays(seed, xs, ks, ks[3:])
    act = "relu" if relu else None
    y_ref = ref.conv2d(x, k, b, activation=act, **ref_args)
    y, pooled = ops.conv2d_max_pool(x, k, b, activation=act, pool_size=pool, **kw_args)
    close((y, pooled), (y_ref, ref.max_pool2d(y_ref, pool)))


@prop
@given(p=first_layer_problems())
def test_conv2d_relu_max_pool_weight_grad(isa, p):
    xs, ks, kw_args, ref_args, pool, seed = p
    x, k, b = arrays(seed, xs, ks, ks[3:])
    y = ref.relu(ref.conv2d(x, k, b, **ref_args)).astype(np.float32)
    (pool_dy,) = arrays(seed + 1, ref.max_pool2d(y, pool).shape)
    dz = ref.relu_grad(y, ref.max_pool2d_grad(y, pool_dy, pool))
    _, dk_ref, db_ref = ref.conv2d_grad(x, k, dz, **ref_args)
    got = ops.conv2d_relu_max_pool_weight_grad(x, k, y, pool_dy, pool_size=pool, **kw_args)
    close(got, (dk_ref, db_ref))


# ------------------------------------------------------------------------------- pooling
@prop
@given(p=pool_problems(), kind=st.sampled_from(["max", "avg"]))
def test_pooling_and_gradient(isa, p, kind):
    xs, pool, strides, padding, seed = p
    (x,) = arrays(seed, xs)
    fwd, grad = getattr(ops, f"{kind}_pool2d"), getattr(ops, f"{kind}_pool2d_grad")
    rfwd, rgrad = getattr(ref, f"{kind}_pool2d"), getattr(ref, f"{kind}_pool2d_grad")
    y = rfwd(x, pool, strides, padding)
    close(fwd(x, pool, strides, padding), y)
    (dy,) = arrays(seed + 1, y.shape)
    close(grad(x, dy, pool, strides, padding), rgrad(x, dy, pool, strides, padding))


@prop
@given(p=pool_problems())
def test_max_pool2d_relu_grad(isa, p):
    xs, pool, strides, padding, seed = p
    (x,) = arrays(seed, xs)
    x = np.maximum(x, 0)
    (dy,) = arrays(seed + 1, ref.max_pool2d(x, pool, strides, padding).shape)
    expected = ref.relu_grad(x, ref.max_pool2d_grad(x, dy, pool, strides, padding))
    close(ops.max_pool2d_relu_grad(x, dy, pool, strides, padding), expected)


# ------------------------------------------------------------------ dense and element-wise
@prop
@given(
    n=st.integers(1, 9),
    units=st.tuples(st.integers(1, 70), st.integers(1, 40)),
    relu=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_dense_and_gradient(isa, n, units, relu, seed):
    x, k, b, dy = arrays(seed, (n, units[0]), units, units[1:], (n, units[1]))
    act = "relu" if relu else None
    close(ops.dense(x, k, b, activation=act), ref.dense(x, k, b, activation=act))
    close(ops.dense_grad(x, k, dy), ref.dense_grad(x, k, dy))


@prop
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 70)), seed=st.integers(0, 2**32))
def test_elementwise(isa, shape, seed):
    x, dy = arrays(seed, shape, shape)
    x *= 4
    close(ops.relu(x), ref.relu(x))
    close(ops.relu_grad(x, dy), ref.relu_grad(x, dy))
    close(ops.softmax(x), ref.softmax(x))
    close(ops.sigmoid(x), ref.sigmoid(x))


# ------------------------------------------------------------------------------- losses
@prop
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 40)), seed=st.integers(0, 2**32))
def test_losses(isa, shape, seed):
    (logits,) = arrays(seed, shape)
    logits *= 5
    r = np.random.default_rng(seed)
    labels = r.integers(0, shape[1], shape[0])
    close(
        ops.sparse_softmax_cross_entropy(logits, labels),
        ref.sparse_softmax_cross_entropy(logits, labels),
    )
    targets = r.dirichlet(np.ones(shape[1]), shape[0]).astype(np.float32)
    close(ops.softmax_cross_entropy(logits, targets), ref.softmax_cross_entropy(logits, targets))
    binary = r.integers(0, 2, shape).astype(np.float32)
    close(
        ops.sigmoid_binary_cross_entropy(logits, binary),
        ref.sigmoid_binary_cross_entropy(logits, binary),
    )


# ---------------------------------------------------------------------- optimizer updates
@prop
@given(
    size=st.integers(1, 300),
    lr=st.floats(1e-4, 0.5),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    nesterov=st.booleans(),
    t=st.integers(1, 50),
    seed=st.integers(0, 2**32),
)
def test_optimizer_updates(isa, size, lr, momentum, nesterov, t, seed):
    w, g, m0 = arrays(seed, (size,), (size,), (size,))
    v0 = np.abs(arrays(seed + 1, (size,))[0])

    p, buf = w.copy(), m0.copy()
    ops.sgd_update(p, g, buf if momentum else None, learning_rate=lr, momentum=momentum,
                   nesterov=nesterov)  # fmt: skip
    w_ref, m_ref = ref.sgd_step(w, g, m0, lr, momentum, nesterov)
    close((p, buf) if momentum else p, (w_ref, m_ref) if momentum else w_ref)

    p, v = w.copy(), v0.copy()
    ops.rmsprop_update(p, g, v, learning_rate=lr)
    close((p, v), ref.rmsprop_step(w, g, v0, lr))

    p, m, v = w.copy(), m0.copy(), v0.copy()
    ops.adam_update(p, g, m, v, learning_rate=lr, iteration=t)
    close((p, m, v), ref.adam_step(w, g, m0, v0, lr, t))


# ------------------------------------------------------------------ arguments that do not fit
BAD = (ValueError, TypeError)


@prop
@given(p=conv_problems(), extra=st.integers(1, 3), which=st.sampled_from(["kernel", "dy"]))
def test_conv_with_mismatched_shapes_raises(isa, p, extra, which):
    xs, ks, kw_args, ref_args, seed = p
    x, k = arrays(seed, xs, ks)
    if which == "kernel":  # in_channels that do not match x
        (k_bad,) = arrays(seed, (*ks[:2], ks[2] + extra, ks[3]))
        with pytest.raises(BAD):
            ops.conv2d(x, k_bad, **kw_args)
    else:  # an output gradient of the wrong shape
        dys = list(ref.conv2d(x, k, **ref_args).shape)
        dys[1 + seed % 3] += extra
        (dy,) = arrays(seed, tuple(dys))
        with pytest.raises(BAD):
            ops.conv2d_grad(x, k, dy, **kw_args)


@prop
@given(p=pool_problems(), grow=st.integers(1, 3))
def test_pooling_with_mismatched_gradient_raises(isa, p, grow):
    xs, pool, strides, padding, seed = p
    (x,) = arrays(seed, xs)
    dys = list(ref.max_pool2d(x, pool, strides, padding).shape)
    dys[1 + seed % 3] += grow
    (dy,) = arrays(seed, tuple(dys))
    for grad in (ops.max_pool2d_grad, ops.avg_pool2d_grad, ops.max_pool2d_relu_grad):
        with pytest.raises(BAD):
            grad(x, dy, pool, strides, padding)


@prop
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 9),
    label=st.integers(-(2**40), 2**40),
    size=st.integers(1, 50),
    off=st.integers(1, 5),
)
def test_losses_and_updates_with_bad_arguments_raise(isa, rows, cols, label, size, off):
    (logits,) = arrays(0, (rows, cols))
    labels = np.zeros(rows, np.int64)
    labels[-1] = label if not 0 <= label < cols else cols + label
    with pytest.raises(BAD):
        ops.sparse_softmax_cross_entropy(logits, labels)
    with pytest.raises(BAD):
        ops.softmax_cross_entropy(logits, np.zeros((rows, cols + off), np.float32))
    with pytest.raises(BAD):
        ops.dense(logits, np.zeros((cols + off, 3), np.float32))
    p, g = np.zeros(size, np.float32), np.zeros(size + off, np.float32)
    with pytest.raises(BAD):
        ops.rmsprop_update(p, g, np.zeros(size, np.float32), learning_rate=0.1)
    with pytest.raises(BAD):
        ops.adam_update(p, p.copy(), p.copy(), p.copy(), learning_rate=0.1, iteration=0)
