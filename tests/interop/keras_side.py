"""The Keras side of the cross-checks, run with the Keras venv's Python (never imported by the
fastconv tests): ``python keras_side.py COMMAND ARGS...``.

* ``save MODEL DATA OUT_DIR``: build the lecture model MODEL (mnist | cats) in Keras, train one
  step on DATA's first batch (so the optimizer has state), save ``keras.keras`` and
  ``keras.weights.h5``, write the predictions on ``x`` and the weights after one more step on the
  second batch to ``keras_expect.npz``.
* ``load FILE DATA OUT``: load FILE (a .keras saved by fastconv), predict ``x``, train one step on
  the second batch, write predictions and weights to OUT (npz).
* ``vgg16 INCLUDE_TOP OUT_DIR DATA``: VGG16(weights=None) with random weights, saved with
  save_weights; its predictions on ``x`` (after preprocess_input) and preprocess_input(x).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def _build(name):
    if name == "mnist":
        inputs = keras.Input(shape=(28, 28, 1))
        x = keras.layers.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
        x = keras.layers.MaxPooling2D(pool_size=2)(x)
        x = keras.layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
        x = keras.layers.MaxPooling2D(pool_size=2)(x)
        x = keras.layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
        x = keras.layers.Flatten()(x)
        outputs = keras.layers.Dense(10, activation="softmax")(x)
        model = keras.Model(inputs=inputs, outputs=outputs)
        model.compile(
            optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model
    inputs = keras.Input(shape=(180, 180, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for i, filters in enumerate((32, 64, 128, 256, 256)):
        x = keras.layers.Conv2D(filters=filters, kernel_size=3, activation="relu")(x)
        if i < 4:
            x = keras.layers.MaxPooling2D(pool_size=2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def save(name, data, out_dir):
    d = np.load(data)
    keras.utils.set_random_seed(0)
    model = _build(name)
    model.train_on_batch(d["x1"], d["y1"])
    model.save(os.path.join(out_dir, "keras.keras"))
    model.save_weights(os.path.join(out_dir, "keras.weights.h5"))
    pred = model.predict(d["x"], verbose=0)
    model.train_on_batch(d["x2"], d["y2"])
    np.savez(
        os.path.join(out_dir, "keras_expect.npz"),
        pred=pred,
        iterations=int(model.optimizer.iterations.numpy()),
        **{f"w{i}": w for i, w in enumerate(model.get_weights())},
    )


def load(path, data, out):
    d = np.load(data)
    model = keras.models.load_model(path)
    pred = model.predict(d["x"], verbose=0)
    iterations = int(model.optimizer.iterations.numpy())
    model.train_on_batch(d["x2"], d["y2"])
    np.savez(
        out,
        pred=pred,
        iterations=iterations,
        **{f"w{i}": w for i, w in enumerate(model.get_weights())},
    )


def vgg16(include_top, out_dir, data):
    d = np.load(data)
    keras.utils.set_random_seed(0)
    top = include_top == "top"
    model = keras.applications.VGG16(
        weights=None, include_top=top, input_shape=None if top else d["x"].shape[1:]
    )
    # small random weights keep the activations of random images in a sensible range
    model.set_weights([w * 0.5 for w in model.get_weights()])
    model.save_weights(os.path.join(out_dir, f"vgg16_{include_top}.weights.h5"))
    pre = keras.applications.vgg16.preprocess_input(d["x"].copy())
    pred = model.predict(pre, verbose=0)
    np.savez(os.path.join(out_dir, f"vgg16_{include_top}_expect.npz"), pre=pre, pred=pred)


if __name__ == "__main__":
    {"save": save, "load": load, "vgg16": vgg16}[sys.argv[1]](*sys.argv[2:])
