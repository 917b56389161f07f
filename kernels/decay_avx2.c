/*
 * decay_avx2.c — the decay models for AVX2 + FMA, 8 lanes: the algorithm of decay_scalar.c
 * (see vmath.h) lane by lane, with the exponent built by integer shifts.
 */
#include "kernels.h"
#include "vmath.h"

#include <immintrin.h>
#include <math.h>

/* Elements (8 bytes each, strength and age) beyond which the arrays are taken to come from
 * DRAM rather than the caches: 4 MiB, the size of a large L2 plus part of an L3 slice. */
#define DECAY_PF_MIN ((size_t)1 << 19)

static inline __m256i tail_mask(size_t r)
{
  static const int32_t m[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
  return _mm256_loadu_si256((const __m256i *)(m + 8 - r));
}

static inline __m256 exp2_poly(__m256 r)
{
  __m256 p = _mm256_set1_ps(VM_EXP2_C6);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP2_C5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP2_C4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP2_C3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP2_C2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP2_C1));
  return _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
}

/* s * 2^-n * 2^r as two exact power-of-two steps; with a floor: s * max(f, flr). */
static inline __m256 scale(__m256 s, __m256 n, __m256 r, __m256 flr, int use_floor)
{
  __m256 p = exp2_poly(r);
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  __m256i bias = _mm256_set1_epi32(127);
  __m256 k1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(bias, n1), 23));
  __m256 k2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(bias, n2), 23));
  __m256 res = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(s, p), k1), k2);
  if (use_floor) {
    __m256 f = _mm256_mul_ps(_mm256_mul_ps(p, k1), k2);
    res = _mm256_blendv_ps(res, _mm256_mul_ps(s, flr), _mm256_cmp_ps(f, flr, _CMP_LT_OQ));
  }
  return res;
}

static inline void cap(__m256 *n, __m256 *r, __m256 extra_big)
{
  const __m256 nmax = _mm256_set1_ps(VM_N_MAX), m1 = _mm256_set1_ps(-1.0f);
  __m256 big = _mm256_or_ps(_mm256_cmp_ps(*n, nmax, _CMP_NLE_UQ), extra_big);
  *n = _mm256_blendv_ps(*n, nmax, big);
  *r = _mm256_max_ps(_mm256_blendv_ps(*r, m1, big), m1);
}

