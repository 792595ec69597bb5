// The weight gradient: row-pointer GEMM, packed GEMM, patch sums read in place, Winograd.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/parallel_region.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d/algorithms.h"
#include "kernels/conv2d/few_channel.h"
#include "kernels/conv2d/gather.h"
#include "kernels/conv2d/passes.h"
#include "kernels/conv2d/weight_sums.h"
#include "kernels/conv2d/winograd.h"

namespace fastconv {
namespace conv2d_detail {

namespace {

// Walks pixels [begin, end) a chunk at a time: sources[p * chunk + k] gets the x row that tap
// p * tap_step of pixel c0 + k reads (null in the padding), body(c0, kc) runs on the chunk, then
// dbias[co] (when not null) gets the chunk's dy summed for co in [co_begin, co_end) while its dy
// rows are in cache (a pass of its own would read all of dy from memory again: 62 MB for B.conv2).
template <class Body>
void for_pixel_chunks(const KernelTable& kt, const Conv2dShape& s, const float* x, const float* dy,
                      int64_t begin, int64_t end, int64_t chunk, int64_t pointer_taps,
                      int64_t tap_step, const float** sources, int64_t co_begin, int64_t co_end,
                      float* dbias, const Body& body) {
  const TapGather g = forward_gather(s, x);
  for (int64_t c0 = begin; c0 < end; c0 += chunk) {
    const int64_t kc = std::min(chunk, end - c0);
    TapGather::Cursor c = g.cursor(c0);
    for (int64_t k = 0; k < kc; ++k, g.advance(c))
      for (int64_t p = 0; p < pointer_taps; ++p) {
        const int64_t t = p * tap_step;
        sources[p * chunk + k] = g.source(c.n, c.y, c.x, t / s.kernel_w, t % s.kernel_w);
      }
    body(c0, kc);
    if (dbias)
      kt.add_rows(kc, co_end - co_begin, dy + c0 * s.out_c + co_begin, s.out_c, dbias + co_begin,
                  0);
  }
}

// dkernel[(tap, ci), co] += sum over pixels [begin, end) of x[source(p, tap), ci] * dy[p, co],
// one tap at a time with row pointers: padding taps are skipped, nothing is packed.
void weight_gradient_rows(const KernelTable& kt, const RowGemmTile& tile, const Conv2dShape& s,
                          const float* x, const float* dy, int64_t begin, int64_t end,
                          int64_t co_begin, int64_t co_end, float* dkernel, float* dbias) {
  constexpr int64_t kChunk = 256;
  const int mr = tile.mr, nr = tile.nr;
  const int64_t taps = s.kernel_h * s.kernel_w, in_c = s.in_c, out_c = s.out_c;
  thread_local std::vector<const float*> rows_storage;
  rows_storage.resize(static_cast<size_t>((taps + 1) * kChunk));
  const float** a_rows = rows_storage.data();  // plain pointers: see igemm_convolution
  const float** b_rows = a_rows + taps * kChunk;
  // When every kernel row lies inside the image horizontally (no left/right padding, no
  // horizontal dilation), tap (a, b) of a pixel reads b * in_c floats past tap (a, 0): one row
  // pointer per kernel row serves its kernel_w taps through the microkernel's offset.
  const bool rows_shared =
      s.dilation_w == 1 && s.pad_left == 0 && (s.out_w - 1) * s.stride_w + s.kernel_w - 1 < s.in_w;
  const int64_t pointer_taps = rows_shared ? s.kernel_h : taps;
  const int64_t tap_step = rows_shared ? s.kernel_w : 1;
  for_pixel_chunks(kt, s, x, dy, begin, end, kChunk, pointer_taps, tap_step, a_rows, co_begin,
                   co_end, dbias, [&](int64_t c0, int64_t kc) {
                     for (int64_t k = 0; k < kc; ++k) b_rows[k] = dy + (c0 + k) * out_c;
                     for (int64_t t = 0; t < taps; ++t) {
                       const int64_t p = t / tap_step, shift = (t % tap_step) * in_c;
                       for (int64_t ci = 0; ci < in_c; ci += mr)
                         for (int64_t co = co_begin; co < co_end; co += nr)
                           tile.run(kc, a_rows + p * kChunk, ci + shift, b_rows, co,
                                    dkernel + (t * in_c + ci) * out_c + co, out_c,
                                    static_cast<int>(std::min<int64_t>(mr, in_c - ci)),
                                    static_cast<int>(std::min<int64_t>(nr, co_end - co)), true);
                     }
                   });
}

// The same sums as a packed GEMM per tap: a chunk of pixels' dy is packed once into NR-column
// strips and each tap's x values into MR-row panels (zeros in the padding), then the table's
// GEMM microkernel runs on contiguous panels. The row GEMM reads dy rows out_c floats apart and
// x pixels in_c floats apart: powers of two that put a call's 256 rows into a few cache sets
// (B.conv5's 1 KB stride uses 4 of the 64 sets of a 32 KB L1), so its loads come from L2.
void weight_gradient_packed(const KernelTable& kt, const Conv2dShape& s, const float* x,
                            const float* dy, int64_t begin, int64_t end, int64_t co_begin,
                            int64_t co_end, float* dkernel, float* dbias) {
  const int mr = kt.gemm_mr, nr = kt.gemm_nr;
  // A panel of dy (chunk x nr floats, 16 KB) stays in L1 while the x panels stream past it.
  const int64_t chunk = std::max(64, 4096 / nr);
  const int64_t taps = s.kernel_h * s.kernel_w, in_c = s.in_c, out_c = s.out_c;
  const int64_t cols = co_end - co_begin;
  float* a_pack = thread_scratch(Scratch::kPanels, static_cast<size_t>(chunk * (in_c + mr)));
  float* b_pack = thread_scratch(Scratch::kPackB, static_cast<size_t>(chunk * (cols + nr)));
  thread_local std::vector<const float*> rows_storage;
  rows_storage.resize(static_cast<size_t>((taps + 1) * chunk));
  const float** sources = rows_storage.data();  // [tap][k]; null in the padding
  const float** dy_rows = sources + taps * chunk;
  for_pixel_chunks(kt, s, x, dy, begin, end, chunk, taps, 1, sources, co_begin, co_end, dbias,
                   [&](int64_t c0, int64_t kc) {
                     for (int64_t k = 0; k < kc; ++k) dy_rows[k] = dy + (c0 + k) * out_c + co_begin;
                     pack_panels(dy_rows, kc, cols, nr, b_pack);
                     for (int64_t t = 0; t < taps; ++t) {
                       pack_panels(sources + t * chunk, kc, in_c, mr, a_pack);
                       gemm_on_panels(kt, kc, a_pack, in_c, b_pack, cols,
                                      dkernel + t * in_c * out_c + co_begin, out_c);
                     }
                   });
}

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

// Threads share the weight gradient's sums: chunk(begin, end, co_begin, co_end, dkernel, dbias)
// adds pixels [begin, end) of filters [co_begin, co_end) to dkernel (and dbias when not null).
template <typename Chunk>
void split_weight_gradient(const Conv2dShape& s, int nr, float* dkernel, float* dbias,
                           const Chunk& chunk) {
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t out_c = s.out_c;
  const int64_t kernel_size = s.kernel_h * s.kernel_w * s.in_c * out_c;
  const int threads = threads_for_work(2.0 * pixels * kernel_size);
  // Few pixels (small images): the private partials below would be large next to the work
  // (B.conv5: 256x256x9 partials for 784 pixels per thread), so threads split the filters and
  // each sums all pixels for its own columns of dkernel (python bench/report.py --only B.conv5).
  if (threads > 1 && pixels < 2048 * threads && out_c >= threads * nr) {
    parallel_region(threads, [&](int tid, int nt) {
      int64_t b0, b1;
      static_share((out_c + nr - 1) / nr, tid, nt, b0, b1);
      const int64_t co0 = b0 * nr, co1 = std::min(out_c, b1 * nr);
      if (co0 >= co1) return;
      for (int64_t row = 0; row < kernel_size / out_c; ++row)
        std::fill(dkernel + row * out_c + co0, dkernel + row * out_c + co1, 0.0f);
      if (dbias) std::fill(dbias + co0, dbias + co1, 0.0f);
      chunk(0, pixels, co0, co1, dkernel, dbias);
    });
    return;
  }
  sum_over_threads(threads, kernel_size, out_c, dkernel, dbias,
                   [&](int tid, int nt, float* dk, float* db) {
                     int64_t begin, end;
                     static_share(pixels, tid, nt, begin, end);
                     if (db) std::fill(db, db + out_c, 0.0f);
                     chunk(begin, end, 0, out_c, dk, db);
                   });
}

}  // namespace

// The row-pointer algorithm, any channel count.
void backward_weight_rowgemm(const KernelTable& kt, const RowGemmTile& tile, const Conv2dShape& s,
                             const float* x, const float* dy, float* dkernel, float* dbias) {
  split_weight_gradient(
      s, tile.nr, dkernel, dbias,
      [&](int64_t begin, int64_t end, int64_t co0, int64_t co1, float* dk, float* db) {
        weight_gradient_rows(kt, tile, s, x, dy, begin, end, co0, co1, dk, db);
      });
}

// The packed algorithm, any channel count.
void backward_weight_packed(const KernelTable& kt, const Conv2dShape& s, const float* x,
                            const float* dy, float* dkernel, float* dbias) {
  split_weight_gradient(
      s, kt.gemm_nr, dkernel, dbias,
      [&](int64_t begin, int64_t end, int64_t co0, int64_t co1, float* dk, float* db) {
        weight_gradient_packed(kt, s, x, dy, begin, end, co0, co1, dk, db);
      });
}

// The patch algorithm: any channel count, patches read in place.
void backward_weight_patches(const KernelTable& kt, const Conv2dShape& s, const float* x,
                             const float* dy, float* dkernel, float* dbias) {
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t kernel_size = s.kernel_h * s.kernel_w * s.in_c * s.out_c;
  sum_over_threads(threads_for_work(2.0 * pixels * kernel_size), kernel_size, s.out_c, dkernel,
                   dbias, [&](int tid, int nt, float* dk, float* db) {
                     int64_t begin, end;
                     static_share(pixels, tid, nt, begin, end);
                     weight_gradient_patches(kt, s, x, dy, begin, end, dk, db);
                   });
}

// Winograd for dkernel; the bias gradient summed over dy's rows.
bool backward_weight_winograd(const KernelTable& kt, const Conv2dShape& s, const float* x,
                              const float* dy, float* dkernel, float* dbias) {
  const int64_t pixels = s.batch * s.out_h * s.out_w;
  const int64_t out_c = s.out_c;
  if (!winograd_conv2d_backward_weight(kt, s, x, dy, dkernel)) return false;
  if (dbias)
    parallel_region(threads_for_nanos(0.3 * pixels * out_c), [&](int tid, int nt) {
      int64_t c0, c1;
      static_share(out_c, tid, nt, c0, c1);
      std::fill(dbias + c0, dbias + c1, 0.0f);
      kt.add_rows(pixels, c1 - c0, dy + c0, out_c, dbias + c0, 0);
    });
  return true;
}

}  // namespace conv2d_detail

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dkernel,
                            float* dbias) {
  ConvOperands ops;
  ops.x = x;
  ops.dy = dy;
  ops.out = dkernel;
  ops.dbias = dbias;
  run_conv_pass(ConvPass::kWeightGradient, s, ops);
}

}  // namespace fastconv
