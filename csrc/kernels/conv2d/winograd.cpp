#include "kernels/conv2d/winograd.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/parallel_region.h"
#include "core/workspace.h"

namespace fastconv {
namespace {

constexpr int kTransformed = 16;  // 4x4 transformed tile positions

// U[xi][c][k] = (G g G^T)[xi] for the 3x3 kernel g = kernel[., ., c, k] (HWIO), packed for the
// indirect microkernel: one NR-column panel of C rows per (xi, panel).
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
float* transformed_kernel(const KernelTable& kt, const float* kernel, int64_t C, int64_t K) {
  const int nr = kt.igemm_nr;
  const int64_t panels = (K + nr - 1) / nr;
  float* packed =
      thread_scratch(Scratch::kPackB, static_cast<size_t>(kTransformed * panels * C * nr));
  std::fill(packed, packed + kTransformed * panels * C * nr, 0.0f);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      float g[3][3], gg[4][3], u[4][4];
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) g[a][b] = kernel[((a * 3 + b) * C + c) * K + k];
      for (int b = 0; b < 3; ++b) {
        gg[0][b] = g[0][b];
        gg[1][b] = 0.5f * (g[0][b] + g[1][b] + g[2][b]);
        gg[2][b] = 0.5f * (g[0][b] - g[1][b] + g[2][b]);
        gg[3][b] = g[2][b];
      }
      for (int r = 0; r < 4; ++r) {
        u[r][0] = gg[r][0];
        u[r][1] = 0.5f * (gg[r][0] + gg[r][1] + gg[r][2]);
        u[r][2] = 0.5f * (gg[r][0] - gg[r][1] + gg[r][2]);
        u[r][3] = gg[r][2];
      }
      const int64_t panel = k / nr, j = k % nr;
      for (int xi = 0; xi < kTransformed; ++xi)
        packed[((xi * panels + panel) * C + c) * nr + j] = u[xi / 4][xi % 4];
    }
  return packed;
}

// The 2x2 output tiles of a batch of out_h x out_w results, and the 4x4 input cells each reads.
struct TileGrid {
  int64_t in_h, in_w, channels, out_h, out_w, pad_top, pad_left;
  int64_t tiles_h, tiles_w;

  TileGrid(int64_t in_h_, int64_t in_w_, int64_t channels_, int64_t out_h_, int64_t out_w_,
           int64_t pad_top_, int64_t pad_left_)
      : in_h(in_h_),
        in_w(in_w_),
        channels(channels_),
        out_h(out_h_),
        out_w(out_w_),
        pad_top(pad_top_),
        pad_left(pad_left_),
        tiles_h((out_h_ + 1) / 2),
        tiles_w((out_w_ + 1) / 2) {}

  int64_t tiles(int64_t batch) const { return batch * tiles_h * tiles_w; }

  // Input cells of tile t, row-major, null in the padding.
  void input_cells(const float* x, int64_t t, const float** cells) const {
    const int64_t n = t / (tiles_h * tiles_w), rest = t % (tiles_h * tiles_w);
    const int64_t y0 = (rest / tiles_w) * 2 - pad_top, x0 = (rest % tiles_w) * 2 - pad_left;
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) {
        const int64_t iy = y0 + r, ix = x0 + c;
        const bool inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
        cells[r * 4 + c] = inside ? x + ((n * in_h + iy) * in_w + ix) * channels : nullptr;
      }
  }

  // The 2x2 output pixels of tile t in y (k channels each), null past the bottom/right edge.
  template <class T>
  void output_pixels(T* y, int64_t k, int64_t t, T** outs) const {
    const int64_t n = t / (tiles_h * tiles_w), rest = t % (tiles_h * tiles_w);
    const int64_t oy = (rest / tiles_w) * 2, ox = (rest % tiles_w) * 2;
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c)
        outs[r * 2 + c] = oy + r < out_h && ox + c < out_w
                              ? y + ((n * out_h + oy + r) * out_w + ox + c) * k
                              : nullptr;
  }
};

