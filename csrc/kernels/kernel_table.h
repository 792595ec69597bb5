#pragma once
// The table of per-ISA kernels. Each ISA folder fills one table; dispatch picks the best table the
// CPU supports once at import (or the one FASTCONV_ISA forces).
#include <cstdint>

namespace fastconv {

// c[i*ldc + j] (+)= sum_k a[k*MR + i] * b[k*NR + j] for i < mr, j < nr, over packed panels of
// MR rows of A and NR columns of B (zero-padded to full tiles).
using GemmMicrokernel = void (*)(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                                 int64_t ldc, int mr, int nr, bool accumulate);

// Indirect GEMM for convolution (no im2col, no packing of the image): over the listed taps,
// c[i*ldc + j] (+)= sum_t sum_{ch < channels} rows[t*MR + i][ch] * b[(tap_ids[t]*channels + ch)*NR
// + j] where rows[t*MR + i] points at the `channels` values that tap tap_ids[t] reads for output
// row i (a zero row where it falls in the padding), and b is one packed NR-column panel. Taps whose
// rows are all padding are left out of the list by the caller. The sum starts from bias[j] (when
// not null) and is clamped at zero when relu: the epilogue runs while the tile is in registers.
// With stream, full tiles go to memory by non-temporal stores (c 64-byte aligned, ldc a multiple
// of 16); the caller ends with store_fence.
using IgemmMicrokernel = void (*)(int64_t taps, int64_t channels, const float* const* rows,
                                  const int32_t* tap_ids, const float* b_panel, float* c,
                                  int64_t ldc, int mr, int nr, const float* bias, bool relu,
                                  bool stream);

// Row-pointer GEMM for the convolution weight gradient:
// c[i*ldc + j] (+)= sum_k a_rows[k][a_offset + i] * b_rows[k][b_offset + j] for i < mr, j < nr,
// skipping k where a_rows[k] is null (a tap in the padding). Reads no value past the mr-th of an
// a row or the nr-th of a b row.
using RowGemmMicrokernel = void (*)(int64_t kc, const float* const* a_rows, int64_t a_offset,
                                    const float* const* b_rows, int64_t b_offset, float* c,
                                    int64_t ldc, int mr, int nr, bool accumulate);

// A row GEMM tile: up to mr rows by nr columns per call.
struct RowGemmTile {
  int mr;
  int nr;
  RowGemmMicrokernel run;
};

// The row GEMM tiles of every table, in this order: the weight gradient's algorithm list has one
// entry per tile ("rowgemm", "rowgemm_tall") and auto times them on the CPU at hand, because which
// is fastest depends on its FMA ports and cache bandwidth, not on the ISA alone. The tall tile has
// more rows (fewer loads of dy per multiply-add, more accumulators).
constexpr int kRowGemmTiles = 2;

struct KernelTable {
  const char* isa;
  // The table's microkernel instances named by op, tile (rows x columns) and ISA, e.g.
  // "igemm_6x16_avx2", space-separated: what fastconv.info() and the tests report.
  const char* instances;
  int gemm_mr;
  int gemm_nr;
  GemmMicrokernel gemm_microkernel;
  int igemm_mr;
  int igemm_nr;
  IgemmMicrokernel igemm_microkernel;
  // The forward pass of 1-4 channel layers (images') along a grid row, read in place:
  // out[k * ldo + j] = bias[j] + sum over r < rows of elems[r][k * step] * w[r * igemm_nr + j],
  // then ReLU, for count pixels and nr (up to igemm_nr) filters; bias may be null.
  void (*small_depth_row)(int64_t count, int rows, const float* const* elems, int64_t step,
                          const float* w, const float* bias, bool relu, float* out, int64_t ldo,
                          int nr, bool stream);
  // The input gradient of a stride-1 layer with in_c (1 to 4) input channels for count pixels
  // of an image row: dx[k * in_c + ci] = sum over t < taps and co < out_c of
  // dy_taps[t][k * out_c + co] * w_taps[t][ci * out_c + co].
  void (*small_depth_dx)(int in_c, int64_t count, int taps, const float* const* dy_taps,
                         const float* const* w_taps, int64_t out_c, float* dx);
  // The first is the default (dense layers' gradients, Winograd's weight gradient).
  RowGemmTile rowgemm[kRowGemmTiles];
  // The weight gradient of layers with few channels (images' 1 to 4), read in place from the
  // image:
  // sums[i][j] += sum over count pixels k of elems[i][k * step] * dy[k * dy_step + j], for
  // `rows` (1 to patch_gradient_max_rows) patch elements and nr (up to rowgemm[0].nr) filters.
  int patch_gradient_max_rows;
  void (*patch_gradient_rows)(int rows, int64_t count, const float* const* elems, int64_t step,
                              const float* dy, int64_t dy_step, float* sums, int64_t ld, int nr);
  // Orders the non-temporal stores of a streaming igemm before later memory operations.
  void (*store_fence)();
  // Max pooling over a run of `count` windows of cells_h x cells_w cells (window k's cells:
  // rows[i] + offset + k * step + j * C), per channel, NaN winning, to out + k * C; windows of
  // no cells give 0. With argmax (windows of at most 254 cells): argmax[k * C + c] = the
  // row-major index of the first maximal cell, or 255 where positive_only and the maximum is
  // not > 0 (no gradient passes a ReLU there).
  void (*max_pool_forward_run)(int64_t C, const float* const* rows, int cells_h, int cells_w,
                               int64_t offset, int64_t step, int64_t count, float* out,
                               uint8_t* argmax, bool positive_only);
  // The gradient of such a run of non-overlapping windows from its argmax: window k's cell j
  // (dx_rows[i] + offset + k * step + j * C) gets dy[k * C + c] where argmax[k * C + c] is its
  // index, else 0.
  void (*max_pool_backward_argmax_run)(int64_t C, const uint8_t* argmax, const float* dy,
                                       float* const* dx_rows, int cells_h, int cells_w,
                                       int64_t offset, int64_t step, int64_t count);
  // The gradient of such a run: window k's dx cells (dx_rows[i] + offset + k * step + j * C)
  // get dy[k * C + c] where the x cell is the first (row-major) maximal cell of the window, else
  // 0 (added to dx when accumulate: windows that overlap). positive_only also drops windows
  // whose maximum is not > 0: the gradient of the ReLU before the pooling, folded in.
  void (*max_pool_backward_run)(int64_t C, const float* const* x_rows, float* const* dx_rows,
                                int cells_h, int cells_w, int64_t offset, int64_t step,
                                int64_t count, const float* dy, bool accumulate,
                                bool positive_only);
  // Winograd F(2x2, 3x3), vectorised over channels. Input: the 4x4 cells of one input tile
  // (cells[r*4 + c], null in the padding) to v[xi * v_stride + ch], xi = 0..15, V = B^T d B.
  // Output: from m[xi * m_stride + k], Y = A^T M A (+ bias, ReLU) to the 2x2 pixels outs[r*2 +
  // c] (null outside the image); false when a value of Y stored (before bias and ReLU) is not
  // finite.
  void (*winograd_input_tile)(int64_t C, const float* const* cells, float* v, int64_t v_stride);
  bool (*winograd_output_tile)(int64_t K, const float* m, int64_t m_stride, const float* bias,
                               bool relu, float* const* outs);
  // The weight gradient's view of an output tile: dM = A dY A^T from the 2x2 output gradients
  // douts[r*2 + c] (null outside the image) to m[xi * m_stride + k].
  void (*winograd_output_grad_tile)(int64_t K, const float* const* douts, float* m,
                                    int64_t m_stride);
  // out[b * count + r] = sum_{i < n} x[b * n + i] * rows[r * n + i] for b < inputs, r < count:
  // the forward pass of dense layers with few units (rows: the transposed kernel).
  void (*dots)(int64_t inputs, int64_t n, const float* x, const float* rows, int64_t count,
               float* out);
  void (*relu_forward)(const float* x, float* y, int64_t n);
  void (*relu_backward)(const float* x, const float* dy, float* dx, int64_t n);
  void (*bias_relu_rows)(float* c, int64_t ldc, int64_t rows, int64_t cols, const float* bias,
                         bool relu);
  void (*add_rows)(int64_t rows, int64_t n, const float* src, int64_t src_stride, float* dst,
                   int64_t dst_stride);
  void (*sgd_update)(float* p, const float* g, float* buf, int64_t n, float lr, float momentum,
                     bool nesterov);
  void (*rmsprop_update)(float* p, const float* g, float* v, int64_t n, float lr, float rho,
                         float eps);
  void (*adam_update)(float* p, const float* g, float* m, float* v, int64_t n, float alpha,
                      float beta1, float beta2, float eps);
};

const KernelTable& generic_kernel_table();
#if defined(FASTCONV_HAVE_X86_KERNELS)
const KernelTable& avx2_kernel_table();
const KernelTable& avx512_kernel_table();
#endif

}  // namespace fastconv
