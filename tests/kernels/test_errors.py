"""Bad input to fastconv.ops: a clean ValueError/TypeError naming the argument and the shapes,
MemoryError for outputs too large to allocate, never a crash."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from fastconv import ops

BAD = (ValueError, TypeError)


def _ints(msg):
    return [int(t) for t in re.findall(r"-?\d+", msg)]


def has_dims(msg, dims):
    """True when the integers of `dims` appear consecutively among the integers of msg
    (so '(2, 5, 5)', '[2,5,5]' and '2x5x5' all count)."""
    found, dims = _ints(msg), list(dims)
    return any(found[i : i + len(dims)] == dims for i in range(len(found) - len(dims) + 1))


def names(msg, name):
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", msg) is not None


@dataclasses.dataclass(frozen=True)
class Bad:
    """A call that must be refused: `call()` raises one of `exc`, and the message names `arg` (a
    name or a tuple of alternatives) and holds every shape in `shapes` and every word in `words`.
    The tables below are dicts from the case's id to its Bad."""

    call: object
    arg: object
    shapes: tuple = ()
    words: tuple = ()
    exc: tuple = BAD


def expect_bad(case, exc=None):
    """Run a Bad case (with `exc` in place of its exceptions, if given); return the message."""
    with pytest.raises(exc or case.exc) as info:
        case.call()
    msg = str(info.value)
    alternatives = (case.arg,) if isinstance(case.arg, str) else case.arg
    assert any(names(msg, a) for a in alternatives), f"{alternatives} not named in: {msg!r}"
    for s in case.shapes:
        assert has_dims(msg, s), f"shape {s} not in: {msg!r}"
    for w in case.words:
        assert w in msg, f"{w!r} not in: {msg!r}"
    return msg


def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


X = z(2, 5, 6, 3)
K = z(3, 3, 3, 4)
B = z(4)
DY = z(2, 3, 4, 4)  # conv2d(X, K) valid output shape


def _objects(shape):
    a = np.empty(shape, dtype=object)
    a[...] = 1.0  # even numeric objects are refused
    return a


def _strings(shape):
    return np.full(shape, "a")


# ---------------------------------------------------------------------------------------------
# conv2d / conv2d_grad

