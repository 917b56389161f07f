/*
 * decay_avx512.c — the decay models for AVX-512 (16 lanes, mask registers): the algorithm of
 * decay_scalar.c (see vmath.h) lane by lane.
 */
#include "kernels.h"
#include "vmath.h"

#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail16(size_t r)
{
  return (__mmask16)(r >= 16 ? 0xffffu : (1u << r) - 1);
}

static inline __m512 exp2_poly(__m512 r)
{
  __m512 p = _mm512_set1_ps(VM_EXP2_C6);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP2_C5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP2_C4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP2_C3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP2_C2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP2_C1));
  return _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
}

static inline __m512 scale(__m512 s, __m512 n, __m512 r, __m512 flr, int use_floor)
{
  __m512 p = exp2_poly(r);
  __m512i ni = _mm512_cvtps_epi32(n);
  __m512i n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  __m512i bias = _mm512_set1_epi32(127);
  __m512 k1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(bias, n1), 23));
  __m512 k2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(bias, n2), 23));
  __m512 res = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(s, p), k1), k2);
  if (use_floor) {
    __m512 f = _mm512_mul_ps(_mm512_mul_ps(p, k1), k2);
    res = _mm512_mask_mov_ps(res, _mm512_cmp_ps_mask(f, flr, _CMP_LT_OQ), _mm512_mul_ps(s, flr));
  }
  return res;
}

static inline void cap(__m512 *n, __m512 *r, __mmask16 extra_big)
{
  const __m512 nmax = _mm512_set1_ps(VM_N_MAX), m1 = _mm512_set1_ps(-1.0f);
  __mmask16 big = _mm512_cmp_ps_mask(*n, nmax, _CMP_NLE_UQ) | extra_big;
  *n = _mm512_mask_mov_ps(*n, big, nmax);
  *r = _mm512_max_ps(_mm512_mask_mov_ps(*r, big, m1), m1);
}

static inline void exp_reduce(__m512 t, __m512 c_hi, __m512 c_lo, __m512 *n, __m512 *r)
{
  __m512 nn = _mm512_roundscale_ps(_mm512_mul_ps(t, c_hi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 rr = _mm512_fnmadd_ps(t, c_hi, nn);
  rr = _mm512_fnmadd_ps(t, c_lo, rr);
  *n = nn;
  *r = rr;
  cap(n, r, 0);
}

static inline void pow_reduce(__m512 t, __m512 uinv, __m512 beta, __m512 *n, __m512 *r)
{
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 u = _mm512_fmadd_ps(t, uinv, one);
  __mmask16 inf = _mm512_cmp_ps_mask(u, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
  __m512i b = _mm512_castps_si512(u);
  __m512i k = _mm512_srai_epi32(_mm512_sub_epi32(b, _mm512_set1_epi32(VM_SQRT_HALF_BITS)), 23);
  __m512 m = _mm512_castsi512_ps(_mm512_sub_epi32(b, _mm512_slli_epi32(k, 23)));
  __m512 e = _mm512_cvtepi32_ps(k);
  __m512 sv = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one));
  __m512 z = _mm512_mul_ps(sv, sv);
  __m512 P = _mm512_set1_ps(VM_LOG2_P3);
  P = _mm512_fmadd_ps(P, z, _mm512_set1_ps(VM_LOG2_P2));
  P = _mm512_fmadd_ps(P, z, _mm512_set1_ps(VM_LOG2_P1));
  P = _mm512_fmadd_ps(P, z, _mm512_set1_ps(VM_LOG2_P0));
  __m512 L = _mm512_mul_ps(sv, P);
  __m512 p = _mm512_mul_ps(beta, e);
  __m512 perr = _mm512_fmsub_ps(beta, e, p);
  __m512 q = _mm512_mul_ps(beta, L);
  __m512 nn = _mm512_roundscale_ps(_mm512_add_ps(p, q), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 rr = _mm512_sub_ps(_mm512_sub_ps(_mm512_sub_ps(nn, p), q), perr);
  *n = nn;
  *r = rr;
  cap(n, r, inf);
}

static inline __m512 finish_nan(__m512 res, __m512 t)
{
  return _mm512_mask_mov_ps(res, _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q), _mm512_set1_ps(NAN));
}

/* See decay_avx2.c: t clamped to [0, tmax], a single exponent subtraction when n <= 125. */
static inline __m512 exp_fast(__m512 sv, __m512 tv, __m512 ch, __m512 cl, __m512 tmax)
{
  __m512 tz = _mm512_min_ps(tmax, _mm512_max_ps(_mm512_setzero_ps(), tv));
  __m512 nn = _mm512_roundscale_ps(_mm512_mul_ps(tz, ch), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(tz, cl, _mm512_fnmadd_ps(tz, ch, nn));
  __m512 p = exp2_poly(r);
  if (ENGRAM_LIKELY(!_mm512_cmp_ps_mask(nn, _mm512_set1_ps(125.0f), _CMP_GT_OQ))) {
    __m512i e = _mm512_slli_epi32(_mm512_cvtps_epi32(nn), 23);
    return _mm512_mul_ps(sv, _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_castps_si512(p), e)));
  }
  return finish_nan(scale(sv, nn, r, _mm512_setzero_ps(), 0), tv);
}

