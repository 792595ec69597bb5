#include "kernels/pool2d.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/dispatch.h"
#include "core/parallel_region.h"

namespace fastconv {
namespace {

struct Window {
  int64_t y0, y1, x0, x1;  // clipped to the image: rows [y0, y1), columns [x0, x1)
};

// One channel of one window cell, read and compared: about 0.15 ns on one thread.
constexpr double kNanosPerCell = 0.15;

Window window_at(const Pool2dShape& s, int64_t oy, int64_t ox) {
  const int64_t y = oy * s.stride_h - s.pad_top, x = ox * s.stride_w - s.pad_left;
  return {std::max<int64_t>(y, 0), std::min(y + s.pool_h, s.in_h), std::max<int64_t>(x, 0),
          std::min(x + s.pool_w, s.in_w)};
}

// Runs fn(n, oy) over output rows. Threads split rows only when windows never overlap
// vertically (so backward writes disjoint rows of dx); otherwise they split whole images.
template <class Fn>
void for_each_output_row(const Pool2dShape& s, double nanos_per_row, const Fn& fn) {
  const bool rows_disjoint = s.stride_h >= s.pool_h;
  const int64_t units = rows_disjoint ? s.batch * s.out_h : s.batch;
  const int64_t rows_per_unit = rows_disjoint ? 1 : s.out_h;
  const int threads = threads_for_nanos(nanos_per_row * s.batch * s.out_h);
  parallel_region(threads, [&](int tid, int nt) {
    int64_t begin, end;
    static_share(units, tid, nt, begin, end);
    for (int64_t u = begin; u < end; ++u)
      for (int64_t r = 0; r < rows_per_unit; ++r) {
        const int64_t row = u * rows_per_unit + r;
        fn(row / s.out_h, row % s.out_h);
      }
  });
}

void zero_parallel(float* data, int64_t count) {
  parallel_for_range(count, 0.15, [&](int64_t b, int64_t e) {
    std::memset(data + b, 0, (e - b) * sizeof(float));
  });
}

// The output columns [lo, hi) whose windows lie wholly inside the image's width: one kernel run
// takes them; the clipped windows at either end ('same' padding) go one at a time.
struct FullColumns {
  int64_t lo, hi;
};

FullColumns full_columns(const Pool2dShape& s) {
  const int64_t lo = std::min(s.out_w, (s.pad_left + s.stride_w - 1) / s.stride_w);
  const int64_t room = s.in_w + s.pad_left - s.pool_w;  // the last full window's left edge + pad
  const int64_t hi = room < 0 ? lo : std::clamp(room / s.stride_w + 1, lo, s.out_w);
  return {lo, hi};
}

// Calls run(cells_w, offset, step, count, first_ox) for the runs of windows along output row oy:
// the clipped ones alone, the full ones as one run.
template <class Run>
void for_each_run(const Pool2dShape& s, const Run& run) {
  const int64_t C = s.channels;
  const FullColumns full = full_columns(s);
  auto single = [&](int64_t ox) {
    const Window w = window_at(s, 0, ox);
    run(static_cast<int>(std::max<int64_t>(w.x1 - w.x0, 0)), w.x0 * C, 0, 1, ox);
  };
  for (int64_t ox = 0; ox < full.lo; ++ox) single(ox);
  if (full.hi > full.lo)
    run(static_cast<int>(s.pool_w), (full.lo * s.stride_w - s.pad_left) * C, s.stride_w * C,
        full.hi - full.lo, full.lo);
  for (int64_t ox = full.hi; ox < s.out_w; ++ox) single(ox);
}

int cells_high(const Pool2dShape& s, int64_t oy) {
  const Window w = window_at(s, oy, 0);
  return static_cast<int>(std::max<int64_t>(w.y1 - w.y0, 0));
}

}  // namespace

void max_pool_forward_row(const KernelTable& kt, const Pool2dShape& s, int64_t oy,
                          const float* const* rows, float* out_row, uint8_t* argmax_row,
                          bool positive_only) {
  const int64_t C = s.channels;
  const int cells_h = cells_high(s, oy);
  for_each_run(s, [&](int cells_w, int64_t offset, int64_t step, int64_t count, int64_t ox) {
    kt.max_pool_forward_run(C, rows, cells_h, cells_w, offset, step, count, out_row + ox * C,
                            argmax_row ? argmax_row + ox * C : nullptr, positive_only);
  });
}

void max_pool_backward_argmax_row(const KernelTable& kt, const Pool2dShape& s, int64_t oy,
                                  const uint8_t* argmax_row, const float* dy_row,
                                  float* const* dx_rows) {
  const int64_t C = s.channels;
  const int cells_h = cells_high(s, oy);
  for_each_run(s, [&](int cells_w, int64_t offset, int64_t step, int64_t count, int64_t ox) {
    kt.max_pool_backward_argmax_run(C, argmax_row + ox * C, dy_row + ox * C, dx_rows, cells_h,
                                    cells_w, offset, step, count);
  });
}

void max_pool_backward_row(const KernelTable& kt, const Pool2dShape& s, int64_t oy,
                           const float* const* x_rows, float* const* dx_rows, const float* dy_row,
                           bool accumulate, bool through_relu) {
  const int64_t C = s.channels;
  const int cells_h = cells_high(s, oy);
  for_each_run(s, [&](int cells_w, int64_t offset, int64_t step, int64_t count, int64_t ox) {
    kt.max_pool_backward_run(C, x_rows, dx_rows, cells_h, cells_w, offset, step, count,
                             dy_row + ox * C, accumulate, through_relu);
  });
}

namespace {

// Pointers to the input rows under output row oy of image n (see max_pool_forward_row), in the
// calling thread's storage for T: x (const float) and dx (float) rows never share it.
template <class T>
T** window_rows(const Pool2dShape& s, T* image_data, int64_t n, int64_t oy) {
  thread_local std::vector<T*> storage;
  const Window w = window_at(s, oy, 0);
  storage.resize(static_cast<size_t>(std::max<int64_t>(w.y1 - w.y0, 1)));
  for (int64_t iy = w.y0; iy < w.y1; ++iy)
    storage[iy - w.y0] = image_data + ((n * s.in_h + iy) * s.in_w) * s.channels;
  return storage.data();
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax,
                        bool positive_only) {
  const KernelTable& kt = active_kernels();
  for_each_output_row(s, kNanosPerCell * s.out_w * s.pool_h * s.pool_w * s.channels,
                      [&](int64_t n, int64_t oy) {
                        const int64_t at = (n * s.out_h + oy) * s.out_w * s.channels;
                        max_pool_forward_row(kt, s, oy, window_rows(s, x, n, oy), y + at,
                                             argmax ? argmax + at : nullptr, positive_only);
                      });
}

void max_pool2d_backward(const Pool2dShape& s, const float* x, const uint8_t* argmax,
                         const float* dy, float* dx, bool through_relu) {
  const KernelTable& kt = active_kernels();
  const int64_t C = s.channels;
  // Windows that do not overlap write each cell they cover once (g or 0): dx needs clearing
  // only where no window reaches, and no window reads what another wrote.
  const bool overlapping = s.stride_h < s.pool_h || s.stride_w < s.pool_w;
  if (argmax && overlapping)
    throw std::invalid_argument(
        "max pooling's gradient from argmax needs windows that do not overlap");
  const bool tiles_exactly = !overlapping && s.stride_h == s.pool_h && s.stride_w == s.pool_w &&
                             s.pad_top == 0 && s.pad_left == 0 && s.out_h * s.pool_h <= s.in_h &&
                             s.out_w * s.pool_w <= s.in_w;
  if (!tiles_exactly) zero_parallel(dx, s.batch * s.in_h * s.in_w * C);
  const int64_t covered_w = s.out_w * s.pool_w;
  for_each_output_row(
      s, kNanosPerCell * s.out_w * s.pool_h * s.pool_w * C, [&](int64_t n, int64_t oy) {
        const int64_t at = (n * s.out_h + oy) * s.out_w * C;
        if (argmax)
          max_pool_backward_argmax_row(kt, s, oy, argmax + at, dy + at, window_rows(s, dx, n, oy));
        else
          max_pool_backward_row(kt, s, oy, window_rows(s, x, n, oy), window_rows(s, dx, n, oy),
                                dy + at, overlapping, through_relu);
        if (!tiles_exactly) return;
        // Exact tiling leaves only the right columns and bottom rows that no window reaches.
        for (int64_t iy = oy * s.pool_h; iy < (oy + 1) * s.pool_h; ++iy)
          std::memset(dx + ((n * s.in_h + iy) * s.in_w + covered_w) * C, 0,
                      (s.in_w - covered_w) * C * sizeof(float));
        if (oy == s.out_h - 1)
          std::memset(dx + (n * s.in_h + s.out_h * s.pool_h) * s.in_w * C, 0,
                      (s.in_h - s.out_h * s.pool_h) * s.in_w * C * sizeof(float));
      });
}

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  const int64_t C = s.channels;
  for_each_output_row(s, kNanosPerCell * s.out_w * s.pool_h * s.pool_w * C,
                      [&](int64_t n, int64_t oy) {
                        for (int64_t ox = 0; ox < s.out_w; ++ox) {
                          const Window w = window_at(s, oy, ox);
                          float* out = y + ((n * s.out_h + oy) * s.out_w + ox) * C;
                          std::memset(out, 0, C * sizeof(float));
                          for (int64_t iy = w.y0; iy < w.y1; ++iy)
                            for (int64_t ix = w.x0; ix < w.x1; ++ix) {
                              const float* in = x + ((n * s.in_h + iy) * s.in_w + ix) * C;
                              for (int64_t c = 0; c < C; ++c) out[c] += in[c];
                            }
                          const int64_t count = (w.y1 - w.y0) * (w.x1 - w.x0);
                          if (count > 0) {
                            const float scale = 1.0f / static_cast<float>(count);
                            for (int64_t c = 0; c < C; ++c) out[c] *= scale;
                          }
                        }
                      });
}

void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx) {
  const int64_t C = s.channels;
  zero_parallel(dx, s.batch * s.in_h * s.in_w * C);
  for_each_output_row(s, kNanosPerCell * s.out_w * s.pool_h * s.pool_w * C,
                      [&](int64_t n, int64_t oy) {
                        for (int64_t ox = 0; ox < s.out_w; ++ox) {
                          const Window w = window_at(s, oy, ox);
                          const int64_t count = (w.y1 - w.y0) * (w.x1 - w.x0);
                          if (count <= 0) continue;
                          const float scale = 1.0f / static_cast<float>(count);
                          const float* g = dy + ((n * s.out_h + oy) * s.out_w + ox) * C;
                          for (int64_t iy = w.y0; iy < w.y1; ++iy)
                            for (int64_t ix = w.x0; ix < w.x1; ++ix) {
                              float* out = dx + ((n * s.in_h + iy) * s.in_w + ix) * C;
                              for (int64_t c = 0; c < C; ++c) out[c] += g[c] * scale;
                            }
                        }
                      });
}

}  // namespace fastconv
