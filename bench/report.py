"""One-run benchmark report: fastconv vs PyTorch vs NumPy on the lecture's layers and models.

    python bench/report.py [--quick] [--repeats N] [--only TEXT] [--json out.json]
                           [--no-naive] [--no-ops] [--no-models] [--threads N] [--no-malloc-tuning]

Everything is measured in this one process, side by side: for each case the implementations are
timed interleaved (round-robin, the order rotated every repeat) and the median of the repeats is
reported. Each repeat times a loop of calls at least --min-time long.

- FP32 peak: an FMA-throughput loop (independent register accumulators, AVX-512 and AVX2 builds)
  compiled at run time with the system C compiler into a temporary shared library (nothing in the
  repository is built or touched) and run on as many threads as fastconv uses; the best of
  several runs, measured at the start, before each conv layer and at the end. Without a C
  compiler the peak falls back to the best GFLOP/s of a 4096x4096 float32 np.matmul, and the
  header says so. The np.matmul figure and a 2-thread memory-copy bandwidth are reported in
  any case.
- Threads: fastconv.get_num_threads() (or --threads) for fastconv, PyTorch and NumPy's OpenBLAS.
- PyTorch at its best: channels_last, warm-up calls before timing, flush-denormal on, and the
  glibc heap kept (MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ = 10000000000, set by
  re-executing this script unless
  --no-malloc-tuning; it applies to every library in the process, fastconv included).
- Worker threads: idle OpenBLAS threads spin about 0.1 s after a call and OpenMP threads a few
  ms; so that they never steal the cores of the implementation timed next, each sample starts
  after an untimed pause (0.15 s after NumPy, 5 ms otherwise). fastconv and PyTorch share one
  libgomp in this process.
- Naive NumPy (a Python loop over output positions: sample, row, column; vectorised over the
  kernel window and channels; see references.py) is run once; where the whole layer would take
  longer than --naive-cap seconds, the first output rows are timed and the time is extrapolated to
  all rows (every row costs the same) and marked with "~". It runs with 1 BLAS thread: its
  per-position matmuls are too small to share (2 threads are slower), so this is its best.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MMAP_THRESHOLD = "10000000000"
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 repeats, shorter samples, naive cap 1 s")
    p.add_argument(
        "--repeats", type=int, default=None, help="repeats per case (default 9; quick 3)"
    )
    p.add_argument("--min-time", type=float, default=None, help="seconds per sample (0.05; 0.01)")
    p.add_argument("--naive-cap", type=float, default=None, help="seconds per naive case (10; 1)")
    p.add_argument("--no-naive", action="store_true", help="skip the naive NumPy loop")
    p.add_argument("--no-ops", action="store_true", help="skip the per-layer table")
    p.add_argument("--no-models", action="store_true", help="skip the whole-model table")
    p.add_argument("--only", default=None, help="only op cases whose label contains this text")
    p.add_argument("--threads", type=int, default=0, help="threads (default: fastconv's)")
    p.add_argument("--json", default=None, help="also write all results (and samples) here")
    p.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc malloc as it is")
    a = p.parse_args(argv)
    a.repeats = a.repeats or (3 if a.quick else 9)
    a.min_time = a.min_time if a.min_time is not None else (0.01 if a.quick else 0.05)
    a.naive_cap = a.naive_cap if a.naive_cap is not None else (1.0 if a.quick else 10.0)
    return a


def wanted_env(args):
    """Environment this process should run with (read by glibc and OpenBLAS at start-up)."""
    env = {}
    if not args.no_malloc_tuning:
        env["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
        # A fixed mmap threshold turns off glibc's dynamic trim threshold too: without this,
        # every free of a large block at the top of the heap goes back to the kernel and the next
        # allocation page-faults it in again (measured: fastconv's conv A.conv1 1.0 -> 2.9 ms).
        env["MALLOC_TRIM_THRESHOLD_"] = MMAP_THRESHOLD
    return env


def maybe_reexec(args):
    """Re-executes this script once with wanted_env() set, unless it is set already."""
    env = wanted_env(args)
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    sys.stdout.flush()
    argv = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    os.execve(sys.executable, argv, dict(os.environ, **env))


# ----------------------------------------------------------------------------------------------
# machine: FP32 peak (FMA loop), BLAS sgemm, copy bandwidth

FMA_SOURCE = r"""
#include <immintrin.h>
#define R4(X) X(0) X(1) X(2) X(3)
#if defined(FMA_AVX512)
typedef __m512 vec;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define LOAD _mm512_loadu_ps
static float hsum(vec v) { return _mm512_reduce_add_ps(v); }
#define NACC 16
#else
typedef __m256 vec;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define LOAD _mm256_loadu_ps
static float hsum(vec v) {
    float t[8]; _mm256_storeu_ps(t, v); return t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7];
}
#define NACC 12
#endif
int fma_lanes(void) { return (int)(sizeof(vec) / sizeof(float)); }
int fma_accumulators(void) { return NACC; }
/* iters x NACC independent FMA chains: 2 * lanes * NACC flops per iteration */
float fma_loop(long iters, float seed) {
    vec a = SET1(0.9999999f), b = SET1(1e-7f);
/* Distinct start values, and an empty asm that makes every accumulator opaque once per
   iteration: chains that start equal are otherwise merged by the compiler (GCC 12 merged 4 of
   16, so the loop ran 13 FMAs while 16 were counted and the "peak" came out 16/13 too high). */
#define DECL(i) vec c##i = SET1(seed + (float)(i)), d##i = SET1(seed + 4.0f + (float)(i)), \
    e##i = SET1(seed + 8.0f + (float)(i)), f##i = SET1(seed + 12.0f + (float)(i));
    R4(DECL)
    for (long n = 0; n < iters; n++) {
#if NACC == 16
#define OPAQUE(i) __asm__ volatile("" : "+v"(c##i), "+v"(d##i), "+v"(e##i), "+v"(f##i));
#define STEP(i) c##i = FMA(c##i, a, b); d##i = FMA(d##i, a, b); e##i = FMA(e##i, a, b); \
    f##i = FMA(f##i, a, b);
#else
#define OPAQUE(i) __asm__ volatile("" : "+v"(c##i), "+v"(d##i), "+v"(e##i));
#define STEP(i) c##i = FMA(c##i, a, b); d##i = FMA(d##i, a, b); e##i = FMA(e##i, a, b);
#endif
        R4(STEP)
        R4(OPAQUE)
    }
#define SUM(i) s = ADD(s, ADD(ADD(c##i, d##i), ADD(e##i, f##i)));
    vec s = SET1(0.0f);
    R4(SUM)
    return hsum(s);
}

