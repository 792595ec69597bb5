"""See inside a convnet: the chapter's three pictures and the lecture's own figures.

NumPy arrays for the numbers, matplotlib (imported only by the ``plot_*`` functions) for the
pictures:

* ``activations`` / ``plot_activations``: every conv and pooling layer's output for an image,
  through a model with one output per layer (the chapter's activation model);
* ``filter_pattern`` / ``plot_filters``: the input that most excites a filter, by gradient ascent
  in input space through the model's backward pass (input gradients only: the layers are frozen
  while it runs, so no weight gradient is computed);
* ``grad_cam`` / ``plot_heatmap``: class activation heatmaps (Grad-CAM) for softmax and sigmoid
  outputs;
* ``edge_detection`` / ``plot_edge_detection`` and ``max_pooling_example`` /
  ``plot_max_pooling``: the lecture's convolution with a hand-set edge kernel and its 2x2
  max-pooling example, computed by ``fastconv.ops``.
"""

from .activations import activations, conv_and_pooling_layers, plot_activations
from .gradients import (
    class_score_gradients,
    filter_gradient,
    filter_pattern,
    grad_cam,
    last_conv_layer,
)
from .lecture import (
    EDGE_KERNELS,
    edge_detection,
    max_pooling_example,
    plot_edge_detection,
    plot_max_pooling,
)
from .plots import plot_filters, plot_heatmap

__all__ = [
    "activations",
    "conv_and_pooling_layers",
    "plot_activations",
    "filter_gradient",
    "filter_pattern",
    "plot_filters",
    "class_score_gradients",
    "grad_cam",
    "last_conv_layer",
    "plot_heatmap",
    "EDGE_KERNELS",
    "edge_detection",
    "plot_edge_detection",
    "max_pooling_example",
    "plot_max_pooling",
]
