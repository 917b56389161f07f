/*
 * test_similarity.c — cosine kernels: every ISA against a double-precision reference and
 * against the scalar variant; the contract on zero / NaN / Inf / tiny / huge vectors; the
 * blocked pass (matrix, cross, pairs, top-k) across block and tile boundaries; errors.
 */
#include "test.h"

#include "engram.h"

#include <math.h>
#include <stdlib.h>

/* ---- per-ISA test instances -------------------------------------------------------------- */

#include "test_isa.h"

static uint64_t rng;

static float frand(void)   /* uniform in [-1, 1) */
{
  return (float)((double)(test_rand(&rng) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static engram_arena *arena;

/* ---- references ---------------------------------------------------------------------------- */

static double norm2_ref(const float *v, size_t d)
{
  double s = 0;
  for (size_t k = 0; k < d; k++)
    s += (double)v[k] * v[k];
  return s;
}

static int scores_zero(const float *v, size_t d)
{
  double s = norm2_ref(v, d);
  return !(s >= 1e-30 && s <= 3.4028234663852886e38);
}

static double cos_ref(const float *a, const float *b, size_t d)
{
  if (scores_zero(a, d) || scores_zero(b, d))
    return 0.0;
  double ab = 0;
  for (size_t k = 0; k < d; k++)
    ab += (double)a[k] * b[k];
  double c = ab / sqrt(norm2_ref(a, d) * norm2_ref(b, d));
  return c > 1 ? 1 : c < -1 ? -1 : c;
}

static double tol(size_t d)
{
  return 1e-5 + 0x1.0p-23 * sqrt((double)d);
}

/* ---- 1 x N -------------------------------------------------------------------------------- */

/* n = 0 .. 2*16+1 rows, d = 1 .. 2*16+1 and 768, rows starting one float off alignment. */
ISA_TESTS(cosine_matches_reference)
static void cosine_matches_reference(void)
{
  size_t dims[] = { 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 768 };
  float *buf = malloc((33 * 768 + 2) * sizeof(float));
  float *q = malloc((768 + 1) * sizeof(float));
  float *inv = malloc(34 * sizeof(float));
  float *sc = malloc(35 * sizeof(float)), *sc2 = malloc(35 * sizeof(float));
  float *rows = buf + 1;                      /* misaligned start */
  double worst = 0;
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
    size_t d = dims[di];
    for (size_t k = 0; k < d; k++)
      q[1 + k] = frand();
    for (size_t n = 0; n <= 33; n++) {
      for (size_t i = 0; i < n * d; i++)
        rows[i] = frand();
      sc[n] = 42.0f;                          /* guard: nothing written past n */
      CHECK_EQ(engram_sim_cosine(arena, q + 1, rows, n, d, sc), 0);
      CHECK_EQ(engram_sim_norms(arena, rows, n, d, inv), 0);
      CHECK_EQ(engram_sim_cosine_normed(NULL, q + 1, rows, inv, n, d, sc2), 0);
      CHECK(sc[n] == 42.0f);
      for (size_t i = 0; i < n; i++) {
        double r = cos_ref(q + 1, rows + i * d, d);
        double e = fabs(sc[i] - r), e2 = fabs(sc2[i] - r);
        worst = fmax(worst, fmax(e, e2));
        if (e > tol(d) || e2 > tol(d)) {
          CHECK(e <= tol(d) && e2 <= tol(d));
          printf("    d=%zu n=%zu i=%zu got %.9g / %.9g want %.9g\n", d, n, i, sc[i], sc2[i], r);
          goto done;
        }
        CHECK(sc[i] >= -1.0f && sc[i] <= 1.0f);
      }
    }
  }
done:
  printf("    max |error| vs double: %.3g\n", worst);
  free(buf), free(q), free(inv), free(sc), free(sc2);
}

/* The contract on vectors that score 0, on clamping, and on the query. */
ISA_TESTS(cosine_contract)
static void cosine_contract(void)
{
  enum { D = 768, N = 11 };
  float *rows = malloc(N * D * sizeof(float)), q[D], sc[N], inv[N];
  for (size_t i = 0; i < N * D; i++)
    rows[i] = frand();
  for (size_t k = 0; k < D; k++)
    q[k] = rows[k];                           /* row 0 == query: cos 1 */
  for (size_t k = 0; k < D; k++) {
    rows[1 * D + k] = 0.0f;                   /* zero vector */
    rows[4 * D + k] = 1e-20f * frand();       /* ||v||^2 ~ 1e-38 < 1e-30 */
    rows[5 * D + k] = 1e20f;                  /* sum of squares overflows float */
    rows[6 * D + k] = 1e-40f;                 /* subnormal components */
    rows[7 * D + k] = -q[k] * 3.0f;           /* opposite: -1 */
    rows[8 * D + k] = q[k] * 1e10f;           /* scaled: 1 */
  }
  rows[2 * D + 17] = NAN;
  rows[3 * D + 700] = INFINITY;
  CHECK_EQ(engram_sim_cosine(arena, q, rows, N, D, sc), 0);
  CHECK(sc[0] <= 1.0f && sc[0] > 0.99999f);
  for (int i = 1; i <= 6; i++) {
    CHECK(sc[i] == 0.0f);
    if (sc[i] != 0.0f)
      printf("    row %d scored %g\n", i, sc[i]);
  }
  CHECK(sc[7] >= -1.0f && sc[7] < -0.99999f);
  CHECK(sc[8] <= 1.0f && sc[8] > 0.99999f);
  CHECK_EQ(engram_sim_norms(arena, rows, N, D, inv), 0);
  for (int i = 1; i <= 6; i++)
    CHECK(inv[i] == 0.0f);
  CHECK(inv[0] > 0.0f);

  /* a query that scores 0 gives 0 with everything */
  float zq[D] = { 0 }, nq[D];
  for (size_t k = 0; k < D; k++)
    nq[k] = q[k];
  nq[3] = NAN;
  CHECK_EQ(engram_sim_cosine(arena, zq, rows, N, D, sc), 0);
  for (int i = 0; i < N; i++)
    CHECK(sc[i] == 0.0f);
  CHECK_EQ(engram_sim_cosine_normed(arena, nq, rows, inv, N, D, sc), 0);
  for (int i = 0; i < N; i++)
    CHECK(sc[i] == 0.0f);
  free(rows);
}

/* Every ISA against the scalar variant on the same data, 1 x N. */
TEST(isa_variants_agree_with_scalar)
{
  enum { D = 300, N = 257 };
  float *rows = malloc(N * D * sizeof(float)), q[D], ref[N], got[N];
  for (size_t i = 0; i < N * D; i++)
    rows[i] = frand();
  for (size_t k = 0; k < D; k++)
    q[k] = frand();
  engram_kernel_set_isa(ENGRAM_ISA_SCALAR);
  CHECK_EQ(engram_sim_cosine(arena, q, rows, N, D, ref), 0);
  for (int isa = ENGRAM_ISA_AVX2; isa <= ENGRAM_ISA_AVX512; isa++) {
    if (!engram_kernel_isa_supported(isa)) {
      printf("    %s: not supported by this CPU, not compared\n", engram_kernel_isa_name(isa));
      continue;
    }
    engram_kernel_set_isa(isa);
    CHECK_EQ(engram_sim_cosine(arena, q, rows, N, D, got), 0);
    double worst = 0;
    for (int i = 0; i < N; i++)
      worst = fmax(worst, fabs(got[i] - ref[i]));
    printf("    %s vs scalar: max |diff| %.3g\n", engram_kernel_isa_name(isa), worst);
    CHECK(worst <= 2e-6);
  }
  free(rows);
}

/* ---- the blocked pass ---------------------------------------------------------------------- */

/* Batches with structure: clusters around a few centres, so that high cosines occur. */
static void clustered(float *rows, size_t n, size_t d, int special)
{
  size_t centres = 5;
  float *c = malloc(centres * d * sizeof(float));
  for (size_t i = 0; i < centres * d; i++)
    c[i] = frand();
  for (size_t i = 0; i < n; i++) {
    size_t ci = test_rand(&rng) % centres;
    double spread = 0.1 + 0.6 * (double)(test_rand(&rng) % 100) / 100.0;
    for (size_t k = 0; k < d; k++)
      rows[i * d + k] = c[ci * d + k] + (float)spread * frand();
  }
  if (special && n > 7) {
    for (size_t k = 0; k < d; k++)
      rows[3 * d + k] = 0.0f;
    rows[5 * d + d / 2] = NAN;
    rows[7 * d] = INFINITY;
  }
  free(c);
}

ISA_TESTS(matrix_matches_reference)
static void matrix_matches_reference(void)
{
  size_t ns[] = { 0, 1, 2, 5, 17, 33, 70, 150 };
  size_t ds[] = { 1, 7, 33, 300 };
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof ds / sizeof *ds; b++) {
      size_t n = ns[a], d = ds[b];
      float *buf = malloc((n * d + 1) * sizeof(float)), *rows = buf + 1;
      float *out = malloc((n * n + 1) * sizeof(float));
      clustered(rows, n, d, 1);
      out[n * n] = 42.0f;
      CHECK_EQ(engram_sim_matrix(arena, rows, NULL, n, d, out), 0);
      CHECK(out[n * n] == 42.0f);
      int bad = 0;
      for (size_t i = 0; i < n && !bad; i++)
        for (size_t j = 0; j < n && !bad; j++) {
          double want = i == j ? (scores_zero(rows + i * d, d) ? 0.0 : 1.0)
                               : cos_ref(rows + i * d, rows + j * d, d);
          float got = out[i * n + j];
          if (fabs(got - want) > tol(d) || got != out[j * n + i] || got < -1.0f || got > 1.0f) {
            printf("    n=%zu d=%zu (%zu,%zu): got %.9g (mirror %.9g) want %.9g\n", n, d, i, j,
                   got, out[j * n + i], want);
            bad = 1;
          }
        }
      CHECK(!bad);
      free(buf), free(out);
    }
}

ISA_TESTS(cross_matches_reference)
static void cross_matches_reference(void)
{
  size_t d = 45, na = 13, nb = 131;
  float *a = malloc(na * d * sizeof(float)), *b = malloc(nb * d * sizeof(float));
  float *out = malloc(na * nb * sizeof(float)), *ib = malloc(nb * sizeof(float));
  clustered(a, na, d, 0);
  clustered(b, nb, d, 1);
  CHECK_EQ(engram_sim_norms(arena, b, nb, d, ib), 0);
  CHECK_EQ(engram_sim_cross(arena, a, NULL, na, b, ib, nb, d, out), 0);
  int bad = 0;
  for (size_t i = 0; i < na; i++)
    for (size_t j = 0; j < nb; j++)
      if (fabs(out[i * nb + j] - cos_ref(a + i * d, b + j * d, d)) > tol(d))
        bad++;
  CHECK_EQ(bad, 0);
  free(a), free(b), free(out), free(ib);
}

static int pair_cmp(const void *x, const void *y)
{
  const engram_sim_pair *p = x, *q = y;
  if (p->i != q->i)
    return p->i < q->i ? -1 : 1;
  return p->j < q->j ? -1 : p->j > q->j;
}

/* The pairs (i, j), i < n, i < j < total, >= tau from engram_sim_pairs_prefix (total == n:
 * engram_sim_pairs): the same set as the reference (pairs within 1e-5 of tau may go either way).
 * Returns the number found. */
static size_t check_pairs(const float *rows, size_t n, size_t total, size_t d, float tau, const float *inv)
{
  size_t cap = n * (n > 0 ? n - 1 : 0) / 2 + n * (total - n), count = 0;
  engram_sim_pair *pairs = malloc((cap ? cap : 1) * sizeof *pairs);
  if (total == n)
    CHECK_EQ(engram_sim_pairs(arena, rows, inv, n, d, tau, pairs, cap, &count), 0);
  else
    CHECK_EQ(engram_sim_pairs_prefix(arena, rows, inv, n, total, d, tau, pairs, cap, &count), 0);
  qsort(pairs, count < cap ? count : cap, sizeof *pairs, pair_cmp);
  size_t at = 0, missing = 0, extra = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < total; j++) {
      double c = cos_ref(rows + i * d, rows + j * d, d);
      int found = at < count && pairs[at].i == i && pairs[at].j == j;
      if (found) {
        if (fabs(pairs[at].score - c) > tol(d))
          extra++;
        at++;
      }
      if (c >= tau + 1e-5)
        missing += !found;
      else if (c < tau - 1e-5)
        extra += found;
    }
  CHECK_EQ(missing, 0);
  CHECK_EQ(extra, 0);
  CHECK_EQ(at, count);
  free(pairs);
  return count;
}

