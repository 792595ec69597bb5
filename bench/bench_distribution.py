"""Data-parallel scaling: measured here, and a cost model for more machines.

Measured on this machine (each part in its own process, one after the other):

- ``throughput``: training images/s of the lecture's MNIST model on the shipped digits, global
  batch 64: 1 process x 2 threads against ``mpiexec -n 2`` processes x 1 thread
  (``fastconv.distribution.DataParallel``);
- ``allreduce``: ``MPI_Allreduce`` (sum, float32, in place) of the gradient sizes of both lecture
  models (104,202 floats = 0.42 MB and 991,041 floats = 3.96 MB) between 2 processes on this
  machine (shared memory loopback), median of many; plus a 1-float allreduce (latency);
- ``profile``: one process x 2 threads, per training step of each lecture model (MNIST at batch 64,
  the 180x180 convnet at batch 32): forward + loss time, the time each layer's backward ends (when
  its gradients could be sent) and the optimizer update.

Estimated (printed at the end): the efficiency of data-parallel training on p machines, each as fast
as this one and each with the per-process batch above (weak scaling: global batch = p x local
batch), for p = 4, 16, 64 on 10 Gb/s and 100 Gb/s networks. Ring allreduce of b bytes on p
machines costs 2(p-1)/p * b / bandwidth + 2(p-1) * latency. Gradients go in the same buckets as
fastconv.distribution (BUCKET_BYTES, filled in backward order); a bucket is sent when its last layer
is done and the buckets go one after the other on the link. "overlap" lets communication run
during the rest of backward (the best case); "no overlap" sends everything after backward (the
worst case). Efficiency = compute time of a step / time of a step with communication. The same
table is printed for machines 10x as fast as this 2-core one (every compute time / 10).

Run:  python bench/bench_distribution.py            (about a minute on 2 cores)
      python bench/bench_distribution.py --quick    (fewer repetitions)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SIZES = {"mnist": 104_202, "cats_vs_dogs": 991_041}  # trainable floats of the lecture models
LOCAL_BATCH = {"mnist": 64, "cats_vs_dogs": 32}
NETWORKS = {
    # name: (bandwidth bytes/s achievable, per-message latency s); assumptions, see the docstring
    "10 Gb/s Ethernet (TCP)": (1.1e9, 25e-6),
    "100 Gb/s (RDMA: InfiniBand/RoCE)": (11e9, 3e-6),
}
MACHINES = (4, 16, 64)
#: compute speed of each machine relative to this 2-core one (10: e.g. a 32-core server)
SPEEDUPS = (1, 10)


# --------------------------------------------------------------------------- workers
def worker_throughput(args):
    import fastconv
    from fastconv.applications import build_mnist_model
    from fastconv.cli import load_mnist_family

    if args.distributed:
        fastconv.distribution.set_distribution(fastconv.distribution.DataParallel())
    fastconv.set_num_threads(args.threads)
    fastconv.set_random_seed(0)
    (x, y), _ = load_mnist_family("digits")
    x, y = x[: args.images], y[: args.images]
    model = build_mnist_model()
    model.fit(x[:512], y[:512], batch_size=64, epochs=1, verbose=0)  # warm up
    times = []
    for _ in range(args.repeats):
        fastconv.distribution.barrier()
        start = time.perf_counter()
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    if fastconv.distribution.is_chief():
        print(json.dumps({"images_per_s": len(x) / statistics.median(times)}))


def worker_allreduce(args):
    import fastconv

    fastconv.distribution.initialize()  # an error in one process ends both
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    out = {}
    for name, n in (("latency", 1), *SIZES.items()):
        buf = np.ones(n, dtype=np.float32)
        reps = args.reps if n > 1 else 10 * args.reps
        for _ in range(5):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times = []
        for _ in range(reps):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        times = np.array(times)
        comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)  # the slower process counts
        out[name] = {"bytes": 4 * n, "median_s": float(np.median(times)), "reps": reps}
    if comm.Get_rank() == 0:
        print(json.dumps(out))


def worker_profile(args):
    import fastconv
    from fastconv.applications import build_cats_vs_dogs_model, build_mnist_model

    fastconv.set_num_threads(args.threads)
    fastconv.set_random_seed(0)
    rng = np.random.default_rng(0)
    result = {}
    for name, build, shape, classes in (
        ("mnist", build_mnist_model, (28, 28, 1), 10),
        ("cats_vs_dogs", build_cats_vs_dogs_model, (180, 180, 3), 2),
    ):
        model = build()
        n = LOCAL_BATCH[name]
        x = rng.random((n, *shape), dtype=np.float32) * (255 if classes == 2 else 1)
        y = rng.integers(0, classes, n)
        if classes == 2:
            y = y.astype(np.float32).reshape(-1, 1)
        x, y = model._prepare_batch(x, y)
        model.train_on_batch(x, y)  # warm up, allocate optimizer state
        layers = [layer for layer in model.layers if layer._trainable_weights_and_grads()]
        fwd, done, opt, step = [], {}, [], []
        for _ in range(args.profile_reps):
            start = time.perf_counter()
            model.forward(x, training=True)
            fwd.append(time.perf_counter() - start)
            stamps = {}
            start = time.perf_counter()
            model._compute_gradients(
                x, y, lambda layer, s=stamps: s.__setitem__(id(layer), time.perf_counter())
            )
            end = time.perf_counter()
            for layer in layers:
                done.setdefault(layer.name, []).append(stamps[id(layer)] - start)
            pairs = model._trainable_weights_and_grads()
            t0 = time.perf_counter()
            model.optimizer.apply([g for _, g in pairs], [w for w, _ in pairs])
            opt.append(time.perf_counter() - t0)
            step.append(end - start + opt[-1])
        result[name] = {
            "forward_s": statistics.median(fwd),
            "step_s": statistics.median(step),
            "optimizer_s": statistics.median(opt),
            "backward_end_s": statistics.median(step) - statistics.median(opt),
            # backward order: the layer's parameter count and when its gradients are ready
            "layers": [
                {
                    "name": layer.name,
                    "params": int(sum(w.size for w, _ in layer._trainable_weights_and_grads())),
                    "done_s": statistics.median(done[layer.name]),
                }
                for layer in reversed(layers)
            ],
        }
    print(json.dumps(result))


# --------------------------------------------------------------------------- cost model
def ring_allreduce_s(nbytes, p, bandwidth, latency):
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def buckets(layers, bucket_bytes):
    """(bytes, ready time) per bucket, grouped as fastconv.distribution groups layers."""
    out, size, ready = [], 0, 0.0
    for layer in layers:  # backward order
        size += layer["params"]
        ready = layer["done_s"]
        if size * 4 >= bucket_bytes:
            out.append((size * 4, ready))
            size = 0
    if size or not out:
        out.append((size * 4 + 4, ready))  # + the global sample count
    return out


def step_with_comm(profile, p, bandwidth, latency, bucket_bytes, overlap=True):
    """Seconds per step on p machines (compute as measured here)."""
    backward_end = profile["backward_end_s"]
    link_free = 0.0
    for nbytes, ready in buckets(profile["layers"], bucket_bytes):
        start = max(ready if overlap else backward_end, link_free)
        link_free = start + ring_allreduce_s(nbytes, p, bandwidth, latency)
    return max(link_free, backward_end) + profile["optimizer_s"]


def _faster(profile, speedup):
    """The profile of a machine ``speedup`` times as fast (every compute time divided)."""
    out = {k: v / speedup for k, v in profile.items() if k.endswith("_s")}
    out["layers"] = [dict(d, done_s=d["done_s"] / speedup) for d in profile["layers"]]
    return out


def report(throughput, allreduce, profile, bucket_bytes):
    lines = ["", "== Measured on this machine (2 cores) =="]
    one, two = throughput["1x2"], throughput["2x1"]
    lines.append(
        f"MNIST model, digits, global batch 64: 1 process x 2 threads {one:.0f} images/s; "
        f"2 processes x 1 thread {two:.0f} images/s ({two / one:.2f}x)"
    )
    for name, r in allreduce.items():
        label = "1 float (latency)" if name == "latency" else f"{name} gradients"
        lines.append(
            f"Allreduce {label}: {r['bytes'] / 1e6:.3f} MB in {r['median_s'] * 1e6:.0f} us "
            f"(median of {r['reps']}, 2 processes, shared memory)"
            + (f" = {r['bytes'] / r['median_s'] / 1e9:.2f} GB/s" if name != "latency" else "")
        )
    for name, prof in profile.items():
        lines.append(
            f"{name}: step at batch {LOCAL_BATCH[name]} x 2 threads {prof['step_s'] * 1e3:.1f} ms "
            f"(forward+loss {prof['forward_s'] * 1e3:.1f} ms, optimizer "
            f"{prof['optimizer_s'] * 1e3:.1f} ms); buckets (MB, ready at ms): "
            + ", ".join(
                f"{b / 1e6:.2f}@{t * 1e3:.1f}" for b, t in buckets(prof["layers"], bucket_bytes)
            )
        )
    for speedup in SPEEDUPS:
        lines += [
            "",
            f"== Estimated efficiency on p machines {speedup}x as fast as this one "
            "(weak scaling) =="
            if speedup != 1
            else "== Estimated efficiency on p machines like this one (weak scaling) ==",
        ]
        head = f"{'model':<14}{'network':<34}" + "".join(f"{f'p={p}':>16}" for p in MACHINES)
        lines += [head, f"{'':<48}" + "   overlap / none" * len(MACHINES)]
        for name, prof in profile.items():
            prof = _faster(prof, speedup)
            for net, (bw, lat) in NETWORKS.items():
                cells = []
                for p in MACHINES:
                    e1 = prof["step_s"] / step_with_comm(prof, p, bw, lat, bucket_bytes, True)
                    e0 = prof["step_s"] / step_with_comm(prof, p, bw, lat, bucket_bytes, False)
                    cells.append(f"{100 * e1:7.0f}% /{100 * e0:4.0f}%")
                lines.append(f"{name:<14}{net:<34}" + "".join(cells))
    lines.append(
        "Ring allreduce 2(p-1)/p*bytes/bandwidth + 2(p-1)*latency per bucket; bandwidth and "
        "latency: "
        + "; ".join(
            f"{k}: {bw / 1e9:.1f} GB/s, {lat * 1e6:.0f} us" for k, (bw, lat) in NETWORKS.items()
        )
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver
def _run(cmd, env=None):
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})), timeout=600
    )
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    out = proc.stdout
    return json.loads(out.strip().splitlines()[-1])


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("throughput", "allreduce", "profile"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reps", type=int, default=200, help="allreduce repetitions")
    parser.add_argument("--profile-reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    if args.worker:
        {"throughput": worker_throughput, "allreduce": worker_allreduce}.get(
            args.worker, worker_profile
        )(args)
        return 0
    from fastconv.distribution import BUCKET_BYTES

    me = [sys.executable, str(HERE)]
    quick = ["--repeats", "1", "--reps", "50", "--profile-reps", "2"] if args.quick else []
    one_thread = {"OMP_NUM_THREADS": "1"}
    throughput = {
        "1x2": _run(me + ["--worker", "throughput", "--threads", "2"] + quick)["images_per_s"],
        "2x1": _run(
            [_mpiexec(), "-n", "2"]
            + me
            + ["--worker", "throughput", "--threads", "1", "--distributed"]
            + quick,
            one_thread,
        )["images_per_s"],
    }
    allreduce = _run([_mpiexec(), "-n", "2"] + me + ["--worker", "allreduce"] + quick, one_thread)
    profile = _run(me + ["--worker", "profile", "--threads", "2"] + quick)
    print(report(throughput, allreduce, profile, BUCKET_BYTES))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"throughput": throughput, "allreduce": allreduce, "profile": profile})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
