"""Naive NumPy: a Python loop over output positions (sample, row, column; for dense the samples),
vectorised inside over the kernel window and the channels.

Each function takes ``rows=`` to run only the first (sample, row) iterations, so a slow case can be
timed on a part and extrapolated (every row costs the same). Only what the lecture needs: 'valid'
padding, stride 1 convs, 2x2/stride-2 max pools.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32

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
