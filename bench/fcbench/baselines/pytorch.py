"""PyTorch (oneDNN) at its best, op by op and for the lecture's two models.

Ops: channels_last activations; backward via ``aten.convolution_backward`` (the kernels autograd
calls), ``max_pool2d_with_indices_backward`` (indices from the forward, as in training) and
``threshold_backward``; closures over tensors prepared outside the timed call.

Models: the lecture's two convnets as ``nn.Sequential`` (channels_last, RMSprop with Keras'
settings, CrossEntropyLoss / BCEWithLogitsLoss). A PyTorch graph is not built from a Keras-like
module, so it is written here, from the specs in ``fcbench.shapes``.
"""

from __future__ import annotations

import time

import numpy as np

from fcbench.shapes import MODEL_SPECS


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


def torch_at_best(torch, threads):
    """PyTorch's best settings for these comparisons: ``threads`` intra-op threads, one inter-op,
    flush-denormal, oneDNN on."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or work already started
        pass
    torch.set_flush_denormal(True)
    torch.backends.mkldnn.enabled = True
    return torch


def _labels(torch, which, y):
    return torch.from_numpy(y.astype(np.int64) if which == "A" else y.reshape(-1, 1))


def torch_fit(torch, which, x, y, batch, epochs):
    """PyTorch's plain training loop over in-memory NHWC arrays, shuffled each epoch like
    ``fit``: seconds per epoch. Batches are gathered from the NHWC tensor and viewed as NCHW, so
    they are channels_last without a copy."""
    model, opt, loss_fn = torch_model(torch, which)
    model.train()
    xt, yt = torch.from_numpy(x), _labels(torch, which, y)
    scale = 1.0 / 255 if which == "B" else None
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            xb = xt[idx].permute(0, 3, 1, 2)
            if scale:
                xb = xb * scale
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def torch_predictor(torch, which, batch):
    """predict(x): probabilities for an NHWC array, ``batch`` images at a time, in eval mode under
    ``torch.inference_mode`` (no autograd, as no_grad and a little less)."""
    model, _, _ = torch_model(torch, which)
    model.eval()
    scale = 1.0 / 255 if which == "B" else None

    def predict(x):
        xt, outs = torch.from_numpy(x), []
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                xb = xt[i : i + batch].permute(0, 3, 1, 2)
                out = model(xb * scale if scale else xb)
                out = torch.softmax(out, 1) if which == "A" else torch.sigmoid(out)
                outs.append(out.numpy())
        return np.concatenate(outs)

    return predict
