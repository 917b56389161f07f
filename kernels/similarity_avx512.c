/*
 * similarity_avx512.c — cosine kernels for AVX-512 F/BW/DQ/VL (16 lanes). The structure of
 * similarity_avx2.c with wider vectors and mask registers for the tails: 1 x N over four
 * distant streams with prefetch; N x N through gram.h with an 8 x 32 register tile
 * (16 accumulators of the 32 registers).
 */
#include "kernels.h"

#include <float.h>
#include <immintrin.h>

#define ISA avx512

static inline __mmask16 tail16(size_t r)
{
  return (__mmask16)(r >= 16 ? 0xffffu : (1u << r) - 1);
}

static inline float inv_of(float ss)
{
  if (!(ss >= ENGRAM_SIM_MIN_NORM2 && ss <= FLT_MAX))
    return 0.0f;
  return (float)(1.0 / __builtin_sqrt((double)ss));
}

static float sumsq(const float *v, size_t d)
{
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t k = 0;
  for (; k + 64 <= d; k += 64) {
    __m512 x0 = _mm512_loadu_ps(v + k), x1 = _mm512_loadu_ps(v + k + 16);
    __m512 x2 = _mm512_loadu_ps(v + k + 32), x3 = _mm512_loadu_ps(v + k + 48);
    a0 = _mm512_fmadd_ps(x0, x0, a0);
    a1 = _mm512_fmadd_ps(x1, x1, a1);
    a2 = _mm512_fmadd_ps(x2, x2, a2);
    a3 = _mm512_fmadd_ps(x3, x3, a3);
  }
  for (; k < d; k += 16) {
    __m512 x = _mm512_maskz_loadu_ps(tail16(d - k), v + k);
    a0 = _mm512_fmadd_ps(x, x, a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

void engram_sim_norms_avx512(const float *rows, size_t n, size_t d, float *inv)
{
  for (size_t i = 0; i < n; i++)
    inv[i] = inv_of(sumsq(rows + i * d, d));
}

#define PF_AHEAD 512
#define PF_MIN_BYTES ((size_t)8 << 20)

static inline void dot4(const float *q, const float *r0, const float *r1, const float *r2,
                        const float *r3, size_t d, float out[4], float sq[4], int pf)
{
  __m512 d0 = _mm512_setzero_ps(), d1 = d0, d2 = d0, d3 = d0;
  __m512 e0 = d0, e1 = d0, e2 = d0, e3 = d0;
  /* whole vectors with plain loads, the tail (d % 16) with masked ones */
  for (size_t k = 0; k < d; k += 16) {
    __mmask16 m = tail16(d - k);
    __m512 qa, x0, x1, x2, x3;
    if (ENGRAM_LIKELY(k + 16 <= d)) {
      if (pf) {
        _mm_prefetch((const char *)(r0 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r1 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r2 + k + PF_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(r3 + k + PF_AHEAD), _MM_HINT_T0);
      }
      qa = _mm512_loadu_ps(q + k);
      x0 = _mm512_loadu_ps(r0 + k), x1 = _mm512_loadu_ps(r1 + k);
      x2 = _mm512_loadu_ps(r2 + k), x3 = _mm512_loadu_ps(r3 + k);
    } else {
      qa = _mm512_maskz_loadu_ps(m, q + k);
      x0 = _mm512_maskz_loadu_ps(m, r0 + k), x1 = _mm512_maskz_loadu_ps(m, r1 + k);
      x2 = _mm512_maskz_loadu_ps(m, r2 + k), x3 = _mm512_maskz_loadu_ps(m, r3 + k);
    }
    d0 = _mm512_fmadd_ps(qa, x0, d0);
    d1 = _mm512_fmadd_ps(qa, x1, d1);
    d2 = _mm512_fmadd_ps(qa, x2, d2);
    d3 = _mm512_fmadd_ps(qa, x3, d3);
    if (sq) {
      e0 = _mm512_fmadd_ps(x0, x0, e0);
      e1 = _mm512_fmadd_ps(x1, x1, e1);
      e2 = _mm512_fmadd_ps(x2, x2, e2);
      e3 = _mm512_fmadd_ps(x3, x3, e3);
    }
  }
  out[0] = _mm512_reduce_add_ps(d0);
  out[1] = _mm512_reduce_add_ps(d1);
  out[2] = _mm512_reduce_add_ps(d2);
  out[3] = _mm512_reduce_add_ps(d3);
  if (sq) {
    sq[0] = _mm512_reduce_add_ps(e0);
    sq[1] = _mm512_reduce_add_ps(e1);
    sq[2] = _mm512_reduce_add_ps(e2);
    sq[3] = _mm512_reduce_add_ps(e3);
  }
}

static inline float dot1(const float *q, const float *r, size_t d, float *sq)
{
  __m512 a = _mm512_setzero_ps(), b = a;
  for (size_t k = 0; k < d; k += 16) {
    __mmask16 m = tail16(d - k);
    __m512 x = _mm512_maskz_loadu_ps(m, r + k);
    a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + k), x, a);
    b = _mm512_fmadd_ps(x, x, b);
  }
  *sq = _mm512_reduce_add_ps(b);
  return _mm512_reduce_add_ps(a);
}

void engram_sim_cosine_avx512(const float *q, float qinv, const float *rows, const float *inv,
                              size_t n, size_t d, float *scores)
{
  size_t quarter = n / 4;
  const float *base[4];
  for (int s = 0; s < 4; s++)
    base[s] = rows + (size_t)s * quarter * d;
  /* candidates that do not fit in L2 plus a share of L3 stream from further out: prefetch them;
   * in cache the hints only take issue slots (N = 1,000 at d = 768 ran 5-10% slower with them) */
  const int pf = n * d * sizeof(float) >= PF_MIN_BYTES;
  for (size_t i = 0; i < quarter; i++) {
    float dots[4], sq[4];
    if (pf)
      dot4(q, base[0] + i * d, base[1] + i * d, base[2] + i * d, base[3] + i * d, d, dots, inv ? NULL : sq, 1);
    else
      dot4(q, base[0] + i * d, base[1] + i * d, base[2] + i * d, base[3] + i * d, d, dots, inv ? NULL : sq, 0);
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

typedef __m512 vf;
#define VL 16
#define NR 32
#define MR 8

static inline void tile(const float *const a[MR], const float *bp, size_t kc, float *c, size_t ldc,
                        int accumulate)
{
  __m512 lo[MR], hi[MR];
  for (int r = 0; r < MR; r++)
    lo[r] = hi[r] = _mm512_setzero_ps();
  for (size_t k = 0; k < kc; k++, bp += NR) {
    __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      __m512 x = _mm512_set1_ps(a[r][k]);
      lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
      hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
    }
  }
  for (int r = 0; r < MR; r++) {
    float *cr = c + (size_t)r * ldc;
    if (accumulate) {
      lo[r] = _mm512_add_ps(lo[r], _mm512_load_ps(cr));
      hi[r] = _mm512_add_ps(hi[r], _mm512_load_ps(cr + 16));
    }
    _mm512_store_ps(cr, lo[r]);
    _mm512_store_ps(cr + 16, hi[r]);
  }
}

/* Pack one sliver for gram.h: dst[k*NR + jj] = src[jj][k] for k < d, 16 k at a time as two
 * 16 x 16 register transposes (rows 0-15 and 16-31); a zero row pointer packs zeros. Without
 * it the packing was a scalar gather, 27% of a 100 x 164 prefix pass. */
static inline void transpose16(__m512 r[16])
{
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);       /* rows i, i+1 interleaved, even pairs */
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {                  /* four rows of columns c, c+4, c+8, c+12 */
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int c = 0; c < 4; c++) {                      /* eight rows of columns c(+8), c+4(+8) */
    t[c] = _mm512_shuffle_f32x4(u[c], u[c + 4], 0x88);
    t[c + 4] = _mm512_shuffle_f32x4(u[c], u[c + 4], 0xdd);
    t[c + 8] = _mm512_shuffle_f32x4(u[c + 8], u[c + 12], 0x88);
    t[c + 12] = _mm512_shuffle_f32x4(u[c + 8], u[c + 12], 0xdd);
  }
  for (int c = 0; c < 4; c++) {                      /* all sixteen rows of one column each */
    r[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xdd);
    r[c + 4] = _mm512_shuffle_f32x4(t[c + 4], t[c + 12], 0x88);
    r[c + 12] = _mm512_shuffle_f32x4(t[c + 4], t[c + 12], 0xdd);
  }
}

static void pack_sliver(const float *const src[NR], size_t d, float *dst)
{
  size_t k = 0;
  for (; k + 16 <= d; k += 16, dst += 16 * NR) {
    __m512 lo[16], hi[16];
    for (int j = 0; j < 16; j++) {
      lo[j] = src[j] ? _mm512_loadu_ps(src[j] + k) : _mm512_setzero_ps();
      hi[j] = src[j + 16] ? _mm512_loadu_ps(src[j + 16] + k) : _mm512_setzero_ps();
    }
    transpose16(lo);
    transpose16(hi);
    for (int j = 0; j < 16; j++) {
      _mm512_store_ps(dst + j * NR, lo[j]);
      _mm512_store_ps(dst + j * NR + 16, hi[j]);
    }
  }
  for (; k < d; k++, dst += NR)
    for (size_t jj = 0; jj < NR; jj++)
      dst[jj] = src[jj] ? src[jj][k] : 0.0f;
}
#define PACK_SLIVER pack_sliver

#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_STORE_N(p, v, nv) _mm512_mask_storeu_ps(p, tail16(nv), v)
#define V_LOAD_N(p, nv) _mm512_maskz_loadu_ps(tail16(nv), p)
#define V_GE_BITS(a, b) ((unsigned)_mm512_cmp_ps_mask(a, b, _CMP_GE_OQ))
#define V_FIX(a, b) \
  _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, a, _CMP_ORD_Q) & _mm512_cmp_ps_mask(b, _mm512_setzero_ps(), _CMP_NEQ_OQ), a)

#include "gram.h"
