"""The command line's argument types and help layout: integers in a range, output files checked
before any training, every option's default in its help, ``--version``."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from .runtime import MAX_THREADS, __version__

__all__ = [
    "THREADS_HELP",
    "Parser",
    "VersionAction",
    "per_class_count",
    "int_in",
    "output_file",
    "positive_int",
    "seed",
    "threads",
    "version_text",
]


class CommandError(Exception):
    """A user-facing error: printed as ``fastconv <command>: error: ...``, exit status 2."""


def int_in(low, high):
    """An argparse type: an integer in [low, high], else a one-line usage error (exit status 2)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


INT32_MAX = 2**31 - 1
positive_int = int_in(1, INT32_MAX)
per_class_count = int_in(0, 10**7)  # images per class to copy
seed = int_in(0, 2**32 - 1)  # the seeds NumPy's legacy generator and Keras accept


THREADS_HELP = "kernel threads (default: OMP_NUM_THREADS, else every core)"


def threads(text):
    return int_in(1, MAX_THREADS)(text)


def output_file(suffix=""):
    """An argparse type: a file (ending in ``suffix``) in a folder that exists, refused before
    any training."""

    def parse(text):
        if not text.endswith(suffix):
            raise argparse.ArgumentTypeError(f"must name a {suffix} file, got {text!r}")
        folder = Path(text).expanduser().resolve().parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: the folder {folder} does not exist")
        return text

    parse.__name__ = f"{suffix} file" if suffix else "file"
    return parse


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help already states it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
        ):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-commands' help shows defaults too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def version_text():
    """``fastconv X.Y.Z`` from the installed metadata, else from the extension."""
    try:
        return f"fastconv {metadata.version('fastconv')}"
    except metadata.PackageNotFoundError:  # a source tree on sys.path
        return f"fastconv {__version__}"


class VersionAction(argparse.Action):
    """``--version``: print the version and exit."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()
