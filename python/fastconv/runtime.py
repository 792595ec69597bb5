"""Run-time settings of the kernels: threads, convolution algorithms, and what this build and CPU
run.

``fastconv`` re-exports these; modules inside the package import them from here.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings

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
    "set_conv_algorithm",
    "get_conv_algorithm",
    "conv_algorithm_choices",
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


def set_conv_algorithm(name: str) -> None:
    """Chooses how convolutions run: ``"auto"`` (the default), ``"direct"`` or an algorithm.

    Each pass (forward, input gradient, weight gradient) has an ordered list of algorithms, each
    of which says whether it can take a problem and why not (``_core.conv_algorithm_reasons``):

    - forward: ``few_channel`` (1-4 input channels, patches read in place a row at a time),
      ``winograd`` (F(2x2, 3x3): 3x3, stride 1, no dilation), ``igemm`` (indirect GEMM, any);
    - input gradient: ``few_channel`` (1-4 input channels, stride 1), ``winograd``, ``col2im``
      (GEMM over output pixels and a scatter, any), ``igemm`` (transposed indirect GEMM, any);
    - weight gradient: ``packed`` (each tap's patches and dy packed into panels for the GEMM
      microkernel, any), ``rowgemm`` and ``rowgemm_tall`` (row-pointer GEMM with the ISA's two
      tile heights, 4 and 6 rows on AVX2, 8 and 14 on AVX-512, any), ``winograd``, ``patches``
      (patch sums read in place, any). Which tile is fastest depends on the CPU's FMA ports and
      cache bandwidth, so auto measures them rather than an ISA rule choosing.

    ``"auto"`` times every algorithm that can take a call's problem the first time its (pass,
    shape without the batch size, thread count, ISA) is met, on that call (the output is the
    fastest one's), and keeps the fastest for the process; ``info()["conv_choices"]`` lists
    the choices. ``"direct"`` is auto without Winograd. ``"deterministic"`` never measures:
    each pass runs the first direct algorithm of its list that can take the problem, so every
    process makes the same choices and a seeded run gives the same bits in every process
    (auto's measured choices can differ between processes, and with them the rounding).

    A forced name runs that algorithm wherever it can take the problem and falls back to auto's
    choice, for that call, where it cannot (so ``"col2im"`` forces the input gradient alone).
    Winograd's results stay within the float64 reference tolerance the tests hold every
    algorithm to; where its inputs or its result hold an infinity or a NaN, the call is redone
    with a direct algorithm, so non-finite values come out as the direct sum gives them.
    ``FASTCONV_CONV_ALGO`` sets this at import.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_conv_algorithm: name must be a str, got {name!r}")
    try:
        _core.set_conv_algorithm(name)
    except ValueError as exc:
        raise ValueError(f"set_conv_algorithm: {exc}") from None


def get_conv_algorithm() -> str:
    """The convolution algorithm setting: "auto", "direct" or a forced name (set_conv_algorithm)."""
    return str(_core.get_conv_algorithm())


def conv_algorithm_choices() -> list[tuple[str, str, str]]:
    """The algorithms "auto" chose so far in this process: (pass, shape, algorithm) each."""
    return [(c[0], c[1], c[4]) for c in _core.conv_algorithm_choices()]


def set_winograd(enabled: bool) -> None:
    """Deprecated: ``set_conv_algorithm("winograd")`` (True: Winograd wherever it can take the
    problem) or ``set_conv_algorithm("direct")`` (False: never Winograd); the default "auto"
    measures it against the direct algorithms. ``FASTCONV_WINOGRAD=1`` / ``0`` do the same at
    import, unless ``FASTCONV_CONV_ALGO`` is set."""
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"set_winograd: enabled must be a bool, got {enabled!r}")
    warnings.warn(
        "fastconv.set_winograd is deprecated: use fastconv.set_conv_algorithm('winograd'), "
        "('direct') or ('auto')",
        DeprecationWarning,
        stacklevel=2,
    )
    _core.set_conv_algorithm("winograd" if enabled else "direct")


def winograd_enabled() -> bool:
    """Deprecated: whether the setting forces Winograd (``get_conv_algorithm() == "winograd"``)."""
    return get_conv_algorithm() == "winograd"


def _conv_algorithm_from_environment() -> None:
    value = os.environ.get("FASTCONV_CONV_ALGO", "").strip()
    if value:
        settings = list(_core.conv_algorithm_settings())
        if value not in settings:
            raise ValueError(f"FASTCONV_CONV_ALGO must be one of {settings}, got {value!r}")
        _core.set_conv_algorithm(value)
        return
    value = os.environ.get("FASTCONV_WINOGRAD", "").strip().lower()
    if value in ("", "auto"):
        return
    if value not in ("0", "false", "no", "off", "1", "true", "yes", "on"):
        raise ValueError(f"FASTCONV_WINOGRAD must be 0 or 1, got {value!r}")
    _core.set_conv_algorithm("winograd" if value in ("1", "true", "yes", "on") else "direct")


_conv_algorithm_from_environment()


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
    """Version, kernel ISA in use and its microkernel instances (named op_tile_isa, e.g.
    "igemm_6x16_avx2"), ISAs this CPU can run, thread count, OpenMP compiled in, the OpenMP
    runtime's file and every OpenMP runtime loaded, the convolution algorithm setting and the
    choices "auto" made so far (pass, shape, algorithm)."""
    runtime = _core.openmp_runtime_path()
    return {
        "version": __version__,
        "isa": _core.get_isa(),
        "kernels": _core.kernel_instances().split(),
        "isas_available": list(_core.available_isas()),
        "num_threads": get_num_threads(),
        "openmp": bool(_core.has_openmp()),
        "openmp_runtime": os.path.realpath(runtime) if runtime else None,
        "openmp_runtimes_loaded": openmp_runtimes_loaded(),
        "forked_child_single_thread": bool(_core.forked_child_single_threaded()),
        "conv_algorithm": get_conv_algorithm(),
        "conv_choices": conv_algorithm_choices(),
    }
