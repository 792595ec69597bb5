"""fastconv.ops, the functional API under the layers: the lecture's figures as numbers, then a
small convnet's training step (forward, loss, backward, RMSprop) written with the ops alone.

Run: python examples/ops.py
"""

import numpy as np
from fastconv import ops
from fastconv.datasets import digits

# The lecture's 2x2 max pooling, stride 2: a 4x4 input gives [[6, 8], [3, 4]].
x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], "float32")
print("max pooling:", ops.max_pool2d(x[None, :, :, None], pool_size=2)[0, :, :, 0].tolist())

# Edge detection: a hand-set 3x3 kernel over a picture with a vertical edge.
image = np.zeros((1, 6, 6, 1), "float32")
image[:, :, 3:] = 1.0
vertical = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], "float32")[:, :, None, None]
print("vertical-edge response:\n", ops.conv2d(image, vertical)[0, :, :, 0])

# Shapes: 'same' keeps ceil(n / stride); (height, width) out.
shape = ops.conv2d_output_shape((28, 28), 3, strides=2, padding="same")
print("conv2d 28x28, 3x3, stride 2, 'same' ->", shape)

# A small convnet trained with the ops alone: conv(8, 3x3, relu) -> max pool 2 -> dense(10).
(x_train, y_train), (x_test, y_test) = digits.load_data(shifted_copies=False)
x_train = x_train[..., None].astype("float32") / 255
x_test = x_test[..., None].astype("float32") / 255
rng = np.random.default_rng(0)
kernel = rng.normal(0, np.sqrt(2 / 9), (3, 3, 1, 8)).astype("float32")
bias = np.zeros(8, "float32")
dense_kernel = rng.normal(0, np.sqrt(1 / (13 * 13 * 8)), (13 * 13 * 8, 10)).astype("float32")
dense_bias = np.zeros(10, "float32")
params = [kernel, bias, dense_kernel, dense_bias]
velocities = [np.zeros_like(p) for p in params]


def forward(images):
    features = ops.conv2d(images, kernel, bias, activation="relu")  # (n, 26, 26, 8)
    pooled = ops.max_pool2d(features)  # (n, 13, 13, 8)
    logits = ops.dense(pooled.reshape(len(images), -1), dense_kernel, dense_bias)
    return features, pooled, logits


for epoch in range(3):
    order = rng.permutation(len(x_train))
    for start in range(0, len(order), 64):
        batch = order[start : start + 64]
        images, labels = x_train[batch], y_train[batch]
        features, pooled, logits = forward(images)
        losses, dlogits = ops.sparse_softmax_cross_entropy(logits, labels)
        dlogits /= len(batch)  # the gradient of the mean loss
        dflat, ddense_kernel, ddense_bias = ops.dense_grad(
            pooled.reshape(len(batch), -1), dense_kernel, dlogits
        )
        dfeatures = ops.max_pool2d_relu_grad(features, dflat.reshape(pooled.shape))
        _, dkernel, dbias = ops.conv2d_grad(images, kernel, dfeatures, need_dx=False)
        for p, g, v in zip(params, [dkernel, dbias, ddense_kernel, ddense_bias], velocities):
            ops.rmsprop_update(p, g, v, learning_rate=1e-3)
    accuracy = (forward(x_test)[2].argmax(axis=1) == y_test).mean()
    print(f"epoch {epoch + 1}: loss {losses.mean():.4f}, test accuracy {accuracy:.3f}")
