"""Threads: several Python threads calling the ops at once, the OpenMP thread count, the GIL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import fastconv
import numpy as np
import pytest
import reference as ref
from fastconv import ops


def _jobs(seed):
    """A list of (name, callable, float64 reference) with shapes that differ per seed, so
    shared scratch buffers of the wrong size would show."""
    r = np.random.default_rng(seed)
    n, hw, cin, cout = 1 + seed % 3, 9 + 3 * seed, 3 + 5 * seed, 8 + 7 * seed
    x = r.standard_normal((n, hw, hw + seed, cin)).astype(np.float32)
    k = r.standard_normal((3, 3, cin, cout)).astype(np.float32)
    b = r.standard_normal(cout).astype(np.float32)
    strides, padding = (1 + seed % 2), ("same" if seed % 2 else "valid")
    kw = dict(strides=strides, padding=padding)
    y = ref.conv2d(x, k, b, **kw)
    dy = r.standard_normal(y.shape).astype(np.float32)
    xd = r.standard_normal((2 + seed, 40 + 13 * seed)).astype(np.float32)
    kd = r.standard_normal((40 + 13 * seed, 5 + 3 * seed)).astype(np.float32)
    dyd = r.standard_normal((2 + seed, 5 + 3 * seed)).astype(np.float32)
    yp = ref.max_pool2d(x, 2 + seed % 2, None, padding)
    dyp = r.standard_normal(yp.shape).astype(np.float32)
    return [
        ("conv2d", lambda: ops.conv2d(x, k, b, **kw), y),
        (
            "conv2d_grad",
            lambda: ops.conv2d_grad(x, k, dy, **kw),
            ref.conv2d_grad(x, k, dy, **kw),
        ),
        ("dense", lambda: ops.dense(xd, kd), ref.dense(xd, kd)),
        ("dense_grad", lambda: ops.dense_grad(xd, kd, dyd), ref.dense_grad(xd, kd, dyd)),
        ("max_pool2d", lambda: ops.max_pool2d(x, 2 + seed % 2, None, padding), yp),
        (
            "max_pool2d_grad",
            lambda: ops.max_pool2d_grad(x, dyp, 2 + seed % 2, None, padding),
            ref.max_pool2d_grad(x, dyp, 2 + seed % 2, None, padding),
        ),
    ]


def _as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _close(got, expected, tol):
    got, expected = _as_tuple(got), _as_tuple(expected)
    assert len(got) == len(expected)
    return all(g.shape == np.shape(e) and ref.rel_err(g, e) <= tol for g, e in zip(got, expected))


NTHREADS = 4
ROUNDS = 4


def test_concurrent_calls_get_their_own_answers(isa):
    jobs = [_jobs(s) for s in range(NTHREADS)]
    # single-threaded (sequential) answers first, each also held to the reference
    sequential = [[fn() for _, fn, _ in js] for js in jobs]
    for js, answers in zip(jobs, sequential):
        for (name, _, expected), got in zip(js, answers):
            assert _close(got, expected, 1e-4), f"sequential {name} wrong"

    barrier = threading.Barrier(NTHREADS)
    failures, errors = [], []

    def worker(t):
        try:
            barrier.wait()
            for rnd in range(ROUNDS):
                order = list(range(len(jobs[t])))
                order = order[rnd % len(order) :] + order[: rnd % len(order)]
                for j in order:
                    name, fn, _ = jobs[t][j]
                    if not _close(fn(), sequential[t][j], 1e-5):
                        failures.append((t, rnd, name))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((t, repr(exc)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(NTHREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    assert not failures, f"wrong answers under concurrency (thread, round, op): {failures}"


def test_thread_count_does_not_change_results(isa, restore_threads):
    jobs = _jobs(2) + _jobs(3)
    results = {}
    for n in (1, 2):
        fastconv.set_num_threads(n)
        assert fastconv.get_num_threads() == n
        assert fastconv.info()["num_threads"] == n
        results[n] = [fn() for _, fn, _ in jobs]
    for (name, _, expected), a, b in zip(jobs, results[1], results[2]):
        assert _close(a, expected, 1e-4), name
        assert _close(b, a, 1e-5), f"{name}: 1 vs 2 threads differ"


def test_set_num_threads_roundtrip(restore_threads):
    if not fastconv.info()["openmp"]:
        pytest.skip("built without OpenMP")
    for n in (1, 3, 2):
        fastconv.set_num_threads(n)
        assert fastconv.get_num_threads() == n
        assert fastconv.info()["num_threads"] == n


def _child(code, **env):
    """Runs code in a fresh interpreter; env values of None remove the variable."""
    full = dict(os.environ)
    full.pop("FASTCONV_ISA", None)
    full.update({k: v for k, v in env.items() if v is not None})
    for k in [k for k, v in env.items() if v is None]:
        full.pop(k, None)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=full
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.parametrize("n", [1, 2])
def test_omp_num_threads_respected(n):
    if not fastconv.info()["openmp"]:
        pytest.skip("built without OpenMP")
    out = _child(
        "import fastconv; print(fastconv.get_num_threads(), fastconv.info()['num_threads'])",
        OMP_NUM_THREADS=str(n),
    )
    assert out.split() == [str(n), str(n)]


_WAIT_CHECK = (
    "import os, fastconv; from fastconv import _core; "
    "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), "
    "_core._get_min_thread_nanos())"
)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "1000 None 10000.0"),  # short spin, small kernels split
        ({"OMP_WAIT_POLICY": "passive"}, "None passive 60000.0"),  # the user's choice wins
        ({"GOMP_SPINCOUNT": "50"}, "50 None 10000.0"),
    ],
)
def test_openmp_waiting_defaults_and_user_settings(env, expected):
    clean = {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}
    assert _child(_WAIT_CHECK, **{**clean, **env}) == expected


def test_gil_released_while_a_kernel_runs(restore_threads):
    """A pure-Python counting thread keeps counting while one long conv2d_grad runs."""
    fastconv.set_num_threads(1)  # leave the other core to the counting thread
    for attempt in range(3):  # the machine is shared: a busy neighbour may starve the counter
        try:
            _check_gil_released()
            return
        except AssertionError:
            if attempt == 2:
                raise


def _check_gil_released():
    r = np.random.default_rng(0)
    k = r.standard_normal((3, 3, 64, 64)).astype(np.float32)
    x = r.standard_normal((4, 64, 64, 64)).astype(np.float32)
    t0 = time.perf_counter()
    ops.conv2d_grad(x, k, np.ones((4, 62, 62, 64), np.float32))  # warm up, and time it
    # size the batch so that one call lasts about 0.3 s
    n = int(min(128, max(4, np.ceil(4 * 0.3 / (time.perf_counter() - t0)))))
    x = r.standard_normal((n, 64, 64, 64)).astype(np.float32)
    dy = r.standard_normal((n, 62, 62, 64)).astype(np.float32)

    count = [0]
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    th = threading.Thread(target=counter)
    th.start()
    try:
        c0, t0 = count[0], time.perf_counter()
        time.sleep(0.2)
        rate = (count[0] - c0) / (time.perf_counter() - t0)
        c0, t0 = count[0], time.perf_counter()
        ops.conv2d_grad(x, k, dy)
        during = (count[0] - c0) / (time.perf_counter() - t0)
        duration = time.perf_counter() - t0
    finally:
        stop.set()
        th.join()
    if duration < 0.05:
        pytest.skip(f"kernel too fast ({duration:.3f}s) to observe the GIL")
    # with the GIL held the counter could only run in the few ms of Python around the call
    assert during > 0.3 * rate, (
        f"counter ran at {during:.0f}/s during the kernel vs {rate:.0f}/s idle "
        f"(call {duration:.3f}s): the GIL seems held"
    )


@pytest.mark.parametrize("bad", [1.5, "2", True, None])
def test_set_num_threads_refuses_non_integers(bad, restore_threads):
    before = fastconv.get_num_threads()
    with pytest.raises(TypeError, match="must be an int"):
        fastconv.set_num_threads(bad)
    assert fastconv.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 10**12])
def test_set_num_threads_refuses_out_of_range(bad, restore_threads):
    with pytest.raises(ValueError, match="must be in"):
        fastconv.set_num_threads(bad)
