/*
 * similarity_scalar.c — the similarity reference. Sums in double, one pair at a time, in the
 * plainest order; the ISA variants are tested against it (and it against exact arithmetic).
 */
#include "kernels.h"

#include <float.h>

static double dot_d(const float *a, const float *b, size_t d)
{
  double s = 0.0;
  for (size_t k = 0; k < d; k++)
    s += (double)a[k] * (double)b[k];
  return s;
}

static float inv_of(double ss)
{
  /* Not finite in float (a NaN/Inf component, or an overflowing sum) or too small: scores 0. */
  if (!(ss >= (double)ENGRAM_SIM_MIN_NORM2 && ss <= (double)FLT_MAX))
    return 0.0f;
  return (float)(1.0 / __builtin_sqrt(ss));
}

void engram_sim_norms_scalar(const float *rows, size_t n, size_t d, float *inv)
{
  for (size_t i = 0; i < n; i++)
    inv[i] = inv_of(dot_d(rows + i * d, rows + i * d, d));
}

void engram_sim_cosine_scalar(const float *q, float qinv, const float *rows, const float *inv,
                              size_t n, size_t d, float *scores)
{
  for (size_t i = 0; i < n; i++) {
    const float *r = rows + i * d;
    float ri = inv ? inv[i] : inv_of(dot_d(r, r, d));
    scores[i] = engram_sim_finish((float)dot_d(q, r, d), qinv, ri);
  }
}

size_t engram_sim_scan_scratch_scalar(size_t d)
{
  (void)d;
  return 0;
}

/* One finished cosine (i, j) through the scan's epilogues. */
static void visit(engram_sim_scan *s, size_t i, size_t j, float c)
{
  if (s->mode & SCAN_MATRIX) {
    s->out[i * s->ldo + j] = c;
    if (s->symmetric)
      s->out[j * s->ldo + i] = c;
  }
  if (i == j && s->symmetric)
    return;
  if ((s->mode & SCAN_PAIRS) && c >= s->threshold)
    engram_sim_emit_pair(s, (uint32_t)i, (uint32_t)j, c);
  if (s->mode & SCAN_TOPK) {
    engram_sim_topk_push(s, i, (uint32_t)j, c);
    if (s->symmetric)
      engram_sim_topk_push(s, j, (uint32_t)i, c);
  }
}

void engram_sim_scan_scalar(engram_sim_scan *s)
{
  for (size_t i = 0; i < s->na; i++) {
    const float *ai = s->a + i * s->d;
    for (size_t j = s->symmetric ? i : 0; j < s->nb; j++) {
      float c;
      if (s->symmetric && i == j)
        c = s->inv_a[i] != 0.0f ? 1.0f : 0.0f;
      else
        c = engram_sim_finish((float)dot_d(ai, s->b + j * s->d, s->d), s->inv_a[i], s->inv_b[j]);
      visit(s, i, j, c);
    }
  }
}
