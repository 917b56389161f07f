/*
 * vmath.h — the exp2 / log2 pieces of the decay kernels, written once as constants and a
 * scalar reference; decay_avx2.c and decay_avx512.c evaluate the same polynomials with the
 * same argument reduction, lane by lane, so every ISA returns the same function.
 *
 *   2^r,  r in [-0.5, 0.5]:  degree-6 polynomial (Chebyshev-node fit, float coefficients);
 *                            max relative error 1.9e-8 in exact arithmetic, about 2 ulp (2.4e-7)
 *                            after float Horner evaluation.
 *   log2 m, m in [sqrt(1/2), sqrt(2)):  s = (m-1)/(m+1), log2 m = s * P(s^2), P of degree 3;
 *                            max absolute error 6.6e-9 in exact arithmetic.
 *
 * Argument reduction keeps the exponent exact: 2^-y = 2^-n * 2^r with n = round(y) and
 * r = n - y computed with fused multiply-adds from a double-float constant (c_hi + c_lo), so
 * the error does not grow with the age. The scale 2^-n is applied as two exact power-of-two
 * factors (n/2 and n - n/2, each within the normal range), which keeps subnormal results
 * correctly rounded to the last step instead of flushing them. n is capped at 220: for
 * |strength| <= 2^64 everything past that is 0 anyway.
 */
#ifndef ENGRAM_VMATH_H
#define ENGRAM_VMATH_H

#define VM_EXP2_C1 6.931471825e-01f
#define VM_EXP2_C2 2.402265072e-01f
#define VM_EXP2_C3 5.550327152e-02f
#define VM_EXP2_C4 9.618056938e-03f
#define VM_EXP2_C5 1.340042800e-03f
#define VM_EXP2_C6 1.546144485e-04f

#define VM_LOG2_P0 2.885390043e+00f
#define VM_LOG2_P1 9.617988467e-01f
#define VM_LOG2_P2 5.767151713e-01f
#define VM_LOG2_P3 4.317176938e-01f

#define VM_SQRT_HALF_BITS 0x3f3504f3   /* float bits of sqrt(1/2) */
#define VM_N_MAX 220.0f                /* cap on the exponent n of 2^-n */

#endif
