#pragma once
// Max and average pooling over NHWC, with Keras' 'same' semantics: padded cells never win a max
// and never count in an average.
#include <cstdint>

namespace fastconv {

struct Pool2dShape {
  int64_t batch, in_h, in_w, channels;
  int64_t out_h, out_w;
  int64_t pool_h, pool_w;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;
};

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y);
// Ties send the gradient to the first maximal cell in row-major window order. With
// through_relu, x is a ReLU's output and dx is the gradient with respect to the ReLU's input
// (windows whose maximum is 0 pass nothing), saving a separate ReLU-gradient pass.
void max_pool2d_backward(const Pool2dShape& s, const float* x, const float* dy, float* dx,
                         bool through_relu);
void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y);
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx);

}  // namespace fastconv
