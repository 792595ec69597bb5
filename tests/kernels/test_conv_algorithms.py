"""Every convolution algorithm, forced, on every ISA, for each pass, against the float64 reference.

``fastconv.set_conv_algorithm(name)`` forces one; where it cannot take a problem the call falls
back to auto's choice, and ``_core.last_conv_algorithms`` tells which ran. Bounds (max |error| /
max(1, max |reference|)): every algorithm is held to TOL = 1e-5, a tenth of the 1e-4 the direct
path's grid tests use (tests/checks.py); measured errors are 1e-7 to 2e-6 (bench/conv_algorithms.py
prints them).
"""

from __future__ import annotations

import os
import subprocess
import sys

import fastconv
import numpy as np
import pytest
import reference as ref
from fastconv import _core, ops

TOL = 1e-5
PASSES = ("forward", "input_gradient", "weight_gradient")
ALGORITHMS = [(p, a) for p in PASSES for a in _core.conv_algorithms(p)]

# (batch, h, w, in_channels, filters, kernel, keyword arguments): the lecture's A.conv2, tile
# edges, 'same' padding, an image's few channels, strides, dilation, channels off the vector width.
SHAPES = [
    (2, 13, 13, 32, 64, 3, dict()),
    (3, 16, 19, 17, 9, 3, dict(padding="same")),
    (2, 12, 11, 3, 16, 3, dict()),
    (2, 9, 9, 1, 8, 3, dict(padding="same")),
    (1, 15, 15, 8, 16, 3, dict(strides=2)),
    (1, 12, 12, 16, 8, 3, dict(dilation_rate=2)),
    (1, 11, 12, 8, 12, 5, dict(padding="same")),
    (1, 22, 21, 64, 70, 3, dict()),
]


@pytest.fixture
def algorithm_setting():
    previous = fastconv.get_conv_algorithm()
    try:
        yield
    finally:
        fastconv.set_conv_algorithm(previous)


def _data(shape, seed=3):
    n, h, w, c, k, ks, kw = shape
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = (r.standard_normal((ks, ks, c, k)) / np.sqrt(ks * ks * c)).astype(np.float32)
    bias = r.standard_normal(k).astype(np.float32)
    return x, kernel, bias, dict(kw)


def _run(pass_, x, kernel, bias, dy, kw):
    """The pass's output through the ops (forward with bias and ReLU; the weight gradient's
    kernel and bias gradients flattened into one array)."""
    if pass_ == "forward":
        return ops.conv2d(x, kernel, bias, activation="relu", **kw)
    dx, dk, db = ops.conv2d_grad(x, kernel, dy, **kw)
    return dx if pass_ == "input_gradient" else np.concatenate([dk.ravel(), db])


def _expected(pass_, x, kernel, bias, dy, kw):
    if pass_ == "forward":
        return np.maximum(ref.conv2d(x, kernel, bias, **_ref_kw(kw)), 0.0)
    rdx, rdk, rdb = ref.conv2d_grad(x, kernel, dy, **_ref_kw(kw))
    return rdx if pass_ == "input_gradient" else np.concatenate([rdk.ravel(), rdb])


def _ref_kw(kw):
    out = dict(kw)
    if "dilation_rate" in out:
        out["dilation"] = out.pop("dilation_rate")
    return out


def _reasons(pass_, x, kernel, y_shape, kw):
    plan = ops.conv._ConvPlan(
        x, kernel, kw.get("strides", 1), kw.get("padding", "valid"), kw.get("dilation_rate", 1)
    )
    y = np.empty(y_shape, np.float32)
    return dict(_core.conv_algorithm_reasons(pass_, x, kernel, y, *plan.args()))


def _ran(pass_):
    return [r for r in _core.last_conv_algorithms() if r[0] == pass_]


