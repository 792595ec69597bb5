"""pytest-benchmark setup for bench/ (not part of the normal test run: testpaths = ["tests"]).

Run:  MALLOC_MMAP_THRESHOLD_=10000000000 python -m pytest bench/ --benchmark-only
      (the variable lets PyTorch reuse its heap; without it PyTorch is up to 5x slower on large
      activations. bench/report.py sets it itself.)

Options: --naive=small|all|none (default small: the naive NumPy loop only on model A's layers,
where it takes well under a second; 'all' runs it once per case everywhere, minutes in total),
--bench-threads N (default: fastconv's thread count; PyTorch and NumPy's BLAS get the same).
"""

from __future__ import annotations

import os
import sys

import pytest

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)  # so the suite can `import fcbench`


def pytest_addoption(parser):
    group = parser.getgroup("fastconv bench")
    group.addoption(
        "--naive",
        default="small",
        choices=("small", "all", "none"),
        help="where to run the naive NumPy loop: model A's layers (small), all, none",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=0,
        help="threads for fastconv, PyTorch and NumPy's BLAS (default: fastconv's count)",
    )


def pytest_collect_file(parent, file_path):
    """Collect bench_*.py in this directory (pytest's default pattern is test_*.py)."""
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and str(file_path.parent) == BENCH_DIR
        and not parent.session.isinitpath(file_path)  # an explicit path is collected already
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_configure(config):
    from fcbench.runtime import configure

    configure(config.getoption("--bench-threads"))


def pytest_report_header(config):
    import fastconv
    from fcbench.runtime import torch_or_none

    torch = torch_or_none()
    torch_line = f"{torch.__version__}, {torch.get_num_threads()} threads" if torch else "absent"
    lines = [
        f"fastconv {fastconv.info()}",
        f"torch {torch_line}",
        f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '(unset)')}",
    ]
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        lines.append("note: PyTorch is not at its best without MALLOC_MMAP_THRESHOLD_=10000000000")
    return lines


@pytest.fixture(scope="session")
def torch_module():
    """torch, or skip the test when PyTorch is not installed."""
    from fcbench.runtime import torch_or_none

    torch = torch_or_none()
    if torch is None:
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
    return torch


@pytest.fixture
def blas_threads(request):
    """set(n) changes NumPy's BLAS threads for one test; restored afterwards."""
    import fastconv
    from fcbench.runtime import set_blas_threads

    yield set_blas_threads
    n = request.config.getoption("--bench-threads") or fastconv.get_num_threads()
    set_blas_threads(n)


@pytest.fixture(scope="session")
def naive_mode(request):
    return request.config.getoption("--naive")
