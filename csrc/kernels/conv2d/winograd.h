#pragma once
// Winograd F(2x2, 3x3) convolution, an opt-in for 3x3 stride-1 layers: 16 multiplies per 2x2
// output tile and channel pair instead of 36 (2.25x fewer), at the cost of transforms and a
// small loss of accuracy (measured in tests/test_winograd.py). Off unless the user asks.
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/kernel_table.h"

namespace fastconv {

bool winograd_enabled();
void set_winograd_enabled(bool enabled);

// Whether the Winograd path runs this convolution's forward pass (or input gradient): a 3x3
// kernel, stride 1, no dilation, and a result large enough for the transforms to pay.
bool winograd_applies(const Conv2dShape& s, bool input_gradient);

// The forward pass, input gradient and weight gradient of such a convolution by Winograd, with
// the caller's kernel table (read once per call: another thread may switch the ISA meanwhile).
void winograd_conv2d_forward(const KernelTable& kt, const Conv2dShape& s, const float* x,
                             const float* kernel, const float* bias, float* y, bool relu);
void winograd_conv2d_backward_input(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                                    const float* kernel, float* dx);
// dkernel only; the caller sums the bias gradient. Needs in_c to be a multiple of the table's
// row-pointer kernel height (winograd_weight_gradient_applies).
void winograd_conv2d_backward_weight(const KernelTable& kt, const Conv2dShape& s, const float* x,
                                     const float* dy, float* dkernel);
bool winograd_weight_gradient_applies(const KernelTable& kt, const Conv2dShape& s);

}  // namespace fastconv
