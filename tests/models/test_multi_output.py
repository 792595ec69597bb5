"""Models with several outputs on one chain (the chapter's activation model) and sub-models
sharing the layers and weights of the model they came from."""

import fastconv
import numpy as np
import pytest
import reference as ref
from fastconv.applications import mnist_convnet
from fastconv.models.plan import ExecutionPlan


@pytest.fixture
def model():
    fastconv.utils.set_random_seed(0)
    return mnist_convnet()


def _reference(model, x):
    """Each layer's output of the MNIST convnet, by the float64 reference."""
    outs, y = [], x.astype(np.float64)
    for layer in model.layers[1:]:
        w = [np.asarray(a, np.float64) for a in layer.weights]
        kind = type(layer).__name__
        if kind == "Conv2D":
            y = ref.conv2d(y, *w, activation="relu")
        elif kind == "MaxPooling2D":
            y = ref.max_pool2d(y, 2)
        elif kind == "Flatten":
            y = y.reshape(len(y), -1)
        else:
            y = ref.softmax(ref.dense(y, *w))
        outs.append(y)
    return outs


def test_the_chapters_activation_model(model, rng):
    """keras.Model(inputs=model.input, outputs=[layer.output for layer in model.layers[1:8]])"""
    activation_model = fastconv.Model(
        inputs=model.input, outputs=[layer.output for layer in model.layers[1:8]]
    )
    x = rng.uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    outs = activation_model.predict(x, batch_size=2, verbose=0)
    assert isinstance(outs, list) and len(outs) == 7
    for got, want, layer in zip(outs, _reference(model, x), model.layers[1:8]):
        assert got.shape == (5,) + tuple(layer.output.shape[1:])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=layer.name)
    np.testing.assert_array_equal(outs[-1], model.predict(x, verbose=0))
    # every output is a step boundary: no fusion hides one
    assert all("MaxPool" not in s for s in activation_model._execution_plan().describe()[:4])
    assert activation_model.output_shape == [t.shape for t in activation_model.outputs]
    assert isinstance(activation_model.output, list)


def test_several_outputs_from_calls_and_datasets(model, rng):
    outputs = [model.layers[2].output, model.layers[5].output]
    several = fastconv.Model(model.input, outputs)
    x = rng.uniform(0, 1, (6, 28, 28, 1)).astype(np.float32)
    want = several.predict(x, verbose=0)
    for got in (
        several(x),
        several.predict_on_batch(x),
        several.predict(((x[i : i + 4], None) for i in (0, 4)), verbose=0),
    ):
        assert len(got) == 2
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_outputs_in_any_order_and_not_only_at_the_end(model, rng):
    a, b = model.layers[1].output, model.layers[3].output
    x = rng.uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    pooled, conv = fastconv.Model(model.input, [b, a]).predict(x, verbose=0)
    assert pooled.shape == (2, 11, 11, 64) and conv.shape == (2, 26, 26, 32)


def test_a_sub_model_shares_layers_and_weights(model, rng):
    sub = fastconv.Model(model.input, model.layers[3].output)
    x = rng.uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    before = sub.predict(x, verbose=0)
    assert sub.layers[1] is model.layers[1]
    weights = model.get_weights()
    model.set_weights([w * 2 for w in weights])
    after = sub.predict(x, verbose=0)
    assert not np.allclose(before, after)
    model.set_weights(weights)
    np.testing.assert_array_equal(sub.predict(x, verbose=0), before)


def test_training_several_outputs_is_refused_clearly(model, rng):
    several = fastconv.Model(model.input, [model.layers[1].output, model.output])
    several.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    x = rng.uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="one output"):
        several.fit(x, np.array([1, 2]), verbose=0)
    with pytest.raises(ValueError, match="one output"):
        several.evaluate(x, np.array([1, 2]), verbose=0)
    with pytest.raises(ValueError, match="several outputs"):
        several.get_config()


def test_an_output_off_the_chain_is_refused():
    inputs = fastconv.Input(shape=(8, 8, 1))
    a = fastconv.layers.Conv2D(2, 3)(inputs)
    other = fastconv.layers.Conv2D(2, 3)(inputs)  # a second branch from the input
    b = fastconv.layers.Flatten()(a)
    with pytest.raises(ValueError, match="one chain"):
        fastconv.Model(inputs, [b, other])
    with pytest.raises(ValueError, match="one chain"):
        fastconv.Model(inputs, [b, inputs])


def test_the_plan_splits_a_fusion_that_would_hide_an_output_and_stops_backward_there(rng):
    fastconv.utils.set_random_seed(3)
    model = mnist_convnet()
    chain = model.layers[1:]
    fused = ExecutionPlan(chain)
    split = ExecutionPlan(chain, outputs=[0, len(chain) - 1])
    conv_name, pool_name = chain[0].name, chain[1].name
    assert fused.describe()[0] == f"ConvMaxPoolStep({conv_name}, {pool_name})"
    assert split.describe()[:2] == [f"LayerStep({conv_name})", f"LayerStep({pool_name})"]
    x = rng.uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    conv, y = split.forward(x, keep_tape=True)
    dz = rng.standard_normal(y.shape).astype(np.float32)
    d_conv = split.backward(dz, need_dx=True, from_preactivation=True, down_to=0)
    assert d_conv.shape == conv.shape
    # the same gradient by the unfused plan, one layer at a time
    reference_plan = ExecutionPlan(chain, fuse=False)
    reference_plan.forward(x, keep_tape=True)
    dy = chain[-1].backward_preactivation(dz)
    for layer in reversed(chain[1:-1]):
        dy = layer.backward(dy)
    np.testing.assert_allclose(d_conv, dy, rtol=1e-5, atol=1e-6)
    fused.forward(x, keep_tape=True)
    with pytest.raises(ValueError, match="inside a fused step"):
        fused.backward(dz, need_dx=True, down_to=0)
