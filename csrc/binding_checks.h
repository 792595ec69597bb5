#pragma once
// The bindings' argument checks: what the kernels rely on for memory and arithmetic safety
// (dtype, contiguity, ranks, matching extents, no empty extent a kernel divides by, index
// arithmetic that cannot overflow). Included by csrc/bindings.cpp alone.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/conv2d.h"
#include "kernels/conv2d/algorithms.h"
#include "kernels/pool2d.h"

namespace fastconv_bindings {

namespace py = pybind11;
using fastconv::Conv2dShape;
using fastconv::Pool2dShape;

using Array = py::array_t<float, py::array::c_style>;
using LabelArray = py::array_t<int64_t, py::array::c_style>;
using ArgmaxArray = py::array_t<uint8_t, py::array::c_style>;
using Pair = std::pair<int64_t, int64_t>;

inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline fastconv::ConvPass conv_pass(const std::string& name) {
  if (name == "forward") return fastconv::ConvPass::kForward;
  if (name == "input_gradient") return fastconv::ConvPass::kInputGradient;
  require(name == "weight_gradient",
          "pass must be 'forward', 'input_gradient' or 'weight_gradient', got '" + name + "'");
  return fastconv::ConvPass::kWeightGradient;
}

inline void require_rank(const py::array& a, const char* name, int rank) {
  require(a.ndim() == rank, std::string(name) + " must have rank " + std::to_string(rank) +
                                ", got rank " + std::to_string(a.ndim()));
}

inline float* writable(Array& a, const char* name) {
  require(a.writeable(), std::string(name) + " must be writeable");
  return a.mutable_data();
}

inline void require_same_size(const py::array& a, const py::array& b, const char* an,
                              const char* bn) {
  require(a.size() == b.size(), std::string(an) + " and " + bn + " must have the same size");
}

// Kernels divide by and loop over these extents: none may be empty (fastconv.ops returns empty
// results without calling the kernels).
inline void require_nonempty(std::initializer_list<std::pair<const char*, int64_t>> extents) {
  for (const auto& [name, extent] : extents)
    require(extent >= 1, std::string(name) + " must be >= 1, got " + std::to_string(extent));
}

// Along one axis the kernels index input cells at out * stride - pad + tap * dilation for
// out < outs and tap < taps, and step through memory by that index times the floats of one cell
// (a pixel's channels along a row, a row's along a column): every such offset must fit in 64 bits,
// or the arithmetic would wrap around.
inline void require_reach(const char* axis, int64_t outs, int64_t stride, int64_t taps,
                          int64_t dilation, int64_t pad, int64_t cell_floats) {
  int64_t a, b, reach;
  const bool wraps =
      __builtin_mul_overflow(outs - 1, stride, &a) || __builtin_mul_overflow(taps, dilation, &b) ||
      __builtin_add_overflow(a, b, &reach) || __builtin_add_overflow(reach, pad, &reach) ||
      __builtin_mul_overflow(reach, cell_floats, &reach);
  require(!wraps, std::string(axis) +
                      ": strides, dilation_rate, padding and sizes reach beyond 64-bit indices");
}

inline void check_conv(const Conv2dShape& s) {
  require_nonempty({{"batch", s.batch},
                    {"input height", s.in_h},
                    {"input width", s.in_w},
                    {"input channels", s.in_c},
                    {"output height", s.out_h},
                    {"output width", s.out_w},
                    {"filters", s.out_c},
                    {"kernel height", s.kernel_h},
                    {"kernel width", s.kernel_w}});
  require(s.stride_h > 0 && s.stride_w > 0, "strides must be positive");
  require(s.dilation_h > 0 && s.dilation_w > 0, "dilation_rate must be positive");
  require(s.pad_top >= 0 && s.pad_left >= 0, "padding must be non-negative");
  const int64_t row_floats = s.in_w * s.in_c;  // within an array's size: no overflow
  require_reach("height", s.out_h, s.stride_h, s.kernel_h, s.dilation_h, s.pad_top, row_floats);
  require_reach("width", s.out_w, s.stride_w, s.kernel_w, s.dilation_w, s.pad_left, s.in_c);
  // The input gradient walks the same taps from the input side.
  require_reach("height", s.in_h, 1, s.kernel_h, s.dilation_h, s.pad_top, row_floats);
  require_reach("width", s.in_w, 1, s.kernel_w, s.dilation_w, s.pad_left, s.in_c);
}

inline void check_pool(const Pool2dShape& p) {
  require_nonempty({{"batch", p.batch},
                    {"input height", p.in_h},
                    {"input width", p.in_w},
                    {"channels", p.channels},
                    {"output height", p.out_h},
                    {"output width", p.out_w}});
  require(p.pool_h > 0 && p.pool_w > 0, "pool_size must be positive");
  require(p.stride_h > 0 && p.stride_w > 0, "strides must be positive");
  require(p.pad_top >= 0 && p.pad_left >= 0, "padding must be non-negative");
  require_reach("height", p.out_h, p.stride_h, p.pool_h, 1, p.pad_top, p.in_w * p.channels);
  require_reach("width", p.out_w, p.stride_w, p.pool_w, 1, p.pad_left, p.channels);
}

// Whether pooling windows (stride = pool size, no padding) tile its input: each input cell under
// at most one window. Divisions, not products, so that no size can wrap around.
inline bool tiles(const Pool2dShape& p) {
  return p.pool_h > 0 && p.pool_w > 0 && p.pool_h <= p.in_h && p.pool_w <= p.in_w &&
         p.pool_h * p.pool_w <= (int64_t{1} << 20) && p.out_h <= p.in_h / p.pool_h &&
         p.out_w <= p.in_w / p.pool_w;
}

// The pooling's argmax tape (one byte per pooled value: the window's cell, so at most 254 cells).
inline uint8_t* writable_argmax(std::optional<ArgmaxArray>& argmax, const Array& pooled) {
  if (!argmax) return nullptr;
  require(argmax->ndim() == 4 && argmax->size() == pooled.size(),
          "argmax must have the shape of the pooled output");
  require(argmax->writeable(), "argmax must be writable");
  return argmax->mutable_data();
}

inline void require_argmax_pool(const Pool2dShape& p) {
  require(p.pool_h * p.pool_w <= 254, "an argmax tape takes windows of at most 254 cells");
}

// The optional bias gradient of a layer with `filters` outputs: null when absent.
inline float* writable_bias(std::optional<Array>& dbias, int64_t filters) {
  if (!dbias) return nullptr;
  require(dbias->ndim() == 1 && dbias->shape(0) == filters, "dbias must be (filters,)");
  return writable(*dbias, "dbias");
}

inline Conv2dShape conv_shape(const Array& x, const Array& kernel, const Array& y, Pair strides,
                              Pair dilation, Pair pads) {
  require_rank(x, "x", 4);
  require_rank(kernel, "kernel", 4);
  require_rank(y, "y", 4);
  require(kernel.shape(2) == x.shape(3), "kernel in_channels must match x channels");
  require(y.shape(0) == x.shape(0) && y.shape(3) == kernel.shape(3),
          "y must be (batch, out_h, out_w, filters)");
  const Conv2dShape s{x.shape(0),      x.shape(1),    x.shape(2),     x.shape(3),
                      y.shape(1),      y.shape(2),    y.shape(3),     kernel.shape(0),
                      kernel.shape(1), strides.first, strides.second, dilation.first,
                      dilation.second, pads.first,    pads.second};
  check_conv(s);
  return s;
}

// The pooling of x into y; the callers check it (check_pool), the fused ones after the tiling.
// The convolution of x by a kernel-shaped array (the kernel or its gradient) to out_hw.
inline Conv2dShape conv_shape_to(const Array& x, const Array& kernel, const char* kernel_name,
                                 Pair out_hw, Pair strides, Pair dilation, Pair pads) {
  require_rank(x, "x", 4);
  require_rank(kernel, kernel_name, 4);
  require(kernel.shape(2) == x.shape(3),
          std::string(kernel_name) + " in_channels must match x channels");
  const Conv2dShape s{x.shape(0),      x.shape(1),    x.shape(2),      x.shape(3),
                      out_hw.first,    out_hw.second, kernel.shape(3), kernel.shape(0),
                      kernel.shape(1), strides.first, strides.second,  dilation.first,
                      dilation.second, pads.first,    pads.second};
  check_conv(s);
  return s;
}

// The max pooling (stride = pool, no padding) of s's output whose result (or its gradient) is
// `pooled`, checked to tile that output.
inline Pool2dShape tiling_pool_of(const Conv2dShape& s, const Array& pooled, const char* name,
                                  Pair pool) {
  const Pool2dShape p{s.batch,         s.out_h,         s.out_w,    s.out_c,
                      pooled.shape(1), pooled.shape(2), pool.first, pool.second,
                      pool.first,      pool.second,     0,          0};
  require(pooled.shape(0) == s.batch && pooled.shape(3) == s.out_c && tiles(p) &&
              p.out_h == s.out_h / p.pool_h && p.out_w == s.out_w / p.pool_w,
          std::string(name) +
              " must be the non-overlapping, unpadded max pooling of the conv "
              "output");
  check_pool(p);
  return p;
}

inline Pool2dShape pool_shape(const Array& x, const Array& y, Pair pool, Pair strides, Pair pads) {
  require_rank(x, "x", 4);
  require_rank(y, "y", 4);
  require(y.shape(0) == x.shape(0) && y.shape(3) == x.shape(3),
          "pool output must be (batch, out_h, out_w, channels)");
  const Pool2dShape p{x.shape(0),    x.shape(1),     x.shape(2), x.shape(3),
                      y.shape(1),    y.shape(2),     pool.first, pool.second,
                      strides.first, strides.second, pads.first, pads.second};
  return p;
}

}  // namespace fastconv_bindings
