/*
 * test_spread.c — spreading activation against plain references that take explicit edge
 * sources (an edge list, not CSR): star, chain, cycle, self-loop and random graphs with very
 * uneven degrees, both modes; graph validation, errors that leave act unchanged, scratch.
 * The iterative mode runs once per ISA variant (test_isa.h): each is compared with the plain
 * reference and, bit for bit, with the scalar variant (every variant adds the same rounded
 * products in the same order).
 */
#include "test.h"
#include "test_isa.h"

#include "engram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng;
static engram_arena *arena;

typedef struct edge {
  uint32_t s, t;
  float w;
} edge;

/* A graph as an edge list and as CSR built from it (edges kept in list order per source). */
typedef struct graph {
  size_t n, m;
  edge *e;
  uint32_t *off, *tg;
  float *w;
  engram_csr csr;
} graph;

static int by_source(const void *a, const void *b)
{
  const edge *x = a, *y = b;
  return x->s < y->s ? -1 : x->s > y->s;
}

static void build(graph *g)
{
  qsort(g->e, g->m, sizeof *g->e, by_source);   /* not stable, but the list is then the order */
  g->off = calloc(g->n + 1, sizeof *g->off);
  g->tg = malloc((g->m + 1) * sizeof *g->tg);
  g->w = malloc((g->m + 1) * sizeof *g->w);
  for (size_t i = 0; i < g->m; i++) {
    g->off[g->e[i].s + 1]++;
    g->tg[i] = g->e[i].t;
    g->w[i] = g->e[i].w;
  }
  for (size_t s = 0; s < g->n; s++)
    g->off[s + 1] += g->off[s];
  g->csr = (engram_csr){ .n = g->n, .nedges = g->m, .offsets = g->off, .targets = g->tg,
                         .weights = g->w };
}

static void release(graph *g)
{
  free(g->e), free(g->off), free(g->tg), free(g->w);
}

static graph make_graph(size_t n, size_t m)
{
  graph g = { .n = n, .m = 0, .e = malloc((m + 1) * sizeof(edge)) };
  return g;
}

static void add(graph *g, uint32_t s, uint32_t t, float w)
{
  g->e[g->m++] = (edge){ s, t, w };
}

static float wrand(void)
{
  return (float)((double)(test_rand(&rng) % 1000000) / 1000000.0 * 0.9 + 0.1);
}

static graph star(size_t n)
{
  graph g = make_graph(n, n);
  for (uint32_t i = 1; i < n; i++)
    add(&g, 0, i, 0.5f + 0.5f * (float)i / (float)n);
  build(&g);
  return g;
}

static graph chain(size_t n)
{
  graph g = make_graph(n, n);
  for (uint32_t i = 0; i + 1 < n; i++)
    add(&g, i, i + 1, 0.9f);
  build(&g);
  return g;
}

static graph cycle(size_t n)
{
  graph g = make_graph(n, n);
  for (uint32_t i = 0; i < n; i++)
    add(&g, i, (uint32_t)((i + 1) % n), 0.8f);
  build(&g);
  return g;
}

/* Degrees from 0 to 40 (a few hubs), repeated targets and self-loops allowed. */
static graph random_graph(size_t n)
{
  size_t cap = n * 41;
  graph g = make_graph(n, cap);
  for (uint32_t s = 0; s < n; s++) {
    uint64_t r = test_rand(&rng) % 100;
    size_t deg = r < 20 ? 0 : r < 90 ? 1 + r % 6 : 20 + r % 21;
    for (size_t k = 0; k < deg; k++)
      add(&g, s, (uint32_t)(test_rand(&rng) % n), wrand());
  }
  build(&g);
  return g;
}

/* ---- references ---------------------------------------------------------------------------- */

static void iterate_ref(const graph *g, float *act, unsigned iters)
{
  float *prev = malloc(g->n * sizeof(float));
  for (unsigned it = 0; it < iters; it++) {
    memcpy(prev, act, g->n * sizeof(float));
    for (size_t i = 0; i < g->m; i++)
      if (prev[g->e[i].s] != 0.0f)
        act[g->e[i].t] += prev[g->e[i].s] * g->e[i].w;
    float mx = 0.0f;
    for (size_t i = 0; i < g->n; i++)
      mx = act[i] > mx ? act[i] : mx;
    if (mx > 1.0f)
      for (size_t i = 0; i < g->n; i++)
        act[i] /= mx;
  }
  free(prev);
}

