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
bool have_openmp();

inline int thread_index() {
#if defined(FASTCONV_HAVE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Threads pay off only above some work; tiny layers run on one thread (spreading them is slower).
inline int threads_for_work(double flops) {
  constexpr double kMinFlopsPerThread = 2.0e5;
  const int n = num_threads();
  if (flops < kMinFlopsPerThread * 2) return 1;
  const double useful = flops / kMinFlopsPerThread;
  return useful < n ? static_cast<int>(useful) : n;
}

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
