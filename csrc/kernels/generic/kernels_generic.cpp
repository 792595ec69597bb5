// Portable C++ kernels: the twin every SIMD kernel is tested against, and the path for CPUs
// without AVX2.
#define FASTCONV_VEC_BYTES 16
#include "kernels/elementwise_impl.inc"
#include "kernels/kernel_table.h"
#include "kernels/ukernels/vec.inc"

namespace fastconv {
namespace {

constexpr int kIgemmMR = 4, kIgemmVecs = 4;
constexpr int kSmallDepthPixels = 4;
constexpr int kRowGemmMR = 4, kRowGemmVecs = 4;
constexpr int kPatchGradientRows = 4;

constexpr int kMR = 4;
constexpr int kNR = 16;

void gemm_microkernel_4x16_generic(int64_t kc, const float* a, const float* b, float* c,
                                   int64_t ldc, int mr, int nr, bool accumulate) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* ak = a + k * kMR;
    const float* bk = b + k * kNR;
    for (int i = 0; i < kMR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] += ak[i] * bk[j];
  }
  for (int i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    if (accumulate)
      for (int j = 0; j < nr; ++j) row[j] += acc[i][j];
    else
      for (int j = 0; j < nr; ++j) row[j] = acc[i][j];
  }
}

constexpr const char* kIsaName = "generic";
constexpr GemmMicrokernel kGemmMicrokernel = gemm_microkernel_4x16_generic;

}  // namespace
}  // namespace fastconv

#include "kernels/ukernels/dots.inc"
#include "kernels/ukernels/few_channel.inc"
#include "kernels/ukernels/igemm.inc"
#include "kernels/ukernels/pooling.inc"
#include "kernels/ukernels/rowgemm.inc"
#include "kernels/ukernels/winograd.inc"

// After the families: the table fills its fields from them.
#include "kernels/ukernels/table.inc"

namespace fastconv {

const KernelTable& generic_kernel_table() {
  static const KernelTable table = make_kernel_table();
  return table;
}

}  // namespace fastconv
