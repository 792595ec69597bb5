#pragma once
// Blocked, packed GEMM driver: C[M,N] (+)= A[M,K] * B[K,N]. The operands are read through packing
// functors, so the same driver serves plain (possibly transposed) matrices and implicit im2col
// views of an image, and an epilogue (bias, ReLU) runs on each output tile while it is in cache.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/parallel_region.h"
#include "core/workspace.h"
#include "kernels/kernel_table.h"

namespace fastconv {

// Element (r, c) of a strided matrix is data[r * row_stride + c * col_stride].
struct StridedMatrix {
  const float* data;
  int64_t row_stride;
  int64_t col_stride;
};

// Packs rows [row0, row0 + rows) and depth [k0, k0 + kc) into MR-row panels:
// dst[(panel * kc + k) * mr + i], zero-padding the last panel.
struct PackStridedA {
  StridedMatrix a;
  void operator()(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int mr, float* dst) const {
    for (int64_t p = 0; p < rows; p += mr) {
      const int64_t valid = std::min<int64_t>(mr, rows - p);
      float* panel = dst + p * kc;
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = a.data + (row0 + p) * a.row_stride + (k0 + k) * a.col_stride;
        float* out = panel + k * mr;
        int64_t i = 0;
        for (; i < valid; ++i) out[i] = src[i * a.row_stride];
        for (; i < mr; ++i) out[i] = 0.0f;
      }
    }
  }
};

// Packs depth [k0, k0 + kc) and columns [col0, col0 + cols) into NR-column panels:
// dst[(panel * kc + k) * nr + j], zero-padding the last panel.
struct PackStridedB {
  StridedMatrix b;
  void operator()(int64_t k0, int64_t kc, int64_t col0, int64_t cols, int nr, float* dst) const {
    for (int64_t p = 0; p < cols; p += nr) {
      const int64_t valid = std::min<int64_t>(nr, cols - p);
      float* panel = dst + p * kc;
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = b.data + (k0 + k) * b.row_stride + (col0 + p) * b.col_stride;
        float* out = panel + k * nr;
        int64_t j = 0;
        if (b.col_stride == 1) {
          std::memcpy(out, src, valid * sizeof(float));
          j = valid;
        } else {
          for (; j < valid; ++j) out[j] = src[j * b.col_stride];
        }
        for (; j < nr; ++j) out[j] = 0.0f;
      }
    }
  }
};

struct NoEpilogue {
  void operator()(float*, int64_t, int64_t, int64_t, int, int) const {}
};

// Bias add and ReLU on a finished output tile.
struct BiasReluEpilogue {
  const KernelTable* kernels;
  const float* bias;
  bool relu;
  void operator()(float* tile, int64_t ldc, int64_t /*row*/, int64_t col, int rows,
                  int cols) const {
    if (bias || relu)
      kernels->bias_relu_rows(tile, ldc, rows, cols, bias ? bias + col : nullptr, relu);
  }
};

struct GemmBlocking {
  int64_t mc, kc, nc;
};

inline GemmBlocking gemm_blocking(const KernelTable& kt, int64_t K) {
  // A block of MC x KC stays in L2 and a KC x NR panel of B in L1; small K is not split.
  const int64_t kc = K <= 384 ? std::max<int64_t>(K, 1) : 256;
  const int64_t mc = kt.gemm_mr * std::max<int64_t>(1, 144 / kt.gemm_mr);
  const int64_t nc = kt.gemm_nr * std::max<int64_t>(1, 2048 / kt.gemm_nr);
  return {mc, kc, nc};
}

template <class PackA, class PackB, class Epilogue>
void gemm(const KernelTable& kt, int64_t M, int64_t N, int64_t K, const PackA& pack_a,
          const PackB& pack_b, float* c, int64_t ldc, bool accumulate, const Epilogue& epilogue,
          int threads) {
  if (M <= 0 || N <= 0) return;
  const int mr = kt.gemm_mr, nr = kt.gemm_nr;
  if (K <= 0) {  // an empty sum: C is zero (or unchanged), the epilogue still applies
    for (int64_t i = 0; i < M; ++i)
      if (!accumulate) std::memset(c + i * ldc, 0, N * sizeof(float));
    for (int64_t i = 0; i < M; i += mr)
      for (int64_t j = 0; j < N; j += nr)
        epilogue(c + i * ldc + j, ldc, i, j, static_cast<int>(std::min<int64_t>(mr, M - i)),
                 static_cast<int>(std::min<int64_t>(nr, N - j)));
    return;
  }
  const GemmBlocking blk = gemm_blocking(kt, K);
  const int64_t m_blocks = (M + blk.mc - 1) / blk.mc;
  const int64_t nc_max = std::min<int64_t>(blk.nc, N);
  const int64_t panels_max = (nc_max + nr - 1) / nr;
  float* packed_b = thread_scratch(Scratch::kPackB, static_cast<size_t>(blk.kc) * panels_max * nr);

  parallel_region(threads, [&](int tid, int nt) {
    float* packed_a = thread_scratch(Scratch::kPackA, static_cast<size_t>(blk.mc) * blk.kc);
    for (int64_t jc = 0; jc < N; jc += blk.nc) {
      const int64_t nc = std::min<int64_t>(blk.nc, N - jc);
      const int64_t n_panels = (nc + nr - 1) / nr;
      // Split the column panels too when there are fewer row blocks than threads.
      const int64_t n_chunks =
          m_blocks >= nt ? 1 : std::min<int64_t>(n_panels, (nt + m_blocks - 1) / m_blocks);
      const int64_t tasks = m_blocks * n_chunks;
      for (int64_t pc = 0; pc < K; pc += blk.kc) {
        const int64_t kc = std::min<int64_t>(blk.kc, K - pc);
        const bool last_k = pc + kc == K;
        const bool acc = accumulate || pc > 0;
        for (int64_t p = tid; p < n_panels; p += nt) {
          const int64_t col = p * nr;
          pack_b(pc, kc, jc + col, std::min<int64_t>(nr, nc - col), nr, packed_b + col * kc);
        }
        team_barrier();
        for (int64_t task = tid; task < tasks; task += nt) {
          const int64_t mb = task / n_chunks, chunk = task % n_chunks;
          const int64_t row0 = mb * blk.mc;
          const int64_t rows = std::min<int64_t>(blk.mc, M - row0);
          int64_t panel_begin, panel_end;
          static_share(n_panels, static_cast<int>(chunk), static_cast<int>(n_chunks), panel_begin,
                       panel_end);
          if (panel_begin >= panel_end) continue;
          pack_a(row0, rows, pc, kc, mr, packed_a);
          for (int64_t p = panel_begin; p < panel_end; ++p) {
            const int64_t col = p * nr;
            const int cols = static_cast<int>(std::min<int64_t>(nr, nc - col));
            for (int64_t i = 0; i < rows; i += mr) {
              const int tile_rows = static_cast<int>(std::min<int64_t>(mr, rows - i));
              float* tile = c + (row0 + i) * ldc + jc + col;
              kt.gemm_microkernel(kc, packed_a + i * kc, packed_b + col * kc, tile, ldc, tile_rows,
                                  cols, acc);
              if (last_k) epilogue(tile, ldc, row0 + i, jc + col, tile_rows, cols);
            }
          }
        }
        team_barrier();  // packed_b is rewritten by the next depth block
      }
    }
  });
}

}  // namespace fastconv
