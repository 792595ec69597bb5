#include "core/peak.h"

#include <chrono>
#include <stdexcept>

#include "core/parallel_region.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace fastconv {
namespace {

// Chains enough to hide the FMA latency on two ports (4 cycles x 2 ports needs 8), and few enough
// to stay in registers with the two constants: 16 chains spilled three of them on AVX2's 16
// registers, and the loop measured half the peak (54 instead of 108 GFLOP/s a core on Zen 3).
// Their starting values come from memory the compiler cannot see through, so it cannot merge
// chains that would start equal (which once made a loop count 16 FMAs and run 13).
constexpr int kChains = 16;         // AVX-512: 32 registers
constexpr int kChainsFewRegs = 12;  // AVX2 and portable code: 16 registers
volatile float g_seed = 1.0f;

#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx512f"))) int64_t fma_loop_avx512(int64_t iterations, float* sink) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(g_seed + 0.001f * c);
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  *sink = _mm512_reduce_add_ps(sum);
  return iterations * kChains * 16 * 2;
}

__attribute__((target("avx2,fma"))) int64_t fma_loop_avx2(int64_t iterations, float* sink) {
  __m256 acc[kChainsFewRegs];
  for (int c = 0; c < kChainsFewRegs; ++c) acc[c] = _mm256_set1_ps(g_seed + 0.001f * c);
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChainsFewRegs; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 sum = acc[0];
  for (int c = 1; c < kChainsFewRegs; ++c) sum = _mm256_add_ps(sum, acc[c]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  *sink = lanes[0] + lanes[7];
  return iterations * kChainsFewRegs * 8 * 2;
}
#endif

int64_t fma_loop_generic(int64_t iterations, float* sink) {
  float acc[kChainsFewRegs];
  for (int c = 0; c < kChainsFewRegs; ++c) acc[c] = g_seed + 0.001f * c;
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChainsFewRegs; ++c) acc[c] = acc[c] * 0.9999f + 1e-6f;
  float sum = 0.0f;
  for (int c = 0; c < kChainsFewRegs; ++c) sum += acc[c];
  *sink = sum;
  return iterations * kChainsFewRegs * 2;
}

int64_t fma_loop(const std::string& isa, int64_t iterations, float* sink) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == "avx512") return fma_loop_avx512(iterations, sink);
  if (isa == "avx2") return fma_loop_avx2(iterations, sink);
#endif
  if (isa == "generic") return fma_loop_generic(iterations, sink);
  throw std::invalid_argument("fma_peak_gflops: unknown isa '" + isa + "'");
}

}  // namespace

double fma_peak_gflops(const std::string& isa, int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  float sink = 0.0f;
  fma_loop(isa, 1000, &sink);  // checks the ISA name before any thread starts
  // Calibrate on one thread, then run every thread for about `seconds`.
  int64_t iterations = 1 << 14;
  for (;;) {
    const auto t0 = clock::now();
    fma_loop(isa, iterations, &sink);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > seconds / 8 || iterations > (int64_t{1} << 40)) {
      iterations = static_cast<int64_t>(iterations * (seconds / (s > 0 ? s : 1e-9)));
      break;
    }
    iterations *= 4;
  }
  if (iterations < 1) iterations = 1;
  double flops = 0.0;
  const auto t0 = clock::now();
  parallel_region(threads, [&](int, int) {
    float local = 0.0f;
    const double done = static_cast<double>(fma_loop(isa, iterations, &local));
#pragma omp atomic
    flops += done;
    if (local == 12345.0f) sink = local;  // keeps the result alive
  });
  const double s = std::chrono::duration<double>(clock::now() - t0).count();
  return flops / s * 1e-9 + 0.0f * sink;
}

}  // namespace fastconv
