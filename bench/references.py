"""What fastconv is compared against, op by op and model by model.

Per op (forward, input gradient, weight gradient; pooling, dense, ReLU forward and backward):

- ``naive_*``: naive NumPy, a Python loop over output positions (sample, row, column; for dense
  the samples), vectorised inside over the kernel window and the channels. Each takes ``rows=`` to
  run only the first (sample, row) iterations, so a slow case can be timed on a part and
  extrapolated (every row costs the same).
- ``best_*``: NumPy at its best: im2col through ``sliding_window_view`` and one BLAS matmul
  (the input gradient: one matmul then col2im, 9 shifted adds, which needs 9x less memory than the
  im2col of the padded output gradient); pooling and ReLU as whole-array expressions.
- ``torch_*``: PyTorch (oneDNN) with channels_last activations; backward via
  ``aten.convolution_backward`` (the kernels autograd calls), ``max_pool2d_with_indices_backward``
  (indices from the forward, as in training) and ``threshold_backward``.
- ``fastconv_*``: fastconv.ops.

Whole models: the lecture's two convnets as a fastconv Keras-shaped model, an ops-level fastconv
training step (``OpsModel``, fastconv.ops called directly: shows the API's overhead), a PyTorch
model (channels_last, RMSprop, CE / BCE-with-logits) and, when importable, Keras on TensorFlow.

Only what the lecture needs is supported by the references: 'valid' padding, stride 1 convs,
2x2/stride-2 max pools.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

# PyTorch first, when installed: importing fastconv sets GOMP_SPINCOUNT for its OpenMP runtime,
# and PyTorch's own libgomp, loaded later, would read it too. Loaded first, PyTorch keeps its
# defaults: each framework is measured with its own settings.
if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401

import fastconv
import numpy as np
from fastconv import ops
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32

# ----------------------------------------------------------------------------------------------
# threads


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
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or work already started
        pass
    torch.set_flush_denormal(True)
    torch.backends.mkldnn.enabled = True
    return torch


# ----------------------------------------------------------------------------------------------
# naive NumPy: a Python loop over output positions, vectorised inside
#
# An output position is one output pixel of one image, (sample, row, column): the loop body is
# vectorised over the kernel window and the channels. (Vectorising over the batch as well makes a
# batched GEMM per pixel, which is within a few x of a good library on these shapes: set
# NAIVE_PER_SAMPLE = False to measure that variant.) ``rows`` limits the loop to the first
# (sample, row) pairs, so a slow case can be timed on a part and extrapolated.

NAIVE_PER_SAMPLE = True


def naive_total_rows(n, oh):
    """Outer (sample, row) iterations of a naive loop over an (n, oh, ...) output."""
    return n * oh if NAIVE_PER_SAMPLE else oh


def _naive_rows(n, oh, rows):
    """(sample index or slice(None), output row) for the first ``rows`` outer iterations."""
    total = naive_total_rows(n, oh)
    for r in range(total if rows is None else min(rows, total)):
        yield (divmod(r, oh) if NAIVE_PER_SAMPLE else (slice(None), r))


def _check_conv(x, kernel):
    kh, kw, cin, _ = kernel.shape
    assert x.shape[3] == cin, (x.shape, kernel.shape)
    return x.shape[1] - kh + 1, x.shape[2] - kw + 1


def naive_conv2d(x, kernel, bias=None, relu=True, rows=None):
    """y[b, i, j, :] = patch(b, i, j) @ kernel, one output position at a time."""
    kh, kw, _, cout = kernel.shape
    oh, ow = _check_conv(x, kernel)
    wm = kernel.reshape(-1, cout)
    y = np.zeros((x.shape[0], oh, ow, cout), F32)
    for b, i in _naive_rows(x.shape[0], oh, rows):
        for j in range(ow):
            patch = x[b, i : i + kh, j : j + kw, :]
            y[b, i, j, :] = patch.reshape(*patch.shape[:-3], -1) @ wm
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y


def naive_conv2d_dx(x_shape, kernel, dy, rows=None):
    """dx[b, i:i+kh, j:j+kw, :] += dy[b, i, j, :] @ kernel^T, one output position at a time."""
    kh, kw, cin, cout = kernel.shape
    _, oh, ow, _ = dy.shape
    wt = np.ascontiguousarray(kernel.reshape(-1, cout).T)
    dx = np.zeros(x_shape, F32)
    for b, i in _naive_rows(dy.shape[0], oh, rows):
        for j in range(ow):
            g = dy[b, i, j, :] @ wt
            dx[b, i : i + kh, j : j + kw, :] += g.reshape(*g.shape[:-1], kh, kw, cin)
    return dx


def naive_conv2d_dw(x, dy, kernel_shape, rows=None):
    """dkernel += patch(b, i, j)^T dy[b, i, j, :], one output position at a time; dbias."""
    kh, kw, cin, cout = kernel_shape
    _, oh, ow, _ = dy.shape
    dw = np.zeros((kh * kw * cin, cout), F32)
    db = np.zeros(cout, F32)
    for b, i in _naive_rows(dy.shape[0], oh, rows):
        for j in range(ow):
            g = dy[b, i, j, :].reshape(-1, cout)
            dw += x[b, i : i + kh, j : j + kw, :].reshape(-1, kh * kw * cin).T @ g
            db += g.sum(axis=0)
    return dw.reshape(kernel_shape), db


# ----------------------------------------------------------------------------------------------
# convolution: NumPy at its best (im2col + one BLAS matmul)


def _im2col(x, kh, kw):
    """(n*oh*ow, kh*kw*cin), rows in the kernel's (kh, kw, cin) order: one copy, cin innermost."""
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (n, oh, ow, cin, kh, kw), a view
    n, oh, ow, cin = win.shape[:4]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * cin), (n, oh, ow)


