/*
 * bench_arena.c — the arena against the best general-purpose allocators, in the burst pattern
 * engram runs: allocate a burst's worth of scratch, touch it, give it all back, repeat.
 *
 * Contenders (all in the same harness, over the same fixed-seed request lists):
 *   bump      a minimal inline pointer bump written here: the physical limit
 *   arena     engram_arena_alloc_aligned + engram_arena_reset (the inline public fast path)
 *   glibc, jemalloc, tcmalloc, mimalloc   malloc/free (aligned_alloc for 64-byte vectors)
 *   mi_heap   mi_heap_new / mi_heap_malloc / mi_heap_destroy per burst
 *
 * How the peers are loaded. Each (contender, workload, round) runs in a fresh child process
 * (this program re-executed with --child), and the peers are put in place with LD_PRELOAD.
 * That is how real programs get jemalloc, tcmalloc or mimalloc (preloading, or linking them,
 * which interposes malloc the same way), so the calls go through the same PLT entries and
 * the allocator owns the whole process heap, as it would in production. Loading all three
 * with dlopen(RTLD_DEEPBIND) into one process would measure an unusual configuration (a
 * second heap beside glibc's, initial-exec TLS in a dlopened object) and would mix their page
 * faults and peak RSS into one counter; separate processes give each contender its own cold
 * burst, fault count and peak RSS. Rounds are interleaved (every contender once per round, the
 * starting contender rotated) so slow drifts of the shared machine hit all of them alike, and
 * every figure is the median over the rounds. Each child verifies that malloc, free and
 * aligned_alloc really resolve into the peer and asks the peer itself (jemalloc
 * thread.allocated, tcmalloc ownership, mimalloc heap-region test) before it measures.
 *
 * Every allocation gets one 8-byte write, so every contender pays the same first touch. The
 * arena is only ever called with compile-time alignments (as kernels do), selected by the
 * same three-way dispatch that every contender's loop goes through.
 */
#include "bench.h"
#include "engram.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 7
#define MiB ((size_t)1 << 20)
#define ARENA_SIZE   (4 * MiB)   /* S, M, K, T: large enough that no burst overflows */
#define ARENA_SMALL  (1 * MiB)   /* O: the burst needs 1.5x this */

/* ---- workloads ------------------------------------------------------------------------- */

enum { W_S, W_M, W_K, W_O, W_T, NW };
static const char *const wname[NW] = { "S", "M", "K", "O", "T" };
static const char *const wdesc[NW] = {
  "S: 4096 allocations of 16-256 B, then reset / free all",
  "M: 1024 allocations, 80% 16-256 B and 20% 1-16 KiB",
  "K: kernel-shaped: 4 float score arrays of 4-64 KiB and 64 vectors of 768 floats (64-byte "
  "aligned), 2000 edge records of 12-16 B (4-byte aligned)",
  "O: overflow: mixed sizes totalling 1.5x a 1 MiB arena (arena in fallback mode)",
  "T: S on 1 thread vs 2 threads (each its own arena / heap, same work per thread)",
};
static const int wbursts[NW] = { 1000, 1000, 1000, 500, 1000 };

struct req {
  uint32_t size;
  uint32_t align;   /* 4, 16 or 64 */
};

struct work {
  struct req *r;
  size_t n;
  size_t need;      /* bytes a bump allocator needs for one burst, padding included */
};

static uint64_t rng_state;

