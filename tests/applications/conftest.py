"""The Keras venv fixture of tests/interop, for VGG16's cross-checks."""

from interop.conftest import run_keras  # noqa: F401
