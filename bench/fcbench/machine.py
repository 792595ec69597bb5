"""Machine facts: FP32 peak, the in-cache GEMM-tile ceiling, np.matmul GFLOP/s, copy bandwidth,
CPU model and load.

The peak is an FMA-throughput loop (independent register accumulators, AVX-512 and AVX2 builds;
fma_peak.c) compiled at run time with the system C compiler ($CC or cc) into a temporary shared
library and run on as many threads as fastconv uses; the best of several runs. Without a C
compiler the peak falls back to the best GFLOP/s of a 4096x4096 float32 np.matmul.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import tempfile
import threading
import time

import numpy as np

FMA_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fma_peak.c")


def build_fma_library(isa, tmpdir):
    """Compiles the FMA loop for 'avx512' or 'avx2' with cc; returns a ctypes CDLL or None."""
    flags = ["-mavx512f", "-mfma", "-DFMA_AVX512"] if isa == "avx512" else ["-mavx2", "-mfma"]
    lib = os.path.join(tmpdir, f"fma_{isa}.so")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O3", "-shared", "-fPIC", *flags, FMA_SOURCE, "-o", lib]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        dll = ctypes.CDLL(lib)
    except (OSError, subprocess.SubprocessError):
        return None
    for fn in (dll.fma_loop, dll.tile_loop):
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_long, ctypes.c_float]
    return dll


def run_threads(fn, threads):
    """Wall time of fn(i) on `threads` Python threads at once (the callees release the GIL)."""
    barrier = threading.Barrier(threads + 1)

    def body(i):
        barrier.wait()
        fn(i)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def fma_peak(dll, threads, repeats=5, seconds=0.15, tile=False):
    """Best GFLOP/s of the FMA loop (or, with tile, the in-cache GEMM tile) on `threads` threads."""
    if tile:
        flops_per_iter, loop = dll.tile_flops_per_iter(), dll.tile_loop
    else:
        flops_per_iter, loop = 2 * dll.fma_lanes() * dll.fma_accumulators(), dll.fma_loop
    iters = 1 << 4 if tile else 1 << 16
    while True:  # calibrate on one thread
        t0 = time.perf_counter()
        loop(iters, 1.0)
        if time.perf_counter() - t0 > seconds / 4:
            break
        iters *= 2
    t1 = time.perf_counter() - t0
    iters = max(1, int(iters * seconds / t1))
    best = 0.0
    for _ in range(repeats):
        wall = run_threads(lambda i: loop(iters, 1.0 + i), threads)
        best = max(best, flops_per_iter * iters * threads / wall / 1e9)
    return best


def sgemm_gflops(n=4096, repeats=3):
    """Best GFLOP/s of an n x n float32 np.matmul."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.matmul(a, b, out=c)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def copy_bandwidth(threads, mbytes=512, repeats=5):
    """Best GB/s (bytes read + written) of `threads` threads each copying its slice."""
    n = mbytes * 2**20 // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(n), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    def body(i):
        lo, hi = bounds[i]
        np.copyto(dst[lo:hi], src[lo:hi])

    run_threads(body, threads)
    best = 0.0
    for _ in range(repeats):
        best = max(best, 2 * src.nbytes / run_threads(body, threads) / 1e9)
    return best


def machine_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class Peak:
    """The machine's FP32 peak, measured at the start, again between layers (``tick``) and at the
    end (``finish``): a peak is a maximum. Use as a context manager (the compiled loops live in
    a temporary directory).

    ``fma``: {isa: GFLOP/s of the FMA loop}; ``tile``: {isa: GFLOP/s of the in-cache GEMM tile};
    ``sgemm``: np.matmul 4096 GFLOP/s; ``bandwidth``: copy GB/s; ``isa``: the ISA whose loop
    is the peak (None: no C compiler, the peak is np.matmul's); ``value``: the peak."""

    def __init__(self, threads, isas=None, quick=False):
        """``isas``: the ISAs to build the loop for (default: those fastconv finds)."""
        if isas is None:
            import fastconv

            isas = fastconv.info()["isas_available"]
        self.threads, self.isas, self.quick = threads, isas, quick
        self._dlls, self.fma, self.tile = {}, {}, {}
        self.sgemm = self.bandwidth = self.value = 0.0
        self.isa = None

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.start()
        return self

    def __exit__(self, *exc):
        self._tmp.cleanup()

    def start(self):
        repeats = 3 if self.quick else 5
        for isa in ("avx512", "avx2"):
            if isa in self.isas:
                dll = build_fma_library(isa, self._tmp.name)
                if dll is not None:
                    self._dlls[isa] = dll
                    self.fma[isa] = fma_peak(dll, self.threads, repeats=repeats)
        for isa, dll in self._dlls.items():
            self.tile[isa] = fma_peak(dll, self.threads, repeats=repeats, tile=True)
        self.sgemm = sgemm_gflops(repeats=2 if self.quick else 3)
        self.bandwidth = copy_bandwidth(self.threads)
        self.isa = next(iter(self.fma), None)
        self.value = self.fma[self.isa] if self.fma else self.sgemm

    def tick(self):
        """The FMA loop once more (before each conv layer)."""
        for isa, dll in self._dlls.items():
            self.fma[isa] = max(self.fma[isa], fma_peak(dll, self.threads, repeats=1))

    def finish(self):
        for isa, dll in self._dlls.items():
            self.fma[isa] = max(self.fma[isa], fma_peak(dll, self.threads, repeats=3))
            self.tile[isa] = max(self.tile[isa], fma_peak(dll, self.threads, 3, tile=True))
        self.value = self.fma[self.isa] if self.fma else max(self.sgemm, sgemm_gflops(repeats=1))

    @property
    def ceiling(self):
        """The in-cache GEMM-tile ceiling of the peak's ISA, or None."""
        return self.tile.get(self.isa)

    @property
    def method(self):
        if self.fma:
            return (
                f"FMA-throughput loop ({self.isa}, {self.threads} threads, best of runs at start, "
                "between layers and at end)"
            )
        return (
            f"best 4096x4096 float32 np.matmul ({self.threads} threads): no C compiler for the "
            "FMA loop"
        )
