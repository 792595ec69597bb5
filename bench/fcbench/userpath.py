"""The user-path comparison: the lecture's two models trained with ``fit`` and run with ``predict``
on in-memory arrays, each framework in a process of its own (fcbench.solo), in alternating rounds.

- fastconv and Keras 3 (TensorFlow CPU backend, from a separate Python: ``keras_python``): the
  lecture's graphs (``fastconv.applications``; Keras gets the builders' source, since its venv
  cannot import fastconv), ``fit`` and ``predict``, no environment settings;
- PyTorch at its best: its plain training loop (channels_last, RMSprop with Keras' settings, same
  losses), eval mode under inference_mode, glibc heap reuse on (fcbench.processes.HEAP_REUSE)
  and a short OpenMP spin (ENVS);
- ONNX Runtime (inference) at its best: the same graph, built from a fastconv model's weights
  (fcbench.baselines.onnx_rt) and checked against that model's ``predict``; workers that sleep.

Every process gets the same thread count. A round runs each framework once per (model, mode), the
order rotated from round to round; the table gives medians and ranges over the rounds, and the
peak RSS of each process (its VmHWM: see fcbench.solo.peak_rss_mib).
"""

from __future__ import annotations

import inspect
import json
import os
import statistics
import sys
from dataclasses import dataclass, field

from fcbench.processes import HEAP_REUSE, ChildFailed, clean_env, describe_env, run_child
from fcbench.tables import markdown_table

FRAMEWORKS = ("fastconv", "torch", "keras", "onnxruntime")
NAMES = {
    "fastconv": "fastconv",
    "torch": "PyTorch",
    "keras": "Keras",
    "onnxruntime": "ONNX Runtime",
}
MODES = {"fit": ("fastconv", "torch", "keras"), "predict": FRAMEWORKS}
# PyTorch at its best: glibc heap reuse, and its OpenMP workers spin briefly before they sleep
# (the value fastconv sets for itself): with libgomp's default spinning, on this shared 2-core
# machine its MNIST training ran at 90-127 img/s against 544-557. Every other framework: nothing.
ENVS = {"torch": {**HEAP_REUSE, "GOMP_SPINCOUNT": "1000"}}
NOTES = {"onnxruntime": "session option intra_op.allow_spinning=0 (fcbench.baselines.onnx_rt)"}
BATCH = {"A": 64, "B": 32}
BUILDERS = ("mnist_convnet", "cats_vs_dogs_convnet")
BUILDERS += ("build_mnist_model", "build_cats_vs_dogs_model")


@dataclass
class Settings:
    rounds: int = 3
    threads: int = 2
    images: dict = field(default_factory=lambda: {"A": 3200, "B": 192})
    epochs: int = 1
    calls: int = 1
    models: tuple = ("A", "B")
    frameworks: tuple = FRAMEWORKS
    keras_python: str | None = None


def quick_settings(**kw):
    return Settings(rounds=1, images={"A": 640, "B": 64}, epochs=1, calls=1, **kw)


def builders_source():
    """The lecture builders' source, for a Keras process that cannot import fastconv."""
    from fastconv.applications import lecture

    parts = [inspect.getsource(getattr(lecture, name)) for name in BUILDERS]
    return "from __future__ import annotations\n\n" + "\n\n".join(parts)


def prepare_onnx(models, tmpdir, threads, log):
    """{model: path of its ONNX graph}, built from a fastconv model's weights; the graph's output
    is checked against that model's predict (the largest difference is logged)."""
    import numpy as np
    from fastconv import applications

    from fcbench.baselines.onnx_rt import ort_predictor, save_onnx
    from fcbench.solo import make_data

    paths = {}
    build = {"A": applications.build_mnist_model, "B": applications.build_cats_vs_dogs_model}
    for which in models:
        model = build[which]()
        path = save_onnx(which, model.get_weights(), os.path.join(tmpdir, f"{which}.onnx"))
        x, _ = make_data(which, 8, seed=1)
        diff = np.abs(model.predict(x, verbose=0) - ort_predictor(path, 8, threads)(x)).max()
        log(f"  ONNX graph {which}: largest difference to fastconv's predict {diff:.2g}")
        if not diff < 1e-3:
            raise RuntimeError(f"ONNX graph {which} disagrees with fastconv: {diff}")
        paths[which] = path
    return paths


