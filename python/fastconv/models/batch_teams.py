"""predict's batches on teams of threads, a batch per team at once.

A kernel split across threads ends at a barrier, and between kernels the OpenMP workers fall
asleep: on a virtual machine waking one costs 50-120 us, about 6 times per batch of the MNIST
convnet (bench/experiments/predict_sleeps.py). Teams that each run whole batches with their
share of the threads meet once per group of batches instead of at every kernel. Only batches
whose every step has a bound inference call run this way (``ExecutionPlan.all_bound``): such
calls keep no state, so teams may run them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

import numpy as np

from .. import _core

__all__ = ["Teams", "groups_of"]

MAX_TEAMS = 2  # batches in flight: each holds its own activations


class Teams:
    """``threads`` split into teams (at most ``MAX_TEAMS``); the calling thread is the first."""

    def __init__(self, threads: int) -> None:
        self.count = max(1, min(MAX_TEAMS, threads))
        self.threads_per_team = max(1, threads // self.count)
        self._pool: ThreadPoolExecutor | None = None

    def run(
        self, fn: Callable[[np.ndarray], Any], xs: list[np.ndarray], at_once: bool
    ) -> list[Any]:
        """``[fn(x) for x in xs]``; with ``at_once``, each x on a team of its own, at once."""
        if not at_once or len(xs) < 2 or self.count < 2:
            return [fn(x) for x in xs]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.count - 1,
                thread_name_prefix="fastconv-team",
                initializer=_core.set_thread_num_threads,
                initargs=(self.threads_per_team,),
            )
        _core.set_thread_num_threads(self.threads_per_team)
        try:
            futures = [self._pool.submit(fn, x) for x in xs[1:]]
            try:
                first = fn(xs[0])
            finally:
                others = [future.result() for future in futures]  # never left running
            return [first, *others]
        finally:
            _core.set_thread_num_threads(0)  # the process setting again

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def groups_of(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive groups of ``size`` items (the last may be shorter)."""
    iterator = iter(items)
    while group := list(islice(iterator, size)):
        yield group
