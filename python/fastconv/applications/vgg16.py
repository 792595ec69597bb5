"""VGG16 as ``keras.applications.vgg16`` builds it: the same layer names, shapes and parameter
counts (14,714,688 without the top, 138,357,544 with it), ``preprocess_input`` as Keras computes
it ("caffe" mode: RGB to BGR, ImageNet mean subtracted), and weights from None, a weight file in
either Keras h5 layout, or "imagenet" (Keras' published file, fetched through pooch with its hash
checked, from the Keras cache ``~/.keras/models`` when it is already there).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import layers
from .._tensor import KerasTensor
from ..layers.base import Layer, register_layer
from ..layers.input_layer import Input
from ..models import Model
from ..utils import downloads

__all__ = ["VGG16", "preprocess_input", "decode_predictions", "VGG16_WEIGHTS"]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
# include_top -> (file name, hash): Keras' published files and the hashes Keras checks
VGG16_WEIGHTS = {
    True: ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "md5:64373286793e3c8b2b4e3219cbf3544b"),
    False: (
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5:6d6bbae143d832006294945121d1f1fc",
    ),
}
_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@register_layer
class VGGPreprocess(Layer):
    """``preprocess_input`` inside a functional model: RGB to BGR, ImageNet mean subtracted."""

    def forward(self, x, training=False):
        return _caffe(x)

    def backward(self, dy, need_dx=True):
        return np.ascontiguousarray(dy[..., ::-1]) if need_dx else None


def _caffe(x):
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1:] != (3,):
        raise ValueError(f"preprocess_input expects RGB images (last axis 3); got {x.shape}")
    return np.ascontiguousarray(x[..., ::-1]) - _MEAN_BGR


def preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """Keras' VGG16 preprocessing: arrays give arrays, symbolic tensors a layer's output."""
    if data_format not in (None, "channels_last"):
        raise ValueError("fastconv supports only data_format='channels_last'")
    if isinstance(x, KerasTensor):
        return VGGPreprocess()(x)
    return _caffe(x)


def decode_predictions(preds, top=5):
    raise NotImplementedError("decode_predictions needs ImageNet's class index, not shipped")


def _weights_file(include_top: bool) -> str:
    name, file_hash = VGG16_WEIGHTS[include_top]
    return downloads.get_file(name, _BASE + name, file_hash=file_hash, cache_subdir="models")


def VGG16(  # noqa: N802
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    input_tensor: KerasTensor | None = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str = "vgg16",
) -> Model:
    """Keras' ``keras.applications.vgg16.VGG16`` (channels_last)."""
    if not (weights in (None, "imagenet") or os.path.exists(os.fspath(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            f"'imagenet' (pre-training on ImageNet), or the path to the weights file. Got {weights}"
        )
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("With weights='imagenet' and include_top=True, classes must be 1000")
    if input_shape is None:
        input_shape = (224, 224, 3) if include_top or input_tensor is None else None
    if include_top and input_shape is not None and tuple(input_shape) != (224, 224, 3):
        raise ValueError(
            f"With include_top=True the input shape must be (224, 224, 3): {input_shape}"
        )
    inputs = input_tensor if input_tensor is not None else Input(shape=input_shape)
    x = inputs
    for b, (filters, convs) in enumerate(_BLOCKS, start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(
                filters, 3, activation="relu", padding="same", name=f"block{b}_conv{c}"
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling is not None:
        if pooling != "max":
            raise ValueError("fastconv's VGG16 supports pooling=None or 'max'")
        x = layers.MaxPooling2D(x.shape[1:3], name="global_max_pool")(x)
        x = layers.Flatten(name="flatten")(x)
    model = Model(inputs, x, name=name)
    if weights == "imagenet":
        model.load_weights(_weights_file(include_top))
    elif weights is not None:
        model.load_weights(weights)
    return model
