#pragma once
// conv2d forward, input gradient and weight gradient over NHWC activations and Keras' kernel
// layout (kh, kw, in_channels, out_channels). All three are implicit GEMMs: the image is gathered
// into packed panels tile by tile, never into a full im2col buffer.
#include <cstdint>

#include "kernels/pool2d.h"

namespace fastconv {

struct Conv2dShape {
  int64_t batch, in_h, in_w, in_c;
  int64_t out_h, out_w, out_c;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t dilation_h, dilation_w;
  int64_t pad_top, pad_left;
};

void conv2d_forward(const Conv2dShape& s, const float* x, const float* kernel, const float* bias,
                    float* y, bool relu);
void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* kernel, float* dx);
// dbias may be null.
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dkernel,
                            float* dbias);
// The forward pass followed by a max pooling p that tiles its output (stride = pool size, no
// padding): each band of conv rows under a row of windows is pooled while in cache. y (the conv
// output, may be null when not needed) and pooled are written; argmax (may be null) gets each
// pooled value's first maximal cell, the tape the gradient needs instead of y (see
// max_pool2d_forward; with relu, windows whose maximum is not > 0 pass nothing). Without y, a
// layer that takes the two passes writes its conv output to scratch (s's output size; the
// caller's, e.g. from a model's memory plan), or to memory of its own when scratch is null.
void conv2d_forward_max_pool(const Conv2dShape& s, const Pool2dShape& p, const float* x,
                             const float* kernel, const float* bias, float* y, float* pooled,
                             bool relu, uint8_t* argmax = nullptr, float* scratch = nullptr);
// The weight gradient of a ReLU convolution whose output y feeds a max pooling p that tiles it
// (stride = pool size, no padding), from the pooling's output gradient: the convolution's own
// output gradient is made a band of rows at a time, in cache, and never written out. For the
// first layer of a model (no input gradient), whose outputs are the largest. The pooling's
// cells come from y or, where y is null, from the forward pass's argmax.
void conv2d_backward_weight_through_max_pool(const Conv2dShape& s, const Pool2dShape& p,
                                             const float* x, const float* y, const uint8_t* argmax,
                                             const float* pool_dy, float* dkernel, float* dbias);

}  // namespace fastconv
