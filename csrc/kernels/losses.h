#pragma once
// Losses fused with their final activation: stable in float32 for any logit, and they return the
// per-sample loss and the gradient with respect to the logits (not divided by the batch size).
#include <cstdint>

namespace fastconv {

void softmax_rows(int64_t rows, int64_t cols, const float* x, float* y);
void sigmoid(int64_t n, const float* x, float* y);
// labels in [0, cols); the caller validates them.
void sparse_softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits,
                                  const int64_t* labels, float* losses, float* dlogits);
void softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const float* targets,
                           float* losses, float* dlogits);
void sigmoid_binary_cross_entropy(int64_t n, const float* logits, const float* targets,
                                  float* losses, float* dlogits);

}  // namespace fastconv