def best_conv2d(x, kernel, bias=None, relu=True):
    kh, kw, cin, cout = kernel.shape
    cols, (n, oh, ow) = _im2col(x, kh, kw)
    y = cols @ kernel.reshape(kh * kw * cin, cout)
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y.reshape(n, oh, ow, cout)


def best_conv2d_dx(x_shape, kernel, dy):
    """One matmul dy @ kernel^T to columns, then col2im as kh*kw shifted adds."""
    kh, kw, cin, cout = kernel.shape
    n, oh, ow, _ = dy.shape
    cols = dy.reshape(-1, cout) @ kernel.reshape(-1, cout).T  # (n*oh*ow, kh*kw*cin)
    cols = cols.reshape(n, oh, ow, kh, kw, cin)
    dx = np.zeros(x_shape, F32)
    for a in range(kh):
        for b in range(kw):
            dx[:, a : a + oh, b : b + ow, :] += cols[:, :, :, a, b, :]
    return dx


def best_conv2d_dw(x, dy, kernel_shape):
    kh, kw, cin, cout = kernel_shape
    cols, _ = _im2col(x, kh, kw)
    g = dy.reshape(-1, cout)
    return (cols.T @ g).reshape(kh, kw, cin, cout), g.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# max pooling 2x2 / 2, 'valid'


def naive_max_pool(x, rows=None, p=2):
    n, h, w, c = x.shape
    oh, ow = h // p, w // p
    y = np.zeros((n, oh, ow, c), F32)
    for b, i in _naive_rows(n, oh, rows):
        for j in range(ow):
            y[b, i, j, :] = x[b, i * p : i * p + p, j * p : j * p + p, :].max(axis=(-3, -2))
    return y


def naive_max_pool_grad(x, dy, rows=None, p=2):
    """Each window's dy goes to its first maximal cell in row-major order."""
    n, h, w, c = x.shape
    _, oh, ow, _ = dy.shape
    dx = np.zeros_like(x)
    for b, i in _naive_rows(n, oh, rows):
        for j in range(ow):
            win = x[b, i * p : i * p + p, j * p : j * p + p, :]
            lead = win.shape[:-3]
            win = win.reshape(*lead, p * p, c)
            first = np.expand_dims(win.argmax(axis=-2), -2)
            d = np.zeros(win.shape, F32)
            np.put_along_axis(d, first, np.expand_dims(dy[b, i, j, :], -2), axis=-2)
            dx[b, i * p : i * p + p, j * p : j * p + p, :] = d.reshape(*lead, p, p, c)
    return dx


