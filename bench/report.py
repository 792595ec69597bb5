"""One-run benchmark report: fastconv vs PyTorch vs NumPy on the lecture's layers and models.

    python bench/report.py [--quick] [--repeats N] [--only TEXT] [--json out.json]
                           [--no-naive] [--no-ops] [--no-models] [--threads N] [--malloc-tuning]
                           [--no-user-path] [--keras-python PATH] [--user-path-rounds N]

Two parts:

- In this one process, side by side (the per-layer tables and the whole-model steps): for each
  case the implementations are timed interleaved (round-robin, the order rotated every repeat)
  and the median of the repeats is reported. Each repeat times a loop of calls at least
  --min-time long (fcbench.timing). This process runs with the allocator as installed, as users
  get it; --malloc-tuning re-executes it with glibc heap reuse on (MALLOC_MMAP_THRESHOLD_ and
  MALLOC_TRIM_THRESHOLD_), which applies to every library in the process, fastconv included,
  and the header says so.
- The user's path (fcbench.userpath, also `bench/user_path.py`): each framework in a process of
  its own, `fit` and `predict` for fastconv and Keras (--keras-python: a Python with keras and
  tensorflow-cpu; skipped without), PyTorch's loop at its best with glibc heap reuse on in its
  own process only, ONNX Runtime for inference; alternating rounds; img/s and peak RSS.

- FP32 peak: an FMA-throughput loop compiled at run time with the system C compiler into a
  temporary shared library, run on as many threads as fastconv uses; the best of several runs,
  measured at the start, before each conv layer and at the end. Without a C compiler the peak
  falls back to the best GFLOP/s of a 4096x4096 float32 np.matmul, and the header says so. The
  np.matmul figure and a copy bandwidth are reported in any case (fcbench.machine).
- Threads: fastconv.get_num_threads() (or --threads) for fastconv, PyTorch and NumPy's OpenBLAS.
- PyTorch in this process: channels_last, warm-up calls before timing, flush-denormal on; the
  allocator as this process has it (heap reuse only with --malloc-tuning, for every library).
- Naive NumPy (fcbench.baselines.naive) is run once per case on 1 BLAS thread; where the whole
  layer would take longer than --naive-cap seconds, the first output rows are timed and the time
  extrapolated to all rows, marked with "~".
- The bars the results are checked against are data: fcbench/bars.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

MMAP_THRESHOLD = "10000000000"


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
    p.add_argument(
        "--malloc-tuning",
        action="store_true",
        help="glibc heap reuse for this whole process (every in-process column); off by default",
    )
    p.add_argument("--no-user-path", action="store_true", help="skip the user-path table")
    p.add_argument("--keras-python", default=None, help="a Python with keras + tensorflow-cpu")
    p.add_argument("--user-path-rounds", type=int, default=None, help="rounds (3; quick 1)")
    a = p.parse_args(argv)
    a.repeats = a.repeats or (3 if a.quick else 9)
    a.min_time = a.min_time if a.min_time is not None else (0.01 if a.quick else 0.05)
    a.naive_cap = a.naive_cap if a.naive_cap is not None else (1.0 if a.quick else 10.0)
    return a


def wanted_env(args):
    """Environment this process should run with (read by glibc and OpenBLAS at start-up)."""
    env = {}
    if args.malloc_tuning:
        env["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
        # A fixed mmap threshold turns off glibc's dynamic trim threshold too: without this,
        # every free of a large block at the top of the heap goes back to the kernel and the next
        # allocation page-faults it in again (measured: fastconv's conv A.conv1 1.0 -> 2.9 ms).
        env["MALLOC_TRIM_THRESHOLD_"] = MMAP_THRESHOLD
    return env


def maybe_reexec(args):
    """With --malloc-tuning, re-executes this script once with wanted_env() set, unless it is set
    already."""
    env = wanted_env(args)
    if not env or all(os.environ.get(k) == v for k, v in env.items()):
        return
    sys.stdout.flush()
    argv = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    os.execve(sys.executable, argv, dict(os.environ, **env))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def header(args, threads, blas_ok, torch, peak, load_start, t_start):
    import fastconv
    import numpy as np
    from fcbench.machine import loadavg, machine_name

    info = fastconv.info()
    env = {
        k: os.environ.get(k, "unset") for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    }
    return [
        "# fastconv benchmark report",
        "",
        f"- machine: {machine_name()}, {os.cpu_count()} logical CPUs; load average "
        f"{load_start:.2f} at start, {loadavg():.2f} at end; {time.time() - t_start:.0f} s",
        f"- fastconv {info['version']}, ISA {info['isa']}, OpenMP {info['openmp']}; "
        f"threads {threads} for fastconv, PyTorch and NumPy's BLAS"
        + ("" if blas_ok else " (BLAS thread count could not be set)"),
        f"- PyTorch {torch.__version__ if torch else 'not installed'} (channels_last, warm-up, "
        f"flush-denormal); NumPy {np.__version__}",
        "- this process (the per-layer tables and the whole-model steps, every library in it "
        "alike): "
        + ", ".join(f"{k}={v}" for k, v in env.items())
        + (
            " (--malloc-tuning: glibc heap reuse, which no user sets)"
            if args.malloc_tuning
            else " (the allocator as installed: what users get)"
        ),
        f"- FP32 peak {peak.value:,.0f} GFLOP/s: {peak.method}. "
        + ", ".join(f"FMA loop {k}: {v:,.0f}" for k, v in peak.fma.items())
        + f"; np.matmul 4096: {peak.sgemm:,.0f} GFLOP/s; {threads}-thread copy bandwidth "
        f"{peak.bandwidth:.1f} GB/s (read + write)",
        "- in-cache GEMM-tile ceiling (the FMA loop's arithmetic with its operands loaded: two "
        "vector loads and MR broadcasts per 2*MR FMAs, as in every GEMM microkernel): "
        + ", ".join(
            f"{k} {v:,.0f} GFLOP/s ({100 * v / peak.fma[k]:.0f}% of its FMA loop)"
            for k, v in peak.tile.items()
        ),
        f"- times: medians of {args.repeats} interleaved repeats (>= {args.min_time * 1e3:.0f} ms "
        "each); ratios = other's time / fastconv's time (above 1: fastconv faster); naive NumPy "
        f"once per case on 1 BLAS thread, capped at {args.naive_cap:g} s, '~' = extrapolated "
        "from the first rows",
        "- conv fwd includes bias and ReLU (fused in fastconv); dx = input gradient; dw = kernel "
        "and bias gradients; dense bwd = dx, dw, db. Pooling/ReLU: MB moved = bytes read + "
        "written once; small working sets stay in cache, so GB/s above the copy bandwidth occur",
    ]


def body(op_results, model_results, peak):
    from fcbench.checks import checks
    from fcbench.tables import models_table, ops_tables, winograd_table

    lines = []
    if op_results:
        compute, memory = ops_tables(op_results, peak.value, peak.bandwidth)
        lines += ["", "## Convolution and dense layers", "", compute]
        lines += ["", "## Pooling and ReLU (memory-bound: GB/s)", "", memory]
        if any("fastconv-winograd" in r["median_s"] for r in op_results):
            lines += ["", "## Winograd F(2x2, 3x3), opt-in (`fastconv.set_winograd(True)`)", ""]
            lines += [winograd_table(op_results, peak.value)]
    if model_results:
        lines += ["", "## Whole models (images/s)", "", models_table(model_results)]
    if op_results or model_results:
        lines += ["", "## Against the issue's bars", ""]
        lines += [checks(op_results, model_results, peak.value, peak.ceiling)]
    return lines


def write_json(path, args, threads, torch, peak, load, op_results, model_results):
    import fastconv
    import numpy as np

    doc = dict(
        threads=threads,
        fastconv=fastconv.info(),
        torch=torch.__version__ if torch else None,
        numpy=np.__version__,
        malloc_mmap_threshold=os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        peak_gflops=peak.value,
        peak_method=peak.method,
        fma_gflops=peak.fma,
        sgemm_gflops=peak.sgemm,
        copy_bandwidth_gbs=peak.bandwidth,
        load_average=load,
        repeats=args.repeats,
        ops=op_results,
        models=model_results,
    )
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    log(f"wrote {path}")


def user_path(args, threads):
    """(markdown lines, records) of the user-path comparison: each framework in its own process,
    PyTorch's alone with glibc heap reuse (fcbench.userpath)."""
    from fcbench import userpath
    from fcbench.machine import loadavg

    log("the user's path: each framework in its own process ...")
    kw = dict(threads=threads, keras_python=args.keras_python)
    settings = userpath.quick_settings(**kw) if args.quick else userpath.Settings(**kw)
    settings.rounds = args.user_path_rounds or settings.rounds
    load0 = loadavg()
    records, frameworks, notes = userpath.run(settings, log)
    lines = ["", "## The user's path: `fit` and `predict`, each framework in its own process", ""]
    lines += userpath.section(settings, records, frameworks, notes, (load0, loadavg()))
    return lines, records


