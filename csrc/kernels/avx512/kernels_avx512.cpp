// AVX-512 kernels (this folder alone is compiled with -mavx512f/bw/dq/vl).
#include <immintrin.h>

#define FASTCONV_VEC_BYTES 64
#include "kernels/elementwise_impl.inc"
#include "kernels/kernel_table.h"
#define FASTCONV_STREAM_STORE(p, v) _mm512_stream_ps((p), (__m512)(v))
#define FASTCONV_VEC_MAX(a, b) (VecF) _mm512_max_ps((__m512)(a), (__m512)(b))
#include "kernels/ukernels/vec.inc"

namespace fastconv {
namespace {

constexpr int kIgemmMR = 8, kIgemmVecs = 2;
constexpr int kSmallDepthPixels = 14;
constexpr int kRowGemmMR = 8, kRowGemmVecs = 2;
// 28 accumulators + 2 dy vectors + 1 broadcast of 32 registers
constexpr int kPatchGradientRows = 14;

constexpr int kMR = 12;
constexpr int kNR = 32;

// 12x32 tile: 24 accumulators + 2 B vectors + 1 broadcast of the 32 ZMM registers.
void gemm_microkernel_12x32_avx512(int64_t kc, const float* a, const float* b, float* c,
                                   int64_t ldc, int mr, int nr, bool accumulate) {
  __m512 acc[kMR][2];
#pragma GCC unroll 12
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * kNR);
    const __m512 b1 = _mm512_loadu_ps(b + k * kNR + 16);
#pragma GCC unroll 12
    for (int i = 0; i < kMR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[k * kMR + i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  // Column masks cover the ragged right edge without a scalar tail.
  const int n0 = nr < 16 ? nr : 16;
  const int n1 = nr > 16 ? nr - 16 : 0;
  const __mmask16 mask0 = static_cast<__mmask16>((1u << n0) - 1u);
  const __mmask16 mask1 = static_cast<__mmask16>((1u << n1) - 1u);
  for (int i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(mask0, row));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(mask1, row + 16));
    }
    _mm512_mask_storeu_ps(row, mask0, acc[i][0]);
    _mm512_mask_storeu_ps(row + 16, mask1, acc[i][1]);
  }
}

constexpr const char* kIsaName = "avx512";
constexpr GemmMicrokernel kGemmMicrokernel = gemm_microkernel_12x32_avx512;

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

const KernelTable& avx512_kernel_table() {
  static const KernelTable table = make_kernel_table();
  return table;
}

}  // namespace fastconv