static uint64_t rng(void)
{
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static uint32_t uniform(uint32_t lo, uint32_t hi)
{
  return lo + (uint32_t)(rng() % (hi - lo + 1));
}

static void push(struct work *w, size_t cap, uint32_t size, uint32_t align)
{
  if (w->n >= cap) {
    fprintf(stderr, "bench_arena: request list overflow\n");
    exit(2);
  }
  w->r[w->n].size = size;
  w->r[w->n].align = align;
  w->n++;
  w->need += size + align;
}

static uint32_t mixed_size(void)
{
  return rng() % 5 == 0 ? uniform(1024, 16384) : uniform(16, 256);
}

/* The request list of a workload; the same seed for every contender and every round. */
static void make_work(int wl, struct work *w)
{
  const size_t cap = 8192;
  w->r = malloc(cap * sizeof *w->r);
  w->n = 0;
  w->need = 0;
  rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(wl + 1) * 0xD1B54A32D192ED03ull;
  switch (wl) {
  case W_S:
  case W_T:
    for (int i = 0; i < 4096; i++)
      push(w, cap, uniform(16, 256), 16);
    break;
  case W_M:
    for (int i = 0; i < 1024; i++)
      push(w, cap, mixed_size(), 16);
    break;
  case W_K:
    /* Four queries: each takes a score array, then 16 query vectors, each followed by the
     * edge records the kernel emits for it (2000 in all). */
    for (int q = 0; q < 4; q++) {
      push(w, cap, uniform(64, 1024) * 64, 64);             /* 1K-16K floats */
      for (int v = 0; v < 16; v++) {
        push(w, cap, 768 * sizeof(float), 64);
        int edges = (q * 16 + v) % 4 == 3 ? 32 : 31;        /* 2000 = 64 x 31.25 */
        for (int e = 0; e < edges; e++)
          push(w, cap, uniform(12, 16), 4);
      }
    }
    break;
  case W_O: {
    size_t total = 0;
    while (total < ARENA_SMALL + ARENA_SMALL / 2) {
      uint32_t s = mixed_size();
      push(w, cap, s, 16);
      total += s;
    }
    break;
  }
  }
}

/* ---- the contenders' burst loops ------------------------------------------------------ */

static __attribute__((noreturn, noinline, cold)) void die(const char *what)
{
  fprintf(stderr, "bench_arena: %s\n", what);
  exit(3);
}

/* The one write each allocation gets. The empty asm keeps the compiler from dropping the
 * store to memory that is freed without being read (it does so for malloc'd memory). */
static inline __attribute__((always_inline)) void touch(void *p, size_t i)
{
  uint64_t v = i;
  memcpy(p, &v, sizeof v);
  __asm__ volatile("" : : "r"(p) : "memory");
}

/* Call sites have compile-time alignments, as kernels do; every contender goes through this
 * same dispatch so the branch costs them all alike. */
#define DISPATCH(ALLOC, n, al) \
  ((al) == 16 ? ALLOC((n), 16) : (al) == 64 ? ALLOC((n), 64) : ALLOC((n), 4))

/* Every burst loop starts on a 64-byte boundary. Loops this tight move by up to 2x with their
 * placement in the binary (the same arena loop measured 2.9 and 1.6 ns/alloc on M in two builds
 * that only differed in what was linked around it); fixing the placement keeps builds and
 * contenders comparable. */
#define HOT_LOOP __attribute__((noinline, aligned(64)))

/* The reference: the least a bump allocator can do (round up, bound check, bump). */
struct bump {
  uintptr_t top, limit, base;
};

static inline __attribute__((always_inline)) void *bump_alloc(struct bump *b, size_t n, size_t align)
{
  uintptr_t p = (b->top + (align - 1)) & ~(uintptr_t)(align - 1);
  if (__builtin_expect(p + n > b->limit, 0))
    die("bump reference buffer too small");
  b->top = p + n;
  return (void *)p;
}

static HOT_LOOP void burst_bump(void *ctx, const struct work *w)
{
  struct bump *b = ctx;
  const struct req *r = w->r;
  for (size_t i = 0; i < w->n; i++) {
#define A(n_, a_) bump_alloc(b, (n_), (a_))
    void *p = DISPATCH(A, r[i].size, r[i].align);
#undef A
    touch(p, i);
  }
  b->top = b->base;
}

static inline __attribute__((always_inline)) void arena_fill(engram_arena *a, const struct work *w)
{
  const struct req *r = w->r;
  for (size_t i = 0; i < w->n; i++) {
#define A(n_, a_) engram_arena_alloc_aligned(a, (n_), (a_))
    void *p = DISPATCH(A, r[i].size, r[i].align);
#undef A
    if (__builtin_expect(!p, 0))
      die("arena allocation failed");
    touch(p, i);
  }
}

struct arena_ctx {
  engram_arena *a;
  int query;
};

/* The arena burst. With `query` set ("metrics on") the arena's stats are read once after the
 * burst, as a monitoring caller would; the fast path has no counters to switch on, so that is
 * the whole cost. Both settings run this one function, so the comparison is not skewed by the
 * placement of two copies of the loop. */
static HOT_LOOP void burst_arena(void *ctx, const struct work *w)
{
  struct arena_ctx *x = ctx;
  engram_arena *a = x->a;
  arena_fill(a, w);
  if (x->query) {
    engram_arena_info info;
    ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
    if (engram_arena_query(a, &info) != 0)
      die("engram_arena_query failed");
    BENCH_KEEP(info.high_water);
  }
  engram_arena_reset(a);
}

static inline __attribute__((always_inline)) void *peer_alloc(size_t n, size_t align)
{
  return align == 64 ? aligned_alloc(64, n) : malloc(n);
}

static HOT_LOOP void burst_malloc(void *ctx, const struct work *w)
{
  void **ptrs = ctx;
  const struct req *r = w->r;
  for (size_t i = 0; i < w->n; i++) {
#define A(n_, a_) peer_alloc((n_), (a_))
    void *p = DISPATCH(A, r[i].size, r[i].align);
#undef A
    if (__builtin_expect(!p, 0))
      die("malloc failed");
    touch(p, i);
    ptrs[i] = p;
  }
  for (size_t i = 0; i < w->n; i++)
    free(ptrs[i]);
}

static void *(*mi_heap_new_p)(void);
static void *(*mi_heap_malloc_p)(void *, size_t);
static void *(*mi_heap_malloc_aligned_p)(void *, size_t, size_t);
static void (*mi_heap_destroy_p)(void *);

static inline __attribute__((always_inline)) void *miheap_alloc(void *h, size_t n, size_t align)
{
  return align == 64 ? mi_heap_malloc_aligned_p(h, n, 64) : mi_heap_malloc_p(h, n);
}

static HOT_LOOP void burst_miheap(void *ctx, const struct work *w)
{
  (void)ctx;
  void *h = mi_heap_new_p();
  if (!h)
    die("mi_heap_new failed");
  const struct req *r = w->r;
  for (size_t i = 0; i < w->n; i++) {
#define A(n_, a_) miheap_alloc(h, (n_), (a_))
    void *p = DISPATCH(A, r[i].size, r[i].align);
#undef A
    if (__builtin_expect(!p, 0))
      die("mi_heap_malloc failed");
    touch(p, i);
  }
  mi_heap_destroy_p(h);
}

/* ---- contenders ------------------------------------------------------------------------ */

enum { K_BUMP, K_ARENA, K_MALLOC, K_MIHEAP };

struct contender {
  const char *name;
  int kind;
  const char *preload;   /* LD_PRELOAD for its child, NULL = plain glibc */
  const char *peer;      /* which allocator malloc must resolve into */
};

static const struct contender CT[] = {
  { "bump (inline reference)", K_BUMP, NULL, NULL },
  { "arena (public API)", K_ARENA, NULL, NULL },
  { "glibc malloc/free", K_MALLOC, NULL, "glibc" },
  { "jemalloc malloc/free", K_MALLOC, "libjemalloc.so.2", "jemalloc" },
  { "tcmalloc malloc/free", K_MALLOC, "libtcmalloc_minimal.so.4", "tcmalloc" },
  { "mimalloc malloc/free", K_MALLOC, "libmimalloc.so.2", "mimalloc" },
  { "mi_heap new/destroy", K_MIHEAP, "libmimalloc.so.2", "mimalloc" },
};
#define NC ((int)(sizeof CT / sizeof CT[0]))
enum { C_BUMP, C_ARENA, C_GLIBC, C_JE, C_TC, C_MI, C_MIHEAP };

/* Per-thread state of one contender: what its burst function gets as ctx. */
struct cstate {
  int kind;
  engram_arena *arena;   /* the arena, or the bump reference's backing arena */
  struct arena_ctx actx;
  struct bump bump;
  void **ptrs;
  void (*burst)(void *, const struct work *);
  void *ctx;
  char page_kind[16];
};

static engram_arena *make_arena(size_t size, engram_overflow overflow)
{
  engram_arena_config cfg;
  if (engram_config_arena_default(&cfg) != 0)
    die(engram_last_error());
  cfg.size = size;
  cfg.overflow = overflow;
  engram_arena *a = engram_arena_create(&cfg);
  if (!a)
    die(engram_last_error());
  return a;
}

static const char *page_kind_name(engram_arena *a)
{
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  engram_arena_query(a, &info);
  return info.page_kind == ENGRAM_PAGES_HUGETLB ? "hugetlb" : info.page_kind == ENGRAM_PAGES_THP ? "thp" : "4k";
}

static void cstate_init(struct cstate *s, int ci, int wl, const struct work *w)
{
  memset(s, 0, sizeof *s);
  s->kind = CT[ci].kind;
  switch (s->kind) {
  case K_BUMP: {
    /* The reference bumps through a block taken from an identically configured arena, so it
     * runs over the same kind of pages (huge or not) as the arena it is compared with. */
    size_t size = wl == W_O ? (w->need + 4095) & ~(size_t)4095 : ARENA_SIZE;
    s->arena = make_arena(size, ENGRAM_OVERFLOW_ERROR);
    void *blk = engram_arena_alloc_aligned(s->arena, size, 64);
    if (!blk)
      die("cannot take the bump reference block");
    s->bump.base = s->bump.top = (uintptr_t)blk;
    s->bump.limit = (uintptr_t)blk + size;
    s->burst = burst_bump;
    s->ctx = &s->bump;
    break;
  }
  case K_ARENA:
    s->arena = wl == W_O ? make_arena(ARENA_SMALL, ENGRAM_OVERFLOW_FALLBACK)
                         : make_arena(ARENA_SIZE, ENGRAM_OVERFLOW_ERROR);
    s->actx.a = s->arena;
    s->burst = burst_arena;
    s->ctx = &s->actx;
    break;
  case K_MALLOC:
    s->ptrs = malloc(w->n * sizeof *s->ptrs);
    s->burst = burst_malloc;
    s->ctx = s->ptrs;
    break;
  case K_MIHEAP:
    s->burst = burst_miheap;
    break;
  }
  if (s->arena)
    snprintf(s->page_kind, sizeof s->page_kind, "%s", page_kind_name(s->arena));
}

static void cstate_fini(struct cstate *s)
{
  engram_arena_destroy(s->arena);
  free(s->ptrs);
}

/* ---- peer verification (in the child) -------------------------------------------------- */

static const char *owner_of(const char *sym)
{
  Dl_info di;
  void *f = dlsym(RTLD_DEFAULT, sym);
  if (!f || !dladdr(f, &di) || !di.dli_fname)
    return "?";
  const char *slash = strrchr(di.dli_fname, '/');
  return slash ? slash + 1 : di.dli_fname;
}

/* Check that malloc, free and aligned_alloc come from `peer` and that the peer itself accounts
 * for a fresh allocation. Fills `lib` and `version`; returns 0 or prints why not. */
static int verify_peer(const char *peer, char *lib, size_t libcap, char *version, size_t vcap)
{
  const char *want = strcmp(peer, "glibc") == 0 ? "libc.so" : peer;
  snprintf(lib, libcap, "%s", owner_of("malloc"));
  snprintf(version, vcap, "?");
  static const char *const syms[] = { "malloc", "free", "aligned_alloc" };
  for (int i = 0; i < 3; i++)
    if (!strstr(owner_of(syms[i]), want)) {
      fprintf(stderr, "bench_arena: %s resolves to %s, not %s\n", syms[i], owner_of(syms[i]), peer);
      return -1;
    }

  void *p = malloc(1000);
  int ok = 0;
  if (strcmp(peer, "jemalloc") == 0) {
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) = (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    uint64_t before = 0, after = 0;
    size_t sz = sizeof before;
    const char *ver = NULL;
    size_t vsz = sizeof ver;
    if (mallctl && mallctl("thread.allocated", &before, &sz, NULL, 0) == 0) {
      void *q = malloc(4096);
      BENCH_KEEP(q);
      mallctl("thread.allocated", &after, &sz, NULL, 0);
      free(q);
      ok = after - before >= 4096;
      if (mallctl("version", &ver, &vsz, NULL, 0) == 0 && ver)
        snprintf(version, vcap, "%.20s", ver);
    }
  } else if (strcmp(peer, "tcmalloc") == 0) {
    int (*owned)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "MallocExtension_GetOwnership");
    const char *(*tcv)(int *, int *, const char **) = (const char *(*)(int *, int *, const char **))dlsym(RTLD_DEFAULT, "tc_version");
    static char not_heap[64];
    /* 1 = owned, 2 = not owned; a static buffer is the negative control (gperftools also
     * takes over __libc_malloc, so a glibc block cannot serve as one) */
    ok = owned && owned(p) == 1 && owned(not_heap) == 2;
    if (tcv) {
      int maj, min;
      const char *patch;
      tcv(&maj, &min, &patch);
      snprintf(version, vcap, "%d.%d%s", maj, min, patch ? patch : "");
    }
  } else if (strcmp(peer, "mimalloc") == 0) {
    _Bool (*in_heap)(const void *) = (_Bool (*)(const void *))dlsym(RTLD_DEFAULT, "mi_is_in_heap_region");
    int (*miv)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "mi_version");
    ok = in_heap && in_heap(p);
    if (miv) {
      int v = miv();
      snprintf(version, vcap, "%d.%d.%d", v / 100, (v / 10) % 10, v % 10);
    }
    mi_heap_new_p = (void *(*)(void))dlsym(RTLD_DEFAULT, "mi_heap_new");
    mi_heap_malloc_p = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "mi_heap_malloc");
    mi_heap_malloc_aligned_p = (void *(*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "mi_heap_malloc_aligned");
    mi_heap_destroy_p = (void (*)(void *))dlsym(RTLD_DEFAULT, "mi_heap_destroy");
    ok = ok && mi_heap_new_p && mi_heap_malloc_p && mi_heap_malloc_aligned_p && mi_heap_destroy_p;
  } else {
    /* glibc: no peer may be present in the process */
    ok = !dlsym(RTLD_DEFAULT, "mallctl") && !dlsym(RTLD_DEFAULT, "tc_malloc") && !dlsym(RTLD_DEFAULT, "mi_malloc");
    const char *(*gv)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
    if (gv)
      snprintf(version, vcap, "%s", gv());
  }
  free(p);
  if (!ok)
    fprintf(stderr, "bench_arena: %s did not confirm it serves malloc\n", peer);
  return ok ? 0 : -1;
}