ISA_TESTS(pairs_match_reference)
static void pairs_match_reference(void)
{
  size_t n = 211, d = 300;
  float tau = 0.6f;
  float *rows = malloc(n * d * sizeof(float));
  clustered(rows, n, d, 1);
  size_t count = check_pairs(rows, n, n, d, tau, NULL);
  printf("    %zu pairs >= %.2f among %zu rows\n", count, tau, n);
  CHECK(count > 100);

  /* a buffer too small: EFULL, the full count, the first cap pairs kept and valid */
  size_t small = 10, count2 = 0;
  engram_sim_pair few[10];
  CHECK_EQ(engram_sim_pairs(arena, rows, NULL, n, d, tau, few, small, &count2), ENGRAM_EFULL);
  CHECK_EQ(count2, count);
  CHECK_CONTAINS(engram_last_error(), "similarity: ");
  CHECK_CONTAINS(engram_last_error(), "pairs found, room for 10");
  for (size_t p = 0; p < small; p++)
    CHECK(few[p].i < few[p].j && few[p].j < n && few[p].score >= tau);
  free(rows);
}

/* A prefix against itself and the rest, at sizes around the tile and block edges (6 x 16 tiles,
 * blocks of 64 columns), with and without precomputed norms, and a zero row in each part. */
ISA_TESTS(prefix_pairs_match_reference)
static void prefix_pairs_match_reference(void)
{
  static const size_t cases[][2] = { { 0, 0 }, { 0, 7 }, { 1, 1 }, { 1, 2 }, { 1, 40 }, { 5, 6 }, { 7, 23 },
                                     { 16, 17 }, { 63, 130 }, { 64, 65 }, { 100, 164 }, { 97, 100 } };
  size_t d = 67, total_max = 164;
  float *rows = malloc(total_max * d * sizeof(float)), *inv = malloc(total_max * sizeof(float));
  clustered(rows, total_max, d, 3);
  size_t found = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    size_t n = cases[c][0], total = cases[c][1];
    if (n > 2)
      memset(rows + 2 * d, 0, d * sizeof(float));        /* a zero row in the prefix */
    if (total > n + 1)
      memset(rows + (n + 1) * d, 0, d * sizeof(float));  /* and one after it */
    CHECK_EQ(engram_sim_norms(arena, rows, total, d, inv), 0);
    found += check_pairs(rows, n, total, d, 0.5f, NULL);
    found += check_pairs(rows, n, total, d, 0.5f, inv);
    clustered(rows, total_max, d, 3);
  }
  CHECK(found > 1000);
  size_t count = 0;
  CHECK_EQ(engram_sim_pairs_prefix(arena, rows, NULL, 5, 4, d, 0.5f, NULL, 0, &count), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: 5 rows of 4 (expected n <= total)");
  free(rows), free(inv);
}

