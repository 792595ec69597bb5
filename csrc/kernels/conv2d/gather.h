#pragma once
// The shared gathers and packers of the convolution passes: implicit im2col (TapGather), the
// transposed kernel packing of the input gradient, patches read in place along a grid row
// (PatchRows), and the helpers that pack a whole B and decide on streaming stores.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/workspace.h"
#include "kernels/conv2d.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace conv2d_detail {

// Implicit im2col. A "pixel" is a position in the GEMM's row grid (output pixels for the forward
// pass, input pixels for the input gradient); a "tap" index t = (a * kernel_w + b) * channels + ch
// names kernel position (a, b) and channel ch of the source image.
struct TapGather {
  const float* src;
  int64_t src_h, src_w, channels;
  int64_t grid_h, grid_w;
  int64_t kernel_w;
  int64_t stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
  // false: source = x, sy = y * stride - pad + a * dilation (forward and weight gradient).
  // true: source = dy, the transpose mapping sy = (y + pad - a * dilation) / stride when exact.
  bool transposed;

  const float* source(int64_t n, int64_t y, int64_t x, int64_t a, int64_t b) const {
    int64_t sy, sx;
    if (!transposed) {
      sy = y * stride_h - pad_top + a * dilation_h;
      sx = x * stride_w - pad_left + b * dilation_w;
    } else {
      sy = y + pad_top - a * dilation_h;
      sx = x + pad_left - b * dilation_w;
      if (sy < 0 || sx < 0) return nullptr;
      // Divisions are slow; most layers have stride 1 and skip them.
      if (stride_h != 1) {
        if (sy % stride_h != 0) return nullptr;
        sy /= stride_h;
      }
      if (stride_w != 1) {
        if (sx % stride_w != 0) return nullptr;
        sx /= stride_w;
      }
    }
    if (sy < 0 || sy >= src_h || sx < 0 || sx >= src_w) return nullptr;
    return src + ((n * src_h + sy) * src_w + sx) * channels;
  }

  // Whether kernel row a of grid row y reads a source row (not the top/bottom padding, and for
  // the transposed mapping not between strided rows).
  bool row_inside(int64_t y, int64_t a) const {
    int64_t sy;
    if (!transposed) {
      sy = y * stride_h - pad_top + a * dilation_h;
    } else {
      sy = y + pad_top - a * dilation_h;
      if (sy < 0 || sy % stride_h != 0) return false;
      sy /= stride_h;
    }
    return sy >= 0 && sy < src_h;
  }

  // Position (n, y, x) of a pixel in the grid. Walking pixels in order advances it without the
  // divisions that decoding each index would cost (they dominated layers with few channels).
  struct Cursor {
    int64_t n, y, x;
  };

  Cursor cursor(int64_t p) const {
    const int64_t rest = p / grid_w;
    return {rest / grid_h, rest % grid_h, p % grid_w};
  }

  void advance(Cursor& c) const {
    if (++c.x == grid_w) {
      c.x = 0;
      if (++c.y == grid_h) {
        c.y = 0;
        ++c.n;
      }
    }
  }

  // Writes the patch of the pixel at c, taps (a, b) row-major with `channels` floats each, to
  // dst: zeros where a tap falls in the padding. (Patches wholly inside the image take a faster
  // path in the weight gradient; this serves the border.)
  void gather_patch(const Cursor& c, int64_t kernel_h, float* dst) const {
    for (int64_t a = 0; a < kernel_h; ++a)
      for (int64_t b = 0; b < kernel_w; ++b, dst += channels) {
        const float* s = source(c.n, c.y, c.x, a, b);
        // Short runs (images have 1 or 3 channels) are copied inline: a memcpy call per run
        // would cost more than the copy.
        for (int64_t i = 0; i < channels; ++i) dst[i] = s ? s[i] : 0.0f;
      }
  }
};

// B for the input gradient: element ((a, b', co), ci) = kernel[a, kernel_w - 1 - b', ci, co].
// The kernel's columns are reversed so that the taps of one kernel row meet the dy pixels they
// read in memory order (the transposed convolution walks dy leftwards as b grows).
struct PackKernelTransposed {
  const float* kernel;
  int64_t in_c, out_c, kernel_w;
  void operator()(int64_t k0, int64_t kc, int64_t col0, int64_t cols, int nr, float* dst) const {
    for (int64_t p = 0; p < cols; p += nr) {
      const int64_t valid = std::min<int64_t>(nr, cols - p);
      float* panel = dst + p * kc;
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t packed_tap = (k0 + k) / out_c, co = (k0 + k) % out_c;
        const int64_t a = packed_tap / kernel_w, b = kernel_w - 1 - packed_tap % kernel_w;
        const int64_t tap = a * kernel_w + b;
        const float* src = kernel + tap * in_c * out_c + (col0 + p) * out_c + co;
        float* out = panel + k * nr;
        int64_t j = 0;
        for (; j < valid; ++j) out[j] = src[j * out_c];
        for (; j < nr; ++j) out[j] = 0.0f;
      }
    }
  }
};

