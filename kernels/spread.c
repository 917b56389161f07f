/*
 * spread.c — spreading activation over a CSR graph: graph checks, the iterative (Jacobi) mode's
 * rounds and the bounded push from seeds. See engram.h ("spreading activation") for the exact
 * semantics of both.
 *
 * A round of the iterative mode is an ISA variant (spread_scalar.c, spread_avx2.c,
 * spread_avx512.c, through the dispatch table): it streams every edge of every active source.
 * The bounded mode touches a few thousand scattered edges per hop, where the time goes to
 * memory latency (a miss per target), not to arithmetic a wider ISA would speed up; it is one
 * implementation here, structured around prefetching.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#define WHO "spread"

/* ---- graph checks ------------------------------------------------------------------------ */

static int check_header(const engram_csr *g)
{
  if (!g)
    return engram_fail(ENGRAM_EINVAL, WHO ": graph is NULL");
  if (g->n >= UINT32_MAX || g->nedges >= UINT32_MAX)
    return engram_fail(ENGRAM_EINVAL, WHO ": graph too large (%zu nodes, %zu edges; both must be < 2^32)",
                       g->n, g->nedges);
  if (!g->offsets)
    return engram_fail(ENGRAM_EINVAL, WHO ": offsets is NULL");
  if (g->nedges && (!g->targets || !g->weights))
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL", !g->targets ? "targets" : "weights");
  return 0;
}

/* The message for the first offsets problem at node s. */
static int bad_offsets(const engram_csr *g, size_t s)
{
  const uint32_t *o = g->offsets;
  if (s == 0 && o[0] != 0)
    return engram_fail(ENGRAM_EINVAL, WHO ": offsets[0] is %u (expected 0)", o[0]);
  if (o[s + 1] > g->nedges)
    return engram_fail(ENGRAM_EINVAL, WHO ": offsets[%zu] = %u exceeds the %zu edges", s + 1, o[s + 1],
                       g->nedges);
  return engram_fail(ENGRAM_EINVAL, WHO ": offsets decrease at node %zu (%u then %u)", s, o[s], o[s + 1]);
}

static int check_offsets(const engram_csr *g)
{
  const uint32_t *o = g->offsets;
  size_t n = g->n;
  if (o[0] != 0)
    return bad_offsets(g, 0);
  uint32_t bad = 0;
  for (size_t s = 0; s < n; s++)   /* branch-free body: one pass, look closer only on failure */
    bad |= (uint32_t)(o[s + 1] < o[s]);
  if (bad || o[n] != g->nedges) {
    for (size_t s = 0; s < n; s++)
      if (o[s + 1] < o[s] || o[s + 1] > g->nedges)
        return bad_offsets(g, s);
    return engram_fail(ENGRAM_EINVAL, WHO ": offsets[%zu] = %u but the graph has %zu edges", n, o[n],
                       g->nedges);
  }
  return 0;
}

static int bad_target(const engram_csr *g, size_t s, size_t e)
{
  return engram_fail(ENGRAM_ERANGE, WHO ": edge %zu (from node %zu) targets node %u, beyond the %zu nodes",
                     e, s, g->targets[e], g->n);
}

int engram_csr_validate(const engram_csr *g)
{
  int rc = check_header(g);
  if (rc || (rc = check_offsets(g)))
    return rc;
  const uint32_t *t = g->targets;
  uint32_t n = (uint32_t)g->n, bad = 0;
  for (size_t e = 0; e < g->nedges; e++)
    bad |= (uint32_t)(t[e] >= n);
  if (bad)
    for (size_t s = 0; s < g->n; s++)
      for (size_t e = g->offsets[s]; e < g->offsets[s + 1]; e++)
        if (t[e] >= n)
          return bad_target(g, s, e);
  return 0;
}

/* ---- iterative mode ------------------------------------------------------------------------ */