ISA_TESTS(topk_matches_reference)
static void topk_matches_reference(void)
{
  size_t n = 173, d = 65, k = 7;
  float *rows = malloc(n * d * sizeof(float)), *score = malloc(n * k * sizeof(float));
  uint32_t *idx = malloc(n * k * sizeof(uint32_t));
  double *ref = malloc(n * sizeof(double));
  clustered(rows, n, d, 1);
  CHECK_EQ(engram_sim_topk(arena, rows, NULL, n, d, k, idx, score), 0);
  int bad = 0;
  for (size_t i = 0; i < n && !bad; i++) {
    for (size_t j = 0; j < n; j++)
      ref[j] = j == i ? -INFINITY : cos_ref(rows + i * d, rows + j * d, d);
    /* the k-th best reference score bounds what may be missing */
    for (size_t r = 0; r < k; r++) {
      uint32_t j = idx[i * k + r];
      if (j >= n || j == i || fabs(score[i * k + r] - ref[j]) > tol(d) ||
          (r > 0 && score[i * k + r] > score[i * k + r - 1])) {
        bad = 1;
        break;
      }
    }
    float last = score[i * k + k - 1];
    for (size_t j = 0; j < n && !bad; j++) {
      int kept = 0;
      for (size_t r = 0; r < k; r++)
        kept |= idx[i * k + r] == j;
      if (!kept && j != i && ref[j] > last + 2 * tol(d))
        bad = 1;                              /* a clearly better row was left out */
    }
    if (bad)
      printf("    row %zu: top-k differs from the reference\n", i);
  }
  CHECK(!bad);

  /* fewer than k other rows: padding */
  uint32_t idx3[3 * 5];
  float sc3[3 * 5];
  CHECK_EQ(engram_sim_topk(arena, rows, NULL, 3, d, 5, idx3, sc3), 0);
  for (int i = 0; i < 3; i++) {
    CHECK(idx3[i * 5 + 0] != UINT32_MAX && idx3[i * 5 + 1] != UINT32_MAX);
    CHECK(idx3[i * 5 + 2] == UINT32_MAX && sc3[i * 5 + 2] == -INFINITY);
    CHECK(idx3[i * 5 + 4] == UINT32_MAX);
  }
  free(rows), free(score), free(idx), free(ref);
}

