"""ONNX Runtime running the lecture's models: the graph is built here from Keras-layout weights
(``model.get_weights()`` of fastconv or Keras: conv kernels (kh, kw, cin, cout) and biases, then
the dense kernel (in, units) and bias) with the ``onnx`` package's helper API.

The graph takes NHWC float32 input, as the Keras-shaped models do: [Mul(1/255) for B] ->
Transpose to NCHW -> (Conv -> Relu [-> MaxPool 2x2]) per conv -> Transpose back to NHWC, so that
Flatten orders features (h, w, c) as Keras does -> Gemm -> Softmax (A) / Sigmoid (B).
"""

from __future__ import annotations

import numpy as np

from fcbench.shapes import MODEL_SPECS

OPSET = 17
IR_VERSION = 8  # what current onnxruntime releases all read


def onnx_model(which, weights):
    """The onnx.ModelProto of model ``which`` ("A" or "B") with these Keras-layout weights."""
    from onnx import TensorProto, helper, numpy_helper

    spec = MODEL_SPECS[which]
    h, w, c = spec["input"]
    convs = len(spec["filters"])
    if len(weights) != 2 * convs + 2:
        raise ValueError(f"model {which}: {2 * convs + 2} weight arrays, not {len(weights)}")
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    cur = "x"
    if which == "B":
        nodes.append(helper.make_node("Mul", [cur, const("scale", np.float32(1 / 255))], ["xs"]))
        cur = "xs"
    nodes.append(helper.make_node("Transpose", [cur], ["t0"], perm=[0, 3, 1, 2]))
    cur = "t0"
    for i, pool in enumerate(spec["pools"]):
        kernel, bias = weights[2 * i], weights[2 * i + 1]
        wname = const(f"w{i}", kernel.transpose(3, 2, 0, 1))  # (cout, cin, kh, kw)
        bname = const(f"b{i}", bias)
        nodes.append(helper.make_node("Conv", [cur, wname, bname], [f"c{i}"]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        cur = f"r{i}"
        if pool:
            nodes.append(
                helper.make_node("MaxPool", [cur], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2])
            )
            cur = f"p{i}"
    nodes.append(helper.make_node("Transpose", [cur], ["nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Flatten", ["nhwc"], ["flat"], axis=1))
    dense = [const("wd", weights[-2]), const("bd", weights[-1])]
    nodes.append(helper.make_node("Gemm", ["flat", *dense], ["logits"]))
    if which == "A":
        nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    else:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["y"]))
    graph = helper.make_graph(
        nodes,
        f"lecture_{which}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", h, w, c])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", spec["units"]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def save_onnx(which, weights, path):
    import onnx

    model = onnx_model(which, weights)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def ort_session(path, threads, spinning=False):
    """An onnxruntime session at its best on a shared machine: ``threads`` intra-op threads, one
    inter-op (sequential execution), every graph optimisation on, and (unless ``spinning``) idle
    workers that sleep instead of spinning: on this loaded 2-core machine spinning workers made
    the MNIST convnet's inference 1.4-2.2x slower (1,594-1,991 against 2,857-3,542 img/s)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_predictor(path, batch, threads):
    """predict(x): the model's outputs for an NHWC array, ``batch`` images per run."""
    session = ort_session(path, threads)

    def predict(x):
        outs = [session.run(None, {"x": x[i : i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(outs)

    return predict
