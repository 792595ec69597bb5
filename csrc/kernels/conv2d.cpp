#include "kernels/conv2d.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/pool2d.h"
#include "kernels/winograd.h"

namespace fastconv {
namespace {

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

TapGather forward_gather(const Conv2dShape& s, const float* x) {
  return {x,          s.in_h,     s.in_w,       s.in_c,       s.out_h,   s.out_w,    s.kernel_w,
          s.stride_h, s.stride_w, s.dilation_h, s.dilation_w, s.pad_top, s.pad_left, false};
}

TapGather transposed_gather(const Conv2dShape& s, const float* dy) {
  return {dy,         s.out_h,    s.out_w,      s.out_c,      s.in_h,    s.in_w,     s.kernel_w,
          s.stride_h, s.stride_w, s.dilation_h, s.dilation_w, s.pad_top, s.pad_left, true};
}

// The patches of a grid row's pixels read in place, for layers with few input channels (an
// image's 1 to 4, or any count the row-pointer weight gradient cannot tile): along a grid row,
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
bool streams_output(const float* out, int64_t pixels, int64_t N) {
  constexpr int64_t kStreamBytes = int64_t{48} << 20;
  return pixels * N * 4 >= kStreamBytes && reinterpret_cast<uintptr_t>(out) % 64 == 0 &&
         N % 16 == 0;
}

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

// Packs all of a K x N matrix into NR-column panels once, for every thread to read.
template <class PackB>
float* pack_all_panels(const PackB& pack_b, int64_t K, int64_t N, int nr) {
  const int64_t padded = (N + nr - 1) / nr * nr;
  float* packed = thread_scratch(Scratch::kPackB, static_cast<size_t>(K * padded));
  pack_b(0, K, 0, N, nr, packed);
  return packed;
}

// The forward pass of a layer with 1 to 4 input channels (an image's): a grid row at a time
// over patches read in place (PatchRows), with the kernel's rows for NR filters in registers'
// reach. The igemm would run only 9 or 27 depth steps per tile of pixels and rebuild its row
// pointers for every tile (A.conv1 took 3x the FMA time that way).
constexpr int64_t kSmallDepthChannels = 4;

// The kernel packed for small_depth_row (NR filters per group, zero past out_c) and the rows of
// one output row, shared by the plain forward pass and the one fused with max pooling.
class SmallDepthConv {
 public:
  SmallDepthConv(const KernelTable& kt, const Conv2dShape& s, const float* kernel,
                 const float* bias, bool relu)
      : kt_(kt), s_(s), bias_(bias), relu_(relu) {
    const int nr = kt.igemm_nr;
    rows_ = s.kernel_h * s.kernel_w * s.in_c;
    groups_ = (s.out_c + nr - 1) / nr;
    packed_ = thread_scratch(Scratch::kPackB, static_cast<size_t>(groups_ * rows_ * nr));
    for (int64_t g = 0; g < groups_; ++g)
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t j = 0; j < nr; ++j) {
          const int64_t co = g * nr + j;
          packed_[(g * rows_ + r) * nr + j] = co < s.out_c ? kernel[r * s.out_c + co] : 0.0f;
        }
  }

  double flops() const { return 2.0 * s_.batch * s_.out_h * s_.out_w * rows_ * s_.out_c; }

  // Output row (n, oy) into out_row (out_w x out_c), with the calling thread's patches.
  void row(PatchRows& patches, int64_t n, int64_t oy, float* out_row, bool stream) const {
    const int nr = kt_.igemm_nr;
    const int64_t out_c = s_.out_c;
    patches.for_runs(n, oy, 0, s_.out_w,
                     [&](int64_t count, const float* const* elems, int64_t step, int64_t first) {
                       for (int64_t g = 0; g < groups_; ++g)
                         kt_.small_depth_row(
                             count, static_cast<int>(rows_), elems, step, packed_ + g * rows_ * nr,
                             bias_ ? bias_ + g * nr : nullptr, relu_,
                             out_row + first * out_c + g * nr, out_c,
                             static_cast<int>(std::min<int64_t>(nr, out_c - g * nr)), stream);
                     });
  }

