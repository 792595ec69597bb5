"""The gradients Grad-CAM and filter patterns use, against finite differences of the float64
reference, and the promise that they compute no weight gradient."""

import fastconv
import numpy as np
import pytest
import reference as ref
from fastconv import visualize

from .squares import square_images, square_model


def _reference_layers(model):
    """float64 forward functions of the square model's layers, by name."""
    w = {layer.name: [np.asarray(a, np.float64) for a in layer.weights] for layer in model.layers}
    return {
        "conv_a": lambda x: ref.conv2d(x, *w["conv_a"], activation="relu"),
        "pool_a": lambda x: ref.max_pool2d(x, 2),
        "conv_b": lambda x: ref.conv2d(x, *w["conv_b"], activation="relu"),
        "flatten": lambda x: x.reshape(len(x), -1),
        "classifier": lambda x: ref.dense(x, *w["classifier"]),  # the logits
    }


def _run(fns, names, x):
    for name in names:
        x = fns[name](x)
    return x


ORDER = ["conv_a", "pool_a", "conv_b", "flatten", "classifier"]


def _noise(rng, n):
    """Noise images: no two pixels alike, so no max-pooling window holds a tie (the squares'
    flat colours would make ties, where the pooling has no derivative)."""
    return rng.uniform(0.0, 1.0, (n, 24, 24, 3)).astype(np.float32)


def _off_ties(maps, v, gap=1e-3):
    """v with zeros in the 2x2 pooling windows of ``maps`` whose two largest values are closer
    than ``gap`` (ReLU's zeros): there the max has no derivative to check."""
    n, h, w, c = maps.shape
    windows = maps[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    top2 = np.sort(windows.transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4), axis=-1)
    tied = (top2[..., 3] - top2[..., 2]) < gap
    mask = np.ones_like(maps, dtype=bool)
    mask[:, : h // 2 * 2, : w // 2 * 2] = ~np.repeat(np.repeat(tied, 2, axis=1), 2, axis=2)
    return v * mask


@pytest.mark.parametrize("layer_name", ["conv_a", "pool_a", "conv_b"])
def test_filter_gradient_matches_finite_differences(rng, layer_name):
    fastconv.utils.set_random_seed(1)
    model = square_model(fastconv)
    fns = _reference_layers(model)
    x = _noise(rng, 2)
    filt = 3
    upto = ORDER[: ORDER.index(layer_name) + 1]

    def objective(images):  # the mean over the interior, 2 pixels of border left out
        y = _run(fns, upto, images)
        return y[:, 2:-2, 2:-2, filt].mean(axis=(1, 2)).sum()

    value, grad = visualize.filter_gradient(model, layer_name, filt, x)
    np.testing.assert_allclose(value.sum(), objective(x.astype(np.float64)), rtol=1e-5)
    for _ in range(3):
        v = rng.standard_normal(x.shape)
        fd = ref.central_difference(objective, x.astype(np.float64), v, 1e-6)
        got = float(np.sum(grad * v))
        assert abs(got - fd) <= 1e-3 * max(1.0, abs(fd)), (fd, got)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("layer_name", ["conv_a", "conv_b"])
@pytest.mark.parametrize("class_index", [None, 0, 1])
def test_class_score_gradient_matches_finite_differences(rng, output, layer_name, class_index):
    """The gradient of the class's logit with respect to the layer's maps. conv_a's output
    is inside the model's fused conv+pool step: the Grad-CAM plan must run the two apart."""
    fastconv.utils.set_random_seed(2)
    model = square_model(fastconv, output)
    assert "ConvMaxPoolStep(conv_a, pool_a)" in model._execution_plan().describe()
    fns = _reference_layers(model)
    x = _noise(rng, 3)
    head = ORDER[ORDER.index(layer_name) + 1 :]
    maps, grads, classes = visualize.class_score_gradients(model, x, layer_name, class_index)
    want_maps = _run(fns, ORDER[: ORDER.index(layer_name) + 1], x.astype(np.float64))
    np.testing.assert_allclose(maps, want_maps, rtol=1e-4, atol=1e-5)
    logits = _run(fns, head, want_maps)
    if output == "sigmoid":
        want = (logits[:, 0] >= 0) if class_index is None else np.full(3, class_index)
        sign = np.where(want == 1, 1.0, -1.0)

        def score(a):
            return float(np.sum(sign * _run(fns, head, a)[:, 0]))
    else:
        want = logits.argmax(axis=1) if class_index is None else np.full(3, class_index)

        def score(a):
            return float(np.sum(_run(fns, head, a)[np.arange(3), want]))

    np.testing.assert_array_equal(classes, want)
    for _ in range(3):
        v = rng.standard_normal(maps.shape)
        if layer_name == "conv_a":  # the pooling follows
            v = _off_ties(want_maps, v)
        fd = ref.central_difference(score, want_maps, v, 1e-6)
        assert abs(float(np.sum(grads * v)) - fd) <= 1e-3 * max(1.0, abs(fd)), (
            fd,
            np.sum(grads * v),
        )


def test_no_weight_gradient_and_flags_restored(rng):
    model = square_model(fastconv)
    model.get_layer("conv_b").trainable = False  # a user's own setting survives
    for layer in model.layers:
        layer.grads = {}
    x, _, _ = square_images(2, rng)
    visualize.filter_gradient(model, "conv_b", 0, x)
    visualize.grad_cam(model, x, "conv_a")
    assert model.get_layer("conv_a").grads == {} and model.get_layer("conv_b").grads == {}
    assert [layer.trainable for layer in model.layers] == [True, True, True, False, True, True]
    assert model.get_layer("conv_a").trainable and model.trainable


def test_conv2d_grad_without_weight_gradients_gives_the_same_input_gradient(rng):
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    dy = rng.standard_normal((2, 7, 6, 5)).astype(np.float32)
    dx, dk, db = fastconv.ops.conv2d_grad(x, k, dy)
    dx2, dk2, db2 = fastconv.ops.conv2d_grad(x, k, dy, need_weight_grads=False)
    assert dk is not None and dk2 is None and db2 is None
    np.testing.assert_array_equal(dx, dx2)


def test_a_frozen_conv_layer_trains_nothing_and_still_passes_gradients(rng):
    model = square_model(fastconv)
    model.get_layer("conv_b").trainable = False
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    x, y, _ = square_images(8, rng)
    before = model.get_layer("conv_b").get_weights()
    first = model.get_layer("conv_a").get_weights()[0].copy()
    model.train_on_batch(x, y)
    for a, b in zip(before, model.get_layer("conv_b").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first, model.get_layer("conv_a").get_weights()[0])