/* The shape of a GEMM microkernel, in cache: per depth step two vector loads of B and MR
   broadcasts of A feed 2*MR FMAs into MR x 2 vector accumulators (fastconv's 8x32 AVX-512 and
   6x16 AVX2 tiles). What it reaches is the ceiling of any kernel that must load its operands. */
#if defined(FMA_AVX512)
#define TILE_MR 8
#else
#define TILE_MR 6
#endif
#define TILE_KC 256
#define TILE_L ((int)(sizeof(vec) / sizeof(float)))
int tile_flops_per_iter(void) { return 2 * TILE_MR * 2 * TILE_L * TILE_KC; }
float tile_loop(long iters, float seed) {
    float a[TILE_KC * TILE_MR], b[TILE_KC * 2 * 16];
    for (int i = 0; i < TILE_KC * TILE_MR; i++) a[i] = seed * 1e-3f;
    for (int i = 0; i < TILE_KC * 2 * TILE_L; i++) b[i] = 1e-3f;
    vec acc[TILE_MR][2];
    for (int i = 0; i < TILE_MR; i++) acc[i][0] = acc[i][1] = SET1(0.0f);
    for (long n = 0; n < iters; n++) {
        for (int k = 0; k < TILE_KC; k++) {
            const vec b0 = LOAD(b + k * 2 * TILE_L), b1 = LOAD(b + k * 2 * TILE_L + TILE_L);
#pragma GCC unroll 8
            for (int i = 0; i < TILE_MR; i++) {
                const vec ai = SET1(a[k * TILE_MR + i]);
                acc[i][0] = FMA(ai, b0, acc[i][0]);
                acc[i][1] = FMA(ai, b1, acc[i][1]);
            }
        }
        __asm__ volatile("" ::: "memory");
    }
    vec s = SET1(0.0f);
    for (int i = 0; i < TILE_MR; i++) s = ADD(s, ADD(acc[i][0], acc[i][1]));
    return hsum(s);
}
"""


def build_fma_library(isa, tmpdir):
    """Compiles the FMA loop for 'avx512' or 'avx2' with cc; returns a ctypes CDLL or None."""
    flags = ["-mavx512f", "-mfma", "-DFMA_AVX512"] if isa == "avx512" else ["-mavx2", "-mfma"]
    src = os.path.join(tmpdir, "fma.c")
    lib = os.path.join(tmpdir, f"fma_{isa}.so")
    with open(src, "w") as f:
        f.write(FMA_SOURCE)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O3", "-shared", "-fPIC", *flags, src, "-o", lib]
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


def sgemm_gflops(np, n=4096, repeats=3):
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


def copy_bandwidth(np, threads, mbytes=512, repeats=5):
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


# ----------------------------------------------------------------------------------------------
# timing


def time_interleaved(fns, repeats, min_time, warmup=2, gap=0.005, blas_gap=0.15):
    """{name: [seconds per call] x repeats}: round-robin over fns, the order rotated each repeat.

    An untimed sleep before each sample lets the previous implementation's spinning worker
    threads go idle, so they do not steal the cores: ``blas_gap`` after NumPy (OpenBLAS spins
    for about 2^28 cycles), ``gap`` otherwise.
    """
    names = list(fns)
    loops = {}
    for name in names:
        fn = fns[name]
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        loops[name] = max(1, int(min_time / max(one, 1e-7)))
    samples = {name: [] for name in names}
    previous = names[-1]
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                fn, n = fns[name], loops[name]
                time.sleep(blas_gap if previous == "numpy" else gap)
                previous = name
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter() - t0) / n)
    finally:
        gc.enable()
    return samples


def time_naive(fn_rows, total_rows, cap):
    """(seconds for the whole layer, estimated?) of a naive loop, capped at about `cap` s."""
    time.sleep(0.15)
    fn_rows(1)
    t0 = time.perf_counter()
    fn_rows(1)
    per_row = time.perf_counter() - t0
    if per_row * total_rows <= cap:
        runs = 3 if per_row * total_rows * 3 <= cap else 1
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn_rows(None)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), False
    rows = max(1, min(total_rows, int(cap / per_row)))
    t0 = time.perf_counter()
    fn_rows(rows)
    return (time.perf_counter() - t0) * total_rows / rows, True


def median(xs):
    return statistics.median(xs) if xs else None


# ----------------------------------------------------------------------------------------------
# formatting


def fmt_ms(s, est=False):
    if s is None:
        return "-"
    ms = s * 1e3
    txt = f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"
    return ("~" if est else "") + txt


def fmt_rate(rate, ref, unit):
    if rate is None:
        return "-"
    pct = f" ({100 * rate / ref:.0f}%)" if ref else ""
    return f"{rate:,.1f}{pct}" if unit == "GB/s" else f"{rate:,.0f}{pct}"


def fmt_ratio(other, mine):
    if other is None or mine is None:
        return "-"
    return f"{other / mine:.2f}x" if other / mine < 100 else f"{other / mine:,.0f}x"


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# main


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


def run_ops(args, torch, R, threads, log, tick=None):
    """Times every op case; ``tick()`` (the peak, again) runs before each conv layer."""
    results = []
    for case in R.iter_cases(torch, args.only):
        kind, s, op, flops, nbytes, impls, (naive_fn, total_rows) = case
        if tick is not None and kind == "conv" and op == "fwd":
            tick()
        label = R.case_label(case)
        samples = time_interleaved(impls, args.repeats, args.min_time)
        med = {k: median(v) for k, v in samples.items()}
        naive, est = None, False
        if not args.no_naive:
            R.set_blas_threads(1)  # its per-position matmuls are too small to share
            naive, est = time_naive(naive_fn, total_rows, args.naive_cap)
            R.set_blas_threads(threads)
            time.sleep(0.15)
        rec = dict(
            kind=kind,
            layer=s.id,
            op=op,
            gflop=flops / 1e9,
            mbytes=nbytes / 1e6,
            median_s=med,
            samples_s=samples,
            naive_s=naive,
            naive_estimated=est,
        )
        results.append(rec)
        log(f"  {label}: " + ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in med.items()))
        del case, impls
    return results


def per_s(amount, seconds):
    return None if seconds is None else amount / seconds


def ops_tables(results, peak, bandwidth):
    compute_rows, memory_rows = [], []
    for r in results:
        m = r["median_s"]
        fc, th, npb, nv = m.get("fastconv"), m.get("torch"), m.get("numpy"), r["naive_s"]
        times = [fmt_ms(fc), fmt_ms(th), fmt_ms(npb), fmt_ms(nv, r["naive_estimated"])]
        ratios = [fmt_ratio(th, fc), fmt_ratio(npb, fc), fmt_ratio(nv, fc)]
        if r["kind"] in ("conv", "dense"):
            rates = [fmt_rate(per_s(r["gflop"], t), peak, "GFLOP/s") for t in (fc, th, npb)]
            compute_rows.append([r["layer"], r["op"], f"{r['gflop']:.3f}", *times, *rates, *ratios])
        else:
            rates = [
                fmt_rate(per_s(r["mbytes"] / 1e3, t), bandwidth, "GB/s") for t in (fc, th, npb)
            ]
            layer = f"{r['kind']} {r['layer']}"
            memory_rows.append([layer, r["op"], f"{r['mbytes']:.0f}", *times, *rates, *ratios])
    times_h = ["fastconv ms", "PyTorch ms", "NumPy-best ms", "naive ms"]
    ratio_h = ["fastconv vs PyTorch", "vs NumPy-best", "vs naive"]
    compute = markdown_table(
        ["layer", "op", "GFLOP", *times_h]
        + ["fastconv GFLOP/s (% peak)", "PyTorch GFLOP/s (%)", "NumPy GFLOP/s (%)", *ratio_h],
        compute_rows,
    )
    memory = markdown_table(
        ["layer", "op", "MB moved", *times_h]
        + ["fastconv GB/s (% copy bw)", "PyTorch GB/s (%)", "NumPy GB/s (%)", *ratio_h],
        memory_rows,
    )
    return compute, memory


def fastconv_module():
    import fastconv

    return fastconv


def run_models(args, torch, R, threads, log):
    results = []
    for which in ("A", "B"):
        batch = R.MODEL_SPECS[which]["batch"]
        x, y = R.model_batch(which)
        train, predict = {}, {}
        try:
            model = R.fastconv_model(which)
            train["fastconv"] = lambda m=model, x=x, y=y: m.train_on_batch(x, y)
            predict["fastconv"] = lambda m=model, x=x: m.predict_on_batch(x)
        except (AttributeError, ImportError) as exc:
            log(f"  fastconv's Keras-shaped Model unavailable: {exc}")
        if "fastconv" in train and hasattr(fastconv_module(), "set_winograd"):
            w_model = R.fastconv_model(which)
            train["fastconv-winograd"] = R.with_winograd(
                lambda m=w_model, x=x, y=y: m.train_on_batch(x, y)
            )
            predict["fastconv-winograd"] = R.with_winograd(
                lambda m=w_model, x=x: m.predict_on_batch(x)
            )
        ops_model = R.OpsModel(which)
        train["fastconv-ops"] = lambda m=ops_model, x=x, y=y: m.train_step(x, y)
        predict["fastconv-ops"] = lambda m=ops_model, x=x: m.predict(x)
        if torch is not None:
            train["torch"], predict["torch"] = R.torch_steps(torch, which, x, y)
        keras = R.keras_steps(which, x, y, threads)
        if keras is not None:
            train["keras"], predict["keras"] = keras
        for mode, fns in (("train", train), ("predict", predict)):
            samples = time_interleaved(fns, args.repeats, args.min_time, warmup=3)
            med = {k: median(v) for k, v in samples.items()}
            results.append(
                dict(model=which, mode=mode, batch=batch, median_s=med, samples_s=samples)
            )
            log(
                f"  model {which} {mode}: "
                + ", ".join(f"{k} {batch / v:,.0f} img/s" for k, v in med.items())
            )
    return results


MODEL_NAMES = {"A": "A: MNIST convnet, batch 64", "B": "B: cats-vs-dogs convnet, batch 32"}


def models_table(results):
    rows = []
    for r in results:
        m, b = r["median_s"], r["batch"]
        ips = {k: b / v for k, v in m.items()}

        def cell(k, ips=ips):
            return f"{ips[k]:,.0f}" if k in ips else "-"

        fc, wino = m.get("fastconv"), m.get("fastconv-winograd")
        rows.append(
            [
                MODEL_NAMES[r["model"]],
                "training step" if r["mode"] == "train" else "inference",
                cell("fastconv"),
                cell("fastconv-winograd"),
                cell("fastconv-ops"),
                cell("torch"),
                cell("keras"),
                fmt_ratio(m.get("torch"), fc),
                fmt_ratio(m.get("torch"), wino),
                fmt_ratio(m.get("keras"), fc),
                fmt_ratio(m.get("fastconv-ops"), fc),
            ]
        )
    header = ["model", "what", "fastconv img/s", "fastconv Winograd (opt-in) img/s"]
    header += ["fastconv ops-level img/s", "PyTorch img/s", "Keras/TF img/s"]
    header += ["fastconv vs PyTorch", "Winograd vs PyTorch", "vs Keras", "vs ops-level"]
    return markdown_table(header, rows)


def winograd_table(results, peak):
    """The opt-in Winograd path next to the default, for the layers it applies to."""
    rows = []
    for r in results:
        m = r["median_s"]
        wino, fc, th = m.get("fastconv-winograd"), m.get("fastconv"), m.get("torch")
        if wino is None:
            continue
        rate = fmt_rate(per_s(r["gflop"], wino), peak, "GFLOP/s")
        rows.append(
            [
                r["layer"],
                r["op"],
                fmt_ms(fc),
                fmt_ms(wino),
                fmt_ratio(fc, wino),
                rate,
                fmt_ratio(th, wino),
            ]
        )
    header = ["layer", "op", "fastconv ms", "Winograd ms", "Winograd vs default"]
    header += ["Winograd direct-equivalent GFLOP/s (% peak)", "Winograd vs PyTorch"]
    return markdown_table(header, rows)


def checks(op_results, model_results, peak, ceiling=None):
    """The issue's done-when bars that this run can decide."""
    out = []
    by = {
        (r["layer"].split()[0], r["op"]): r["median_s"] for r in op_results if r["kind"] == "conv"
    }
    deep = ["B.conv2", "B.conv3", "B.conv4", "B.conv5", "A.conv2", "A.conv3"]
    for layer in deep:
        rs = [x for x in op_results if x["layer"].startswith(layer + " ") and x["op"] == "fwd"]
        if rs and rs[0]["kind"] == "conv" and rs[0]["median_s"].get("fastconv"):
            rate = rs[0]["gflop"] / rs[0]["median_s"]["fastconv"]
            of_ceiling = (
                f", {100 * rate / ceiling:.0f}% of the in-cache tile ceiling" if ceiling else ""
            )
            out.append(
                f"{layer} forward at {100 * rate / peak:.0f}% of peak{of_ceiling} (bar: 80%)"
            )
    for layer in ("A.conv1", "B.conv1"):
        f, w = by.get((layer, "fwd")), by.get((layer, "dw"))
        if f and w and f.get("torch") and w.get("torch"):
            ratio = (f["torch"] + w["torch"]) / (f["fastconv"] + w["fastconv"])
            out.append(f"{layer} forward + weight gradient {ratio:.2f}x PyTorch (bar: 2x)")
    behind_np = [
        f"{r['kind']} {r['layer']} {r['op']}"
        for r in op_results
        if r["median_s"].get("numpy") is not None
        and r["median_s"]["fastconv"] >= r["median_s"]["numpy"]
    ]
    if op_results:
        out.append(
            "ahead of NumPy-best on every case"
            if not behind_np
            else f"behind or level with NumPy-best on {len(behind_np)}: " + "; ".join(behind_np)
        )
    naive = sorted(
        (r["naive_s"] / r["median_s"]["fastconv"], f"{r['kind']} {r['layer']} {r['op']}")
        for r in op_results
        if r["naive_s"] is not None
    )
    slow = [(x, label) for x, label in naive if x < 100]
    if naive:
        worst = "; ".join(f"{label} ({x:.0f}x)" for x, label in slow[:6])
        more = f"; and {len(slow) - 6} more" if len(slow) > 6 else ""
        out.append(
            f"at least 100x naive NumPy on every one of {len(naive)} cases measured"
            if not slow
            else f"under 100x naive NumPy on {len(slow)} of {len(naive)}, lowest: {worst}{more}"
        )
    bars = {("A", "train"): 1.5, ("B", "train"): 1.4, ("A", "predict"): 1.0, ("B", "predict"): 1.0}
    for r in model_results:
        m = r["median_s"]
        others = {k: v for k, v in m.items() if k in ("torch", "keras")}
        for impl, what in (("fastconv", "default"), ("fastconv-winograd", "Winograd opt-in")):
            fc = m.get(impl)
            if fc and others:
                best_name = min(others, key=others.get)
                ratio = others[best_name] / fc
                bar = bars[(r["model"], r["mode"])]
                out.append(
                    f"model {r['model']} {r['mode']} ({what}): {ratio:.2f}x the best framework "
                    f"({best_name}) (bar: {bar}x)"
                )
    return "\n".join(f"- {line}" for line in out)


