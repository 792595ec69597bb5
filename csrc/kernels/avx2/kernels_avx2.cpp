// AVX2 + FMA kernels (this folder alone is compiled with -mavx2 -mfma).
#include <immintrin.h>

#define FASTCONV_VEC_BYTES 32
#include "kernels/elementwise_impl.inc"
#include "kernels/kernel_table.h"
#define FASTCONV_STREAM_STORE(p, v) _mm256_stream_ps((p), (__m256)(v))
#define FASTCONV_VEC_MAX(a, b) (VecF) _mm256_max_ps((__m256)(a), (__m256)(b))
#include "kernels/ukernels/vec.inc"

namespace fastconv {
namespace {

constexpr int kIgemmMR = 6, kIgemmVecs = 2;
constexpr int kSmallDepthPixels = 6;
constexpr int kRowGemmMR = 4, kRowGemmVecs = 2;
// 12 accumulators + 2 dy vectors + 1 broadcast of 16 registers
constexpr int kPatchGradientRows = 6;

constexpr int kMR = 6;
constexpr int kNR = 16;

// 6x16 tile: 12 accumulators + 2 B vectors + 1 broadcast fit the 16 YMM registers.
void gemm_microkernel_6x16_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                int mr, int nr, bool accumulate) {
  __m256 acc[kMR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * kNR);
    const __m256 b1 = _mm256_loadu_ps(b + k * kNR + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + k * kMR + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  if (nr == kNR) {
    for (int i = 0; i < mr; ++i) {
      float* row = c + i * ldc;
      if (accumulate) {
        acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(row));
        acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(row + 8));
      }
      _mm256_storeu_ps(row, acc[i][0]);
      _mm256_storeu_ps(row + 8, acc[i][1]);
    }
    return;
  }
  alignas(32) float tile[kNR];
  for (int i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    _mm256_store_ps(tile, acc[i][0]);
    _mm256_store_ps(tile + 8, acc[i][1]);
    if (accumulate)
      for (int j = 0; j < nr; ++j) row[j] += tile[j];
    else
      for (int j = 0; j < nr; ++j) row[j] = tile[j];
  }
}

constexpr const char* kIsaName = "avx2";
constexpr GemmMicrokernel kGemmMicrokernel = gemm_microkernel_6x16_avx2;

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

const KernelTable& avx2_kernel_table() {
  static const KernelTable table = make_kernel_table();
  return table;
}

}  // namespace fastconv