@pytest.mark.parametrize("shape", SHAPES, ids=[str(s[:6]) + str(s[6]) for s in SHAPES])
@pytest.mark.parametrize("pass_, algorithm", ALGORITHMS, ids=[f"{p}-{a}" for p, a in ALGORITHMS])
def test_forced_algorithm_matches_the_reference(isa, algorithm_setting, pass_, algorithm, shape):
    x, kernel, bias, kw = _data(shape)
    y_shape = ops.conv2d(x, kernel, **kw).shape
    dy = np.random.default_rng(4).standard_normal(y_shape).astype(np.float32)
    fastconv.set_conv_algorithm(algorithm)
    _core.last_conv_algorithms(clear=True)
    got = _run(pass_, x, kernel, bias, dy, kw)
    err = ref.rel_err(got, _expected(pass_, x, kernel, bias, dy, kw))
    assert err <= TOL, f"{pass_} by {algorithm} (or its fallback): error {err:.3g}"
    why = _reasons(pass_, x, kernel, y_shape, kw)[algorithm]
    runs = _ran(pass_)
    assert runs, "the pass was not recorded"
    if why == "":
        assert runs[-1][2:] == (algorithm, "forced"), runs[-1]
    else:
        assert runs[-1][2] != algorithm and "forced one cannot" in runs[-1][3], runs[-1]


def test_reasons_say_why_not(isa):
    x, kernel, _, kw = _data((1, 15, 15, 3, 16, 3, dict(strides=2)))
    y_shape = ops.conv2d(x, kernel, **kw).shape
    why = _reasons("input_gradient", x, kernel, y_shape, kw)
    assert "stride" in why["winograd"] and "stride" in why["few_channel"]
    assert why["col2im"] == "" and why["igemm"] == ""
    why = _reasons("weight_gradient", x, kernel, y_shape, {})
    # An image's few channels go to the patch sums; Winograd takes any channel count.
    assert why["patches"] == "" and why["winograd"] == ""
    for name in ("rowgemm", "rowgemm_tall", "packed"):
        assert "channels" in why[name], why
    x, kernel, _, kw = _data((1, 9, 9, 5, 16, 3, dict()))
    why = _reasons("weight_gradient", x, kernel, ops.conv2d(x, kernel).shape, {})
    assert all(reason == "" for reason in why.values()), why


@pytest.mark.parametrize("algorithm", ["rowgemm", "rowgemm_tall", "packed"])
def test_weight_gradient_tiles_take_every_channel_count(isa, algorithm_setting, algorithm):
    """The row GEMM ends on a tile of exactly the remaining channels (an instance per row
    count up to 14 on AVX-512), the packed GEMM on a zero-padded panel: channel counts 5 to 33
    reach every such tail, and 33 and 17 filters the column tails. The last case has full chunks
    of pixels before a short one (the packed GEMM's 128 or 256) and 70 filters: on two threads
    they split the filters, ending on a tail of 6 columns."""
    fastconv.set_conv_algorithm(algorithm)
    cases = [(2, 5, 6, c, f) for c in range(5, 34) for f in (17, 33)] + [(2, 12, 12, 27, 70)]
    for n, h, w, in_c, filters in cases:
        x, kernel, bias, kw = _data((n, h, w, in_c, filters, 3, dict(padding="same")))
        dy = np.random.default_rng(in_c).standard_normal((n, h, w, filters)).astype(np.float32)
        _core.last_conv_algorithms(clear=True)
        got = _run("weight_gradient", x, kernel, bias, dy, kw)
        assert _ran("weight_gradient")[-1][2:] == (algorithm, "forced")
        err = ref.rel_err(got, _expected("weight_gradient", x, kernel, bias, dy, kw))
        assert err <= TOL, f"{algorithm}, {in_c} channels, {filters} filters: error {err:.3g}"


