"""The bars a report is held to (data; fcbench.checks applies them). They are the done-when bars
of the performance issue the report was written for: change a number here, not in code.
"""

from __future__ import annotations

BARS = {
    # these conv layers' forward pass (bias and ReLU fused) at this percentage of the FP32 peak
    "deep_forward": {
        "layers": ["B.conv2", "B.conv3", "B.conv4", "B.conv5", "A.conv2", "A.conv3"],
        "percent_of_peak": 80,
    },
    # the first layers' forward + weight gradient, PyTorch's time / fastconv's at least this
    "first_layer_vs_torch": {"layers": ["A.conv1", "B.conv1"], "ratio": 2.0},
    # every op case ahead of NumPy at its best (its time / fastconv's above this)
    "vs_numpy_best": 1.0,
    # every op case at least this many times faster than the naive NumPy loop
    "vs_naive": 100,
    # whole models, (model, mode): the best of PyTorch and Keras' time / fastconv's at least this
    "models_vs_best_framework": {
        ("A", "train"): 1.5,
        ("B", "train"): 1.4,
        ("A", "predict"): 1.0,
        ("B", "predict"): 1.0,
    },
    # the peer frameworks a model is compared with
    "frameworks": ("torch", "keras"),
}
