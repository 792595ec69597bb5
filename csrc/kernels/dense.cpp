#include "kernels/dense.h"

#include <algorithm>

#include "core/dispatch.h"
#include "kernels/gemm.h"

namespace fastconv {

namespace {

// A classifier head has 1 or 10 units: a GEMM panel of NR columns would mostly compute padding.
// Dot products over contiguous rows of the transposed kernel do only the useful work.
void dense_forward_few_units(int64_t batch, int64_t in, int64_t out, const float* x,
                             const float* kernel, const float* bias, float* y, bool relu) {
  float* kernel_t = thread_scratch(Scratch::kPackB, static_cast<size_t>(in * out));
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o) kernel_t[o * in + i] = kernel[i * out + o];
  parallel_for_range(batch, 2.0 * in * out, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* row = x + b * in;
      for (int64_t o = 0; o < out; ++o) {
        const float* w = kernel_t + o * in;
        // Sixteen partial sums: the compiler may not reorder one float sum into vector lanes.
        float partial[16] = {};
        int64_t i = 0;
        for (; i + 16 <= in; i += 16)
          for (int j = 0; j < 16; ++j) partial[j] += row[i + j] * w[i + j];
        float sum = 0.0f;
        for (; i < in; ++i) sum += row[i] * w[i];
        for (int j = 0; j < 16; ++j) sum += partial[j];
        if (bias) sum += bias[o];
        y[b * out + o] = relu ? (sum > 0.0f ? sum : (sum != sum ? sum : 0.0f)) : sum;
      }
    }
  });
}

}  // namespace

void dense_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                   const float* bias, float* y, bool relu) {
  const KernelTable& kt = active_kernels();
  if (out * 2 <= kt.gemm_nr) {
    dense_forward_few_units(batch, in, out, x, kernel, bias, y, relu);
    return;
  }
  const BiasReluEpilogue epilogue{&kt, bias, relu};
  gemm(kt, batch, out, in, PackStridedA{{x, in, 1}}, PackStridedB{{kernel, out, 1}}, y, out, false,
       epilogue, threads_for_work(2.0 * batch * in * out));
}

void dense_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                    const float* dy, float* dx, float* dkernel, float* dbias) {
  const KernelTable& kt = active_kernels();
  const int threads = threads_for_work(2.0 * batch * in * out);
  if (dx)  // dx = dy . kernel^T
    gemm(kt, batch, in, out, PackStridedA{{dy, out, 1}}, PackStridedB{{kernel, 1, out}}, dx, in,
         false, NoEpilogue{}, threads);
  // dkernel = x^T . dy
  gemm(kt, in, out, batch, PackStridedA{{x, 1, in}}, PackStridedB{{dy, out, 1}}, dkernel, out,
       false, NoEpilogue{}, threads);
  if (dbias) {
    std::fill(dbias, dbias + out, 0.0f);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j = 0; j < out; ++j) dbias[j] += dy[b * out + j];
  }
}

}  // namespace fastconv
