"""Data-parallel training over MPI, shaped like Keras 3's ``keras.distribution``.

Add two lines before building the model and start the script with ``mpiexec -n N``::

    import fastconv
    fastconv.distribution.set_distribution(fastconv.distribution.DataParallel())

Each of the N processes holds a full copy of the model. Semantics (as Keras' ``DataParallel``):

* ``batch_size`` is the *global* batch. Every process takes its contiguous part of every global
  batch (sizes differ by at most one; the parts of a small last batch may be empty: such a process
  still takes part in every collective, with zero gradients). In-memory arrays are gathered only
  for the local part; ``image_dataset_from_directory`` datasets decode only the local files; other
  datasets and generators are read whole and sliced. The shuffle order is the same on every process
  and the same as a single process with the same seed: array shuffles are drawn on rank 0 and
  broadcast; image datasets share their order through their seed (a missing seed is broadcast
  from rank 0).
* Each process computes the gradient of the mean loss over its part; right after each layer's
  backward its gradients, times the local sample count, are copied into a bucket (about
  ``BUCKET_BYTES``) and a full bucket is summed with a non-blocking ``Iallreduce`` while backward
  goes on. Before the optimizer update every bucket is waited for and divided by the global sample
  count: the result is the gradient of the mean loss over the global batch, identical on every
  process, so the (identical) optimizer updates keep the weights in sync.
* The initial weights are broadcast from rank 0 at the first training step of a model.
* Loss and metrics are summed (totals and counts) over the processes: logs, history, callbacks
  and ``evaluate`` see the global values on every process. Only rank 0 shows progress and writes
  files with ``Model.save``/``save_weights`` (hence ``ModelCheckpoint``); ``fit`` ends with a
  barrier so that every process can then load what rank 0 wrote.
* ``predict`` is not sharded: every process predicts all its input.
* Random layers (Dropout, augmentation) draw from each process's own generator: their masks differ
  between processes (as different devices in Keras) and, with a ``seed`` argument, repeat the same
  pattern on every process. They do not change the data order, which comes from rank 0.
* An exception that reaches the top of any process prints its traceback and calls ``MPI_Abort``:
  the whole job ends within seconds instead of leaving the other processes waiting.

Without MPI (``mpi4py`` not installed and no launcher), or with one process, training runs as
before. ``pip install "fastconv[mpi]"`` brings ``mpi4py`` and MPICH from PyPI; an ``mpi4py``
built against a system MPI works too.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import runtime

__all__ = [
    "DataParallel",
    "set_distribution",
    "distribution",
    "initialize",
    "list_devices",
    "rank",
    "num_processes",
    "is_chief",
    "barrier",
    "abort",
    "shard_bounds",
    "BUCKET_BYTES",
]

#: Gradient bucket size: a bucket's allreduce starts once the layers that fill it are done.
BUCKET_BYTES = 256 * 1024

_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_current = None  # the distribution set with set_distribution
_hook_installed = False


# ------------------------------------------------------------------------------- MPI access
def _launched_size():
    for var in _LAUNCHER_SIZE_VARS:
        try:
            return int(os.environ[var])
        except (KeyError, ValueError):
            continue
    return 1


def _mpi():
    """The mpi4py ``MPI`` module, or None when mpi4py is missing and no launcher started us."""
    try:
        import mpi4py

        if "mpi4py.MPI" not in sys.modules:
            mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI
        from mpi4py import MPI
    except ImportError as e:
        if _launched_size() > 1:
            raise ImportError(
                "fastconv.distribution: this process was started by an MPI launcher with "
                f"{_launched_size()} processes, but mpi4py is not installed: "
                'pip install "fastconv[mpi]" (or mpi4py built against your MPI)'
            ) from e
        return None
    return MPI


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _install_abort_hook(comm):
    """Turn an uncaught exception in this process into MPI_Abort of the whole job."""
    global _hook_installed
    if _hook_installed:
        return
    previous = sys.excepthook

    def abort_on_exception(exc_type, exc, tb):
        try:
            sys.stdout.flush()
            previous(exc_type, exc, tb)
            sys.stderr.write(
                f"fastconv.distribution: process {comm.Get_rank()} of {comm.Get_size()} raised "
                f"{exc_type.__name__}; aborting all processes (MPI_Abort)\n"
            )
            sys.stderr.flush()
            time.sleep(0.2)  # let the launcher forward this output before it kills the job
        finally:
            comm.Abort(1)

    sys.excepthook = abort_on_exception
    _hook_installed = True


# ------------------------------------------------------------------------------- public API
def list_devices(device_type: str | None = None) -> list[str]:
    """One device per MPI process: ``["cpu:0", ..., "cpu:N-1"]`` (``["cpu:0"]`` without MPI)."""
    if device_type not in (None, "cpu", "CPU"):
        raise ValueError(f"fastconv runs on CPUs only; received device_type={device_type!r}")
    MPI = _mpi()
    n = 1 if MPI is None else MPI.COMM_WORLD.Get_size()
    return [f"cpu:{i}" for i in range(n)]


def initialize(
    job_addresses: str | Sequence[str] | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Start MPI (as Keras' ``initialize`` starts the multi-process runtime).

    The launcher (``mpiexec -n N``) decides the processes; ``num_processes`` and ``process_id``,
    when given, are checked against it. ``job_addresses`` is not used (MPI knows its peers).
    Installs the abort-on-exception hook when there is more than one process.
    """
    del job_addresses
    MPI = _mpi()
    size = 1 if MPI is None else MPI.COMM_WORLD.Get_size()
    me = 0 if MPI is None else MPI.COMM_WORLD.Get_rank()
    if num_processes is not None and int(num_processes) != size:
        raise ValueError(f"num_processes={num_processes}, but the MPI job has {size} processes")
    if process_id is not None and int(process_id) != me:
        raise ValueError(f"process_id={process_id}, but this MPI process has rank {me}")
    if size > 1:
        _install_abort_hook(MPI.COMM_WORLD)