CONV_BAD = {
    "x rank 3": Bad(lambda: ops.conv2d(z(5, 6, 3), K), "x", [(5, 6, 3)], []),
    "x rank 5": Bad(lambda: ops.conv2d(z(1, 2, 5, 6, 3), K), "x", [(1, 2, 5, 6, 3)], []),
    "kernel rank 3": Bad(lambda: ops.conv2d(X, z(3, 3, 4)), "kernel", [(3, 3, 4)], []),
    "kernel rank 2": Bad(lambda: ops.conv2d(X, z(3, 4)), "kernel", [(3, 4)], []),
    "channel mismatch": Bad(
        lambda: ops.conv2d(X, z(3, 3, 2, 4)),
        ("x", "kernel"),
        [(2, 5, 6, 3), (3, 3, 2, 4)],
        [],
    ),
    "bias length": Bad(lambda: ops.conv2d(X, K, z(5)), "bias", [(5,)], []),
    "bias rank 2": Bad(lambda: ops.conv2d(X, K, z(1, 4)), "bias", [(1, 4)], []),
    "strides 0": Bad(lambda: ops.conv2d(X, K, strides=0), "strides", [], []),
    "strides -1": Bad(lambda: ops.conv2d(X, K, strides=-1), "strides", [], []),
    "strides (1, 0)": Bad(lambda: ops.conv2d(X, K, strides=(1, 0)), "strides", [], []),
    "strides float": Bad(lambda: ops.conv2d(X, K, strides=1.5), "strides", [], []),
    "strides bool": Bad(lambda: ops.conv2d(X, K, strides=True), "strides", [], []),
    "strides triple": Bad(lambda: ops.conv2d(X, K, strides=(1, 1, 1)), "strides", [], []),
    "dilation 0": Bad(lambda: ops.conv2d(X, K, dilation_rate=0), "dilation_rate", [], []),
    "dilation -2": Bad(lambda: ops.conv2d(X, K, dilation_rate=(1, -2)), "dilation_rate", [], []),
    "padding word": Bad(lambda: ops.conv2d(X, K, padding="full"), "padding", [], ["full"]),
    "padding empty": Bad(lambda: ops.conv2d(X, K, padding=""), "padding", [], []),
    "padding int": Bad(lambda: ops.conv2d(X, K, padding=1), "padding", [], []),
    "activation": Bad(lambda: ops.conv2d(X, K, activation="tanh"), "activation", [], ["tanh"]),
    "output <= 0": Bad(
        lambda: ops.conv2d(z(1, 2, 2, 1), z(3, 3, 1, 1)),
        ("x", "kernel"),
        [(2, 2)],
        [],
    ),
    "dilated output <= 0": Bad(
        lambda: ops.conv2d(z(1, 5, 9, 1), z(3, 3, 1, 1), dilation_rate=3),
        ("x", "kernel", "dilation_rate"),
        [(5, 9)],
        [],
    ),
    "kernel size 0": Bad(lambda: ops.conv2d(X, z(0, 3, 3, 4)), "kernel", [(0, 3, 3, 4)], []),
    "x objects": Bad(lambda: ops.conv2d(_objects((1, 4, 4, 3)), K), "x", [], []),
    "kernel objects": Bad(lambda: ops.conv2d(X, _objects((3, 3, 3, 4))), "kernel", [], []),
    "bias objects": Bad(lambda: ops.conv2d(X, K, _objects((4,))), "bias", [], []),
    "x strings": Bad(lambda: ops.conv2d(_strings((1, 4, 4, 3)), K), "x", [], []),
    "kernel bytes": Bad(lambda: ops.conv2d(X, np.full((3, 3, 3, 4), b"a")), "kernel", [], []),
    "x datetime": Bad(
        lambda: ops.conv2d(np.zeros((1, 4, 4, 3), "datetime64[s]"), K),
        "x",
        [],
        [],
    ),
    "x None": Bad(lambda: ops.conv2d(None, K), "x", [], []),
}

CONV_GRAD_BAD = {
    "dy channels": Bad(
        lambda: ops.conv2d_grad(X, K, z(2, 3, 4, 5)),
        "dy",
        [(2, 3, 4, 5), (2, 3, 4, 4)],
        [],
    ),
    "dy spatial": Bad(
        lambda: ops.conv2d_grad(X, K, z(2, 4, 4, 4)),
        "dy",
        [(2, 4, 4, 4), (2, 3, 4, 4)],
        [],
    ),
    "dy batch": Bad(
        lambda: ops.conv2d_grad(X, K, z(1, 3, 4, 4)),
        "dy",
        [(1, 3, 4, 4), (2, 3, 4, 4)],
        [],
    ),
    "dy same-padding shape": Bad(
        lambda: ops.conv2d_grad(X, K, DY, padding="same"),
        "dy",
        [(2, 3, 4, 4), (2, 5, 6, 4)],
        [],
    ),
    "dy rank 3": Bad(lambda: ops.conv2d_grad(X, K, z(3, 4, 4)), "dy", [(3, 4, 4)], []),
    "dy objects": Bad(lambda: ops.conv2d_grad(X, K, _objects(DY.shape)), "dy", [], []),
    "dy strings": Bad(lambda: ops.conv2d_grad(X, K, _strings(DY.shape)), "dy", [], []),
    "x rank 3": Bad(lambda: ops.conv2d_grad(z(5, 6, 3), K, DY), "x", [(5, 6, 3)], []),
    "channel mismatch": Bad(
        lambda: ops.conv2d_grad(X, z(3, 3, 2, 4), DY),
        ("x", "kernel"),
        [(2, 5, 6, 3), (3, 3, 2, 4)],
        [],
    ),
    "strides 0": Bad(lambda: ops.conv2d_grad(X, K, DY, strides=0), "strides", [], []),
    "dilation 0": Bad(lambda: ops.conv2d_grad(X, K, DY, dilation_rate=0), "dilation_rate", [], []),
    "padding word": Bad(lambda: ops.conv2d_grad(X, K, DY, padding="full"), "padding", [], ["full"]),
    "output <= 0": Bad(
        lambda: ops.conv2d_grad(z(1, 2, 2, 1), z(3, 3, 1, 1), z(1, 0, 0, 1)),
        ("x", "kernel"),
        [(2, 2)],
        [],
    ),
}