def available(settings, log):
    """The frameworks that can run here, and a note for each one that cannot."""
    import importlib.util

    have, notes = [], []
    for fw in settings.frameworks:
        if fw == "keras":
            py = settings.keras_python
            if not py or not os.path.exists(py):
                notes.append(
                    "Keras skipped: no --keras-python (a Python with keras and tensorflow-cpu)"
                )
                continue
        elif fw != "fastconv" and importlib.util.find_spec(fw) is None:
            notes.append(f"{NAMES[fw]} skipped: `{fw}` is not installed")
            continue
        have.append(fw)
    for n in notes:
        log("  " + n)
    return have, notes


def child_spec(settings, fw, which, mode, extra):
    spec = dict(framework=fw, model=which, mode=mode, threads=settings.threads)
    spec.update(images=settings.images[which], batch=BATCH[which], epochs=settings.epochs)
    spec.update(calls=settings.calls)
    if fw == "onnxruntime":
        spec["onnx"] = extra["onnx"][which]
    if fw == "keras":
        spec["builders_file"] = extra["builders_file"]
    return spec


def run_one(settings, fw, which, mode, extra):
    """One child: its answer with its peak RSS (its own VmHWM: wait4's ru_maxrss would include
    this parent's peak) and wall time."""
    python = settings.keras_python if fw == "keras" else sys.executable
    spec = json.dumps(child_spec(settings, fw, which, mode, extra))
    answer, maxrss, wall = run_child(python, "fcbench.solo", spec, clean_env(ENVS.get(fw)))
    answer.update(rss_mib=answer["peak_rss_mib"], wait4_maxrss_mib=maxrss, wall_s=wall)
    return answer


def run_rounds(settings, frameworks, extra, log):
    """Every (round, model, mode, framework) once, the framework order rotated per round:
    a list of records (the children's answers)."""
    records = []
    for r in range(settings.rounds):
        for which in settings.models:
            for mode, fws in MODES.items():
                order = [fw for fw in fws if fw in frameworks]
                k = r % max(1, len(order))
                for fw in order[k:] + order[:k]:
                    what = f"round {r + 1} model {which} {mode:7s} {fw:11s}"
                    try:
                        answer = run_one(settings, fw, which, mode, extra)
                    except ChildFailed as exc:
                        log(f"  {what} FAILED\n{exc}")
                        continue
                    answer["round"] = r + 1
                    records.append(answer)
                    log(
                        f"  {what} {answer['img_s']:9,.1f} img/s  peak RSS "
                        f"{answer['rss_mib']:6,.0f} MiB  ({answer['wall_s']:.0f} s)"
                    )
    return records


def summarize(records):
    """{(model, mode, framework): {"img_s": [...], "rss_mib": [...], "version": ...}}."""
    out = {}
    for rec in records:
        s = rec["spec"]
        key = (s["model"], s["mode"], s["framework"])
        cell = out.setdefault(key, {"img_s": [], "rss_mib": [], "rounds": {}})
        cell["img_s"].append(rec["img_s"])
        cell["rss_mib"].append(rec["rss_mib"])
        cell["rounds"][rec["round"]] = {"img_s": rec["img_s"], "rss_mib": rec["rss_mib"]}
        cell["version"] = rec["info"]["version"]
    return out


def _fmt(values, digits):
    med = statistics.median(values)
    fmt = f"{{:,.{digits}f}}"
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _row(summary, label, which, mode, key, frameworks, higher_better):
    digits = 0 if key == "rss_mib" or which == "A" or mode == "predict" else 1
    cells, meds = [], {}
    for fw in frameworks:
        c = summary.get((which, mode, fw))
        cells.append(_fmt(c[key], digits) if c else "-")
        if c:
            meds[fw] = statistics.median(c[key])
    peers = {fw: v for fw, v in meds.items() if fw != "fastconv"}
    ratio = "-"
    if "fastconv" in meds and peers:
        best = (max if higher_better else min)(peers, key=peers.get)
        ratio = f"{meds['fastconv'] / peers[best]:.2f}x ({NAMES[best]}"
        mine, theirs = (summary[(which, mode, fw)]["rounds"] for fw in ("fastconv", best))
        per = [mine[r][key] / theirs[r][key] for r in sorted(mine) if r in theirs]
        if len(per) > 1 and key == "img_s":
            ratio += f"; per round {min(per):.2f}-{max(per):.2f}"
        ratio += ")"
    return [label, *cells, ratio]


