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

// With argmax (windows of at most 254 cells), also each pooled value's first maximal cell: the
// tape a gradient needs, one byte per pooled value instead of x (see max_pool_forward_run in
// kernel_table.h; positive_only: x is a ReLU's output, whose zero windows pass nothing).
void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax = nullptr,
                        bool positive_only = false);
// Ties send the gradient to the first maximal cell in row-major window order. With
// through_relu, x is a ReLU's output and dx is the gradient with respect to the ReLU's input
// (windows whose maximum is 0 pass nothing), saving a separate ReLU-gradient pass. With argmax
// (from max_pool2d_forward; windows must not overlap) x is not read: the cells come from it.
void max_pool2d_backward(const Pool2dShape& s, const float* x, const uint8_t* argmax,
                         const float* dy, float* dx, bool through_relu);
void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y);

struct KernelTable;
// One output row oy of max pooling (one image), for callers that keep the input rows where they
// like (the fused first layer, in a band in cache): rows[r] is input row window_top(oy) + r,
// where window_top is the first row inside the image under row oy's windows.
void max_pool_forward_row(const KernelTable& kt, const Pool2dShape& s, int64_t oy,
                          const float* const* rows, float* out_row, uint8_t* argmax_row = nullptr,
                          bool positive_only = false);
// The gradient of row oy from its argmax row: every cell under the row's windows is written.
void max_pool_backward_argmax_row(const KernelTable& kt, const Pool2dShape& s, int64_t oy,
                                  const uint8_t* argmax_row, const float* dy_row,
                                  float* const* dx_rows);
// Its gradient for output row oy: dy_row's values go to the first maximal cells (written, or
// added with accumulate), every other cell under the windows gets 0 (see max_pool2d_backward).
void max_pool_backward_row(const KernelTable& kt, const Pool2dShape& s, int64_t oy,
                           const float* const* x_rows, float* const* dx_rows, const float* dy_row,
                           bool accumulate, bool through_relu);
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx);

}  // namespace fastconv
