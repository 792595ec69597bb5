"""The ``fastconv`` command: info, make-subset (the lecture's path end to end), train."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest
from fastconv import cli
from fastconv.utils import image_dataset_from_directory, plot_history
from kaggle_images import make_kaggle_train
from PIL import Image


def run(*args, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "fastconv", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    d = tmp_path_factory.mktemp("kaggle") / "train"
    make_kaggle_train(d, 48, np.random.default_rng(0), sizes=(60, 200))
    return d


def models_available():
    import fastconv

    return all(hasattr(fastconv, n) for n in ("Input", "Model", "layers", "models", "callbacks"))


# ------------------------------------------------------------------------------------- info
def test_info_subprocess():
    import fastconv

    r = run("info")
    assert r.returncode == 0, r.stderr
    assert f"version: {fastconv.__version__}" in r.stdout
    for key in ("isa:", "isas_available:", "num_threads:", "openmp:"):
        assert key in r.stdout


def test_no_command_is_usage_error():
    r = run()
    assert r.returncode == 2 and "usage: fastconv" in r.stderr


# ------------------------------------------------------------------------------ make-subset
def test_make_subset_end_to_end(kaggle, tmp_path):
    base = tmp_path / "cats_vs_dogs_small"
    r = run("make-subset", kaggle, base, "--train", 32, "--validation", 8, "--test", 8)
    assert r.returncode == 0, r.stderr
    assert "Copied 96 files" in r.stdout
    for subset, lo, hi in (("train", 0, 32), ("validation", 32, 40), ("test", 40, 48)):
        for cat in ("cat", "dog"):
            names = sorted(os.listdir(base / subset / cat))
            assert names == sorted(f"{cat}.{i}.jpg" for i in range(lo, hi))
    assert (base / "test" / "dog" / "dog.47.jpg").read_bytes() == (
        kaggle / "dog.47.jpg"
    ).read_bytes()
    # the lecture's next step: read the subset
    ds = image_dataset_from_directory(base / "train", image_size=(180, 180), batch_size=32)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 2
    images, labels = next(iter(ds))
    assert images.shape == (32, 180, 180, 3) and images.dtype == np.float32
    assert labels.shape == (32,) and set(labels.tolist()) <= {0, 1}


def test_make_subset_defaults_match_the_lecture(kaggle, tmp_path):
    # the defaults need cat.0..cat.2499: our folder has 48, so the check fails before copying
    r = run("make-subset", kaggle, tmp_path / "small")
    assert r.returncode == 2
    assert "4904 source file(s) missing" in r.stderr and "cat.48.jpg" in r.stderr
    assert not (tmp_path / "small").exists()
    parser = cli.build_parser()
    args = parser.parse_args(["make-subset", "a", "b"])
    assert (args.train, args.validation, args.test) == (1000, 500, 1000)


def test_make_subset_missing_source_copies_nothing(kaggle, tmp_path):
    src = tmp_path / "orig"
    src.mkdir()
    for name in os.listdir(kaggle):
        os.link(kaggle / name, src / name)
    os.remove(src / "dog.45.jpg")
    r = run("make-subset", src, tmp_path / "out", "--train", 40, "--validation", 4, "--test", 4)
    assert r.returncode == 2
    assert "dog.45.jpg" in r.stderr and "Nothing was copied" in r.stderr
    assert not (tmp_path / "out").exists()


def test_make_subset_existing_destination_copies_nothing(kaggle, tmp_path):
    base = tmp_path / "out"
    (base / "test" / "dog").mkdir(parents=True)
    r = run("make-subset", kaggle, base, "--train", 4, "--validation", 2, "--test", 2)
    assert r.returncode == 2
    assert os.path.join("test", "dog") in r.stderr and "already exist" in r.stderr
    assert sorted(os.listdir(base)) == ["test"] and not os.listdir(base / "test" / "dog")


def test_make_subset_bad_counts(kaggle, tmp_path):
    r = run("make-subset", kaggle, tmp_path / "o", "--train", -1)
    assert r.returncode == 2 and "must be >= 0" in r.stderr


# ------------------------------------------------------------------------------------ train
def test_train_cats_vs_dogs_bad_folder(tmp_path):
    (tmp_path / "train").mkdir()
    r = run("train", "cats-vs-dogs", tmp_path, "--epochs", 1)
    assert r.returncode == 2
    assert "validation is not a directory" in r.stderr


def test_train_mnist_arguments():
    args = cli.build_parser().parse_args(["train", "mnist"])
    assert (args.dataset, args.epochs, args.batch_size, args.threads, args.save) == (
        "digits",
        5,
        64,
        None,
        None,
    )
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "mnist", "--dataset", "cifar10"])


@pytest.mark.skipif(not models_available(), reason="fastconv models are not written yet")
def test_train_mnist_one_epoch(tmp_path):
    out = tmp_path / "digits.keras"
    r = run(
        "train", "mnist", "--epochs", 1, "--threads", 2, "--seed", 1, "--save", out, timeout=240
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "6735 training and 450 test images" in r.stdout
    assert "104,202 parameters" in r.stdout
    line = next(s for s in r.stdout.splitlines() if s.startswith("Test accuracy:"))
    assert float(line.split()[2]) > 0.8  # one epoch (105 steps) on the digits learns (chance 0.1)
    assert "images/s" in r.stdout and out.is_file()


@pytest.mark.skipif(not models_available(), reason="fastconv models are not written yet")
def test_train_mnist_with_a_forced_conv_algorithm(tmp_path):
    r = run("train", "mnist", "--epochs", 1, "--seed", 1, "--conv-algorithm", "igemm", timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Convolutions: igemm" in r.stdout
    line = next(s for s in r.stdout.splitlines() if s.startswith("Test accuracy:"))
    assert float(line.split()[2]) > 0.8


@pytest.mark.skipif(not models_available(), reason="fastconv models are not written yet")
def test_train_cats_vs_dogs_end_to_end(kaggle, tmp_path):
    """Issue 4's path: make-subset, folders at 180x180, the lecture's model with the best
    checkpoint, load_model on it, test accuracy, curves."""
    base = tmp_path / "cats_vs_dogs_small"
    assert cli.make_subset(kaggle, base, 16, 4, 8) == 56
    best, curves = tmp_path / "best.keras", tmp_path / "curves.png"
    r = run(
        "train",
        "cats-vs-dogs",
        base,
        "--epochs",
        2,
        "--batch-size",
        16,
        "--seed",
        0,
        "--save",
        best,
        "--plot",
        curves,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "991,041 parameters" in r.stdout
    assert best.is_file() and curves.is_file()
    line = next(s for s in r.stdout.splitlines() if s.startswith("Test accuracy:"))
    assert float(line.split()[2]) >= 0.75  # colour-separable classes: well above chance


# ----------------------------------------------------------------------------------- plot
def test_plot_history_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = types.SimpleNamespace(
        history={
            "loss": [0.7, 0.5, 0.4],
            "accuracy": [0.5, 0.7, 0.8],
            "val_loss": [0.69, 0.6, 0.62],
            "val_accuracy": [0.52, 0.66, 0.7],
        }
    )
    path = tmp_path / "curves.png"
    assert plot_history(history, path) == str(path)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > img.height > 200
        arr = np.asarray(img.convert("RGB")).astype(int)
    blue = (arr[..., 2] > 150) & (arr[..., 0] < 100)
    assert blue.sum() > 200  # the curves are drawn
    with pytest.raises(TypeError, match="History"):
        plot_history([1, 2], path)


@pytest.mark.parametrize("target", ["model.h5", "no_such_folder/model.keras"])
def test_train_refuses_a_bad_save_path_before_training(tmp_path, target):
    r = run("train", "mnist", "--epochs", 1, "--save", tmp_path / target, timeout=60)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--save" in r.stderr and "Epoch" not in r.stdout
