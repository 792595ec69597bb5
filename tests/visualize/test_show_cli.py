"""`fastconv show activations|filters|heatmap` on a model saved by `fastconv train cats-vs-dogs`."""

import subprocess
import sys

import numpy as np
import pytest
from fastconv import cli
from kaggle_images import make_kaggle_train

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The lecture's 180x180 convnet after one epoch on a tiny folder of generated images."""
    pytest.importorskip("matplotlib")
    root = tmp_path_factory.mktemp("show")
    make_kaggle_train(root / "kaggle", 6, np.random.default_rng(0), sizes=(60, 120))
    cli.make_subset(root / "kaggle", root / "small", 4, 1, 1)
    model = root / "best.keras"
    r = subprocess.run(
        [sys.executable, "-m", "fastconv", "train", "cats-vs-dogs", str(root / "small")]
        + ["--epochs", "1", "--batch-size", "8", "--seed", "0", "--save", str(model)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return model, root / "small" / "test" / "cat" / "cat.5.jpg"


@pytest.mark.parametrize(
    "what, extra",
    [("activations", []), ("heatmap", []), ("filters", ["--filters", "2"])],
)
def test_show_writes_a_png(trained, tmp_path, capsys, what, extra):
    model, image = trained
    out = tmp_path / f"{what}.png"
    args = ["show", what, str(model)] + ([] if what == "filters" else [str(image)])
    assert cli.main(args + extra + ["--out", str(out)]) == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    assert out.read_bytes()[:8] == PNG


def test_show_one_layer(trained, tmp_path):
    model, image = trained
    out = tmp_path / "one.png"
    args = ["show", "activations", str(model), str(image), "--layer", "rescaling"]
    assert cli.main(args + ["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize(
    "args, message",
    [
        (["heatmap", "{model}"], "needs an IMAGE"),
        (["heatmap", "{model}", "{image}", "--layer", "nope"], "No such layer"),
        (["heatmap", "{missing}", "{image}"], "cannot load the model"),
        (["activations", "{model}", "{missing}"], "cannot read the image"),
    ],
)
def test_show_errors(trained, tmp_path, capsys, args, message):
    model, image = trained
    names = {"model": model, "image": image, "missing": tmp_path / "missing.keras"}
    args = [a.format(**names) for a in args]
    assert cli.main(["show"] + args + ["--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastconv show: error:") and message in err, err
