"""Run-time settings of the kernels: threads, Winograd, and what this build and CPU run.

``fastconv`` re-exports these; modules inside the package import them from here.
"""

from __future__ import annotations

import numbers
import os
import re

import numpy as np

# Idle OpenMP threads spin 300,000 rounds by default, taking a core from the Python thread
# between kernels; sleeping at once costs a wake-up per kernel. A short spin keeps workers awake
# across one step's kernels (bench/experiments/wait_policy.py measures the choices; numbers in
# bench/RESULTS.md). Set before the OpenMP runtime loads with _core; a user's own setting wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

from . import _core  # noqa: E402

__all__ = [
    "MAX_THREADS",
    "set_num_threads",
    "get_num_threads",
    "set_winograd",
    "winograd_enabled",
    "info",
]

__version__: str = _core.__version__

MAX_THREADS = 4096


def set_num_threads(n: int) -> None:
    """Sets the number of threads every fastconv kernel uses (default: OMP_NUM_THREADS or cores).

    This is OpenMP's own setting (``omp_set_num_threads``), made for every thread that calls
    kernels: whatever sets OpenMP's count afterwards (``threadpoolctl.threadpool_limits``, another
    library's ``omp_set_num_threads`` on the calling thread) steers fastconv too. In a child
    process forked after kernels ran on several threads, kernels run on one thread (the OpenMP
    runtime cannot start a new team after a fork), whatever this is set to.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be in [1, {MAX_THREADS}], got {n}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """Returns the number of threads fastconv kernels called from this thread use."""
    return int(_core.get_num_threads())


def set_winograd(enabled: bool) -> None:
    """Switches Winograd F(2x2, 3x3) on or off for 3x3 stride-1 convolutions (default: off).

    It multiplies 2.25x less than the direct convolution. Results differ from the direct path
    by rounding (the transforms add and halve; tests/test_winograd.py bounds it). Small images
    keep the direct path (results under 10x10; input gradients of images under 16x16).
    An infinity in the input gives NaN in the outputs it reaches (the transforms subtract),
    where the direct path gives an infinity. ``FASTCONV_WINOGRAD=1`` switches it on at import.
    """
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"set_winograd: enabled must be a bool, got {enabled!r}")
    _core.set_winograd_enabled(bool(enabled))


def winograd_enabled() -> bool:
    """Whether 3x3 stride-1 convolutions use Winograd F(2x2, 3x3) (see set_winograd)."""
    return bool(_core.winograd_enabled())


def _winograd_from_environment() -> None:
    value = os.environ.get("FASTCONV_WINOGRAD", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return
    if value not in ("1", "true", "yes", "on"):
        raise ValueError(f"FASTCONV_WINOGRAD must be 0 or 1, got {value!r}")
    _core.set_winograd_enabled(True)


_winograd_from_environment()


# File names of OpenMP runtimes: GNU's libgomp (also as copies that wheels bundle, such as
# torch's libgomp-<hash>.so.1), LLVM's libomp and Intel's libiomp5.
_OPENMP_RUNTIME = re.compile(r"^lib(gomp|omp|iomp5)([-.].*)?\.so(\.[0-9]+)*$")


def openmp_runtimes_loaded() -> list[str]:
    """The files of the OpenMP runtimes mapped into this process (Linux: /proc/self/maps), in
    the order they appear. More than one means several thread pools compete for the cores."""
    try:
        with open("/proc/self/maps") as maps:
            fields = [line.split(None, 5) for line in maps]
    except OSError:
        return []
    paths = [f[5].strip() for f in fields if len(f) == 6]
    found = []
    for path in paths:
        if _OPENMP_RUNTIME.match(os.path.basename(path)):
            path = os.path.realpath(path)
            if path not in found:
                found.append(path)
    return found


def info() -> dict:
    """Version, kernel ISA in use, ISAs this CPU can run, thread count, OpenMP compiled in, the
    OpenMP runtime's file and every OpenMP runtime loaded, whether Winograd convolutions are on."""
    runtime = _core.openmp_runtime_path()
    return {
        "version": __version__,
        "isa": _core.get_isa(),
        "isas_available": list(_core.available_isas()),
        "num_threads": get_num_threads(),
        "openmp": bool(_core.has_openmp()),
        "openmp_runtime": os.path.realpath(runtime) if runtime else None,
        "openmp_runtimes_loaded": openmp_runtimes_loaded(),
        "forked_child_single_thread": bool(_core.forked_child_single_threaded()),
        "winograd": winograd_enabled(),
    }