 private:
  const KernelTable& kt_;
  const Conv2dShape& s_;
  const float* bias_;
  bool relu_;
  int64_t rows_, groups_;
  float* packed_;
};

void small_depth_forward(const KernelTable& kt, const Conv2dShape& s, const float* x,
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

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* kernel, const float* bias,
                    float* y, bool relu) {
  const KernelTable& kt = active_kernels();
  if (winograd_enabled() && winograd_applies(s, false)) {
    winograd_conv2d_forward(kt, s, x, kernel, bias, y, relu);
    return;
  }
  if (s.in_c <= kSmallDepthChannels) {
    small_depth_forward(kt, s, x, kernel, bias, y, relu);
    return;
  }
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t N = s.out_c;
  const float* packed =
      pack_all_panels(PackStridedB{{kernel, N, 1}}, taps * s.in_c, N, kt.igemm_nr);
  igemm_convolution(kt, forward_gather(s, x), pixels, taps, N, packed, y, bias, relu,
                    threads_for_work(2.0 * pixels * taps * s.in_c * N));
}

namespace {

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

}  // namespace

namespace {

// The input gradient of a stride-1 layer with 1 to 4 input channels and a small patch (a 3x3
// kernel over one channel), an image row at a time: each input pixel's taps read dy in place, the
// interior of a row as one run whose dy pointers advance by a pixel per pixel, the border pixels
// one by one with the taps that land inside dy. col2im would fill its GEMM panels at most half
// (A.conv1: 9 of 32 columns).
void small_depth_backward_input(const KernelTable& kt, const Conv2dShape& s, const float* dy,
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

}  // namespace

void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* kernel, float* dx) {
  const KernelTable& kt = active_kernels();
  if (winograd_enabled() && winograd_applies(s, true)) {
    winograd_conv2d_backward_input(kt, s, dy, kernel, dx);
    return;
  }
  // Few input channels at stride 1, when col2im's columns would fill at most half of their GEMM
  // panels (A.conv1: 9 of 32; B.conv1's 27 of 32 stay with col2im, measured 20% faster there).
  const int64_t width = s.kernel_h * s.kernel_w * s.in_c;
  const int64_t padded_width = (width + kt.igemm_nr - 1) / kt.igemm_nr * kt.igemm_nr;
  if (s.in_c <= kSmallDepthChannels && s.stride_h == 1 && s.stride_w == 1 &&
      2 * width <= padded_width) {
    small_depth_backward_input(kt, s, dy, kernel, dx);
    return;
  }
  const int64_t pixels = s.batch * s.in_h * s.in_w;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t N = s.in_c;
  // The indirect GEMM runs over every input pixel; col2im over output pixels plus a scatter.
  // col2im wins when input pixels outnumber output pixels by 1.2x or more (measured: A.conv2,
  // 13x13 under 11x11, 9% faster; B.conv3, 43x43 under 41x41, level; small images, strides) or
  // when few input channels leave most of the indirect GEMM's vector panel empty.
  const double pixel_ratio =
      static_cast<double>(s.in_h * s.in_w) / static_cast<double>(s.out_h * s.out_w);
  if (pixel_ratio >= 1.2 || 2 * N <= kt.igemm_nr) {
    backward_input_col2im(kt, s, dy, kernel, dx);
    return;
  }
  const float* packed = pack_all_panels(PackKernelTransposed{kernel, s.in_c, s.out_c, s.kernel_w},
                                        taps * s.out_c, N, kt.igemm_nr);
  igemm_convolution(kt, transposed_gather(s, dy), pixels, taps, N, packed, dx, nullptr, false,
                    threads_for_work(2.0 * pixels * taps * s.out_c * N));
}

namespace {

// dkernel[(tap, ci), co] += sum over pixels [begin, end) of x[source(p, tap), ci] * dy[p, co],
// one tap at a time with row pointers: padding taps are skipped, nothing is packed. With dbias,
// also dbias[co] += the sum of dy[p, co], a chunk of pixels at a time while its dy rows are in
// cache (a pass of its own would read all of dy from memory again: 62 MB for B.conv2).
void weight_gradient_rows(const KernelTable& kt, const Conv2dShape& s, const float* x,
                          const float* dy, int64_t begin, int64_t end, int64_t co_begin,
                          int64_t co_end, float* dkernel, float* dbias) {
  constexpr int64_t kChunk = 256;
  const int mr = kt.rowgemm_mr, nr = kt.rowgemm_nr;
  const int64_t taps = s.kernel_h * s.kernel_w, in_c = s.in_c, out_c = s.out_c;
  const TapGather g = forward_gather(s, x);
  thread_local std::vector<const float*> a_rows_storage, b_rows_storage;
  a_rows_storage.resize(static_cast<size_t>(taps * kChunk));
  b_rows_storage.resize(static_cast<size_t>(kChunk));
  const float** a_rows = a_rows_storage.data();  // plain pointers: see igemm_convolution
  const float** b_rows = b_rows_storage.data();
  // When every kernel row lies inside the image horizontally (no left/right padding, no
  // horizontal dilation), tap (a, b) of a pixel reads b * in_c floats past tap (a, 0): one row
  // pointer per kernel row serves its kernel_w taps through the microkernel's offset.
  const bool rows_shared =
      s.dilation_w == 1 && s.pad_left == 0 && (s.out_w - 1) * s.stride_w + s.kernel_w - 1 < s.in_w;
  const int64_t pointer_taps = rows_shared ? s.kernel_h : taps;
  const int64_t tap_step = rows_shared ? s.kernel_w : 1;
  for (int64_t c0 = begin; c0 < end; c0 += kChunk) {
    const int64_t kc = std::min(kChunk, end - c0);
    TapGather::Cursor c = g.cursor(c0);
    for (int64_t k = 0; k < kc; ++k, g.advance(c)) {
      b_rows[k] = dy + (c0 + k) * out_c;
      for (int64_t p = 0; p < pointer_taps; ++p) {
        const int64_t t = p * tap_step;
        a_rows[p * kChunk + k] = g.source(c.n, c.y, c.x, t / s.kernel_w, t % s.kernel_w);
      }
    }
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t p = t / tap_step, shift = (t % tap_step) * in_c;
      for (int64_t ci = 0; ci < in_c; ci += mr)
        for (int64_t co = co_begin; co < co_end; co += nr)
          kt.rowgemm_microkernel(kc, a_rows + p * kChunk, ci + shift, b_rows, co,
                                 dkernel + (t * in_c + ci) * out_c + co, out_c, mr,
                                 static_cast<int>(std::min<int64_t>(nr, co_end - co)), true);
    }
    if (dbias)
      kt.add_rows(kc, co_end - co_begin, dy + c0 * out_c + co_begin, out_c, dbias + co_begin, 0);
  }
}

// The same sum for channel counts the row-pointer kernel cannot tile (not a multiple of its MR;
// an image's 1 to 4), read in place (see PatchRows). With the bias, one more element reads a buffer
// of ones, so that the same pass sums dy over the pixels: the bias gradient, without another read
// of dy. One thread's sums; rows are added in any order.
class PatchGradient {
 public:
  PatchGradient(const KernelTable& kt, const Conv2dShape& s, const float* x, bool with_bias)
      : kt_(kt), s_(s), patches_(s, x, with_bias ? 1 : 0) {
    patch_ = s.kernel_h * s.kernel_w * s.in_c;
    rows_ = patch_ + (with_bias ? 1 : 0);
    sums_ = thread_scratch(Scratch::kPackB, static_cast<size_t>(rows_ * s.out_c));
    std::fill(sums_, sums_ + rows_ * s.out_c, 0.0f);
    if (with_bias) patches_.elems()[patch_] = patches_.ones();
  }

