/*
 * decay_scalar.c — the decay reference: the exact algorithm of the vector variants (vmath.h)
 * written one element at a time with fmaf, so the ISA variants can be checked against it
 * within a few ulp and all of them against double precision.
 */
#include "kernels.h"
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float bits_to_float(uint32_t b)
{
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static inline uint32_t float_to_bits(float f)
{
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

static inline float exp2_poly(float r)
{
  float p = VM_EXP2_C6;
  p = fmaf(p, r, VM_EXP2_C5);
  p = fmaf(p, r, VM_EXP2_C4);
  p = fmaf(p, r, VM_EXP2_C3);
  p = fmaf(p, r, VM_EXP2_C2);
  p = fmaf(p, r, VM_EXP2_C1);
  return fmaf(p, r, 1.0f);
}

/* s * 2^-n * 2^r (n a non-negative integer-valued float, already capped), then the floor on
 * the factor: s * max(f, flr). */
static inline float scale_result(float s, float n, float r, float flr)
{
  float p = exp2_poly(r);
  int32_t ni = (int32_t)n;
  int32_t n1 = ni >> 1, n2 = ni - n1;
  float k1 = bits_to_float((uint32_t)(127 - n1) << 23);
  float k2 = bits_to_float((uint32_t)(127 - n2) << 23);
  if (flr > 0.0f && (p * k1) * k2 < flr)
    return s * flr;
  return ((s * p) * k1) * k2;
}

/* Cap n at VM_N_MAX (also +inf and NaN), keep r >= -1. */
static inline void cap(float *n, float *r)
{
  if (!(*n <= VM_N_MAX)) {
    *n = VM_N_MAX;
    *r = -1.0f;
  }
  if (*r < -1.0f)
    *r = -1.0f;
}

/* 2^-(t*c), c = c_hi + c_lo, t >= 0 finite or +inf, as 2^-n * 2^r. */
static inline void exp_reduce(float t, float c_hi, float c_lo, float *n, float *r)
{
  float nn = rintf(t * c_hi);
  float rr = fmaf(-t, c_hi, nn);
  rr = fmaf(-t, c_lo, rr);
  *n = nn;
  *r = rr;
  cap(n, r);
}

static inline float log2_parts(float u, float *e)
{
  uint32_t b = float_to_bits(u);
  int32_t k = (int32_t)(b - VM_SQRT_HALF_BITS) >> 23;
  float m = bits_to_float(b - ((uint32_t)k << 23));
  float sv = (m - 1.0f) / (m + 1.0f);
  float z = sv * sv;
  float p = VM_LOG2_P3;
  p = fmaf(p, z, VM_LOG2_P2);
  p = fmaf(p, z, VM_LOG2_P1);
  p = fmaf(p, z, VM_LOG2_P0);
  *e = (float)k;
  return sv * p;
}

/* (1 + t*uinv)^-beta as 2^-n * 2^r (see exp_reduce); the exponent's product beta * e is
 * carried with its rounding error so large exponents stay exact. */
static inline void pow_reduce(float t, float uinv, float beta, float *n, float *r)
{
  float u = fmaf(t, uinv, 1.0f);
  float e;
  float L = log2_parts(u, &e);
  float p = beta * e;
  float perr = fmaf(beta, e, -p);
  float q = beta * L;
  float nn = rintf(p + q);
  float rr = ((nn - p) - q) - perr;
  if (u == INFINITY)
    nn = INFINITY;
  *n = nn;
  *r = rr;
  cap(n, r);
}

void engram_decay_exp2_scalar(float *s, const float *t, size_t n, float c_hi, float c_lo, float flr)
{
  const float tmax = VM_N_MAX / c_hi;
  for (size_t i = 0; i < n; i++) {
    float ti = t[i], nn, r;
    if (ti != ti) {
      s[i] = NAN;
      continue;
    }
    ti = ti > 0.0f ? ti : 0.0f;
    if (flr <= 0.0f && ti > tmax)             /* as the vector variants: n never needs the cap */
      ti = tmax;
    exp_reduce(ti, c_hi, c_lo, &nn, &r);
    s[i] = scale_result(s[i], nn, r, flr);
  }
}

void engram_decay_power_scalar(float *s, const float *t, size_t n, float uinv, float beta, float flr)
{
  for (size_t i = 0; i < n; i++) {
    float ti = t[i], nn, r;
    if (ti != ti) {
      s[i] = NAN;
      continue;
    }
    pow_reduce(ti > 0.0f ? ti : 0.0f, uinv, beta, &nn, &r);
    s[i] = scale_result(s[i], nn, r, flr);
  }
}

void engram_decay_two_scalar(float *s, const float *t, const uint32_t *acc, size_t n, uint32_t k,
                             float c_hi, float c_lo, float uinv, float beta, float flr)
{
  for (size_t i = 0; i < n; i++) {
    float ti = t[i], nn, r;
    if (ti != ti) {
      s[i] = NAN;
      continue;
    }
    ti = ti > 0.0f ? ti : 0.0f;
    if (acc[i] < k)
      exp_reduce(ti, c_hi, c_lo, &nn, &r);
    else
      pow_reduce(ti, uinv, beta, &nn, &r);
    s[i] = scale_result(s[i], nn, r, flr);
  }
}
