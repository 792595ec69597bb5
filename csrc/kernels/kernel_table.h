#pragma once
// The table of per-ISA kernels. Each ISA folder fills one table; dispatch picks the best table the
// CPU supports once at import (or the one FASTCONV_ISA forces).
#include <cstdint>

namespace fastconv {

// c[i*ldc + j] (+)= sum_k a[k*MR + i] * b[k*NR + j] for i < mr, j < nr, over packed panels of
// MR rows of A and NR columns of B (zero-padded to full tiles).
using GemmMicrokernel = void (*)(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                                 int64_t ldc, int mr, int nr, bool accumulate);

struct KernelTable {
  const char* isa;
  int gemm_mr;
  int gemm_nr;
  GemmMicrokernel gemm_microkernel;
  void (*relu_forward)(const float* x, float* y, int64_t n);
  void (*relu_backward)(const float* x, const float* dy, float* dx, int64_t n);
  void (*bias_relu_rows)(float* c, int64_t ldc, int64_t rows, int64_t cols, const float* bias,
                         bool relu);
  void (*sgd_update)(float* p, const float* g, float* buf, int64_t n, float lr, float momentum,
                     bool nesterov);
  void (*rmsprop_update)(float* p, const float* g, float* v, int64_t n, float lr, float rho,
                         float eps);
  void (*adam_update)(float* p, const float* g, float* m, float* v, int64_t n, float alpha,
                      float beta1, float beta2, float eps);
};

const KernelTable& generic_kernel_table();
#if defined(FASTCONV_HAVE_X86_KERNELS)
const KernelTable& avx2_kernel_table();
const KernelTable& avx512_kernel_table();
#endif

}  // namespace fastconv