static inline void exp_reduce(__m256 t, __m256 c_hi, __m256 c_lo, __m256 *n, __m256 *r)
{
  __m256 nn = _mm256_round_ps(_mm256_mul_ps(t, c_hi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 rr = _mm256_fnmadd_ps(t, c_hi, nn);
  rr = _mm256_fnmadd_ps(t, c_lo, rr);
  *n = nn;
  *r = rr;
  cap(n, r, _mm256_setzero_ps());
}

static inline void pow_reduce(__m256 t, __m256 uinv, __m256 beta, __m256 *n, __m256 *r)
{
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 u = _mm256_fmadd_ps(t, uinv, one);
  __m256 inf = _mm256_cmp_ps(u, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ);
  __m256i b = _mm256_castps_si256(u);
  __m256i k = _mm256_srai_epi32(_mm256_sub_epi32(b, _mm256_set1_epi32(VM_SQRT_HALF_BITS)), 23);
  __m256 m = _mm256_castsi256_ps(_mm256_sub_epi32(b, _mm256_slli_epi32(k, 23)));
  __m256 e = _mm256_cvtepi32_ps(k);
  __m256 sv = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
  __m256 z = _mm256_mul_ps(sv, sv);
  __m256 P = _mm256_set1_ps(VM_LOG2_P3);
  P = _mm256_fmadd_ps(P, z, _mm256_set1_ps(VM_LOG2_P2));
  P = _mm256_fmadd_ps(P, z, _mm256_set1_ps(VM_LOG2_P1));
  P = _mm256_fmadd_ps(P, z, _mm256_set1_ps(VM_LOG2_P0));
  __m256 L = _mm256_mul_ps(sv, P);
  __m256 p = _mm256_mul_ps(beta, e);
  __m256 perr = _mm256_fmsub_ps(beta, e, p);
  __m256 q = _mm256_mul_ps(beta, L);
  __m256 nn = _mm256_round_ps(_mm256_add_ps(p, q), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 rr = _mm256_sub_ps(_mm256_sub_ps(_mm256_sub_ps(nn, p), q), perr);
  *n = nn;
  *r = rr;
  cap(n, r, inf);
}

/* Loads of lane-count nv (8 = a full vector). */
#define LOADN(p, nv) ((nv) == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(nv)))
#define STOREN(p, v, nv) \
  do { if ((nv) == 8) _mm256_storeu_ps(p, v); else _mm256_maskstore_ps(p, tail_mask(nv), v); } while (0)

static inline __m256 finish_nan(__m256 res, __m256 t)
{
  return _mm256_blendv_ps(res, _mm256_set1_ps(NAN), _mm256_cmp_ps(t, t, _CMP_UNORD_Q));
}

/* 2^-(t c) for t clamped to [0, tmax] (tmax * c = 220, so the cap never triggers): the
 * exponent n and the polynomial p = 2^r, with 2^-(t c) = p * 2^-n. A NaN age propagates
 * through the polynomial (min/max keep NaN operands). */
static inline void exp_parts(__m256 tv, __m256 ch, __m256 cl, __m256 tmax, __m256 *nn, __m256 *r,
                             __m256 *p)
{
  __m256 tz = _mm256_min_ps(tmax, _mm256_max_ps(_mm256_setzero_ps(), tv));
  *nn = _mm256_round_ps(_mm256_mul_ps(tz, ch), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  *r = _mm256_fnmadd_ps(tz, cl, _mm256_fnmadd_ps(tz, ch, *nn));
  *p = exp2_poly(*r);
}

/* s * p * 2^-n when n <= 125: p * 2^-n is still normal and is made by subtracting n from p's
 * exponent field, one multiply instead of scale()'s three; the same result except possibly
 * the last subnormal step. */
static inline __m256 by_exponent(__m256 sv, __m256 nn, __m256 p)
{
  __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(nn), 23);
  return _mm256_mul_ps(sv, _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(p), e)));
}

static inline __m256 exp_fast(__m256 sv, __m256 tv, __m256 ch, __m256 cl, __m256 tmax)
{
  __m256 nn, r, p;
  exp_parts(tv, ch, cl, tmax, &nn, &r, &p);
  if (ENGRAM_LIKELY(!_mm256_movemask_ps(_mm256_cmp_ps(nn, _mm256_set1_ps(125.0f), _CMP_GT_OQ))))
    return by_exponent(sv, nn, p);
  return finish_nan(scale(sv, nn, r, _mm256_setzero_ps(), 0), tv);
}

/* Sixteen elements whose n may exceed 125, out of line so that the loop below keeps its
 * constants in registers. */
__attribute__((noinline)) static void exp_16_slow(float *s, const float *t, __m256 ch, __m256 cl,
                                                  __m256 tmax)
{
  for (int k = 0; k < 16; k += 8)
    _mm256_storeu_ps(s + k, exp_fast(_mm256_loadu_ps(s + k), _mm256_loadu_ps(t + k), ch, cl, tmax));
}

/* Blocks of sixteen elements from i on, with one test for n > 125 per block (this loop is
 * bound by vector instructions, and a compare, mask move and branch per vector cost about a
 * tenth of it); returns the first block that needs exp_16_slow, or the end of the blocks. The
 * rare block leaves the loop instead of calling out of it, so the constants stay in registers
 * (a call inside would clobber them every iteration). The rounding adds and subtracts
 * 1.5 * 2^23, which leaves n in the low bits of the sum, so n << 23 needs no conversion: one
 * instruction fewer per vector than vroundps + vcvtps2dq. That holds for 0 <= n <= 125 only:
 * the test is unordered, so NaN ages also go to exp_16_slow. */
static inline size_t exp_run(float *s, const float *t, size_t i, size_t n, __m256 ch, __m256 cl,
                             int pf)
{
  const __m256 shifter = _mm256_set1_ps(12582912.0f), lim = _mm256_set1_ps(125.0f);
  for (; i + 16 <= n; i += 16) {
    if (pf) {
      _mm_prefetch((const char *)(t + i + 512), _MM_HINT_T0);
      _mm_prefetch((const char *)(s + i + 512), _MM_HINT_T0);
    }
    /* no clamp at tmax: a larger age gives n > 125 (or an infinite n), which the test sends
     * to exp_16_slow like any n > 125 */
    __m256 ta = _mm256_max_ps(_mm256_setzero_ps(), _mm256_loadu_ps(t + i));
    __m256 tb = _mm256_max_ps(_mm256_setzero_ps(), _mm256_loadu_ps(t + i + 8));
    __m256 ka = _mm256_add_ps(_mm256_mul_ps(ta, ch), shifter);
    __m256 kb = _mm256_add_ps(_mm256_mul_ps(tb, ch), shifter);
    __m256 na = _mm256_sub_ps(ka, shifter), nb = _mm256_sub_ps(kb, shifter);
    __m256 big = _mm256_or_ps(_mm256_cmp_ps(na, lim, _CMP_NLE_UQ), _mm256_cmp_ps(nb, lim, _CMP_NLE_UQ));
    if (ENGRAM_UNLIKELY(_mm256_movemask_ps(big)))
      return i;
    __m256 pa = exp2_poly(_mm256_fnmadd_ps(ta, cl, _mm256_fnmadd_ps(ta, ch, na)));
    __m256 pb = exp2_poly(_mm256_fnmadd_ps(tb, cl, _mm256_fnmadd_ps(tb, ch, nb)));
    __m256i ea = _mm256_slli_epi32(_mm256_castps_si256(ka), 23);
    __m256i eb = _mm256_slli_epi32(_mm256_castps_si256(kb), 23);
    __m256 fa = _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(pa), ea));
    __m256 fb = _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(pb), eb));
    _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), fa));
    _mm256_storeu_ps(s + i + 8, _mm256_mul_ps(_mm256_loadu_ps(s + i + 8), fb));
  }
  return i;
}

