"""Naive float64 NumPy references for the fastconv ops.

Written from the math (Keras / TensorFlow semantics), independent of fastconv: nothing here
imports fastconv. Layouts follow the contract: NHWC activations, conv kernels (kh, kw, cin, cout),
dense kernels (in, out).

Padding ("same", Keras/TF): out = ceil(n / s),
pad_total = max((out - 1) * s + (k - 1) * d + 1 - n, 0), pad_before = pad_total // 2 and the odd
extra cell goes after (bottom / right). "valid": out = floor((n - ((k - 1) * d + 1)) / s) + 1.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------
# shapes and padding


def pair(v):
    """An int or a pair -> a pair of ints."""
    if isinstance(v, (tuple, list)):
        assert len(v) == 2
        return int(v[0]), int(v[1])
    return int(v), int(v)


def out_and_pad(n, k, s, d, padding):
    """Output length and (pad_before, pad_after) along one spatial axis."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        out = (n - eff) // s + 1 if n >= eff else 0
        return out, (0, 0)
    if padding == "same":
        out = -(-n // s)  # ceil(n / s)
        total = max((out - 1) * s + eff - n, 0)
        return out, (total // 2, total - total // 2)
    raise ValueError(padding)


def conv_output_shape(hw, ksize, strides=1, padding="valid", dilation=1):
    kh, kw = pair(ksize)
    sh, sw = pair(strides)
    dh, dw = pair(dilation)
    oh, _ = out_and_pad(hw[0], kh, sh, dh, padding)
    ow, _ = out_and_pad(hw[1], kw, sw, dw, padding)
    return oh, ow


def pool_output_shape(hw, pool_size=2, strides=None, padding="valid"):
    if strides is None:
        strides = pool_size
    return conv_output_shape(hw, pool_size, strides, padding, 1)


def _geometry(x_shape, kh, kw, strides, padding, dilation):
    sh, sw = pair(strides)
    dh, dw = pair(dilation)
    oh, (pt, pb) = out_and_pad(x_shape[1], kh, sh, dh, padding)
    ow, (pl, pr) = out_and_pad(x_shape[2], kw, sw, dw, padding)
    return (sh, sw), (dh, dw), (oh, ow), ((pt, pb), (pl, pr))


def _window(xp, a, b, sh, sw, oh, ow):
    """xp[:, a + i*sh, b + j*sw, :] for i < oh, j < ow (a strided view)."""
    return xp[:, a : a + (oh - 1) * sh + 1 : sh, b : b + (ow - 1) * sw + 1 : sw, :]


# --------------------------------------------------------------------------------------------
# conv2d


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation=1, activation=None):
    """y[n,i,j,o] = sum_{a,b,c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * K[a,b,c,o] + bias[o]."""
    x = np.asarray(x, np.float64)
    k = np.asarray(kernel, np.float64)
    kh, kw, cin, cout = k.shape
    assert x.shape[3] == cin
    (sh, sw), (dh, dw), (oh, ow), pads = _geometry(x.shape, kh, kw, strides, padding, dilation)
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    y = np.zeros((x.shape[0], oh, ow, cout))
    if oh > 0 and ow > 0:
        for a in range(kh):
            for b in range(kw):
                patch = _window(xp, a * dh, b * dw, sh, sw, oh, ow)
                y += np.tensordot(patch, k[a, b], axes=([3], [0]))
    if bias is not None:
        y += np.asarray(bias, np.float64)
    if activation == "relu":
        y = relu(y)
    elif activation is not None:
        raise ValueError(activation)
    return y


def conv2d_grad(x, kernel, dy, strides=1, padding="valid", dilation=1):
    """Gradients of sum(conv2d(x, kernel, bias) * dy) w.r.t. x, kernel and bias."""
    x = np.asarray(x, np.float64)
    k = np.asarray(kernel, np.float64)
    dy = np.asarray(dy, np.float64)
    kh, kw, cin, cout = k.shape
    (sh, sw), (dh, dw), (oh, ow), pads = _geometry(x.shape, kh, kw, strides, padding, dilation)
    assert dy.shape == (x.shape[0], oh, ow, cout), (dy.shape, (x.shape[0], oh, ow, cout))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    dxp = np.zeros_like(xp)
    dk = np.zeros_like(k)
    for a in range(kh):
        for b in range(kw):
            patch = _window(xp, a * dh, b * dw, sh, sw, oh, ow)
            dk[a, b] = np.tensordot(patch, dy, axes=([0, 1, 2], [0, 1, 2]))
            _window(dxp, a * dh, b * dw, sh, sw, oh, ow)[...] += np.tensordot(
                dy, k[a, b], axes=([3], [1])
            )
    (pt, _), (pl, _) = pads
    dx = dxp[:, pt : pt + x.shape[1], pl : pl + x.shape[2], :]
    db = dy.sum(axis=(0, 1, 2))
    return np.ascontiguousarray(dx), dk, db


# --------------------------------------------------------------------------------------------
# relu


def relu(x):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, np.where(np.isnan(x), x, 0.0))


