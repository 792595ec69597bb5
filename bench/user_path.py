"""The user's path: the lecture's two convnets trained with ``fit`` and run with ``predict`` on
in-memory arrays, fastconv against Keras 3 (TensorFlow), PyTorch at its best and ONNX Runtime,
each framework in a process of its own (fcbench.userpath, fcbench.solo).

    python bench/user_path.py [--quick] [--rounds N] [--threads 2] [--models A,B]
                              [--frameworks fastconv,torch,keras,onnxruntime]
                              [--keras-python /opt/keras-venv/bin/python] [--json out.json]
    python bench/user_path.py --table-from out.json [--skip-rounds 1]   # the table again

Keras and TensorFlow live in a venv of their own (they would change the system Python's NumPy):
``python3 -m venv /opt/keras-venv && /opt/keras-venv/bin/pip install keras tensorflow-cpu h5py``.
Without --keras-python, Keras is skipped and the report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fcbench import userpath  # noqa: E402
from fcbench.machine import loadavg, machine_name  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round, few images (a smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework")
    p.add_argument("--models", default="A,B", help="A, B or A,B")
    p.add_argument("--frameworks", default=",".join(userpath.FRAMEWORKS))
    p.add_argument("--keras-python", default=None, help="a Python with keras + tensorflow-cpu")
    p.add_argument("--json", default=None, help="also write every record here")
    p.add_argument("--table-from", default=None, help="print the table of a --json file")
    p.add_argument("--skip-rounds", default="", help="with --table-from: rounds to leave out")
    return p.parse_args(argv)


def settings_from(args):
    kw = dict(
        threads=args.threads,
        models=tuple(m.strip().upper() for m in args.models.split(",")),
        frameworks=tuple(f.strip() for f in args.frameworks.split(",")),
        keras_python=args.keras_python,
    )
    s = userpath.quick_settings(**kw) if args.quick else userpath.Settings(**kw)
    if args.rounds:
        s.rounds = args.rounds
    return s


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def table_from(path, skip):
    """The section again from a --json file, leaving out the rounds in ``skip`` (e.g. rounds
    measured before the extension was rebuilt under the run)."""
    with open(path) as f:
        doc = json.load(f)
    records = [r for r in doc["records"] if r["round"] not in skip]
    settings = userpath.Settings(**doc["settings"])
    settings.rounds -= len(skip)
    frameworks = [fw for fw in userpath.FRAMEWORKS if fw in settings.frameworks]
    measured = {r["spec"]["framework"] for r in records}
    frameworks = [fw for fw in frameworks if fw in measured]
    print("\n".join(userpath.section(settings, records, frameworks, [], doc["load"])))


def main(argv=None):
    args = parse_args(argv)
    if args.table_from:
        skip = {int(r) for r in args.skip_rounds.split(",") if r.strip()}
        return table_from(args.table_from, skip)
    settings = settings_from(args)
    load0, t0 = loadavg(), time.time()
    records, frameworks, notes = userpath.run(settings, log)
    load = (load0, loadavg())
    lines = [
        "# The user's path: `fit` and `predict`, each framework in its own process",
        "",
        f"- machine: {machine_name()}, {os.cpu_count()} logical CPUs; {time.time() - t0:.0f} s",
    ]
    lines += userpath.section(settings, records, frameworks, notes, load)
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(settings=vars(settings), load=load, records=records), f, indent=1)
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
