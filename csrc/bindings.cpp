// pybind11 bindings: thin. They check what the kernels rely on for memory and arithmetic safety
// (binding_checks.h), release the GIL, and call the kernels. Friendly argument checking and
// output allocation live in python/fastconv/ops/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "binding_checks.h"
#include "core/dispatch.h"
#include "core/parallel.h"
#include "core/peak.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d/algorithms.h"
#include "kernels/conv2d/few_channel.h"
#include "kernels/dense.h"
#include "kernels/elementwise.h"
#include "kernels/losses.h"
#include "kernels/pool2d.h"

namespace py = pybind11;
using fastconv::Conv2dShape;
using fastconv::Pool2dShape;

using namespace fastconv_bindings;

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastconv's C++ kernels (use fastconv.ops, which validates arguments)";
  fastconv::init_isa_from_environment();

#ifdef FASTCONV_VERSION
  m.attr("__version__") = FASTCONV_VERSION;
#else
  m.attr("__version__") = "0.0.0";
#endif
  m.def("get_isa", [] { return std::string(fastconv::active_kernels().isa); });
  // Layers with up to this many input channels (an image's) take the few-channel paths.
  m.attr("few_channel_max") = fastconv::conv2d_detail::kSmallDepthChannels;
  m.def("kernel_instances", [] { return std::string(fastconv::active_kernels().instances); });
  m.def("set_isa", &fastconv::set_isa, py::arg("name"));
  m.def("available_isas", &fastconv::available_isas);
  m.def("get_num_threads", &fastconv::num_threads);
  m.def("set_num_threads", [](int n) {
    require(n >= 1 && n <= fastconv::kMaxThreads, "num_threads must be in [1, " +
                                                      std::to_string(fastconv::kMaxThreads) +
                                                      "], got " + std::to_string(n));
    fastconv::set_num_threads(n);
  });
  m.def(
      "set_thread_num_threads",
      [](int n) {
        require(n >= 0 && n <= fastconv::kMaxThreads,
                "thread_num_threads must be in [0, " + std::to_string(fastconv::kMaxThreads) +
                    "] (0: the process setting), got " + std::to_string(n));
        fastconv::set_thread_num_threads(n);
      },
      py::arg("n"));
  m.def("has_openmp", &fastconv::have_openmp);
  m.def(
      "fma_peak_gflops",
      [](const std::string& isa, int threads, double seconds) {
        if (threads < 1 || threads > fastconv::kMaxThreads)
          throw std::invalid_argument("fma_peak_gflops: threads must be in [1, " +
                                      std::to_string(fastconv::kMaxThreads) + "]");
        if (!(seconds > 0.0 && seconds <= 10.0))
          throw std::invalid_argument("fma_peak_gflops: seconds must be in (0, 10]");
        py::gil_scoped_release release;
        return fastconv::fma_peak_gflops(isa, threads, seconds);
      },
      py::arg("isa"), py::arg("threads"), py::arg("seconds"));
  m.def("openmp_runtime_path", &fastconv::openmp_runtime_path);
  m.def("forked_child_single_threaded", &fastconv::forked_child_single_threaded);
  // The convolution algorithms (csrc/kernels/conv2d/algorithms.h).
  m.def("set_conv_algorithm", &fastconv::set_conv_algorithm, py::arg("name"));
  m.def("get_conv_algorithm", &fastconv::conv_algorithm);
  m.def("conv_algorithm_settings", &fastconv::conv_algorithm_settings);
  m.def("conv_algorithms",
        [](const std::string& pass) { return fastconv::conv_algorithm_names(conv_pass(pass)); });
  m.def(
      "conv_algorithm_reasons",
      [](const std::string& pass, const Array& x, const Array& kernel, const Array& y, Pair strides,
         Pair dilation, Pair pads) {
        const Conv2dShape s = conv_shape(x, kernel, y, strides, dilation, pads);
        return fastconv::conv_algorithm_reasons(conv_pass(pass), s);
      },
      py::arg("pass"), py::arg("x"), py::arg("kernel"), py::arg("y"), py::arg("strides"),
      py::arg("dilation"), py::arg("pads"));
  m.def("conv_algorithm_choices", [] {
    py::list out;
    for (const auto& c : fastconv::conv_algorithm_choices())
      out.append(py::make_tuple(c.pass, c.shape, c.threads, c.isa, c.algorithm, c.milliseconds));
    return out;
  });
  m.def("clear_conv_algorithm_choices", &fastconv::clear_conv_algorithm_choices);
  m.def(
      "last_conv_algorithms",
      [](bool clear) {
        py::list out;
        for (const auto& r : fastconv::last_conv_algorithms(clear))
          out.append(py::make_tuple(r.pass, r.shape, r.algorithm, r.how));
        return out;
      },
      py::arg("clear") = false);
  m.def("_get_min_thread_nanos", &fastconv::min_thread_nanos);
  m.def("_set_min_thread_nanos", &fastconv::set_min_thread_nanos, py::arg("nanos"));
  m.def("gemm_tile", [] {
    const auto& kt = fastconv::active_kernels();
    return std::make_pair(kt.gemm_mr, kt.gemm_nr);
  });

  m.def(
      "conv2d_forward",
      [](const Array& x, const Array& kernel, std::optional<Array> bias, Array& y, Pair strides,
         Pair dilation, Pair pads, bool relu) {
        const Conv2dShape s = conv_shape(x, kernel, y, strides, dilation, pads);
        if (bias)
          require(bias->ndim() == 1 && bias->shape(0) == s.out_c, "bias must be (filters,)");
        float* out = writable(y, "y");
        const float* b = bias ? bias->data() : nullptr;
        py::gil_scoped_release release;
        fastconv::conv2d_forward(s, x.data(), kernel.data(), b, out, relu);
      },
      py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("bias").noconvert(),
      py::arg("y").noconvert(), py::arg("strides"), py::arg("dilation"), py::arg("pads"),
      py::arg("relu"));

  m.def(
      "conv2d_forward_max_pool",
      [](const Array& x, const Array& kernel, std::optional<Array> bias, std::optional<Array> y,
         Array& pooled, Pair out_hw, Pair strides, Pair dilation, Pair pads, Pair pool, bool relu,
         std::optional<ArgmaxArray> argmax, std::optional<Array> scratch) {
        require_rank(pooled, "pooled", 4);
        const Conv2dShape s = conv_shape_to(x, kernel, "kernel", out_hw, strides, dilation, pads);
        for (const auto* out : {&y, &scratch})
          if (*out)
            require((*out)->ndim() == 4 && (*out)->shape(0) == s.batch &&
                        (*out)->shape(1) == s.out_h && (*out)->shape(2) == s.out_w &&
                        (*out)->shape(3) == s.out_c,
                    std::string(out == &y ? "y" : "scratch") +
                        " must be (batch, out_h, out_w, filters)");
        if (bias)
          require(bias->ndim() == 1 && bias->shape(0) == s.out_c, "bias must be (filters,)");
        const Pool2dShape p = tiling_pool_of(s, pooled, "pooled", pool);
        if (argmax) require_argmax_pool(p);
        float* conv_out = y ? writable(*y, "y") : nullptr;
        float* out = writable(pooled, "pooled");
        uint8_t* cells = writable_argmax(argmax, pooled);
        float* spare = scratch ? writable(*scratch, "scratch") : nullptr;
        const float* b = bias ? bias->data() : nullptr;
        py::gil_scoped_release release;
        fastconv::conv2d_forward_max_pool(s, p, x.data(), kernel.data(), b, conv_out, out, relu,
                                          cells, spare);
      },
      py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("bias").noconvert(),
      py::arg("y").noconvert(), py::arg("pooled").noconvert(), py::arg("out_hw"),
      py::arg("strides"), py::arg("dilation"), py::arg("pads"), py::arg("pool"), py::arg("relu"),
      py::arg("argmax").noconvert() = py::none(), py::arg("scratch").noconvert() = py::none());

  m.def(
      "conv2d_backward_input",
      [](const Array& dy, const Array& kernel, Array& dx, Pair strides, Pair dilation, Pair pads) {
        const Conv2dShape s = conv_shape(dx, kernel, dy, strides, dilation, pads);
        float* out = writable(dx, "dx");
        py::gil_scoped_release release;
        fastconv::conv2d_backward_input(s, dy.data(), kernel.data(), out);
      },
      py::arg("dy").noconvert(), py::arg("kernel").noconvert(), py::arg("dx").noconvert(),
      py::arg("strides"), py::arg("dilation"), py::arg("pads"));

  m.def(
      "conv2d_backward_weight",
      [](const Array& x, const Array& dy, Array& dkernel, std::optional<Array> dbias, Pair strides,
         Pair dilation, Pair pads) {
        const Conv2dShape s = conv_shape(x, dkernel, dy, strides, dilation, pads);
        float* dk = writable(dkernel, "dkernel");
        float* db = writable_bias(dbias, s.out_c);
        py::gil_scoped_release release;
        fastconv::conv2d_backward_weight(s, x.data(), dy.data(), dk, db);
      },
      py::arg("x").noconvert(), py::arg("dy").noconvert(), py::arg("dkernel").noconvert(),
      py::arg("dbias").noconvert(), py::arg("strides"), py::arg("dilation"), py::arg("pads"));

  m.def(
      "conv2d_backward_weight_through_max_pool",
      [](const Array& x, const Array& y, const Array& pool_dy, Array& dkernel,
         std::optional<Array> dbias, Pair strides, Pair dilation, Pair pads, Pair pool) {
        const Conv2dShape s = conv_shape(x, dkernel, y, strides, dilation, pads);
        const Pool2dShape p = pool_shape(y, pool_dy, pool, pool, {0, 0});
        require(tiles(p), "pool_dy must be y's non-overlapping, unpadded max pooling");
        check_pool(p);
        float* dk = writable(dkernel, "dkernel");
        float* db = writable_bias(dbias, s.out_c);
        py::gil_scoped_release release;
        fastconv::conv2d_backward_weight_through_max_pool(s, p, x.data(), y.data(), nullptr,
                                                          pool_dy.data(), dk, db);
      },
      py::arg("x").noconvert(), py::arg("y").noconvert(), py::arg("pool_dy").noconvert(),
      py::arg("dkernel").noconvert(), py::arg("dbias").noconvert(), py::arg("strides"),
      py::arg("dilation"), py::arg("pads"), py::arg("pool"));

  m.def(
      "conv2d_backward_weight_through_max_pool_argmax",
      [](const Array& x, const ArgmaxArray& argmax, const Array& pool_dy, Array& dkernel,
         std::optional<Array> dbias, Pair out_hw, Pair strides, Pair dilation, Pair pads,
         Pair pool) {
        require_rank(pool_dy, "pool_dy", 4);
        const Conv2dShape s = conv_shape_to(x, dkernel, "dkernel", out_hw, strides, dilation, pads);
        const Pool2dShape p = tiling_pool_of(s, pool_dy, "pool_dy", pool);
        require_argmax_pool(p);
        require(argmax.ndim() == 4 && argmax.size() == pool_dy.size(),
                "argmax must have the shape of pool_dy");
        float* dk = writable(dkernel, "dkernel");
        float* db = writable_bias(dbias, s.out_c);
        py::gil_scoped_release release;
        fastconv::conv2d_backward_weight_through_max_pool(s, p, x.data(), nullptr, argmax.data(),
                                                          pool_dy.data(), dk, db);
      },
      py::arg("x").noconvert(), py::arg("argmax").noconvert(), py::arg("pool_dy").noconvert(),
      py::arg("dkernel").noconvert(), py::arg("dbias").noconvert(), py::arg("out_hw"),
      py::arg("strides"), py::arg("dilation"), py::arg("pads"), py::arg("pool"));

  auto bind_pool_forward = [&m](const char* name,
                                void (*fn)(const Pool2dShape&, const float*, float*)) {
    m.def(
        name,
        [fn](const Array& x, Array& y, Pair pool, Pair strides, Pair pads) {
          const Pool2dShape s = pool_shape(x, y, pool, strides, pads);
          check_pool(s);
          float* out = writable(y, "y");
          py::gil_scoped_release release;
          fn(s, x.data(), out);
        },
        py::arg("x").noconvert(), py::arg("y").noconvert(), py::arg("pool"), py::arg("strides"),
        py::arg("pads"));
  };
  bind_pool_forward("max_pool2d_forward", [](const Pool2dShape& s, const float* x, float* y) {
    fastconv::max_pool2d_forward(s, x, y);
  });
  bind_pool_forward("avg_pool2d_forward", &fastconv::avg_pool2d_forward);

  m.def(
      "max_pool2d_backward",
      [](const Array& x, const Array& dy, Array& dx, Pair pool, Pair strides, Pair pads,
         bool through_relu) {
        const Pool2dShape s = pool_shape(x, dy, pool, strides, pads);
        check_pool(s);
        require(dx.ndim() == 4 && dx.size() == x.size(), "dx must have the shape of x");
        float* out = writable(dx, "dx");
        py::gil_scoped_release release;
        fastconv::max_pool2d_backward(s, x.data(), nullptr, dy.data(), out, through_relu);
      },
      py::arg("x").noconvert(), py::arg("dy").noconvert(), py::arg("dx").noconvert(),
      py::arg("pool"), py::arg("strides"), py::arg("pads"), py::arg("through_relu") = false);

  m.def(
      "max_pool2d_backward_argmax",
      [](const ArgmaxArray& argmax, const Array& dy, Array& dx, Pair pool) {
        const Pool2dShape s = pool_shape(dx, dy, pool, pool, {0, 0});
        require(tiles(s), "the pooling must not overlap and have no padding (strides = pool)");
        check_pool(s);
        require_argmax_pool(s);
        require(argmax.ndim() == 4 && argmax.size() == dy.size(), "argmax must have dy's shape");
        float* out = writable(dx, "dx");
        py::gil_scoped_release release;
        fastconv::max_pool2d_backward(s, nullptr, argmax.data(), dy.data(), out, false);
      },
      py::arg("argmax").noconvert(), py::arg("dy").noconvert(), py::arg("dx").noconvert(),
      py::arg("pool"));

  m.def(
      "avg_pool2d_backward",
      [](const Array& dy, Array& dx, Pair pool, Pair strides, Pair pads) {
        const Pool2dShape s = pool_shape(dx, dy, pool, strides, pads);
        check_pool(s);
        float* out = writable(dx, "dx");
        py::gil_scoped_release release;
        fastconv::avg_pool2d_backward(s, dy.data(), out);
      },
      py::arg("dy").noconvert(), py::arg("dx").noconvert(), py::arg("pool"), py::arg("strides"),
      py::arg("pads"));

  m.def(
      "dense_forward",
      [](const Array& x, const Array& kernel, std::optional<Array> bias, Array& y, bool relu) {
        require_rank(x, "x", 2);
        require_rank(kernel, "kernel", 2);
        require_rank(y, "y", 2);
        const int64_t batch = x.shape(0), in = x.shape(1), out = kernel.shape(1);
        require(kernel.shape(0) == in, "kernel must be (in, units)");
        require(y.shape(0) == batch && y.shape(1) == out, "y must be (batch, units)");
        if (bias) require(bias->ndim() == 1 && bias->shape(0) == out, "bias must be (units,)");
        float* o = writable(y, "y");
        const float* b = bias ? bias->data() : nullptr;
        py::gil_scoped_release release;
        fastconv::dense_forward(batch, in, out, x.data(), kernel.data(), b, o, relu);
      },
      py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("bias").noconvert(),
      py::arg("y").noconvert(), py::arg("relu"));

  m.def(
      "dense_backward",
      [](const Array& x, const Array& kernel, const Array& dy, std::optional<Array> dx,
         Array& dkernel, std::optional<Array> dbias) {
        require_rank(x, "x", 2);
        require_rank(kernel, "kernel", 2);
        require_rank(dy, "dy", 2);
        const int64_t batch = x.shape(0), in = x.shape(1), out = kernel.shape(1);
        require(kernel.shape(0) == in, "kernel must be (in, units)");
        require(dy.shape(0) == batch && dy.shape(1) == out, "dy must be (batch, units)");
        require_same_size(kernel, dkernel, "kernel", "dkernel");
        float* dxp = nullptr;
        if (dx) {
          require_same_size(x, *dx, "x", "dx");
          dxp = writable(*dx, "dx");
        }
        float* dbp = nullptr;
        if (dbias) {
          require(dbias->size() == out, "dbias must be (units,)");
          dbp = writable(*dbias, "dbias");
        }
        float* dk = writable(dkernel, "dkernel");
        py::gil_scoped_release release;
        fastconv::dense_backward(batch, in, out, x.data(), kernel.data(), dy.data(), dxp, dk, dbp);
      },
      py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("dy").noconvert(),
      py::arg("dx").noconvert(), py::arg("dkernel").noconvert(), py::arg("dbias").noconvert());

  m.def(
      "relu_forward",
      [](const Array& x, Array& y) {
        require_same_size(x, y, "x", "y");
        float* o = writable(y, "y");
        py::gil_scoped_release release;
        fastconv::relu_forward(x.data(), o, x.size());
      },
      py::arg("x").noconvert(), py::arg("y").noconvert());
  m.def(
      "relu_backward",
      [](const Array& x, const Array& dy, Array& dx) {
        require_same_size(x, dy, "x", "dy");
        require_same_size(x, dx, "x", "dx");
        float* o = writable(dx, "dx");
        py::gil_scoped_release release;
        fastconv::relu_backward(x.data(), dy.data(), o, x.size());
      },
      py::arg("x").noconvert(), py::arg("dy").noconvert(), py::arg("dx").noconvert());

  m.def(
      "softmax",
      [](const Array& x, Array& y) {
        require_rank(x, "x", 2);
        require_same_size(x, y, "x", "y");
        float* o = writable(y, "y");
        py::gil_scoped_release release;
        fastconv::softmax_rows(x.shape(0), x.shape(1), x.data(), o);
      },
      py::arg("x").noconvert(), py::arg("y").noconvert());
  m.def(
      "sigmoid",
      [](const Array& x, Array& y) {
        require_same_size(x, y, "x", "y");
        float* o = writable(y, "y");
        py::gil_scoped_release release;
        fastconv::sigmoid(x.size(), x.data(), o);
      },
      py::arg("x").noconvert(), py::arg("y").noconvert());
  m.def(
      "sparse_softmax_cross_entropy",
      [](const Array& logits, const LabelArray& labels, Array& losses, Array& dlogits) {
        require_rank(logits, "logits", 2);
        const int64_t rows = logits.shape(0), cols = logits.shape(1);
        require(labels.size() == rows && losses.size() == rows, "labels/losses must be (batch,)");
        require_same_size(logits, dlogits, "logits", "dlogits");
        const int64_t* l = labels.data();
        for (int64_t i = 0; i < rows; ++i)
          require(l[i] >= 0 && l[i] < cols, "labels must be in [0, classes)");
        float* lo = writable(losses, "losses");
        float* g = writable(dlogits, "dlogits");
        py::gil_scoped_release release;
        fastconv::sparse_softmax_cross_entropy(rows, cols, logits.data(), l, lo, g);
      },
      py::arg("logits").noconvert(), py::arg("labels").noconvert(), py::arg("losses").noconvert(),
      py::arg("dlogits").noconvert());
  m.def(
      "softmax_cross_entropy",
      [](const Array& logits, const Array& targets, Array& losses, Array& dlogits) {
        require_rank(logits, "logits", 2);
        require_same_size(logits, targets, "logits", "targets");
        require_same_size(logits, dlogits, "logits", "dlogits");
        require(losses.size() == logits.shape(0), "losses must be (batch,)");
        float* lo = writable(losses, "losses");
        float* g = writable(dlogits, "dlogits");
        py::gil_scoped_release release;
        fastconv::softmax_cross_entropy(logits.shape(0), logits.shape(1), logits.data(),
                                        targets.data(), lo, g);
      },
      py::arg("logits").noconvert(), py::arg("targets").noconvert(), py::arg("losses").noconvert(),
      py::arg("dlogits").noconvert());
  m.def(
      "sigmoid_binary_cross_entropy",
      [](const Array& logits, const Array& targets, Array& losses, Array& dlogits) {
        require_same_size(logits, targets, "logits", "targets");
        require_same_size(logits, losses, "logits", "losses");
        require_same_size(logits, dlogits, "logits", "dlogits");
        float* lo = writable(losses, "losses");
        float* g = writable(dlogits, "dlogits");
        py::gil_scoped_release release;
        fastconv::sigmoid_binary_cross_entropy(logits.size(), logits.data(), targets.data(), lo, g);
      },
      py::arg("logits").noconvert(), py::arg("targets").noconvert(), py::arg("losses").noconvert(),
      py::arg("dlogits").noconvert());

  m.def(
      "sgd_update",
      [](Array& p, const Array& g, std::optional<Array> buf, float lr, float momentum,
         bool nesterov) {
        require_same_size(p, g, "param", "grad");
        float* b = nullptr;
        if (buf) {
          require_same_size(p, *buf, "param", "momentum_buffer");
          b = writable(*buf, "momentum_buffer");
        }
        float* pp = writable(p, "param");
        py::gil_scoped_release release;
        fastconv::sgd_update(pp, g.data(), b, p.size(), lr, momentum, nesterov);
      },
      py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("buffer").noconvert(),
      py::arg("lr"), py::arg("momentum"), py::arg("nesterov"));
  m.def(
      "rmsprop_update",
      [](Array& p, const Array& g, Array& v, float lr, float rho, float eps) {
        require_same_size(p, g, "param", "grad");
        require_same_size(p, v, "param", "velocity");
        float* pp = writable(p, "param");
        float* vp = writable(v, "velocity");
        py::gil_scoped_release release;
        fastconv::rmsprop_update(pp, g.data(), vp, p.size(), lr, rho, eps);
      },
      py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("velocity").noconvert(),
      py::arg("lr"), py::arg("rho"), py::arg("eps"));
  m.def(
      "adam_update",
      [](Array& p, const Array& g, Array& mom, Array& vel, float lr, float b1, float b2, float eps,
         int64_t iteration) {
        require_same_size(p, g, "param", "grad");
        require_same_size(p, mom, "param", "m");
        require_same_size(p, vel, "param", "v");
        require(iteration >= 1, "iteration must be >= 1");
        float* pp = writable(p, "param");
        float* mp = writable(mom, "m");
        float* vp = writable(vel, "v");
        py::gil_scoped_release release;
        fastconv::adam_update(pp, g.data(), mp, vp, p.size(), lr, b1, b2, eps, iteration);
      },
      py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("m").noconvert(),
      py::arg("v").noconvert(), py::arg("lr"), py::arg("beta_1"), py::arg("beta_2"),
      py::arg("epsilon"), py::arg("iteration"));
}