/* ---- the child: one contender, one workload ------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Run `bursts` bursts; print ns/alloc, burst p50/p99, cold burst, faults per warm burst. */
static void child_bursts(struct cstate *s, const struct work *w, int bursts)
{
  uint64_t *t = calloc((size_t)bursts, sizeof *t);
  memset(t, 1, (size_t)bursts * sizeof *t);   /* fault its pages in now, not between bursts */
  uint64_t faults_warm = 0;
  for (int b = 0; b < bursts; b++) {
    uint64_t t0 = bench_now_ns();
    s->burst(s->ctx, w);
    uint64_t t1 = bench_now_ns();
    t[b] = t1 - t0;
    if (b == 0)
      faults_warm = bench_faults();
  }
  faults_warm = bench_faults() - faults_warm;
  uint64_t sum = 0;
  for (int b = 1; b < bursts; b++)
    sum += t[b];
  double cold = (double)t[0];
  qsort(t + 1, (size_t)bursts - 1, sizeof *t, cmp_u64);
  double p50 = (double)t[1 + (bursts - 1) / 2], p99 = (double)t[1 + (size_t)((bursts - 2) * 0.99)];
  printf("ns=%.4f p50=%.3f p99=%.3f cold=%.2f faults=%.4f ",
         (double)sum / ((double)(bursts - 1) * (double)w->n), p50 / 1e3, p99 / 1e3, cold / 1e3,
         (double)faults_warm / (bursts - 1));
  free(t);
}

