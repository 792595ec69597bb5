"""One progress rule for fit, evaluate, predict and the command line (Keras' verbose="auto"):
a live bar on a terminal, one line per epoch otherwise, and no carriage return in a file."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastconv.models import progress

from .toy import compiled_small, toy_data


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from models.toy import compiled_small, toy_data
    x, y = toy_data(np.random.default_rng(0), n=64)
    model = compiled_small()
    model.fit(x, y, epochs=3, batch_size=4{verbose})
    model.evaluate(x, y, batch_size=4{verbose})
    model.predict(x, batch_size=4{verbose})
    """
)


@pytest.mark.parametrize("verbose", ["", ", verbose='auto'", ", verbose=1", ", verbose=2"])
def test_output_to_a_file_has_one_line_per_epoch_and_no_carriage_return(tmp_path, verbose):
    tests = str(Path(__file__).resolve().parents[1])
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        r = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(tests=tests, verbose=verbose)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("Epoch ")] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    step_lines = [line for line in lines if line.startswith("16/16 - ")]
    assert len(step_lines) == 5, text  # three epochs, evaluate, predict: one line each
    assert all("loss:" in line for line in step_lines[:4])
    assert len(lines) == 8


def test_a_terminal_gets_a_live_bar(monkeypatch, rng):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.delenv("FASTCONV_PROGRESS", raising=False)
    assert progress.dynamic_display()
    x, y = toy_data(rng, n=64)
    compiled_small().fit(x, y, epochs=2, batch_size=4)  # verbose="auto"
    text = terminal.getvalue()
    assert "\r" in text  # redrawn in place
    assert text.count("Epoch ") == 2 and "16/16" in text


def test_lines_can_be_forced_on_a_terminal(monkeypatch, rng):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("FASTCONV_PROGRESS", "lines")
    x, y = toy_data(rng, n=64)
    compiled_small().fit(x, y, epochs=2, batch_size=4, verbose=1)
    text = terminal.getvalue()
    assert "\r" not in text and text.count("16/16 - ") == 2


def test_not_a_terminal(monkeypatch):
    monkeypatch.delenv("FASTCONV_PROGRESS", raising=False)
    assert not progress.dynamic_display(io.StringIO()) or "ipykernel" in sys.modules
    assert progress.resolve_verbose("auto") == 1
    with pytest.raises(ValueError, match="verbose"):
        progress.resolve_verbose(1.0)


def test_silent_at_zero(capsys, rng):
    x, y = toy_data(rng, n=16)
    model = compiled_small()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
