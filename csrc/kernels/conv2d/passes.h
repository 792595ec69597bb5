#pragma once
// The convolution algorithms, one function each, over one kernel table (read once per call by
// the pass: another thread may switch the ISA meanwhile). Each writes its whole output (nothing
// accumulates into what the caller passed), so the selection may run several on one call.
// Which algorithm may take which problem, and which one runs, is decided in algorithms.cpp.
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/conv2d/gather.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace conv2d_detail {

// Indirect-GEMM convolution over a gathered grid (indirect_gemm.cpp): out[pixels, N] = sum over
// taps of source rows times the packed B (all of K, NR-column panels), with bias and ReLU.
void igemm_convolution(const KernelTable& kt, const TapGather& g, int64_t pixels, int64_t taps,
                       int64_t N, const float* packed_b, float* out, const float* bias, bool relu,
                       int threads);

// Forward pass (y, bias and ReLU fused).
void forward_igemm(const KernelTable& kt, const Conv2dShape& s, const float* x, const float* kernel,
                   const float* bias, float* y, bool relu);
void forward_few_channel(const KernelTable& kt, const Conv2dShape& s, const float* x,
                         const float* kernel, const float* bias, float* y, bool relu);

// Input gradient (dx).
void backward_input_igemm(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                          const float* kernel, float* dx);
void backward_input_col2im(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                           const float* kernel, float* dx);
void backward_input_few_channel(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                                const float* kernel, float* dx);

// Weight gradient (dkernel; dbias too when not null); the row GEMM with one of the table's tiles.
void backward_weight_rowgemm(const KernelTable& kt, const RowGemmTile& tile, const Conv2dShape& s,
                             const float* x, const float* dy, float* dkernel, float* dbias);
void backward_weight_packed(const KernelTable& kt, const Conv2dShape& s, const float* x,
                            const float* dy, float* dkernel, float* dbias);
void backward_weight_patches(const KernelTable& kt, const Conv2dShape& s, const float* x,
                             const float* dy, float* dkernel, float* dbias);
// false when dkernel held a value that is not finite (see winograd.h).
bool backward_weight_winograd(const KernelTable& kt, const Conv2dShape& s, const float* x,
                              const float* dy, float* dkernel, float* dbias);

}  // namespace conv2d_detail
}  // namespace fastconv