/* The documented bounded semantics with dense arrays and sources in node order. touched[v]
 * is set for every node whose activation is read. */
static void bounded_ref(const graph *g, const uint32_t *seeds, const float *sv, size_t ns,
                        const engram_spread_params *p, float *act, char *touched)
{
  size_t n = g->n;
  float *pulse = calloc(n, sizeof(float)), *sum = calloc(n, sizeof(float));
  char *got = calloc(n, 1);
  memset(touched, 0, n);
  for (size_t i = 0; i < ns; i++) {
    sum[seeds[i]] += sv ? sv[i] : 1.0f;
    got[seeds[i]] = 1;
    touched[seeds[i]] = 1;
  }
  for (size_t v = 0; v < n; v++)
    if (got[v]) {
      float old = act[v];
      if (old < 1.0f)
        act[v] = fminf(1.0f, old + sum[v]);
      pulse[v] = sum[v];
      sum[v] = 0.0f;
      got[v] = 0;
    }
  for (unsigned h = 1; h <= p->max_depth; h++) {
    float factor = (float)exp(-(double)p->rate * h);
    for (size_t i = 0; i < g->m; i++) {
      const edge *e = &g->e[i];
      if (!(pulse[e->s] > 0.0f))
        continue;
      float c = pulse[e->s] * e->w * factor;
      if (c >= p->threshold && c > 0.0f) {
        sum[e->t] += c;
        got[e->t] = 1;
        touched[e->t] = 1;
      }
    }
    for (size_t v = 0; v < n; v++) {
      pulse[v] = 0.0f;
      if (got[v]) {
        float old = act[v], nv = old;
        if (old < 1.0f)
          nv = fminf(1.0f, old + sum[v]);
        act[v] = nv;
        pulse[v] = nv - old;
        sum[v] = 0.0f;
        got[v] = 0;
      }
    }
  }
  free(pulse), free(sum), free(got);
}

static int close_to(float a, float b, float rel)
{
  return fabsf(a - b) <= rel * fmaxf(1.0f, fmaxf(fabsf(a), fabsf(b)));
}

/* ---- iterative mode ---------------------------------------------------------------------------- */

/* act after `iters` rounds of the scalar variant (the oracle), whatever ISA is selected. */
static void iterate_scalar(graph *g, float *act, unsigned iters)
{
  int isa = engram_kernel_isa();
  engram_kernel_set_isa(ENGRAM_ISA_SCALAR);
  CHECK_EQ(engram_spread_iterate(arena, &g->csr, act, iters), 0);
  engram_kernel_set_isa(isa);
}

static void check_iterate(graph *g, const float *init, unsigned iters, const char *what)
{
  size_t n = g->n ? g->n : 1;
  float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
  memcpy(a, init, g->n * sizeof(float));
  memcpy(b, init, g->n * sizeof(float));
  memcpy(c, init, g->n * sizeof(float));
  CHECK_EQ(engram_spread_iterate(arena, &g->csr, a, iters), 0);
  iterate_ref(g, b, iters);
  iterate_scalar(g, c, iters);
  size_t bad = 0, unequal = 0;
  for (size_t i = 0; i < g->n; i++) {
    bad += !close_to(a[i], b[i], 1e-6f);
    unequal += memcmp(&a[i], &c[i], sizeof(float)) != 0;
  }
  if (bad || unequal)
    printf("    %s (%s): %zu of %zu nodes differ from the reference, %zu from the scalar variant\n", what,
           engram_kernel_isa_name(engram_kernel_isa()), bad, g->n, unequal);
  CHECK_EQ(bad, 0);
  CHECK_EQ(unequal, 0);
  free(a), free(b), free(c);
}

/* Node s has s % 35 out-edges: every tail length of 8- and 16-lane groups, 0 .. 2*16+2. */
static graph every_degree(size_t n)
{
  graph g = make_graph(n, n * 35);
  for (uint32_t s = 0; s < n; s++)
    for (uint32_t k = 0; k < s % 35; k++)
      add(&g, s, (uint32_t)(test_rand(&rng) % n), wrand());
  build(&g);
  return g;
}

