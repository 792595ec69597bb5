"""Input pipeline throughput: image_dataset_from_directory vs. what training consumes.

Issue 4's bar: the pipeline must deliver at least 3x the images per second that a training step
of the lecture's 180x180 model consumes on this machine, so training never waits on input.

Measured on a folder of generated photo-like JPEGs of Kaggle-like sizes (300-500 px a side,
quality 90), at image_size=(180, 180), batch_size=32:

- ``pipeline``: one epoch of ``image_dataset_from_directory`` (thread pool + prefetch, JPEG draft
  decoding), and the same without draft decoding (``USE_JPEG_DRAFT = False``);
- ``naive``: a single-threaded loop: ``Image.open``, ``convert("RGB")``, ``resize`` (bilinear),
  ``np.asarray`` per file, stacked into float32 batches;
- ``train step``: ``model.train_on_batch`` of the lecture's 180x180 model on a (32, 180, 180, 3)
  batch (needs fastconv's models; skipped while they are absent);
- ``overlap``: an epoch of ``train_on_batch`` fed by the dataset, and the share of its time spent
  waiting for the next batch;
- ``draft error``: mean absolute difference (0..255 scale) of draft vs. full decoding.

Run:  python bench/bench_input_pipeline.py [--images 256] [--threads N]
  or: pytest bench/bench_input_pipeline.py --benchmark-only   (pytest-benchmark)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from fastconv.applications import build_cats_vs_dogs_model

IMAGE_SIZE = (180, 180)
BATCH_SIZE = 32


def make_jpeg_folder(root, n_images=256, seed=0, sizes=(300, 500)):
    """root/cat/cat.N.jpg and root/dog/dog.N.jpg: smooth photo-like pictures with grain."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for kind in ("cat", "dog"):
        os.makedirs(os.path.join(root, kind), exist_ok=True)
    for i in range(n_images):
        kind = ("cat", "dog")[i % 2]
        w, h = (int(s) for s in rng.integers(sizes[0], sizes[1] + 1, 2))
        low = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        tint = np.array([40, 0, -40] if kind == "cat" else [-40, 0, 40], np.float32)
        img = img * 0.7 + tint + rng.normal(0, 12, (h, w, 3))
        path = os.path.join(root, kind, f"{kind}.{i // 2}.jpg")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    return root


def pipeline_epoch(ds):
    n = 0
    for images, _ in ds:
        n += len(images)
    return n


def naive_epoch(paths):
    from PIL import Image

    n = 0
    for start in range(0, len(paths), BATCH_SIZE):
        batch = []
        for p in paths[start : start + BATCH_SIZE]:
            img = Image.open(p).convert("RGB").resize(IMAGE_SIZE[::-1], Image.Resampling.BILINEAR)
            batch.append(np.asarray(img))
        n += len(np.stack(batch).astype(np.float32))
    return n


def _timed(fn, repeats=2):
    best = float("inf")
    result = None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return result, best


def models_available():
    try:
        import fastconv

        return all(hasattr(fastconv, n) for n in ("Input", "Model", "layers"))
    except ImportError:
        return False


def dataset(folder, shuffle=True):
    from fastconv.utils import image_dataset_from_directory

    return image_dataset_from_directory(
        folder,
        image_size=IMAGE_SIZE,
        batch_size=BATCH_SIZE,
        seed=0,
        shuffle=shuffle,
        verbose=False,
    )


def train_step_rate(model, steps=3):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH_SIZE, *IMAGE_SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, BATCH_SIZE).astype(np.float32)
    model.train_on_batch(x, y)  # warm-up: workspaces, first-touch
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * BATCH_SIZE / (time.perf_counter() - t)


def overlap(model, ds, max_batches=6):
    """Train on the dataset's batches; return (share of time waiting for input, images/s)."""
    waited = 0.0
    n = 0
    start = time.perf_counter()
    it = iter(ds)
    for _ in range(max_batches):
        t = time.perf_counter()
        try:
            images, labels = next(it)
        except StopIteration:
            break
        waited += time.perf_counter() - t
        model.train_on_batch(images, labels)
        n += len(images)
    it.close()
    total = time.perf_counter() - start
    return waited / total, n / total


def draft_error(folder):
    from fastconv.utils import image_dataset as m

    saved = m.USE_JPEG_DRAFT
    try:
        m.USE_JPEG_DRAFT = True
        a = np.concatenate([x for x, _ in dataset(folder, shuffle=False)])
        m.USE_JPEG_DRAFT = False
        b = np.concatenate([x for x, _ in dataset(folder, shuffle=False)])
    finally:
        m.USE_JPEG_DRAFT = saved
    d = np.abs(a - b)
    return float(d.mean()), float(np.percentile(d, 99))


