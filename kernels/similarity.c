/*
 * similarity.c — cosine similarity: argument checks, scratch, and the shared epilogue pieces
 * (pair list, top-k heaps) of the blocked all-pairs scan. The arithmetic is in the ISA files
 * (similarity_scalar.c, similarity_avx2.c, similarity_avx512.c).
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#define WHO "similarity"

/* ---- epilogue pieces shared by every ISA ---------------------------------------------- */

void engram_sim_emit_pair(engram_sim_scan *s, uint32_t i, uint32_t j, float c)
{
  if (s->count < s->cap) {
    s->pairs[s->count].i = i;
    s->pairs[s->count].j = j;
    s->pairs[s->count].score = c;
  }
  s->count++;
}

/* The heap order: a lower score, or an equal score and a higher index, is worse. A total order,
 * so the k kept do not depend on the order in which the blocked pass offers them. */
static inline int worse(float sa, uint32_t ia, float sb, uint32_t ib)
{
  return sa < sb || (sa == sb && ia > ib);
}

void engram_sim_topk_push(engram_sim_scan *s, size_t row, uint32_t j, float c)
{
  size_t k = s->k;
  float *sc = s->score + row * k;
  uint32_t *ix = s->idx + row * k;
  if (!worse(sc[0], ix[0], c, j))   /* not better than the worst kept */
    return;
  size_t at = 0;                    /* sift the new entry down from the root */
  for (;;) {
    size_t l = 2 * at + 1, r = l + 1, m = at;
    float ms = c;
    uint32_t mi = j;
    if (l < k && worse(sc[l], ix[l], ms, mi)) {
      m = l;
      ms = sc[l];
      mi = ix[l];
    }
    if (r < k && worse(sc[r], ix[r], ms, mi))
      m = r;
    if (m == at)
      break;
    sc[at] = sc[m];
    ix[at] = ix[m];
    at = m;
  }
  sc[at] = c;
  ix[at] = j;
  s->kth[row] = sc[0];
}

/* Min-heap -> best first, in place (heap sort). */
static void topk_sort_row(float *sc, uint32_t *ix, size_t k)
{
  for (size_t end = k; end > 1; end--) {
    float ts = sc[0];
    uint32_t ti = ix[0];
    sc[0] = sc[end - 1];
    ix[0] = ix[end - 1];
    sc[end - 1] = ts;     /* the worst of the remaining goes last */
    ix[end - 1] = ti;
    size_t at = 0, n = end - 1;
    for (;;) {
      size_t l = 2 * at + 1, r = l + 1, m = at;
      if (l < n && worse(sc[l], ix[l], sc[m], ix[m]))
        m = l;
      if (r < n && worse(sc[r], ix[r], sc[m], ix[m]))
        m = r;
      if (m == at)
        break;
      float fs = sc[at];
      uint32_t fi = ix[at];
      sc[at] = sc[m];
      ix[at] = ix[m];
      sc[m] = fs;
      ix[m] = fi;
      at = m;
    }
  }
}

/* ---- front ends ------------------------------------------------------------------------ */

static int check_rows(const float *rows, size_t n, size_t d, const char *what)
{
  if (d == 0)
    return engram_fail(ENGRAM_EINVAL, WHO ": dimension d must be >= 1");
  if (n && !rows)
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL", what);
  size_t total;
  if (__builtin_mul_overflow(n, d, &total) || total > SIZE_MAX / sizeof(float))
    return engram_fail(ENGRAM_EOVERFLOW, WHO ": %zu x %zu floats overflows", n, d);
  return 0;
}

int engram_sim_norms(engram_arena *a, const float *rows, size_t n, size_t d, float *inv)
{
  int rc = check_rows(rows, n, d, "rows");
  if (rc)
    return rc;
  if (n && !inv)
    return engram_fail(ENGRAM_EINVAL, WHO ": inv is NULL");
  if (!engram_kernel_arena(a, WHO))
    return ENGRAM_ENOMEM;
  const engram_kernel_ops *k = engram_kernels_get(&rc);
  if (!k)
    return rc;
  if (n)
    k->sim_norms(rows, n, d, inv);
  return 0;
}

