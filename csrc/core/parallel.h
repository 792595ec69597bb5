#pragma once
// Thread-count control and helpers shared by all kernels. OpenMP stays optional behind
// FASTCONV_HAVE_OPENMP so that compilers without it still build a single-threaded library.
#include <cstdint>
#include <string>

#if defined(FASTCONV_HAVE_OPENMP)
#include <omp.h>
#endif
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace fastconv {

// The most threads a kernel uses (fastconv.MAX_THREADS on the Python side).
constexpr int kMaxThreads = 4096;

// The thread count for kernels called from this thread: OpenMP's nthreads-var, which
// set_num_threads sets for every thread (see parallel.cpp); 1 in a child forked after a team ran.
int num_threads();
void set_num_threads(int n);
// The calling thread's own count (0: the process setting above): predict runs whole batches on
// teams of threads, each calling the kernels with its share (python/fastconv/models/trainer.py).
void set_thread_num_threads(int n);
// Called by parallel_region before a team starts: a child forked later runs single-threaded.
void note_team_started();
// Whether this process is a fork child that runs single-threaded (see parallel.cpp).
bool forked_child_single_threaded();
// The least work (single-thread nanoseconds) worth one more thread; tests set 0 to run every
// kernel's multi-threaded split on small shapes.
double min_thread_nanos();
void set_min_thread_nanos(double nanos);
bool have_openmp();
// The file of the OpenMP runtime the kernels call ("" without OpenMP).
std::string openmp_runtime_path();

inline int thread_index() {
#if defined(FASTCONV_HAVE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Threads pay off only above some work. Work is estimated in nanoseconds of one thread; each
// thread must get at least min_thread_nanos() of it: 10 us with spinning workers, 60 us when
// OMP_WAIT_POLICY=passive makes every kernel wake a sleeping worker (see parallel.cpp).
inline int threads_for_nanos(double nanos) {
  const double min_nanos = min_thread_nanos();
  const int n = num_threads();
  if (min_nanos <= 0.0) return nanos > 0.0 ? n : 1;
  if (nanos < min_nanos * 2) return 1;
  const double useful = nanos / min_nanos;
  return useful < n ? static_cast<int>(useful) : n;
}

// Compute-bound kernels: about 100 GFLOP/s on one thread.
inline int threads_for_work(double flops) { return threads_for_nanos(flops * 0.01); }

// Denormals slow float arithmetic by orders of magnitude; kernels flush them, and restore the
// caller's mode on exit so NumPy in the same thread keeps IEEE behaviour.
class FlushDenormalsScope {
 public:
#if defined(__SSE__) || defined(__x86_64__)
  FlushDenormalsScope() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormalsScope() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
#else
  FlushDenormalsScope() {}
#endif
};

}  // namespace fastconv