/* ---- scratch, errors, dispatch ------------------------------------------------------------- */

TEST(scratch_is_rewound_and_exhaustion_is_reported)
{
  size_t n = 100, d = 768;
  float *rows = malloc(n * d * sizeof(float)), *out = malloc(n * n * sizeof(float));
  clustered(rows, n, d, 0);
  engram_kernel_set_isa(ENGRAM_ISA_AUTO);
  void *before = engram_arena_alloc(arena, 8);
  size_t used = engram_arena_used(arena);
  CHECK_EQ(engram_sim_matrix(arena, rows, NULL, n, d, out), 0);
  CHECK_EQ(engram_arena_used(arena), used);

  engram_arena_config cfg = { .size = 64 << 10, .align = 16, .overflow = ENGRAM_OVERFLOW_ERROR };
  engram_arena *small = engram_arena_create(&cfg);
  out[0] = 7.0f;
  CHECK_EQ(engram_sim_matrix(small, rows, NULL, n, d, out), ENGRAM_EFULL);
  CHECK_CONTAINS(engram_last_error(), "similarity: scratch of ");
  CHECK_CONTAINS(engram_last_error(), "does not fit the arena");
  CHECK(out[0] == 7.0f);                      /* nothing written */
  CHECK_EQ(engram_arena_used(small), 0);
  engram_arena_destroy(small);
  (void)before;
  free(rows), free(out);
}