def _windows(x, p=2):
    n, h, w, c = x.shape
    oh, ow = h // p, w // p
    return x[:, : oh * p, : ow * p, :].reshape(n, oh, p, ow, p, c), (n, oh, ow, c)


def best_max_pool(x, p=2):
    win, _ = _windows(x, p)
    return win.max(axis=(2, 4))


def best_max_pool_grad(x, dy, p=2):
    win, (n, oh, ow, c) = _windows(x, p)
    flat = win.transpose(0, 1, 3, 2, 4, 5).reshape(n, oh, ow, p * p, c)
    first = flat.argmax(axis=3)
    d = (np.arange(p * p)[:, None] == first[:, :, :, None, :]) * dy[:, :, :, None, :]
    dx = np.zeros_like(x)
    dx[:, : oh * p, : ow * p, :] = (
        d.reshape(n, oh, ow, p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, oh * p, ow * p, c)
    )
    return dx


# ----------------------------------------------------------------------------------------------
# ReLU


def naive_relu(x, rows=None):
    y = np.zeros_like(x)
    for b, i in _naive_rows(x.shape[0], x.shape[1], rows):
        for j in range(x.shape[2]):
            y[b, i, j, :] = np.maximum(x[b, i, j, :], 0)
    return y


def naive_relu_grad(x, dy, rows=None):
    dx = np.zeros_like(x)
    for b, i in _naive_rows(x.shape[0], x.shape[1], rows):
        for j in range(x.shape[2]):
            dx[b, i, j, :] = np.where(x[b, i, j, :] > 0, dy[b, i, j, :], 0)
    return dx


def best_relu(x):
    return np.maximum(x, 0)


def best_relu_grad(x, dy):
    return np.where(x > 0, dy, F32(0))


# ----------------------------------------------------------------------------------------------
# dense


def naive_dense(x, kernel, bias, rows=None):
    y = np.zeros((x.shape[0], kernel.shape[1]), F32)
    for i in range(x.shape[0] if rows is None else min(rows, x.shape[0])):
        y[i] = x[i] @ kernel + bias
    return y


def naive_dense_grad(x, kernel, dy, rows=None):
    dx = np.zeros_like(x)
    dw = np.zeros_like(kernel)
    db = np.zeros(kernel.shape[1], F32)
    for i in range(x.shape[0] if rows is None else min(rows, x.shape[0])):
        dx[i] = kernel @ dy[i]
        dw += np.outer(x[i], dy[i])
        db += dy[i]
    return dx, dw, db


def best_dense(x, kernel, bias):
    y = x @ kernel
    y += bias
    return y


def best_dense_grad(x, kernel, dy):
    return dy @ kernel.T, x.T @ dy, dy.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# fastconv ops (the input gradient alone is only reachable through the core)


def fastconv_conv2d_dx(x, kernel, dy):
    """conv2d's input gradient alone: ops.conv2d_grad always computes the weight gradient too."""
    if not hasattr(ops, "_ConvPlan"):  # the private path moved: time dx with dw (an upper bound)
        return ops.conv2d_grad(x, kernel, dy)[0]
    plan = ops._ConvPlan(x, kernel, 1, "valid", 1)
    dx = np.empty(x.shape, F32)
    fastconv._core.conv2d_backward_input(dy, kernel, dx, *plan.args())
    return dx


# ----------------------------------------------------------------------------------------------
# PyTorch ops: closures over tensors prepared outside the timed call


def nhwc(torch, a):
    """An NHWC array as an NCHW tensor in channels_last memory (no copy)."""
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def torch_kernel(torch, kernel):
    """(kh, kw, cin, cout) -> (cout, cin, kh, kw), channels_last like oneDNN prefers."""
    t = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return t.contiguous(memory_format=torch.channels_last)


