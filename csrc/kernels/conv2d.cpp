#include "kernels/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dispatch.h"
#include "kernels/gemm.h"

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

  // Writes taps [t0, t0 + count) of pixel p to dst[(t - t0) * dst_stride]. The kernel position
  // advances incrementally: one division per call, not per tap.
  void gather(int64_t p, int64_t t0, int64_t count, float* dst, int64_t dst_stride) const {
    const int64_t x = p % grid_w;
    const int64_t rest = p / grid_w;
    const int64_t y = rest % grid_h;
    const int64_t n = rest / grid_h;
    const int64_t tap = t0 / channels;
    int64_t ch = t0 - tap * channels;
    int64_t a = tap / kernel_w, b = tap - a * kernel_w;
    float* d = dst;
    for (int64_t remaining = count; remaining > 0;) {
      const int64_t run = std::min(channels - ch, remaining);
      const float* s = source(n, y, x, a, b);
      if (s) {
        s += ch;
        if (dst_stride == 1) {
          std::memcpy(d, s, run * sizeof(float));
        } else {
          for (int64_t i = 0; i < run; ++i) d[i * dst_stride] = s[i];
        }
      } else if (dst_stride == 1) {
        std::memset(d, 0, run * sizeof(float));
      } else {
        for (int64_t i = 0; i < run; ++i) d[i * dst_stride] = 0.0f;
      }
      d += run * dst_stride;
      remaining -= run;
      ch = 0;
      if (++b == kernel_w) {
        b = 0;
        ++a;
      }
    }
  }
};

// A = im2col rows (pixels x taps), for the forward pass and the input gradient.
struct PackPixelsByTaps {
  TapGather g;
  int64_t pixel_offset;
  void operator()(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int mr, float* dst) const {
    for (int64_t p = 0; p < rows; p += mr) {
      float* panel = dst + p * kc;
      for (int i = 0; i < mr; ++i) {
        if (p + i < rows) {
          g.gather(pixel_offset + row0 + p + i, k0, kc, panel + i, mr);
        } else {
          for (int64_t k = 0; k < kc; ++k) panel[k * mr + i] = 0.0f;
        }
      }
    }
  }
};

// A = im2col transposed (taps x pixels), for the weight gradient.
struct PackTapsByPixels {
  TapGather g;
  int64_t pixel_offset;
  void operator()(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int mr, float* dst) const {
    for (int64_t p = 0; p < rows; p += mr) {
      const int64_t valid = std::min<int64_t>(mr, rows - p);
      float* panel = dst + p * kc;
      for (int64_t k = 0; k < kc; ++k) {
        float* out = panel + k * mr;
        g.gather(pixel_offset + k0 + k, row0 + p, valid, out, 1);
        for (int64_t i = valid; i < mr; ++i) out[i] = 0.0f;
      }
    }
  }
};

// B for the input gradient: element ((a, b, co), ci) = kernel[a, b, ci, co].
struct PackKernelTransposed {
  const float* kernel;
  int64_t in_c, out_c;
  void operator()(int64_t k0, int64_t kc, int64_t col0, int64_t cols, int nr, float* dst) const {
    for (int64_t p = 0; p < cols; p += nr) {
      const int64_t valid = std::min<int64_t>(nr, cols - p);
      float* panel = dst + p * kc;
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t tap = (k0 + k) / out_c, co = (k0 + k) % out_c;
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

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* kernel, const float* bias,
                    float* y, bool relu) {
  const KernelTable& kt = active_kernels();
  const int64_t M = s.batch * s.out_h * s.out_w;
  const int64_t K = s.kernel_h * s.kernel_w * s.in_c;
  const int64_t N = s.out_c;
  const PackPixelsByTaps pack_a{forward_gather(s, x), 0};
  const PackStridedB pack_b{{kernel, N, 1}};
  const BiasReluEpilogue epilogue{&kt, bias, relu};
  gemm(kt, M, N, K, pack_a, pack_b, y, N, false, epilogue, threads_for_work(2.0 * M * N * K));
}

void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* kernel, float* dx) {
  const KernelTable& kt = active_kernels();
  const int64_t M = s.batch * s.in_h * s.in_w;
  const int64_t K = s.kernel_h * s.kernel_w * s.out_c;
  const int64_t N = s.in_c;
  const TapGather g{dy,           s.out_h,    s.out_w,    s.out_c,    s.in_h,
                    s.in_w,       s.kernel_w, s.stride_h, s.stride_w, s.dilation_h,
                    s.dilation_w, s.pad_top,  s.pad_left, true};
  const PackPixelsByTaps pack_a{g, 0};
  const PackKernelTransposed pack_b{kernel, s.in_c, s.out_c};
  gemm(kt, M, N, K, pack_a, pack_b, dx, N, false, NoEpilogue{}, threads_for_work(2.0 * M * N * K));
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dkernel,
                            float* dbias) {
  const KernelTable& kt = active_kernels();
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t taps = s.kernel_h * s.kernel_w * s.in_c;
  const int64_t out_c = s.out_c;
  const int64_t partial_size = taps * out_c + out_c;
  const int threads = threads_for_work(2.0 * pixels * taps * out_c);
  // Each thread reduces its own share of the pixels into a private partial, then the partials
  // are summed once: no atomics, no two threads writing the same memory.
  std::vector<float*> partials(threads, nullptr);
  parallel_region(threads, [&](int tid, int nt) {
    int64_t begin, end;
    static_share(pixels, tid, nt, begin, end);
    float* partial = nt == 1 ? nullptr : thread_scratch(Scratch::kPartial, partial_size);
    float* dk = nt == 1 ? dkernel : partial;
    float* db = nt == 1 ? dbias : partial + taps * out_c;
    const PackTapsByPixels pack_a{forward_gather(s, x), begin};
    const PackStridedB pack_b{{dy + begin * out_c, out_c, 1}};
    gemm(kt, taps, out_c, end - begin, pack_a, pack_b, dk, out_c, false, NoEpilogue{}, 1);
    if (db) {
      std::fill(db, db + out_c, 0.0f);
      for (int64_t p = begin; p < end; ++p) {
        const float* row = dy + p * out_c;
        for (int64_t c = 0; c < out_c; ++c) db[c] += row[c];
      }
    }
    if (nt == 1) return;
    partials[tid] = partial;
    team_barrier();
    int64_t e0, e1;
    static_share(partial_size, tid, nt, e0, e1);
    for (int64_t e = e0; e < e1; ++e) {
      if (e >= taps * out_c && !dbias) break;
      float sum = 0.0f;
      for (int t = 0; t < nt; ++t) sum += partials[t][e];
      if (e < taps * out_c)
        dkernel[e] = sum;
      else
        dbias[e - taps * out_c] = sum;
    }
  });
}

}  // namespace fastconv
