#include "core/parallel.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace fastconv {
namespace {

int initial_threads() {
#if defined(FASTCONV_HAVE_OPENMP)
  // omp_get_max_threads honours OMP_NUM_THREADS.
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// A process-wide count, not OpenMP's per-thread ICV, so a setting made in one Python thread
// holds for kernels called from every other thread too.
std::atomic<int>& thread_count() {
  static std::atomic<int> count{initial_threads()};
  return count;
}

// Waking a sleeping worker costs 30-60 us on a virtual machine; one still spinning after its
// last kernel (fastconv's default GOMP_SPINCOUNT) answers at once. Measured: with spinning
// workers, two threads already beat one on the 1152->10 dense layer (22 -> 18 us) and a 74K
// RMSprop update (24 -> 14 us); with passive workers they lose below about 60 us.
double initial_min_nanos() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const bool passive =
      policy && (std::strcmp(policy, "passive") == 0 || std::strcmp(policy, "PASSIVE") == 0);
  return passive ? 60.0e3 : 10.0e3;
}

std::atomic<double>& min_nanos_per_thread() {
  static std::atomic<double> nanos{initial_min_nanos()};
  return nanos;
}

}  // namespace

double min_thread_nanos() { return min_nanos_per_thread().load(std::memory_order_relaxed); }

void set_min_thread_nanos(double nanos) {
  min_nanos_per_thread().store(nanos < 0.0 ? 0.0 : nanos, std::memory_order_relaxed);
}

int num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) { thread_count().store(n < 1 ? 1 : n, std::memory_order_relaxed); }

bool have_openmp() {
#if defined(FASTCONV_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

}  // namespace fastconv
