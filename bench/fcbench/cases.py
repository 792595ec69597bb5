"""Every op case of the lecture's layers: per (layer, op), {implementation: call}, the naive loop.

Ops: conv forward (with bias and ReLU), input gradient (dx), weight gradient (dw, with the bias
gradient); max pool forward/backward; ReLU forward/backward; dense forward/backward (dx, dw, db
together). Implementations: ``fastconv`` (fastconv.ops), ``fastconv-winograd`` (the same with the
opt-in Winograd on, where it applies), ``numpy`` (NumPy at its best), ``torch`` (when given).
"""

from __future__ import annotations

import importlib
from typing import Callable, NamedTuple

import fastconv
import numpy as np
from fastconv import ops

from fcbench import shapes as S
from fcbench.baselines import naive as N
from fcbench.baselines import numpy_best as B
from fcbench.baselines import pytorch as T
from fcbench.runtime import has_winograd, with_winograd

OPS = {"conv": ("fwd", "dx", "dw"), "pool": ("fwd", "bwd"), "relu": ("fwd", "bwd")}
OPS["dense"] = ("fwd", "bwd")


class Case(NamedTuple):
    kind: str  # conv, pool, relu, dense
    shape: object  # a shapes.*Shape
    op: str  # fwd, dx, dw, bwd
    flops: int
    nbytes: int  # bytes moved (pooling and ReLU), else 0
    impls: dict  # {implementation: fn()}
    naive: Callable  # naive(rows=None): the naive NumPy loop, on the first rows only if given
    naive_rows: int  # the naive loop's outer iterations

    @property
    def label(self) -> str:
        return f"{self.kind} {self.shape.id} {self.op}"


def _conv_plan_class():
    """fastconv's private conv argument check (ops/conv.py, or ops.py before the split), or None."""
    for name in ("fastconv.ops.conv", "fastconv.ops"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "_ConvPlan"):
            return module._ConvPlan
    return None


_CONV_PLAN = _conv_plan_class()


def fastconv_conv2d_dx(x, kernel, dy):
    """conv2d's input gradient alone: ops.conv2d_grad always computes the weight gradient too."""
    if _CONV_PLAN is None:  # the private path moved: time dx with dw (an upper bound)
        return ops.conv2d_grad(x, kernel, dy)[0]
    plan = _CONV_PLAN(x, kernel, 1, "valid", 1)
    dx = np.empty(x.shape, np.float32)
    fastconv._core.conv2d_backward_input(dy, kernel, dx, *plan.args())
    return dx


def winograd_applies(s, op):
    """Whether fastconv's Winograd path runs this op of conv layer s (see set_winograd)."""
    oh, ow = s.out_hw
    side = min(s.h, s.w) if op == "dx" else min(oh, ow)
    channels_ok = s.cin >= 8 and s.cout >= 8 and (op != "dw" or s.cin % 8 == 0)
    return s.k == 3 and side >= (16 if op == "dx" else 10) and channels_ok


def _cases(kind, s, table, torch_ops, rows):
    """Cases from {op: (fastconv fn, numpy fn, naive fn(rows), flops, bytes)} and PyTorch's ops."""
    out = []
    for op, (fc, best, naive, flops, nbytes) in table.items():
        impls = {"fastconv": fc, "numpy": best}
        if op in torch_ops:
            impls["torch"] = torch_ops[op]
        if kind == "conv" and has_winograd() and winograd_applies(s, op):
            impls["fastconv-winograd"] = with_winograd(fc)
        out.append(Case(kind, s, op, flops, nbytes, impls, naive, rows))
    return out


