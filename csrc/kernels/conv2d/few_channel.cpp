// The few-channel algorithms: the forward pass and the input gradient of layers with 1 to 4
// input channels.
#include "kernels/conv2d/few_channel.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel_region.h"
#include "kernels/conv2d/passes.h"

namespace fastconv {
namespace conv2d_detail {

void forward_few_channel(const KernelTable& kt, const Conv2dShape& s, const float* x,
                         const float* kernel, const float* bias, float* y, bool relu) {
  const SmallDepthConv conv(kt, s, kernel, bias, relu);
  const bool stream = streams_output(y, s.batch * s.out_h * s.out_w, s.out_c);
  parallel_region(threads_for_work(conv.flops()), [&](int tid, int nt) {
    PatchRows patches(s, x, 0);
    int64_t begin, end;
    static_share(s.batch * s.out_h, tid, nt, begin, end);
    for (int64_t row = begin; row < end; ++row)
      conv.row(patches, row / s.out_h, row % s.out_h, y + row * s.out_w * s.out_c, stream);
    if (stream) kt.store_fence();
  });
}

// The input gradient of a stride-1 layer with 1 to 4 input channels and a small patch (a 3x3
// kernel over one channel), an image row at a time: each input pixel's taps read dy in place, the
// interior of a row as one run whose dy pointers advance by a pixel per pixel, the border pixels
// one by one with the taps that land inside dy. col2im would fill its GEMM panels at most half
// (A.conv1: 9 of 32 columns).
void backward_input_few_channel(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                                const float* kernel, float* dx) {
  const int64_t taps = s.kernel_h * s.kernel_w, out_c = s.out_c, in_c = s.in_c;
  // Input columns whose every kernel column lands inside dy's row.
  const int64_t ix_lo = std::max<int64_t>(0, (s.kernel_w - 1) * s.dilation_w - s.pad_left);
  const int64_t ix_hi = std::max(ix_lo, std::min(s.in_w, s.out_w - s.pad_left));
  const int threads = threads_for_work(2.0 * s.batch * s.out_h * s.out_w * taps * out_c * in_c);
  parallel_region(threads, [&](int tid, int nt) {
    thread_local std::vector<const float*> storage;
    storage.resize(static_cast<size_t>(2 * taps));
    const float** dy_taps = storage.data();  // plain pointers: see igemm_convolution
    const float** w_taps = dy_taps + taps;
    // The taps of input pixel (n, iy, ix0) for kernel columns b where ox = ix0 + pad_left -
    // b * dilation_w is inside dy for every ix in [ix0, ix1); returns their count.
    auto gather_taps = [&](int64_t n, int64_t iy, int64_t ix0, int64_t ix1) {
      int count = 0;
      for (int64_t a = 0; a < s.kernel_h; ++a) {
        const int64_t oy = iy + s.pad_top - a * s.dilation_h;
        if (oy < 0 || oy >= s.out_h) continue;
        for (int64_t b = 0; b < s.kernel_w; ++b) {
          const int64_t ox = ix0 + s.pad_left - b * s.dilation_w;
          if (ox < 0 || ox + (ix1 - ix0 - 1) >= s.out_w) continue;
          dy_taps[count] = dy + ((n * s.out_h + oy) * s.out_w + ox) * out_c;
          w_taps[count++] = kernel + (a * s.kernel_w + b) * in_c * out_c;
        }
      }
      return count;
    };
    int64_t begin, end;
    static_share(s.batch * s.in_h, tid, nt, begin, end);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / s.in_h, iy = row % s.in_h;
      float* dx_row = dx + row * s.in_w * in_c;
      auto single = [&](int64_t ix) {
        kt.small_depth_dx(static_cast<int>(in_c), 1, gather_taps(n, iy, ix, ix + 1), dy_taps,
                          w_taps, out_c, dx_row + ix * in_c);
      };
      const int64_t left_end = ix_lo < ix_hi ? ix_lo : s.in_w;
      for (int64_t ix = 0; ix < left_end; ++ix) single(ix);
      if (ix_lo < ix_hi)
        kt.small_depth_dx(static_cast<int>(in_c), ix_hi - ix_lo, gather_taps(n, iy, ix_lo, ix_hi),
                          dy_taps, w_taps, out_c, dx_row + ix_lo * in_c);
      for (int64_t ix = ix_lo < ix_hi ? ix_hi : s.in_w; ix < s.in_w; ++ix) single(ix);
    }
  });
}

}  // namespace conv2d_detail
}  // namespace fastconv