ISA_TESTS(iterate_matches_reference_on_shapes)
static void iterate_matches_reference_on_shapes(void)
{
  size_t n = 50;
  float *init = calloc(1000, sizeof(float));
  init[0] = 1.0f;
  graph g;
  g = star(n), check_iterate(&g, init, 3, "star"), release(&g);
  g = chain(n), check_iterate(&g, init, 5, "chain"), release(&g);
  g = cycle(7), check_iterate(&g, init, 9, "cycle"), release(&g);
  g = make_graph(3, 3);
  add(&g, 0, 0, 0.75f);                       /* self-loops, one repeated within a group */
  add(&g, 1, 1, 1.5f);
  add(&g, 1, 1, 0.25f);
  build(&g);
  float three[3] = { 0.5f, 0.25f, 0.0f };
  check_iterate(&g, three, 6, "self-loops");
  release(&g);
  for (int rep = 0; rep < 5; rep++) {
    g = rep < 3 ? random_graph(1000) : every_degree(1000);
    for (size_t i = 0; i < 1000; i++)
      init[i] = (test_rand(&rng) % 4 == 0) ? wrand() : 0.0f;
    check_iterate(&g, init, 4, rep < 3 ? "random" : "every degree");
    release(&g);
  }
  /* one hub with every other node's edge, all sources active (no normalisation skipped) */
  g = make_graph(300, 300 * 20);
  for (uint32_t s = 0; s < 300; s++)
    for (uint32_t k = 0; k < (s == 7 ? 299u : 3u); k++)
      add(&g, s, s == 7 ? k + (k >= 7) : (uint32_t)(test_rand(&rng) % 300), wrand());
  build(&g);
  for (size_t i = 0; i < 300; i++)
    init[i] = wrand();
  check_iterate(&g, init, 3, "hub");
  release(&g);
  free(init);
}

/* Values the reference treats specially: negative weights and activations (never bounded),
 * -0 activations (inactive), NaN spreading from an active source, an infinite weight out of an
 * inactive one (never multiplied), all equal on every variant. */
ISA_TESTS(iterate_special_values)
static void iterate_special_values(void)
{
  graph g = every_degree(200);
  float *init = malloc(200 * sizeof(float));
  for (size_t i = 0; i < g.m; i += 5)         /* CSR edge i is list edge i */
    g.e[i].w = g.w[i] = -g.w[i];
  for (size_t i = 0; i < 200; i++)
    init[i] = i % 3 == 0 ? -0.0f : (i % 7 == 0 ? -wrand() : wrand());
  check_iterate(&g, init, 3, "negative");
  /* an infinite weight out of node 3 (inactive): nothing changes */
  init[3] = 0.0f;
  g.e[g.off[3]].w = g.w[g.off[3]] = INFINITY;
  float *a = malloc(200 * sizeof(float)), *b = malloc(200 * sizeof(float));
  memcpy(a, init, 200 * sizeof(float));
  memcpy(b, init, 200 * sizeof(float));
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, a, 1), 0);
  iterate_ref(&g, b, 1);
  size_t bad = 0;
  for (size_t i = 0; i < 200; i++)
    bad += memcmp(&a[i], &b[i], sizeof(float)) != 0;
  CHECK_EQ(bad, 0);
  /* a NaN activation spreads NaN to the targets of its source; the max ignores it */
  init[3] = NAN;
  g.e[g.off[3]].w = g.w[g.off[3]] = 0.5f;
  memcpy(a, init, 200 * sizeof(float));
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, a, 1), 0);
  CHECK(isnan(a[g.tg[g.off[3]]]));
  free(a), free(b), free(init);
  release(&g);
}

ISA_TESTS(iterate_known_values)
static void iterate_known_values(void)
{
  /* chain 0 -> 1 -> 2, one iteration: a1 > 0, a2 == 0 (Jacobi, not Gauss-Seidel) */
  graph g = chain(3);
  float a[3] = { 1, 0, 0 };
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, a, 1), 0);
  CHECK(a[1] > 0.0f && a[2] == 0.0f);
  release(&g);

  /* a self-loop of weight 2 for 10 iterations stays bounded by 1 */
  g = make_graph(1, 1);
  add(&g, 0, 0, 2.0f);
  build(&g);
  float s[1] = { 0.5f };
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, s, 10), 0);
  CHECK(s[0] <= 1.0f && s[0] > 0.99f);
  release(&g);

  /* star: the hub keeps its activation, every spoke gets hub * w (no normalisation here) */
  g = star(5);
  float h[5] = { 0.5f, 0, 0, 0, 0 };
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, h, 1), 0);
  CHECK(h[0] == 0.5f);
  for (int i = 1; i < 5; i++)
    CHECK(h[i] == 0.5f * (0.5f + 0.5f * (float)i / 5.0f));
  release(&g);

  /* a 3-cycle after 3 iterations: everything active */
  g = cycle(3);
  float c[3] = { 1, 0, 0 };
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, c, 3), 0);
  CHECK(c[0] > 0 && c[1] > 0 && c[2] > 0);
  release(&g);
}

