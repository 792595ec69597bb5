#include "kernels/dense.h"

#include <algorithm>

#include "core/dispatch.h"
#include "kernels/gemm.h"

namespace fastconv {

void dense_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                   const float* bias, float* y, bool relu) {
  const KernelTable& kt = active_kernels();
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
