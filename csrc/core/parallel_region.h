#pragma once
// One entry point for parallel work: the body gets (thread_id, thread_count) and partitions the
// work itself, so the same code runs serially (threads == 1, nested calls, no OpenMP) or in a team.
#include "core/parallel.h"

namespace fastconv {

template <class Body>
void parallel_region(int threads, const Body& body) {
#if defined(FASTCONV_HAVE_OPENMP)
  if (threads > 1) {
    note_team_started();
#pragma omp parallel num_threads(threads)
    {
      FlushDenormalsScope flush;
      body(omp_get_thread_num(), omp_get_num_threads());
    }
    return;
  }
#endif
  FlushDenormalsScope flush;
  body(0, 1);
}

// Barrier between phases of a parallel_region body; a no-op when running serially.
inline void team_barrier() {
#if defined(FASTCONV_HAVE_OPENMP)
#pragma omp barrier
#endif
}

// The contiguous share [begin, end) of `total` items that thread `tid` of `nt` takes.
inline void static_share(int64_t total, int tid, int nt, int64_t& begin, int64_t& end) {
  const int64_t base = total / nt, extra = total % nt;
  begin = tid * base + (tid < extra ? tid : extra);
  end = begin + base + (tid < extra ? 1 : 0);
}

// Runs fn(begin, end) over [0, total) split across threads for element-wise work, each item
// costing about nanos_per_item on one thread.
template <class Fn>
void parallel_for_range(int64_t total, double nanos_per_item, const Fn& fn) {
  const int threads = threads_for_nanos(nanos_per_item * static_cast<double>(total));
  parallel_region(threads, [&](int tid, int nt) {
    int64_t begin, end;
    static_share(total, tid, nt, begin, end);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace fastconv
