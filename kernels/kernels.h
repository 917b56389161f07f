/*
 * kernels.h — internals shared by the kernel families: the dispatch table, the per-ISA
 * entry points it holds, and the small helpers every front end uses (arena, failures).
 * Nothing here is exported; the public contract is the "Kernels" section of engram.h.
 *
 * Each family has a front end (similarity.c, spread.c, decay.c) that checks arguments, takes
 * scratch and calls through the table, and one file per ISA (foo_scalar.c, foo_avx2.c,
 * foo_avx512.c) that only computes. The Makefile gives *_avx2.c / *_avx512.c their target
 * flags, so nothing wider than baseline x86-64 runs before dispatch has checked the CPU.
 */
#ifndef ENGRAM_KERNELS_H
#define ENGRAM_KERNELS_H

#include "arena.h"   /* engram_fail, ENGRAM_HIDDEN */

#include <stddef.h>
#include <stdint.h>

#define ENGRAM_KHIDDEN ENGRAM_HIDDEN

/* Squared norms below this (or not finite) make a vector score 0. */
#define ENGRAM_SIM_MIN_NORM2 1e-30f

/* ---- similarity: the blocked all-pairs pass --------------------------------------------
 * A scan computes cos(a_i, b_j) block by block and hands each finished block to the epilogue
 * selected by its mode; for symmetric scans (a == b) only blocks with i <= j are computed. */

enum { SCAN_MATRIX = 1, SCAN_PAIRS = 2, SCAN_TOPK = 4 };

typedef struct engram_sim_scan {
  const float *a, *b;        /* rows, d floats each */
  const float *inv_a, *inv_b;
  size_t na, nb, d;
  int symmetric;             /* a == b: compute i <= j only, for i < na <= j < nb too (pairs of a
                              * prefix); MATRIX and TOPK scans have na == nb */
  int mode;                  /* SCAN_* bits */
  /* SCAN_MATRIX: out[i*ldo + j] (and the mirror when symmetric) */
  float *out;
  size_t ldo;
  /* SCAN_PAIRS */
  float threshold;
  engram_sim_pair *pairs;
  size_t cap, count;
  /* SCAN_TOPK: per-row min-heaps of size k kept in idx/score; kth[i] = heap root score */
  size_t k;
  uint32_t *idx;
  float *score;
  float *kth;
  /* scratch handed to the ISA (bytes from engram_sim_scan_scratch) */
  void *scratch;
} engram_sim_scan;

/* cos from a dot product and two inverse norms, on the contract: 0 when either vector scores
 * 0, NaN never escapes, clamped to [-1, 1]. The vector epilogues do the same lane-wise. */
static inline float engram_sim_finish(float dot, float inv_i, float inv_j)
{
  if (inv_i == 0.0f || inv_j == 0.0f)
    return 0.0f;
  float c = dot * inv_i * inv_j;
  if (c != c)
    return 0.0f;
  return c > 1.0f ? 1.0f : c < -1.0f ? -1.0f : c;
}

/* Shared epilogue helpers (similarity.c): record a pair (i < j) of a SCAN_PAIRS scan; offer
 * (j, c) to row `row`'s top-k heap (callers may prefilter with c >= kth[row]). */
ENGRAM_KHIDDEN void engram_sim_emit_pair(engram_sim_scan *s, uint32_t i, uint32_t j, float c);
ENGRAM_KHIDDEN void engram_sim_topk_push(engram_sim_scan *s, size_t row, uint32_t j, float c);

/* ---- spread: one round of the iterative mode --------------------------------------------
 * The front end (spread.c) checks the offsets and runs the rounds; each round is one call:
 *   1. a = src (divided by div first when div > 1, the quotient written back to src);
 *      dst = a;
 *   2. for every source s with a[s] != 0, in order: dst[t] += a[s] * w[e] over its edges, in
 *      edge order (so every ISA adds the same products in the same order: results are equal
 *      bit for bit);
 *   3. max = max(0, max over dst), ignoring NaN.
 * Targets are checked according to `check` before any edge of their source is applied. */

enum {
  SPREAD_CHECK_NONE = 0,     /* every target is known to be < n */
  SPREAD_CHECK_ACTIVE = 1,   /* check the targets of sources with a[s] != 0 */
  SPREAD_CHECK_ALL = 2       /* also the targets of inactive sources: sets `clean` */
};

/* Edges (4-byte target and weight each) ahead of the current source that a round prefetches. */
#define SPREAD_PF_AHEAD 256