TEST(bad_arguments_are_errors)
{
  float v[4] = { 1, 2, 3, 4 }, s[1];
  size_t count;
  CHECK_EQ(engram_sim_cosine(arena, v, v, 1, 0, s), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: dimension d must be >= 1");
  CHECK_EQ(engram_sim_cosine(arena, NULL, v, 1, 4, s), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: query is NULL");
  CHECK_EQ(engram_sim_cosine_normed(arena, v, v, NULL, 1, 4, s), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: inv is NULL");
  CHECK_EQ(engram_sim_pairs(arena, v, NULL, 1, 4, NAN, NULL, 0, &count), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: threshold is NaN");
  CHECK_EQ(engram_sim_topk(arena, v, NULL, 1, 4, 0, NULL, NULL), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: k must be >= 1");
  CHECK_EQ(engram_sim_cosine(arena, v, v, SIZE_MAX / 2, 4, s), ENGRAM_EOVERFLOW);
}

TEST(centroid_is_the_mean_unit_vector_and_its_norm_the_mean_cosine)
{
  enum { N = 40, D = 37 };
  static float rows[N * D], inv[N], out[D];
  for (int i = 0; i < N * D; i++)
    rows[i] = frand();
  for (int k = 0; k < D; k++)
    rows[3 * D + k] = 0.0f;                     /* a degenerate member: a zero vector */
  CHECK_EQ(engram_sim_norms(arena, rows, N, D, inv), 0);
  uint32_t members[] = { 5, 3, 17, 39, 0, 22 };
  size_t m = sizeof members / sizeof members[0];
  float norm;
  CHECK_EQ(engram_sim_centroid(rows, inv, D, members, m, out, &norm), 0);
  double ref[D] = { 0 }, nn = 0, cos_sum = 0;
  for (size_t i = 0; i < m; i++) {
    double r = norm2_ref(rows + members[i] * D, D);
    for (int k = 0; k < D; k++)
      ref[k] += r > 0 ? rows[members[i] * D + k] / sqrt(r) / (double)m : 0;
  }
  for (int k = 0; k < D; k++) {
    CHECK(fabs(out[k] - ref[k]) <= 1e-6);
    nn += ref[k] * ref[k];
  }
  for (size_t i = 0; i < m; i++) {                /* the mean cosine, the long way */
    const float *v = rows + members[i] * D;
    double dot = 0, r = norm2_ref(v, D);
    for (int k = 0; k < D; k++)
      dot += v[k] * ref[k];
    cos_sum += r > 0 ? dot / sqrt(r * nn) : 0;
  }
  CHECK(fabs(norm - sqrt(nn)) <= 1e-6);
  CHECK(fabs(norm - cos_sum / (double)m) <= 1e-6);
  /* no members: zeros; bad arguments: errors */
  CHECK_EQ(engram_sim_centroid(rows, inv, D, members, 0, out, &norm), 0);
  CHECK(out[0] == 0.0f && norm == 0.0f);
  CHECK_EQ(engram_sim_centroid(rows, inv, 0, members, m, out, &norm), ENGRAM_EINVAL);
  CHECK_EQ(engram_sim_centroid(rows, NULL, D, members, m, out, &norm), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "similarity: inv is NULL");
}

TEST(isa_selection_is_explicit)
{
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_SCALAR), "scalar");
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_AVX2), "avx2");
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_AVX512), "avx512");
  CHECK_STR(engram_kernel_isa_name(9), "unknown");
  CHECK_EQ(engram_kernel_isa_supported(ENGRAM_ISA_SCALAR), 1);
  CHECK_EQ(engram_kernel_set_isa(7), ENGRAM_EINVAL);
  CHECK_CONTAINS(engram_last_error(), "kernels: unknown isa 7");
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_SCALAR), 0);
  CHECK_EQ(engram_kernel_isa(), ENGRAM_ISA_SCALAR);
  if (!engram_kernel_isa_supported(ENGRAM_ISA_AVX512)) {
    CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AVX512), ENGRAM_ENOTSUP);
    CHECK_STR(engram_last_error(), "kernels: this CPU does not support avx512");
    CHECK_EQ(engram_kernel_isa(), ENGRAM_ISA_SCALAR);   /* unchanged */
  }

  /* a bad ENGRAM_ISA is an error for every kernel, not a silent fallback */
  float v[4] = { 1, 2, 3, 4 }, inv[1];
  setenv("ENGRAM_ISA", "sse9", 1);
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AUTO), ENGRAM_ECONFIG);
  CHECK_EQ(engram_kernel_isa(), ENGRAM_ECONFIG);
  CHECK_EQ(engram_sim_norms(arena, v, 1, 4, inv), ENGRAM_ECONFIG);
  CHECK_STR(engram_last_error(), "kernels: bad ENGRAM_ISA 'sse9' (expected scalar, avx2 or avx512)");
  if (!engram_kernel_isa_supported(ENGRAM_ISA_AVX512)) {
    setenv("ENGRAM_ISA", "avx512", 1);
    CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AUTO), ENGRAM_ENOTSUP);
    CHECK_EQ(engram_sim_norms(arena, v, 1, 4, inv), ENGRAM_ENOTSUP);
    CHECK_STR(engram_last_error(), "kernels: ENGRAM_ISA=avx512 but this CPU does not support avx512");
  }
  setenv("ENGRAM_ISA", "scalar", 1);
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AUTO), 0);
  CHECK_EQ(engram_kernel_isa(), ENGRAM_ISA_SCALAR);
  unsetenv("ENGRAM_ISA");
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AUTO), 0);
  int best = engram_kernel_isa_supported(ENGRAM_ISA_AVX512) ? ENGRAM_ISA_AVX512
             : engram_kernel_isa_supported(ENGRAM_ISA_AVX2) ? ENGRAM_ISA_AVX2 : ENGRAM_ISA_SCALAR;
  CHECK_EQ(engram_kernel_isa(), best);
}

int main(void)
{
  rng = test_seed("similarity");
  engram_arena_config cfg = { .size = 16 << 20, .align = 16, .overflow = ENGRAM_OVERFLOW_ERROR };
  arena = engram_arena_create(&cfg);
  RUN_ISA(cosine_matches_reference);
  RUN_ISA(cosine_contract);
  RUN(isa_variants_agree_with_scalar);
  RUN_ISA(matrix_matches_reference);
  RUN_ISA(cross_matches_reference);
  RUN_ISA(pairs_match_reference);
  RUN_ISA(prefix_pairs_match_reference);
  RUN_ISA(topk_matches_reference);
  RUN(scratch_is_rewound_and_exhaustion_is_reported);
  RUN(bad_arguments_are_errors);
  RUN(centroid_is_the_mean_unit_vector_and_its_norm_the_mean_cosine);
  RUN(isa_selection_is_explicit);
  engram_arena_destroy(arena);
  return test_done();
}