/* Loads and stores of 16 lanes, plain for a whole vector and masked for the tail: the loops
 * below call their step with m = 0xffff, a constant, so only the tail pays for masks. Masked
 * loads in the main loop defeated this machine's hardware prefetcher (AMD Zen 5): the power law
 * from DRAM ran at half its in-cache speed with them. */
static inline __m512 load16(const float *p, __mmask16 m)
{
  return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

static inline void store16(float *p, __m512 v, __mmask16 m)
{
  if (m == 0xffff)
    _mm512_storeu_ps(p, v);
  else
    _mm512_mask_storeu_ps(p, m, v);
}

/* Run step over whole vectors, then once over the masked tail. */
#define EACH16(n, i, STEP)                                                                         \
  do {                                                                                             \
    size_t i = 0;                                                                                  \
    for (; i + 16 <= (n); i += 16)                                                                 \
      STEP(0xffff);                                                                                \
    if (i < (n))                                                                                   \
      STEP(tail16((n) - i));                                                                       \
  } while (0)

static inline void exp_floor_step(float *s, const float *t, __mmask16 m, __m512 ch, __m512 cl, __m512 fl)
{
  __m512 tv = load16(t, m), sv = load16(s, m), nn, r;
  exp_reduce(_mm512_max_ps(tv, _mm512_setzero_ps()), ch, cl, &nn, &r);
  store16(s, finish_nan(scale(sv, nn, r, fl, 1), tv), m);
}

void engram_decay_exp2_avx512(float *s, const float *t, size_t n, float c_hi, float c_lo, float flr)
{
  const __m512 ch = _mm512_set1_ps(c_hi), cl = _mm512_set1_ps(c_lo), fl = _mm512_set1_ps(flr);
  if (flr > 0.0f) {
#define STEP(m) exp_floor_step(s + i, t + i, m, ch, cl, fl)
    EACH16(n, i, STEP);
#undef STEP
    return;
  }
  const __m512 tmax = _mm512_set1_ps(VM_N_MAX / c_hi);
#define STEP(m) store16(s + i, exp_fast(load16(s + i, m), load16(t + i, m), ch, cl, tmax), m)
  EACH16(n, i, STEP);
#undef STEP
}

static inline void pow_step(float *s, const float *t, __mmask16 m, __m512 ui, __m512 be, __m512 fl, int use_floor)
{
  __m512 tv = load16(t, m), sv = load16(s, m), nn, r;
  pow_reduce(_mm512_max_ps(tv, _mm512_setzero_ps()), ui, be, &nn, &r);
  store16(s, finish_nan(scale(sv, nn, r, fl, use_floor), tv), m);
}

void engram_decay_power_avx512(float *s, const float *t, size_t n, float uinv, float beta, float flr)
{
  const __m512 ui = _mm512_set1_ps(uinv), be = _mm512_set1_ps(beta), fl = _mm512_set1_ps(flr);
  const int use_floor = flr > 0.0f;
#define STEP(m) pow_step(s + i, t + i, m, ui, be, fl, use_floor)
  EACH16(n, i, STEP);
#undef STEP
}

static inline void two_step(float *s, const float *t, const uint32_t *acc, __mmask16 m, __m512i kv, __m512 ch,
                            __m512 cl, __m512 ui, __m512 be, __m512 fl, int use_floor)
{
  __m512 tv = load16(t, m), sv = load16(s, m);
  __m512i av = m == 0xffff ? _mm512_loadu_si512(acc) : _mm512_maskz_loadu_epi32(m, acc);
  __mmask16 pw = _mm512_cmpge_epu32_mask(av, kv) & m;
  __m512 tz = _mm512_max_ps(tv, _mm512_setzero_ps()), n1, r1, n2, r2, nn, r;
  if (pw == 0) {
    exp_reduce(tz, ch, cl, &nn, &r);
  } else if (pw == m) {
    pow_reduce(tz, ui, be, &nn, &r);
  } else {
    exp_reduce(tz, ch, cl, &n1, &r1);
    pow_reduce(tz, ui, be, &n2, &r2);
    nn = _mm512_mask_mov_ps(n1, pw, n2);
    r = _mm512_mask_mov_ps(r1, pw, r2);
  }
  store16(s, finish_nan(scale(sv, nn, r, fl, use_floor), tv), m);
}

void engram_decay_two_avx512(float *s, const float *t, const uint32_t *acc, size_t n, uint32_t k,
                             float c_hi, float c_lo, float uinv, float beta, float flr)
{
  const __m512 ch = _mm512_set1_ps(c_hi), cl = _mm512_set1_ps(c_lo), fl = _mm512_set1_ps(flr);
  const __m512 ui = _mm512_set1_ps(uinv), be = _mm512_set1_ps(beta);
  const __m512i kv = _mm512_set1_epi32((int32_t)k);
  const int use_floor = flr > 0.0f;
#define STEP(m) two_step(s + i, t + i, acc + i, m, kv, ch, cl, ui, be, fl, use_floor)
  EACH16(n, i, STEP);
#undef STEP
}
