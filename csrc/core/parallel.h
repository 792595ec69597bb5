#pragma once
// Thread-count control and helpers shared by all kernels. OpenMP stays optional behind
// FASTCONV_HAVE_OPENMP so that compilers without it still build a single-threaded library.
#include <cstdint>

#if defined(FASTCONV_HAVE_OPENMP)
#include <omp.h>
#endif
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace fastconv {

int num_threads();
void set_num_threads(int n);
// The least work (single-thread nanoseconds) worth one more thread; tests set 0 to run every
// kernel's multi-threaded split on small shapes.
double min_thread_nanos();
void set_min_thread_nanos(double nanos);
bool have_openmp();

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