class DataParallel:
    """Data parallelism over the processes of an MPI job (one model replica per process).

    ``devices``: ``None`` (all processes, see :func:`list_devices`) or that same list. Under
    ``mpiexec -n N`` with N > 1 this sets, unless ``OMP_NUM_THREADS`` is set, the kernel threads
    of each process to its share of the cores of its machine.
    """

    def __init__(
        self,
        device_mesh: Any = None,
        devices: Sequence[str] | None = None,
        auto_shard_dataset: bool = True,
    ) -> None:
        if device_mesh is not None:
            raise ValueError("fastconv's DataParallel takes `devices`, not a `device_mesh`")
        if not auto_shard_dataset:
            raise ValueError("fastconv's DataParallel always shards the data (auto_shard_dataset)")
        self._MPI = _mpi()
        self.comm = None if self._MPI is None else self._MPI.COMM_WORLD
        all_devices = list_devices()
        if devices is not None and list(devices) != all_devices:
            raise ValueError(
                f"DataParallel uses one device per MPI process: devices must be None or "
                f"{all_devices}; received {list(devices)}"
            )
        self.devices = all_devices
        self.auto_shard_dataset = True
        self.batch_dim_name = "batch"
        self.num_processes = len(all_devices)
        self.process_id = 0 if self.comm is None else self.comm.Get_rank()
        self._syncs = weakref.WeakKeyDictionary()  # model -> _GradientSync
        if self.num_processes > 1:
            initialize()
            self._share_cores()

    def _share_cores(self):
        if "OMP_NUM_THREADS" in os.environ:
            return
        local = self.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        per_node = local.Get_size()
        local.Free()
        if per_node > 1:
            runtime.set_num_threads(max(1, _cpu_count() // per_node))

    def __repr__(self):
        return f"<DataParallel: {self.num_processes} process(es), this is {self.process_id}>"


def set_distribution(value: DataParallel | None) -> None:
    """Make ``value`` (a :class:`DataParallel`, or None to stop) the distribution of training."""
    global _current
    if value is not None and not isinstance(value, DataParallel):
        raise ValueError(f"Expected a fastconv.distribution.DataParallel; received {value!r}")
    _current = value


def distribution() -> DataParallel | None:
    """The distribution set with :func:`set_distribution`, or None."""
    return _current


def _active():
    """The current distribution when it spans more than one process, else None."""
    d = _current
    return d if d is not None and d.num_processes > 1 else None


def rank() -> int:
    """This process's index in the current distribution (0 without one)."""
    d = _active()
    return 0 if d is None else d.process_id


def num_processes() -> int:
    d = _active()
    return 1 if d is None else d.num_processes


def is_chief() -> bool:
    """True on the process that prints and writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    d = _active()
    if d is not None:
        d.comm.Barrier()


def abort(errorcode=1):
    """End the whole MPI job (no-op without a multi-process distribution)."""
    d = _active()
    if d is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        d.comm.Abort(int(errorcode))


# ------------------------------------------------------------------------------- data sharding
def shard_bounds(n, index, count):
    """[lo, hi) of part ``index`` of ``count`` near-equal contiguous parts of range(n)."""
    base, extra = divmod(int(n), int(count))
    lo = index * base + min(index, extra)
    return lo, lo + base + (1 if index < extra else 0)


def local_range(lo, hi):
    """This process's part [lo', hi') of the global batch [lo, hi)."""
    d = _active()
    if d is None:
        return lo, hi
    a, b = shard_bounds(hi - lo, d.process_id, d.num_processes)
    return lo + a, lo + b


def broadcast_order(order):
    """Rank 0's sample order (an int array, or None) on every process."""
    d = _active()
    if d is None or order is None:
        return order
    order = np.ascontiguousarray(order, dtype=np.int64)
    d.comm.Bcast(order, root=0)
    return order


def shared_seed(seed):
    """Rank 0's ``seed`` on every process."""
    d = _active()
    return seed if d is None else d.comm.bcast(seed, root=0)


def _slice_batch(batch, lo, hi):
    def cut(a):
        return a if a is None or isinstance(a, dict) else np.asarray(a)[lo:hi]

    if isinstance(batch, (tuple, list)):
        return type(batch)(cut(a) for a in batch)
    return cut(batch)


def _batch_len(batch):
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    return len(first)


def local_batches(data):
    """Iterate this process's part of every batch of ``data`` (an iterable or an iterator).

    Datasets with ``iter_shard(index, count)`` (``ImageDataset``) read only their part; other
    batches are read whole and sliced.
    """
    d = _active()
    if d is None:
        return iter(data)
    if hasattr(data, "iter_shard"):
        return data.iter_shard(d.process_id, d.num_processes)
    return _sliced(data, d.process_id, d.num_processes)


def _sliced(data, index, count):
    for batch in data:
        lo, hi = shard_bounds(_batch_len(batch), index, count)
        yield _slice_batch(batch, lo, hi)


# ------------------------------------------------------------------------------- metrics
def global_results(metrics):
    """``[m.result() for m in metrics]`` over all processes' samples (totals and counts summed)."""
    d = _active()
    if d is None:
        return [m.result() for m in metrics]
    state = np.empty((len(metrics), 2), dtype=np.float64)
    for i, m in enumerate(metrics):
        if hasattr(m, "total") and hasattr(m, "count"):
            state[i] = (m.total, m.count)
        else:  # a metric without (total, count): plain mean of the processes' results
            state[i] = (float(m.result()), 1.0)
    d.comm.Allreduce(d._MPI.IN_PLACE, state, op=d._MPI.SUM)
    return [t / c if c else 0.0 for t, c in state]


# ------------------------------------------------------------------------------- gradients
def gradient_sync(model, local_n):
    """Start a data-parallel training step of ``model`` on ``local_n`` local samples.

    Returns None without a multi-process distribution; else an object whose ``layer_done(layer)``
    the backward pass calls after each layer and whose ``averaged_gradients()`` returns the global
    gradients in ``model._trainable_weights_and_grads()`` order.
    """
    d = _active()
    if d is None:
        return None
    pairs = model._trainable_weights_and_grads()
    key = tuple(id(w) for w, _ in pairs)
    sync = d._syncs.get(model)
    if sync is None or sync.key != key:  # first step, or other trainable weights
        sync = _GradientSync(d, model, key)
        d._syncs[model] = sync
    sync.start_step(model, local_n)
    return sync


class _Bucket:
    __slots__ = ("buffer", "n_layers", "remaining", "request")

    def __init__(self, size, n_layers):
        self.buffer = np.zeros(size, dtype=np.float32)
        self.n_layers = n_layers
        self.remaining = n_layers
        self.request = None


class _GradientSync:
    """Bucketed, overlapped gradient allreduce for one model (see the module docstring)."""

    def __init__(self, dist, model, key):
        self.comm, self.MPI = dist.comm, dist._MPI
        self.key = key
        self.model = None  # set during a step only (the cache must not keep models alive)
        # layers holding trainable weights, in the order backward finishes them
        layers = [layer for layer in model.layers if layer._trainable_weights_and_grads()]
        groups, group, size = [], [], 0
        for layer in reversed(layers):
            group.append(layer)
            size += sum(w.size for w, _ in layer._trainable_weights_and_grads())
            if size * 4 >= BUCKET_BYTES:
                groups.append((group, size))
                group, size = [], 0
        if group or not groups:
            groups.append((group, size))
        self.buckets = []
        self.slots = {}  # id(layer) -> (bucket, [gradient view shaped like the weight])
        grads_by_weight = {}
        for group, size in groups:
            extra = 1 if len(self.buckets) == len(groups) - 1 else 0  # the global sample count
            bucket = _Bucket(size + extra, len(group))
            pos = 0
            for layer in group:
                views = []
                for w, _ in layer._trainable_weights_and_grads():
                    view = bucket.buffer[pos : pos + w.size].reshape(w.shape)
                    views.append(view)
                    grads_by_weight[id(w)] = view
                    pos += w.size
                self.slots[id(layer)] = (bucket, views)
            self.buckets.append(bucket)
        self.grads = [grads_by_weight[k] for k in key]
        self._check_same_model_and_broadcast_weights(model)

    def _check_same_model_and_broadcast_weights(self, model):
        shapes = repr([tuple(w.shape) for w in model.weights]) + repr(
            [b.buffer.size for b in self.buckets]
        )
        sigs = self.comm.allgather(zlib.crc32(shapes.encode()))
        if len(set(sigs)) != 1:
            raise ValueError(
                "fastconv.distribution: the processes built different models (weight shapes or "
                "trainable flags differ); every process must build the same model"
            )
        weights = model.weights
        if weights:
            flat = np.concatenate([np.asarray(w, dtype=np.float32).ravel() for w in weights])
            self.comm.Bcast(flat, root=0)
            pos = 0
            for w in weights:
                w[...] = flat[pos : pos + w.size].reshape(w.shape)
                pos += w.size

    def start_step(self, model, local_n):
        self.model = model
        self.local_n = int(local_n)
        self.scale = np.float32(local_n)
        for b in self.buckets:
            b.remaining, b.request = b.n_layers, None
        self.buckets[-1].buffer[-1] = self.scale

    def _fill(self, layer, views):
        for view, (_, g) in zip(views, layer._trainable_weights_and_grads()):
            if g is None or self.local_n == 0:
                view.fill(0.0)
            else:
                np.multiply(g, self.scale, out=view)

    def _start(self, bucket):
        bucket.request = self.comm.Iallreduce(self.MPI.IN_PLACE, bucket.buffer, op=self.MPI.SUM)

    def layer_done(self, layer):
        """Called right after ``layer.backward``: copy its gradients, maybe start a bucket."""
        slot = self.slots.get(id(layer))
        if slot is None:
            return
        bucket, views = slot
        self._fill(layer, views)
        bucket.remaining -= 1
        if bucket.remaining == 0:
            self._start(bucket)
        # MPI progresses non-blocking collectives only inside MPI calls: poke it
        started = [b.request for b in self.buckets if b.request is not None]
        self.MPI.Request.Testall(started)

    def averaged_gradients(self):
        """Wait for every bucket; return the gradients of the global mean loss."""
        for bucket in self.buckets:  # buckets not started yet (e.g. an empty shard), in order
            if bucket.request is None:
                for layer_id, (b, views) in self.slots.items():
                    if b is bucket and bucket.remaining > 0:
                        self._fill(_layer_by_id(self.model, layer_id), views)
                self._start(bucket)
        self.MPI.Request.Waitall([b.request for b in self.buckets])
        total = float(self.buckets[-1].buffer[-1])
        if total <= 0:
            raise ValueError("fastconv.distribution: a training batch with no samples")
        for b in self.buckets:
            b.buffer /= np.float32(total)
        self.model = None
        return self.grads


def _layer_by_id(model, layer_id):
    for layer in model.layers:
        if id(layer) == layer_id:
            return layer
    raise KeyError(layer_id)
