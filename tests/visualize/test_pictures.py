"""What the pictures show on a convnet trained where one coloured square decides the class:
Grad-CAM's peak on the square, filter patterns that excite their filters; and that every
picture is drawn."""

import fastconv
import numpy as np
import pytest
from fastconv import visualize

from .squares import SIDE, square_images, trained_square_model


@pytest.fixture(scope="module")
def model():
    return trained_square_model(fastconv)


@pytest.fixture(scope="module")
def test_images():
    return square_images(60, np.random.default_rng(123))


def test_the_model_learned_the_squares(model, test_images):
    x, y, _ = test_images
    assert model.evaluate(x, y, verbose=0)[1] >= 0.95


def test_grad_cam_peak_falls_on_the_square(model, test_images):
    x, _, corners = test_images
    heatmaps = visualize.grad_cam(model, x)
    assert heatmaps.shape == (60, 24, 24) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and np.allclose(heatmaps.max(axis=(1, 2)), 1.0, atol=1e-6)
    hits = 0
    for heatmap, (r, c) in zip(heatmaps, corners):
        pr, pc = np.unravel_index(heatmap.argmax(), heatmap.shape)
        # the 9x9 maps of the last conv layer stretched to 24x24: 2 pixels of slack
        hits += (r - 2 <= pr < r + SIDE + 2) and (c - 2 <= pc < c + SIDE + 2)
    assert hits >= 0.8 * len(x), hits


def test_grad_cam_batches_and_single_images_agree(model, test_images):
    x = test_images[0][:5]
    whole = visualize.grad_cam(model, x, batch_size=2)
    np.testing.assert_allclose(visualize.grad_cam(model, x[3])[0], whole[3], rtol=1e-5, atol=1e-6)


def test_grad_cam_of_the_other_class_looks_away_from_the_evidence(model, test_images):
    """Class 1's score on a class-0 image: the square speaks against it, so the map of the
    wrong class is not brightest on the square in most images."""
    x, y, corners = test_images
    zeros = np.flatnonzero(y == 0)[:20]
    wrong = visualize.grad_cam(model, x[zeros], class_index=1)
    right = visualize.grad_cam(model, x[zeros], class_index=0)
    inside = np.zeros_like(right, dtype=bool)
    for k, i in enumerate(zeros):
        r, c = corners[i]
        inside[k, r : r + SIDE, c : c + SIDE] = True
    assert (right * inside).sum() > 2 * (wrong * inside).sum()


@pytest.mark.parametrize("layer_name", ["conv_a", "conv_b"])
def test_filter_patterns_excite_their_filters_far_more_than_noise(model, layer_name):
    noise = np.random.default_rng(5).uniform(0.0, 1.0, (16, 24, 24, 3)).astype(np.float32)
    for f in range(model.get_layer(layer_name).filters):
        pattern = visualize.filter_pattern(model, layer_name, f)
        assert pattern.shape == (24, 24, 3) and 0.0 <= pattern.min() and pattern.max() <= 1.0
        excited, _ = visualize.filter_gradient(model, layer_name, f, pattern)
        on_noise, _ = visualize.filter_gradient(model, layer_name, f, noise)
        assert excited[0] > 2.0 * on_noise.mean() and excited[0] > on_noise.max(), (f, excited)


def test_filter_pattern_rejects_a_bad_filter(model):
    with pytest.raises(ValueError, match="filter_index"):
        visualize.filter_pattern(model, "conv_a", 8)
    with pytest.raises(ValueError, match="No such layer"):
        visualize.filter_pattern(model, "nope", 0)


def test_activations_are_the_layers_outputs(model, test_images):
    x = test_images[0][:3]
    acts = visualize.activations(model, x)
    assert list(acts) == ["conv_a", "pool_a", "conv_b"]
    y = x
    for name in ("conv_a", "pool_a", "conv_b"):
        y = model.get_layer(name).forward(y)
        np.testing.assert_allclose(acts[name], y, rtol=1e-6, atol=1e-6)


def test_every_picture_is_drawn(model, test_images, tmp_path):
    pytest.importorskip("matplotlib")
    x = test_images[0]
    acts = visualize.plot_activations(model, x[0], tmp_path / "a.png")
    assert acts["conv_b"].shape == (1, 9, 9, 16)
    patterns = visualize.plot_filters(model, "conv_a", tmp_path / "f.png", filters=[0, 2], steps=3)
    assert patterns.shape == (2, 24, 24, 3)
    heatmap = visualize.grad_cam(model, x[:1])[0]
    mixed = visualize.plot_heatmap(x[0], heatmap, tmp_path / "h.png")
    assert mixed.shape == (24, 24, 3) and mixed.dtype == np.uint8
    visualize.plot_edge_detection(x[0], tmp_path / "e.png")
    visualize.plot_max_pooling(tmp_path / "p.png")
    for name in "afhep":
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lecture_figures_from_ops():
    x, pooled = visualize.max_pooling_example()
    np.testing.assert_array_equal(pooled, [[6, 8], [3, 4]])  # the lecture's example
    image = np.zeros((8, 8), np.float32)
    image[:, 4:] = 1.0  # a vertical edge between columns 3 and 4
    response = visualize.edge_detection(image, "vertical edges")
    assert response.shape == (6, 6)
    assert np.all(response[:, 2:4] == -4.0) and np.all(response[:, [0, 1, 4, 5]] == 0.0)
    assert np.all(visualize.edge_detection(image, "horizontal edges") == 0.0)