inline TapGather forward_gather(const Conv2dShape& s, const float* x) {
  return {x,          s.in_h,     s.in_w,       s.in_c,       s.out_h,   s.out_w,    s.kernel_w,
          s.stride_h, s.stride_w, s.dilation_h, s.dilation_w, s.pad_top, s.pad_left, false};
}

inline TapGather transposed_gather(const Conv2dShape& s, const float* dy) {
  return {dy,         s.out_h,    s.out_w,      s.out_c,      s.in_h,    s.in_w,     s.kernel_w,
          s.stride_h, s.stride_w, s.dilation_h, s.dilation_w, s.pad_top, s.pad_left, true};
}

// The patches of a grid row's pixels read in place, for layers with few input channels (an
// image's 1 to 4) and the patch sums of any layer: along a grid row,
// patch element (a, b, ch) of successive pixels lies at a fixed step in the image, so a kernel can
// take one pointer per element and copy nothing. Pixels whose patch crosses the left or right
// padding are gathered one by one; kernel rows in the top or bottom padding read a zero buffer. Per
// thread (its scratch and pointer storage).
class PatchRows {
 public:
  // extra: element slots after the patch's that the caller fills (ones() for a bias row).
  PatchRows(const Conv2dShape& s, const float* x, int extra)
      : s_(s), x_(x), g_(forward_gather(s, x)) {
    patch_ = s.kernel_h * s.kernel_w * s.in_c;
    // With one output column there are no runs (and a stride may be near 2^63: no product).
    step_ = s.out_w > 1 ? s.stride_w * s.in_c : 0;
    // Interior pixels of a grid row: every kernel column inside the image.
    ox_lo_ = (s.pad_left + s.stride_w - 1) / s.stride_w;
    ox_hi_ = std::max<int64_t>(
        ox_lo_, std::min<int64_t>(s.out_w, (s.in_w - 1 - (s.kernel_w - 1) * s.dilation_w +
                                            s.pad_left + s.stride_w) /
                                               s.stride_w));
    // A constant buffer (zeros or ones) is read at k * step for k < the longest run: within
    // an image row's worth of floats.
    const int64_t constant_floats = std::max<int64_t>(ox_hi_ - ox_lo_ - 1, 0) * step_ + 1;
    float* scratch =
        thread_scratch(Scratch::kPackA, static_cast<size_t>(2 * constant_floats + patch_));
    zeros_ = scratch;
    ones_ = scratch + constant_floats;
    gathered_ = scratch + 2 * constant_floats;  // one border pixel's patch
    std::fill(zeros_, zeros_ + constant_floats, 0.0f);
    std::fill(ones_, ones_ + constant_floats, 1.0f);
    thread_local std::vector<const float*> elems_storage;
    elems_storage.resize(static_cast<size_t>(patch_ + extra));
    elems_ = elems_storage.data();  // plain pointers: see igemm_convolution
  }

  const float** elems() { return elems_; }
  const float* ones() const { return ones_; }

  // Calls fn(count, elems, step, first) for runs of the pixels [x0, x1) of grid row (n, y):
  // elems[e] points at patch element e of pixel `first`, and that of pixel first + k lies
  // k * step further.
  template <class Fn>
  void for_runs(int64_t n, int64_t y, int64_t x0, int64_t x1, const Fn& fn) {
    const Conv2dShape& s = s_;
    const int64_t lo = std::max(x0, ox_lo_), hi = std::min(x1, ox_hi_);
    if (lo < hi) {
      for (int64_t a = 0, e = 0; a < s.kernel_h; ++a) {
        const int64_t sy = y * s.stride_h - s.pad_top + a * s.dilation_h;
        const bool inside = sy >= 0 && sy < s.in_h;
        const float* row =
            inside ? x_ + ((n * s.in_h + sy) * s.in_w + lo * s.stride_w - s.pad_left) * s.in_c
                   : nullptr;
        for (int64_t b = 0; b < s.kernel_w; ++b)
          for (int64_t ch = 0; ch < s.in_c; ++ch, ++e)
            elems_[e] = inside ? row + b * s.dilation_w * s.in_c + ch : zeros_;
      }
      fn(hi - lo, elems_, step_, lo);
    }
    // The border pixels, one by one: those left of the interior run, then those right of it.
    auto border = [&](int64_t ox) {
      g_.gather_patch({n, y, ox}, s.kernel_h, gathered_);
      for (int64_t e = 0; e < patch_; ++e) elems_[e] = gathered_ + e;
      fn(1, elems_, 0, ox);
    };
    const int64_t left_end = lo < hi ? lo : x1, right_begin = lo < hi ? hi : x1;
    for (int64_t ox = x0; ox < left_end; ++ox) border(ox);
    for (int64_t ox = right_begin; ox < x1; ++ox) border(ox);
  }

