"""Keras on TensorFlow, when importable (optional): the lecture's models built by
``fastconv.applications`` with the ``keras`` module, so the graph is the very same."""

from __future__ import annotations

from fastconv import applications


def keras_or_none(threads):
    """The keras module with TensorFlow set to ``threads`` intra-op threads, or None."""
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
    except Exception:
        return None
    return keras


def keras_steps(which, x, y, threads):
    """(train_step, predict) with Keras on TensorFlow, or None when not importable."""
    keras = keras_or_none(threads)
    if keras is None:
        return None
    build = (
        applications.build_mnist_model if which == "A" else applications.build_cats_vs_dogs_model
    )
    model = build(keras)
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))