/* ---- bounded mode ---------------------------------------------------------------------------- */

static void check_bounded(graph *g, const uint32_t *seeds, const float *sv, size_t ns,
                          const engram_spread_params *p, const char *what)
{
  size_t n = g->n;
  float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
  char *tref = malloc(n);
  uint32_t *touched = malloc(n * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++)
    a[i] = b[i] = (test_rand(&rng) % 5 == 0) ? 0.3f * wrand() : 0.0f;
  size_t nt = 0;
  CHECK_EQ(engram_spread_bounded(arena, &g->csr, seeds, sv, ns, p, a, touched, n, &nt), 0);
  engram_spread_params def;
  engram_spread_params_default(&def);
  bounded_ref(g, seeds, sv, ns, p ? p : &def, b, tref);
  size_t bad = 0, want = 0;
  for (size_t i = 0; i < n; i++) {
    bad += !close_to(a[i], b[i], 2e-6f);
    want += tref[i];
  }
  CHECK_EQ(nt, want);
  for (size_t i = 0; i < nt && i < n; i++)
    bad += !tref[touched[i]];
  if (bad)
    printf("    %s: %zu nodes differ\n", what, bad);
  CHECK_EQ(bad, 0);
  free(a), free(b), free(tref), free(touched);
}

TEST(bounded_matches_reference_on_shapes)
{
  engram_spread_params p = { .max_depth = 6, .rate = 0.3f, .threshold = 1e-4f };
  uint32_t s0[] = { 0 }, s3[] = { 3, 9, 3 };  /* a duplicate seed adds up */
  float v3[] = { 0.25f, 1.0f, 0.5f };
  graph g;
  g = star(40), check_bounded(&g, s0, NULL, 1, NULL, "star"), release(&g);
  g = chain(30), check_bounded(&g, s0, NULL, 1, &p, "chain"), release(&g);
  g = cycle(5), check_bounded(&g, s0, NULL, 1, &p, "cycle"), release(&g);
  g = make_graph(2, 2);
  add(&g, 0, 0, 1.0f);                        /* self-loop */
  add(&g, 0, 1, 0.5f);
  build(&g);
  check_bounded(&g, s0, NULL, 1, &p, "self-loop");
  release(&g);
  for (int rep = 0; rep < 8; rep++) {
    g = random_graph(2000);
    engram_spread_params q = { .max_depth = (unsigned)(rep % 5), .rate = 0.1f * (float)rep,
                               .threshold = rep % 2 ? 0.0f : 1e-3f };
    check_bounded(&g, s3, rep % 3 ? v3 : NULL, 3, &q, "random");
    release(&g);
  }
}

TEST(bounded_known_values)
{
  /* chain 0 -> 1 -> 2 -> 3 -> 4, weights 0.9, defaults (rate 0.7, threshold 0.01, depth 4):
   * the factors exp(-rate * h) compound along the path */
  graph g = chain(5);
  float a[5] = { 0, 0, 0, 0, 0 };
  uint32_t seed = 0;
  CHECK_EQ(engram_spread_bounded(arena, &g.csr, &seed, NULL, 1, NULL, a, NULL, 0, NULL), 0);
  float f[5];
  for (int h = 1; h <= 4; h++)
    f[h] = (float)exp(-(double)0.7f * h);
  float c1 = 1.0f * 0.9f * f[1], c2 = c1 * 0.9f * f[2], c3 = c2 * 0.9f * f[3], c4 = c3 * 0.9f * f[4];
  CHECK(a[0] == 1.0f);
  CHECK(a[1] == c1);
  CHECK(a[2] == c2);
  CHECK(c3 >= 0.01f && a[3] == c3);
  CHECK(c4 < 0.01f && a[4] == 0.0f);          /* below the threshold: dropped */
  release(&g);

  /* capped at 1; a node at 1 passes nothing on */
  g = make_graph(3, 3);
  add(&g, 0, 1, 1.0f);
  add(&g, 1, 2, 1.0f);
  build(&g);
  float b[3] = { 0, 1.0f, 0 };
  CHECK_EQ(engram_spread_bounded(arena, &g.csr, &seed, NULL, 1, NULL, b, NULL, 0, NULL), 0);
  CHECK(b[1] == 1.0f && b[2] == 0.0f);
  release(&g);
}