struct tjob {
  int ci;
  const struct work *w;
  int bursts;
  pthread_barrier_t *start;
  double ns_per_alloc;
};

static void *thread_main(void *arg)
{
  struct tjob *j = arg;
  struct cstate s;
  cstate_init(&s, j->ci, W_T, j->w);
  s.burst(s.ctx, j->w);                 /* first touch outside the measurement */
  pthread_barrier_wait(j->start);
  uint64_t t0 = bench_now_ns();
  for (int b = 0; b < j->bursts; b++)
    s.burst(s.ctx, j->w);
  uint64_t t1 = bench_now_ns();
  j->ns_per_alloc = (double)(t1 - t0) / ((double)j->bursts * (double)j->w->n);
  cstate_fini(&s);
  return NULL;
}

/* Per-thread ns/alloc with `nt` threads running the same bursts at once (mean over threads). */
static double run_threads(int ci, const struct work *w, int nt, int bursts)
{
  pthread_t th[2];
  struct tjob j[2];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)nt);
  for (int i = 0; i < nt; i++) {
    j[i] = (struct tjob){ ci, w, bursts, &start, 0 };
    if (pthread_create(&th[i], NULL, thread_main, &j[i]) != 0)
      die("pthread_create failed");
  }
  double sum = 0;
  for (int i = 0; i < nt; i++) {
    pthread_join(th[i], NULL);
    sum += j[i].ns_per_alloc;
  }
  pthread_barrier_destroy(&start);
  return sum / nt;
}