@pytest.mark.parametrize("case", CONV_BAD, ids=list(CONV_BAD))
def test_conv2d_bad_input(case):
    expect_bad(CONV_BAD[case])


@pytest.mark.parametrize("case", CONV_GRAD_BAD, ids=list(CONV_GRAD_BAD))
def test_conv2d_grad_bad_input(case):
    expect_bad(CONV_GRAD_BAD[case])


# ---------------------------------------------------------------------------------------------
# pooling

XP = z(2, 6, 7, 3)
DYP = z(2, 3, 3, 3)  # pool 2 valid


def _pool_bad(pool, grad):
    def call(x, *a, dy=None, **kw):
        if grad:
            return pool(x, DYP if dy is None else dy, *a, **kw)
        return pool(x, *a, **kw)

    cases = {
        "x rank 3": Bad(lambda: call(z(6, 7, 3)), "x", [(6, 7, 3)], []),
        "x rank 2": Bad(lambda: call(z(6, 7)), "x", [(6, 7)], []),
        "pool_size 0": Bad(lambda: call(XP, 0), "pool_size", [], []),
        "pool_size -1": Bad(lambda: call(XP, -1), "pool_size", [], []),
        "pool_size (2, 0)": Bad(lambda: call(XP, (2, 0)), "pool_size", [], []),
        "strides 0": Bad(lambda: call(XP, 2, 0), "strides", [], []),
        "pool_size float": Bad(lambda: call(XP, 2.0), "pool_size", [], []),
        "strides -2": Bad(lambda: call(XP, 2, (1, -2)), "strides", [], []),
        "padding word": Bad(lambda: call(XP, 2, None, "full"), "padding", [], ["full"]),
        "window larger than image": Bad(
            lambda: call(z(1, 2, 9, 1), 3, dy=z(1, 0, 3, 1)),
            ("x", "pool_size"),
            [(2, 9)],
            [],
        ),
        "x objects": Bad(lambda: call(_objects(XP.shape)), "x", [], []),
        "x strings": Bad(lambda: call(_strings(XP.shape)), "x", [], []),
    }
    if grad:
        cases.update(
            {
                "dy shape": Bad(
                    lambda: call(XP, dy=z(2, 3, 4, 3)),
                    "dy",
                    [(2, 3, 4, 3), (2, 3, 3, 3)],
                    [],
                ),
                "dy same shape": Bad(
                    lambda: call(XP, 3, 2, "same"),
                    "dy",
                    [(2, 3, 3, 3), (2, 3, 4, 3)],
                    [],
                ),
                "dy rank": Bad(lambda: call(XP, dy=z(3, 3, 3)), "dy", [(3, 3, 3)], []),
                "dy objects": Bad(lambda: call(XP, dy=_objects(DYP.shape)), "dy", [], []),
            }
        )
    return cases


POOL_BAD = {}
for _name, _fn, _grad in [
    ("max_pool2d", ops.max_pool2d, False),
    ("avg_pool2d", ops.avg_pool2d, False),
    ("max_pool2d_grad", ops.max_pool2d_grad, True),
    ("avg_pool2d_grad", ops.avg_pool2d_grad, True),
]:
    for _case, _v in _pool_bad(_fn, _grad).items():
        POOL_BAD[f"{_name}-{_case}"] = _v


@pytest.mark.parametrize("case", POOL_BAD, ids=list(POOL_BAD))
def test_pool_bad_input(case):
    expect_bad(POOL_BAD[case])


# ---------------------------------------------------------------------------------------------
# dense, relu, losses

XD, KD, BD, DYD = z(3, 5), z(5, 2), z(2), z(3, 2)

