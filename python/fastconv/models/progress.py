"""Progress output of fit, evaluate and predict, and of the command line: one rule, Keras'.

- ``verbose=0``: silent.
- ``verbose=1`` (what ``"auto"`` means, as in Keras): a live bar redrawn in place when the output
  is a terminal or a notebook; otherwise (a file, a pipe, a CI log) one line per epoch, written
  when the epoch ends, with no carriage returns.
- ``verbose=2``: one line per epoch, wherever the output goes.

A data-parallel job prints from rank 0 only.
"""

from __future__ import annotations

import os
import sys
import time

from .. import distribution

__all__ = ["Progress", "format_logs", "resolve_verbose", "dynamic_display"]


def resolve_verbose(verbose):
    """``"auto"`` -> 1 (Keras' rule); 0, 1 or 2 kept; anything else is a ValueError."""
    if verbose == "auto":
        verbose = 1
    if verbose in (0, 1, 2) and not isinstance(verbose, float):
        return int(verbose) if distribution.is_chief() else 0  # data-parallel: rank 0 reports
    raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")


def dynamic_display(stream=None) -> bool:
    """Whether a bar may be redrawn in place on ``stream`` (default ``sys.stdout``): a terminal
    or a Jupyter kernel, as Keras' Progbar decides. ``FASTCONV_PROGRESS=lines`` forces lines."""
    if os.environ.get("FASTCONV_PROGRESS", "").lower() == "lines":
        return False
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed stream
        return False
    return "ipykernel" in sys.modules


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class Progress:
    """One epoch's (or one evaluate/predict call's) progress, by the module's rule: a tqdm bar
    updated in place on a terminal at verbose 1; one line when it closes at verbose 2, or at
    verbose 1 when the output is not a terminal; nothing at verbose 0."""

    def __init__(self, verbose, total, header=None):
        self.verbose = verbose
        self.total = total
        self.header = header
        self.start = time.perf_counter()
        self.n = 0
        self.bar = None
        if verbose == 1 and dynamic_display():
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
        elif self.verbose in (1, 2):
            elapsed = time.perf_counter() - self.start
            head = f"{self.header}\n" if self.header else ""
            line = f"{self.n}/{self.total or self.n} - {elapsed:.0f}s -" + self._postfix(logs)
            print(head + line, flush=True)