static int cosine(engram_arena *a, const float *query, const float *rows, const float *inv,
                  size_t n, size_t d, float *scores, int normed)
{
  int rc = check_rows(rows, n, d, "rows");
  if (rc)
    return rc;
  if (!query || (n && !scores) || (normed && n && !inv))
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL",
                       !query ? "query" : (n && !scores) ? "scores" : "inv");
  if (!engram_kernel_arena(a, WHO))
    return ENGRAM_ENOMEM;
  const engram_kernel_ops *k = engram_kernels_get(&rc);
  if (!k)
    return rc;
  if (n == 0)
    return 0;
  float qinv;
  k->sim_norms(query, 1, d, &qinv);
  if (qinv == 0.0f) {               /* a zero / NaN / Inf query scores 0 with everything */
    memset(scores, 0, n * sizeof *scores);
    return 0;
  }
  k->sim_cosine(query, qinv, rows, normed ? inv : NULL, n, d, scores);
  return 0;
}

int engram_sim_cosine(engram_arena *a, const float *query, const float *rows, size_t n, size_t d,
                      float *scores)
{
  return cosine(a, query, rows, NULL, n, d, scores, 0);
}

int engram_sim_cosine_normed(engram_arena *a, const float *query, const float *rows,
                             const float *inv, size_t n, size_t d, float *scores)
{
  return cosine(a, query, rows, inv, n, d, scores, 1);
}

/* Take the scan's scratch (norms when not given, the ISA's packing buffers, top-k bounds), run
 * it, give the scratch back. Outputs are written only once every allocation has succeeded. */
static int run_scan(engram_arena *a, engram_sim_scan *s)
{
  int rc;
  a = engram_kernel_arena(a, WHO);
  if (!a)
    return ENGRAM_ENOMEM;
  const engram_kernel_ops *k = engram_kernels_get(&rc);
  if (!k)
    return rc;
  engram_mark m = engram_arena_mark(a);
  rc = ENGRAM_EFULL;
  if (!s->inv_a) {
    size_t n = s->symmetric ? s->nb : s->na;   /* symmetric: a == b, na <= nb */
    float *inv = engram_kernel_scratch(a, n ? n : 1, sizeof(float), WHO);
    if (!inv)
      goto out;
    k->sim_norms(s->a, n, s->d, inv);
    s->inv_a = inv;
    if (s->symmetric)
      s->inv_b = inv;
  }
  if (!s->inv_b) {
    float *inv = engram_kernel_scratch(a, s->nb ? s->nb : 1, sizeof(float), WHO);
    if (!inv)
      goto out;
    k->sim_norms(s->b, s->nb, s->d, inv);
    s->inv_b = inv;
  }
  size_t need = k->sim_scan_scratch(s->d);
  s->scratch = need ? engram_kernel_scratch(a, need, 1, WHO) : NULL;
  if (need && !s->scratch)
    goto out;
  if (s->mode & SCAN_TOPK) {
    s->kth = engram_kernel_scratch(a, s->na ? s->na : 1, sizeof(float), WHO);
    if (!s->kth)
      goto out;
    for (size_t i = 0; i < s->na; i++)
      s->kth[i] = -INFINITY;
    for (size_t i = 0; i < s->na * s->k; i++) {
      s->score[i] = -INFINITY;
      s->idx[i] = UINT32_MAX;
    }
  }
  k->sim_scan(s);
  if (s->mode & SCAN_TOPK)
    for (size_t i = 0; i < s->na; i++)
      topk_sort_row(s->score + i * s->k, s->idx + i * s->k, s->k);
  rc = 0;
out:
  engram_arena_rewind(a, m);
  return rc;
}

int engram_sim_matrix(engram_arena *a, const float *rows, const float *inv, size_t n, size_t d,
                      float *out)
{
  int rc = check_rows(rows, n, d, "rows");
  if (rc)
    return rc;
  if (n && !out)
    return engram_fail(ENGRAM_EINVAL, WHO ": out is NULL");
  engram_sim_scan s = { .a = rows, .b = rows, .inv_a = inv, .inv_b = inv, .na = n, .nb = n,
                        .d = d, .symmetric = 1, .mode = SCAN_MATRIX, .out = out, .ldo = n };
  return run_scan(a, &s);
}

int engram_sim_cross(engram_arena *a, const float *arows, const float *inv_a, size_t na,
                     const float *brows, const float *inv_b, size_t nb, size_t d, float *out)
{
  int rc = check_rows(arows, na, d, "arows");
  if (rc || (rc = check_rows(brows, nb, d, "brows")))
    return rc;
  if (na && nb && !out)
    return engram_fail(ENGRAM_EINVAL, WHO ": out is NULL");
  engram_sim_scan s = { .a = arows, .b = brows, .inv_a = inv_a, .inv_b = inv_b, .na = na,
                        .nb = nb, .d = d, .symmetric = 0, .mode = SCAN_MATRIX, .out = out,
                        .ldo = nb };
  return run_scan(a, &s);
}