 private:
  const Conv2dShape& s_;
  const float* x_;
  TapGather g_;
  int64_t patch_, step_, ox_lo_, ox_hi_;
  float *zeros_, *ones_, *gathered_;
  const float** elems_;
};

// An output far larger than the caches (B.conv1's is 130 MB) is streamed to memory: its lines
// are not read in first. Smaller outputs stay in cache for the layer that reads them next.
inline bool streams_output(const float* out, int64_t pixels, int64_t N) {
  constexpr int64_t kStreamBytes = int64_t{48} << 20;
  return pixels * N * 4 >= kStreamBytes && reinterpret_cast<uintptr_t>(out) % 64 == 0 &&
         N % 16 == 0;
}

// Packs count rows of `width` floats (rows[k]; zeros where it is null) into panels of `tile`
// values, the layout of the GEMM microkernel's operands (A panels of MR rows, B panels of NR
// columns): out[(p * count + k) * tile + r] = rows[k][p * tile + r], zero past width.
template <int Tile>
void pack_panels_of(const float* const* rows, int64_t count, int64_t width, float* out) {
  const int64_t full = width / Tile, panels = (width + Tile - 1) / Tile;
  for (int64_t k = 0; k < count; ++k) {
    const float* src = rows[k];
    float* dst = out + k * Tile;
    const int64_t step = count * Tile;
    if (!src) {
      for (int64_t p = 0; p < panels; ++p)
        for (int r = 0; r < Tile; ++r) dst[p * step + r] = 0.0f;
      continue;
    }
    // Runs of a constant Tile floats: vector moves, not a loop or a memcpy call per run (the
    // packing took 40% of the GEMM's time on B.conv2's 32 channels that way).
    for (int64_t p = 0; p < full; ++p)
      for (int r = 0; r < Tile; ++r) dst[p * step + r] = src[p * Tile + r];
    if (full < panels) {
      float* last = dst + full * step;
      const int64_t n = width - full * Tile;
      for (int r = 0; r < Tile; ++r) last[r] = r < n ? src[full * Tile + r] : 0.0f;
    }
  }
}

inline void pack_panels(const float* const* rows, int64_t count, int64_t width, int tile,
                        float* out) {
  switch (tile) {  // the tables' gemm_mr and gemm_nr
    case 4:
      return pack_panels_of<4>(rows, count, width, out);
    case 6:
      return pack_panels_of<6>(rows, count, width, out);
    case 12:
      return pack_panels_of<12>(rows, count, width, out);
    case 16:
      return pack_panels_of<16>(rows, count, width, out);
    case 32:
      return pack_panels_of<32>(rows, count, width, out);
  }
  const int64_t panels = (width + tile - 1) / tile;
  for (int64_t k = 0; k < count; ++k)
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t r = 0; r < tile; ++r) {
        const int64_t c = p * tile + r;
        out[(p * count + k) * tile + r] = rows[k] && c < width ? rows[k][c] : 0.0f;
      }
}

// c[i * ldc + j] += sum over k < count of a[k][i] * b[k][j] for i < rows, j < cols, from panels
// that pack_panels made (A with the table's gemm_mr, B with its gemm_nr): each B panel (count x
// NR floats, in L1) meets every A panel.
inline void gemm_on_panels(const KernelTable& kt, int64_t count, const float* a_panels,
                           int64_t rows, const float* b_panels, int64_t cols, float* c,
                           int64_t ldc) {
  const int mr = kt.gemm_mr, nr = kt.gemm_nr;
  for (int64_t j = 0; j < cols; j += nr)
    for (int64_t i = 0; i < rows; i += mr)
      kt.gemm_microkernel(count, a_panels + i * count, b_panels + j * count, c + i * ldc + j, ldc,
                          static_cast<int>(std::min<int64_t>(mr, rows - i)),
                          static_cast<int>(std::min<int64_t>(nr, cols - j)), true);
}

// Packs all of a K x N matrix into NR-column panels once, for every thread to read.
template <class PackB>
float* pack_all_panels(const PackB& pack_b, int64_t K, int64_t N, int nr) {
  const int64_t padded = (N + nr - 1) / nr * nr;
  float* packed = thread_scratch(Scratch::kPackB, static_cast<size_t>(K * padded));
  pack_b(0, K, 0, N, nr, packed);
  return packed;
}

}  // namespace conv2d_detail
}  // namespace fastconv