typedef struct engram_spread_round {
  const uint32_t *off, *tg;  /* offsets[n+1] (already checked), targets */
  const float *w;
  uint32_t n;
  float *src;                /* n: written only when div > 1 */
  float *dst;                /* n */
  float div;
  int check;
  float max;                 /* out */
  int clean;                 /* out (SPREAD_CHECK_ALL): every target of every source is < n */
  uint32_t bad_src, bad_edge; /* out when the call returns 1 */
} engram_spread_round;

/* ---- the dispatch table ---------------------------------------------------------------- */

typedef struct engram_kernel_ops {
  int isa;
  const char *name;

  /* similarity: inv[i] for n rows */
  void (*sim_norms)(const float *rows, size_t n, size_t d, float *inv);
  /* scores against a query whose inverse norm is qinv (> 0); inv == NULL: norms in the same pass */
  void (*sim_cosine)(const float *q, float qinv, const float *rows, const float *inv, size_t n,
                     size_t d, float *scores);
  /* the blocked pass; scratch bytes it needs for (d) */
  size_t (*sim_scan_scratch)(size_t d);
  void (*sim_scan)(engram_sim_scan *s);

  /* spread: one round (above); 0, or 1 when an active source has a target >= n (dst is then
   * partly updated and bad_src / bad_edge name the first such edge) */
  int (*spread_round)(engram_spread_round *r);

  /* decay: s[i] *= 2^(-max(t[i],0) * c) with c = c_hi + c_lo (a float pair for 1/half_life or
   * log2(e)/tau), then max(., flr) when flr > 0 */
  void (*decay_exp2)(float *s, const float *t, size_t n, float c_hi, float c_lo, float flr);
  /* s[i] *= (1 + max(t[i],0) * uinv)^(-beta), then max(., flr) */
  void (*decay_power)(float *s, const float *t, size_t n, float uinv, float beta, float flr);
  /* the two-component model: access[i] < k exp2 branch, else power branch; flr on both */
  void (*decay_two)(float *s, const float *t, const uint32_t *acc, size_t n, uint32_t k,
                    float c_hi, float c_lo, float uinv, float beta, float flr);
} engram_kernel_ops;

/* The entry points each ISA file defines (foo_scalar.c, foo_avx2.c, foo_avx512.c); the tables
 * that hold them are in dispatch.c. */
#define ENGRAM_KERNEL_PROTOS(isa)                                                                  \
  ENGRAM_KHIDDEN void engram_sim_norms_##isa(const float *rows, size_t n, size_t d, float *inv);  \
  ENGRAM_KHIDDEN void engram_sim_cosine_##isa(const float *q, float qinv, const float *rows,      \
                                              const float *inv, size_t n, size_t d, float *scores); \
  ENGRAM_KHIDDEN size_t engram_sim_scan_scratch_##isa(size_t d);                                  \
  ENGRAM_KHIDDEN void engram_sim_scan_##isa(engram_sim_scan *s);                                  \
  ENGRAM_KHIDDEN int engram_spread_round_##isa(engram_spread_round *r);                           \
  ENGRAM_KHIDDEN void engram_decay_exp2_##isa(float *s, const float *t, size_t n, float c_hi,     \
                                              float c_lo, float flr);                           \
  ENGRAM_KHIDDEN void engram_decay_power_##isa(float *s, const float *t, size_t n, float uinv,    \
                                               float beta, float flr);                          \
  ENGRAM_KHIDDEN void engram_decay_two_##isa(float *s, const float *t, const uint32_t *acc,       \
                                             size_t n, uint32_t k, float c_hi, float c_lo,        \
                                             float uinv, float beta, float flr);

ENGRAM_KERNEL_PROTOS(scalar)
ENGRAM_KERNEL_PROTOS(avx2)
ENGRAM_KERNEL_PROTOS(avx512)

/* The table for this call, or NULL with *status and the message set (ENGRAM_ECONFIG for a bad
 * ENGRAM_ISA, ENGRAM_ENOTSUP for an ISA this CPU lacks). One acquire load once chosen. */
ENGRAM_KHIDDEN const engram_kernel_ops *engram_kernels_get(int *status);

/* ---- front-end helpers ------------------------------------------------------------------- */

/* The arena to use (a, or the thread arena), or NULL with ENGRAM_ENOMEM set. */
ENGRAM_KHIDDEN engram_arena *engram_kernel_arena(engram_arena *a, const char *who);

/* Scratch of count*size bytes at 64-byte alignment, or NULL with ENGRAM_EFULL / ENGRAM_EOVERFLOW
 * set as "<who>: scratch of N bytes does not fit the arena (...)". */
ENGRAM_KHIDDEN void *engram_kernel_scratch(engram_arena *a, size_t count, size_t size, const char *who);

#endif