static int pairs(engram_arena *a, const float *rows, const float *inv, size_t n, size_t total, size_t d,
                 float threshold, engram_sim_pair *out, size_t cap, size_t *count)
{
  int rc = check_rows(rows, total, d, "rows");
  if (rc)
    return rc;
  if (!count || (cap && !out))
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL", !count ? "count" : "out");
  if (n > total)
    return engram_fail(ENGRAM_EINVAL, WHO ": %zu rows of %zu (expected n <= total)", n, total);
  if (total > UINT32_MAX)
    return engram_fail(ENGRAM_EINVAL, WHO ": %zu rows (pairs need n < 2^32)", total);
  if (threshold != threshold)
    return engram_fail(ENGRAM_EINVAL, WHO ": threshold is NaN");
  engram_sim_scan s = { .a = rows, .b = rows, .inv_a = inv, .inv_b = inv, .na = n, .nb = total,
                        .d = d, .symmetric = 1, .mode = SCAN_PAIRS, .threshold = threshold,
                        .pairs = out, .cap = cap };
  *count = 0;
  rc = run_scan(a, &s);
  if (rc)
    return rc;
  *count = s.count;
  if (s.count > cap)
    return engram_fail(ENGRAM_EFULL, WHO ": %zu pairs found, room for %zu (the first %zu are kept)",
                       s.count, cap, cap);
  return 0;
}

int engram_sim_pairs(engram_arena *a, const float *rows, const float *inv, size_t n, size_t d,
                     float threshold, engram_sim_pair *out, size_t cap, size_t *count)
{
  return pairs(a, rows, inv, n, n, d, threshold, out, cap, count);
}

int engram_sim_pairs_prefix(engram_arena *a, const float *rows, const float *inv, size_t n, size_t total,
                            size_t d, float threshold, engram_sim_pair *out, size_t cap, size_t *count)
{
  return pairs(a, rows, inv, n, total, d, threshold, out, cap, count);
}

int engram_sim_topk(engram_arena *a, const float *rows, const float *inv, size_t n, size_t d,
                    size_t k, uint32_t *idx, float *score)
{
  int rc = check_rows(rows, n, d, "rows");
  if (rc)
    return rc;
  if (k == 0)
    return engram_fail(ENGRAM_EINVAL, WHO ": k must be >= 1");
  if (n && (!idx || !score))
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL", !idx ? "idx" : "score");
  size_t nk;
  if (n > UINT32_MAX || __builtin_mul_overflow(n, k, &nk))
    return engram_fail(ENGRAM_EINVAL, WHO ": %zu rows x k %zu is too large", n, k);
  engram_sim_scan s = { .a = rows, .b = rows, .inv_a = inv, .inv_b = inv, .na = n, .nb = n,
                        .d = d, .symmetric = 1, .mode = SCAN_TOPK, .k = k, .idx = idx,
                        .score = score };
  return run_scan(a, &s);
}

/* Elementwise over d: vectorised by the compiler at -O2 (no reduction, restrict operands). */
static void add_scaled(float *restrict out, const float *restrict row, float w, size_t d)
{
  for (size_t k = 0; k < d; k++)
    out[k] += row[k] * w;
}

int engram_sim_centroid(const float *rows, const float *inv, size_t d, const uint32_t *members, size_t m,
                        float *out, float *norm)
{
  if (d == 0)
    return engram_fail(ENGRAM_EINVAL, WHO ": dimension is 0");
  if (!out || !norm || (m && (!rows || !inv || !members)))
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL",
                       !out ? "out" : !norm ? "norm" : !rows ? "rows" : !inv ? "inv" : "members");
  memset(out, 0, d * sizeof *out);
  *norm = 0;
  if (m == 0)
    return 0;
  for (size_t i = 0; i < m; i++)
    if (inv[members[i]] != 0.0f)
      add_scaled(out, rows + (size_t)members[i] * d, inv[members[i]] / (float)m, d);
  double nn = 0;
  for (size_t k = 0; k < d; k++)
    nn += (double)out[k] * out[k];
  *norm = (float)sqrt(nn);
  return 0;
}
