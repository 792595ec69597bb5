"""Keras 3's ``keras.ops`` conversions, and the arrays that answer TensorFlow's ``.numpy()``.

The lecture's listings were written for TensorFlow, where a dataset batch or a layer's output is
a tensor and ``x.numpy()`` turns it into an array (``augmented_images[0].numpy()``). fastconv's
values are NumPy arrays already; where the listings call ``.numpy()`` (batches of
``image_dataset_from_directory``, a layer or model called on an array, ``convert_to_tensor``)
they are :class:`EagerTensor`: a view of the same memory as an ``ndarray`` subclass whose
``numpy()`` gives the plain array back. Everything else returns plain arrays, and the trainer
takes a plain view of its input (``np.asarray``) before anything else, so training never
computes on the subclass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EagerTensor", "eager", "convert_to_numpy", "convert_to_tensor"]


class EagerTensor(np.ndarray):
    """A NumPy array with TensorFlow's ``numpy()`` method (a plain ``ndarray`` view of it).

    Slicing and arithmetic keep the type (``batch[0].numpy()`` works); reductions to a single
    value give NumPy scalars, as on plain arrays.
    """

    def numpy(self) -> np.ndarray:
        """The same values as a plain ``np.ndarray`` (a view: no copy)."""
        return self.view(np.ndarray)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        if return_scalar:
            return arr[()]
        return super().__array_wrap__(arr, context, return_scalar)


def eager(x: Any) -> Any:
    """``x`` viewed as an :class:`EagerTensor` when it is an ``ndarray`` (no copy); other
    values (None, tuples, symbolic tensors) unchanged."""
    if type(x) is np.ndarray:
        return x.view(EagerTensor)
    return x


def convert_to_numpy(x: Any) -> np.ndarray:
    """``keras.ops.convert_to_numpy``: ``x`` as a plain NumPy array (no copy when it is one)."""
    if isinstance(x, EagerTensor):
        return x.view(np.ndarray)
    return np.asarray(x)


def _default_dtype(x: Any) -> Any:
    """Keras' dtype for Python numbers and lists: float32 for floats, int32 for ints."""
    a = np.asarray(x)
    if a.dtype == np.float64:
        return np.float32
    if a.dtype == np.int64:
        return np.int32
    return a.dtype


def convert_to_tensor(x: Any, dtype: Any = None, sparse: bool | None = None) -> EagerTensor:
    """``keras.ops.convert_to_tensor``: ``x`` as an array (an :class:`EagerTensor`). Arrays keep
    their dtype; Python floats and ints become float32 and int32, as in Keras; ``dtype``
    converts."""
    if sparse:
        raise ValueError("fastconv has no sparse tensors: `sparse=True` is not supported")
    if dtype is None and not isinstance(x, np.ndarray):
        dtype = _default_dtype(x)
    return np.asarray(x, dtype=dtype).view(EagerTensor)