DENSE_BAD = {
    "x rank 1": Bad(lambda: ops.dense(z(5), KD), "x", [(5,)], []),
    "x rank 3": Bad(lambda: ops.dense(z(3, 1, 5), KD), "x", [(3, 1, 5)], []),
    "kernel rank 1": Bad(lambda: ops.dense(XD, z(5)), "kernel", [(5,)], []),
    "kernel rank 3": Bad(lambda: ops.dense(XD, z(5, 2, 1)), "kernel", [(5, 2, 1)], []),
    "features mismatch": Bad(lambda: ops.dense(XD, z(4, 2)), ("x", "kernel"), [(3, 5), (4, 2)], []),
    "bias length": Bad(lambda: ops.dense(XD, KD, z(3)), "bias", [(3,)], []),
    "activation": Bad(
        lambda: ops.dense(XD, KD, activation="softmax"), "activation", [], ["softmax"]
    ),
    "x objects": Bad(lambda: ops.dense(_objects((3, 5)), KD), "x", [], []),
    "kernel strings": Bad(lambda: ops.dense(XD, _strings((5, 2))), "kernel", [], []),
    "grad dy shape": Bad(lambda: ops.dense_grad(XD, KD, z(3, 3)), "dy", [(3, 3), (3, 2)], []),
    "grad dy batch": Bad(lambda: ops.dense_grad(XD, KD, z(4, 2)), "dy", [(4, 2), (3, 2)], []),
    "grad mismatch": Bad(
        lambda: ops.dense_grad(XD, z(4, 2), DYD),
        ("x", "kernel"),
        [(3, 5), (4, 2)],
        [],
    ),
    "grad dy objects": Bad(lambda: ops.dense_grad(XD, KD, _objects((3, 2))), "dy", [], []),
    "relu objects": Bad(lambda: ops.relu(_objects((3, 2))), "x", [], []),
    "relu strings": Bad(lambda: ops.relu(_strings((3, 2))), "x", [], []),
    "relu_grad shapes": Bad(
        lambda: ops.relu_grad(z(3, 2), z(2, 3)),
        ("x", "dy"),
        [(3, 2), (2, 3)],
        [],
    ),
    "relu_grad objects": Bad(lambda: ops.relu_grad(z(3, 2), _objects((3, 2))), "dy", [], []),
}

LOSS_BAD = {
    "sparse logits rank 1": Bad(
        lambda: ops.sparse_softmax_cross_entropy(z(5), np.zeros(5, int)),
        "logits",
        [(5,)],
        [],
    ),
    "sparse labels length": Bad(
        lambda: ops.sparse_softmax_cross_entropy(z(4, 3), np.zeros(5, int)),
        "labels",
        [(5,)],
        [],
    ),
    "sparse label too large": Bad(
        lambda: ops.sparse_softmax_cross_entropy(z(2, 3), np.array([0, 3])),
        "labels",
        [],
        [],
    ),
    "sparse label negative": Bad(
        lambda: ops.sparse_softmax_cross_entropy(z(2, 3), np.array([-1, 0])),
        "labels",
        [],
        [],
    ),
    "sparse logits objects": Bad(
        lambda: ops.sparse_softmax_cross_entropy(_objects((2, 3)), np.zeros(2, int)),
        "logits",
        [],
        [],
    ),
    "CE targets shape": Bad(
        lambda: ops.softmax_cross_entropy(z(4, 3), z(4, 2)),
        ("logits", "targets"),
        [(4, 3), (4, 2)],
        [],
    ),
    "BCE targets shape": Bad(
        lambda: ops.sigmoid_binary_cross_entropy(z(4, 3), z(3, 4)),
        ("logits", "targets"),
        [(4, 3), (3, 4)],
        [],
    ),
    "BCE targets same size, other shape": Bad(
        lambda: ops.sigmoid_binary_cross_entropy(z(4, 3), z(2, 6)),
        ("logits", "targets"),
        [(4, 3), (2, 6)],
        [],
    ),
    "BCE strings": Bad(
        lambda: ops.sigmoid_binary_cross_entropy(_strings((2, 2)), z(2, 2)),
        "logits",
        [],
        [],
    ),
}


@pytest.mark.parametrize("case", DENSE_BAD, ids=list(DENSE_BAD))
def test_dense_relu_bad_input(case):
    expect_bad(DENSE_BAD[case])


@pytest.mark.parametrize("case", LOSS_BAD, ids=list(LOSS_BAD))
def test_loss_bad_input(case):
    expect_bad(LOSS_BAD[case], exc=(ValueError, TypeError, IndexError))


