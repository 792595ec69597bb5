// The forward pass: the indirect GEMM (few_channel.cpp and winograd.cpp hold the others; the
// list and the choice are in algorithms.cpp).
#include <cstdint>

#include "core/parallel.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d/algorithms.h"
#include "kernels/conv2d/passes.h"
#include "kernels/gemm.h"

namespace fastconv {
namespace conv2d_detail {

void forward_igemm(const KernelTable& kt, const Conv2dShape& s, const float* x, const float* kernel,
                   const float* bias, float* y, bool relu) {
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t N = s.out_c;
  const float* packed =
      pack_all_panels(PackStridedB{{kernel, N, 1}}, taps * s.in_c, N, kt.igemm_nr);
  igemm_convolution(kt, forward_gather(s, x), pixels, taps, N, packed, y, bias, relu,
                    threads_for_work(2.0 * pixels * taps * s.in_c * N));
}

}  // namespace conv2d_detail

void conv2d_forward(const Conv2dShape& s, const float* x, const float* kernel, const float* bias,
                    float* y, bool relu) {
  ConvOperands ops;
  ops.x = x;
  ops.kernel = kernel;
  ops.bias = bias;
  ops.out = y;
  ops.relu = relu;
  run_conv_pass(ConvPass::kForward, s, ops);
}

}  // namespace fastconv
