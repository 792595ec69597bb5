#include "kernels/losses.h"

#include <algorithm>
#include <cmath>

#include "core/parallel_region.h"

namespace fastconv {
namespace {

// Writes softmax(row) to out and returns log(sum(exp(row - max))) + max, the log-sum-exp.
double softmax_row(int64_t cols, const float* row, float* out) {
  float mx = row[0];
  for (int64_t j = 1; j < cols; ++j) mx = std::max(mx, row[j]);
  if (std::isnan(mx) || std::isinf(mx)) {
    // A NaN anywhere, or an infinite logit, has no finite softmax: propagate NaN.
    bool any_nan = false;
    for (int64_t j = 0; j < cols; ++j) any_nan |= std::isnan(row[j]);
    if (any_nan || mx > 0) {
      for (int64_t j = 0; j < cols; ++j) out[j] = NAN;
      return NAN;
    }
  }
  double sum = 0.0;
  for (int64_t j = 0; j < cols; ++j) {
    out[j] = std::exp(row[j] - mx);
    sum += out[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < cols; ++j) out[j] *= inv;
  return std::log(sum) + mx;
}

}  // namespace

void softmax_rows(int64_t rows, int64_t cols, const float* x, float* y) {
  if (cols <= 0) return;
  parallel_for_range(rows, 2.0 * cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) softmax_row(cols, x + r * cols, y + r * cols);
  });
}

void sigmoid(int64_t n, const float* x, float* y) {
  parallel_for_range(n, 2.0, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      // exp of a non-positive number only, so it never overflows.
      const float z = std::exp(-std::fabs(x[i]));
      y[i] = x[i] >= 0 ? 1.0f / (1.0f + z) : z / (1.0f + z);
      if (x[i] != x[i]) y[i] = x[i];
    }
  });
}

void sparse_softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits,
                                  const int64_t* labels, float* losses, float* dlogits) {
  parallel_for_range(rows, 2.0 * cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* z = logits + r * cols;
      float* g = dlogits + r * cols;
      const double lse = softmax_row(cols, z, g);
      losses[r] = static_cast<float>(lse - z[labels[r]]);
      g[labels[r]] -= 1.0f;
    }
  });
}

void softmax_cross_entropy(int64_t rows, int64_t cols, const float* logits, const float* targets,
                           float* losses, float* dlogits) {
  parallel_for_range(rows, 2.0 * cols, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* z = logits + r * cols;
      const float* t = targets + r * cols;
      float* g = dlogits + r * cols;
      const double lse = softmax_row(cols, z, g);
      double loss = 0.0, total = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        loss += static_cast<double>(t[j]) * (lse - z[j]);
        total += t[j];
      }
      losses[r] = static_cast<float>(loss);
      for (int64_t j = 0; j < cols; ++j) g[j] = g[j] * static_cast<float>(total) - t[j];
    }
  });
}

void sigmoid_binary_cross_entropy(int64_t n, const float* logits, const float* targets,
                                  float* losses, float* dlogits) {
  sigmoid(n, logits, dlogits);
  parallel_for_range(n, 2.0, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float z = logits[i], t = targets[i];
      // max(z, 0) - z t + log(1 + exp(-|z|)): never overflows.
      losses[i] = std::max(z, 0.0f) - z * t + std::log1p(std::exp(-std::fabs(z)));
      dlogits[i] -= t;
    }
  });
}

}  // namespace fastconv