static int child_main(int ci, int wl, int round)
{
  char lib[128] = "-", version[32] = "-";
  if (CT[ci].peer && verify_peer(CT[ci].peer, lib, sizeof lib, version, sizeof version) != 0)
    return 4;
  struct work w;
  make_work(wl, &w);
  printf("lib=%s ver=%s ", lib, version);
  if (wl == W_T) {
    /* Alternate which phase goes first: the second runs on an allocator already warmed up. */
    double t1, t2;
    if (round % 2 == 0) {
      t1 = run_threads(ci, &w, 1, wbursts[wl]);
      t2 = run_threads(ci, &w, 2, wbursts[wl]);
    } else {
      t2 = run_threads(ci, &w, 2, wbursts[wl]);
      t1 = run_threads(ci, &w, 1, wbursts[wl]);
    }
    printf("t1=%.4f t2=%.4f ", t1, t2);
  } else {
    struct cstate s;
    cstate_init(&s, ci, wl, &w);
    child_bursts(&s, &w, wbursts[wl]);
    if (s.kind == K_ARENA) {
      engram_arena_info info;
      ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
      engram_arena_query(s.arena, &info);
      printf("chunks=%.2f hw=%llu ", (double)info.fallback_chunks / (double)info.resets,
             (unsigned long long)info.high_water);
    }
    printf("pages=%s ", s.page_kind[0] ? s.page_kind : "-");
    cstate_fini(&s);
  }
  printf("rss=%.2f\n", (double)bench_peak_rss() / (double)MiB);
  free(w.r);
  return 0;
}

