"""The case lists: layer shapes of the lecture's two convnets, at their training batch sizes, their
costs and data; the two models' specs and batches.

Model A, the MNIST convnet (batch 64)::

    Input(28, 28, 1) -> Conv2D(32, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu) -> MaxPool(2)
    -> Conv2D(128, 3, relu) -> Flatten -> Dense(10, softmax)            (rmsprop, sparse CE)

Model B, the cats-vs-dogs convnet (batch 32)::

    Input(180, 180, 3) -> Rescaling(1/255) -> [Conv2D(f, 3, relu) -> MaxPool(2)] for f in
    32, 64, 128, 256 -> Conv2D(256, 3, relu) -> Flatten -> Dense(1, sigmoid)  (rmsprop, BCE)

All convolutions are 3x3, stride 1, 'valid', with bias and ReLU; all pools are 2x2, stride 2,
'valid'. Activations are NHWC float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvShape:
    model: str  # "A" or "B"
    name: str  # "conv1", ...
    n: int
    h: int
    w: int
    cin: int
    cout: int
    k: int = 3

    @property
    def id(self) -> str:
        return f"{self.model}.{self.name} {self.h}x{self.w}x{self.cin}->{self.cout} b{self.n}"

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.h - self.k + 1, self.w - self.k + 1

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.cin)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        oh, ow = self.out_hw
        return (self.n, oh, ow, self.cout)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.k, self.cin, self.cout)

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 of one pass (forward, input gradient or weight gradient alike)."""
        oh, ow = self.out_hw
        return 2 * self.n * oh * ow * self.k * self.k * self.cin * self.cout

    @property
    def small(self) -> bool:
        """Small enough for the naive NumPy loop to run in full in a few seconds."""
        return self.model == "A"


@dataclass(frozen=True)
class PoolShape:
    model: str
    name: str
    n: int
    h: int
    w: int
    c: int
    pool: int = 2

    @property
    def id(self) -> str:
        return f"{self.model}.{self.name} {self.h}x{self.w}x{self.c} b{self.n}"

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.c)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.h // self.pool, self.w // self.pool, self.c)

    @property
    def flops(self) -> int:
        """Comparisons of the forward pass (one per input cell read); memory-bound."""
        n, oh, ow, c = self.y_shape
        return n * oh * ow * c * self.pool * self.pool

    @property
    def small(self) -> bool:
        return self.model == "A"


@dataclass(frozen=True)
class DenseShape:
    model: str
    name: str
    n: int
    fin: int
    fout: int

    @property
    def id(self) -> str:
        return f"{self.model}.{self.name} {self.fin}->{self.fout} b{self.n}"

    @property
    def flops(self) -> int:
        return 2 * self.n * self.fin * self.fout

    @property
    def small(self) -> bool:
        return True


@dataclass(frozen=True)
class ReluShape:
    """ReLU on a conv layer's output (fastconv fuses it into the conv; frameworks often do not)."""

    model: str
    name: str
    shape: tuple[int, int, int, int]

    @property
    def id(self) -> str:
        n, h, w, c = self.shape
        return f"{self.model}.{self.name} {h}x{w}x{c} b{n}"

    @property
    def flops(self) -> int:
        return int(np.prod(self.shape))

    @property
    def small(self) -> bool:
        return self.model == "A"


BATCH_A = 64
BATCH_B = 32

CONV_A = [
    ConvShape("A", "conv1", BATCH_A, 28, 28, 1, 32),
    ConvShape("A", "conv2", BATCH_A, 13, 13, 32, 64),
    ConvShape("A", "conv3", BATCH_A, 5, 5, 64, 128),
]
CONV_B = [
    ConvShape("B", "conv1", BATCH_B, 180, 180, 3, 32),
    ConvShape("B", "conv2", BATCH_B, 89, 89, 32, 64),
    ConvShape("B", "conv3", BATCH_B, 43, 43, 64, 128),
    ConvShape("B", "conv4", BATCH_B, 20, 20, 128, 256),
    ConvShape("B", "conv5", BATCH_B, 9, 9, 256, 256),
]
CONV = CONV_A + CONV_B

# a 2x2 max pool follows A.conv1-2 and B.conv1-4; its input is that conv's output
POOL = [PoolShape(c.model, f"pool{c.name[-1]}", *c.y_shape) for c in CONV_A[:2] + CONV_B[:4]]

DENSE = [
    DenseShape("A", "dense", BATCH_A, 3 * 3 * 128, 10),
    DenseShape("B", "dense", BATCH_B, 7 * 7 * 256, 1),
]

RELU = [ReluShape(c.model, f"relu{c.name[-1]}", c.y_shape) for c in CONV]


def _check() -> None:
    # the layer chain is consistent: each conv's input is the previous (pooled) output
    for convs, pools_after in ((CONV_A, 2), (CONV_B, 4)):
        for i in range(1, len(convs)):
            prev = convs[i - 1]
            _, oh, ow, oc = prev.y_shape
            if i - 1 < pools_after:
                oh, ow = oh // 2, ow // 2
            cur = convs[i]
            assert (cur.h, cur.w, cur.cin) == (oh, ow, oc), (prev, cur)
    assert DENSE[0].fin == int(np.prod(CONV_A[-1].y_shape[1:]))
    assert DENSE[1].fin == int(np.prod(CONV_B[-1].y_shape[1:]))


_check()


def conv_data(s: ConvShape, seed: int = 0):
    """x, kernel, bias, dy for one conv layer (x non-negative like a ReLU/pool output)."""
    rng = np.random.default_rng(seed)
    x = rng.random(s.x_shape, dtype=np.float32)
    fan_in, fan_out = s.k * s.k * s.cin, s.k * s.k * s.cout
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    kernel = rng.uniform(-lim, lim, s.kernel_shape).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, s.cout).astype(np.float32)
    dy = rng.standard_normal(s.y_shape, dtype=np.float32)
    return x, kernel, bias, dy


def pool_data(s: PoolShape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal(s.x_shape, dtype=np.float32), 0)
    x += rng.random(s.x_shape, dtype=np.float32) * 1e-3  # few exact ties
    dy = rng.standard_normal(s.y_shape, dtype=np.float32)
    return x, dy


def dense_data(s: DenseShape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((s.n, s.fin), dtype=np.float32)
    lim = np.sqrt(6.0 / (s.fin + s.fout))
    kernel = rng.uniform(-lim, lim, (s.fin, s.fout)).astype(np.float32)
    bias = np.zeros(s.fout, np.float32)
    dy = rng.standard_normal((s.n, s.fout), dtype=np.float32)
    return x, kernel, bias, dy


def relu_data(s: ReluShape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.shape, dtype=np.float32)
    dy = rng.standard_normal(s.shape, dtype=np.float32)
    return x, dy


# ----------------------------------------------------------------------------------------------
# whole models: what the ops-level and PyTorch versions are built from (the Keras-shaped graphs
# come from fastconv.applications), and a batch of each

MODEL_SPECS = {
    # conv filters, whether a 2x2 max pool follows each conv, input shape, classes, batch
    "A": dict(
        filters=(32, 64, 128), pools=(True, True, False), input=(28, 28, 1), units=10, batch=BATCH_A
    ),
    "B": dict(
        filters=(32, 64, 128, 256, 256),
        pools=(True, True, True, True, False),
        input=(180, 180, 3),
        units=1,
        batch=BATCH_B,
    ),
}


def model_batch(which, seed=0):
    """(x, y) of one training batch of model A (MNIST-like) or B (180x180 RGB, 0..255)."""
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