  // Adds the pixels [x0, x1) of grid row (n, y), whose output gradients are the rows of dy_row.
  void add_row(int64_t n, int64_t y, int64_t x0, int64_t x1, const float* dy_row) {
    const int max_rows = kt_.patch_gradient_max_rows, nr = kt_.rowgemm_nr;
    const int64_t out_c = s_.out_c;
    patches_.for_runs(
        n, y, x0, x1, [&](int64_t count, const float* const* elems, int64_t step, int64_t first) {
          const float* dy = dy_row + (first - x0) * out_c;
          for (int64_t r0 = 0; r0 < rows_; r0 += max_rows)
            for (int64_t co = 0; co < out_c; co += nr)
              kt_.patch_gradient_rows(static_cast<int>(std::min<int64_t>(max_rows, rows_ - r0)),
                                      count, elems + r0, step, dy + co, out_c,
                                      sums_ + r0 * out_c + co, out_c,
                                      static_cast<int>(std::min<int64_t>(nr, out_c - co)));
        });
  }

  // dkernel += the kernel sums; dbias = the bias sums (when constructed with the bias).
  void finish(float* dkernel, float* dbias) const {
    const int64_t out_c = s_.out_c;
    for (int64_t e = 0; e < patch_ * out_c; ++e) dkernel[e] += sums_[e];
    if (rows_ > patch_) std::copy(sums_ + patch_ * out_c, sums_ + rows_ * out_c, dbias);
  }