void engram_decay_exp2_avx2(float *s, const float *t, size_t n, float c_hi, float c_lo, float flr)
{
  const __m256 ch = _mm256_set1_ps(c_hi), cl = _mm256_set1_ps(c_lo), fl = _mm256_set1_ps(flr);
  if (flr > 0.0f) {
    for (size_t i = 0; i < n; i += 8) {
      size_t nv = n - i < 8 ? n - i : 8;
      __m256 tv = LOADN(t + i, nv), sv = LOADN(s + i, nv), nn, r;
      exp_reduce(_mm256_max_ps(tv, _mm256_setzero_ps()), ch, cl, &nn, &r);
      STOREN(s + i, finish_nan(scale(sv, nn, r, fl, 1), tv), nv);
    }
    return;
  }
  const __m256 tmax = _mm256_set1_ps(VM_N_MAX / c_hi);
  /* from DRAM, keep more lines in flight than the hardware prefetcher does; in cache the
   * hints would only take issue slots */
  const int pf = n >= DECAY_PF_MIN;
  size_t i = 0;
  while (i + 16 <= n) {
    i = pf ? exp_run(s, t, i, n, ch, cl, 1) : exp_run(s, t, i, n, ch, cl, 0);
    if (i + 16 <= n) {
      exp_16_slow(s + i, t + i, ch, cl, tmax);
      i += 16;
    }
  }
  for (; i < n; i += 8) {
    size_t nv = n - i < 8 ? n - i : 8;
    STOREN(s + i, exp_fast(LOADN(s + i, nv), LOADN(t + i, nv), ch, cl, tmax), nv);
  }
}

/* (1 + t uinv)^-beta times s, without a floor. When every lane's n <= 125 (beta log2 u below
 * 125: all ages and betas in practice) 2^-n is applied by subtracting n from p's exponent
 * field, as in exp_fast: s * (p * 2^-n) with p * 2^-n exact, the same result as scale()'s
 * (s * p) * 2^-n1 * 2^-n2 except possibly the last subnormal step. Apart from the division
 * in pow_reduce, scale()'s three multiplies were the largest cost of the loop. */
static inline __m256 pow_fast(__m256 sv, __m256 tv, __m256 ui, __m256 be)
{
  __m256 nn, r;
  pow_reduce(_mm256_max_ps(tv, _mm256_setzero_ps()), ui, be, &nn, &r);
  if (ENGRAM_LIKELY(!_mm256_movemask_ps(_mm256_cmp_ps(nn, _mm256_set1_ps(125.0f), _CMP_GT_OQ)))) {
    __m256 p = exp2_poly(r);
    __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(nn), 23);
    __m256 res = _mm256_mul_ps(sv, _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(p), e)));
    return finish_nan(res, tv);
  }
  return finish_nan(scale(sv, nn, r, _mm256_setzero_ps(), 0), tv);
}

__attribute__((noinline)) static void pow_16_slow(float *s, const float *t, __m256 ui, __m256 be)
{
  for (int k = 0; k < 16; k += 8)
    _mm256_storeu_ps(s + k, pow_fast(_mm256_loadu_ps(s + k), _mm256_loadu_ps(t + k), ui, be));
}

/* Blocks of sixteen elements from i on with one test for n > 125 each; returns the first
 * block that needs pow_16_slow, or the end of the blocks (see exp_run). */
