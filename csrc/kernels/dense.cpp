#include "kernels/dense.h"

#include <algorithm>
#include <vector>

#include "core/dispatch.h"
#include "kernels/gemm.h"

namespace fastconv {

namespace {

// A classifier head has 1 or 10 units: a GEMM panel of NR columns would mostly compute padding.
// Dot products and row updates (axpy) over contiguous rows of the transposed kernel do only the
// useful work, vectorised by the ISA's kernels. They beat the packed GEMM at batch 32-64 up to
// 64 units on AVX2 (1152 -> 10: 29 us against 200 forward, 76 against 276 backward; 1152 -> 64:
// 187 against 486 and 423 against 1000; one thread, python bench/experiments/dense_units.py; the
// GEMM's times from before this threshold).
constexpr int64_t kFewUnits = 64;
bool few_units(int64_t out) { return out <= kFewUnits; }

// kernel (in x out) transposed to out rows of `in` floats, in the calling thread's scratch.
const float* transposed_kernel(int64_t in, int64_t out, const float* kernel) {
  float* kernel_t = thread_scratch(Scratch::kPackB, static_cast<size_t>(in * out));
  constexpr int64_t kBlock = 64;  // a block of kernel rows (kBlock x out) stays in L1
  for (int64_t i0 = 0; i0 < in; i0 += kBlock) {
    const int64_t i1 = std::min(in, i0 + kBlock);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = i0; i < i1; ++i) kernel_t[o * in + i] = kernel[i * out + o];
  }
  return kernel_t;
}

// One thread's dot products at roughly 50 GFLOP/s (AVX2, the rows in L2).
constexpr double kNanosPerFlop = 0.02;

void dense_forward_few_units(const KernelTable& kt, int64_t batch, int64_t in, int64_t out,
                             const float* x, const float* kernel, const float* bias, float* y,
                             bool relu) {
  const float* kernel_t = transposed_kernel(in, out, kernel);
  parallel_for_range(batch, kNanosPerFlop * 2.0 * in * out, [&](int64_t b0, int64_t b1) {
    kt.dots(b1 - b0, in, x + b0 * in, kernel_t, out, y + b0 * out);
    for (int64_t b = b0; b < b1; ++b) {
      float* row = y + b * out;
      for (int64_t o = 0; o < out; ++o) {
        const float sum = bias ? row[o] + bias[o] : row[o];
        row[o] = relu ? (sum > 0.0f ? sum : (sum != sum ? sum : 0.0f)) : sum;
      }
    }
  });
}

// dkernel_t[o, i] = sum_b dy[b, o] x[b, i] and dx[b, i] = sum_o dy[b, o] kernel_t[o, i], both
// with the row-pointer microkernel, vectors running along i: no panel of padding columns. Its
// reads along dy's units come from dy's rows, along the batch from a transposed copy of dy.
// Threads split the `in` columns, so nothing needs reducing.
void dense_backward_few_units(const KernelTable& kt, int64_t batch, int64_t in, int64_t out,
                              const float* x, const float* kernel, const float* dy, float* dx,
                              float* dkernel) {
  const int mr = kt.rowgemm[0].mr, nr = kt.rowgemm[0].nr;
  const float* kernel_t = dx ? transposed_kernel(in, out, kernel) : nullptr;
  float* dkernel_t = thread_scratch(Scratch::kPartial, static_cast<size_t>(in * out));
  float* dy_t = thread_scratch(Scratch::kPackA, static_cast<size_t>(out * batch));  // out x batch
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t o = 0; o < out; ++o) dy_t[o * batch + b] = dy[b * out + o];
  std::vector<const float*> rows(static_cast<size_t>(2 * batch + 2 * out));
  const float** dy_rows = rows.data();          // [b] -> dy row
  const float** x_rows = dy_rows + batch;       // [b] -> x row
  const float** dy_t_rows = x_rows + batch;     // [o] -> dy_t row
  const float** kernel_rows = dy_t_rows + out;  // [o] -> kernel_t row
  for (int64_t b = 0; b < batch; ++b) dy_rows[b] = dy + b * out, x_rows[b] = x + b * in;
  for (int64_t o = 0; o < out; ++o)
    dy_t_rows[o] = dy_t + o * batch, kernel_rows[o] = kernel_t ? kernel_t + o * in : nullptr;
  const int64_t blocks = (in + nr - 1) / nr;
  const double nanos = 0.01 * 2.0 * nr * batch * out * (dx ? 2 : 1);
  parallel_for_range(blocks, nanos, [&](int64_t k0, int64_t k1) {
    for (int64_t i0 = k0 * nr; i0 < std::min(in, k1 * nr); i0 += nr) {
      const int cols = static_cast<int>(std::min<int64_t>(nr, in - i0));
      for (int64_t o0 = 0; o0 < out; o0 += mr)
        kt.rowgemm[0].run(batch, dy_rows, o0, x_rows, i0, dkernel_t + o0 * in + i0, in,
                          static_cast<int>(std::min<int64_t>(mr, out - o0)), cols, false);
      if (!dx) continue;
      for (int64_t b0 = 0; b0 < batch; b0 += mr)
        kt.rowgemm[0].run(out, dy_t_rows, b0, kernel_rows, i0, dx + b0 * in + i0, in,
                          static_cast<int>(std::min<int64_t>(mr, batch - b0)), cols, false);
    }
  });
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o) dkernel[i * out + o] = dkernel_t[o * in + i];
}

}  // namespace

void dense_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                   const float* bias, float* y, bool relu) {
  const KernelTable& kt = active_kernels();
  if (few_units(out)) {
    dense_forward_few_units(kt, batch, in, out, x, kernel, bias, y, relu);
    return;
  }
  const BiasReluEpilogue epilogue{&kt, bias, relu};
  gemm(kt, batch, out, in, PackStridedA{{x, in, 1}}, PackStridedB{{kernel, out, 1}}, y, out, false,
       epilogue, threads_for_work(2.0 * batch * in * out));
}

void dense_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                    const float* dy, float* dx, float* dkernel, float* dbias) {
  const KernelTable& kt = active_kernels();
  if (few_units(out)) {
    dense_backward_few_units(kt, batch, in, out, x, kernel, dy, dx, dkernel);
  } else {
    const int threads = threads_for_work(2.0 * batch * in * out);
    if (dx)  // dx = dy . kernel^T
      gemm(kt, batch, in, out, PackStridedA{{dy, out, 1}}, PackStridedB{{kernel, 1, out}}, dx, in,
           false, NoEpilogue{}, threads);
    // dkernel = x^T . dy
    gemm(kt, in, out, batch, PackStridedA{{x, 1, in}}, PackStridedB{{dy, out, 1}}, dkernel, out,
         false, NoEpilogue{}, threads);
  }
  if (dbias) {
    std::fill(dbias, dbias + out, 0.0f);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j = 0; j < out; ++j) dbias[j] += dy[b * out + j];
  }
}

}  // namespace fastconv
