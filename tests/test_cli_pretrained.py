"""``fastconv train cats-vs-dogs DATA_DIR --pretrained vgg16 [--fine-tune]`` end to end on a tiny
generated image folder, with a random-weight VGG16 weight file made by fastconv itself."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastconv import cli
from fastconv.applications import transfer, vgg16
from fastconv.models import load_model
from PIL import Image


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "fastconv", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """train/validation/test with cat/ (reddish) and dog/ (bluish) 40x40 PNGs."""
    root = tmp_path_factory.mktemp("cvd")
    rng = np.random.default_rng(0)
    for sub, n in (("train", 8), ("validation", 4), ("test", 4)):
        for k, kind in enumerate(("cat", "dog")):
            folder = root / sub / kind
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 80, (40, 40, 3)).astype(np.uint8)
                pixels[..., 0 if k == 0 else 2] += 150
                Image.fromarray(pixels).save(folder / f"{kind}.{i}.png")
    return root


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    """VGG16 without its top, random weights, saved by fastconv in Keras 3's layout."""
    path = tmp_path_factory.mktemp("weights") / "vgg16_notop.weights.h5"
    vgg16.VGG16(weights=None, include_top=False).save_weights(path)
    return path


def test_weight_file_is_what_vgg16_loads(weight_file):
    with h5py.File(weight_file, "r") as f:  # Keras 3's layout: layers/<class>_<n>/vars/<i>
        convs = [k for k in f["layers"] if k.startswith("conv2d")]
        assert len(convs) == 13 and f["layers/conv2d_12/vars/0"].shape == (3, 3, 512, 512)
    saved = vgg16.VGG16(weights=None, include_top=False)
    saved.load_weights(weight_file)
    small = transfer.conv_base(32, weight_file)  # other input size: same weights
    assert not small.trainable and len(small.trainable_weights) == 0
    for a, b in zip(saved.get_weights(), small.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pretrained_feature_extraction_then_fine_tuning(data_dir, weight_file, tmp_path):
    best = tmp_path / "best.keras"
    r = run(
        "train", "cats-vs-dogs", data_dir, "--pretrained", "vgg16", "--weights", weight_file,
        "--image-size", 32, "--epochs", 2, "--fine-tune", "--fine-tune-epochs", 1,
        "--batch-size", 8, "--seed", 1, "--save", best,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "VGG16 from" in out and "14,714,688 parameters, frozen" in out
    assert "4 trainable weight tensors" in out  # the chapter's frozen base: the classifier only
    assert "block5 unfrozen (10 trainable weight tensors)" in out  # as Keras counts them
    assert "learning_rate=1e-05" in out and out.count("Epoch 1/") == 2
    line = next(s for s in out.splitlines() if s.startswith("Test accuracy:"))
    assert 0.0 <= float(line.split()[2]) <= 1.0
    model = load_model(best)  # the checkpoint holds the whole chapter model, base included
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 1)
    names = [layer.name for layer in model.layers]
    assert "vgg16" in names and "data_augmentation" in names


def test_example_walks_through_the_three_steps(data_dir, weight_file, tmp_path):
    """examples/pretrained_vgg16.py: feature extraction by predict, the frozen base with
    augmentation, fine-tuning; Keras' trainable-weight counts at each step."""
    example = Path(__file__).resolve().parents[1] / "examples" / "pretrained_vgg16.py"
    argv = [sys.executable, example, data_dir, "--weights", weight_file, "--image-size", 32]
    argv += ["--epochs", 1, "--batch-size", 8]
    r = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Features: (16, 1, 1, 512)" in r.stdout
    assert "before freezing the conv base: 26" in r.stdout
    assert "after freezing the conv base: 0" in r.stdout
    assert "while fine-tuning: 10" in r.stdout
    for step in ("1. Feature extraction", "2. With augmentation", "3. Fine-tuned"):
        assert f"{step}: test accuracy" in r.stdout
    assert (tmp_path / "fine_tuning.keras").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fine-tune"], "--fine-tune need(s) --pretrained vgg16"),
        (["--image-size", "64"], "--image-size need(s) --pretrained"),
        (["--pretrained", "vgg16", "--weights", "missing.h5"], "--weights missing.h5: no such"),
    ],
)
def test_pretrained_argument_errors(data_dir, extra, message, capsys):
    assert cli.main(["train", "cats-vs-dogs", str(data_dir), *extra]) == 2
    assert message in capsys.readouterr().err


def test_image_size_below_vgg16s_minimum_is_a_usage_error(data_dir, capsys):
    with pytest.raises(SystemExit) as err:
        args = ["--pretrained", "vgg16", "--image-size", "16"]
        cli.main(["train", "cats-vs-dogs", str(data_dir), *args])
    assert err.value.code == 2 and "--image-size" in capsys.readouterr().err