def main(argv=None):
    args = parse_args(argv)
    maybe_reexec(args)
    # the library after the re-exec; fcbench imports PyTorch (when installed) before fastconv
    from fcbench import runs
    from fcbench.machine import Peak, loadavg
    from fcbench.runtime import configure

    threads, blas_ok, torch = configure(args.threads)
    load_start, t_start = loadavg(), time.time()
    log(f"measuring peak on {threads} threads ...")
    op_results, model_results = [], []
    with Peak(threads, quick=args.quick) as peak:
        fma = {k: round(v) for k, v in peak.fma.items()}
        log(f"  FMA peak {fma}, sgemm {peak.sgemm:.0f} GFLOP/s")
        if not args.no_ops:
            log("per-layer ops ...")
            naive_cap = None if args.no_naive else args.naive_cap
            op_results = runs.run_ops(
                torch, threads, args.repeats, args.min_time, args.only, naive_cap, log, peak.tick
            )
        if not args.no_models:
            log("whole models ...")
            model_results = runs.run_models(torch, threads, args.repeats, args.min_time, log)
        peak.finish()
    lines = header(args, threads, blas_ok, torch, peak, load_start, t_start)
    lines += body(op_results, model_results, peak)
    user = None if args.no_user_path else user_path(args, threads)
    if user is not None:
        lines += user[0]
    print("\n".join(lines))
    if args.json:
        load = [load_start, loadavg()]
        write_json(args.json, args, threads, torch, peak, load, op_results, model_results)
        if user is not None:
            with open(args.json, "r+") as f:
                doc = json.load(f)
                doc["user_path"] = user[1]
                f.seek(0)
                json.dump(doc, f, indent=1)
                f.truncate()


if __name__ == "__main__":
    main()
