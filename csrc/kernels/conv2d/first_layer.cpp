// The fused first-layer passes: the forward pass pooled band by band, and the weight gradient
// through the max pooling (the conv output gradient made a band at a time, never written out).
#include <cstdint>
#include <vector>

#include "core/dispatch.h"
#include "core/parallel.h"
#include "core/parallel_region.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d/algorithms.h"
#include "kernels/conv2d/few_channel.h"
#include "kernels/conv2d/weight_sums.h"
#include "kernels/pool2d.h"

namespace fastconv {

void conv2d_backward_weight_through_max_pool(const Conv2dShape& s, const Pool2dShape& p,
                                             const float* x, const float* y, const uint8_t* argmax,
                                             const float* pool_dy, float* dkernel, float* dbias) {
  using namespace conv2d_detail;
  const KernelTable& kt = active_kernels();
  const int64_t C = s.out_c;
  const int64_t kernel_size = s.kernel_h * s.kernel_w * s.in_c * C;
  // A band is the conv output rows under one row of pooling windows; what the windows do not
  // cover (the right columns and bottom rows that 'valid' pooling drops) gets no gradient.
  const int64_t bands = p.batch * p.out_h, covered_w = p.out_w * p.pool_w;
  const int64_t pixels = bands * p.pool_h * covered_w;
  const int threads = threads_for_work(2.0 * pixels * kernel_size);
  sum_over_threads(
      threads, kernel_size, C, dkernel, dbias, [&](int tid, int nt, float* dk, float* db) {
        PatchGradient sums(kt, s, x, db != nullptr);
        float* band =
            thread_scratch(Scratch::kColumns, static_cast<size_t>(p.pool_h * covered_w * C));
        std::vector<const float*> y_rows(static_cast<size_t>(p.pool_h));
        std::vector<float*> band_rows(static_cast<size_t>(p.pool_h));
        for (int64_t iy = 0; iy < p.pool_h; ++iy) band_rows[iy] = band + iy * covered_w * C;
        int64_t b0, b1;
        static_share(bands, tid, nt, b0, b1);
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t n = b / p.out_h, oy = b % p.out_h;
          const int64_t pooled_at = (n * p.out_h + oy) * p.out_w * C;
          if (argmax) {
            max_pool_backward_argmax_row(kt, p, oy, argmax + pooled_at, pool_dy + pooled_at,
                                         band_rows.data());
          } else {
            for (int64_t iy = 0; iy < p.pool_h; ++iy)
              y_rows[iy] = y + (n * s.out_h + oy * p.pool_h + iy) * s.out_w * C;
            max_pool_backward_row(kt, p, oy, y_rows.data(), band_rows.data(), pool_dy + pooled_at,
                                  false, true);
          }
          for (int64_t iy = 0; iy < p.pool_h; ++iy)
            sums.add_row(n, oy * p.pool_h + iy, 0, covered_w, band_rows[iy]);
        }
        sums.finish(dk, db);
      });
}

void conv2d_forward_max_pool(const Conv2dShape& s, const Pool2dShape& p, const float* x,
                             const float* kernel, const float* bias, float* y, float* pooled,
                             bool relu, uint8_t* argmax, float* scratch) {
  using namespace conv2d_detail;
  const KernelTable& kt = active_kernels();
  if (s.in_c > kSmallDepthChannels) {  // Winograd pooling its output tiles, or the two passes
    std::vector<float> own;
    if (!y) {
      ConvOperands ops;
      ops.x = x, ops.kernel = kernel, ops.bias = bias, ops.relu = relu;
      if (run_conv_forward_max_pool(s, p, ops, pooled, argmax)) return;
      if (!scratch) own.resize(static_cast<size_t>(s.batch * s.out_h * s.out_w * s.out_c));
      y = scratch ? scratch : own.data();
    }
    conv2d_forward(s, x, kernel, bias, y, relu);
    max_pool2d_forward(p, y, pooled, argmax, relu);
    return;
  }
  const SmallDepthConv conv(kt, s, kernel, bias, relu);
  const int64_t C = s.out_c, row_floats = s.out_w * C;
  // A band: the pool_h conv rows under one row of windows, pooled while in cache. The rows that
  // no window covers are still made when y is kept.
  const int64_t bands = p.batch * p.out_h, spare_rows = s.out_h - p.out_h * p.pool_h;
  const int64_t units = bands + (y ? p.batch * spare_rows : 0);
  parallel_region(threads_for_work(conv.flops()), [&](int tid, int nt) {
    PatchRows patches(s, x, 0);
    float* own_band =
        y ? nullptr : thread_scratch(Scratch::kColumns, static_cast<size_t>(p.pool_h * row_floats));
    std::vector<const float*> band_rows(static_cast<size_t>(p.pool_h));
    int64_t begin, end;
    static_share(units, tid, nt, begin, end);
    for (int64_t u = begin; u < end; ++u) {
      if (u >= bands) {  // a spare row of image n
        const int64_t n = (u - bands) / spare_rows,
                      oy = p.out_h * p.pool_h + (u - bands) % spare_rows;
        conv.row(patches, n, oy, y + (n * s.out_h + oy) * row_floats, false);
        continue;
      }
      const int64_t n = u / p.out_h, py = u % p.out_h;
      float* band = y ? y + (n * s.out_h + py * p.pool_h) * row_floats : own_band;
      for (int64_t iy = 0; iy < p.pool_h; ++iy) {
        conv.row(patches, n, py * p.pool_h + iy, band + iy * row_floats, false);
        band_rows[iy] = band + iy * row_floats;
      }
      const int64_t pooled_at = (n * p.out_h + py) * p.out_w * C;
      max_pool_forward_row(kt, p, py, band_rows.data(), pooled + pooled_at,
                           argmax ? argmax + pooled_at : nullptr, relu);
    }
  });
}

}  // namespace fastconv
