#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/parallel_region.h"
#include "core/workspace.h"
#include "kernels/conv2d/passes.h"

namespace fastconv {
namespace conv2d_detail {

// Indirect-GEMM convolution: out[pixels, N] = sum over taps of source rows times packed B. The
// B panels (all of K) are packed once by the caller; each thread builds the row pointers of its
// MR-pixel tiles and keeps each output tile in registers over the whole depth.
//
// In the forward pass without horizontal dilation, the kernel_w taps of one kernel row read
// kernel_w * channels consecutive floats (neighbouring pixels of one image row), and the packed B
// rows of those taps are consecutive too. Such a tile runs as kernel_h "wide" taps of that depth:
// with 1 or 3 input channels this is 3x fewer row pointers and 3x longer inner loops. Tiles where
// a kernel row straddles the left or right padding use the plain taps.
void igemm_convolution(const KernelTable& kt, const TapGather& g, int64_t pixels, int64_t taps,
                       int64_t N, const float* packed_b, float* out, const float* bias, bool relu,
                       int threads) {
  const bool stream = streams_output(out, pixels, N);
  const int mr = kt.igemm_mr, nr = kt.igemm_nr;
  const int64_t K = taps * g.channels;
  const int64_t tiles = (pixels + mr - 1) / mr;
  const int64_t n_panels = (N + nr - 1) / nr;
  const bool can_widen = g.dilation_w == 1 && g.kernel_w > 1 && (!g.transposed || g.stride_w == 1);
  // A wide tap starts at the kernel column that reads the leftmost source pixel.
  const int64_t wide_first_b = g.transposed ? g.kernel_w - 1 : 0;
  const int64_t wide_last_b = g.transposed ? 0 : g.kernel_w - 1;
  const int64_t wide_taps = taps / g.kernel_w, wide_channels = g.kernel_w * g.channels;
  parallel_region(threads, [&](int tid, int nt) {
    // Padding taps read this zero row; it lives in the thread's own scratch.
    const int64_t zero_floats = can_widen ? wide_channels : g.channels;
    float* zeros = thread_scratch(Scratch::kZeros, static_cast<size_t>(zero_floats));
    std::memset(zeros, 0, zero_floats * sizeof(float));
    // Thread-local storage is reached through plain pointers in the loops: in a shared library
    // every access to a thread_local may otherwise be a call to __tls_get_addr.
    thread_local std::vector<const float*> rows_storage;
    thread_local std::vector<int32_t> tap_ids_storage;
    rows_storage.resize(static_cast<size_t>(taps * mr));
    tap_ids_storage.resize(static_cast<size_t>(taps));
    const float** rows = rows_storage.data();
    int32_t* tap_ids = tap_ids_storage.data();
    const int64_t step = (g.transposed ? 1 : g.stride_w) * g.channels;
    enum class Fill { kRows, kPadding, kStraddles };
    // Writes to dst the row pointers of tap (a, b) for the tile's rows, or of the wide tap of
    // kernel row a when `wide` (then kStraddles when a row is neither wholly inside the image
    // nor wholly in the top or bottom padding). kPadding: every row reads padding, no work.
    auto tap_rows = [&](const TapGather::Cursor& first, int valid, int64_t a, int64_t b, bool wide,
                        const float** dst) {
      const int64_t last_b = wide ? wide_last_b : b;
      bool any = false;
      TapGather::Cursor c = first;
      // The tile's pixels run in segments, one per grid row it touches (small images put several
      // rows in one tile). Within a segment the source column moves linearly with the output
      // column, so a tap inside the image at the segment's first and last pixels is inside for
      // all of them, and its rows are one pointer plus steps.
      for (int i0 = 0; i0 < valid;) {
        const int len = static_cast<int>(std::min<int64_t>(valid - i0, g.grid_w - c.x));
        const float* start = nullptr;
        if (!g.transposed) {
          const int64_t sy = c.y * g.stride_h - g.pad_top + a * g.dilation_h;
          const int64_t sx_first = c.x * g.stride_w - g.pad_left + b * g.dilation_w;
          const int64_t sx_last = (c.x + len - 1) * g.stride_w - g.pad_left + last_b * g.dilation_w;
          if (sy < 0 || sy >= g.src_h) {
            for (int i = i0; i < i0 + len; ++i) dst[i] = zeros;  // top or bottom padding
          } else if (sx_first >= 0 && sx_last < g.src_w) {
            start = g.src + ((c.n * g.src_h + sy) * g.src_w + sx_first) * g.channels;
          }
        } else if (g.stride_w == 1) {
          start = g.source(c.n, c.y, c.x, a, b);
          if (start && !g.source(c.n, c.y, c.x + len - 1, a, last_b)) start = nullptr;
        }
        if (start) {
          for (int i = 0; i < len; ++i) dst[i0 + i] = start + i * step;
          any = true;
        } else if (g.transposed || g.row_inside(c.y, a)) {
          TapGather::Cursor r = c;  // the segment's rows one by one
          for (int i = i0; i < i0 + len; ++i, ++r.x) {
            const float* src = g.source(r.n, r.y, r.x, a, b);
            if (wide && !src) {
              if (g.row_inside(r.y, a)) return Fill::kStraddles;
            } else if (wide && !g.source(r.n, r.y, r.x, a, last_b)) {
              return Fill::kStraddles;
            }
            dst[i] = src ? src : zeros;
            any |= src != nullptr;
          }
        }
        i0 += len;
        c.x += len;
        if (c.x == g.grid_w) {
          c.x = 0;
          if (++c.y == g.grid_h) c.y = 0, ++c.n;
        }
      }
      // Rows past the last pixel repeat a valid one; their results are never stored.
      for (int i = valid; i < mr; ++i) dst[i] = dst[valid - 1];
      return any ? Fill::kRows : Fill::kPadding;
    };
    int64_t begin, end;
    static_share(tiles, tid, nt, begin, end);
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t p0 = tile * mr;
      const int valid = static_cast<int>(std::min<int64_t>(mr, pixels - p0));
      const TapGather::Cursor first = g.cursor(p0);
      // Taps that read only padding for every row of the tile are left out: no work, same sum
      // (the input gradient of a 'valid' convolution has many near the image border).
      int64_t live = 0;
      bool wide = can_widen;
      for (int64_t a = 0; wide && a < wide_taps; ++a) {
        const Fill fill = tap_rows(first, valid, a, wide_first_b, true, rows + live * mr);
        if (fill == Fill::kRows) tap_ids[live++] = static_cast<int32_t>(a);
        wide = fill != Fill::kStraddles;
      }
      if (!wide) {
        live = 0;
        for (int64_t t = 0, a = 0, b = 0; t < taps; ++t) {
          if (tap_rows(first, valid, a, b, false, rows + live * mr) == Fill::kRows)
            tap_ids[live++] = static_cast<int32_t>(  // see PackKernelTransposed
                g.transposed ? a * g.kernel_w + (g.kernel_w - 1 - b) : t);
          if (++b == g.kernel_w) b = 0, ++a;
        }
      }
      const int64_t depth = wide ? wide_channels : g.channels;
      for (int64_t panel = 0; panel < n_panels; ++panel) {
        const int64_t col = panel * nr;
        const int cols = static_cast<int>(std::min<int64_t>(nr, N - col));
        float* tile_out = out + p0 * N + col;
        kt.igemm_microkernel(live, depth, rows, tap_ids, packed_b + col * K, tile_out, N, valid,
                             cols, bias ? bias + col : nullptr, relu, stream);
      }
    }
    if (stream) kt.store_fence();
  });
}

}  // namespace conv2d_detail
}  // namespace fastconv
