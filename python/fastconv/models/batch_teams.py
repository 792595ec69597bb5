"""predict's batches on teams of threads, a batch per team at once.

A kernel split across threads ends at a barrier, and between kernels the OpenMP workers fall
asleep: on a virtual machine waking one costs 50-120 us, about 6 times per batch of the MNIST
convnet (bench/experiments/predict_sleeps.py). Teams that each run whole batches with their
share of the threads meet once per pair of batches instead of at every kernel. Only batches
whose every step has a bound inference call run this way (``ExecutionPlan.all_bound``): such
calls keep no state, so teams may run them at once.

Each team runs in a copy of the caller's context (NumPy's error state holds there too) with a
buffer pool of its own (the memory plan: pools are not shared between threads). The first time
a shape runs in teams, the caller runs it alone with a team's thread count first, so that
"auto" measures its convolution algorithms once, undisturbed, and every team then runs the same
ones: a batch's result does not depend on the team that ran it (a lone last batch runs with
all the threads, and the first batch of a shape binds it with all the threads).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import _core
from ..ops._buffers import BufferPool

__all__ = ["Teams", "predict_in_teams"]

MAX_TEAMS = 2  # batches in flight: each holds its own activations


class Teams:
    """``threads`` split into teams (at most ``MAX_TEAMS``) of equal size, so that every team
    runs the same algorithms (a thread an odd split leaves over idles); the calling thread is
    the first."""

    def __init__(self, threads: int, ready: set[tuple[tuple[int, ...], int]]) -> None:
        """``ready``: the (shape, threads per team) that have run as a pair alone, kept by the
        caller between calls (auto's choices are kept for the process)."""
        self.count = max(1, min(MAX_TEAMS, threads))
        self.threads_per_team = max(1, threads // self.count)
        self._pool: ThreadPoolExecutor | None = None
        self._buffers = BufferPool()  # the other team's memory plan
        self._ready = ready

    def run(self, fn: Callable[[np.ndarray], Any], xs: list[np.ndarray]) -> list[Any]:
        """``[fn(x) for x in xs]``, each x on a team of its own, at once (at most ``count``)."""
        if len(xs) < 2 or self.count < 2 or not self._start():
            return [fn(x) for x in xs]  # a lone batch (the last) with all the threads
        new = {(x.shape, self.threads_per_team) for x in xs} - self._ready
        if new:  # one after the other, with a team's threads: auto measures undisturbed
            with _own_thread_count(self.threads_per_team):
                results = [fn(x) for x in xs]
            self._ready.update(new)
            return results
        assert self._pool is not None
        with _own_thread_count(self.threads_per_team):
            futures = [
                self._pool.submit(contextvars.copy_context().run, self._in_team, fn, x)
                for x in xs[1:]
            ]
            try:
                first = fn(xs[0])
            finally:
                others = [future.result() for future in futures]  # never left running
        return [first, *others]

    def _in_team(self, fn: Callable[[np.ndarray], Any], x: np.ndarray) -> Any:
        with self._buffers.active():
            return fn(x)

    def _start(self) -> bool:
        """The other teams' threads; False where none can start (interpreter shutdown)."""
        if self._pool is None:
            try:
                self._pool = ThreadPoolExecutor(
                    self.count - 1,
                    thread_name_prefix="fastconv-team",
                    initializer=_core.set_thread_num_threads,
                    initargs=(self.threads_per_team,),
                )
                self._pool.submit(int).result()
            except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
                self.count = 1
                return False
        return True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._buffers.release_free()


def predict_in_teams(
    plan: Any,
    batches: Iterable[tuple[int, np.ndarray, Any]],
    threads: int,
    begin: Callable[[int], Any],
    end: Callable[[int, np.ndarray, Any], Any],
) -> None:
    """predict's batches ``(step, x, _)`` through ``plan.predict_batch``, two at once on teams
    of ``threads`` where the plan has bound every step for both: ``begin(step)`` as each batch
    is taken, ``end(step, x, y)`` in order as the results come."""
    teams = Teams(threads, plan.team_ready)
    pending: list[tuple[int, np.ndarray, Any]] = []

    def run_pending() -> None:
        xs = [x for _, x, _ in pending]
        for (step, x, _), y in zip(pending, teams.run(plan.predict_batch, xs)):
            end(step, x, y)
        pending.clear()

    try:
        for batch in batches:
            pending.append(batch)
            begin(batch[0])
            if len(pending) == teams.count or not plan.all_bound(batch[1].shape):
                run_pending()  # else its partner next
        if pending:
            run_pending()
    finally:
        teams.close()


class _own_thread_count:
    """The calling thread's kernels use ``n`` threads inside the block (0: the process
    setting), then the process setting again."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        _core.set_thread_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        _core.set_thread_num_threads(0)
