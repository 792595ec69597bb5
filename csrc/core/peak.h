#pragma once
// The FP32 peak of this machine as the kernels can reach it: an FMA loop on every thread, with
// the vectors of the ISA in use. Profiles state kernel speeds as a share of it.
#include <cstdint>
#include <string>

namespace fastconv {

// GFLOP/s of `threads` threads each running independent FMA chains for about `seconds`, with the
// vectors of `isa` ("avx512", "avx2" or "generic").
double fma_peak_gflops(const std::string& isa, int threads, double seconds);

}  // namespace fastconv
