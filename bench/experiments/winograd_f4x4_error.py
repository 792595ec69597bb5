"""Would Winograd F(4x4, 3x3) stay within the tests' error bound? A NumPy prototype in float32
against the float64 direct sum, before any kernel is written.

    python bench/experiments/winograd_f4x4_error.py [--trials 3]

Builds the Toom-Cook matrices (A^T, G, B^T) for 4 outputs of a 3-tap filter from interpolation
points (0, 1, -1, 2, -2 and infinity, the usual choice; and 0, 1, -1, 1/2, -1/2), checks the 1-D
identity in float64, then computes one 6x6 input tile's 4x4 outputs in float32 for several
channel counts, Gaussian and ReLU-like (non-negative) inputs, and prints max |error| /
max(1, max |reference|): the measure tests/kernels/test_conv_algorithms.py bounds by 1e-5
(F(2x2, 3x3) stays under 2e-6 there).
"""

from __future__ import annotations

import argparse

import numpy as np

M_OUT, R_TAPS = 4, 3


def toom_cook(points: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) of F(4, 3) for the finite points, plus the point at infinity."""
    n = len(points) + 1
    at = np.zeros((M_OUT, n))
    g = np.zeros((n, R_TAPS))
    bt = np.zeros((n, n))
    for j, p in enumerate(points):
        at[:, j] = [p**i for i in range(M_OUT)]
        denom = np.prod([p - q for q in points if q != p])
        g[j] = [p**k / denom for k in range(R_TAPS)]
    at[M_OUT - 1, n - 1] = 1.0
    g[n - 1, R_TAPS - 1] = 1.0
    poly = np.poly1d([1.0])
    for p in points:
        poly = poly * np.poly1d([1.0, -p])
    for j, p in enumerate(points):
        quotient, _ = np.polydiv(poly.coeffs, [1.0, -p])
        bt[j, : len(quotient)] = quotient[::-1]
    bt[n - 1] = poly.coeffs[::-1][:n]
    return at, g, bt


def identity_error(at, g, bt) -> float:
    rng = np.random.default_rng(0)
    d, w = rng.standard_normal(M_OUT + R_TAPS - 1), rng.standard_normal(R_TAPS)
    y = at @ ((g @ w) * (bt @ d))
    return float(np.abs(y - [d[i : i + R_TAPS] @ w for i in range(M_OUT)]).max())


def tile_error(at, g, bt, channels: int, relu_like: bool, rng) -> float:
    f = np.float32
    x = rng.standard_normal((6, 6, channels)).astype(f)
    if relu_like:
        x = np.maximum(x, 0) * 3
    w = (rng.standard_normal((3, 3, channels, 32)) / np.sqrt(9 * channels)).astype(f)
    ref = np.empty((M_OUT, M_OUT, 32))
    for i in range(M_OUT):
        for j in range(M_OUT):
            ref[i, j] = np.einsum("abc,abck->k", x[i : i + 3, j : j + 3].astype(np.float64), w)
    u = np.einsum("ia,abck,jb->ijck", g.astype(f), w, g.astype(f))
    v = np.einsum("ia,abc,jb->ijc", bt.astype(f), x, bt.astype(f))
    y = np.einsum("ai,ijk,bj->abk", at.astype(f), np.einsum("ijc,ijck->ijk", v, u), at.astype(f))
    return float(np.abs(y - ref).max() / max(1.0, np.abs(ref).max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    for points in ([0, 1, -1, 2, -2], [0, 1, -1, 0.5, -0.5]):
        at, g, bt = toom_cook(points)
        print(f"points {points} + infinity: 1-D identity error {identity_error(at, g, bt):.1e}")
        rng = np.random.default_rng(1)
        for channels in (32, 64, 256):
            for relu_like in (False, True):
                err = max(
                    tile_error(at, g, bt, channels, relu_like, rng) for _ in range(args.trials)
                )
                kind = "ReLU-like" if relu_like else "Gaussian "
                print(f"  {channels:3d} channels, {kind} inputs: max error {err:.2e}")


if __name__ == "__main__":
    main()
