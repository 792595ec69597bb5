"""NumPy-facing functional ops: validate, convert, allocate, and call the C++ kernels.

Every op is a pair of pure functions, ``op(...)`` and ``op_grad(...)``. Inputs may be any numeric
array-likes; they are converted to C-contiguous float32, and results are float32. Bad arguments
raise ValueError/TypeError naming the argument and the shapes before any memory is touched.
One module per family: conv, pooling, fully_connected, elementwise, losses, updates; ``core``
holds Keras 3's ``convert_to_numpy`` and ``convert_to_tensor``.
"""

from ._checks import conv2d_output_shape, pool2d_output_shape
from .conv import (
    conv2d,
    conv2d_grad,
    conv2d_max_pool,
)
from .core import EagerTensor, convert_to_numpy, convert_to_tensor
from .elementwise import (
    relu,
    relu_grad,
    sigmoid,
    softmax,
)
from .fully_connected import (
    dense,
    dense_grad,
)
from .losses import (
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    sparse_softmax_cross_entropy,
)
from .pooling import (
    avg_pool2d,
    avg_pool2d_grad,
    conv2d_max_pool_weight_grad_from_argmax,
    conv2d_relu_max_pool_weight_grad,
    max_pool2d,
    max_pool2d_grad,
    max_pool2d_grad_from_argmax,
    max_pool2d_relu_grad,
)
from .updates import (
    adam_update,
    rmsprop_update,
    sgd_update,
)

__all__ = [
    "convert_to_numpy",
    "convert_to_tensor",
    "EagerTensor",
    "conv2d",
    "conv2d_max_pool",
    "conv2d_grad",
    "relu",
    "relu_grad",
    "softmax",
    "sigmoid",
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_grad",
    "max_pool2d_relu_grad",
    "conv2d_relu_max_pool_weight_grad",
    "max_pool2d_grad_from_argmax",
    "conv2d_max_pool_weight_grad_from_argmax",
    "avg_pool2d_grad",
    "dense",
    "dense_grad",
    "sparse_softmax_cross_entropy",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sgd_update",
    "rmsprop_update",
    "adam_update",
    "conv2d_output_shape",
    "pool2d_output_shape",
]
