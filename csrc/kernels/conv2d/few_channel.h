#pragma once
// The pass-level pieces of the few-channel algorithms (layers with an image's 1 to 4 input
// channels; the patch sums take any count): the forward pass a grid row at a time and the weight
// gradient's patch sums, both over patches read in place (PatchRows).
// Shared by the plain passes and the fused first-layer passes.
#include <algorithm>
#include <cstdint>

#include "core/workspace.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d/gather.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace conv2d_detail {

// The forward pass of a layer with 1 to 4 input channels (an image's): a grid row at a time
// over patches read in place (PatchRows), with the kernel's rows for NR filters in registers'
// reach. The igemm would run only 9 or 27 depth steps per tile of pixels and rebuild its row
// pointers for every tile (python bench/report.py --only conv1 compares them).
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

// The same sum for any channel count (the weight gradient's GEMM tiles leave an image's 1 to 4
// to it), read in place (see PatchRows). With the bias, one more element reads a buffer
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
    const int max_rows = kt_.patch_gradient_max_rows, nr = kt_.rowgemm[0].nr;
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

}  // namespace conv2d_detail
}  // namespace fastconv
