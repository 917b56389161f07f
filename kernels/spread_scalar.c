/*
 * spread_scalar.c — one round of the iterative spread in portable C: the reference the AVX2
 * and AVX-512 rounds are tested against (kernels.h, "spread", gives the steps).
 *
 * Baseline x86-64 has no FMA, so `dst[t] += a * w` is a rounded product then a rounded sum,
 * the same two operations the vector variants perform lane by lane.
 */
#include "kernels.h"

int engram_spread_round_scalar(engram_spread_round *r)
{
  const uint32_t *off = r->off, *tg = r->tg;
  const float *w = r->w;
  const uint32_t n = r->n;
  float *src = r->src, *dst = r->dst;

  if (r->div > 1.0f)
    for (uint32_t i = 0; i < n; i++)
      src[i] /= r->div;
  for (uint32_t i = 0; i < n; i++)
    dst[i] = src[i];

  int clean = 1;
  for (uint32_t s = 0; s < n; s++) {
    const float a = src[s];
    const uint32_t e0 = off[s], end = off[s + 1];
    if (r->check == SPREAD_CHECK_ALL || (r->check == SPREAD_CHECK_ACTIVE && a != 0.0f)) {
      for (uint32_t e = e0; e < end; e++) {
        if (tg[e] >= n) {
          if (a != 0.0f) {
            r->bad_src = s;
            r->bad_edge = e;
            return 1;
          }
          clean = 0;       /* never read while s is inactive; later rounds check it */
          break;
        }
      }
    }
    if (a == 0.0f)
      continue;
    for (uint32_t e = e0; e < end; e++)
      dst[tg[e]] += a * w[e];
  }
  r->clean = clean;

  float mx = 0.0f;
  for (uint32_t i = 0; i < n; i++)
    mx = dst[i] > mx ? dst[i] : mx;
  r->max = mx;
  return 0;
}