/* Rounds alternate between two scratch buffers; the first reads act itself, which is written
 * only once every round has succeeded, so an error leaves it unchanged. A round's division by
 * the max is deferred to the next round's first pass (or the final copy), which divides and
 * copies at once: the same quotients as dividing in place, one pass over n fewer per round.
 *
 * The first round checks every target, of inactive sources too, inside the push itself; a
 * graph found clean is pushed unchecked afterwards. Otherwise the later rounds check the
 * targets of their active sources, so a bad target is an error only once it would be read. */
int engram_spread_iterate(engram_arena *a, const engram_csr *g, float *act, unsigned iterations)
{
  int rc = check_header(g);
  if (rc)
    return rc;
  size_t n = g->n;
  if (n && !act)
    return engram_fail(ENGRAM_EINVAL, WHO ": act is NULL");
  if ((rc = check_offsets(g)))
    return rc;
  a = engram_kernel_arena(a, WHO);
  if (!a)
    return ENGRAM_ENOMEM;
  const engram_kernel_ops *k = engram_kernels_get(&rc);
  if (!k)
    return rc;
  if (iterations == 0 || n == 0)
    return 0;

  engram_mark m = engram_arena_mark(a);
  float *x = engram_kernel_scratch(a, n, sizeof(float), WHO);
  float *y = x ? engram_kernel_scratch(a, n, sizeof(float), WHO) : NULL;
  if (!y) {
    engram_arena_rewind(a, m);
    return ENGRAM_EFULL;
  }
  engram_spread_round r = { .off = g->offsets, .tg = g->targets, .w = g->weights, .n = (uint32_t)n,
                            .src = act, .dst = x, .div = 1.0f, .check = SPREAD_CHECK_ALL };
  for (unsigned it = 0; it < iterations; it++) {
    if (k->spread_round(&r)) {
      rc = bad_target(g, r.bad_src, r.bad_edge);
      engram_arena_rewind(a, m);
      return rc;
    }
    if (it == 0)
      r.check = r.clean ? SPREAD_CHECK_NONE : SPREAD_CHECK_ACTIVE;
    r.div = r.max;                /* applied when > 1 */
    r.src = r.dst;
    r.dst = r.dst == x ? y : x;
  }
  if (r.div > 1.0f)
    for (size_t i = 0; i < n; i++)
      act[i] = r.src[i] / r.div;
  else
    memcpy(act, r.src, n * sizeof *act);
  engram_arena_rewind(a, m);
  return 0;
}

/* ---- bounded mode ---------------------------------------------------------------------------- */

void engram_spread_params_default(engram_spread_params *p)
{
  p->max_depth = 4;
  p->rate = 0.7f;
  p->threshold = 0.01f;
}

/* A node reached by this call. */
typedef struct reached {
  uint32_t node;
  uint32_t hop;              /* last hop in which it received something */
  float val;                 /* its activation (act[node] when first reached, then updated) */
  float sum;                 /* what it received in hop `hop` */
  float pulse;               /* what it sends in the next hop */
} reached;

/* Nodes reached, in first-touch order, in chunks taken from the arena as they fill: the count is
 * not known in advance, and reserving n entries would defeat the bounded mode. slot[node] holds
 * the node's index here; slot is never cleared, so a slot counts only when it points below
 * `count` at an entry that names the node back (the sparse-set membership test). */
typedef struct reach_set {
  uint32_t *slot;
  reached **chunk;
  unsigned shift;
  uint32_t mask;
  uint32_t count, nchunks;
  engram_arena *arena;
} reach_set;

static inline reached *at(const reach_set *r, uint32_t i)
{
  return &r->chunk[i >> r->shift][i & r->mask];
}

/* The entry of `node`, or a new one (activation read from act); NULL with EFULL set when the
 * arena is out of room. */
