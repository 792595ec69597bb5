"""Data-parallel training over MPI (fastconv.distribution), run as ``mpiexec -n 2`` subprocesses.

Needs the ``mpi`` extra (``pip install ".[test,mpi]"``: mpi4py and the mpich wheel, whose
``mpiexec`` sits next to the Python executable). The MPI tests are skipped only when mpi4py is
not importable; a missing ``mpiexec`` with mpi4py present is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fastconv.distribution import shard_bounds

needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None,
    reason='mpi4py is not installed (pip install ".[mpi]")',
)

TIMEOUT = 60  # seconds for one mpiexec job; each takes a few seconds here


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpi4py is installed but no `mpiexec` was found (install the mpich wheel)")
    return found


def _run(args, cwd, nprocs=None, timeout=TIMEOUT):
    """Run ``python args`` (under ``mpiexec -n nprocs`` when given); return (rc, output, s)."""
    cmd = [sys.executable, *map(str, args)]
    if nprocs is not None:
        cmd = [_mpiexec(), "-n", str(nprocs), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{out}")
    return proc.returncode, out, time.monotonic() - start


def _script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- no MPI needed
def test_shard_bounds_split_evenly_and_cover_the_batch():
    for n in (0, 1, 5, 63, 64):
        for count in (1, 2, 3, 4):
            parts = [shard_bounds(n, i, count) for i in range(count)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(parts[i][1] == parts[i + 1][0] for i in range(count - 1))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1


# --------------------------------------------------------------------------- under mpiexec
TRAIN = """
    import sys
    import numpy as np
    import fastconv
    from fastconv.applications import build_mnist_model
    from fastconv.cli import load_mnist_family

    mode, out = sys.argv[1], sys.argv[2]
    fastconv.set_num_threads(1)
    fastconv.set_conv_algorithm("deterministic")  # the same choices in every process
    if mode == "dist":  # the two added lines
        fastconv.distribution.set_distribution(fastconv.distribution.DataParallel())
    fastconv.set_random_seed(1234)
    (x, y), _ = load_mnist_family("digits")
    model = build_mnist_model()  # the lecture's MNIST convnet, RMSprop
    initial = model.get_weights()
    # Each fit is one step from the same weights, so what is compared is one step's gradients
    # and update: over a trajectory, a rounding-level difference (1 vs 2 processes sum in other
    # orders) flips a ReLU or a max-pool winner within a few steps and the paths part.
    # Batches: 64 -> shards 32/32; 63 -> 32/31; 1 -> 1/0 (an empty shard).
    logs = []
    for start, stop, batch in ((0, 64, 64), (512, 575, 63), (638, 639, 63)):
        model.set_weights(initial)
        h = model.fit(x[start:stop], y[start:stop], batch_size=batch, epochs=1, verbose=0)
        logs += [h.history["loss"][0], h.history["accuracy"][0]]
    logs += model.evaluate(x[1000:1101], y[1000:1101], batch_size=50, verbose=0)
    rank = fastconv.distribution.rank()
    np.savez(f"{out}.{rank}.npz", *model.get_weights(), *initial, logs=np.array(logs))
    if rank == 0:  # one writer: two processes' prints can interleave mid-line
        print("size", fastconv.distribution.num_processes(), flush=True)
"""


@needs_mpi
def test_two_processes_train_like_one_process(tmp_path):
    script = _script(tmp_path, "train.py", TRAIN)
    rc, out, _ = _run([script, "single", "one"], tmp_path)
    assert rc == 0, out
    rc, out, _ = _run([script, "dist", "nompi"], tmp_path)  # DataParallel on 1 process: as before
    assert rc == 0 and "size 1" in out, out
    rc, out, seconds = _run([script, "dist", "two"], tmp_path, nprocs=2)
    assert rc == 0 and "size 2" in out, out
    one, nompi = np.load(tmp_path / "one.0.npz"), np.load(tmp_path / "nompi.0.npz")
    r0, r1 = np.load(tmp_path / "two.0.npz"), np.load(tmp_path / "two.1.npz")
    n_weights = (len(one.files) - 1) // 2
    for k in one.files:
        np.testing.assert_array_equal(nompi[k], one[k], err_msg=k)
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=f"ranks differ: {k}")
    for i in range(n_weights):
        a, b, init = one[f"arr_{i}"], r0[f"arr_{i}"], one[f"arr_{i + n_weights}"]
        assert np.abs(a - init).max() > 1e-3  # really trained
        scale = np.abs(a).max()
        assert np.abs(a - b).max() <= 1e-5 * scale, (i, np.abs(a - b).max() / scale)
    # loss and accuracy averaged over the processes' samples = the one-process values
    np.testing.assert_allclose(r0["logs"], one["logs"], rtol=1e-5)


IMAGES = """
    import json, sys
    import numpy as np
    import fastconv
    from fastconv.utils import image_dataset_from_directory

    mode, folder, out = sys.argv[1:4]
    if mode == "dist":
        from mpi4py import MPI

        fastconv.distribution.set_distribution(fastconv.distribution.DataParallel())
    rank = fastconv.distribution.rank()
    np.random.seed(rank)  # no seed given: rank 0's must be shared
    ds = image_dataset_from_directory(
        folder, color_mode="grayscale", image_size=(2, 2), batch_size=4, verbose=False
    )
    epochs = []
    for _ in range(2):
        batches = []
        for x, y in fastconv.distribution.local_batches(ds):  # what fit reads on this rank
            ids = [int(v) for v in x[:, 0, 0, 0]]
            if mode == "dist":
                ids = sum(MPI.COMM_WORLD.allgather(ids), [])
            batches.append(ids)
        epochs.append(batches)
    if rank == 0:
        json.dump(epochs, open(out, "w"))
