"""Run-time ISA dispatch: info(), set_isa/get_isa, FASTCONV_ISA at import."""

from __future__ import annotations

import os
import subprocess
import sys

import fastconv
import fastconv._core
import numpy as np
import pytest
import reference as ref
from fastconv import ops

KNOWN = ("generic", "avx2", "avx512")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _child(code, **env):
    full = dict(os.environ)
    full.pop("FASTCONV_ISA", None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=full
    )


def test_info_keys_and_types():
    info = fastconv.info()
    assert set(info) >= {"version", "isa", "isas_available", "num_threads", "openmp"}
    assert isinstance(info["version"], str) and info["version"]
    assert info["version"] == fastconv.__version__
    assert info["isa"] in info["isas_available"]
    assert info["isa"] == fastconv._core.get_isa()
    assert "generic" in info["isas_available"]
    assert set(info["isas_available"]) <= set(KNOWN)
    assert isinstance(info["num_threads"], int) and info["num_threads"] >= 1
    assert info["num_threads"] == fastconv.get_num_threads()
    assert isinstance(info["openmp"], bool)


def test_kernel_instances_are_named_by_op_tile_and_isa(isa):
    """Each ISA's microkernel instances say their op, tile and ISA ("igemm_6x16_avx2"); every
    ISA has the same families."""
    import re

    names = fastconv.info()["kernels"]
    assert names == fastconv._core.kernel_instances().split()
    ops_seen = []
    for name in names:
        match = re.fullmatch(r"([a-z0-9_]+?)_(\d+)x(\d+)_" + re.escape(isa), name)
        assert match, name
        assert int(match.group(2)) >= 1 and int(match.group(3)) >= 1, name
        ops_seen.append(match.group(1))
    families = {"gemm", "igemm", "few_channel_row", "rowgemm", "patch_gradient", "dots"}
    assert families <= set(ops_seen), ops_seen


def test_installed_version_matches():
    from importlib.metadata import version

    assert fastconv.info()["version"] == version("fastconv")


def test_isas_available_match_the_cpu():
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    avail = set(fastconv.info()["isas_available"])
    assert ("avx2" in avail) == ({"avx2", "fma"} <= flags)
    if "avx512" in avail:
        assert "avx512f" in flags
    elif {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        pytest.fail("the CPU has AVX-512 (F/BW/VL/DQ) but avx512 is not offered")


def test_default_isa_is_the_best_available():
    proc = _child("import fastconv; i = fastconv.info(); print(i['isa'], *i['isas_available'])")
    assert proc.returncode == 0, proc.stderr
    isa, *avail = proc.stdout.split()
    best = [n for n in KNOWN if n in avail][-1]
    assert isa == best


@pytest.mark.parametrize("name", KNOWN)
def test_env_forces_the_isa(name):
    if name not in fastconv.info()["isas_available"]:
        proc = _child("import fastconv", FASTCONV_ISA=name)
        assert proc.returncode != 0, f"FASTCONV_ISA={name} accepted on a CPU without it"
        assert "FASTCONV_ISA" in proc.stderr and name in proc.stderr, proc.stderr[-1000:]
        return
    code = (
        "import numpy as np, fastconv; from fastconv import ops;"
        "print(fastconv.info()['isa'], fastconv._core.get_isa());"
        "x = np.arange(2*5*5*3, dtype=np.float32).reshape(2, 5, 5, 3) % 7 - 3;"
        "k = np.arange(3*3*3*4, dtype=np.float32).reshape(3, 3, 3, 4) % 5 - 2;"
        "print(ops.conv2d(x, k, padding='same').tobytes().hex())"
    )
    proc = _child(code, FASTCONV_ISA=name)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, hexdata = proc.stdout.split("\n")[:2]
    assert first.split() == [name, name]
    y = np.frombuffer(bytes.fromhex(hexdata), np.float32).reshape(2, 5, 5, 4)
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3) % 7 - 3
    k = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4) % 5 - 2
    np.testing.assert_array_equal(y, ref.conv2d(x, k, padding="same").astype(np.float32))


def test_env_bogus_isa_is_a_clear_import_error():
    proc = _child("import fastconv", FASTCONV_ISA="bogus")
    assert proc.returncode != 0, "FASTCONV_ISA=bogus was accepted"
    assert "FASTCONV_ISA" in proc.stderr and "bogus" in proc.stderr, proc.stderr[-1000:]
    assert "Segmentation" not in proc.stderr


def test_set_isa_roundtrip():
    prev = fastconv._core.get_isa()
    try:
        for name in fastconv.info()["isas_available"]:
            fastconv._core.set_isa(name)
            assert fastconv._core.get_isa() == name
            assert fastconv.info()["isa"] == name
    finally:
        fastconv._core.set_isa(prev)
    assert fastconv._core.get_isa() == prev


@pytest.mark.parametrize("name", ["bogus", "", "AVX9", "sse"])
def test_set_isa_unknown_name(name):
    prev = fastconv._core.get_isa()
    with pytest.raises((ValueError, RuntimeError)) as info:
        fastconv._core.set_isa(name)
    assert repr(name)[1:-1] in str(info.value) or name == ""
    assert fastconv._core.get_isa() == prev, "a failed set_isa changed the path"


@pytest.mark.parametrize("name", KNOWN)
def test_set_isa_missing_from_cpu(name):
    if name in fastconv.info()["isas_available"]:
        pytest.skip(f"this CPU has {name}")
    prev = fastconv._core.get_isa()
    with pytest.raises((ValueError, RuntimeError)) as info:
        fastconv._core.set_isa(name)
    assert name in str(info.value)
    assert fastconv._core.get_isa() == prev


def test_every_isa_gives_the_same_answer(rng):
    """All paths agree with each other (and with the reference) on one mixed workload."""
    x = rng.standard_normal((3, 11, 13, 5)).astype(np.float32)
    k = rng.standard_normal((3, 3, 5, 17)).astype(np.float32)
    dy = rng.standard_normal((3, 6, 7, 17)).astype(np.float32)
    kw = dict(strides=2, padding="same")
    prev = fastconv._core.get_isa()
    out = {}
    try:
        for name in fastconv.info()["isas_available"]:
            fastconv._core.set_isa(name)
            out[name] = (ops.conv2d(x, k, **kw), *ops.conv2d_grad(x, k, dy, **kw))
    finally:
        fastconv._core.set_isa(prev)
    expected = (ref.conv2d(x, k, **kw), *ref.conv2d_grad(x, k, dy, **kw))
    for name, res in out.items():
        for got, exp in zip(res, expected):
            assert ref.rel_err(got, exp) <= 1e-4, name