static inline size_t pow_run(float *s, const float *t, size_t i, size_t n, __m256 ui, __m256 be)
{
  const __m256 lim = _mm256_set1_ps(125.0f);
  for (; i + 16 <= n; i += 16) {
    __m256 ta = _mm256_loadu_ps(t + i), tb = _mm256_loadu_ps(t + i + 8), na, ra, nb, rb;
    pow_reduce(_mm256_max_ps(ta, _mm256_setzero_ps()), ui, be, &na, &ra);
    pow_reduce(_mm256_max_ps(tb, _mm256_setzero_ps()), ui, be, &nb, &rb);
    __m256 big = _mm256_or_ps(_mm256_cmp_ps(na, lim, _CMP_GT_OQ), _mm256_cmp_ps(nb, lim, _CMP_GT_OQ));
    if (ENGRAM_UNLIKELY(_mm256_movemask_ps(big)))
      return i;
    __m256 a = finish_nan(by_exponent(_mm256_loadu_ps(s + i), na, exp2_poly(ra)), ta);
    __m256 b = finish_nan(by_exponent(_mm256_loadu_ps(s + i + 8), nb, exp2_poly(rb)), tb);
    _mm256_storeu_ps(s + i, a);
    _mm256_storeu_ps(s + i + 8, b);
  }
  return i;
}

void engram_decay_power_avx2(float *s, const float *t, size_t n, float uinv, float beta, float flr)
{
  const __m256 ui = _mm256_set1_ps(uinv), be = _mm256_set1_ps(beta), fl = _mm256_set1_ps(flr);
  const int use_floor = flr > 0.0f;
  if (!use_floor) {
    size_t i = 0;
    while (i + 16 <= n) {
      i = pow_run(s, t, i, n, ui, be);
      if (i + 16 <= n) {
        pow_16_slow(s + i, t + i, ui, be);
        i += 16;
      }
    }
    for (; i < n; i += 8) {
      size_t nv = n - i < 8 ? n - i : 8;
      STOREN(s + i, pow_fast(LOADN(s + i, nv), LOADN(t + i, nv), ui, be), nv);
    }
    return;
  }
  for (size_t i = 0; i < n; i += 8) {
    size_t nv = n - i < 8 ? n - i : 8;
    __m256 tv = LOADN(t + i, nv), sv = LOADN(s + i, nv), nn, r;
    pow_reduce(_mm256_max_ps(tv, _mm256_setzero_ps()), ui, be, &nn, &r);
    STOREN(s + i, finish_nan(scale(sv, nn, r, fl, use_floor), tv), nv);
  }
}

void engram_decay_two_avx2(float *s, const float *t, const uint32_t *acc, size_t n, uint32_t k,
                           float c_hi, float c_lo, float uinv, float beta, float flr)
{
  const __m256 ch = _mm256_set1_ps(c_hi), cl = _mm256_set1_ps(c_lo), fl = _mm256_set1_ps(flr);
  const __m256 ui = _mm256_set1_ps(uinv), be = _mm256_set1_ps(beta);
  const __m256i flip = _mm256_set1_epi32(INT32_MIN);
  const __m256i kb = _mm256_xor_si256(_mm256_set1_epi32((int32_t)k), flip);
  const int use_floor = flr > 0.0f;
  for (size_t i = 0; i < n; i += 8) {
    size_t nv = n - i < 8 ? n - i : 8;
    __m256 tv = LOADN(t + i, nv), sv = LOADN(s + i, nv);
    __m256i av = nv == 8 ? _mm256_loadu_si256((const __m256i *)(acc + i))
                         : _mm256_maskload_epi32((const int *)(acc + i), tail_mask(nv));
    /* acc >= k, unsigned: not (k > acc) with both biased into signed range */
    __m256 pw = _mm256_castsi256_ps(_mm256_xor_si256(
        _mm256_cmpgt_epi32(kb, _mm256_xor_si256(av, flip)), _mm256_set1_epi32(-1)));
    int bits = _mm256_movemask_ps(pw) & ((1 << nv) - 1);
    __m256 tz = _mm256_max_ps(tv, _mm256_setzero_ps()), n1, r1, n2, r2, nn, r;
    if (bits == 0) {                   /* whole vector in one branch: skip the other */
      exp_reduce(tz, ch, cl, &nn, &r);
    } else if (bits == (1 << nv) - 1) {
      pow_reduce(tz, ui, be, &nn, &r);
    } else {
      exp_reduce(tz, ch, cl, &n1, &r1);
      pow_reduce(tz, ui, be, &n2, &r2);
      nn = _mm256_blendv_ps(n1, n2, pw);
      r = _mm256_blendv_ps(r1, r2, pw);
    }
    STOREN(s + i, finish_nan(scale(sv, nn, r, fl, use_floor), tv), nv);
  }
}
