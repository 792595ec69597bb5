"""Shared fixtures: every numeric test runs once per ISA path the machine can run."""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # so tests can `import reference`

try:
    import fastconv
    import fastconv._core

    _IMPORT_ERROR = None
    _ISAS = list(fastconv.info()["isas_available"])
except Exception as exc:  # reported by the fixtures below, not at collection
    _IMPORT_ERROR = exc
    _ISAS = ["unavailable"]


def pytest_generate_tests(metafunc):
    if "isa" in metafunc.fixturenames:
        metafunc.parametrize("isa", _ISAS, indirect=True, scope="function")


@pytest.fixture
def isa(request):
    """Force one kernel path with fastconv._core.set_isa and restore the previous one after.

    Kernel tests use small shapes, which run on one thread by default; the fixture also makes
    every kernel split its work across all threads, so the multi-threaded paths are tested too.
    """
    if _IMPORT_ERROR is not None:
        pytest.fail(f"fastconv is not importable: {_IMPORT_ERROR!r}")
    previous = fastconv._core.get_isa()
    previous_min = fastconv._core._get_min_thread_nanos()
    fastconv._core.set_isa(request.param)
    fastconv._core._set_min_thread_nanos(0.0)
    assert fastconv._core.get_isa() == request.param
    try:
        yield request.param
    finally:
        fastconv._core.set_isa(previous)
        fastconv._core._set_min_thread_nanos(previous_min)


@pytest.fixture
def rng(request):
    """A generator seeded from the test id: deterministic, different for every test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def restore_threads():
    """Restore fastconv's thread count after a test that changes it."""
    if _IMPORT_ERROR is not None:
        pytest.fail(f"fastconv is not importable: {_IMPORT_ERROR!r}")
    n = fastconv.get_num_threads()
    try:
        yield n
    finally:
        fastconv.set_num_threads(n)
