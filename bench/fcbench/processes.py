"""A child process per framework: the environment it runs with, its JSON answer and its peak RSS.

Allocator settings apply to a whole process, so a comparison that gives one framework glibc heap
reuse (PyTorch at its best) and the others nothing (what users get) runs each in a process of its
own. ``run_child`` returns ``ru_maxrss`` from ``os.wait4`` on that very child, but on Linux that
figure starts from the peak of the process the child was exec'd from (with subprocess's vfork:
this parent), so fcbench.solo reports its own VmHWM, which starts afresh at the exec.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

from fcbench import STARTUP_ENVIRON

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# glibc keeps freed memory in its heap instead of returning it to the kernel: large blocks come
# from the heap (not mmap) and the top of the heap is never trimmed, so a step's buffers are
# reused without page faults. Both are needed: a fixed mmap threshold alone disables the dynamic
# one and makes every large block an mmap.
HEAP_REUSE = {"MALLOC_MMAP_THRESHOLD_": "10000000000", "MALLOC_TRIM_THRESHOLD_": "10000000000"}


def clean_env(extra=None):
    """The environment this process started with (before fastconv's import set GOMP_SPINCOUNT in
    it), without allocator settings (MALLOC_*, GLIBC_TUNABLES), with ``extra`` added,
    FCBENCH_SOLO=1 and bench/ on PYTHONPATH."""
    env = {
        k: v
        for k, v in STARTUP_ENVIRON.items()
        if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
    }
    env.update(extra or {})
    env["FCBENCH_SOLO"] = "1"
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = BENCH_DIR + (os.pathsep + path if path else "")
    return env


def describe_env(extra):
    """What a child ran with, in words."""
    if not extra:
        return "no allocator settings (as installed)"
    return ", ".join(f"{k}={v}" for k, v in extra.items())


class ChildFailed(RuntimeError):
    pass


def run_child(python, module, arg, env):
    """Runs ``python -m module arg`` with ``env``; returns (its answer: the JSON after the
    'FCBENCH_SOLO ' marker on stdout, its ru_maxrss in MiB, wall seconds)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [python, "-m", module, arg], stdout=out, stderr=err, env=env, cwd=BENCH_DIR
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        lines = [ln for ln in out.read().splitlines() if ln.startswith("FCBENCH_SOLO ")]
        if proc.returncode != 0 or not lines:
            tail = "\n".join(err.read().splitlines()[-15:])
            raise ChildFailed(f"{python} -m {module} exited {proc.returncode}:\n{tail}")
        answer = json.loads(lines[-1][len("FCBENCH_SOLO ") :])
    return answer, usage.ru_maxrss / 1024, wall