def test_auto_measures_once_and_keeps_the_choice(isa, algorithm_setting):
    fastconv.set_conv_algorithm("auto")
    _core.clear_conv_algorithm_choices()
    _core.last_conv_algorithms(clear=True)
    x, kernel, bias, kw = _data(SHAPES[0])
    for _ in range(3):
        y = ops.conv2d(x, kernel, bias, activation="relu")
        assert ref.rel_err(y, _expected("forward", x, kernel, bias, None, kw)) <= TOL
    hows = [r[3] for r in _ran("forward")]
    assert hows == ["measured", "chosen before", "chosen before"], hows
    choices = fastconv.conv_algorithm_choices()
    assert [c[0] for c in choices] == ["forward"]
    assert choices[0][2] in ("winograd", "igemm")
    assert fastconv.info()["conv_algorithm"] == "auto"
    assert fastconv.info()["conv_choices"] == choices


def test_direct_never_runs_winograd(isa, algorithm_setting):
    fastconv.set_conv_algorithm("direct")
    _core.last_conv_algorithms(clear=True)
    x, kernel, bias, _ = _data(SHAPES[-1])
    dy = np.ones(ops.conv2d(x, kernel).shape, np.float32)
    ops.conv2d(x, kernel, bias)
    ops.conv2d_grad(x, kernel, dy)
    ran = {r[2] for r in _core.last_conv_algorithms()}
    assert ran and "winograd" not in ran


@pytest.mark.parametrize("shape", SHAPES, ids=[f"s{i}" for i in range(len(SHAPES))])
def test_deterministic_takes_the_first_direct_algorithm_without_measuring(
    isa, algorithm_setting, shape
):
    """The same choice in every process: the first algorithm of each list that can take the
    problem, Winograd left out, never timed."""
    fastconv.set_conv_algorithm("deterministic")
    x, kernel, bias, kw = _data(shape)
    dy = np.ones(ops.conv2d(x, kernel, **kw).shape, np.float32)
    _core.last_conv_algorithms(clear=True)
    ops.conv2d(x, kernel, bias, **kw)
    ops.conv2d_grad(x, kernel, dy, **kw)
    runs = _core.last_conv_algorithms()
    assert [r[0] for r in runs] == list(PASSES)
    for pass_, _, algorithm, how in runs:
        reasons = _reasons(pass_, x, kernel, dy.shape, kw)
        first = next(a for a in _core.conv_algorithms(pass_) if a != "winograd" and not reasons[a])
        assert algorithm == first and "deterministic" in how, (pass_, algorithm, how)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["x", "kernel", "dy"])
def test_non_finite_values_come_out_as_the_direct_path_gives_them(
    isa, algorithm_setting, value, where
):
    x, kernel, bias, _ = _data((1, 12, 12, 8, 16, 3, dict()))
    dy = np.random.default_rng(5).standard_normal((1, 10, 10, 16)).astype(np.float32)
    {"x": x, "kernel": kernel, "dy": dy}[where][0, 2, 1, 2] = value
    outputs = {}
    for setting in ("winograd", "direct"):
        fastconv.set_conv_algorithm(setting)
        _core.last_conv_algorithms(clear=True)
        y = ops.conv2d(x, kernel, bias, activation="relu")
        dx, dk, _ = ops.conv2d_grad(x, kernel, dy)
        outputs[setting] = (y, dx, dk)
        if setting == "winograd":
            hows = [r[3] for r in _core.last_conv_algorithms()]
            assert any("non-finite" in h for h in hows), hows
    for got, direct in zip(outputs["winograd"], outputs["direct"]):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(direct))
        finite = np.isfinite(direct)
        np.testing.assert_allclose(got[finite], direct[finite], rtol=1e-4, atol=1e-4)


def test_bad_settings_raise_naming_the_choices(algorithm_setting):
    with pytest.raises(ValueError, match="winograd"):
        fastconv.set_conv_algorithm("fastest")
    with pytest.raises(TypeError):
        fastconv.set_conv_algorithm(3)