def torch_conv_ops(torch, x, kernel, bias, dy):
    """{op: fn} for 'fwd' (conv+bias+ReLU), 'dx' and 'dw' (kernel+bias) of one conv layer."""
    F = torch.nn.functional
    xt, wt, bt = nhwc(torch, x), torch_kernel(torch, kernel), torch.from_numpy(bias)
    gt = nhwc(torch, dy)
    cb = torch.ops.aten.convolution_backward
    args = ([1, 1], [0, 0], [1, 1], False, [0, 0], 1)

    def fwd():
        with torch.inference_mode():
            return F.relu(F.conv2d(xt, wt, bt), inplace=True)

    def dx():
        with torch.no_grad():
            return cb(gt, xt, wt, [wt.shape[0]], *args, [True, False, False])[0]

    def dw():
        with torch.no_grad():
            return cb(gt, xt, wt, [wt.shape[0]], *args, [False, True, True])[1:]

    return {"fwd": fwd, "dx": dx, "dw": dw}


def torch_pool_ops(torch, x, dy):
    F = torch.nn.functional
    xt, gt = nhwc(torch, x), nhwc(torch, dy)
    with torch.no_grad():
        _, idx = torch.ops.aten.max_pool2d_with_indices(xt, [2, 2], [2, 2])

    def fwd():
        with torch.inference_mode():
            return F.max_pool2d(xt, 2)

    def bwd():
        with torch.no_grad():
            return torch.ops.aten.max_pool2d_with_indices_backward(
                gt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, idx
            )

    return {"fwd": fwd, "bwd": bwd}


def torch_relu_ops(torch, x, dy):
    xt, gt = nhwc(torch, x), nhwc(torch, dy)

    def fwd():
        with torch.inference_mode():
            return torch.relu(xt)

    def bwd():
        with torch.no_grad():
            return torch.ops.aten.threshold_backward(gt, xt, 0)

    return {"fwd": fwd, "bwd": bwd}


def torch_dense_ops(torch, x, kernel, bias, dy):
    F = torch.nn.functional
    xt, bt, gt = torch.from_numpy(x), torch.from_numpy(bias), torch.from_numpy(dy)
    wt = torch.from_numpy(np.ascontiguousarray(kernel.T))  # (out, in)

    def fwd():
        with torch.inference_mode():
            return F.linear(xt, wt, bt)

    def bwd():
        with torch.no_grad():
            return gt @ wt, gt.t() @ xt, gt.sum(0)

    return {"fwd": fwd, "bwd": bwd}


# ----------------------------------------------------------------------------------------------
# op tables shared by bench_ops.py and report.py
#
# Each entry: (kind, shape, op, flops, bytes moved or 0, {impl: fn}, naive: (fn(rows), total_rows))


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


def winograd_applies(s, op):
    """Whether fastconv's Winograd path runs this op of conv layer s (see set_winograd)."""
    oh, ow = s.out_hw
    side = min(s.h, s.w) if op == "dx" else min(oh, ow)
    channels_ok = s.cin >= 8 and s.cout >= 8 and (op != "dw" or s.cin % 8 == 0)
    return s.k == 3 and side >= (16 if op == "dx" else 10) and channels_ok


def conv_cases(s, x, kernel, bias, dy, torch=None):
    fc = {
        "fwd": lambda: ops.conv2d(x, kernel, bias, activation="relu"),
        "dx": lambda: fastconv_conv2d_dx(x, kernel, dy),
        "dw": lambda: ops.conv2d_grad(x, kernel, dy, need_dx=False),
    }
    best = {
        "fwd": lambda: best_conv2d(x, kernel, bias),
        "dx": lambda: best_conv2d_dx(x.shape, kernel, dy),
        "dw": lambda: best_conv2d_dw(x, dy, kernel.shape),
    }
    naive = {
        "fwd": lambda rows=None: naive_conv2d(x, kernel, bias, rows=rows),
        "dx": lambda rows=None: naive_conv2d_dx(x.shape, kernel, dy, rows=rows),
        "dw": lambda rows=None: naive_conv2d_dw(x, dy, kernel.shape, rows=rows),
    }
    th = torch_conv_ops(torch, x, kernel, bias, dy) if torch is not None else {}
    out = []
    for op in ("fwd", "dx", "dw"):
        impls = {"fastconv": fc[op], "numpy": best[op]}
        if op in th:
            impls["torch"] = th[op]
        if hasattr(fastconv, "set_winograd") and winograd_applies(s, op):
            impls["fastconv-winograd"] = with_winograd(fc[op])
        rows = naive_total_rows(dy.shape[0], dy.shape[1])
        out.append(("conv", s, op, s.flops, 0, impls, (naive[op], rows)))
    return out