# ---------------------------------------------------------------------------------------------
# optimizers: in place needs float32 C-contiguous param and state


def _ro(a):
    a = a.copy()
    a.flags.writeable = False
    return a


W, G = z(4, 3), np.ones((4, 3), np.float32)

OPT_BAD = {
    "sgd param float64": Bad(
        lambda: ops.sgd_update(z(4, 3, dtype=np.float64), G, None, learning_rate=0.1),
        "param",
        [],
    ),
    "sgd param strided": Bad(
        lambda: ops.sgd_update(z(4, 6)[:, ::2], G, None, learning_rate=0.1),
        "param",
        [],
    ),
    "sgd param fortran": Bad(
        lambda: ops.sgd_update(np.asfortranarray(z(4, 3)), G, None, learning_rate=0.1),
        "param",
        [],
    ),
    "sgd param read-only": Bad(
        lambda: ops.sgd_update(_ro(W), G, None, learning_rate=0.1),
        "param",
        [],
    ),
    "sgd grad shape": Bad(
        lambda: ops.sgd_update(W.copy(), z(3, 4), None, learning_rate=0.1),
        "grad",
        [(3, 4), (4, 3)],
    ),
    "sgd momentum without buffer": Bad(
        lambda: ops.sgd_update(W.copy(), G, None, learning_rate=0.1, momentum=0.9),
        "momentum_buffer",
        [],
    ),
    "sgd buffer float64": Bad(
        lambda: ops.sgd_update(
            W.copy(), G, z(4, 3, dtype=np.float64), learning_rate=0.1, momentum=0.9
        ),
        "momentum_buffer",
        [],
    ),
    "sgd buffer shape": Bad(
        lambda: ops.sgd_update(W.copy(), G, z(12), learning_rate=0.1, momentum=0.9),
        "momentum_buffer",
        [(12,)],
    ),
    "rmsprop velocity float64": Bad(
        lambda: ops.rmsprop_update(W.copy(), G, z(4, 3, dtype=np.float64), learning_rate=0.1),
        "velocity",
        [],
    ),
    "rmsprop velocity shape": Bad(
        lambda: ops.rmsprop_update(W.copy(), G, z(4, 4), learning_rate=0.1),
        "velocity",
        [(4, 4)],
    ),
    "rmsprop param strided": Bad(
        lambda: ops.rmsprop_update(z(4, 6)[:, ::2], G, z(4, 3), learning_rate=0.1),
        "param",
        [],
    ),
    "adam m strided": Bad(
        lambda: ops.adam_update(
            W.copy(), G, z(4, 6)[:, ::2], z(4, 3), learning_rate=0.1, iteration=1
        ),
        "m",
        [],
    ),
    "adam v float64": Bad(
        lambda: ops.adam_update(
            W.copy(), G, z(4, 3), z(4, 3, dtype=np.float64), learning_rate=0.1, iteration=1
        ),
        "v",
        [],
    ),
    "adam v read-only": Bad(
        lambda: ops.adam_update(W.copy(), G, z(4, 3), _ro(z(4, 3)), learning_rate=0.1, iteration=1),
        "v",
        [],
    ),
    "adam iteration 0": Bad(
        lambda: ops.adam_update(W.copy(), G, z(4, 3), z(4, 3), learning_rate=0.1, iteration=0),
        "iteration",
        [],
    ),
    "adam grad shape": Bad(
        lambda: ops.adam_update(
            W.copy(), z(4, 2), z(4, 3), z(4, 3), learning_rate=0.1, iteration=1
        ),
        "grad",
        [(4, 2), (4, 3)],
    ),
}


@pytest.mark.parametrize("case", OPT_BAD, ids=list(OPT_BAD))
def test_optimizer_bad_input(case):
    expect_bad(OPT_BAD[case])


def test_failed_update_leaves_param_untouched():
    w = np.ones((4, 3), np.float32)
    with pytest.raises(BAD):
        ops.adam_update(w, G, z(4, 3), z(4, 4), learning_rate=0.1, iteration=1)
    np.testing.assert_array_equal(w, np.ones((4, 3)))