 private:
  const KernelTable& kt_;
  const Conv2dShape& s_;
  PatchRows patches_;
  int64_t patch_, rows_;
  float* sums_;
};

// Pixels [begin, end) of the patch sums, a grid row segment at a time; dbias (when given) is set.
void weight_gradient_patches(const KernelTable& kt, const Conv2dShape& s, const float* x,
                             const float* dy, int64_t begin, int64_t end, float* dkernel,
                             float* dbias) {
  PatchGradient sums(kt, s, x, dbias != nullptr);
  const TapGather g = forward_gather(s, x);
  TapGather::Cursor c = g.cursor(begin);
  for (int64_t p = begin; p < end;) {
    const int64_t len = std::min<int64_t>(end - p, s.out_w - c.x);
    sums.add_row(c.n, c.y, c.x, c.x + len, dy + p * s.out_c);
    c.x += len - 1;  // to the segment's last pixel, then on to the next row
    p += len;
    g.advance(c);
  }
  sums.finish(dkernel, dbias);
}

// Runs fill(tid, nt, dk, db) on each thread to sum its share into dk (zeroed here) and db (it
// sets every element, when dbias is given), then adds the threads' partials into dkernel and
// dbias once: no atomics, no two threads writing the same memory.
template <class Fill>
void sum_over_threads(int threads, int64_t kernel_size, int64_t out_c, float* dkernel, float* dbias,
                      const Fill& fill) {
  const int64_t partial_size = kernel_size + out_c;
  std::vector<float*> partials(threads, nullptr);
  parallel_region(threads, [&](int tid, int nt) {
    float* partial = nt == 1 ? nullptr : thread_scratch(Scratch::kPartial, partial_size);
    float* dk = nt == 1 ? dkernel : partial;
    float* db = nt == 1 ? dbias : (dbias ? partial + kernel_size : nullptr);
    std::memset(dk, 0, kernel_size * sizeof(float));
    fill(tid, nt, dk, db);
    if (nt == 1) return;
    partials[tid] = partial;
    team_barrier();
    int64_t e0, e1;
    static_share(dbias ? partial_size : kernel_size, tid, nt, e0, e1);
    for (int64_t e = e0; e < e1; ++e) {
      float sum = 0.0f;
      for (int t = 0; t < nt; ++t) sum += partials[t][e];
      if (e < kernel_size)
        dkernel[e] = sum;
      else
        dbias[e - kernel_size] = sum;
    }
  });
}

}  // namespace

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dkernel,
                            float* dbias) {
  const KernelTable& kt = active_kernels();
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t out_c = s.out_c;
  const int64_t kernel_size = s.kernel_h * s.kernel_w * s.in_c * out_c;
  const bool per_tap_rows = s.in_c % kt.rowgemm_mr == 0;
  const int threads = threads_for_work(2.0 * pixels * kernel_size);
  const int nr = kt.rowgemm_nr;
  if (winograd_enabled() && winograd_weight_gradient_applies(kt, s)) {
    winograd_conv2d_backward_weight(kt, s, x, dy, dkernel);
    if (dbias)
      parallel_region(threads_for_nanos(0.3 * pixels * out_c), [&](int tid, int nt) {
        int64_t c0, c1;
        static_share(out_c, tid, nt, c0, c1);
        std::fill(dbias + c0, dbias + c1, 0.0f);
        kt.add_rows(pixels, c1 - c0, dy + c0, out_c, dbias + c0, 0);
      });
    return;
  }
  // Few pixels (small images): the private partials below would be large next to the work
  // (B.conv5: 256x256x9 partials for 784 pixels per thread), so threads split the filters and
  // each sums all pixels for its own columns of dkernel (measured 12% faster on B.conv5).
  if (per_tap_rows && threads > 1 && pixels < 2048 * threads && out_c >= threads * nr) {
    parallel_region(threads, [&](int tid, int nt) {
      int64_t b0, b1;
      static_share((out_c + nr - 1) / nr, tid, nt, b0, b1);
      const int64_t co0 = b0 * nr, co1 = std::min(out_c, b1 * nr);
      if (co0 >= co1) return;
      for (int64_t row = 0; row < kernel_size / out_c; ++row)
        std::fill(dkernel + row * out_c + co0, dkernel + row * out_c + co1, 0.0f);
      if (dbias) std::fill(dbias + co0, dbias + co1, 0.0f);
      weight_gradient_rows(kt, s, x, dy, 0, pixels, co0, co1, dkernel, dbias);
    });
    return;
  }
  sum_over_threads(threads, kernel_size, out_c, dkernel, dbias,
                   [&](int tid, int nt, float* dk, float* db) {
                     int64_t begin, end;
                     static_share(pixels, tid, nt, begin, end);
                     if (per_tap_rows) {
                       if (db) std::fill(db, db + out_c, 0.0f);
                       weight_gradient_rows(kt, s, x, dy, begin, end, 0, out_c, dk, db);
                     } else {
                       weight_gradient_patches(kt, s, x, dy, begin, end, dk, db);
                     }
                   });
}

