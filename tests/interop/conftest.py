"""The Keras venv for the cross-checks: $FASTCONV_KERAS_PYTHON, else /opt/keras-venv (made by
``.ci/keras-venv``); the tests skip, saying so, when neither has Keras."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
KERAS_SIDE = os.path.join(HERE, "keras_side.py")


def keras_python() -> str | None:
    for candidate in (os.environ.get("FASTCONV_KERAS_PYTHON"), "/opt/keras-venv/bin/python"):
        if candidate and os.path.exists(candidate):
            ok = subprocess.run(
                [candidate, "-c", "import keras, h5py"], capture_output=True, timeout=300
            )
            if ok.returncode == 0:
                return candidate
    return None


@pytest.fixture(scope="session")
def run_keras():
    python = keras_python()
    if python is None:
        if os.environ.get("FASTCONV_REQUIRE_KERAS"):
            pytest.fail("FASTCONV_REQUIRE_KERAS is set but no Python with keras was found")
        pytest.skip(
            "no Keras venv: run `bash .ci/keras-venv` (or set FASTCONV_KERAS_PYTHON) to check "
            "files both ways against real Keras"
        )

    def run(*args):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("PYTHONPATH", None)
        done = subprocess.run(
            [python, KERAS_SIDE, *map(str, args)], capture_output=True, text=True, env=env
        )
        if done.returncode:
            sys.stderr.write(done.stderr[-5000:])
            raise AssertionError(f"keras side {args[0]} failed:\n{done.stderr[-3000:]}")
        return done

    return run