/* Metrics on vs off: one arena, bursts in pairs without / with the stats read (the order flipped
 * every pair), so both halves see the same memory, caches and moment of machine noise. The
 * difference is the median of the per-pair ratios, which a noise spike in one pair cannot move. */
static int child_metrics(int wl)
{
  struct work w;
  make_work(wl, &w);
  struct arena_ctx x = { make_arena(ARENA_SIZE, ENGRAM_OVERFLOW_ERROR), 0 };
  const int pairs = wbursts[wl];
  double *ratio = malloc((size_t)pairs * sizeof *ratio);
  uint64_t off = 0, on = 0;
  burst_arena(&x, &w);
  for (int i = 0; i < pairs; i++) {
    uint64_t dt[2];
    for (int k = 0; k < 2; k++) {
      x.query = (k ^ i) & 1;
      uint64_t t0 = bench_now_ns();
      burst_arena(&x, &w);
      dt[x.query] = bench_now_ns() - t0;
    }
    off += dt[0];
    on += dt[1];
    ratio[i] = (double)dt[1] / (double)dt[0];
  }
  engram_arena_destroy(x.a);
  double den = (double)pairs * (double)w.n;
  printf("off=%.4f on=%.4f ratio=%.5f\n", (double)off / den, (double)on / den,
         bench_median(ratio, (size_t)pairs));
  free(ratio);
  free(w.r);
  return 0;
}

/* ---- the parent: spawn, collect, report ----------------------------------------------- */

static char self_path[4096];

/* Run this program with argv and the given LD_PRELOAD; its one output line goes into out.
 * Returns 0 when the child exited 0. */