def pool_cases(s, x, dy, torch=None):
    th = torch_pool_ops(torch, x, dy) if torch is not None else {}
    fwd = {"fastconv": lambda: ops.max_pool2d(x), "numpy": lambda: best_max_pool(x)}
    bwd = {
        "fastconv": lambda: ops.max_pool2d_grad(x, dy),
        "numpy": lambda: best_max_pool_grad(x, dy),
    }
    if th:
        fwd["torch"], bwd["torch"] = th["fwd"], th["bwd"]
    nx, ny = x.nbytes, dy.nbytes
    rows = naive_total_rows(dy.shape[0], dy.shape[1])
    naive_f = (lambda rows=None: naive_max_pool(x, rows), rows)
    naive_b = (lambda rows=None: naive_max_pool_grad(x, dy, rows), rows)
    return [
        ("pool", s, "fwd", s.flops, nx + ny, fwd, naive_f),
        ("pool", s, "bwd", s.flops, 2 * nx + ny, bwd, naive_b),
    ]


def relu_cases(s, x, dy, torch=None):
    th = torch_relu_ops(torch, x, dy) if torch is not None else {}
    fwd = {"fastconv": lambda: ops.relu(x), "numpy": lambda: best_relu(x)}
    bwd = {"fastconv": lambda: ops.relu_grad(x, dy), "numpy": lambda: best_relu_grad(x, dy)}
    if th:
        fwd["torch"], bwd["torch"] = th["fwd"], th["bwd"]
    nb, rows = x.nbytes, naive_total_rows(x.shape[0], x.shape[1])
    naive_f = (lambda rows=None: naive_relu(x, rows), rows)
    naive_b = (lambda rows=None: naive_relu_grad(x, dy, rows), rows)
    return [
        ("relu", s, "fwd", s.flops, 2 * nb, fwd, naive_f),
        ("relu", s, "bwd", s.flops, 3 * nb, bwd, naive_b),
    ]


def dense_cases(s, x, kernel, bias, dy, torch=None):
    th = torch_dense_ops(torch, x, kernel, bias, dy) if torch is not None else {}
    fwd = {
        "fastconv": lambda: ops.dense(x, kernel, bias),
        "numpy": lambda: best_dense(x, kernel, bias),
    }
    bwd = {
        "fastconv": lambda: ops.dense_grad(x, kernel, dy),
        "numpy": lambda: best_dense_grad(x, kernel, dy),
    }
    if th:
        fwd["torch"], bwd["torch"] = th["fwd"], th["bwd"]
    rows = x.shape[0]
    naive_f = (lambda rows=None: naive_dense(x, kernel, bias, rows), rows)
    naive_b = (lambda rows=None: naive_dense_grad(x, kernel, dy, rows), rows)
    return [
        ("dense", s, "fwd", s.flops, 0, fwd, naive_f),
        ("dense", s, "bwd", 2 * s.flops, 0, bwd, naive_b),
    ]


def case_groups():
    """(kind, shape) of every layer of the lecture, in model order: conv, its pool; ReLU; dense."""
    import shapes as S

    groups = []
    for s in S.CONV:
        groups.append(("conv", s))
        groups += [("pool", p) for p in S.POOL if (p.model, p.name[-1]) == (s.model, s.name[-1])]
    groups += [("relu", s) for s in S.RELU]
    groups += [("dense", s) for s in S.DENSE]
    return groups