def relu_grad(x, dy):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, np.asarray(dy, np.float64), 0.0)


# --------------------------------------------------------------------------------------------
# pooling


def _pool_geometry(x_shape, pool_size, strides, padding):
    if strides is None:
        strides = pool_size
    ph, pw = pair(pool_size)
    (sh, sw), _, (oh, ow), pads = _geometry(x_shape, ph, pw, strides, padding, 1)
    return (ph, pw), (sh, sw), (oh, ow), pads


def _max_pool_argmax(x, pool_size, strides, padding):
    """(max values, index a*pw+b of the FIRST max in row-major window order, geometry)."""
    x = np.asarray(x, np.float64)
    (ph, pw), (sh, sw), (oh, ow), pads = _pool_geometry(x.shape, pool_size, strides, padding)
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    inside = np.pad(
        np.ones((1, x.shape[1], x.shape[2], 1), bool), ((0, 0), pads[0], pads[1], (0, 0))
    )
    best = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    idx = np.full(best.shape, -1, dtype=np.int64)
    for a in range(ph):
        for b in range(pw):
            v = _window(xp, a, b, sh, sw, oh, ow)
            # strict: an equal later cell never replaces the first max; padding never counts,
            # the first inside cell is taken even when it is -inf
            better = _window(inside, a, b, sh, sw, oh, ow) & ((v > best) | (idx < 0))
            best = np.where(better, v, best)
            idx = np.where(better, a * pw + b, idx)
    return best, idx, ((ph, pw), (sh, sw), (oh, ow), pads, xp.shape)


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Max over each window; 'same' padding cells are ignored (never the max)."""
    return _max_pool_argmax(x, pool_size, strides, padding)[0]


def max_pool2d_grad(x, dy, pool_size=2, strides=None, padding="valid"):
    """Each window's dy goes to the first maximal cell of the window in row-major order."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    _, idx, geo = _max_pool_argmax(x, pool_size, strides, padding)
    (ph, pw), (sh, sw), (oh, ow), pads, xp_shape = geo
    assert dy.shape == idx.shape
    dxp = np.zeros(xp_shape)
    for a in range(ph):
        for b in range(pw):
            _window(dxp, a, b, sh, sw, oh, ow)[...] += np.where(idx == a * pw + b, dy, 0.0)
    (pt, _), (pl, _) = pads
    return np.ascontiguousarray(dxp[:, pt : pt + x.shape[1], pl : pl + x.shape[2], :])


