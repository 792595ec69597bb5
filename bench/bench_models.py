"""Whole training steps and inference of the lecture's two convnets.

    python -m pytest bench/bench_models.py --benchmark-only [-k A]

Model A (MNIST convnet, batch 64, rmsprop, sparse categorical cross-entropy) and model B
(cats-vs-dogs convnet, batch 32, rmsprop, binary cross-entropy), each as

- ``fastconv``: fastconv's Keras-shaped API, ``Model(...).train_on_batch`` / ``predict_on_batch``;
- ``fastconv-winograd``: the same with the opt-in Winograd F(2x2, 3x3) convolutions on;
- ``fastconv-ops``: the same step written directly with fastconv.ops (references.OpsModel): the
  difference to ``fastconv`` is the API's overhead;
- ``torch``: PyTorch, channels_last, RMSprop(lr=1e-3), CrossEntropyLoss / BCEWithLogitsLoss;
- ``keras``: Keras on TensorFlow when importable (optional; skipped otherwise).

``extra_info["images"]`` is the batch size: images/s = images / time.
"""

from __future__ import annotations

import pytest
import references

IMPLS = ("fastconv", "fastconv-winograd", "fastconv-ops", "torch", "keras")
PARAMS = [
    pytest.param(which, mode, impl, id=f"{which}-{mode}-{impl}")
    for which in ("A", "B")
    for mode in ("train", "predict")
    for impl in IMPLS
]

_cache: dict = {}


def _steps(which, impl, request):
    """(train_step, predict) closures of one implementation, built once per session."""
    key = (which, impl)
    if key in _cache:
        return _cache[key]
    x, y = references.model_batch(which)
    if impl == "fastconv":
        try:
            model = references.fastconv_model(which)
        except (AttributeError, ImportError) as exc:
            pytest.skip(f"fastconv's Keras-shaped Model is not available yet: {exc}")
        steps = (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))
    elif impl == "fastconv-winograd":
        model = references.fastconv_model(which)
        steps = (
            references.with_winograd(lambda: model.train_on_batch(x, y)),
            references.with_winograd(lambda: model.predict_on_batch(x)),
        )
    elif impl == "fastconv-ops":
        model = references.OpsModel(which)
        steps = (lambda: model.train_step(x, y)), (lambda: model.predict(x))
    elif impl == "torch":
        torch = request.getfixturevalue("torch_module")
        steps = references.torch_steps(torch, which, x, y)
    else:
        import fastconv

        steps = references.keras_steps(which, x, y, fastconv.get_num_threads())
        if steps is None:
            pytest.skip("Keras on TensorFlow is not installed (optional)")
    _cache[key] = steps
    return steps


@pytest.mark.parametrize("which, mode, impl", PARAMS)
def test_model(benchmark, request, which, mode, impl):
    train, predict = _steps(which, impl, request)
    fn = train if mode == "train" else predict
    for _ in range(3):  # warm-up: workspaces, oneDNN primitives, optimizer state
        fn()
    batch = references.MODEL_SPECS[which]["batch"]
    benchmark.group = f"model {which} {mode} (batch {batch})"
    benchmark.extra_info.update(images=batch, impl=impl)
    benchmark.pedantic(fn, rounds=5 if which == "B" else 20, iterations=1, warmup_rounds=0)