def table(summary, frameworks):
    """The markdown table: per model, training and inference img/s, each process's peak RSS;
    ratio = fastconv / best peer (img/s: above 1 fastconv faster; RSS: below 1 it uses less), of
    the medians, and its range over the rounds (each round's ratio of that round's runs)."""
    versions = {fw: v["version"] for (_, _, fw), v in summary.items()}
    head = [""] + [f"{NAMES[fw]} {versions.get(fw, '')}".strip() for fw in frameworks]
    head = [h + " at its best" if h.startswith("PyTorch") else h for h in head]
    head.append("fastconv vs best peer")
    rows = []
    models = sorted({k[0] for k in summary})
    for which in models:
        name = {"A": "MNIST convnet (A)", "B": "cats-vs-dogs convnet (B)"}[which]
        for mode, what in (("fit", "training (`fit`)"), ("predict", "inference (`predict`)")):
            label = f"{name}, {what}, img/s"
            rows.append(_row(summary, label, which, mode, "img_s", frameworks, True))
        for mode, what in (("fit", "training"), ("predict", "inference")):
            label = f"{which} peak RSS of the {what} process, MiB"
            rows.append(_row(summary, label, which, mode, "rss_mib", frameworks, False))
    return markdown_table(head, rows)


def env_lines(frameworks):
    out = []
    for fw in frameworks:
        note = f" + {NOTES[fw]}" if fw in NOTES else ""
        out.append(f"{NAMES[fw]}: {describe_env(ENVS.get(fw))}{note}")
    return out


def run(settings, log=print):
    """The whole comparison: (records, frameworks measured, notes on those skipped)."""
    import tempfile

    frameworks, notes = available(settings, log)
    with tempfile.TemporaryDirectory() as tmpdir:
        extra = {}
        if "onnxruntime" in frameworks:
            extra["onnx"] = prepare_onnx(settings.models, tmpdir, settings.threads, log)
        if "keras" in frameworks:
            extra["builders_file"] = os.path.join(tmpdir, "builders.py")
            with open(extra["builders_file"], "w") as f:
                f.write(builders_source())
        records = run_rounds(settings, frameworks, extra, log)
    return records, frameworks, notes


def section(settings, records, frameworks, notes, load):
    """Markdown lines: how it was measured, then the table."""
    per = {m: f"{settings.images[m]:,} images, batch {BATCH[m]}" for m in settings.models}
    lines = [
        f"- each framework in a process of its own, {settings.rounds} alternating rounds (each "
        "framework once per round and model, the order rotated); cells: median (min-max) over "
        f"the rounds; {settings.threads} threads everywhere (fastconv.set_num_threads, "
        "torch.set_num_threads + 1 inter-op thread, TF intra-op threads + 1 inter-op, ORT "
        "intra_op_num_threads + sequential execution)",
        "- each process ran with: " + "; ".join(env_lines(frameworks)),
        "- data: random in-memory arrays, "
        + "; ".join(f"{m}: {v}" for m, v in per.items())
        + f"; training: `fit` (shuffled) for one warm-up epoch, then {settings.epochs} timed "
        f"epoch(s); inference: one warm-up `predict` over all images, then {settings.calls} timed",
        "- PyTorch: plain loop, channels_last, RMSprop(lr 1e-3, alpha 0.9, eps 1e-7), "
        "CrossEntropyLoss / BCEWithLogitsLoss; inference in eval mode under inference_mode. "
        "ONNX Runtime: the graph built from a fastconv model's weights (onnx helper API, NHWC in, "
        "transposed to NCHW), all graph optimisations, inference only",
        "- peak RSS: each child's own high-water mark (VmHWM in /proc/self/status at its end; "
        "wait4's ru_maxrss would include the parent's peak, carried over the exec); training "
        "and inference are separate processes, with the data arrays in both",
        f"- load average (1 min) at start {load[0]:.2f}, at end {load[1]:.2f}",
    ]
    lines += [f"- {n}" for n in notes]
    if records:
        lines += ["", table(summarize(records), frameworks)]
    return lines