def measure_all(folder, with_training=True):
    from fastconv.utils import image_dataset as m

    ds = dataset(folder)
    paths = list(ds.file_paths)
    pipeline_epoch(ds)  # warm the page cache
    r = {"images": len(paths), "workers": ds.num_workers}
    n, s = _timed(lambda: pipeline_epoch(ds))
    r["pipeline"] = n / s
    m.USE_JPEG_DRAFT = False
    try:
        n, s = _timed(lambda: pipeline_epoch(ds))
        r["pipeline_nodraft"] = n / s
    finally:
        m.USE_JPEG_DRAFT = True
    n, s = _timed(lambda: naive_epoch(paths), repeats=1)
    r["naive"] = n / s
    r["draft_mae"], r["draft_p99"] = draft_error(folder)
    if with_training and models_available():
        model = build_cats_vs_dogs_model()
        r["train_step"] = train_step_rate(model)
        r["wait_share"], r["fed_rate"] = overlap(model, ds)
    return r


def report(r):
    lines = [
        f"images: {r['images']} JPEGs 300-500 px -> {IMAGE_SIZE}, batch {BATCH_SIZE}, "
        f"{r['workers']} decode threads, {os.cpu_count()} cores",
        f"pipeline (draft)      {r['pipeline']:8.1f} images/s",
        f"pipeline (no draft)   {r['pipeline_nodraft']:8.1f} images/s",
        f"naive PIL loop        {r['naive']:8.1f} images/s",
        f"pipeline / naive      {r['pipeline'] / r['naive']:8.2f}x",
        f"draft vs full decode  mean |diff| {r['draft_mae']:.2f}, 99th pct {r['draft_p99']:.1f} "
        "(0..255 scale)",
    ]
    if "train_step" in r:
        lines += [
            f"train step consumes   {r['train_step']:8.1f} images/s (lecture 180x180 model)",
            f"pipeline / training   {r['pipeline'] / r['train_step']:8.2f}x  (goal >= 3x)",
            f"fed by the pipeline   {r['fed_rate']:8.1f} images/s, "
            f"{100 * r['wait_share']:.1f}% of the time waiting for input",
        ]
    else:
        lines.append("train step: fastconv models not available, not measured")
    return "\n".join(lines)


# ------------------------------------------------------------------------- pytest-benchmark
try:
    import pytest
except ImportError:  # plain `python bench/bench_input_pipeline.py`
    pytest = None

if pytest is not None:
    _results = {}

    def _record(benchmark, key, images):
        """images/s of the fastest round (nothing with --benchmark-disable: no statistics)."""
        if benchmark.stats is None:
            return
        _results[key] = images / benchmark.stats.stats.min
        benchmark.extra_info["images_per_s"] = _results[key]

    @pytest.fixture(scope="module")
    def folder(tmp_path_factory):
        root = str(tmp_path_factory.mktemp("jpegs"))
        make_jpeg_folder(root, 128)
        pipeline_epoch(dataset(root))  # page cache
        return root

    def test_pipeline(benchmark, folder):
        ds = dataset(folder)
        n = benchmark.pedantic(pipeline_epoch, args=(ds,), rounds=3, iterations=1)
        _record(benchmark, "pipeline", n)

    def test_naive_loop(benchmark, folder):
        paths = dataset(folder).file_paths
        n = benchmark.pedantic(naive_epoch, args=(paths,), rounds=2, iterations=1)
        _record(benchmark, "naive", n)

    def test_train_step(benchmark):
        if not models_available():
            pytest.skip("fastconv models are not available")
        model = build_cats_vs_dogs_model()
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (BATCH_SIZE, *IMAGE_SIZE, 3)).astype(np.float32)
        y = rng.integers(0, 2, BATCH_SIZE).astype(np.float32)
        model.train_on_batch(x, y)
        benchmark.pedantic(model.train_on_batch, args=(x, y), rounds=3, iterations=1)
        _record(benchmark, "train_step", BATCH_SIZE)

    def test_ratios():
        if "pipeline" not in _results or "naive" not in _results:
            pytest.skip("run the benchmarks above first")
        ratio = _results["pipeline"] / _results["naive"]
        print(
            f"\npipeline {_results['pipeline']:.1f} img/s, naive {_results['naive']:.1f} "
            f"img/s: {ratio:.2f}x"
        )
        if "train_step" in _results:
            train_ratio = _results["pipeline"] / _results["train_step"]
            print(
                f"training consumes {_results['train_step']:.1f} img/s: "
                f"pipeline delivers {train_ratio:.1f}x that"
            )
            assert train_ratio >= 3.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="fastconv kernel threads")
    parser.add_argument("--no-training", action="store_true")
    args = parser.parse_args()
    if args.threads:
        import fastconv

        fastconv.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        make_jpeg_folder(root, args.images)
        print(f"generated {args.images} JPEGs in {time.perf_counter() - t:.1f} s")
        print(report(measure_all(root, with_training=not args.no_training)))


if __name__ == "__main__":
    main()
