/*
 * similarity_avx2.c — cosine kernels for AVX2 + FMA (8 lanes).
 *
 * 1 x N: four rows at a time, taken from four distant parts of the batch so that four DRAM
 * streams are in flight, with software prefetch ahead of each; the query stays in L1. N x N: a
 * GEMM-class pass (gram.h) with a 6 x 16 register tile over k-major packed slivers of B.
 */
#include "kernels.h"

#include <float.h>
#include <immintrin.h>

#define ISA avx2

static inline float hsum8(__m256 v)
{
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Lanes [0, r) set, r in 0..8: the mask for the tail of a row. */
static inline __m256i tail_mask(size_t r)
{
  static const int32_t m[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
  return _mm256_loadu_si256((const __m256i *)(m + 8 - r));
}

static inline float inv_of(float ss)
{
  if (!(ss >= ENGRAM_SIM_MIN_NORM2 && ss <= FLT_MAX))
    return 0.0f;
  return (float)(1.0 / __builtin_sqrt((double)ss));
}

static float sumsq(const float *v, size_t d)
{
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t k = 0;
  for (; k + 32 <= d; k += 32) {
    __m256 x0 = _mm256_loadu_ps(v + k), x1 = _mm256_loadu_ps(v + k + 8);
    __m256 x2 = _mm256_loadu_ps(v + k + 16), x3 = _mm256_loadu_ps(v + k + 24);
    a0 = _mm256_fmadd_ps(x0, x0, a0);
    a1 = _mm256_fmadd_ps(x1, x1, a1);
    a2 = _mm256_fmadd_ps(x2, x2, a2);
    a3 = _mm256_fmadd_ps(x3, x3, a3);
  }
  for (; k + 8 <= d; k += 8) {
    __m256 x = _mm256_loadu_ps(v + k);
    a0 = _mm256_fmadd_ps(x, x, a0);
  }
  if (k < d) {
    __m256 x = _mm256_maskload_ps(v + k, tail_mask(d - k));
    a1 = _mm256_fmadd_ps(x, x, a1);
  }
  return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

void engram_sim_norms_avx2(const float *rows, size_t n, size_t d, float *inv)
{
  for (size_t i = 0; i < n; i++)
    inv[i] = inv_of(sumsq(rows + i * d, d));
}

/* 512 B (8 lines) ahead in each of the four streams: measured best of 256 B .. 4 KiB on this
 * machine class (1.35-1.45x sgemv at N = 100,000, against 1.18-1.28x with 2 KiB ahead). */
#define PF_AHEAD 128   /* floats */

/* Dot products of q with four rows (and, when sq is not NULL, the rows' sums of squares). */
static inline void dot4(const float *q, const float *r0, const float *r1, const float *r2,
                        const float *r3, size_t d, float out[4], float sq[4], int pf)
{
  __m256 d0 = _mm256_setzero_ps(), d1 = d0, d2 = d0, d3 = d0;
  __m256 e0 = d0, e1 = d0, e2 = d0, e3 = d0;   /* second accumulators, or the squares */
  size_t k = 0;
  if (!sq) {
    for (; k + 16 <= d; k += 16) {
      if (pf) {
        _mm_prefetch((const char *)(r0 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r1 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r2 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r3 + k + PF_AHEAD), _MM_HINT_T0);
      }
      __m256 qa = _mm256_loadu_ps(q + k), qb = _mm256_loadu_ps(q + k + 8);
      d0 = _mm256_fmadd_ps(qa, _mm256_loadu_ps(r0 + k), d0);
      d1 = _mm256_fmadd_ps(qa, _mm256_loadu_ps(r1 + k), d1);
      d2 = _mm256_fmadd_ps(qa, _mm256_loadu_ps(r2 + k), d2);
      d3 = _mm256_fmadd_ps(qa, _mm256_loadu_ps(r3 + k), d3);
      e0 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(r0 + k + 8), e0);
      e1 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(r1 + k + 8), e1);
      e2 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(r2 + k + 8), e2);
      e3 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(r3 + k + 8), e3);
    }
    for (; k < d; k += 8) {
      __m256i m = tail_mask(d - k < 8 ? d - k : 8);
      __m256 qa = _mm256_maskload_ps(q + k, m);
      d0 = _mm256_fmadd_ps(qa, _mm256_maskload_ps(r0 + k, m), d0);
      d1 = _mm256_fmadd_ps(qa, _mm256_maskload_ps(r1 + k, m), d1);
      d2 = _mm256_fmadd_ps(qa, _mm256_maskload_ps(r2 + k, m), d2);
      d3 = _mm256_fmadd_ps(qa, _mm256_maskload_ps(r3 + k, m), d3);
    }
    d0 = _mm256_add_ps(d0, e0);
    d1 = _mm256_add_ps(d1, e1);
    d2 = _mm256_add_ps(d2, e2);
    d3 = _mm256_add_ps(d3, e3);
  } else {
    for (; k < d; k += 8) {
      __m256i m = tail_mask(d - k < 8 ? d - k : 8);
      _mm_prefetch((const char *)(r0 + k + PF_AHEAD), _MM_HINT_T0);
      _mm_prefetch((const char *)(r1 + k + PF_AHEAD), _MM_HINT_T0);
      _mm_prefetch((const char *)(r2 + k + PF_AHEAD), _MM_HINT_T0);
      _mm_prefetch((const char *)(r3 + k + PF_AHEAD), _MM_HINT_T0);
      __m256 qa = _mm256_maskload_ps(q + k, m);
      __m256 x0 = _mm256_maskload_ps(r0 + k, m), x1 = _mm256_maskload_ps(r1 + k, m);
      __m256 x2 = _mm256_maskload_ps(r2 + k, m), x3 = _mm256_maskload_ps(r3 + k, m);
      d0 = _mm256_fmadd_ps(qa, x0, d0);
      d1 = _mm256_fmadd_ps(qa, x1, d1);
      d2 = _mm256_fmadd_ps(qa, x2, d2);
      d3 = _mm256_fmadd_ps(qa, x3, d3);
      e0 = _mm256_fmadd_ps(x0, x0, e0);
      e1 = _mm256_fmadd_ps(x1, x1, e1);
      e2 = _mm256_fmadd_ps(x2, x2, e2);
      e3 = _mm256_fmadd_ps(x3, x3, e3);
    }
    sq[0] = hsum8(e0);
    sq[1] = hsum8(e1);
    sq[2] = hsum8(e2);
    sq[3] = hsum8(e3);
  }
  out[0] = hsum8(d0);
  out[1] = hsum8(d1);
  out[2] = hsum8(d2);
  out[3] = hsum8(d3);
}

