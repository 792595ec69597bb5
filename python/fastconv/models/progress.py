"""Progress output of fit, evaluate and predict (Keras' verbose levels)."""

from __future__ import annotations

import sys
import time

from .. import distribution

__all__ = ["Progress", "format_logs", "resolve_verbose"]


def resolve_verbose(verbose):
    if verbose == "auto":
        verbose = 1
    if verbose in (0, 1, 2) and not isinstance(verbose, float):
        return int(verbose) if distribution.is_chief() else 0  # data-parallel: rank 0 reports
    raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class Progress:
    """verbose=1: one tqdm bar per epoch updated in place; 2: one line per epoch; 0: silent."""

    def __init__(self, verbose, total, header=None):
        self.verbose = verbose
        self.total = total
        self.start = time.perf_counter()
        self.n = 0
        self.bar = None
        if verbose == 1:
            from tqdm.auto import tqdm

            if header:
                print(header, flush=True)
            fmt = (
                "{n_fmt}/{total_fmt} [{bar:20}] {elapsed}{postfix}"
                if total
                else "{n_fmt} steps [{elapsed}]{postfix}"
            )
            # A fixed-width bar and no column limit: the loss and metrics at the end of the line
            # are never cut off by a narrow terminal (the line wraps instead, as Keras' does).
            self.bar = tqdm(total=total, file=sys.stdout, bar_format=fmt, leave=True, ncols=None)
        elif verbose == 2 and header:
            self.header = header
        self.header = header

    def _postfix(self, logs):
        per = (time.perf_counter() - self.start) / max(self.n, 1)
        unit = f"{per * 1000:.0f}ms/step" if per < 1 else f"{per:.2f}s/step"
        text = format_logs(logs)
        return f" {unit}" + (f" - {text}" if text else "")

    def update(self, logs):
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(logs), refresh=False)
            self.bar.update(1)

    def close(self, logs):
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(logs), refresh=False)
            self.bar.refresh()
            self.bar.close()
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            head = f"{self.header}\n" if self.header else ""
            print(f"{head}{self.n}/{self.total or self.n} - {elapsed:.0f}s -" + self._postfix(logs))
