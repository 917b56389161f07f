/*
 * bench_pool.c — object and vector pools against malloc/free of the same size, in one run:
 * glibc, jemalloc, tcmalloc (gperftools, minimal) and mimalloc.
 *
 *   acquire+release pairs of 16, 64 and 256 bytes, 1 and 2 threads (each thread its own pool,
 *   and one shared pool contended by both);
 *   768-float vectors (3072 bytes, 64-byte aligned) against aligned_alloc/free.
 *
 * Each cell is the median of ROUNDS runs; the rounds interleave all contenders (the starting
 * contender rotates), so a noisy moment on this shared machine hits every contender alike.
 * Every pair writes one byte of the object, as a user would.
 *
 * How the other allocators share this process. Interposition (LD_PRELOAD) gives one malloc per
 * process, so the peers would run in separate processes and could not be interleaved round
 * by round. Instead each library is dlopen'ed with RTLD_LOCAL | RTLD_DEEPBIND (its own symbols
 * stay private and bind to itself first) and its own entry points are called through
 * pointers: jemalloc's malloc/free/aligned_alloc (its exported names), tcmalloc's
 * tc_malloc/tc_free/tc_memalign, mimalloc's mi_malloc/mi_free/mi_malloc_aligned. glibc's
 * malloc is called through a pointer as well, so no peer is inlined or elided and all pay the
 * same indirect call. The pools' fast path is the header's inline code, which is the point.
 * jemalloc is built with initial-exec TLS, which dlopen can only satisfy from glibc's spare
 * static TLS (512 bytes by default, too small); the program re-executes itself once with
 * GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536 so the dlopen succeeds.
 */
#include "bench.h"
#include "engram.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { ROUNDS = 7, PAIRS = 2000000, VEC_DIM = 768, VEC_PAIRS = 1000000, MAX_THREADS = 2 };

typedef struct peer {
  const char *name;
  void *(*malloc_)(size_t);
  void (*free_)(void *);
  void *(*memalign_)(size_t align, size_t n);   /* aligned_alloc, tc_memalign */
  void *(*mi_aligned_)(size_t n, size_t align); /* mi_malloc_aligned */
} peer;

static peer peers[4];
static int npeers;

static void load_peers(void)
{
  /* glibc: the process's own allocator, through pointers like the others */
  peers[npeers++] = (peer){ "glibc", malloc, free, aligned_alloc, NULL };
  static const struct { const char *lib, *name, *m, *f, *a, *mia; } want[] = {
    { "libjemalloc.so.2", "jemalloc", "malloc", "free", "aligned_alloc", NULL },
    { "libtcmalloc_minimal.so.4", "tcmalloc", "tc_malloc", "tc_free", "tc_memalign", NULL },
    { "libmimalloc.so.2", "mimalloc", "mi_malloc", "mi_free", NULL, "mi_malloc_aligned" },
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    void *h = dlopen(want[i].lib, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
      printf("# %s not measured: %s\n", want[i].name, dlerror());
      continue;
    }
    peer p = { want[i].name, NULL, NULL, NULL, NULL };
    *(void **)&p.malloc_ = dlsym(h, want[i].m);
    *(void **)&p.free_ = dlsym(h, want[i].f);
    if (want[i].a)
      *(void **)&p.memalign_ = dlsym(h, want[i].a);
    if (want[i].mia)
      *(void **)&p.mi_aligned_ = dlsym(h, want[i].mia);
    if (!p.malloc_ || !p.free_ || (!p.memalign_ && !p.mi_aligned_)) {
      printf("# %s not measured: missing symbols in %s\n", want[i].name, want[i].lib);
      continue;
    }
    peers[npeers++] = p;
  }
}

/* ---- contenders ------------------------------------------------------------------------- */

enum kind {
  K_POOL,          /* thread-local pool, the inline fast path of engram.h */
  K_POOL_NOSTATS,  /* the same free-list code without the two counters: what stats cost */
  K_POOL_CALL,     /* the out-of-line calls (what the Lua FFI binding uses) */
  K_POOL_SHARED,   /* one ENGRAM_POOL_SHARED pool for all threads (mutex) */
  K_MALLOC,        /* a peer's malloc/free */
};

typedef struct contender {
  const char *name;
  enum kind kind;
  const peer *peer;
} contender;

/* The inline acquire/release minus the counters: same struct, same list, for comparison only
 * (the pool's stats are wrong afterwards, so it runs on a pool of its own). */
