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
// Row GEMM tiles (rows, vectors of columns): default, tall (see kRowGemmTiles).
constexpr int kRowGemmShapes[][2] = {{8, 2}, {14, 2}};
// 28 accumulators + 2 dy vectors + 1 broadcast of 32 registers
constexpr int kPatchGradientRows = 14;

// 12x32: 24 accumulators + 2 B vectors + 1 broadcast of the 32 ZMM registers.
constexpr int kGemmMR = 12, kGemmVecs = 2;

constexpr const char* kIsaName = "avx512";

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

const KernelTable& avx512_kernel_table() {
  static const KernelTable table = make_kernel_table();
  return table;
}

}  // namespace fastconv
