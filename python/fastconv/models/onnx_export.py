"""``model.export(path, format="onnx")``: the inference graph as an ONNX model.

Written with the ``onnx`` package's helper API (``pip install "fastconv[onnx]"``), opset 17. The
exported graph takes and returns what ``model.predict`` does: float32 NHWC images in (batch
axis dynamic), the model's output out. Inside, convolutions and poolings run in ONNX's NCHW
layout; a Transpose goes in where the layout changes (after the input, before Flatten or a
Dense, before the output), so Flatten keeps Keras' (h, w, c) order and the Dense kernels stay
as they are. Keras semantics are written out explicitly: 'same' padding as explicit pads with
the odd extra row/column at the bottom/right, 'same' average pooling counting only the cells
inside the image (``count_include_pad=0``). Training-only layers (Dropout, RandomFlip,
RandomRotation, RandomZoom) are dropped, as in inference; a nested model's layers are inlined.

Each layer class has one entry in ``_EMITTERS``: a function that adds the layer's nodes.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .. import layers as L

__all__ = ["export_onnx", "OPSET"]

OPSET = 17
_TRAINING_ONLY = (L.Dropout, L.RandomFlip, L.RandomRotation, L.RandomZoom)
_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


class _Graph:
    """The nodes and weights being written, and the current tensor's name, rank and layout."""

    def __init__(self, onnx, name, rank):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers = [], []
        self.tensor, self.rank, self.layout = "input", rank, "nhwc"
        self._count = 0
        self.prefix = name

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint, array):
        name = self._name(hint)
        tensor = self.onnx.numpy_helper.from_array(np.asarray(array), name)
        self.initializers.append(tensor)
        return name

    def node(self, op, inputs, hint, **attrs):
        out = self._name(hint)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        self.tensor = out
        return out

    def layout_to(self, layout):
        """Transpose the current 4-D tensor to ``layout`` ("nchw" or "nhwc") if it is not."""
        if self.rank == 4 and self.layout != layout:
            perm = _TO_NCHW if layout == "nchw" else _TO_NHWC
            self.node("Transpose", [self.tensor], f"to_{layout}", perm=list(perm))
        self.layout = layout

    def activation(self, name, hint, channel_axis=-1):
        if name == "relu":
            self.node("Relu", [self.tensor], f"{hint}_relu")
        elif name == "sigmoid":
            self.node("Sigmoid", [self.tensor], f"{hint}_sigmoid")
        elif name == "softmax":
            self.node("Softmax", [self.tensor], f"{hint}_softmax", axis=channel_axis)
        elif name != "linear":
            raise ValueError(f"ONNX export: unsupported activation {name!r} in {hint}")


