#pragma once
// CPU feature detection: read once, used to fill the kernel table.
namespace fastconv {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3 with OS support for YMM state
  bool avx512 = false;    // AVX-512 F/BW/DQ/VL with OS support for ZMM state
};

const CpuFeatures& cpu_features();

}  // namespace fastconv