/* The index is never cleared: garbage in the arena must not be taken for reached nodes. */
TEST(bounded_ignores_stale_scratch)
{
  graph g = random_graph(5000);
  engram_mark m = engram_arena_mark(arena);
  uint32_t *junk = engram_arena_alloc_array(arena, 5000 * 8, sizeof(uint32_t), 64);
  for (size_t i = 0; i < 5000 * 8; i++)
    junk[i] = (uint32_t)(test_rand(&rng) % 64);
  engram_arena_rewind(arena, m);
  uint32_t seeds[] = { 1, 2, 3 };
  check_bounded(&g, seeds, NULL, 3, NULL, "stale scratch");
  release(&g);
}

/* ---- validation and errors ---------------------------------------------------------------- */

TEST(bad_graphs_are_errors_and_act_is_unchanged)
{
  uint32_t off[4] = { 0, 2, 1, 3 }, tg[3] = { 1, 2, 0 };
  float w[3] = { 1, 1, 1 }, act[3] = { 1, 0.5f, 0 }, keep[3];
  memcpy(keep, act, sizeof act);
  engram_csr g = { .n = 3, .nedges = 3, .offsets = off, .targets = tg, .weights = w };
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "spread: offsets decrease at node 1 (2 then 1)");
  CHECK_EQ(engram_spread_iterate(arena, &g, act, 2), ENGRAM_EINVAL);
  off[2] = 2;
  off[3] = 4;
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "spread: offsets[3] = 4 exceeds the 3 edges");
  off[3] = 3;
  off[0] = 1;
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "spread: offsets[0] is 1 (expected 0)");
  off[0] = 0;
  CHECK_EQ(engram_csr_validate(&g), 0);

  tg[2] = 7;                                  /* edge 2, from node 2, out of range */
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_ERANGE);
  CHECK_STR(engram_last_error(), "spread: edge 2 (from node 2) targets node 7, beyond the 3 nodes");
  /* the bad edge is met in the second round (node 2 is reached only then): act unchanged */
  CHECK_EQ(engram_spread_iterate(arena, &g, act, 3), ENGRAM_ERANGE);
  CHECK_STR(engram_last_error(), "spread: edge 2 (from node 2) targets node 7, beyond the 3 nodes");
  CHECK(memcmp(act, keep, sizeof act) == 0);
  uint32_t seed = 0;
  engram_spread_params p = { .max_depth = 4, .rate = 0.0f, .threshold = 0.0f };
  CHECK_EQ(engram_spread_bounded(arena, &g, &seed, NULL, 1, &p, act, NULL, 0, NULL), ENGRAM_ERANGE);
  CHECK(memcmp(act, keep, sizeof act) == 0);
  tg[2] = 0;

  seed = 3;
  CHECK_EQ(engram_spread_bounded(arena, &g, &seed, NULL, 1, NULL, act, NULL, 0, NULL), ENGRAM_ERANGE);
  CHECK_STR(engram_last_error(), "spread: seed 0 is node 3, beyond the 3 nodes");
  seed = 0;
  float bad_v = -1.0f;
  CHECK_EQ(engram_spread_bounded(arena, &g, &seed, &bad_v, 1, NULL, act, NULL, 0, NULL), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "spread: seed 0 has activation -1 (expected finite and >= 0)");
  p.rate = NAN;
  CHECK_EQ(engram_spread_bounded(arena, &g, &seed, NULL, 1, &p, act, NULL, 0, NULL), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "spread: bad rate nan (expected a finite value >= 0)");
  CHECK_EQ(engram_spread_iterate(arena, NULL, act, 1), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "spread: graph is NULL");
  CHECK(memcmp(act, keep, sizeof act) == 0);
}

/* The iterative mode checks a target before adding along its edge, at every position in a
 * group of lanes, and only targets it reads: a bad edge out of a node that never becomes
 * active is not an error. */