def _same_pads(size, kernel, stride, dilation):
    """Keras' 'same' padding of one spatial axis: (before, after), the odd extra one after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(layer, in_shape, kernel, dilation=(1, 1)):
    if layer.padding == "valid":
        return [0, 0, 0, 0]
    (t, b), (left, r) = (
        _same_pads(in_shape[1 + i], kernel[i], layer.strides[i], dilation[i]) for i in range(2)
    )
    return [t, left, b, r]


def _channel_axis(g):
    return 1 if g.rank == 4 and g.layout == "nchw" else -1


def _conv2d(g, layer, in_shape):
    g.layout_to("nchw")
    w = g.constant(f"{layer.name}_kernel", np.transpose(layer.kernel, (3, 2, 0, 1)))
    inputs = [g.tensor, w]
    if layer.use_bias:
        inputs.append(g.constant(f"{layer.name}_bias", layer.bias))
    g.node(
        "Conv",
        inputs,
        layer.name,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        pads=_pads(layer, in_shape, layer.kernel_size, layer.dilation_rate),
    )
    g.activation(layer.activation, layer.name, channel_axis=1)


def _pooling(op, **extra):
    def emit(g, layer, in_shape):
        g.layout_to("nchw")
        g.node(
            op,
            [g.tensor],
            layer.name,
            kernel_shape=list(layer.pool_size),
            strides=list(layer.strides),
            pads=_pads(layer, in_shape, layer.pool_size),
            **extra,
        )

    return emit


def _dense(g, layer, in_shape):
    g.layout_to("nhwc")  # Dense works on the last axis, Keras' channels
    g.node("MatMul", [g.tensor, g.constant(f"{layer.name}_kernel", layer.kernel)], layer.name)
    if layer.use_bias:
        g.node("Add", [g.tensor, g.constant(f"{layer.name}_bias", layer.bias)], layer.name)
    g.activation(layer.activation, layer.name)


def _flatten(g, layer, in_shape):
    g.layout_to("nhwc")  # Keras flattens in (h, w, c) order
    g.node("Flatten", [g.tensor], layer.name, axis=1)
    g.rank = 2


def _rescaling(g, layer, in_shape):
    g.node("Mul", [g.tensor, g.constant(f"{layer.name}_scale", np.float32(layer.scale))], "mul")
    if layer.offset:
        offset = g.constant(f"{layer.name}_offset", np.float32(layer.offset))
        g.node("Add", [g.tensor, offset], "add")


def _activation(g, layer, in_shape):
    g.activation(layer.activation, layer.name, channel_axis=_channel_axis(g))


def _softmax(g, layer, in_shape):
    if layer.axis not in (-1, g.rank - 1):
        raise ValueError(f"ONNX export: Softmax over axis {layer.axis} is not supported")
    g.activation("softmax", layer.name, channel_axis=_channel_axis(g))


def _relu(g, layer, in_shape):
    if layer.negative_slope == 0 and layer.threshold == 0:
        g.node("Relu", [g.tensor], layer.name)
    else:  # where(x >= threshold, x, negative_slope * (x - threshold))
        x = g.tensor
        t = g.constant(f"{layer.name}_threshold", np.float32(layer.threshold))
        keep = g.node("GreaterOrEqual", [x, t], f"{layer.name}_keep")
        shifted = g.node("Sub", [x, t], f"{layer.name}_shift")
        slope = g.constant(f"{layer.name}_slope", np.float32(layer.negative_slope))
        below = g.node("Mul", [shifted, slope], f"{layer.name}_below")
        g.node("Where", [keep, x, below], layer.name)
    if layer.max_value is not None:
        cap = g.constant(f"{layer.name}_max", np.float32(layer.max_value))
        g.node("Min", [g.tensor, cap], f"{layer.name}_cap")


_EMITTERS = {
    L.Conv2D: _conv2d,
    L.MaxPooling2D: _pooling("MaxPool"),
    L.AveragePooling2D: _pooling("AveragePool", count_include_pad=0),
    L.Dense: _dense,
    L.Flatten: _flatten,
    L.Rescaling: _rescaling,
    L.Activation: _activation,
    L.Softmax: _softmax,
    L.ReLU: _relu,
}


def _inference_layers(model):
    """The chain's layers as inference runs them: nested models inlined, training-only layers
    and input layers dropped."""
    for layer in model._chain():
        if hasattr(layer, "_chain"):  # a model used as a layer
            yield from _inference_layers(layer)
        elif not isinstance(layer, (_TRAINING_ONLY, L.InputLayer)):
            yield layer


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            'model.export(..., format="onnx") needs the onnx package: '
            'pip install "fastconv[onnx]" (or pip install onnx)'
        ) from e
    return onnx


def build_onnx_model(model) -> Any:
    """The ``onnx.ModelProto`` of ``model``'s inference graph (see the module docstring)."""
    onnx = _onnx()
    model._require_built()
    if len(model.outputs) > 1:
        raise ValueError("ONNX export: models with several outputs are not supported")
    in_shape = tuple(model.inputs[0].shape)
    g = _Graph(onnx, model.name, len(in_shape))
    shape = in_shape
    for layer in _inference_layers(model):
        emit = _EMITTERS.get(type(layer))
        if emit is None:
            raise ValueError(
                f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) is not supported"
            )
        emit(g, layer, shape)
        shape = tuple(layer.compute_output_shape(shape))
    g.layout_to("nhwc")
    if g.tensor == "input":  # nothing but training-only layers: the identity
        g.node("Identity", [g.tensor], "identity")
    nodes = g.nodes
    nodes[-1].output[0] = "output"
    if nodes[-1].name != "output":
        nodes[-1].name = nodes[-1].name + "_output"
    dims = ["batch"] + [int(d) for d in in_shape[1:]]
    out_dims = ["batch"] + [int(d) for d in shape[1:]]
    float32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        nodes,
        model.name,
        [onnx.helper.make_tensor_value_info("input", float32, dims)],
        [onnx.helper.make_tensor_value_info("output", float32, out_dims)],
        initializer=g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        producer_name="fastconv",
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
    )
    proto.ir_version = min(proto.ir_version, 8)  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, filepath: str | os.PathLike) -> None:
    """Write ``model``'s inference graph to ``filepath`` as ONNX (see the module docstring)."""
    proto = build_onnx_model(model)
    _onnx().save_model(proto, os.fspath(filepath))
