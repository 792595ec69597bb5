"""Hardening (issue 13): fork safety, the private kernel module's own checks, bounded loading,
stale temporary files and durable saves, command-line errors, thread control shared with OpenMP.

Whatever could hang or crash the interpreter runs in a child process with a time limit, so a
regression fails the test instead of blocking CI or killing pytest.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import fastconv
import numpy as np
import pytest
from fastconv import _core
from fastconv.models import saving

CHILD_TIMEOUT = 120


def run_python(code, timeout=CHILD_TIMEOUT, **env):
    """Runs ``code`` in a fresh interpreter; a hang past ``timeout`` fails the test."""
    full = {k: v for k, v in os.environ.items() if k != "FASTCONV_ISA"}
    full.update(env)
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child process hung (> {timeout} s): {(e.stderr or b'')[-2000:]!r}")


# ---------------------------------------------------------------------------- 1. fork safety
_TRAIN_THEN_FORK = """
import multiprocessing as mp, os, sys
import numpy as np
import fastconv
from fastconv import layers, ops

def work(seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((4, 20, 20, 3)).astype(np.float32)
    k = r.standard_normal((3, 3, 3, 16)).astype(np.float32)
    dy = r.standard_normal((4, 18, 18, 16)).astype(np.float32)
    ops.conv2d_grad(x, k, dy)
    return float(ops.conv2d(x, k).sum())

if __name__ == "__main__":
    fastconv._core._set_min_thread_nanos(0.0)  # every kernel splits over the threads
    fastconv.set_num_threads(2)
    model = fastconv.Sequential([
        fastconv.Input((12, 12, 1)), layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    r = np.random.default_rng(0)
    model.fit(r.random((64, 12, 12, 1), np.float32), r.integers(0, 3, 64), epochs=1,
              batch_size=16, verbose=0)
    expected = [work(s) for s in range(4)]
    with mp.get_context(sys.argv[1]).Pool(2) as pool:
        got = pool.map(work, range(4))
    assert np.allclose(got, expected, rtol=1e-5), (got, expected)
    assert fastconv.get_num_threads() == 2  # the parent keeps its threads
    assert work(0) == expected[0]
    print("ok")
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_after_training(method, tmp_path):
    script = tmp_path / "mp_after_training.py"
    script.write_text(_TRAIN_THEN_FORK)
    try:
        proc = subprocess.run(
            [sys.executable, str(script), method],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"multiprocessing ({method}) after training hung")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_os_fork_child_runs_kernels_on_one_thread():
    proc = run_python(
        """
        import os, numpy as np, fastconv
        from fastconv import ops
        fastconv._core._set_min_thread_nanos(0.0)
        fastconv.set_num_threads(2)
        x = np.ones((2, 16, 16, 4), np.float32); k = np.ones((3, 3, 4, 8), np.float32)
        y = ops.conv2d(x, k)  # a team of 2 threads has run
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(ops.conv2d(x, k), y) and fastconv.get_num_threads() == 1
            ok = ok and fastconv.info()["forked_child_single_thread"]
            fastconv.set_num_threads(2)  # still one thread: no new team after a fork
            ok = ok and fastconv.get_num_threads() == 1 and np.array_equal(ops.conv2d(x, k), y)
            os._exit(0 if ok else 3)
        deadline = os.times().elapsed + 60
        while os.times().elapsed < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, 9)
            raise SystemExit("the forked child hung")
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert fastconv.get_num_threads() == 2 and not fastconv.info()["forked_child_single_thread"]
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# ------------------------------------------------------ 2. the private kernel module's checks
_F = np.float32


def _z(*shape):
    return np.zeros(shape, _F)


def _core_calls():
    """(name, function, arrays, scalar arguments): one valid call per _core entry point."""
    one = (1, 1)
    return [
        ("conv2d_forward", _core.conv2d_forward,
         [_z(1, 4, 4, 2), _z(3, 3, 2, 3), _z(3), _z(1, 2, 2, 3)], [one, one, (0, 0), False]),
        ("conv2d_forward_max_pool", _core.conv2d_forward_max_pool,
         [_z(1, 4, 4, 2), _z(1, 1, 2, 3), _z(3), _z(1, 4, 4, 3), _z(1, 2, 2, 3)],
         [(4, 4), one, one, (0, 0), (2, 2), True]),
        ("conv2d_backward_input", _core.conv2d_backward_input,
         [_z(1, 2, 2, 3), _z(3, 3, 2, 3), _z(1, 4, 4, 2)], [one, one, (0, 0)]),
        ("conv2d_backward_weight", _core.conv2d_backward_weight,
         [_z(1, 4, 4, 2), _z(1, 2, 2, 3), _z(3, 3, 2, 3), _z(3)], [one, one, (0, 0)]),
        ("conv2d_backward_weight_through_max_pool",
         _core.conv2d_backward_weight_through_max_pool,
         [_z(1, 4, 4, 2), _z(1, 4, 4, 3), _z(1, 2, 2, 3), _z(1, 1, 2, 3), _z(3)],
         [one, one, (0, 0), (2, 2)]),
        ("max_pool2d_forward", _core.max_pool2d_forward,
         [_z(1, 4, 4, 2), _z(1, 2, 2, 2)], [(2, 2), (2, 2), (0, 0)]),
        ("avg_pool2d_forward", _core.avg_pool2d_forward,
         [_z(1, 4, 4, 2), _z(1, 2, 2, 2)], [(2, 2), (2, 2), (0, 0)]),
        ("max_pool2d_backward", _core.max_pool2d_backward,
         [_z(1, 4, 4, 2), _z(1, 2, 2, 2), _z(1, 4, 4, 2)], [(2, 2), (2, 2), (0, 0), False]),
        ("avg_pool2d_backward", _core.avg_pool2d_backward,
         [_z(1, 2, 2, 2), _z(1, 4, 4, 2)], [(2, 2), (2, 2), (0, 0)]),
        ("dense_forward", _core.dense_forward, [_z(2, 3), _z(3, 4), _z(4), _z(2, 4)], [False]),
        ("dense_backward", _core.dense_backward,
         [_z(2, 3), _z(3, 4), _z(2, 4), _z(2, 3), _z(3, 4), _z(4)], []),
        ("relu_forward", _core.relu_forward, [_z(5), _z(5)], []),
        ("relu_backward", _core.relu_backward, [_z(5), _z(5), _z(5)], []),
        ("softmax", _core.softmax, [_z(2, 3), _z(2, 3)], []),
        ("sigmoid", _core.sigmoid, [_z(5), _z(5)], []),
        ("softmax_cross_entropy", _core.softmax_cross_entropy,
         [_z(2, 3), _z(2, 3), _z(2), _z(2, 3)], []),
        ("sigmoid_binary_cross_entropy", _core.sigmoid_binary_cross_entropy,
         [_z(5), _z(5), _z(5), _z(5)], []),
        ("sgd_update", _core.sgd_update, [_z(5), _z(5), _z(5)], [0.1, 0.9, False]),
        ("rmsprop_update", _core.rmsprop_update, [_z(5), _z(5), _z(5)], [0.1, 0.9, 1e-7]),
        ("adam_update", _core.adam_update, [_z(5), _z(5), _z(5), _z(5)],
         [0.1, 0.9, 0.999, 1e-7, 1]),
    ]  # fmt: skip


def _mutations(arrays, scalars):
    """Every array with each extent made 0 in turn, and every integer pair argument made huge,
    negative or zero."""
    for i, a in enumerate(arrays):
        for d in range(a.ndim):
            shape = list(a.shape)
            shape[d] = 0
            yield [*arrays[:i], _z(*shape), *arrays[i + 1 :]], scalars, f"array {i} dim {d} = 0"
    for j, s in enumerate(scalars):
        if isinstance(s, tuple):
            for value in (2**62, 2**63 - 1, 2**40, -1, 0):
                for k in range(2):
                    bad = list(s)
                    bad[k] = value
                    yield arrays, [*scalars[:j], tuple(bad), *scalars[j + 1 :]], f"{j}[{k}]={value}"


def _fuzz_core():
    """Runs every mutation; returns the list of calls that raised something other than
    ValueError/TypeError/MemoryError (a crash ends the process instead)."""
    bad = []
    for name, fn, arrays, scalars in _core_calls():
        fn(*arrays, *scalars)  # the valid call itself works
        for arrs, scal, what in _mutations(arrays, scalars):
            try:
                fn(*[a.copy() for a in arrs], *scal)
            except (ValueError, TypeError, MemoryError):
                pass
            except Exception as e:  # noqa: BLE001 - collected
                bad.append(f"{name} {what}: {type(e).__name__}: {e}")
    return bad


def test_core_entry_points_refuse_empty_and_huge_sizes():
    """Each _core entry point with zero extents and huge, negative or zero strides, dilations,
    paddings and pool sizes: ValueError (or a correct no-op), never a crash (SIGFPE today)."""
    proc = run_python(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import test_hardening, fastconv
        fastconv._core._set_min_thread_nanos(0.0)
        for isa in fastconv.info()["isas_available"]:
            fastconv._core.set_isa(isa)
            bad = test_hardening._fuzz_core()
            assert not bad, bad
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (
        f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    )


@pytest.mark.parametrize("fn", ["conv2d_backward_weight", "conv2d_backward_input"])
def test_core_zero_height_output_gradient_raises(fn):
    proc = run_python(
        f"""
        import numpy as np
        from fastconv import _core
        x = np.zeros((1, 4, 4, 2), np.float32); k = np.zeros((3, 3, 2, 3), np.float32)
        dy = np.zeros((1, 0, 4, 3), np.float32)
        try:
            if "{fn}" == "conv2d_backward_weight":
                _core.conv2d_backward_weight(x, dy, k, None, (1, 1), (1, 1), (1, 1))
            else:
                _core.conv2d_backward_input(dy, k, x, (1, 1), (1, 1), (1, 1))
        except ValueError as e:
            print("ValueError", e)
        """
    )
    assert proc.returncode == 0 and "ValueError" in proc.stdout, (proc.returncode, proc.stderr)


def test_same_pooling_with_a_pool_far_larger_than_the_image():
    """'same' pooling takes any pool size; the kernels' window storage once grew with the pool
    (a 2**20 pool: std::bad_alloc, process terminated; 2**32: a product wrapping to 0)."""
    proc = run_python(
        """
        import numpy as np
        from fastconv import ops
        x = np.random.default_rng(0).random((1, 5, 5, 3)).astype(np.float32)
        for p in (2**20, 2**32, 2**40):
            assert np.allclose(ops.max_pool2d(x, p, padding="same"), x.max((1, 2), keepdims=True))
            assert np.allclose(ops.avg_pool2d(x, p, padding="same"), x.mean((1, 2), keepdims=True))
            dx = ops.max_pool2d_grad(x, np.ones((1, 1, 1, 3), np.float32), p, padding="same")
            assert dx.sum() == 3
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr)


# --------------------------------------------------------------------- 3. bounded loading
def _big_model(units=2048):
    from fastconv import layers

    model = fastconv.Sequential(
        [fastconv.Input((units,)), layers.Dense(units, use_bias=False), layers.Dense(2)]
    )
    return model


def test_load_model_cap_is_an_argument(tmp_path):
    model = _big_model(64)
    path = tmp_path / "m.keras"
    model.save(path)
    nbytes = sum(w.nbytes for w in model.weights)
    with pytest.raises(ValueError, match="max_bytes"):
        fastconv.models.load_model(path, max_bytes=nbytes - 1)
    loaded = fastconv.models.load_model(path, max_bytes=nbytes)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    weights_path = tmp_path / "m.weights.npz"
    model.save_weights(weights_path)
    with pytest.raises(ValueError, match="max_bytes"):
        saving.load_weights(loaded, weights_path, max_bytes=nbytes // 2)
    saving.load_weights(loaded, weights_path, max_bytes=nbytes)
    with pytest.raises(ValueError, match="max_bytes"):
        loaded.load_weights(weights_path, max_bytes=nbytes // 2)
    loaded.load_weights(weights_path, max_bytes=nbytes)
    with pytest.raises(TypeError):
        fastconv.models.load_model(path, max_bytes="1G")


def test_declared_sizes_checked_before_the_model_is_built(tmp_path, monkeypatch):
    """A file declaring more weight bytes than max_bytes is refused before any layer is built."""
    model = _big_model(64)
    path = tmp_path / "m.keras"
    model.save(path)
    built = []
    monkeypatch.setattr(saving, "model_from_config", lambda *a, **k: built.append(1))
    with pytest.raises(ValueError, match="declares"):
        saving.load_model(path, max_bytes=1024)
    assert not built


def test_loading_reads_each_array_straight_into_the_model(tmp_path):
    """Peak memory of load_model: the model itself plus little (the file's bytes were read
    and then copied: about three copies of the weights at the peak)."""
    model = _big_model(2048)  # 16 MiB of weights
    path = tmp_path / "big.keras"
    model.save(path)
    nbytes = sum(w.nbytes for w in model.weights)
    config = model.get_config()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        type(model).from_config(config)  # what building the model alone costs
        _, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        loaded = fastconv.models.load_model(path)
        _, load_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(loaded.weights[0], model.weights[0])
    extra = load_peak - start - build_peak
    assert extra < 0.25 * nbytes, f"loading took {extra / nbytes:.2f} copies beyond the build"


def test_load_weights_with_a_bad_entry_leaves_the_model_unchanged(tmp_path):
    model = _big_model(32)
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    bad = tmp_path / "bad.weights.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "weights/1.npy":
                data = data[:-8]  # truncated
            dst.writestr(info, data)
    before = model.get_weights()
    for w in model.weights:
        w[...] = 7.0
    before = model.get_weights()
    with pytest.raises(ValueError):
        saving.load_weights(model, bad)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- 4. saving
def test_next_save_removes_stale_temporaries_only(tmp_path):
    model = _big_model(8)
    old = time.time() - 2 * saving.STALE_TEMP_SECONDS
    stale = tmp_path / ".fastconv-abcd1234.tmp"
    fresh = tmp_path / ".fastconv-efgh5678.tmp"  # a save that may still be running
    foreign = [tmp_path / "notes.tmp", tmp_path / ".fastconv-notes.txt", tmp_path / "x.keras"]
    for f in [stale, fresh, *foreign]:
        f.write_bytes(b"partial")
    for f in [stale, *foreign]:
        os.utime(f, (old, old))
    model.save(tmp_path / "m.keras")
    assert not stale.exists()
    assert fresh.exists() and all(f.exists() for f in foreign)
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert sorted(left) == sorted([fresh.name, "notes.tmp"])


def test_save_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        synced.append((os.path.samestat(st, os.stat(tmp_path)), os.path.exists(target)))
        real_fsync(fd)

    target = tmp_path / "m.keras"
    monkeypatch.setattr(os, "fsync", fsync)
    _big_model(8).save(target)
    assert (True, True) in synced, f"the folder was not fsynced after the rename: {synced}"


_SAVE_LOOP = """
import sys, numpy as np, fastconv
from fastconv import layers
path, i = sys.argv[1], 0
model = fastconv.Sequential([fastconv.Input((256,)), layers.Dense(512), layers.Dense(2)])
print("ready", flush=True)
while True:
    i += 1
    for w in model.weights:
        w[...] = i
    model.save(path)
"""


def test_kill_9_during_saves_leaves_a_complete_file(tmp_path):
    path = tmp_path / "m.keras"
    script = tmp_path / "save_loop.py"
    script.write_text(_SAVE_LOOP)
    rng = np.random.default_rng(0)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.3 * rng.random())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        if path.exists():
            model = fastconv.models.load_model(path)
            values = {float(w.flat[0]) for w in model.weights}
            assert len(values) == 1, f"a mix of two saves: {values}"


# ------------------------------------------------------------------------ 5. command line
@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "mnist", "--threads", "100000"], ["--threads", "100000"]),
        (["train", "mnist", "--threads", "0"], ["--threads"]),
        (["train", "mnist", "--seed", "-1"], ["--seed", "-1"]),
        (["train", "mnist", "--seed", str(2**64)], ["--seed"]),
        (["train", "mnist", "--seed", "x"], ["--seed"]),
        (["train", "mnist", "--epochs", str(2**70)], ["--epochs"]),
        (["train", "mnist", "--batch-size", "1.5"], ["--batch-size"]),
        (["train", "mnist", "--save", "model.h5"], ["--save"]),
        (["train", "mnist", "--save", "/no/such/folder/m.keras"], ["--save"]),
        (["train", "cats-vs-dogs", "d", "--plot", "/no/such/folder/c.png"], ["--plot"]),
        (["make-subset", "a", "b", "--train", str(10**12)], ["--train"]),
    ],
)
def test_cli_bad_values_are_one_line_usage_errors(args, words):
    proc = subprocess.run(
        [sys.executable, "-m", "fastconv", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "error:" in last and all(w in last for w in words), last


@pytest.mark.parametrize("var, value", [("FASTCONV_ISA", "bogus"), ("FASTCONV_WINOGRAD", "maybe")])
def test_bad_environment_values_name_the_variable(var, value):
    proc = run_python("import fastconv", **{var: value})
    assert proc.returncode != 0
    assert var in proc.stderr.strip().splitlines()[-1] and value in proc.stderr


# ------------------------------------------------------------------------------- 6. threads
def test_threadpoolctl_steers_fastconv(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastconv.info()["openmp"]:
        pytest.skip("built without OpenMP")
    fastconv.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
        assert fastconv.info()["num_threads"] == 1
    assert fastconv.get_num_threads() == 2
    fastconv.set_num_threads(3)  # and fastconv's setting is what threadpoolctl reads
    found = [
        i["num_threads"]
        for i in threadpoolctl.threadpool_info()
        if i["filepath"] == fastconv.info()["openmp_runtime"]
    ]
    assert found == [3], threadpoolctl.threadpool_info()


def test_omp_set_num_threads_steers_fastconv(restore_threads):
    runtime = fastconv.info()["openmp_runtime"]
    if not runtime:
        pytest.skip("built without OpenMP")
    omp = ctypes.CDLL(runtime)
    fastconv.set_num_threads(2)
    omp.omp_set_num_threads(1)
    assert fastconv.get_num_threads() == 1
    omp.omp_set_num_threads(2)
    assert fastconv.get_num_threads() == 2
    fastconv.set_num_threads(1)
    assert omp.omp_get_max_threads() == 1


def test_a_setting_made_in_one_thread_holds_in_others(restore_threads):
    import threading

    fastconv.set_num_threads(1)
    seen = []
    th = threading.Thread(target=lambda: seen.append(fastconv.get_num_threads()))
    th.start()
    th.join()
    assert seen == [1]


def test_info_shows_the_openmp_runtime_and_warns_on_two(tmp_path):
    runtime = fastconv.info()["openmp_runtime"]
    if not runtime:
        pytest.skip("built without OpenMP")
    assert os.path.isfile(runtime) and fastconv.info()["openmp_runtimes_loaded"] == [runtime]
    copy = tmp_path / "libgomp-0123abcd.so.1"  # as wheels such as torch's bundle their own
    shutil.copy(runtime, copy)
    proc = run_python(
        f"""
        import ctypes, sys
        from fastconv import cli
        ctypes.CDLL({str(copy)!r})
        sys.exit(cli.main(["info"]))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert f"openmp_runtime: {runtime}" in proc.stdout
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warning and "OpenMP runtimes" in warning[0] and str(copy) in warning[0], proc.stderr