def build_group(kind, s, torch=None):
    """The cases (one per op) of one layer, with freshly made data."""
    import shapes as S

    if kind == "conv":
        return conv_cases(s, *S.conv_data(s), torch=torch)
    if kind == "pool":
        return pool_cases(s, *S.pool_data(s), torch=torch)
    if kind == "relu":
        return relu_cases(s, *S.relu_data(s), torch=torch)
    return dense_cases(s, *S.dense_data(s), torch=torch)


def case_label(case):
    kind, s, op = case[:3]
    return f"{kind} {s.id} {op}"


def iter_cases(torch=None, which=None):
    """Every op case, one layer's data alive at a time (``which``: substring filter on labels)."""
    for kind, s in case_groups():
        if which and not any(which in f"{kind} {s.id} {op}" for op in ("fwd", "dx", "dw", "bwd")):
            continue
        for case in build_group(kind, s, torch):
            if not which or which in case_label(case):
                yield case


# ----------------------------------------------------------------------------------------------
# whole models


def keras_api():
    """fastconv's Keras-shaped namespace (top level once re-exported, else fastconv._api)."""
    if hasattr(fastconv, "Model"):
        return fastconv
    from fastconv import _api

    return _api


MODEL_SPECS = {
    # conv filters, whether a 2x2 max pool follows each conv, input shape, classes, batch
    "A": dict(
        filters=(32, 64, 128), pools=(True, True, False), input=(28, 28, 1), units=10, batch=64
    ),
    "B": dict(
        filters=(32, 64, 128, 256, 256),
        pools=(True, True, True, True, False),
        input=(180, 180, 3),
        units=1,
        batch=32,
    ),
}


def model_batch(which, seed=0):
    spec = MODEL_SPECS[which]
    rng = np.random.default_rng(seed)
    n = spec["batch"]
    if which == "A":
        x = rng.random((n,) + spec["input"], dtype=np.float32)
        y = rng.integers(0, 10, n)
    else:
        x = (rng.random((n,) + spec["input"], dtype=np.float32) * 255).astype(np.float32)
        y = rng.integers(0, 2, n).astype(np.float32)
    return x, y


def lecture_model(K, which):
    """The lecture's model built with a Keras-shaped module K (fastconv or keras), compiled with
    rmsprop and an accuracy metric: the same graph and work for both."""
    L = K.layers
    spec = MODEL_SPECS[which]
    inputs = K.Input(shape=spec["input"])
    h = L.Rescaling(1.0 / 255)(inputs) if which == "B" else inputs
    for f, pool in zip(spec["filters"], spec["pools"]):
        h = L.Conv2D(f, 3, activation="relu")(h)
        if pool:
            h = L.MaxPooling2D(2)(h)
    h = L.Flatten()(h)
    if which == "A":
        act, loss = "softmax", "sparse_categorical_crossentropy"
    else:
        act, loss = "sigmoid", "binary_crossentropy"
    model = K.Model(inputs, L.Dense(spec["units"], activation=act)(h))
    model.compile(optimizer="rmsprop", loss=loss, metrics=["accuracy"])
    return model


def fastconv_model(which):
    """The lecture's model through fastconv's Keras-shaped API."""
    return lecture_model(keras_api(), which)


