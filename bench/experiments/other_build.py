"""Runs a bench script against another revision's build of fastconv (its C++ core and Python
package), for before/after numbers of a change to the kernels:

    git worktree add /tmp/before REV
    cmake -S /tmp/before -B /tmp/before/build -G Ninja -DCMAKE_BUILD_TYPE=Release \\
        -Dpybind11_DIR=$(python -m pybind11 --cmakedir)
    ninja -C /tmp/before/build
    python bench/experiments/other_build.py /tmp/before bench/experiments/dense_units.py [ARGS]

The revision's ``python/fastconv`` and the extensions built in its ``build/`` are copied into a
temporary folder, which is put first on the path after the editable install's import hook (if
any) is taken out, so the script imports that build instead of the installed one. Alternate
such runs with runs of the installed build for a side-by-side comparison.
"""

from __future__ import annotations

import glob
import os
import runpy
import shutil
import sys
import tempfile


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    checkout, script = sys.argv[1], sys.argv[2]
    folder = tempfile.mkdtemp(prefix="fastconv-build-")
    package = os.path.join(folder, "fastconv")
    shutil.copytree(os.path.join(checkout, "python", "fastconv"), package)
    built = glob.glob(os.path.join(checkout, "build", "*.so"))
    if not built:
        sys.exit(f"no extension built in {checkout}/build (see the steps above)")
    for path in built:
        shutil.copy(path, package)
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, folder)
    sys.argv = sys.argv[2:]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
