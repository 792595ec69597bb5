"""The report's measuring loops: every op case, and the whole models, timed interleaved.

Each returns a list of records (dicts, written to the report's JSON as they are): the median
seconds per implementation (``median_s``) and every sample (``samples_s``).
"""

from __future__ import annotations

import time

from fcbench import cases, zoo
from fcbench.runtime import set_blas_threads
from fcbench.tables import fmt_ms
from fcbench.timing import medians, time_interleaved, time_naive


def run_ops(torch, threads, repeats, min_time, only=None, naive_cap=None, log=print, tick=None):
    """Times every op case whose label contains ``only``; ``tick()`` (the peak, again) runs before
    each conv layer. The naive NumPy loop runs once per case (capped at ``naive_cap`` seconds,
    None: not run) on 1 BLAS thread: its per-position matmuls are too small to share (2 threads
    are slower), so this is its best."""
    results = []
    for case in cases.iter_cases(torch, only):
        if tick is not None and case.kind == "conv" and case.op == "fwd":
            tick()
        samples = time_interleaved(case.impls, repeats, min_time)
        med = medians(samples)
        naive, est = None, False
        if naive_cap is not None:
            set_blas_threads(1)
            naive, est = time_naive(case.naive, case.naive_rows, naive_cap)
            set_blas_threads(threads)
            time.sleep(0.15)
        results.append(
            dict(
                kind=case.kind,
                layer=case.shape.id,
                op=case.op,
                gflop=case.flops / 1e9,
                mbytes=case.nbytes / 1e6,
                median_s=med,
                samples_s=samples,
                naive_s=naive,
                naive_estimated=est,
            )
        )
        log(f"  {case.label}: " + ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in med.items()))
        del case
    return results


def model_impls(which, x, y, torch, threads, log=print):
    """{implementation: (train_step, predict)} of every implementation that applies."""
    steps = {}
    for impl in zoo.IMPLS:
        if impl == "fastconv-winograd" and "fastconv" not in steps:
            continue
        try:
            pair = zoo.model_steps(impl, which, x, y, torch, threads)
        except (AttributeError, ImportError) as exc:
            log(f"  {impl} unavailable: {exc}")
            continue
        if pair is not None:
            steps[impl] = pair
    return steps


def run_models(torch, threads, repeats, min_time, log=print):
    """Training steps and inference of models A and B, every implementation interleaved."""
    results = []
    for which in ("A", "B"):
        batch = zoo.MODEL_SPECS[which]["batch"]
        x, y = zoo.model_batch(which)
        steps = model_impls(which, x, y, torch, threads, log)
        for mode, index in (("train", 0), ("predict", 1)):
            fns = {impl: pair[index] for impl, pair in steps.items()}
            samples = time_interleaved(fns, repeats, min_time, warmup=3)
            med = medians(samples)
            results.append(
                dict(model=which, mode=mode, batch=batch, median_s=med, samples_s=samples)
            )
            log(
                f"  model {which} {mode}: "
                + ", ".join(f"{k} {batch / v:,.0f} img/s" for k, v in med.items())
            )
    return results