# ---------------------------------------------------------------------------------------------
# huge outputs: MemoryError, refused before allocating; run in a child with a capped address
# space so an implementation that tries anyway cannot take the machine down.

HUGE = {
    # 2^20 images (a 4 MiB input) x 2^20 output channels = 4 TiB of output
    "conv2d batch x cout": """
        x = np.broadcast_to(np.ones((1, 1, 1, 1), np.float32), (1 << 20, 1, 1, 1))
        k = np.ones((1, 1, 1, 1 << 20), np.float32)
        ops.conv2d(x, k)
    """,
    # contiguous 1024x1024 image, 2^20 output channels: 4 TiB
    "conv2d spatial x cout": """
        x = np.ones((1, 1024, 1024, 1), np.float32)
        k = np.ones((1, 1, 1, 1 << 20), np.float32)
        ops.conv2d(x, k, padding="same")
    """,
    # a (1, 1, huge, 1) broadcast view: 2^40 columns
    "conv2d broadcast width": """
        x = np.broadcast_to(np.float32(1), (1, 1, 1 << 40, 1))
        ops.conv2d(x, np.ones((1, 1, 1, 1), np.float32))
    """,
    "dense batch x out": """
        x = np.broadcast_to(np.ones((1, 1), np.float32), (1 << 20, 1))
        ops.dense(x, np.ones((1, 1 << 20), np.float32))
    """,
    "max_pool2d broadcast": """
        x = np.broadcast_to(np.float32(1), (1 << 20, 1 << 20, 2, 1))
        ops.max_pool2d(x, (1, 2), (1, 1))
    """,
}

_CHILD = """
import resource, sys
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
from fastconv import ops
try:
{body}
except MemoryError as e:
    print("MEMORYERROR", type(e).__name__, e)
    sys.exit(0)
except BaseException as e:
    print("OTHER", type(e).__name__, e)
    sys.exit(3)
print("NOERROR")
sys.exit(4)
"""


@pytest.mark.parametrize("case", HUGE, ids=list(HUGE))
def test_output_too_large_raises_memory_error(case):
    body = textwrap.indent(textwrap.dedent(HUGE[case]).strip(), "    ")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "MEMORYERROR" in out, f"rc={proc.returncode}: {out[-2000:]}"


def _correct_or_refused(fn, expected_shape, expected_value):
    try:
        y = fn()
    except (ValueError, OverflowError, TypeError):
        return
    assert y.shape == expected_shape and np.all(y == expected_value)


def test_huge_parameters_do_not_crash():
    x = np.ones((1, 5, 5, 1), np.float32)
    k = np.ones((3, 3, 1, 1), np.float32)
    with pytest.raises((ValueError, OverflowError, TypeError)):
        ops.max_pool2d(x, pool_size=1 << 40)  # window larger than the image
    with pytest.raises((ValueError, OverflowError, TypeError)):
        ops.conv2d(x, k, dilation_rate=1 << 40)  # dilated kernel larger than the image
    with pytest.raises((ValueError, OverflowError, TypeError)):
        ops.conv2d(x, k, dilation_rate=1 << 62)
    # a huge stride is well defined (one output: the top-left window) or refused, never a crash
    _correct_or_refused(lambda: ops.max_pool2d(x, 2, 1 << 40), (1, 1, 1, 1), 1.0)
    _correct_or_refused(lambda: ops.avg_pool2d(x, 2, 1 << 40, "same"), (1, 1, 1, 1), 1.0)
    _correct_or_refused(lambda: ops.conv2d(x, k, strides=1 << 40), (1, 1, 1, 1), 9.0)
    # 'same': out = 1, pad_total = max(0 + 3 - 5, 0) = 0
    _correct_or_refused(
        lambda: ops.conv2d(x, k, strides=1 << 40, padding="same"), (1, 1, 1, 1), 9.0
    )


def test_window_arguments_beyond_64_bit_indexing_are_refused_by_name():
    x = np.zeros((1, 4, 4, 1), np.float32)
    k = np.zeros((3, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match="strides"):
        ops.conv2d(x, k, strides=2**70)
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool2d(x, pool_size=(2, 2**63))
