#pragma once
// Thread partials of a weight gradient, summed once.
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/parallel_region.h"
#include "core/workspace.h"

namespace fastconv {
namespace conv2d_detail {

// Runs fill(tid, nt, dk, db) on each thread to sum its share into dk (zeroed here) and db (it
// sets every element, when dbias is given), then adds the threads' partials into dkernel and
// dbias once: no atomics, no two threads writing the same memory.
template <class Fill>
void sum_over_threads(int threads, int64_t kernel_size, int64_t out_c, float* dkernel, float* dbias,
                      const Fill& fill) {
  const int64_t partial_size = kernel_size + out_c;
  std::vector<float*> partials(threads, nullptr);
  parallel_region(threads, [&](int tid, int nt) {
    float* partial = nt == 1 ? nullptr : thread_scratch(Scratch::kPartial, partial_size);
    float* dk = nt == 1 ? dkernel : partial;
    float* db = nt == 1 ? dbias : (dbias ? partial + kernel_size : nullptr);
    std::memset(dk, 0, kernel_size * sizeof(float));
    fill(tid, nt, dk, db);
    if (nt == 1) return;
    partials[tid] = partial;
    team_barrier();
    int64_t e0, e1;
    static_share(dbias ? partial_size : kernel_size, tid, nt, e0, e1);
    for (int64_t e = e0; e < e1; ++e) {
      float sum = 0.0f;
      for (int t = 0; t < nt; ++t) sum += partials[t][e];
      if (e < kernel_size)
        dkernel[e] = sum;
      else
        dbias[e - kernel_size] = sum;
    }
  });
}

}  // namespace conv2d_detail
}  // namespace fastconv
