#include "kernels/elementwise.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/parallel_region.h"

namespace fastconv {

// Costs per element: the bytes each moves, at about 15 GB/s on one thread.

void relu_forward(const float* x, float* y, int64_t n) {
  const KernelTable& kt = active_kernels();
  parallel_for_range(n, 0.6, [&](int64_t b, int64_t e) { kt.relu_forward(x + b, y + b, e - b); });
}

void relu_backward(const float* x, const float* dy, float* dx, int64_t n) {
  const KernelTable& kt = active_kernels();
  parallel_for_range(n, 0.8,
                     [&](int64_t b, int64_t e) { kt.relu_backward(x + b, dy + b, dx + b, e - b); });
}

void sgd_update(float* p, const float* g, float* buf, int64_t n, float lr, float momentum,
                bool nesterov) {
  const KernelTable& kt = active_kernels();
  parallel_for_range(n, 1.2, [&](int64_t b, int64_t e) {
    kt.sgd_update(p + b, g + b, buf ? buf + b : nullptr, e - b, lr, momentum, nesterov);
  });
}

void rmsprop_update(float* p, const float* g, float* v, int64_t n, float lr, float rho, float eps) {
  const KernelTable& kt = active_kernels();
  parallel_for_range(n, 1.4, [&](int64_t b, int64_t e) {
    kt.rmsprop_update(p + b, g + b, v + b, e - b, lr, rho, eps);
  });
}

void adam_update(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                 float beta2, float eps, int64_t iteration) {
  const KernelTable& kt = active_kernels();
  const double t = static_cast<double>(iteration);
  const float alpha =
      static_cast<float>(lr * std::sqrt(1.0 - std::pow(beta2, t)) / (1.0 - std::pow(beta1, t)));
  parallel_for_range(n, 2.0, [&](int64_t b, int64_t e) {
    kt.adam_update(p + b, g + b, m + b, v + b, e - b, alpha, beta1, beta2, eps);
  });
}

}  // namespace fastconv