static inline float dot1(const float *q, const float *r, size_t d, float *sq)
{
  __m256 a = _mm256_setzero_ps(), b = a;
  for (size_t k = 0; k < d; k += 8) {
    __m256i m = tail_mask(d - k < 8 ? d - k : 8);
    __m256 x = _mm256_maskload_ps(r + k, m);
    a = _mm256_fmadd_ps(_mm256_maskload_ps(q + k, m), x, a);
    b = _mm256_fmadd_ps(x, x, b);
  }
  *sq = hsum8(b);
  return hsum8(a);
}

void engram_sim_cosine_avx2(const float *q, float qinv, const float *rows, const float *inv,
                            size_t n, size_t d, float *scores)
{
  size_t quarter = n / 4;
  const float *base[4];
  for (int s = 0; s < 4; s++)
    base[s] = rows + (size_t)s * quarter * d;
  /* Software prefetch pays only when the rows come from DRAM; from cache (up to an L3 of
   * 32 MiB, e.g. N = 10,000 x 768) it costs issue slots: 1.5-1.6x sgemv there without it,
   * 1.4-1.5x with it. */
  int pf = n * d * sizeof(float) > ((size_t)64 << 20);
  for (size_t i = 0; i < quarter; i++) {
    float dots[4], sq[4];
    if (pf)
      dot4(q, base[0] + i * d, base[1] + i * d, base[2] + i * d, base[3] + i * d, d, dots,
           inv ? NULL : sq, 1);
    else
      dot4(q, base[0] + i * d, base[1] + i * d, base[2] + i * d, base[3] + i * d, d, dots,
           inv ? NULL : sq, 0);
    for (int s = 0; s < 4; s++) {
      size_t r = (size_t)s * quarter + i;
      scores[r] = engram_sim_finish(dots[s], qinv, inv ? inv[r] : inv_of(sq[s]));
    }
  }
  for (size_t r = 4 * quarter; r < n; r++) {
    float sq;
    float dt = dot1(q, rows + r * d, d, &sq);
    scores[r] = engram_sim_finish(dt, qinv, inv ? inv[r] : inv_of(sq));
  }
}

