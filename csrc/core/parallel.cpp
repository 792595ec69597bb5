#include "core/parallel.h"

#include <dlfcn.h>
#include <pthread.h>

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

// fastconv's count and OpenMP's nthreads-var are one setting. OpenMP keeps it per calling
// thread; set_num_threads also bumps a process-wide generation, and each thread adopts the newest
// fastconv setting at its next kernel, so a setting made in one Python thread holds for kernels
// called from every other thread. Whatever changes OpenMP's value afterwards (threadpoolctl's
// threadpool_limits, another library's omp_set_num_threads, on the thread that calls the kernels)
// then steers fastconv too. Without OpenMP the process-wide count is the only one.
std::atomic<int>& requested_threads() {
  static std::atomic<int> count{initial_threads()};
  return count;
}

std::atomic<unsigned>& settings_generation() {
  static std::atomic<unsigned> generation{0};
  return generation;
}

thread_local unsigned adopted_generation = 0;
thread_local int own_thread_count = 0;  // set_thread_num_threads; 0: the process setting

// libgomp is not fork-safe: a child forked after a team of worker threads existed waits forever
// for those threads (which the child does not have) at its first parallel region. Once a team
// has started, a forked child runs every kernel on its calling thread. A child forked before any
// team keeps its threads (its OpenMP runtime is still fresh).
std::atomic<bool> team_started{false};
std::atomic<bool> in_forked_child{false};

void after_fork_in_child() {
  if (team_started.load(std::memory_order_relaxed))
    in_forked_child.store(true, std::memory_order_relaxed);
}

[[maybe_unused]] const int fork_handler = pthread_atfork(nullptr, nullptr, &after_fork_in_child);

// A worker still spinning after its last kernel (fastconv's default GOMP_SPINCOUNT) answers at
// once; waking a sleeping one costs tens of microseconds. So a kernel is split when each thread
// gets at least 10 us of work with spinning workers, 60 us with passive ones
// (bench/experiments/wake_latency.py measures both; the numbers are in bench/RESULTS.md).
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

int num_threads() {
  if (in_forked_child.load(std::memory_order_relaxed)) return 1;
  if (own_thread_count > 0) return own_thread_count;
#if defined(FASTCONV_HAVE_OPENMP)
  const unsigned generation = settings_generation().load(std::memory_order_acquire);
  if (adopted_generation != generation) {
    omp_set_num_threads(requested_threads().load(std::memory_order_relaxed));
    adopted_generation = generation;
  }
  const int n = omp_get_max_threads();
#else
  const int n = requested_threads().load(std::memory_order_relaxed);
#endif
  return n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : n;
}

void set_num_threads(int n) {
  requested_threads().store(n < 1             ? 1
                            : n > kMaxThreads ? kMaxThreads
                                              : n,
                            std::memory_order_relaxed);
  settings_generation().fetch_add(1, std::memory_order_release);
  num_threads();  // adopt it on this thread now, so OpenMP's own query sees it at once
}

void set_thread_num_threads(int n) {
  own_thread_count = n < 0 ? 0 : n > kMaxThreads ? kMaxThreads : n;
}

void note_team_started() { team_started.store(true, std::memory_order_relaxed); }

bool forked_child_single_threaded() { return in_forked_child.load(std::memory_order_relaxed); }

bool have_openmp() {
#if defined(FASTCONV_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

std::string openmp_runtime_path() {
#if defined(FASTCONV_HAVE_OPENMP)
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(&omp_get_max_threads), &where) && where.dli_fname)
    return where.dli_fname;
#endif
  return "";
}

}  // namespace fastconv