@pytest.mark.parametrize("env, expected", [("col2im", "col2im"), ("bogus", None)])
def test_the_environment_variable(env, expected):
    code = "import fastconv; print(fastconv.get_conv_algorithm())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "FASTCONV_CONV_ALGO": env},
        capture_output=True,
        text=True,
    )
    if expected is None:
        assert result.returncode != 0 and "FASTCONV_CONV_ALGO" in result.stderr
    else:
        assert result.stdout.strip() == expected, result.stderr


def test_set_winograd_is_a_deprecated_alias(algorithm_setting):
    with pytest.warns(DeprecationWarning):
        fastconv.set_winograd(True)
    assert fastconv.get_conv_algorithm() == "winograd" and fastconv.winograd_enabled()
    with pytest.warns(DeprecationWarning):
        fastconv.set_winograd(False)
    assert fastconv.get_conv_algorithm() == "direct" and not fastconv.winograd_enabled()


# (batch, h, w, in_channels, filters, kernel, keyword arguments) under 2x2 pooling: odd conv
# outputs (a row and a column the pooling drops, never computed), 'same' padding, filters off
# the vector width, the lecture's A.conv2 and B.conv2's channels.
POOLED_SHAPES = [
    (2, 13, 13, 32, 64, 3, dict()),
    (3, 12, 11, 8, 9, 3, dict()),
    (2, 9, 10, 6, 33, 3, dict(padding="same")),
    (1, 20, 20, 32, 64, 3, dict()),
]


@pytest.mark.parametrize("shape", POOLED_SHAPES, ids=[f"s{i}" for i in range(len(POOLED_SHAPES))])
@pytest.mark.parametrize("setting", ["winograd", "auto", "direct"])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv_max_pool_for_inference_matches_the_reference(
    isa, algorithm_setting, shape, setting, activation
):
    """Inference's conv + 2x2 max pooling without the conv output: Winograd pools its output
    tiles where it is the setting's algorithm (forced, or auto's choice once measured); the other
    settings take the two passes. Each time against the float64 convolution and pooling."""
    x, kernel, bias, kw = _data(shape)
    expected = ref.max_pool2d(ref.conv2d(x, kernel, bias, activation=activation, **_ref_kw(kw)), 2)
    fastconv.set_conv_algorithm(setting)
    _core.clear_conv_algorithm_choices()
    for call in range(2):  # auto measures on the first call and may pool on the second
        _core.last_conv_algorithms(clear=True)
        y, pooled = ops.conv2d_max_pool(
            x, kernel, bias, activation=activation, keep_conv_output=False, **kw
        )
        assert y is None
        err = ref.rel_err(pooled, expected)
        assert err <= TOL, f"{setting}, call {call}: error {err:.3g}"
        hows = [r[3] for r in _ran("forward")]
        auto_winograd = (
            setting == "auto"
            and call == 1
            and "winograd" in {c[2] for c in fastconv.conv_algorithm_choices()}
        )
        pooled_by_winograd = setting == "winograd" or auto_winograd
        assert ("pooled in its output transform" in hows) == pooled_by_winograd, (setting, hows)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_conv_max_pool_non_finite_values_as_the_two_direct_passes(isa, algorithm_setting, value):
    """A non-finite value met by the pooled Winograd path sends the call to the two passes, so
    the pooled result holds infinities and NaNs where the direct path's does."""
    x, kernel, bias, _ = _data((2, 12, 12, 8, 16, 3, dict()))
    x[1, 3, 4, 2] = value
    results = {}
    for setting in ("winograd", "direct"):
        fastconv.set_conv_algorithm(setting)
        _core.last_conv_algorithms(clear=True)
        _, results[setting] = ops.conv2d_max_pool(
            x, kernel, bias, activation="relu", keep_conv_output=False
        )
        hows = [r[3] for r in _ran("forward")]
        assert "pooled in its output transform" not in hows
        if setting == "winograd":
            assert "non-finite result: redone in two passes" in hows, hows
    got, direct = results["winograd"], results["direct"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(direct))
    finite = np.isfinite(direct)
    np.testing.assert_allclose(got[finite], direct[finite], rtol=1e-4, atol=1e-4)
