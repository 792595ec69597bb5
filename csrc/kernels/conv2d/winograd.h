#pragma once
// Winograd F(2x2, 3x3) convolution for 3x3 stride-1 undilated layers: 16 multiplies per 2x2
// output tile and channel pair instead of 36 (2.25x fewer), at the cost of transforms and a
// rounding of its own (bounded in tests/kernels/test_conv_algorithms.py). One of the algorithms
// of algorithms.cpp, which says when it can take a problem.
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/kernel_table.h"
#include "kernels/pool2d.h"

namespace fastconv {

// The forward pass, input gradient and weight gradient (dkernel only; the caller sums the bias
// gradient) by Winograd, with the caller's kernel table. Each returns false when a value of its
// result was not finite (before bias and ReLU): an infinity or NaN in the inputs, or an overflow in
// the transforms. The transforms subtract, so such a result may hold NaN where the direct sum holds
// an infinity, or the other way after a ReLU: the caller redoes the call with a direct algorithm.
bool winograd_conv2d_forward(const KernelTable& kt, const Conv2dShape& s, const float* x,
                             const float* kernel, const float* bias, float* y, bool relu);
// The forward pass and a 2x2, stride-2 'valid' max pooling in one (p: that pooling of s's
// output), the conv output never written: each 2x2 output tile is one pooling window, and the
// tiles that the pooling drops (an odd last row or column) are never computed.
bool winograd_conv2d_forward_max_pool(const KernelTable& kt, const Conv2dShape& s,
                                      const Pool2dShape& p, const float* x, const float* kernel,
                                      const float* bias, float* pooled, bool relu, uint8_t* argmax);
bool winograd_conv2d_backward_input(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                                    const float* kernel, float* dx);
bool winograd_conv2d_backward_weight(const KernelTable& kt, const Conv2dShape& s, const float* x,
                                     const float* dy, float* dkernel);

}  // namespace fastconv
