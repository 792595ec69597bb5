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
// Row GEMM tiles (rows, vectors of columns): default, tall (see kRowGemmTiles).
constexpr int kRowGemmShapes[][2] = {{4, 4}, {6, 2}};
constexpr int kPatchGradientRows = 4;

constexpr int kGemmMR = 4, kGemmVecs = 4;

constexpr const char* kIsaName = "generic";

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

const KernelTable& generic_kernel_table() {
  static const KernelTable table = make_kernel_table();
  return table;
}

}  // namespace fastconv