"""


@needs_mpi
def test_image_dataset_shards_follow_the_one_process_order(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    for i in range(11):  # 11 images, batches of 4: 4, 4, 3 -> shards 2/2, 2/2, 2/1
        d = folder / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((3, 3), 10 * i, np.uint8)).save(d / f"{i:02d}.png")
    script = _script(tmp_path, "images.py", IMAGES)
    rc, out, _ = _run([script, "single", folder, tmp_path / "one.json"], tmp_path)
    assert rc == 0, out
    rc, out, _ = _run([script, "dist", folder, tmp_path / "two.json"], tmp_path, nprocs=2)
    assert rc == 0, out
    epochs = json.loads((tmp_path / "one.json").read_text())
    assert json.loads((tmp_path / "two.json").read_text()) == epochs
    assert [len(b) for b in epochs[0]] == [4, 4, 3]
    assert sorted(sum(epochs[0], [])) == [10 * i for i in range(11)]
    assert epochs[0] != epochs[1]  # reshuffled each epoch


@needs_mpi
def test_cli_train_mnist_distributed(tmp_path):
    rc, out, _ = _run(
        ["-m", "fastconv", "train", "mnist", "--distributed", "--epochs", "1", "--seed", "0"],
        tmp_path,
        nprocs=2,
    )
    assert rc == 0, out
    assert out.count("Test accuracy:") == 1, out  # only rank 0 prints
    assert out.count("Distributed: 2 MPI processes") == 1, out  # the world size, said once
    accuracy = float(out.split("Test accuracy:")[1].split()[0])
    assert accuracy > 0.6, out


@needs_mpi
def test_cli_train_cats_vs_dogs_distributed(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub, n in (("train", 3), ("validation", 2), ("test", 2)):
        for c in ("cat", "dog"):
            (tmp_path / "data" / sub / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
                Image.fromarray(img).save(tmp_path / "data" / sub / c / f"{c}.{i}.jpg")
    args = ["-m", "fastconv", "train", "cats-vs-dogs", tmp_path / "data", "--distributed"]
    args += ["--epochs", "1", "--batch-size", "4", "--save", tmp_path / "best.keras"]
    rc, out, _ = _run(args, tmp_path, nprocs=2)
    assert rc == 0, out
    assert out.count("Test accuracy:") == 1, out
    assert (tmp_path / "best.keras").is_file()
    assert not list(tmp_path.glob(".fastconv-*"))  # no leftover temporary files


FAIL = """
    import fastconv
    from fastconv.applications import build_mnist_model
    from fastconv.cli import load_mnist_family

    fastconv.set_num_threads(1)
    fastconv.set_conv_algorithm("deterministic")  # the same choices in every process
    fastconv.distribution.set_distribution(fastconv.distribution.DataParallel())
    rank = fastconv.distribution.rank()
    (x, y), _ = load_mnist_family("digits")
    model = build_mnist_model()

    def boom(batch, logs=None):
        if rank == 1 and batch == 2:
            raise RuntimeError("boom on rank 1")

    # long enough to hang for minutes if the failure did not end the job
    model.fit(x[:2048], y[:2048], batch_size=64, epochs=100, verbose=0,
              callbacks=[fastconv.callbacks.LambdaCallback(on_train_batch_begin=boom)])
"""


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    script = _script(tmp_path, "fail.py", FAIL)
    rc, out, seconds = _run([script], tmp_path, nprocs=2, timeout=30)
    assert rc != 0, out
    assert "RuntimeError: boom on rank 1" in out, out
    assert "process 1 of 2 raised RuntimeError" in out, out
    assert seconds < 20, seconds