static int spawn(const char *preload, char *const argv[], char *out, size_t cap)
{
  int fd[2];
  if (pipe(fd) != 0)
    return -1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    if (preload)
      setenv("LD_PRELOAD", preload, 1);
    else
      unsetenv("LD_PRELOAD");
    execv(self_path, argv);
    _exit(127);
  }
  close(fd[1]);
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd[0], out + len, cap - 1 - len)) > 0 || (r < 0 && errno == EINTR))
    if (r > 0)
      len += (size_t)r;
  out[len] = 0;
  close(fd[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The value of `key=` in a child's output line (keys start the line or follow a space). */
static const char *find_key(const char *line, const char *key)
{
  size_t kl = strlen(key);
  for (const char *p = strstr(line, key); p; p = strstr(p + 1, key))
    if ((p == line || p[-1] == ' ') && p[kl] == '=')
      return p + kl + 1;
  return NULL;
}

static double field(const char *line, const char *key)
{
  const char *p = find_key(line, key);
  return p ? strtod(p, NULL) : -1;
}

static void field_str(const char *line, const char *key, char *out, size_t cap)
{
  const char *p = find_key(line, key);
  if (!p)
    p = "?";
  snprintf(out, cap, "%.*s", (int)strcspn(p, " \n"), p);
}

enum { F_NS, F_P50, F_P99, F_COLD, F_FAULTS, F_RSS, F_T1, F_T2, F_CHUNKS, NF };
static const char *const fkey[NF] = { "ns", "p50", "p99", "cold", "faults", "rss", "t1", "t2", "chunks" };

static double res[NC][NW][NF][ROUNDS];
static int nres[NC][NW];
static char libname[NC][128], libver[NC][32], pages[NC][NW][16];
static double met_off[NW][ROUNDS], met_on[NW][ROUNDS], met_ratio[NW][ROUNDS];
static int nmet[NW];

static double med(int ci, int wl, int f)
{
  double v[ROUNDS];
  int n = nres[ci][wl];
  if (n == 0)
    return -1;
  memcpy(v, res[ci][wl][f], sizeof v);
  return bench_median(v, (size_t)n);
}

static double med_arr(const double *a, int n)
{
  double v[ROUNDS];
  memcpy(v, a, (size_t)n * sizeof *v);
  return n ? bench_median(v, (size_t)n) : -1;
}

/* v with `dec` decimals, or n/a for a missing figure (negative). */
static void fmt(char *buf, size_t cap, double v, int dec)
{
  if (v < 0)
    snprintf(buf, cap, "n/a");
  else
    snprintf(buf, cap, "%.*f", dec, v);
}

static void print_workload(int wl)
{
  double arena_ns = med(C_ARENA, wl, F_NS);
  bench_table_begin(wdesc[wl], "allocator", "ns/alloc", "burst p50 us", "burst p99 us", "cold burst us",
                    "faults/warm burst", "peak RSS MiB", "x arena", NULL);
  for (int ci = 0; ci < NC; ci++) {
    char c[7][24];
    double ns = med(ci, wl, F_NS);
    fmt(c[0], 24, ns, 2);
    fmt(c[1], 24, med(ci, wl, F_P50), 1);
    fmt(c[2], 24, med(ci, wl, F_P99), 1);
    fmt(c[3], 24, med(ci, wl, F_COLD), 0);
    fmt(c[4], 24, med(ci, wl, F_FAULTS), 3);
    fmt(c[5], 24, med(ci, wl, F_RSS), 1);
    fmt(c[6], 24, ns > 0 && arena_ns > 0 ? ns / arena_ns : -1, 2);
    bench_table_row("%s|%s|%s|%s|%s|%s|%s|%s", CT[ci].name, c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
  }
  bench_table_end();
}

static int parent_main(void)
{
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0) {
    printf("bench_arena: cannot find /proc/self/exe\n");
    return 1;
  }
  self_path[n] = 0;
  char thp[64] = "?";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f) {
    if (!fgets(thp, sizeof thp, f))
      thp[0] = 0;
    thp[strcspn(thp, "\n")] = 0;
    fclose(f);
  }
  printf("arena vs allocators: %d interleaved rounds, one child process per (allocator, workload, round); "
         "bursts per cell S/M/K/O/T = %d/%d/%d/%d/%d; THP: %s\n",
         ROUNDS, wbursts[W_S], wbursts[W_M], wbursts[W_K], wbursts[W_O], wbursts[W_T], thp);

  uint64_t t_start = bench_now_ns();
  double idle_rss[ROUNDS];
  int nidle = 0;
  for (int r = 0; r < ROUNDS; r++) {
    char line[1100], rs[8], ws[8], cs[8];
    snprintf(rs, sizeof rs, "%d", r);
    {
      char *argv[] = { self_path, "--child-idle", NULL };
      if (spawn(NULL, argv, line, sizeof line) == 0)
        idle_rss[nidle++] = field(line, "rss");
    }
    for (int wl = 0; wl < NW; wl++) {
      snprintf(ws, sizeof ws, "%d", wl);
      for (int k = 0; k < NC; k++) {
        int ci = (k + r) % NC;
        snprintf(cs, sizeof cs, "%d", ci);
        char *argv[] = { self_path, "--child", cs, ws, rs, NULL };
        if (spawn(CT[ci].preload, argv, line, sizeof line) != 0)
          continue;
        int i = nres[ci][wl]++;
        for (int fi = 0; fi < NF; fi++)
          res[ci][wl][fi][i] = field(line, fkey[fi]);
        if (!libname[ci][0]) {
          field_str(line, "lib", libname[ci], sizeof libname[ci]);
          field_str(line, "ver", libver[ci], sizeof libver[ci]);
        }
        if (!pages[ci][wl][0])
          field_str(line, "pages", pages[ci][wl], sizeof pages[ci][wl]);
      }
      if (wl == W_S || wl == W_M || wl == W_K) {
        char *argv[] = { self_path, "--child-metrics", ws, NULL };
        if (spawn(NULL, argv, line, sizeof line) == 0) {
          met_off[wl][nmet[wl]] = field(line, "off");
          met_on[wl][nmet[wl]] = field(line, "on");
          met_ratio[wl][nmet[wl]] = field(line, "ratio");
          nmet[wl]++;
        }
      }
    }
  }
  double elapsed = (double)(bench_now_ns() - t_start) / 1e9;

  bench_table_begin("Peers as loaded in their child processes (checked before measuring)",
                    "allocator", "preload", "malloc resolves to", "version", "rounds measured", NULL);
  for (int ci = 0; ci < NC; ci++)
    bench_table_row("%s|%s|%s|%s|%d", CT[ci].name, CT[ci].preload ? CT[ci].preload : "-",
                    libname[ci][0] ? libname[ci] : "FAILED", libver[ci][0] ? libver[ci] : "-",
                    nres[ci][W_S]);
  bench_table_end();
  printf("harness baseline peak RSS (idle child): %.1f MiB; arena pages: S/M/K %s, O %s\n",
         nidle ? med_arr(idle_rss, nidle) : -1.0, pages[C_ARENA][W_S], pages[C_ARENA][W_O]);

  for (int wl = W_S; wl <= W_O; wl++)
    print_workload(wl);
  printf("O: fallback chunks per burst (arena): %.2f\n", med(C_ARENA, W_O, F_CHUNKS));

  bench_table_begin(wdesc[W_T], "allocator", "1 thread ns/alloc", "2 threads ns/alloc per thread",
                    "2T / 1T", "x arena (2T)", NULL);
  double arena_t2 = med(C_ARENA, W_T, F_T2);
  for (int ci = 0; ci < NC; ci++) {
    double t1 = med(ci, W_T, F_T1), t2 = med(ci, W_T, F_T2);
    char c[4][24];
    fmt(c[0], 24, t1, 2);
    fmt(c[1], 24, t2, 2);
    fmt(c[2], 24, t1 > 0 && t2 > 0 ? t2 / t1 : -1, 2);
    fmt(c[3], 24, t2 > 0 && arena_t2 > 0 ? t2 / arena_t2 : -1, 2);
    bench_table_row("%s|%s|%s|%s|%s", CT[ci].name, c[0], c[1], c[2], c[3]);
  }
  bench_table_end();

  bench_table_begin("Metrics on vs off: the same arena and loop, bursts paired without / with "
                    "engram_arena_query after the burst",
                    "workload", "off ns/alloc", "on ns/alloc", "on / off - 1 (median of pairs)", NULL);
  double met_delta[NW];
  for (int wl = W_S; wl <= W_K; wl++) {
    double off = med_arr(met_off[wl], nmet[wl]), on = med_arr(met_on[wl], nmet[wl]);
    met_delta[wl] = med_arr(met_ratio[wl], nmet[wl]) - 1;
    bench_table_row("%s|%.3f|%.3f|%+.2f%%", wname[wl], off, on, 100 * met_delta[wl]);
  }
  bench_table_end();

  /* Targets from the issue. */
  bench_table_begin("Targets (ns/alloc ratios; faults of the arena)", "target", "workload", "measured", "met", NULL);
  for (int wl = W_S; wl <= W_K; wl++) {
    double r = med(C_ARENA, wl, F_NS) / med(C_BUMP, wl, F_NS);
    bench_table_row("public API <= 1.3x inline bump|%s|%.2fx|%s", wname[wl], r, r <= 1.3 ? "yes" : "NO");
  }
  for (int wl = W_S; wl <= W_M; wl++) {
    double best = -1;
    const char *who = "?";
    for (int ci = C_TC; ci <= C_MIHEAP; ci++) {
      double v = med(ci, wl, F_NS);
      if (v > 0 && (best < 0 || v < best)) {
        best = v;
        who = CT[ci].name;
      }
    }
    double a = med(C_ARENA, wl, F_NS), g = med(C_GLIBC, wl, F_NS);
    char got[48];
    snprintf(got, sizeof got, "%.1fx (%.*s)", best / a, (int)strcspn(who, " "), who);
    bench_table_row(">= 2.5x faster than tcmalloc, mimalloc, mi_heap|%s|%s|%s", wname[wl], got,
                    best / a >= 2.5 ? "yes" : "NO");
    bench_table_row(">= 10x faster than glibc|%s|%.1fx|%s", wname[wl], g / a, g / a >= 10 ? "yes" : "NO");
  }
  for (int wl = W_S; wl <= W_O; wl++) {
    double fl = med(C_ARENA, wl, F_FAULTS);
    bench_table_row("0 page faults per warm burst|%s|%.3f|%s", wname[wl], fl,
                    fl == 0 ? "yes" : wl == W_O ? "NO (fallback)" : "NO");
  }
  for (int wl = W_S; wl <= W_K; wl++)
    bench_table_row("metrics on vs off within 1%%|%s|%+.2f%%|%s", wname[wl], 100 * met_delta[wl],
                    fabs(met_delta[wl]) <= 0.01 ? "yes" : "NO");
  {
    /* The bump reference's own 2T/1T shows what the machine allows (shared L3 and memory). */
    double r = med(C_ARENA, W_T, F_T2) / med(C_ARENA, W_T, F_T1);
    double rb = med(C_BUMP, W_T, F_T2) / med(C_BUMP, W_T, F_T1);
    bench_table_row("2 threads per-thread within 10%% of 1 thread|T|%.2fx (bump %.2fx)|%s", r, rb,
                    r <= 1.10 ? "yes" : "NO");
  }
  bench_table_end();
  printf("elapsed %.1f s\n", elapsed);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc >= 5 && strcmp(argv[1], "--child") == 0) {
    int ci = atoi(argv[2]), wl = atoi(argv[3]), round = atoi(argv[4]);
    if (ci < 0 || ci >= NC || wl < 0 || wl >= NW)
      return 2;
    return child_main(ci, wl, round);
  }
  if (argc >= 3 && strcmp(argv[1], "--child-metrics") == 0)
    return child_metrics(atoi(argv[2]));
  if (argc >= 2 && strcmp(argv[1], "--child-idle") == 0) {
    printf("rss=%.2f\n", (double)bench_peak_rss() / (double)MiB);
    return 0;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);   /* progress is visible through a pipe */
  return parent_main();
}