void conv2d_backward_weight_through_max_pool(const Conv2dShape& s, const Pool2dShape& p,
                                             const float* x, const float* y, const float* pool_dy,
                                             float* dkernel, float* dbias) {
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
          for (int64_t iy = 0; iy < p.pool_h; ++iy)
            y_rows[iy] = y + (n * s.out_h + oy * p.pool_h + iy) * s.out_w * C;
          max_pool_backward_row(kt, p, oy, y_rows.data(), band_rows.data(),
                                pool_dy + (n * p.out_h + oy) * p.out_w * C, false, true);
          for (int64_t iy = 0; iy < p.pool_h; ++iy)
            sums.add_row(n, oy * p.pool_h + iy, 0, covered_w, band_rows[iy]);
        }
        sums.finish(dk, db);
      });
}

void conv2d_forward_max_pool(const Conv2dShape& s, const Pool2dShape& p, const float* x,
                             const float* kernel, const float* bias, float* y, float* pooled,
                             bool relu) {
  const KernelTable& kt = active_kernels();
  if (s.in_c > kSmallDepthChannels) {  // no fused path: the two passes
    std::vector<float> own;
    if (!y) {
      own.resize(static_cast<size_t>(s.batch * s.out_h * s.out_w * s.out_c));
      y = own.data();
    }
    conv2d_forward(s, x, kernel, bias, y, relu);
    max_pool2d_forward(p, y, pooled);
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
      max_pool_forward_row(kt, p, py, band_rows.data(), pooled + (n * p.out_h + py) * p.out_w * C);
    }
  });
}

}  // namespace fastconv