/* ---- the blocked N x N pass ---------------------------------------------------------------- */

typedef __m256 vf;
#define VL 8
#define NR 16   /* tile: 6 rows of A x 16 columns of B = 12 accumulators + 2 B + 1 broadcast */
#define MR 6

static inline void tile(const float *const a[MR], const float *bp, size_t kc, float *c, size_t ldc,
                        int accumulate)
{
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
  for (size_t k = 0; k < kc; k++, bp += NR) {
    __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8), x;
    x = _mm256_broadcast_ss(a0 + k);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a1 + k);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a2 + k);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a3 + k);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a4 + k);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a5 + k);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
  }
#define TILE_ROW(r, lo, hi)                                                 \
  do {                                                                      \
    float *cr = c + (r) * ldc;                                              \
    if (accumulate) {                                                       \
      lo = _mm256_add_ps(lo, _mm256_load_ps(cr));                           \
      hi = _mm256_add_ps(hi, _mm256_load_ps(cr + 8));                       \
    }                                                                       \
    _mm256_store_ps(cr, lo);                                                \
    _mm256_store_ps(cr + 8, hi);                                            \
  } while (0)
  TILE_ROW(0, c00, c01);
  TILE_ROW(1, c10, c11);
  TILE_ROW(2, c20, c21);
  TILE_ROW(3, c30, c31);
  TILE_ROW(4, c40, c41);
  TILE_ROW(5, c50, c51);
#undef TILE_ROW
}

/* Pack one sliver for gram.h: dst[k*NR + jj] = src[jj][k] for k < d, 8 k at a time as two 8 x 8
 * register transposes (rows 0-7 and 8-15); a zero row pointer packs zeros. */
static inline void transpose8(__m256 r[8])
{
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

static void pack_sliver(const float *const src[NR], size_t d, float *dst)
{
  size_t k = 0;
  for (; k + 8 <= d; k += 8, dst += 8 * NR) {
    __m256 lo[8], hi[8];
    for (int j = 0; j < 8; j++) {
      lo[j] = src[j] ? _mm256_loadu_ps(src[j] + k) : _mm256_setzero_ps();
      hi[j] = src[j + 8] ? _mm256_loadu_ps(src[j + 8] + k) : _mm256_setzero_ps();
    }
    transpose8(lo);
    transpose8(hi);
    for (int j = 0; j < 8; j++) {
      _mm256_store_ps(dst + j * NR, lo[j]);
      _mm256_store_ps(dst + j * NR + 8, hi[j]);
    }
  }
  for (; k < d; k++, dst += NR)
    for (size_t jj = 0; jj < NR; jj++)
      dst[jj] = src[jj] ? src[jj][k] : 0.0f;
}
#define PACK_SLIVER pack_sliver

/* Vector epilogue primitives for gram.h. */
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_STORE_N(p, v, nv) _mm256_maskstore_ps(p, tail_mask(nv), v)
#define V_LOAD_N(p, nv) _mm256_maskload_ps(p, tail_mask(nv))
/* bit l set where lane l of a >= b */
#define V_GE_BITS(a, b) ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GE_OQ)))
/* lanes where b == 0 or a is NaN become 0 */
#define V_FIX(a, b) \
  _mm256_and_ps(_mm256_and_ps(a, _mm256_cmp_ps(a, a, _CMP_ORD_Q)), _mm256_cmp_ps(b, _mm256_setzero_ps(), _CMP_NEQ_OQ))

#include "gram.h"
