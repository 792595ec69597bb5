#pragma once
// Threaded entry points for the per-ISA element-wise kernels (ReLU, optimizer updates).
#include <cstdint>

namespace fastconv {

void relu_forward(const float* x, float* y, int64_t n);
void relu_backward(const float* x, const float* dy, float* dx, int64_t n);
void sgd_update(float* p, const float* g, float* buf, int64_t n, float lr, float momentum,
                bool nesterov);
void rmsprop_update(float* p, const float* g, float* v, int64_t n, float lr, float rho, float eps);
// `iteration` is the 1-based step t used for Adam's bias correction.
void adam_update(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                 float beta2, float eps, int64_t iteration);

}  // namespace fastconv