static inline reached *reach(reach_set *r, uint32_t node, const float *act, int *is_new)
{
  uint32_t i = r->slot[node];
  if (i < r->count) {
    reached *e = at(r, i);
    if (e->node == node) {
      *is_new = 0;
      return e;
    }
  }
  i = r->count;
  if ((i >> r->shift) == r->nchunks) {
    reached *c = engram_kernel_scratch(r->arena, (size_t)r->mask + 1, sizeof(reached), WHO);
    if (!c)
      return NULL;
    r->chunk[r->nchunks++] = c;
  }
  reached *e = at(r, i);
  e->node = node;
  e->hop = UINT32_MAX;
  e->val = act[node];
  e->sum = 0.0f;
  e->pulse = 0.0f;
  r->slot[node] = i;
  r->count = i + 1;
  *is_new = 1;
  return e;
}

/* act = min(1, act + sum), leaving a value already at or above 1 as it is; returns the increase. */
static inline float accept(reached *e)
{
  float old = e->val, nv = old;
  if (old < 1.0f) {
    nv = old + e->sum;
    nv = nv < 1.0f ? nv : 1.0f;
  }
  e->val = nv;
  e->sum = 0.0f;
  return nv - old;
}

int engram_spread_bounded(engram_arena *a, const engram_csr *g, const uint32_t *seeds,
                          const float *seed_act, size_t nseeds, const engram_spread_params *params,
                          float *act, uint32_t *touched, size_t cap, size_t *ntouched)
{
  int rc = check_header(g);
  if (rc)
    return rc;
  engram_spread_params p;
  if (params)
    p = *params;
  else
    engram_spread_params_default(&p);
  if (!(p.rate >= 0.0f && p.rate < INFINITY))
    return engram_fail(ENGRAM_EINVAL, WHO ": bad rate %g (expected a finite value >= 0)", (double)p.rate);
  if (!(p.threshold >= 0.0f && p.threshold < INFINITY))
    return engram_fail(ENGRAM_EINVAL, WHO ": bad threshold %g (expected a finite value >= 0)",
                       (double)p.threshold);
  if (nseeds && (!seeds || !act))
    return engram_fail(ENGRAM_EINVAL, WHO ": %s is NULL", !seeds ? "seeds" : "act");
  if (cap && !touched)
    return engram_fail(ENGRAM_EINVAL, WHO ": touched is NULL");
  if (nseeds > UINT32_MAX)
    return engram_fail(ENGRAM_EINVAL, WHO ": too many seeds (%zu)", nseeds);
  for (size_t i = 0; i < nseeds; i++) {
    if (seeds[i] >= g->n)
      return engram_fail(ENGRAM_ERANGE, WHO ": seed %zu is node %u, beyond the %zu nodes", i, seeds[i], g->n);
    if (seed_act && !(seed_act[i] >= 0.0f && seed_act[i] < INFINITY))
      return engram_fail(ENGRAM_EINVAL, WHO ": seed %zu has activation %g (expected finite and >= 0)", i,
                         (double)seed_act[i]);
  }
  if (ntouched)
    *ntouched = 0;
  a = engram_kernel_arena(a, WHO);
  if (!a)
    return ENGRAM_ENOMEM;
  if (!engram_kernels_get(&rc))   /* a bad ENGRAM_ISA fails every kernel, this one too */
    return rc;
  if (nseeds == 0)
    return 0;

  engram_mark mk = engram_arena_mark(a);
  const size_t n = g->n;
  const uint32_t *off = g->offsets, *tg = g->targets;
  const float *w = g->weights;
  reach_set r = { .arena = a };
  r.shift = 12;                               /* 4096 entries (80 KiB) per chunk ... */
  while (r.shift > 4 && ((size_t)1 << (r.shift - 1)) >= n)
    r.shift--;                                /* ... fewer for small graphs */
  r.mask = (1u << r.shift) - 1;
  size_t max_chunks = (n >> r.shift) + 1;
  rc = ENGRAM_EFULL;
  r.slot = engram_kernel_scratch(a, n, sizeof(uint32_t), WHO);
  r.chunk = r.slot ? engram_kernel_scratch(a, max_chunks, sizeof(reached *), WHO) : NULL;
  uint32_t *front = r.chunk ? engram_kernel_scratch(a, nseeds, sizeof(uint32_t), WHO) : NULL;
  if (!front)
    goto out;

  /* hop 0: the seeds */
  size_t nfront = 0;
  for (size_t i = 0; i < nseeds; i++) {
    int is_new;
    reached *e = reach(&r, seeds[i], act, &is_new);
    if (!e)
      goto out;
    if (is_new)
      front[nfront++] = r.slot[seeds[i]];
    e->sum += seed_act ? seed_act[i] : 1.0f;
  }
  {
    size_t keep = 0;
    for (size_t i = 0; i < nfront; i++) {
      reached *e = at(&r, front[i]);
      float v = e->sum;
      accept(e);
      e->pulse = v;                           /* a seed spreads its own value */
      if (v > 0.0f)
        front[keep++] = front[i];
    }
    nfront = keep;
  }

  for (unsigned h = 1; h <= p.max_depth && nfront; h++) {
    const float factor = (float)exp(-(double)p.rate * h);
    /* This hop reaches at most the out-edges of the frontier (and at most n nodes). */
    size_t bound = 0;
    for (size_t i = 0; i < nfront; i++) {
      uint32_t u = at(&r, front[i])->node;
      if (off[u] > off[u + 1] || off[u + 1] > g->nedges || (u == 0 && off[0] != 0)) {
        rc = bad_offsets(g, u);
        goto out;
      }
      bound += off[u + 1] - off[u];
    }
    if (bound > n)
      bound = n;
    uint32_t *next = engram_kernel_scratch(a, bound ? bound : 1, sizeof(uint32_t), WHO);
    if (!next)
      goto out;
    size_t nnext = 0;
    for (size_t i = 0; i < nfront; i++) {
      /* Latency, not bandwidth, bounds this loop: a pipeline of prefetches brings the edge
       * lists of the frontier node 4 ahead, then the index slots and activations of the
       * targets of the node 2 ahead (whose edge list has arrived by then). */
      if (i + 4 < nfront) {
        uint32_t u4 = at(&r, front[i + 4])->node;
        __builtin_prefetch(tg + off[u4]);
        __builtin_prefetch(w + off[u4]);
      }
      if (i + 2 < nfront) {
        uint32_t u2 = at(&r, front[i + 2])->node;
        for (uint32_t e = off[u2]; e < off[u2 + 1]; e++)
          if (tg[e] < n) {
            __builtin_prefetch(r.slot + tg[e]);
            __builtin_prefetch(act + tg[e]);
          }
      }
      const reached *src = at(&r, front[i]);
      const float pu = src->pulse;
      const uint32_t u = src->node, end = off[u + 1];
      for (uint32_t e = off[u]; e < end; e++) {
        uint32_t t = tg[e];
        if (ENGRAM_UNLIKELY(t >= n)) {
          rc = bad_target(g, u, e);
          goto out;
        }
        float c = pu * w[e] * factor;
        if (!(c >= p.threshold && c > 0.0f))
          continue;
        int is_new;
        reached *x = reach(&r, t, act, &is_new);
        if (!x)
          goto out;
        if (x->hop != h) {
          x->hop = h;
          x->sum = c;
          next[nnext++] = r.slot[t];
        } else {
          x->sum += c;
        }
      }
    }
    /* Apply the hop: the increases accepted become the next pulses. */
    size_t keep = 0;
    for (size_t i = 0; i < nnext; i++) {
      reached *x = at(&r, next[i]);
      x->pulse = accept(x);
      if (x->pulse > 0.0f)
        next[keep++] = next[i];
    }
    front = next;
    nfront = keep;
  }

  /* Success: write the activations back and report what was touched. */
  for (uint32_t i = 0; i < r.count; i++) {
    const reached *x = at(&r, i);
    act[x->node] = x->val;
    if (i < cap)
      touched[i] = x->node;
  }
  if (ntouched)
    *ntouched = r.count;
  rc = 0;
out:
  engram_arena_rewind(a, mk);
  return rc;
}