ISA_TESTS(iterate_checks_the_targets_it_reads)
static void iterate_checks_the_targets_it_reads(void)
{
  /* 0 -> 1 -> 2, node 2 has 19 edges (two 8-lane groups and a tail; a 16-lane group and a
   * tail) to nodes 3..21, node 22 has 19 edges too and no in-edges */
  graph g = make_graph(23, 50);
  add(&g, 0, 1, 0.5f);
  add(&g, 1, 2, 0.5f);
  for (uint32_t k = 0; k < 19; k++) {
    add(&g, 2, 3 + k, 0.25f);
    add(&g, 22, 3 + k, 0.25f);
  }
  build(&g);
  float act[23] = { 1.0f }, keep[23];
  memcpy(keep, act, sizeof act);
  const uint32_t pos[] = { 0, 5, 7, 8, 13, 15, 16, 18 };
  char want[128];
  for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
    uint32_t e = g.off[2] + pos[i];
    g.tg[e] = 23 + (uint32_t)i;
    /* node 2 becomes active in the third round */
    CHECK_EQ(engram_spread_iterate(arena, &g.csr, act, 2), 0);
    memcpy(act, keep, sizeof act);
    CHECK_EQ(engram_spread_iterate(arena, &g.csr, act, 3), ENGRAM_ERANGE);
    snprintf(want, sizeof want, "spread: edge %u (from node 2) targets node %u, beyond the 23 nodes", e,
             23 + (unsigned)i);
    CHECK_STR(engram_last_error(), want);
    CHECK(memcmp(act, keep, sizeof act) == 0);
    /* active from the first round */
    act[2] = 0.5f;
    CHECK_EQ(engram_spread_iterate(arena, &g.csr, act, 1), ENGRAM_ERANGE);
    CHECK_STR(engram_last_error(), want);
    act[2] = 0.0f;
    CHECK(memcmp(act, keep, sizeof act) == 0);
    g.tg[e] = 3 + pos[i];
  }
  /* node 22 is never active: its bad target is never read */
  g.tg[g.off[22] + 17] = UINT32_MAX;
  float ref[23];
  memcpy(ref, keep, sizeof ref);
  iterate_ref(&g, ref, 4);
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, act, 4), 0);
  CHECK(memcmp(act, ref, sizeof act) == 0);
  /* ... until it is */
  memcpy(act, keep, sizeof act);
  act[22] = 0.25f;
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, act, 4), ENGRAM_ERANGE);
  snprintf(want, sizeof want, "spread: edge %u (from node 22) targets node %u, beyond the 23 nodes",
           g.off[22] + 17, UINT32_MAX);
  CHECK_STR(engram_last_error(), want);
  release(&g);
}

TEST(scratch_is_rewound_and_exhaustion_is_reported)
{
  graph g = random_graph(100000);
  float *act = calloc(g.n, sizeof(float));
  act[5] = 1.0f;
  size_t used = engram_arena_used(arena);
  CHECK_EQ(engram_spread_iterate(arena, &g.csr, act, 2), 0);
  uint32_t seed = 5;
  CHECK_EQ(engram_spread_bounded(arena, &g.csr, &seed, NULL, 1, NULL, act, NULL, 0, NULL), 0);
  CHECK_EQ(engram_arena_used(arena), used);

  engram_arena_config cfg = { .size = 64 << 10, .align = 16, .overflow = ENGRAM_OVERFLOW_ERROR };
  engram_arena *small = engram_arena_create(&cfg);
  CHECK_EQ(engram_spread_iterate(small, &g.csr, act, 2), ENGRAM_EFULL);
  CHECK_CONTAINS(engram_last_error(), "spread: scratch of 400000 bytes does not fit the arena");
  CHECK_EQ(engram_spread_bounded(small, &g.csr, &seed, NULL, 1, NULL, act, NULL, 0, NULL), ENGRAM_EFULL);
  CHECK_CONTAINS(engram_last_error(), "spread: scratch of ");
  CHECK_EQ(engram_arena_used(small), 0);
  engram_arena_destroy(small);
  free(act);
  release(&g);
}

int main(void)
{
  rng = test_seed("spread");
  engram_arena_config cfg = { .size = 16 << 20, .align = 16, .overflow = ENGRAM_OVERFLOW_ERROR };
  arena = engram_arena_create(&cfg);
  RUN_ISA(iterate_matches_reference_on_shapes);
  RUN_ISA(iterate_known_values);
  RUN_ISA(iterate_special_values);
  RUN_ISA(iterate_checks_the_targets_it_reads);
  RUN(bounded_matches_reference_on_shapes);
  RUN(bounded_known_values);
  RUN(bounded_ignores_stale_scratch);
  RUN(bad_graphs_are_errors_and_act_is_unchanged);
  RUN(scratch_is_rewound_and_exhaustion_is_reported);
  engram_kernel_set_isa(ENGRAM_ISA_AUTO);
  engram_arena_destroy(arena);
  return test_done();
}
