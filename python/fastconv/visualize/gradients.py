"""Input-space gradients through a model's own backward pass: filter patterns (gradient ascent
on a filter's mean activation) and Grad-CAM heatmaps.

Both run a sub-model over the model's layers (the weights are shared) whose plan ends a step at
every layer they look at, and backward passes with every layer frozen: the input gradients of
conv, pooling, dense, ReLU and the output activation come from the training kernels, and no
weight gradient of a convolution is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers.convolutional import Conv2D
from ..models.model import Model
from ._common import as_batch, frozen, input_range, layer_position, sub_model

__all__ = [
    "filter_gradient",
    "filter_pattern",
    "class_score_gradients",
    "grad_cam",
    "last_conv_layer",
]


# ------------------------------------------------------------------------ filter patterns
def _interior(n: int) -> slice:
    """The chapter leaves 2 pixels of border out of a filter's mean (border artefacts)."""
    return slice(2, n - 2) if n > 4 else slice(0, n)


def _filter_objective(
    model: Model, layer_name: str, filter_index: int
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """x -> (mean activation of the filter per image, its gradient with respect to x)."""
    layer, _ = layer_position(model, layer_name)
    channels = layer.output.shape[-1]
    if not 0 <= int(filter_index) < channels:
        raise ValueError(
            f"filter_index must be in [0, {channels}) for layer '{layer_name}'; "
            f"received {filter_index}"
        )
    plan = sub_model(model, [layer.output], "filter")._execution_plan()

    def objective(x, before_activation=False):
        with frozen(model):
            y = plan.forward(x, training=False, keep_tape=True)
            rows, cols = _interior(y.shape[1]), _interior(y.shape[2])
            window = y[:, rows, cols, filter_index]
            dy = np.zeros_like(y)
            dy[:, rows, cols, filter_index] = 1.0 / (window.shape[1] * window.shape[2])
            dx = plan.backward(dy, need_dx=True, from_preactivation=before_activation)
        return window.mean(axis=(1, 2), dtype=np.float64), dx

    return objective


def filter_gradient(
    model: Model, layer_name: str, filter_index: int, images: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(the mean activation of filter ``filter_index`` of layer ``layer_name`` per image, its
    gradient with respect to the images): the objective ``filter_pattern`` climbs."""
    return _filter_objective(model, layer_name, filter_index)(as_batch(model, images))


def filter_pattern(
    model: Model,
    layer_name: str,
    filter_index: int,
    steps: int = 30,
    learning_rate: float = 10.0,
    seed: int = 0,
    clip: bool = True,
) -> np.ndarray:
    """The input image (H, W, C) that maximises the filter's mean activation, found as the
    chapter does: from a grey image with a little noise, ``steps`` steps of gradient ascent
    along the L2-normalised gradient, ``learning_rate`` scaled to the input's value range (0..255
    for a model that starts with ``Rescaling(1/255)``). Unlike the chapter, ``clip`` keeps the
    image in that range (a picture the model could be shown), and a ReLU filter silent on the
    start image climbs its pre-activation until it fires (the chapter's would stay grey)."""
    objective = _filter_objective(model, layer_name, filter_index)
    lo, hi = input_range(model)
    shape = (1,) + tuple(model.input.shape[1:])
    rng = np.random.default_rng(seed)
    image = rng.uniform(lo + 0.4 * (hi - lo), lo + 0.6 * (hi - lo), shape).astype(np.float32)
    relu = getattr(model.get_layer(layer_name), "activation", None) == "relu"
    for _ in range(int(steps)):
        value, grad = objective(image)
        if value[0] <= 0.0 and relu:  # silent: the ReLU passes no gradient, climb under it
            _, grad = objective(image, before_activation=True)
        norm = float(np.linalg.norm(grad))
        if norm == 0.0:  # nothing to climb
            break
        image += np.float32(learning_rate * (hi - lo) / norm) * grad
        if clip:
            np.clip(image, lo, hi, out=image)
    return image[0]


# ------------------------------------------------------------------------------- Grad-CAM
def last_conv_layer(model: Model) -> str:
    """The name of the model's last Conv2D layer (Grad-CAM's default)."""
    convs = [layer.name for layer in model._chain() if isinstance(layer, Conv2D)]
    if not convs:
        raise ValueError(f"model '{model.name}' has no Conv2D layer: pass `layer_name`")
    return convs[-1]


def _score_seed(preds, activation, class_index):
    """(class per image, the gradient that starts the backward pass, whether it is with
    respect to the logits). The score is the class's logit for softmax and sigmoid outputs
    (the Grad-CAM paper's choice); for one sigmoid unit, class 1's logit or class 0's negated
    logit."""
    if preds.ndim != 2:
        raise ValueError(f"Grad-CAM needs a (batch, classes) output; the model's is {preds.shape}")
    n, units = preds.shape
    binary = units == 1 and activation == "sigmoid"
    if class_index is None:
        classes = (preds[:, 0] >= 0.5).astype(np.int64) if binary else preds.argmax(axis=1)
    else:
        top = 2 if binary else units
        if not 0 <= int(class_index) < top:
            raise ValueError(f"class_index must be in [0, {top}); received {class_index}")
        classes = np.full(n, int(class_index), np.int64)
    seed = np.zeros_like(preds)
    if binary:
        seed[:, 0] = np.where(classes == 1, 1.0, -1.0)
    else:
        seed[np.arange(n), classes] = 1.0
    return classes, seed, activation in ("softmax", "sigmoid")


def class_score_gradients(
    model: Model, images: Any, layer_name: str | None = None, class_index: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the layer's feature maps, the gradient of the class score with respect to them, the
    class per image) for Grad-CAM: one forward pass and a backward pass down to the layer."""
    x = as_batch(model, images)
    layer, _ = layer_position(model, layer_name or last_conv_layer(model))
    grad_model = sub_model(model, [layer.output, model.output], "grad_cam")
    plan = grad_model._execution_plan()
    with frozen(model):
        maps, preds = plan.forward(x, training=False, keep_tape=True)
        classes, seed, from_logits = _score_seed(preds, plan.output_activation, class_index)
        grads = plan.backward(
            seed, need_dx=True, from_preactivation=from_logits, down_to=plan.outputs[0]
        )
    return maps, grads, classes


def _resize_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n, h, w) -> (n, height, width), pixel centres aligned, edges clamped."""

    def taps(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo)

    r0, r1, fr = taps(maps.shape[1], height)
    c0, c1, fc = taps(maps.shape[2], width)
    rows = maps[:, r0] * (1 - fr)[None, :, None] + maps[:, r1] * fr[None, :, None]
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc


def grad_cam(
    model: Model,
    images: Any,
    layer_name: str | None = None,
    class_index: int | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Grad-CAM heatmaps (n, H, W) in [0, 1] at the input's height and width: the layer's
    channels (default: the last conv layer) weighted by the mean gradient of the class score
    over each channel, summed, ReLU'd, stretched to the input's size and scaled to a maximum
    of 1 per image (all zeros where no channel speaks for the class). ``class_index`` None:
    each image's predicted class (for one sigmoid unit: 1 if p >= 0.5 else 0)."""
    x = as_batch(model, images)
    out = np.empty(x.shape[:3], np.float32)
    for start in range(0, len(x), batch_size):
        maps, grads, _ = class_score_gradients(
            model, x[start : start + batch_size], layer_name, class_index
        )
        weights = grads.mean(axis=(1, 2), dtype=np.float64)
        cam = np.maximum(np.einsum("nhwk,nk->nhw", maps, weights), 0.0)
        cam = _resize_bilinear(cam, x.shape[1], x.shape[2])
        peak = cam.max(axis=(1, 2), keepdims=True)
        out[start : start + len(cam)] = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    return out
