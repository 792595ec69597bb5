"""Train the lecture's MNIST convnet on the shipped digits, export it to ONNX and check that
onnxruntime gives fastconv's answers.

    pip install ".[onnx]" onnxruntime
    python examples/export_onnx.py
"""

import numpy as np
import onnxruntime as ort
from fastconv.applications import build_mnist_model
from fastconv.datasets import digits

(x_train, y_train), (x_test, y_test) = digits.load_data()
x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255

model = build_mnist_model()
model.fit(x_train, y_train, epochs=2, batch_size=64)
model.export("mnist_convnet.onnx", format="onnx", verbose=True)

session = ort.InferenceSession("mnist_convnet.onnx", providers=["CPUExecutionProvider"])
onnx_probabilities = session.run(None, {"input": x_test})[0]
fastconv_probabilities = model.predict(x_test, verbose=0)
print(f"largest difference: {np.abs(onnx_probabilities - fastconv_probabilities).max():.2e}")
print(f"onnxruntime test accuracy: {(onnx_probabilities.argmax(1) == y_test).mean():.4f}")
