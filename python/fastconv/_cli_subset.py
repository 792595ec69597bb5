"""``fastconv make-subset``: the lecture's make_subset script (Kaggle's dogs-vs-cats files
copied into train/validation/test folders), moved out of ``cli.py`` to keep it short."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ._cli_types import CommandError, per_class_count

__all__ = ["subset_plan", "make_subset", "cmd_make_subset"]


def subset_plan(original_dir, new_base_dir, train=1000, validation=500, test=1000):
    """The lecture's make_subset as a list of (src, dst) copies: train gets cat.0..cat.N-1 (and
    dogs), validation the next ``validation``, test the next ``test``. Raises CommandError,
    before anything is copied, if a source file is missing or a destination folder exists."""
    original_dir, new_base_dir = Path(original_dir), Path(new_base_dir)
    for name, n in (("--train", train), ("--validation", validation), ("--test", test)):
        if n < 0:
            raise CommandError(f"{name} must be >= 0, got {n}")
    if not original_dir.is_dir():
        raise CommandError(f"ORIGINAL_DIR {original_dir} is not a directory")
    plan, missing, existing = [], [], []
    start = 0
    for subset_name, count in (("train", train), ("validation", validation), ("test", test)):
        end = start + count
        for category in ("cat", "dog"):
            dst_dir = new_base_dir / subset_name / category
            if dst_dir.exists():
                existing.append(str(dst_dir))
            for i in range(start, end):
                fname = f"{category}.{i}.jpg"
                src = original_dir / fname
                if not src.is_file():
                    missing.append(fname)
                plan.append((src, dst_dir / fname))
        start = end
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise CommandError(
            f"{len(missing)} source file(s) missing from {original_dir}: {shown}. "
            "Nothing was copied."
        )
    if existing:
        raise CommandError(
            f"destination folder(s) already exist: {', '.join(existing)}. "
            "Remove them or choose another NEW_BASE_DIR. Nothing was copied."
        )
    return plan


def make_subset(original_dir, new_base_dir, train=1000, validation=500, test=1000):
    """Copy as the lecture's script does; returns the number of files copied."""
    plan = subset_plan(original_dir, new_base_dir, train, validation, test)
    made = set()
    for src, dst in plan:
        if dst.parent not in made:
            os.makedirs(dst.parent)
            made.add(dst.parent)
        shutil.copyfile(src, dst)
    # empty subsets still get their folders, as os.makedirs in the lecture's loop does
    for subset_name in ("train", "validation", "test"):
        for category in ("cat", "dog"):
            d = Path(new_base_dir) / subset_name / category
            if d not in made:
                os.makedirs(d)
    return len(plan)


def cmd_make_subset(args):
    n = make_subset(args.original_dir, args.new_base_dir, args.train, args.validation, args.test)
    v0 = args.train
    t0 = args.train + args.validation
    print(
        f"Copied {n} files into {args.new_base_dir}: "
        f"train {0}-{v0 - 1}, validation {v0}-{t0 - 1}, test {t0}-{t0 + args.test - 1} "
        "of each class (cat, dog)."
    )
    return 0


def _add_make_subset(sub):
    p = sub.add_parser(
        "make-subset",
        help="copy cat.N.jpg/dog.N.jpg into train/validation/test folders (the lecture's script)",
        description="Copy Kaggle's dogs-vs-cats files into NEW_BASE_DIR/{train,validation,test}/"
        "{cat,dog} as the lecture's make_subset does: consecutive index ranges, train first.",
    )
    p.add_argument("original_dir", metavar="ORIGINAL_DIR", help="folder with cat.N.jpg, dog.N.jpg")
    p.add_argument("new_base_dir", metavar="NEW_BASE_DIR", help="folder to create the subsets in")
    for name, default in (("train", 1000), ("validation", 500), ("test", 1000)):
        p.add_argument(
            f"--{name}", type=per_class_count, default=default, help=f"{name} images per class"
        )
    p.set_defaults(func=cmd_make_subset)
