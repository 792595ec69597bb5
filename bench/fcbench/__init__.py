"""fcbench: the benchmark library behind bench/'s scripts and its pytest-benchmark suite.

    timing      the interleaved round-robin median harness; the naive loop's capped timer
    machine     FP32 peak (an FMA loop compiled at run time, np.matmul as fallback), copy
                bandwidth, the GEMM-tile ceiling, CPU model and load
    runtime     thread counts for fastconv, NumPy's BLAS and PyTorch; Winograd on for one call
    shapes      the lecture layers' shapes at their training batch sizes, and their data
    cases       every op case: {implementation: call} per (layer, op), with its naive loop
    baselines   naive NumPy, NumPy at its best, PyTorch (ops and the two models), Keras/TF
    zoo         the lecture's two models: batches, fastconv/ops-level/PyTorch/Keras steps
    runs        the report's measuring loops over op cases and models
    processes   a child process per framework: its environment, its JSON answer, its peak RSS
    solo        the child's side: one framework, one model, fit or predict, nothing else loaded
    userpath    the user-path comparison: alternating rounds of solo processes, medians, table
    tables      markdown tables; bars + checks: the bars a report is held to, and the check

Importing the package imports PyTorch first, when installed: importing fastconv sets
GOMP_SPINCOUNT for its OpenMP runtime, and PyTorch's own libgomp, loaded later, would read it
too. Loaded first, PyTorch keeps its defaults: each framework is measured with its own settings.
A child process that measures one framework alone (``fcbench.solo``, started with FCBENCH_SOLO=1)
imports nothing but that framework: there the import is skipped.
"""

from __future__ import annotations

import importlib.util
import os

# The environment as this process started, before fastconv's import sets GOMP_SPINCOUNT in it: the
# child processes of fcbench.processes start from this, so no framework inherits another's settings.
STARTUP_ENVIRON = dict(os.environ)

if not os.environ.get("FCBENCH_SOLO") and importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401