def main(argv=None):
    args = parse_args(argv)
    maybe_reexec(args)
    sys.path.insert(0, BENCH_DIR)

    if importlib.util.find_spec("torch") is not None:  # before fastconv: see references.py
        import torch  # noqa: F401

    import fastconv
    import numpy as np
    import references as R

    threads = args.threads or fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    blas_ok = R.set_blas_threads(threads)
    torch = R.setup_torch(threads)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    load_start = loadavg()
    t_start = time.time()
    log(f"measuring peak on {threads} threads ...")
    isas = fastconv.info()["isas_available"]
    fma = {}
    with tempfile.TemporaryDirectory() as tmp:
        for isa in ("avx512", "avx2"):
            if isa in isas:
                dll = build_fma_library(isa, tmp)
                if dll is not None:
                    fma[isa] = (dll, fma_peak(dll, threads, repeats=3 if args.quick else 5))
        tile_ceiling = {
            isa: fma_peak(dll, threads, repeats=3 if args.quick else 5, tile=True)
            for isa, (dll, _) in fma.items()
        }
        sgemm = sgemm_gflops(np, repeats=2 if args.quick else 3)
        bandwidth = copy_bandwidth(np, threads)
        peak_isa = next(iter(fma), None)
        peak = fma[peak_isa][1] if fma else sgemm
        log(f"  FMA peak { ({k: round(v[1]) for k, v in fma.items()}) }, sgemm {sgemm:.0f} GFLOP/s")

        op_results, model_results = [], []
        if not args.no_ops:
            log("per-layer ops ...")

            def tick():  # the peak again between layers: a peak is a maximum
                for isa, (dll, p0) in fma.items():
                    fma[isa] = (dll, max(p0, fma_peak(dll, threads, repeats=1)))

            op_results = run_ops(args, torch, R, threads, log, tick)
        if not args.no_models:
            log("whole models ...")
            model_results = run_models(args, torch, R, threads, log)

        for isa, (dll, p0) in fma.items():  # again at the end; a peak is a maximum
            fma[isa] = (dll, max(p0, fma_peak(dll, threads, repeats=3)))
            tile_ceiling[isa] = max(tile_ceiling[isa], fma_peak(dll, threads, 3, tile=True))
        peak = fma[peak_isa][1] if fma else max(sgemm, sgemm_gflops(np, repeats=1))
        fma_gflops = {k: v[1] for k, v in fma.items()}

    info = fastconv.info()
    peak_method = (
        f"FMA-throughput loop ({peak_isa}, {threads} threads, best of runs at start, between "
        "layers and at end)"
        if fma
        else f"best 4096x4096 float32 np.matmul ({threads} threads): no C compiler for the FMA loop"
    )
    lines = [
        "# fastconv benchmark report",
        "",
        f"- machine: {machine_name()}, {os.cpu_count()} logical CPUs; load average "
        f"{load_start:.2f} at start, {loadavg():.2f} at end; {time.time() - t_start:.0f} s",
        f"- fastconv {info['version']}, ISA {info['isa']}, OpenMP {info['openmp']}; "
        f"threads {threads} for fastconv, PyTorch and NumPy's BLAS"
        + ("" if blas_ok else " (BLAS thread count could not be set)"),
        f"- PyTorch {torch.__version__ if torch else 'not installed'} (channels_last, warm-up, "
        f"flush-denormal); NumPy {np.__version__}; MALLOC_MMAP_THRESHOLD_="
        f"{os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}, MALLOC_TRIM_THRESHOLD_="
        f"{os.environ.get('MALLOC_TRIM_THRESHOLD_', 'unset')}",
        f"- FP32 peak {peak:,.0f} GFLOP/s: {peak_method}. "
        + ", ".join(f"FMA loop {k}: {v:,.0f}" for k, v in fma_gflops.items())
        + f"; np.matmul 4096: {sgemm:,.0f} GFLOP/s; {threads}-thread copy bandwidth "
        f"{bandwidth:.1f} GB/s (read + write)",
        "- in-cache GEMM-tile ceiling (the FMA loop's arithmetic with its operands loaded: two "
        "vector loads and MR broadcasts per 2*MR FMAs, as in every GEMM microkernel): "
        + ", ".join(
            f"{k} {v:,.0f} GFLOP/s ({100 * v / fma_gflops[k]:.0f}% of its FMA loop)"
            for k, v in tile_ceiling.items()
        ),
        f"- times: medians of {args.repeats} interleaved repeats (>= {args.min_time * 1e3:.0f} ms "
        "each); ratios = other's time / fastconv's time (above 1: fastconv faster); naive NumPy "
        f"once per case on 1 BLAS thread, capped at {args.naive_cap:g} s, '~' = extrapolated "
        "from the first rows",
        "- conv fwd includes bias and ReLU (fused in fastconv); dx = input gradient; dw = kernel "
        "and bias gradients; dense bwd = dx, dw, db. Pooling/ReLU: MB moved = bytes read + "
        "written once; small working sets stay in cache, so GB/s above the copy bandwidth occur",
    ]
    if op_results:
        compute, memory = ops_tables(op_results, peak, bandwidth)
        lines += ["", "## Convolution and dense layers", "", compute]
        lines += ["", "## Pooling and ReLU (memory-bound: GB/s)", "", memory]
        if any("fastconv-winograd" in r["median_s"] for r in op_results):
            lines += ["", "## Winograd F(2x2, 3x3), opt-in (`fastconv.set_winograd(True)`)", ""]
            lines += [winograd_table(op_results, peak)]
    if model_results:
        lines += ["", "## Whole models (images/s)", "", models_table(model_results)]
    if op_results or model_results:
        lines += [
            "",
            "## Against the issue's bars",
            "",
            checks(op_results, model_results, peak, tile_ceiling.get(peak_isa)),
        ]
    print("\n".join(lines))

    if args.json:
        doc = dict(
            threads=threads,
            fastconv=info,
            torch=torch.__version__ if torch else None,
            numpy=np.__version__,
            malloc_mmap_threshold=os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            peak_gflops=peak,
            peak_method=peak_method,
            fma_gflops=fma_gflops,
            sgemm_gflops=sgemm,
            copy_bandwidth_gbs=bandwidth,
            load_average=[load_start, loadavg()],
            repeats=args.repeats,
            ops=op_results,
            models=model_results,
        )
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
