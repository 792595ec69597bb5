"""The command line's small promises: --version, help with defaults on every option, optional
dependencies checked before any training, where the data came from, the progress rule."""

from __future__ import annotations

import argparse
import subprocess
import sys

import fastconv
import numpy as np
import pytest
from fastconv import cli


def _parsers(parser, path=("fastconv",)):
    """(command path, parser) for the parser and every sub-command, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_version():
    r = subprocess.run(
        [sys.executable, "-m", "fastconv", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"fastconv {fastconv.__version__}"


def test_every_argument_has_help_and_shows_its_default():
    checked = 0
    for path, parser in _parsers(cli.build_parser()):
        text = " ".join(parser.format_help().split())  # wrapped lines joined
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"{' '.join(path)} {name} has no help text"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert f"default: {action.default}" in text, f"{' '.join(path)} {name}"
            checked += 1
    assert checked > 25


def test_help_of_train_mnist_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "mnist", "--help"])
    out = capsys.readouterr().out
    assert "(default: 5)" in out and "(default: 64)" in out


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(cli, "_setup", refuse)
    monkeypatch.setattr(cli, "load_mnist_family", refuse)


def test_plot_without_matplotlib_fails_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    _no_training(monkeypatch)
    data = tmp_path / "data"
    for sub in ("train", "validation", "test"):
        (data / sub).mkdir(parents=True)
    rc = cli.main(["train", "cats-vs-dogs", str(data), "--plot", str(tmp_path / "c.png")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and 'pip install "fastconv[plot]"' in err
    assert 'pip install ".[plot]"' in err


def test_distributed_without_mpi4py_fails_before_training(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    _no_training(monkeypatch)
    assert cli.main(["train", "mnist", "--distributed"]) == 2
    assert "--distributed needs mpi4py" in capsys.readouterr().err


def test_data_source_of_the_shipped_digits():
    text = cli.data_source("digits")
    assert text.startswith("shipped with fastconv") and "digits.csv.gz" in text


def test_learning_rates_step_down_in_the_last_two_epochs():
    assert cli.learning_rates(5) == pytest.approx([1e-3, 1e-3, 1e-3, 3e-4, 1e-4])
    assert cli.learning_rates(2) == [1e-3, 1e-3]
    assert cli.learning_rates(1) == [1e-3]


def _tiny_mnist(monkeypatch):
    rng = np.random.default_rng(0)

    def load(name):
        x = rng.random((96, 28, 28, 1)).astype("float32")
        y = rng.integers(0, 10, 96)
        return (x[:64], y[:64]), (x[64:], y[64:])

    monkeypatch.setattr(cli, "load_mnist_family", load)


def test_train_mnist_prints_source_and_one_line_per_epoch(monkeypatch, capsys):
    _tiny_mnist(monkeypatch)
    monkeypatch.delenv("FASTCONV_PROGRESS", raising=False)
    assert cli.main(["train", "mnist", "--epochs", "3", "--batch-size", "16", "--seed", "1"]) == 0
    out = capsys.readouterr().out  # not a terminal: Keras' rule gives lines, no redraws
    assert "Data from: shipped with fastconv" in out
    assert "\r" not in out
    assert out.count("4/4 - ") == 3 and out.count("Epoch ") == 3
    assert "Test accuracy:" in out


def test_the_schedule_reaches_the_optimizer(monkeypatch):
    _tiny_mnist(monkeypatch)
    seen = []
    real_fit = fastconv.Model.fit

    def fit(self, *args, **kwargs):
        watch = fastconv.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen.append(self.optimizer.learning_rate)
        )
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [watch]
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(fastconv.Model, "fit", fit)
    cli.main(["train", "mnist", "--epochs", "4", "--batch-size", "32", "--seed", "0"])
    assert seen == pytest.approx([1e-3, 1e-3, 3e-4, 1e-4])
    seen.clear()
    cli.main(["train", "mnist", "--epochs", "3", "--batch-size", "32", "--constant-lr"])
    assert seen == pytest.approx([1e-3] * 3)
