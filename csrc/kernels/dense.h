#pragma once
// Dense (fully connected) layer over (batch, in) rows and Keras' kernel layout (in, out).
#include <cstdint>

namespace fastconv {

void dense_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                   const float* bias, float* y, bool relu);
// dx may be null (not needed); dbias may be null.
void dense_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* kernel,
                    const float* dy, float* dx, float* dkernel, float* dbias);

}  // namespace fastconv
