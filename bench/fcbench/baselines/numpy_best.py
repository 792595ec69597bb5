"""NumPy at its best: im2col through ``sliding_window_view`` and one BLAS matmul (the input
gradient: one matmul then col2im, 9 shifted adds, which needs 9x less memory than the im2col of
the padded output gradient); pooling and ReLU as whole-array expressions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32


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


def best_relu(x):
    return np.maximum(x, 0)


def best_relu_grad(x, dy):
    return np.where(x > 0, dy, F32(0))


def best_dense(x, kernel, bias):
    y = x @ kernel
    y += bias
    return y


def best_dense_grad(x, kernel, dy):
    return dy @ kernel.T, x.T @ dy, dy.sum(axis=0)