// V = B^T d B of tiles [t0, t0 + count) into v[xi * block * C + i * C + c].
void transform_input_tiles(const KernelTable& kt, const TileGrid& grid, const float* x, int64_t t0,
                           int64_t count, int64_t block, float* v) {
  for (int64_t i = 0; i < count; ++i) {
    const float* cells[16];
    grid.input_cells(x, t0 + i, cells);
    kt.winograd_input_tile(grid.channels, cells, v + i * grid.channels, block * grid.channels);
  }
}

// Tiles per block: the block's transformed input (16 x block x C) and products (16 x block x
// K) stay within `budget` bytes of L2.
int64_t tiles_per_block(int64_t C, int64_t K, int64_t budget, int mr) {
  const int64_t fit = budget / 4 / (kTransformed * (C + K));
  return std::max<int64_t>(mr, std::min<int64_t>(256, fit / mr * mr));
}

// y[n, oy, ox, k] = sum over a, b < 3 and c of x[n, oy - pad_top + a, ox - pad_left + b, c] *
// kernel[a, b, c, k] (+ bias, ReLU), for oy < out_h, ox < out_w; zero outside the image.
// With pool2x2, out_h and out_w are even and y is the 2x2 max pooling of that result
// (out_h / 2 x out_w / 2): each output tile is one pooling window, pooled while in L1, so the
// conv output is never written; argmax (may be null) gets each window's first maximal cell. Returns
// false when a value of the conv output before bias and ReLU is not finite (see
// winograd_output_tile).
bool winograd_conv3x3(const KernelTable& kt, int64_t batch, int64_t in_h, int64_t in_w, int64_t C,
                      const float* x, const float* kernel, int64_t K, int64_t pad_top,
                      int64_t pad_left, int64_t out_h, int64_t out_w, const float* bias, bool relu,
                      float* y, bool pool2x2 = false, uint8_t* argmax = nullptr) {
  const int mr = kt.igemm_mr, nr = kt.igemm_nr;
  const int64_t panels = (K + nr - 1) / nr;
  const float* packed = transformed_kernel(kt, kernel, C, K);
  const TileGrid grid(in_h, in_w, C, out_h, out_w, pad_top, pad_left);
  const int64_t tiles = grid.tiles(batch);
  const int64_t block = std::min<int64_t>(128, tiles_per_block(C, K, 512 * 1024, mr));
  const double flops = 2.0 * kTransformed * tiles * C * K;
  std::atomic<bool> finite{true};
  parallel_region(threads_for_work(flops), [&](int tid, int nt) {
    bool mine = true;
    float* v = thread_scratch(Scratch::kPackA, static_cast<size_t>(kTransformed * block * C));
    float* m = thread_scratch(Scratch::kColumns, static_cast<size_t>(kTransformed * block * K));
    thread_local std::vector<const float*> rows_storage;
    rows_storage.resize(static_cast<size_t>(mr));
    const float** rows = rows_storage.data();
    const int32_t tap0 = 0;
    float* window =
        pool2x2 ? thread_scratch(Scratch::kWindow, static_cast<size_t>(4 * K)) : nullptr;
    int64_t begin, end;
    static_share(tiles, tid, nt, begin, end);
    for (int64_t t0 = begin; t0 < end; t0 += block) {
      const int64_t count = std::min(block, end - t0);
      transform_input_tiles(kt, grid, x, t0, count, block, v);
      for (int xi = 0; xi < kTransformed; ++xi)
        for (int64_t i0 = 0; i0 < count; i0 += mr) {
          const int valid = static_cast<int>(std::min<int64_t>(mr, count - i0));
          for (int r = 0; r < mr; ++r) rows[r] = v + (xi * block + i0 + std::min(r, valid - 1)) * C;
          for (int64_t panel = 0; panel < panels; ++panel) {
            const int cols = static_cast<int>(std::min<int64_t>(nr, K - panel * nr));
            kt.igemm_microkernel(1, C, rows, &tap0, packed + (xi * panels + panel) * C * nr,
                                 m + (xi * block + i0) * K + panel * nr, K, valid, cols, nullptr,
                                 false, false);
          }
        }
      for (int64_t i = 0; i < count; ++i) {
        float* outs[4];
        if (pool2x2) {
          for (int j = 0; j < 4; ++j) outs[j] = window + j * K;
          mine &= kt.winograd_output_tile(K, m + i * K, block * K, bias, relu, outs);
          const float* window_rows[2] = {window, window + 2 * K};
          kt.max_pool_forward_run(K, window_rows, 2, 2, 0, 0, 1, y + (t0 + i) * K,
                                  argmax ? argmax + (t0 + i) * K : nullptr, relu);
          continue;
        }
        grid.output_pixels(y, K, t0 + i, outs);
        mine &= kt.winograd_output_tile(K, m + i * K, block * K, bias, relu, outs);
      }
    }
    if (!mine) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

// dkernel = G^T dU G per channel pair, where dU[xi][c][k] = sum over tiles of V[xi][t][c] *
// dM[xi][t][k] (V = B^T d B of the input tile, dM = A dY A^T of the output gradient tile): 16
// GEMMs that reduce over tiles, on the row-pointer microkernel. Each thread sums its tiles into
// a private dU, reduced once. G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. Returns false when
// a value of dkernel is not finite.
bool winograd_weight_gradient(const KernelTable& kt, const Conv2dShape& s, const float* x,
                              const float* dy, float* dkernel) {
  const int mr = kt.rowgemm[0].mr, nr = kt.rowgemm[0].nr;
  const int64_t C = s.in_c, K = s.out_c;
  const TileGrid in_grid(s.in_h, s.in_w, C, s.out_h, s.out_w, s.pad_top, s.pad_left);
  const int64_t tiles = in_grid.tiles(s.batch);
  const int64_t block = tiles_per_block(C, K, 768 * 1024, 1);
  const int64_t du_size = kTransformed * C * K;
  const int threads = threads_for_work(2.0 * kTransformed * tiles * C * K);
  std::vector<float*> partials(threads, nullptr);
  std::atomic<bool> finite{true};
  parallel_region(threads, [&](int tid, int nt) {
    float* v = thread_scratch(Scratch::kPackA, static_cast<size_t>(kTransformed * block * C));
    float* m = thread_scratch(Scratch::kColumns, static_cast<size_t>(kTransformed * block * K));
    float* du = thread_scratch(Scratch::kPartial, static_cast<size_t>(du_size));
    std::fill(du, du + du_size, 0.0f);
    thread_local std::vector<const float*> rows_storage;
    rows_storage.resize(static_cast<size_t>(2 * block));
    const float** v_rows = rows_storage.data();
    const float** m_rows = v_rows + block;
    int64_t begin, end;
    static_share(tiles, tid, nt, begin, end);
    for (int64_t t0 = begin; t0 < end; t0 += block) {
      const int64_t count = std::min(block, end - t0);
      transform_input_tiles(kt, in_grid, x, t0, count, block, v);
      for (int64_t i = 0; i < count; ++i) {
        const float* douts[4];
        in_grid.output_pixels(dy, K, t0 + i, douts);
        kt.winograd_output_grad_tile(K, douts, m + i * K, block * K);
      }
      for (int xi = 0; xi < kTransformed; ++xi) {
        for (int64_t i = 0; i < count; ++i) {
          v_rows[i] = v + (xi * block + i) * C;
          m_rows[i] = m + (xi * block + i) * K;
        }
        for (int64_t ci = 0; ci < C; ci += mr)
          for (int64_t co = 0; co < K; co += nr)
            kt.rowgemm[0].run(count, v_rows, ci, m_rows, co, du + (xi * C + ci) * K + co, K,
                              static_cast<int>(std::min<int64_t>(mr, C - ci)),
                              static_cast<int>(std::min<int64_t>(nr, K - co)), true);
      }
    }
    partials[tid] = du;
    team_barrier();
    // Reduce and transform back, each thread a share of the (c, k) pairs.
    int64_t e0, e1;
    static_share(C * K, tid, nt, e0, e1);
    float bad = 0.0f;  // x - x is 0 for a finite x, NaN otherwise
    for (int64_t e = e0; e < e1; ++e) {
      float u[4][4], h[3][4];
      for (int xi = 0; xi < kTransformed; ++xi) {
        float sum = 0.0f;
        for (int t = 0; t < nt; ++t) sum += partials[t][xi * C * K + e];
        u[xi / 4][xi % 4] = sum;
      }
      for (int col = 0; col < 4; ++col) {  // G^T dU
        h[0][col] = u[0][col] + 0.5f * (u[1][col] + u[2][col]);
        h[1][col] = 0.5f * (u[1][col] - u[2][col]);
        h[2][col] = 0.5f * (u[1][col] + u[2][col]) + u[3][col];
      }
      for (int a = 0; a < 3; ++a) {  // (G^T dU) G
        const float g0 = h[a][0] + 0.5f * (h[a][1] + h[a][2]);
        const float g1 = 0.5f * (h[a][1] - h[a][2]);
        const float g2 = 0.5f * (h[a][1] + h[a][2]) + h[a][3];
        dkernel[(a * 3 + 0) * C * K + e] = g0;
        dkernel[(a * 3 + 1) * C * K + e] = g1;
        dkernel[(a * 3 + 2) * C * K + e] = g2;
        bad += (g0 - g0) + (g1 - g1) + (g2 - g2);
      }
    }
    if (bad != 0.0f) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

}  // namespace

bool winograd_conv2d_forward(const KernelTable& kt, const Conv2dShape& s, const float* x,
                             const float* kernel, const float* bias, float* y, bool relu) {
  return winograd_conv3x3(kt, s.batch, s.in_h, s.in_w, s.in_c, x, kernel, s.out_c, s.pad_top,
                          s.pad_left, s.out_h, s.out_w, bias, relu, y);
}

bool winograd_conv2d_forward_max_pool(const KernelTable& kt, const Conv2dShape& s,
                                      const Pool2dShape& p, const float* x, const float* kernel,
                                      const float* bias, float* pooled, bool relu,
                                      uint8_t* argmax) {
  return winograd_conv3x3(kt, s.batch, s.in_h, s.in_w, s.in_c, x, kernel, s.out_c, s.pad_top,
                          s.pad_left, 2 * p.out_h, 2 * p.out_w, bias, relu, pooled, true, argmax);
}

// dx is the correlation of dy with the kernel turned by 180 degrees and its channel axes swapped,
// padded by 2 - pad (kernel size - 1 - pad) on the top and left.
bool winograd_conv2d_backward_input(const KernelTable& kt, const Conv2dShape& s, const float* dy,
                                    const float* kernel, float* dx) {
  std::vector<float> turned(static_cast<size_t>(9 * s.in_c * s.out_c));
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b)
      for (int64_t ci = 0; ci < s.in_c; ++ci)
        for (int64_t co = 0; co < s.out_c; ++co)
          turned[(((2 - a) * 3 + (2 - b)) * s.out_c + co) * s.in_c + ci] =
              kernel[((a * 3 + b) * s.in_c + ci) * s.out_c + co];
  return winograd_conv3x3(kt, s.batch, s.out_h, s.out_w, s.out_c, dy, turned.data(), s.in_c,
                          2 - s.pad_top, 2 - s.pad_left, s.in_h, s.in_w, nullptr, false, dx);
}

bool winograd_conv2d_backward_weight(const KernelTable& kt, const Conv2dShape& s, const float* x,
                                     const float* dy, float* dkernel) {
  return winograd_weight_gradient(kt, s, x, dy, dkernel);
}

}  // namespace fastconv