class OpsModel:
    """The lecture's model as a training step written directly with fastconv.ops (no layers)."""

    def __init__(self, which, seed=0, lr=1e-3):
        spec = MODEL_SPECS[which]
        rng = np.random.default_rng(seed)
        self.which, self.lr, self.pools = which, lr, spec["pools"]
        cin, h, w = spec["input"][2], spec["input"][0], spec["input"][1]
        self.params = []
        for f, pool in zip(spec["filters"], spec["pools"]):
            lim = np.sqrt(6.0 / (9 * cin + 9 * f))
            self.params += [rng.uniform(-lim, lim, (3, 3, cin, f)).astype(F32), np.zeros(f, F32)]
            cin, h, w = f, h - 2, w - 2
            if pool:
                h, w = h // 2, w // 2
        fin = h * w * cin
        lim = np.sqrt(6.0 / (fin + spec["units"]))
        self.params += [rng.uniform(-lim, lim, (fin, spec["units"])).astype(F32)]
        self.params += [np.zeros(spec["units"], F32)]
        self.velocity = [np.zeros_like(p) for p in self.params]

    def _forward(self, x):
        if self.which == "B":
            x = x * F32(1.0 / 255)
        saved = []
        h = x
        for i, pool in enumerate(self.pools):
            k, b = self.params[2 * i], self.params[2 * i + 1]
            y = ops.conv2d(h, k, b, activation="relu")
            saved.append((h, y))
            h = ops.max_pool2d(y) if pool else y
        flat = h.reshape(h.shape[0], -1)
        logits = ops.dense(flat, self.params[-2], self.params[-1])
        return logits, saved, flat, h.shape

    def predict(self, x):
        logits, *_ = self._forward(x)
        return ops.softmax(logits) if self.which == "A" else ops.sigmoid(logits)

    def train_step(self, x, y):
        n = x.shape[0]
        logits, saved, flat, hshape = self._forward(x)
        if self.which == "A":
            losses, dz = ops.sparse_softmax_cross_entropy(logits, y)
        else:
            losses, dz = ops.sigmoid_binary_cross_entropy(logits, y.reshape(n, 1))
        dz *= F32(1.0 / n)  # mean over the batch (B has one logit per sample)
        grads = [None] * len(self.params)
        dflat, grads[-2], grads[-1] = ops.dense_grad(flat, self.params[-2], dz)
        dh = dflat.reshape(hshape)
        for i in reversed(range(len(self.pools))):
            h, y_ = saved[i]
            if self.pools[i]:
                dh = ops.max_pool2d_grad(y_, dh)
            dz_ = ops.relu_grad(y_, dh)
            dh, grads[2 * i], grads[2 * i + 1] = ops.conv2d_grad(
                h, self.params[2 * i], dz_, need_dx=i > 0
            )
        for p, g, v in zip(self.params, grads, self.velocity):
            ops.rmsprop_update(p, g, v, learning_rate=self.lr)
        return float(losses.mean())


def torch_model(torch, which):
    """(model, optimizer, loss) in PyTorch: channels_last, RMSprop(lr 1e-3, alpha 0.9, eps 1e-7)."""
    nn = torch.nn
    spec = MODEL_SPECS[which]
    layers = []
    cin, h, w = spec["input"][2], spec["input"][0], spec["input"][1]
    for f, pool in zip(spec["filters"], spec["pools"]):
        layers += [nn.Conv2d(cin, f, 3), nn.ReLU()]
        cin, h, w = f, h - 2, w - 2
        if pool:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(h * w * cin, spec["units"])]
    model = nn.Sequential(*layers).to(memory_format=torch.channels_last)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss = nn.CrossEntropyLoss() if which == "A" else nn.BCEWithLogitsLoss()
    return model, opt, loss


def torch_steps(torch, which, x, y):
    """(train_step, predict) closures for PyTorch on one batch (NHWC numpy in)."""
    model, opt, loss_fn = torch_model(torch, which)
    scale = 1.0 / 255 if which == "B" else None
    xt = nhwc(torch, x)
    yt = torch.from_numpy(y.astype(np.int64) if which == "A" else y.reshape(-1, 1))

    def train_step():
        opt.zero_grad(set_to_none=True)
        inp = xt * scale if scale else xt
        loss = loss_fn(model(inp), yt)
        loss.backward()
        opt.step()
        return loss.item()

    def predict():
        with torch.inference_mode():
            inp = xt * scale if scale else xt
            out = model(inp)
            return torch.softmax(out, 1) if which == "A" else torch.sigmoid(out)

    return train_step, predict


def keras_steps(which, x, y, threads):
    """(train_step, predict) with Keras on TensorFlow, or None when not importable (optional)."""
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
    except Exception:
        return None
    model = lecture_model(keras, which)
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))
