"""Whole training steps and inference of the lecture's two convnets.

    python -m pytest bench/bench_models.py --benchmark-only [-k A]

Model A (MNIST convnet, batch 64, rmsprop, sparse categorical cross-entropy) and model B
(cats-vs-dogs convnet, batch 32, rmsprop, binary cross-entropy), each as every implementation of
fcbench.zoo: fastconv, fastconv-winograd, fastconv-ops, torch and keras (Keras on TensorFlow, when
importable; skipped otherwise).

``extra_info["images"]`` is the batch size: images/s = images / time.
"""

from __future__ import annotations

import pytest
from fcbench import zoo

PARAMS = [
    pytest.param(which, mode, impl, id=f"{which}-{mode}-{impl}")
    for which in ("A", "B")
    for mode in ("train", "predict")
    for impl in zoo.IMPLS
]

_cache: dict = {}


def _steps(which, impl, request):
    """(train_step, predict) closures of one implementation, built once per session."""
    key = (which, impl)
    if key in _cache:
        return _cache[key]
    import fastconv

    torch = request.getfixturevalue("torch_module") if impl == "torch" else None
    x, y = zoo.model_batch(which)
    try:
        steps = zoo.model_steps(impl, which, x, y, torch, fastconv.get_num_threads())
    except (AttributeError, ImportError) as exc:
        pytest.skip(f"{impl}: fastconv's Keras-shaped Model is not available: {exc}")
    if steps is None:
        pytest.skip(f"{impl} is not installed (optional)")
    _cache[key] = steps
    return steps


@pytest.mark.parametrize("which, mode, impl", PARAMS)
def test_model(benchmark, request, which, mode, impl):
    train, predict = _steps(which, impl, request)
    fn = train if mode == "train" else predict
    for _ in range(3):  # warm-up: workspaces, oneDNN primitives, optimizer state
        fn()
    batch = zoo.MODEL_SPECS[which]["batch"]
    benchmark.group = f"model {which} {mode} (batch {batch})"
    benchmark.extra_info.update(images=batch, impl=impl)
    benchmark.pedantic(fn, rounds=5 if which == "B" else 20, iterations=1, warmup_rounds=0)
