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
// Row GEMM tiles (rows, vectors of columns): default, tall (see kRowGemmTiles).
constexpr int kRowGemmShapes[][2] = {{4, 2}, {6, 2}};
// 12 accumulators + 2 dy vectors + 1 broadcast of 16 registers
constexpr int kPatchGradientRows = 6;

// 6x16: 12 accumulators + 2 B vectors + 1 broadcast of the 16 YMM registers.
constexpr int kGemmMR = 6, kGemmVecs = 2;

constexpr const char* kIsaName = "avx2";

}  // namespace
}  // namespace fastconv

#include "kernels/ukernels/dots.inc"
#include "kernels/ukernels/few_channel.inc"
#include "kernels/ukernels/gemm.inc"
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
