/* FP32 peak for bench/fcbench/machine.py: compiled at run time with the system C compiler into a
   temporary shared library (-DFMA_AVX512 -mavx512f -mfma, or -mavx2 -mfma) and called through
   ctypes; nothing in the repository is built or touched. */
#include <immintrin.h>
#define R4(X) X(0) X(1) X(2) X(3)
#if defined(FMA_AVX512)
typedef __m512 vec;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define LOAD _mm512_loadu_ps
static float hsum(vec v) { return _mm512_reduce_add_ps(v); }
#define NACC 16
#else
typedef __m256 vec;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define LOAD _mm256_loadu_ps
static float hsum(vec v) {
    float t[8]; _mm256_storeu_ps(t, v); return t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7];
}
#define NACC 12
#endif
int fma_lanes(void) { return (int)(sizeof(vec) / sizeof(float)); }
int fma_accumulators(void) { return NACC; }
/* iters x NACC independent FMA chains: 2 * lanes * NACC flops per iteration */
float fma_loop(long iters, float seed) {
    vec a = SET1(0.9999999f), b = SET1(1e-7f);
/* Distinct start values, and an empty asm that makes every accumulator opaque once per
   iteration: chains that start equal are otherwise merged by the compiler (GCC 12 merged 4 of
   16, so the loop ran 13 FMAs while 16 were counted and the "peak" came out 16/13 too high). */
#define DECL(i) vec c##i = SET1(seed + (float)(i)), d##i = SET1(seed + 4.0f + (float)(i)), \
    e##i = SET1(seed + 8.0f + (float)(i)), f##i = SET1(seed + 12.0f + (float)(i));
    R4(DECL)
    for (long n = 0; n < iters; n++) {
#if NACC == 16
#define OPAQUE(i) __asm__ volatile("" : "+v"(c##i), "+v"(d##i), "+v"(e##i), "+v"(f##i));
#define STEP(i) c##i = FMA(c##i, a, b); d##i = FMA(d##i, a, b); e##i = FMA(e##i, a, b); \
    f##i = FMA(f##i, a, b);
#else
#define OPAQUE(i) __asm__ volatile("" : "+v"(c##i), "+v"(d##i), "+v"(e##i));
#define STEP(i) c##i = FMA(c##i, a, b); d##i = FMA(d##i, a, b); e##i = FMA(e##i, a, b);
#endif
        R4(STEP)
        R4(OPAQUE)
    }
#define SUM(i) s = ADD(s, ADD(ADD(c##i, d##i), ADD(e##i, f##i)));
    vec s = SET1(0.0f);
    R4(SUM)
    return hsum(s);
}

/* The shape of a GEMM microkernel, in cache: per depth step two vector loads of B and MR
   broadcasts of A feed 2*MR FMAs into MR x 2 vector accumulators (fastconv's 8x32 AVX-512 and
   6x16 AVX2 tiles). What it reaches is the ceiling of any kernel that must load its operands. */
#if defined(FMA_AVX512)
#define TILE_MR 8
#else
#define TILE_MR 6
#endif
#define TILE_KC 256
#define TILE_L ((int)(sizeof(vec) / sizeof(float)))
int tile_flops_per_iter(void) { return 2 * TILE_MR * 2 * TILE_L * TILE_KC; }
float tile_loop(long iters, float seed) {
    float a[TILE_KC * TILE_MR], b[TILE_KC * 2 * 16];
    for (int i = 0; i < TILE_KC * TILE_MR; i++) a[i] = seed * 1e-3f;
    for (int i = 0; i < TILE_KC * 2 * TILE_L; i++) b[i] = 1e-3f;
    vec acc[TILE_MR][2];
    for (int i = 0; i < TILE_MR; i++) acc[i][0] = acc[i][1] = SET1(0.0f);
    for (long n = 0; n < iters; n++) {
        for (int k = 0; k < TILE_KC; k++) {
            const vec b0 = LOAD(b + k * 2 * TILE_L), b1 = LOAD(b + k * 2 * TILE_L + TILE_L);
#pragma GCC unroll 8
            for (int i = 0; i < TILE_MR; i++) {
                const vec ai = SET1(a[k * TILE_MR + i]);
                acc[i][0] = FMA(ai, b0, acc[i][0]);
                acc[i][1] = FMA(ai, b1, acc[i][1]);
            }
        }
        __asm__ volatile("" ::: "memory");
    }
    vec s = SET1(0.0f);
    for (int i = 0; i < TILE_MR; i++) s = ADD(s, ADD(acc[i][0], acc[i][1]));
    return hsum(s);
}
