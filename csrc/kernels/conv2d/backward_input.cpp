// The input gradient: the transposed indirect GEMM and col2im (the few-channel path is in
// few_channel.cpp).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "core/parallel_region.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d/algorithms.h"
#include "kernels/conv2d/passes.h"
#include "kernels/gemm.h"

namespace fastconv {
namespace conv2d_detail {

// The input gradient as a GEMM and a scatter (col2im): columns[p, (tap, ci)] = sum over co of
// dy[p, co] * kernel[(tap, ci), co] for output pixels p, then each column entry is added to the
// input pixel its tap reads. This does the forward pass's arithmetic only, where the indirect
// GEMM over input pixels also multiplies the zeros between strided outputs and around small
// images (a 5x5 input under a 3x3 output has 2.8x as many pixels), and its N is taps x in_c
// instead of in_c (1 or 3 for an image, which would fill 1/16 of a vector panel).
//
// The GEMM is the indirect microkernel with one tap (row pointers into dy: nothing is packed but
// the kernel), and each MR-pixel tile of columns is scattered while it is in cache. Threads own
// whole images, so no two threads add to the same input pixel.
void backward_input_col2im(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                           const float* kernel, float* dx) {
  const int mr = kt.igemm_mr, nr = kt.igemm_nr;
  const int64_t width = s.kernel_h * s.kernel_w * s.in_c;
  const int64_t padded_width = (width + nr - 1) / nr * nr;
  const int64_t out_pixels = s.out_h * s.out_w, in_image = s.in_h * s.in_w * s.in_c;
  const float* packed = pack_all_panels(PackStridedB{{kernel, 1, s.out_c}}, s.out_c, width, nr);
  const TapGather g = forward_gather(s, nullptr);
  const int threads = threads_for_work(2.0 * s.batch * out_pixels * width * s.out_c);
  parallel_region(threads, [&](int tid, int nt) {
    float* columns = thread_scratch(Scratch::kColumns, static_cast<size_t>(mr * padded_width));
    thread_local std::vector<const float*> rows_storage;
    rows_storage.resize(static_cast<size_t>(mr));
    const float** rows = rows_storage.data();  // plain pointers: see igemm_convolution
    const int32_t tap0 = 0;
    int64_t n_begin, n_end;
    static_share(s.batch, tid, nt, n_begin, n_end);
    if (n_begin >= n_end) return;
    std::memset(dx + n_begin * in_image, 0, (n_end - n_begin) * in_image * sizeof(float));
    const int64_t p_end = n_end * out_pixels;
    TapGather::Cursor c = g.cursor(n_begin * out_pixels);
    for (int64_t p0 = n_begin * out_pixels; p0 < p_end; p0 += mr) {
      const int valid = static_cast<int>(std::min<int64_t>(mr, p_end - p0));
      for (int i = 0; i < mr; ++i) rows[i] = dy + (p0 + std::min(i, valid - 1)) * s.out_c;
      for (int64_t col = 0; col < width; col += nr)
        kt.igemm_microkernel(1, s.out_c, rows, &tap0, packed + col * s.out_c, columns + col,
                             padded_width, valid, nr, nullptr, false, false);
      // The tile's pixels in segments, one per output row it touches (small images put several
      // rows in a tile). A segment whose every tap is inside the image (all of a 'valid'
      // convolution's) needs no bounds checks, and its pixels' targets advance by a fixed step.
      for (int i0 = 0; i0 < valid;) {
        const int len = static_cast<int>(std::min<int64_t>(valid - i0, s.out_w - c.x));
        const float* seg_columns = columns + i0 * padded_width;
        const int64_t sy0 = c.y * g.stride_h - g.pad_top, sx0 = c.x * g.stride_w - g.pad_left;
        if (sy0 >= 0 && sy0 + (s.kernel_h - 1) * g.dilation_h < s.in_h && sx0 >= 0 &&
            sx0 + (len - 1) * g.stride_w + (s.kernel_w - 1) * g.dilation_w < s.in_w) {
          float* base = dx + ((c.n * s.in_h + sy0) * s.in_w + sx0) * s.in_c;
          for (int64_t a = 0; a < s.kernel_h; ++a)
            for (int64_t b = 0; b < s.kernel_w; ++b) {
              kt.add_rows(len, s.in_c, seg_columns + (a * s.kernel_w + b) * s.in_c, padded_width,
                          base + (a * g.dilation_h * s.in_w + b * g.dilation_w) * s.in_c,
                          g.stride_w * s.in_c);
            }
          c.x += len - 1;  // to the segment's last pixel, then on to the next row
          g.advance(c);
          i0 += len;
          continue;
        }
        for (int i = 0; i < len; ++i, g.advance(c)) {
          const float* column = seg_columns + i * padded_width;
          float* image = dx + c.n * in_image;
          for (int64_t a = 0; a < s.kernel_h; ++a) {
            const int64_t sy = c.y * g.stride_h - g.pad_top + a * g.dilation_h;
            if (sy < 0 || sy >= s.in_h) continue;
            for (int64_t b = 0; b < s.kernel_w; ++b) {
              const int64_t sx = c.x * g.stride_w - g.pad_left + b * g.dilation_w;
              if (sx < 0 || sx >= s.in_w) continue;
              kt.add_rows(1, s.in_c, column + (a * s.kernel_w + b) * s.in_c, 0,
                          image + (sy * s.in_w + sx) * s.in_c, 0);
            }
          }
        }
        i0 += len;
      }
    }
  });
}

void backward_input_igemm(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                          const float* kernel, float* dx) {
  const int64_t pixels = s.batch * s.in_h * s.in_w;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t N = s.in_c;
  const float* packed = pack_all_panels(PackKernelTransposed{kernel, s.in_c, s.out_c, s.kernel_w},
                                        taps * s.out_c, N, kt.igemm_nr);
  igemm_convolution(kt, transposed_gather(s, dy), pixels, taps, N, packed, dx, nullptr, false,
                    threads_for_work(2.0 * pixels * taps * s.out_c * N));
}

}  // namespace conv2d_detail

void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* kernel, float* dx) {
  ConvOperands ops;
  ops.dy = dy;
  ops.kernel = kernel;
  ops.out = dx;
  run_conv_pass(ConvPass::kInputGradient, s, ops);
}

}  // namespace fastconv