static inline void *acquire_nostats(engram_pool *p)
{
  void *o = p->free;
  if (ENGRAM_LIKELY(o != NULL)) {
    p->free = *(void **)o;
    return o;
  }
  return engram_pool_acquire_slow(p);
}

static inline void release_nostats(engram_pool *p, void *o)
{
  if (ENGRAM_LIKELY(p->inline_ok && o != NULL)) {
    *(void **)o = p->free;
    p->free = o;
    return;
  }
  engram_pool_release_slow(p, o);
}

/* n acquire+release pairs of `size` bytes (vectors: 64-byte aligned `size` bytes);
 * returns ns per pair. */
static double pairs(const contender *c, engram_pool *pool, size_t size, long n, int vector)
{
  uint64_t t0 = bench_now_ns();
  switch (c->kind) {
  case K_POOL:
  case K_POOL_SHARED:
    for (long i = 0; i < n; i++) {
      char *o = engram_pool_acquire(pool);
      o[0] = (char)i;
      if (vector)
        o[size - 1] = (char)i;
      BENCH_KEEP(o);
      engram_pool_release(pool, o);
    }
    break;
  case K_POOL_NOSTATS:
    for (long i = 0; i < n; i++) {
      char *o = acquire_nostats(pool);
      o[0] = (char)i;
      BENCH_KEEP(o);
      release_nostats(pool, o);
    }
    break;
  case K_POOL_CALL:
    for (long i = 0; i < n; i++) {
      char *o = engram_pool_acquire_slow(pool);
      o[0] = (char)i;
      BENCH_KEEP(o);
      engram_pool_release_slow(pool, o);
    }
    break;
  case K_MALLOC: {
    const peer *p = c->peer;
    if (!vector) {
      for (long i = 0; i < n; i++) {
        char *o = p->malloc_(size);
        o[0] = (char)i;
        BENCH_KEEP(o);
        p->free_(o);
      }
    } else if (p->memalign_) {
      for (long i = 0; i < n; i++) {
        char *o = p->memalign_(64, size);
        o[0] = (char)i;
        o[size - 1] = (char)i;
        BENCH_KEEP(o);
        p->free_(o);
      }
    } else {
      for (long i = 0; i < n; i++) {
        char *o = p->mi_aligned_(size, 64);
        o[0] = (char)i;
        o[size - 1] = (char)i;
        BENCH_KEEP(o);
        p->free_(o);
      }
    }
    break;
  }
  }
  return (double)(bench_now_ns() - t0) / (double)n;
}

/* ---- threads ----------------------------------------------------------------------------- */

struct job {
  const contender *c;
  engram_pool *shared;
  size_t size;
  long n;
  int vector;
  pthread_barrier_t *start;
  double ns;
};

static engram_pool *make_pool(size_t size, int vector)
{
  if (vector)
    return engram_pool_create_vectors("bench vectors", size / sizeof(float), 0, 0);
  engram_pool_config cfg = { .name = "bench", .object_size = size, .align = 16 };
  return engram_pool_create(&cfg);
}

static void *thread_main(void *arg)
{
  struct job *j = arg;
  engram_pool *pool = j->shared;
  if (!pool && j->c->kind != K_MALLOC)
    pool = make_pool(j->size, j->vector);   /* on this thread: it owns it */
  pairs(j->c, pool, j->size, j->n / 50, j->vector);   /* warm caches, first slab, thread cache */
  pthread_barrier_wait(j->start);
  j->ns = pairs(j->c, pool, j->size, j->n, j->vector);
  if (pool != j->shared)
    engram_pool_destroy(pool);
  return NULL;
}

/* Run a contender on `threads` threads at once; the mean per-thread ns per pair. */
static double run(const contender *c, size_t size, long n, int threads, int vector)
{
  pthread_t t[MAX_THREADS];
  struct job j[MAX_THREADS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  engram_pool *shared = NULL;
  if (c->kind == K_POOL_SHARED) {
    engram_pool_config cfg = { .name = "bench shared", .object_size = size, .align = 16,
                               .flags = ENGRAM_POOL_SHARED };
    shared = engram_pool_create(&cfg);
  }
  for (int i = 0; i < threads; i++) {
    j[i] = (struct job){ c, shared, size, n, vector, &start, 0 };
    pthread_create(&t[i], NULL, thread_main, &j[i]);
  }
  double sum = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    sum += j[i].ns;
  }
  pthread_barrier_destroy(&start);
  engram_pool_destroy(shared);
  return sum / threads;
}

