"""Model.profile: a row per step and pass, times that add up to the step, FLOPs as counted by
hand, and a model left as it was."""

from __future__ import annotations

import re

import fastconv as keras
import numpy as np
import pytest
from fastconv import layers


def _model():
    keras.clear_session()  # the rows are named after the layers
    keras.set_random_seed(2)
    inputs = keras.Input((12, 12, 2))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)  # 10x10x4
    x = layers.MaxPooling2D(2)(x)  # 5x5x4
    x = layers.Conv2D(6, 3, activation="relu", padding="same")(x)  # 5x5x6
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_training_profile_rows_flops_and_restored_state(rng):
    model = _model()
    x = rng.random((5, 12, 12, 2)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    model.fit(x, y, epochs=1, verbose=0)
    weights = model.get_weights()
    opt_state = [v.copy() for v in model.optimizer.variables]
    iterations = model.optimizer.iterations
    lines = []
    profile = model.profile(x, y, steps=2, print_fn=lines.append)
    assert [(r.step, r.pass_name) for r in profile.rows] == [
        ("conv2d+max_pooling2d", "forward"),
        ("conv2d_1", "forward"),
        ("flatten", "forward"),
        ("dense", "forward"),
        ("dense", "backward"),
        ("flatten", "backward"),
        ("conv2d_1", "backward"),
        ("conv2d+max_pooling2d", "backward"),
    ]
    flops = {(r.step, r.pass_name): r.flops for r in profile.rows}
    conv1 = 2 * 5 * 10 * 10 * 4 * 3 * 3 * 2
    conv2 = 2 * 5 * 5 * 5 * 6 * 3 * 3 * 4
    dense = 2 * 5 * 150 * 3
    assert flops[("conv2d+max_pooling2d", "forward")] == conv1
    assert flops[("conv2d+max_pooling2d", "backward")] == conv1  # no input gradient
    assert flops[("conv2d_1", "backward")] == 2 * conv2  # weights and input
    assert flops[("dense", "forward")] == dense and flops[("flatten", "forward")] == 0
    algorithms = {(r.step, r.pass_name): r.algorithm for r in profile.rows}
    assert algorithms[("conv2d_1", "forward")].startswith("fwd:")
    assert "dx:" in algorithms[("conv2d_1", "backward")]
    assert "dw:" in algorithms[("conv2d_1", "backward")]
    assert algorithms[("conv2d+max_pooling2d", "forward")] == "fused first layer"
    assert algorithms[("dense", "forward")] == "-"
    assert sum(r.seconds for r in profile.rows) <= profile.step_seconds
    assert 0 < profile.kernel_seconds <= profile.step_seconds
    assert profile.peak_gflops > 0 and profile.mode == "training"
    assert "conv2d+max_pooling2d" in lines[0] and "outside kernels" in lines[0]
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(opt_state, model.optimizer.variables):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == iterations


def test_inference_profile_and_bad_steps(rng):
    model = _model()
    x = rng.random((3, 12, 12, 2)).astype(np.float32)
    profile = model.profile(x, steps=1, print_fn=None)
    assert profile.mode == "inference"
    assert {r.pass_name for r in profile.rows} == {"forward"}
    assert "(Python between steps)" in str(profile)
    with pytest.raises(ValueError, match="steps"):
        model.profile(x, steps=0)
    with pytest.raises(ValueError, match="compile"):
        uncompiled = keras.Model(model.input, model.output)
        uncompiled.profile(x, np.zeros(3))


def test_profile_command(capsys):
    from fastconv import cli

    assert cli.main(["profile", "mnist", "--steps", "1", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "training, batch 4" in out and "% peak" in out
    assert re.search(r"conv2d(_[0-9]+)?\+max_pooling2d", out)
    assert (
        cli.main(["profile", "cats-vs-dogs", "--inference", "--steps", "1", "--batch-size", "1"])
        == 0
    )
    assert "inference, batch 1" in capsys.readouterr().out
