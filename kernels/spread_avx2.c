/*
 * spread_avx2.c — one round of the iterative spread with AVX2: the products a * w and the
 * target checks eight edges at a time, the additions one lane at a time.
 *
 * AVX2 has no scatter, and the additions dst[t] += q must stay in edge order for repeated
 * targets, so each lane is added on its own; what the vectors remove is the per-edge weight
 * load and multiply and the per-edge target test. The products are extracted from a register
 * rather than stored and reloaded, which leaves one load (the target) and one read-modify-write
 * per edge. Each sum is the rounded product then the rounded addition, as in the scalar file
 * (no fused multiply-add), so the results are the same bit for bit. Targets and weights are
 * prefetched SPREAD_PF_AHEAD edges ahead (see spread_avx512.c).
 */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

static inline __m256i tail_mask(uint32_t r)
{
  static const int32_t m[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
  return _mm256_loadu_si256((const __m256i *)(m + 8 - r));
}

/* Lanes of t (unsigned) that are >= n, as a movemask: a signed compare after flipping the
 * sign bits. */
static inline int bad_lanes(__m256i t, __m256i lim)
{
  const __m256i flip = _mm256_set1_epi32(INT32_MIN);
  return _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_xor_si256(t, flip), lim)));
}

/* dst[t[k]] += q[k] for k = 0..3, in order. */
static inline void add4(float *dst, const uint32_t *t, __m128 q)
{
  dst[t[0]] += _mm_cvtss_f32(q);
  dst[t[1]] += _mm_cvtss_f32(_mm_movehdup_ps(q));
  dst[t[2]] += _mm_cvtss_f32(_mm_movehl_ps(q, q));
  dst[t[3]] += _mm_cvtss_f32(_mm_shuffle_ps(q, q, 3));
}

static inline void add8(float *dst, const uint32_t *t, __m256 q)
{
  add4(dst, t, _mm256_castps256_ps128(q));
  add4(dst, t + 4, _mm256_extractf128_ps(q, 1));
}

/* The edges [e, end) of one source with activation a; end - e < 8 for the tail. Returns the
 * first bad edge, or UINT32_MAX. */
static inline uint32_t push_tail(float *dst, const uint32_t *tg, const float *w, uint32_t e,
                                 uint32_t end, __m256 av, int check, __m256i lim)
{
  uint32_t r = end - e;
  __m256i m = tail_mask(r);
  if (check) {
    int bad = bad_lanes(_mm256_maskload_epi32((const int *)(tg + e), m), lim) & ((1 << r) - 1);
    if (bad)
      return e + (uint32_t)__builtin_ctz((unsigned)bad);
  }
  float q[8];
  _mm256_storeu_ps(q, _mm256_mul_ps(av, _mm256_maskload_ps(w + e, m)));
  for (uint32_t k = 0; k < r; k++)
    dst[tg[e + k]] += q[k];
  return UINT32_MAX;
}

/* All edges of one active source; `check`: test each group of targets before adding it. */
static inline uint32_t push_source(float *dst, const uint32_t *tg, const float *w, uint32_t e,
                                   uint32_t end, float a, int check, __m256i lim)
{
  const __m256 av = _mm256_set1_ps(a);
  for (; e + 8 <= end; e += 8) {
    if (check) {
      int bad = bad_lanes(_mm256_loadu_si256((const __m256i *)(tg + e)), lim);
      if (ENGRAM_UNLIKELY(bad))
        return e + (uint32_t)__builtin_ctz((unsigned)bad);
    }
    add8(dst, tg + e, _mm256_mul_ps(av, _mm256_loadu_ps(w + e)));
  }
  if (e < end)
    return push_tail(dst, tg, w, e, end, av, check, lim);
  return UINT32_MAX;
}

/* 1 if some target in [e, end) is >= n. */
static inline int any_bad(const uint32_t *tg, uint32_t e, uint32_t end, __m256i lim)
{
  int bad = 0;
  for (; e + 8 <= end; e += 8)
    bad |= bad_lanes(_mm256_loadu_si256((const __m256i *)(tg + e)), lim);
  if (e < end)
    bad |= bad_lanes(_mm256_maskload_epi32((const int *)(tg + e), tail_mask(end - e)), lim) &
           ((1 << (end - e)) - 1);
  return bad != 0;
}

/* a = src (divided by div when div > 1, written back); dst = a. */
static void prepare(float *src, float *dst, uint32_t n, float div)
{
  if (!(div > 1.0f)) {
    memcpy(dst, src, (size_t)n * sizeof *dst);
    return;
  }
  const __m256 d = _mm256_set1_ps(div);
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(src + i), d);
    _mm256_storeu_ps(src + i, v);
    _mm256_storeu_ps(dst + i, v);
  }
  for (; i < n; i++)
    dst[i] = src[i] = src[i] / div;
}

/* max(0, max dst) ignoring NaN: max_ps(x, m) keeps m when x is NaN, like `x > m ? x : m`. */
static float max_of(const float *dst, uint32_t n)
{
  __m256 m0 = _mm256_setzero_ps(), m1 = m0;
  uint32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(dst + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(dst + i + 8), m1);
  }
  m0 = _mm256_max_ps(m0, m1);
  float lanes[8], mx = 0.0f;
  _mm256_storeu_ps(lanes, m0);
  for (int k = 0; k < 8; k++)
    mx = lanes[k] > mx ? lanes[k] : mx;
  for (; i < n; i++)
    mx = dst[i] > mx ? dst[i] : mx;
  return mx;
}

int engram_spread_round_avx2(engram_spread_round *r)
{
  const uint32_t *off = r->off, *tg = r->tg;
  const float *w = r->w;
  const uint32_t n = r->n;
  float *src = r->src, *dst = r->dst;
  const __m256i lim = _mm256_set1_epi32((int32_t)((n - 1) ^ 0x80000000u));
  const int check = r->check;

  prepare(src, dst, n, r->div);
  int clean = 1;
  for (uint32_t s = 0; s < n; s++) {
    const float a = src[s];
    const uint32_t e = off[s], end = off[s + 1];
    _mm_prefetch((const char *)(tg + e + SPREAD_PF_AHEAD), _MM_HINT_T0);
    _mm_prefetch((const char *)(w + e + SPREAD_PF_AHEAD), _MM_HINT_T0);
    if (a == 0.0f) {
      if (check == SPREAD_CHECK_ALL && clean && any_bad(tg, e, end, lim))
        clean = 0;
      continue;
    }
    uint32_t bad = check ? push_source(dst, tg, w, e, end, a, 1, lim)
                         : push_source(dst, tg, w, e, end, a, 0, lim);
    if (ENGRAM_UNLIKELY(bad != UINT32_MAX)) {
      r->bad_src = s;
      r->bad_edge = bad;
      return 1;
    }
  }
  r->clean = clean;
  r->max = max_of(dst, n);
  return 0;
}