def conv_cases(s, x, kernel, bias, dy, torch=None):
    table = {
        "fwd": (
            lambda: ops.conv2d(x, kernel, bias, activation="relu"),
            lambda: B.best_conv2d(x, kernel, bias),
            lambda rows=None: N.naive_conv2d(x, kernel, bias, rows=rows),
        ),
        "dx": (
            lambda: fastconv_conv2d_dx(x, kernel, dy),
            lambda: B.best_conv2d_dx(x.shape, kernel, dy),
            lambda rows=None: N.naive_conv2d_dx(x.shape, kernel, dy, rows=rows),
        ),
        "dw": (
            lambda: ops.conv2d_grad(x, kernel, dy, need_dx=False),
            lambda: B.best_conv2d_dw(x, dy, kernel.shape),
            lambda rows=None: N.naive_conv2d_dw(x, dy, kernel.shape, rows=rows),
        ),
    }
    table = {op: (*fns, s.flops, 0) for op, fns in table.items()}
    th = T.torch_conv_ops(torch, x, kernel, bias, dy) if torch is not None else {}
    return _cases("conv", s, table, th, N.naive_total_rows(dy.shape[0], dy.shape[1]))


def pool_cases(s, x, dy, torch=None):
    nx, ny = x.nbytes, dy.nbytes
    table = {
        "fwd": (
            lambda: ops.max_pool2d(x),
            lambda: B.best_max_pool(x),
            lambda rows=None: N.naive_max_pool(x, rows),
            s.flops,
            nx + ny,
        ),
        "bwd": (
            lambda: ops.max_pool2d_grad(x, dy),
            lambda: B.best_max_pool_grad(x, dy),
            lambda rows=None: N.naive_max_pool_grad(x, dy, rows),
            s.flops,
            2 * nx + ny,
        ),
    }
    th = T.torch_pool_ops(torch, x, dy) if torch is not None else {}
    return _cases("pool", s, table, th, N.naive_total_rows(dy.shape[0], dy.shape[1]))


def relu_cases(s, x, dy, torch=None):
    nb = x.nbytes
    table = {
        "fwd": (
            lambda: ops.relu(x),
            lambda: B.best_relu(x),
            lambda rows=None: N.naive_relu(x, rows),
            s.flops,
            2 * nb,
        ),
        "bwd": (
            lambda: ops.relu_grad(x, dy),
            lambda: B.best_relu_grad(x, dy),
            lambda rows=None: N.naive_relu_grad(x, dy, rows),
            s.flops,
            3 * nb,
        ),
    }
    th = T.torch_relu_ops(torch, x, dy) if torch is not None else {}
    return _cases("relu", s, table, th, N.naive_total_rows(x.shape[0], x.shape[1]))


def dense_cases(s, x, kernel, bias, dy, torch=None):
    table = {
        "fwd": (
            lambda: ops.dense(x, kernel, bias),
            lambda: B.best_dense(x, kernel, bias),
            lambda rows=None: N.naive_dense(x, kernel, bias, rows),
            s.flops,
            0,
        ),
        "bwd": (
            lambda: ops.dense_grad(x, kernel, dy),
            lambda: B.best_dense_grad(x, kernel, dy),
            lambda rows=None: N.naive_dense_grad(x, kernel, dy, rows),
            2 * s.flops,
            0,
        ),
    }
    th = T.torch_dense_ops(torch, x, kernel, bias, dy) if torch is not None else {}
    return _cases("dense", s, table, th, x.shape[0])


def case_groups():
    """(kind, shape) of every layer of the lecture, in model order: conv, its pool; ReLU; dense."""
    groups = []
    for s in S.CONV:
        groups.append(("conv", s))
        groups += [("pool", p) for p in S.POOL if (p.model, p.name[-1]) == (s.model, s.name[-1])]
    groups += [("relu", s) for s in S.RELU]
    groups += [("dense", s) for s in S.DENSE]
    return groups


_BUILD = {
    "conv": (conv_cases, S.conv_data),
    "pool": (pool_cases, S.pool_data),
    "relu": (relu_cases, S.relu_data),
    "dense": (dense_cases, S.dense_data),
}


def build_group(kind, s, torch=None):
    """The cases (one per op) of one layer, with freshly made data."""
    cases, data = _BUILD[kind]
    return cases(s, *data(s), torch=torch)


def iter_cases(torch=None, which=None):
    """Every op case, one layer's data alive at a time (``which``: substring filter on labels)."""
    for kind, s in case_groups():
        if which and not any(which in f"{kind} {s.id} {op}" for op in OPS[kind]):
            continue
        for case in build_group(kind, s, torch):
            if not which or which in case.label:
                yield case