def _avg_counts(x_shape, pool_size, strides, padding):
    (ph, pw), (sh, sw), (oh, ow), pads = _pool_geometry(x_shape, pool_size, strides, padding)
    ones = np.pad(np.ones((1, x_shape[1], x_shape[2], 1)), ((0, 0), pads[0], pads[1], (0, 0)))
    cnt = np.zeros((1, oh, ow, 1))
    for a in range(ph):
        for b in range(pw):
            cnt += _window(ones, a, b, sh, sw, oh, ow)
    return cnt, ((ph, pw), (sh, sw), (oh, ow), pads)


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Mean over the cells of each window that lie inside the image."""
    x = np.asarray(x, np.float64)
    cnt, ((ph, pw), (sh, sw), (oh, ow), pads) = _avg_counts(x.shape, pool_size, strides, padding)
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    s = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for a in range(ph):
        for b in range(pw):
            s += _window(xp, a, b, sh, sw, oh, ow)
    return s / cnt


def avg_pool2d_grad(x, dy, pool_size=2, strides=None, padding="valid"):
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    cnt, ((ph, pw), (sh, sw), (oh, ow), pads) = _avg_counts(x.shape, pool_size, strides, padding)
    assert dy.shape == (x.shape[0], oh, ow, x.shape[3])
    (pt, pb), (pl, pr) = pads
    dxp = np.zeros((x.shape[0], x.shape[1] + pt + pb, x.shape[2] + pl + pr, x.shape[3]))
    g = dy / cnt
    for a in range(ph):
        for b in range(pw):
            _window(dxp, a, b, sh, sw, oh, ow)[...] += g
    return np.ascontiguousarray(dxp[:, pt : pt + x.shape[1], pl : pl + x.shape[2], :])


# --------------------------------------------------------------------------------------------
# dense


def dense(x, kernel, bias=None, activation=None):
    y = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    if activation == "relu":
        y = relu(y)
    elif activation is not None:
        raise ValueError(activation)
    return y


def dense_grad(x, kernel, dy):
    x = np.asarray(x, np.float64)
    k = np.asarray(kernel, np.float64)
    dy = np.asarray(dy, np.float64)
    return dy @ k.T, x.T @ dy, dy.sum(axis=0)


# --------------------------------------------------------------------------------------------
# activations and losses


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def sigmoid(z):
    z = np.asarray(z, np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def sparse_softmax_cross_entropy_loss(logits, labels):
    lsm = log_softmax(logits)
    labels = np.asarray(labels).astype(np.int64)
    return -lsm[np.arange(lsm.shape[0]), labels]


def sparse_softmax_cross_entropy(logits, labels):
    """(losses (batch,), dlogits = softmax - onehot)."""
    logits = np.asarray(logits, np.float64)
    onehot = np.zeros_like(logits)
    onehot[np.arange(logits.shape[0]), np.asarray(labels).astype(np.int64)] = 1.0
    return sparse_softmax_cross_entropy_loss(logits, labels), softmax(logits) - onehot


def softmax_cross_entropy_loss(logits, targets):
    return -(np.asarray(targets, np.float64) * log_softmax(logits)).sum(axis=-1)


def softmax_cross_entropy(logits, targets):
    """(losses, dlogits = softmax * sum(t) - t): the exact gradient also for unnormalized t."""
    t = np.asarray(targets, np.float64)
    p = softmax(logits)
    return softmax_cross_entropy_loss(logits, t), p * t.sum(axis=-1, keepdims=True) - t


def sigmoid_bce_loss(logits, targets):
    """-t log(sigmoid z) - (1 - t) log(1 - sigmoid z), in the stable form."""
    z = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))


def sigmoid_binary_cross_entropy(logits, targets):
    return sigmoid_bce_loss(logits, targets), sigmoid(logits) - np.asarray(targets, np.float64)


# --------------------------------------------------------------------------------------------
# optimizers (Keras 3 formulas), pure: return new arrays


def sgd_step(w, g, m, lr, momentum=0.0, nesterov=False):
    w = np.array(w, np.float64)
    g = np.asarray(g, np.float64)
    if momentum == 0.0:
        return w - lr * g, m
    m = momentum * np.asarray(m, np.float64) - lr * g
    if nesterov:
        return w + momentum * m - lr * g, m
    return w + m, m


def rmsprop_step(w, g, v, lr, rho=0.9, eps=1e-7):
    g = np.asarray(g, np.float64)
    v = rho * np.asarray(v, np.float64) + (1.0 - rho) * g * g
    return np.asarray(w, np.float64) - lr * g / np.sqrt(v + eps), v


def adam_step(w, g, m, v, lr, t, b1=0.9, b2=0.999, eps=1e-7):
    g = np.asarray(g, np.float64)
    alpha = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
    m = np.asarray(m, np.float64) + (g - m) * (1.0 - b1)
    v = np.asarray(v, np.float64) + (g * g - v) * (1.0 - b2)
    return np.asarray(w, np.float64) - alpha * m / (np.sqrt(v) + eps), m, v


# --------------------------------------------------------------------------------------------
# comparison helpers


def rel_err(got, ref):
    """max|got - ref| / max(1, max|ref|), the contract's error measure."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))


def central_difference(f, x, v, eps):
    """Directional derivative of the scalar f at x along v, by central differences."""
    return (f(x + eps * v) - f(x - eps * v)) / (2.0 * eps)