/* ---- tables ------------------------------------------------------------------------------ */

/* Medians of ROUNDS interleaved runs of every contender; row 0 is the reference (the pool). */
static void measure(const contender *cs, int nc, size_t size, long n, int threads, int vector, double *med)
{
  double v[16][ROUNDS];
  for (int r = 0; r < ROUNDS; r++)
    for (int k = 0; k < nc; k++) {
      int i = (k + r) % nc;
      v[i][r] = run(&cs[i], size, n, threads, vector);
    }
  for (int i = 0; i < nc; i++)
    med[i] = bench_median(v[i], ROUNDS);
}

static void table(const char *title, const contender *cs, int nc, const double *med, int first_peer)
{
  bench_table_begin(title, "contender", "ns/pair", "x pool (inline)", NULL);
  for (int i = 0; i < nc; i++)
    bench_table_row("%s|%.2f|%.2f", cs[i].name, med[i], med[i] / med[0]);
  bench_table_end();
  int best = -1;
  for (int i = first_peer; i < nc; i++)
    if (best < 0 || med[i] < med[best])
      best = i;
  if (best >= 0)
    printf("  pool (inline) vs the fastest peer (%s): %.1fx faster (target >= 3x)\n", cs[best].name,
           med[best] / med[0]);
}

static void reexec_for_static_tls(char **argv)
{
  if (getenv("ENGRAM_BENCH_POOL_REEXEC"))
    return;
  const char *old = getenv("GLIBC_TUNABLES");
  char tun[512];
  snprintf(tun, sizeof tun, "%s%sglibc.rtld.optional_static_tls=65536", old ? old : "", old ? ":" : "");
  setenv("GLIBC_TUNABLES", tun, 1);
  setenv("ENGRAM_BENCH_POOL_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  printf("# re-exec for static TLS failed; jemalloc may be missing below\n");
}

int main(int argc, char **argv)
{
  (void)argc;
  reexec_for_static_tls(argv);
  load_peers();
  printf("# %d pairs per run (vectors %d), median of %d interleaved runs; ns per acquire+release pair\n",
         PAIRS, VEC_PAIRS, ROUNDS);

  contender cs[16];
  int nc = 0;
  cs[nc++] = (contender){ "pool (inline)", K_POOL, NULL };
  cs[nc++] = (contender){ "pool, no counters (ref)", K_POOL_NOSTATS, NULL };
  cs[nc++] = (contender){ "pool (out-of-line call)", K_POOL_CALL, NULL };
  cs[nc++] = (contender){ "pool shared (mutex)", K_POOL_SHARED, NULL };
  int first_peer = nc;
  for (int i = 0; i < npeers; i++)
    cs[nc++] = (contender){ peers[i].name, K_MALLOC, &peers[i] };

  static const size_t sizes[] = { 16, 64, 256 };
  double med[16];
  char title[160];
  for (int threads = 1; threads <= MAX_THREADS; threads++)
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      measure(cs, nc, sizes[s], PAIRS, threads, 0, med);
      snprintf(title, sizeof title, "acquire+release, %zu bytes, %d thread%s%s", sizes[s], threads,
               threads > 1 ? "s (per thread; the shared pool is contended by both)" : "", "");
      table(title, cs, nc, med, first_peer);
    }

  /* vectors: the pool against aligned allocation of the same 64-byte aligned block */
  contender vs[16];
  int nv = 0;
  vs[nv++] = (contender){ "vector pool (inline)", K_POOL, NULL };
  int first_vpeer = nv;
  static char vnames[4][48];
  for (int i = 0; i < npeers; i++) {
    const peer *p = &peers[i];
    snprintf(vnames[i], sizeof vnames[i], "%.12s %s", p->name,
             p->mi_aligned_ ? "mi_malloc_aligned" : p->memalign_ == aligned_alloc ? "aligned_alloc"
             : strcmp(p->name, "tcmalloc") == 0 ? "tc_memalign" : "aligned_alloc");
    vs[nv++] = (contender){ vnames[i], K_MALLOC, p };
  }
  for (int threads = 1; threads <= MAX_THREADS; threads++) {
    measure(vs, nv, VEC_DIM * sizeof(float), VEC_PAIRS, threads, 1, med);
    snprintf(title, sizeof title, "768-float vector (3072 B, 64-byte aligned) vs aligned alloc/free, %d thread%s",
             threads, threads > 1 ? "s (per thread)" : "");
    table(title, vs, nv, med, first_vpeer);
  }
  return 0;
}
