/*
 * test_pool.c — object pools, vector pools and the scoped-arena cache: reuse order, growth to
 * the memory cap and its error, alignment, zeroing, stats, debug-build misuse detection, and
 * shared pools under 32 threads (run under TSan: make MODE=tsan tests).
 */
#include "engram.h"
#include "test.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#if defined(ENGRAM_DEBUG) && ENGRAM_DEBUG
#  define DEBUG_BUILD 1
#else
#  define DEBUG_BUILD 0
#endif

static engram_pool *make_pool(const char *name, size_t size, size_t align, size_t initial, double growth,
                              size_t max_bytes, unsigned flags)
{
  engram_pool_config c = { name, size, align, initial, growth, max_bytes, flags };
  return engram_pool_create(&c);
}

static engram_pool_info query(engram_pool *p)
{
  engram_pool_info in;
  ENGRAM_STRUCT_INIT(in, ENGRAM_POOL_INFO_VERSION);
  int rc = engram_pool_query(p, &in);
  CHECK_EQ(rc, 0);
  return in;
}

/* ---- reuse order ------------------------------------------------------------------------- */

TEST(release_then_acquire_is_lifo)
{
  engram_pool *p = make_pool("lifo", 24, 8, 0, 0, 0, 0);
  CHECK(p != NULL);
  void *a = engram_pool_acquire(p), *b = engram_pool_acquire(p), *c = engram_pool_acquire(p);
  CHECK(a && b && c && a != b && b != c && a != c);
  engram_pool_release(p, b);
  engram_pool_release(p, c);
  engram_pool_release(p, a);
  CHECK(engram_pool_acquire(p) == a);   /* last released comes back first */
  CHECK(engram_pool_acquire(p) == c);
  CHECK(engram_pool_acquire(p) == b);
  void *d = engram_pool_acquire(p);     /* free list empty: fresh memory */
  CHECK(d != a && d != b && d != c);
  /* the out-of-line calls (what the FFI uses) share the same list */
  engram_pool_release_slow(p, d);
  CHECK(engram_pool_acquire_slow(p) == d);
  engram_pool_release(p, NULL);         /* no-op */
  engram_pool_destroy(p);
  engram_pool_destroy(NULL);
}

TEST(objects_are_aligned_and_disjoint_for_every_alignment)
{
  for (size_t align = 1; align <= 4096; align *= 2) {
    size_t size = 1 + align / 3 + 13;
    engram_pool *p = make_pool("align", size, align, 3, 1.5, 0, 0);
    CHECK(p != NULL);
    if (!p)
      return;
    enum { N = 200 };
    unsigned char *o[N];
    for (int i = 0; i < N; i++) {
      o[i] = engram_pool_acquire(p);
      CHECK(o[i] != NULL && (uintptr_t)o[i] % align == 0);
      if (o[i])
        memset(o[i], i & 0xff, size);
    }
    for (int i = 0; i < N; i++)
      for (size_t k = 0; k < size; k++)
        if (o[i][k] != (unsigned char)(i & 0xff)) {
          CHECK(!"objects overlap");
          k = size, i = N;
        }
    engram_pool_info in = query(p);
    CHECK_EQ(in.stride % align, 0);
    CHECK(in.stride >= size);
    CHECK_EQ(in.align, align);
    engram_pool_destroy(p);
  }
}

/* ---- growth and the cap ------------------------------------------------------------------ */

TEST(growth_doubles_up_to_the_cap_and_fails_with_the_exact_error)
{
  /* stride 64; first slab 16 objects, rounded up to a page = 64 objects; then doubling
   * 64 -> 128 -> 256 -> 512 -> 1024 = the 64 KiB cap exactly. */
  engram_pool *p = make_pool("capped", 64, 64, 16, 2.0, 64 << 10, 0);
  CHECK(p != NULL);
  size_t n = 0;
  void *last = NULL, *o;
  while ((o = engram_pool_acquire(p)) != NULL) {
    last = o;
    if (++n > 5000)
      break;
  }
  CHECK_EQ(n, 1024);
  CHECK_STR(engram_last_error(), "pool: memory cap of 64KiB reached ('capped': 1024 objects of 64 bytes in use)");
  CHECK(engram_pool_acquire(p) == NULL);   /* still full, still NULL */
  engram_pool_info in = query(p);
  CHECK_EQ(in.capacity, 1024);
  CHECK_EQ(in.in_use, 1024);
  CHECK_EQ(in.peak, 1024);
  CHECK_EQ(in.failures, 2);
  CHECK_EQ(in.slabs, 5);
  CHECK_EQ(in.bytes_reserved, 64 << 10);
  CHECK_EQ(in.max_bytes, 64 << 10);
  engram_pool_release(p, last);            /* room again: served from the free list */
  CHECK(engram_pool_acquire(p) == last);
  engram_pool_destroy(p);
}

TEST(a_cap_that_is_not_a_multiple_of_the_stride_is_still_exact)
{
  engram_pool *p = make_pool("odd cap", 100, 4, 0, 1.5, 1000, 0);   /* stride 100: 10 objects */
  size_t n = 0;
  while (engram_pool_acquire(p))
    n++;
  CHECK_EQ(n, 10);
  CHECK_STR(engram_last_error(), "pool: memory cap of 1000B reached ('odd cap': 10 objects of 100 bytes in use)");
  engram_pool_info in = query(p);
  CHECK_EQ(in.capacity, 10);
  CHECK_EQ(in.slabs, 1);
  CHECK_EQ(in.bytes_reserved, 4096);   /* the slab's page; the cap counts object bytes */
  engram_pool_destroy(p);
}

TEST(growth_factor_sets_each_new_slab)
{
  /* 4096-byte objects: one page each, so slabs are exactly the computed sizes:
   * 8, then ceil(8 * 0.5) = 4 (12), 6 (18), 9 (27). */
  engram_pool *p = make_pool("grow", 4096, 4096, 8, 1.5, 0, 0);
  size_t caps[] = { 8, 12, 18, 27 };
  size_t got = 0;
  for (int s = 0; s < 4; s++) {
    while (got < caps[s]) {
      CHECK(engram_pool_acquire(p) != NULL);
      got++;
    }
    engram_pool_info in = query(p);
    CHECK_EQ(in.capacity, caps[s]);
    CHECK_EQ(in.slabs, s + 1);
  }
  engram_pool_destroy(p);
}

/* ---- vectors ----------------------------------------------------------------------------- */

TEST(every_vector_slot_is_64_byte_aligned_for_any_dim)
{
  size_t dims[] = { 1, 3, 16, 768, 1000 };
  for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
    size_t dim = dims[d];
    engram_pool *p = engram_pool_create_vectors("vectors", dim, 0, 0);
    CHECK(p != NULL);
    if (!p)
      return;
    engram_pool_info in = query(p);
    CHECK_EQ(in.stride, (dim * 4 + 63) / 64 * 64);
    CHECK_EQ(in.align, 64);
    CHECK_EQ(in.vector_dim, dim);
    enum { N = 300 };
    float *v[N];
    for (int i = 0; i < N; i++) {
      v[i] = engram_pool_acquire_vector(p);
      CHECK(v[i] != NULL && (uintptr_t)v[i] % 64 == 0);
      for (size_t k = 0; k < dim; k++)
        v[i][k] = (float)(i * 7 + (int)k);
    }
    int bad = 0;
    for (int i = 0; i < N; i++)
      for (size_t k = 0; k < dim; k++)
        bad += v[i][k] != (float)(i * 7 + (int)k);
    CHECK_EQ(bad, 0);
    for (int i = 0; i < N; i += 2)
      engram_pool_release(p, v[i]);
    for (int i = 0; i < N / 2; i++) {
      float *w = engram_pool_acquire_vector(p);
      CHECK((uintptr_t)w % 64 == 0);
    }
    engram_pool_destroy(p);
  }
  CHECK(engram_pool_create_vectors("none", 0, 0, 0) == NULL);
  CHECK_STR(engram_last_error(), "pool: vector dimension 0 is out of range (expected 1 to 4294967295)");
}

/* ---- zeroing ----------------------------------------------------------------------------- */

TEST(zero_flag_gives_zeroed_objects_on_reuse)
{
  engram_pool *p = make_pool("zeroed", 200, 16, 0, 0, 0, ENGRAM_POOL_ZERO);
  unsigned char *a = engram_pool_acquire(p);
  int nonzero = 0;
  for (int k = 0; k < 200; k++)
    nonzero += a[k] != 0;
  CHECK_EQ(nonzero, 0);
  memset(a, 0xab, 200);
  engram_pool_release(p, a);
  unsigned char *b = engram_pool_acquire(p);
  CHECK(b == a);
  for (int k = 0; k < 200; k++)
    nonzero += b[k] != 0;
  CHECK_EQ(nonzero, 0);
  engram_pool_destroy(p);

  /* without the flag, everything past the free-list link is what the last user left */
  p = make_pool("dirty", 200, 16, 0, 0, 0, 0);
  a = engram_pool_acquire(p);
  memset(a, 0xab, 200);
  engram_pool_release(p, a);
  b = engram_pool_acquire(p);
  CHECK(b == a);
  int kept = 0;
  for (size_t k = sizeof(void *); k < 200; k++)
    kept += b[k] == 0xab;
  CHECK_EQ(kept, 200 - sizeof(void *));
  engram_pool_destroy(p);
}

/* ---- stats ------------------------------------------------------------------------------- */

TEST(stats_count_use_peak_and_reuse)
{
  engram_pool *p = make_pool("stats", 32, 16, 0, 0, 0, 0);
  void *o[10];
  for (int i = 0; i < 10; i++)
    o[i] = engram_pool_acquire(p);
  for (int i = 0; i < 6; i++)
    engram_pool_release(p, o[i]);
  for (int i = 0; i < 4; i++)
    o[i] = engram_pool_acquire(p);     /* 4 reuses */
  engram_pool_info in = query(p);
  CHECK_STR(in.name, "stats");
  CHECK_EQ(in.acquisitions, 14);
  CHECK_EQ(in.releases, 6);
  CHECK_EQ(in.in_use, 8);
  CHECK_EQ(in.peak, 10);
  CHECK_EQ(in.reuses, 4);
  CHECK(in.reuse_rate > 4.0 / 14 - 1e-12 && in.reuse_rate < 4.0 / 14 + 1e-12);
  CHECK_EQ(in.capacity, 4096 / 32);
  CHECK_EQ(in.bytes_reserved, 4096);
  CHECK_EQ(in.object_size, 32);
  CHECK_EQ(in.stride, 32);
  CHECK_EQ(in.failures, 0);
  CHECK_EQ(in.flags, 0);

  engram_pool_info bad;
  ENGRAM_STRUCT_INIT(bad, ENGRAM_POOL_INFO_VERSION + 1);
  CHECK_EQ(engram_pool_query(p, &bad), ENGRAM_EVERSION);
  engram_pool_destroy(p);
}

TEST(bad_configs_are_refused_with_a_message)
{
  CHECK(make_pool("x", 16, 3, 0, 0, 0, 0) == NULL);
  CHECK_STR(engram_last_error(), "pool: bad alignment 3 (expected a power of two from 1 to 4096)");
  CHECK(make_pool("x", 16, 8192, 0, 0, 0, 0) == NULL);
  CHECK(make_pool("x", 0, 8, 0, 0, 0, 0) == NULL);
  CHECK_STR(engram_last_error(), "pool: object size 0 is out of range (expected 1 to 1073741824 bytes)");
  CHECK(make_pool("x", 16, 8, 0, 1.0, 0, 0) == NULL);
  CHECK_STR(engram_last_error(), "pool: growth factor 1 is out of range (expected 1.125 to 16)");
  CHECK(make_pool("x", 64, 64, 0, 0, 63, 0) == NULL);
  CHECK_STR(engram_last_error(), "pool: memory cap of 63 bytes is below one object (stride 64 bytes)");
  CHECK(make_pool("x", 16, 8, 0, 0, 0, 0x80) == NULL);
  CHECK_STR(engram_last_error(), "pool: unknown flags 0x80");
  char longname[80];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK(make_pool(longname, 16, 8, 0, 0, 0, 0) == NULL);
  CHECK_STR(engram_last_error(), "pool: name is 79 bytes long (at most 63)");
  CHECK(engram_pool_create(NULL) == NULL);
}

/* ---- debug-build misuse ------------------------------------------------------------------ */

static void double_release(void *arg)
{
  (void)arg;
  engram_pool *p = make_pool("dbl", 48, 16, 0, 0, 0, 0);
  void *a = engram_pool_acquire(p);
  engram_pool_release(p, a);
  engram_pool_release(p, a);
}

static void foreign_release(void *arg)
{
  (void)arg;
  engram_pool *p = make_pool("foreign", 48, 16, 0, 0, 0, 0);
  (void)engram_pool_acquire(p);
  static char not_ours[64];
  engram_pool_release(p, not_ours);
}

static void interior_release(void *arg)
{
  (void)arg;
  engram_pool *p = make_pool("interior", 48, 16, 0, 0, 0, 0);
  char *a = engram_pool_acquire(p);
  engram_pool_release(p, a + 8);
}

static void never_handed_out(void *arg)
{
  (void)arg;
  engram_pool *p = make_pool("fresh", 48, 16, 0, 0, 0, 0);
  char *a = engram_pool_acquire(p);
  engram_pool_release(p, a + 48 * 3);   /* inside the slab, past the objects carved so far */
}

static void *use_pool(void *arg)
{
  (void)engram_pool_acquire(arg);
  return NULL;
}

static void foreign_thread(void *arg)
{
  (void)arg;
  engram_pool *p = make_pool("owned", 48, 16, 0, 0, 0, 0);
  pthread_t t;
  pthread_create(&t, NULL, use_pool, p);
  pthread_join(t, NULL);
}

static void expect_abort(void (*fn)(void *), const char *message)
{
  char out[1024];
  int status = test_child(fn, NULL, out, sizeof out);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK_CONTAINS(out, message);
}

TEST(debug_builds_abort_on_double_and_foreign_release)
{
  if (!DEBUG_BUILD)
    SKIP("release build: misuse checks are compiled in only with ENGRAM_DEBUG");
  expect_abort(double_release, "engram: pool 'dbl': double release of 0x");
  expect_abort(foreign_release, "engram: pool 'foreign': release of 0x");
  expect_abort(foreign_release, ", which is not from this pool");
  expect_abort(interior_release, "which points inside object 0 of slab 0, not at its start");
  expect_abort(never_handed_out, "which this pool never handed out");
  expect_abort(foreign_thread, "engram: pool 'owned': acquire from a thread that does not own the pool");
}

#if defined(ENGRAM_POISON) && defined(__SANITIZE_ADDRESS__)
static void use_after_release(void *arg)
{
  (void)arg;
  engram_pool *p = make_pool("poisoned", 64, 16, 0, 0, 0, 0);
  char *a = engram_pool_acquire(p);
  engram_pool_release(p, a);
  ((volatile char *)a)[40] = 1;
}
#endif

TEST(poisoning_builds_report_a_use_after_release)
{
#if defined(ENGRAM_POISON) && defined(__SANITIZE_ADDRESS__)
  char out[4096];
  int status = test_child(use_after_release, NULL, out, sizeof out);
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK_CONTAINS(out, "use-after-poison");
#else
  SKIP("needs an ASan build (released objects are poisoned only there)");
#endif
}

/* ---- threads ----------------------------------------------------------------------------- */

enum { THREADS = 32, ROUNDS = 300, HELD = 8, OBJ = 96 };

struct worker {
  engram_pool *pool;
  int id;
  int errors;
  uint64_t seed;
};

/* Each thread fills the objects it holds with its own pattern, yields, and checks the pattern
 * is intact: two threads holding the same object at once would overwrite each other. */
static void *hammer(void *arg)
{
  struct worker *w = arg;
  uint32_t *held[HELD];
  for (int r = 0; r < ROUNDS; r++) {
    int n = 1 + (int)(test_rand(&w->seed) % HELD);
    for (int i = 0; i < n; i++) {
      held[i] = engram_pool_acquire(w->pool);
      if (!held[i]) {
        w->errors++;
        n = i;
        break;
      }
      for (int k = 0; k < OBJ / 4; k++)
        held[i][k] = (uint32_t)(w->id << 24 | r << 8 | i);
    }
    if (r % 16 == 0)
      sched_yield();
    for (int i = 0; i < n; i++)
      for (int k = 0; k < OBJ / 4; k++)
        if (held[i][k] != (uint32_t)(w->id << 24 | r << 8 | i)) {
          w->errors++;
          break;
        }
    for (int i = n - 1; i >= 0; i -= 2)   /* release out of order */
      engram_pool_release(w->pool, held[i]);
    for (int i = n - 2; i >= 0; i -= 2)
      engram_pool_release(w->pool, held[i]);
  }
  return NULL;
}

TEST(shared_pool_survives_32_threads)
{
  uint64_t seed = test_seed("shared pool");
  engram_pool *p = make_pool("shared", OBJ, 32, 4, 2.0, 0, ENGRAM_POOL_SHARED);
  pthread_t t[THREADS];
  struct worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (struct worker){ p, i, 0, seed + (uint64_t)i * 0x9e3779b97f4a7c15ull };
    pthread_create(&t[i], NULL, hammer, &w[i]);
  }
  /* meanwhile, stats readers on this thread */
  for (int i = 0; i < 50; i++) {
    engram_pool_info in = query(p);
    CHECK(in.in_use <= in.capacity);
    char *json = engram_stats_json();
    CHECK(json != NULL);
    engram_free(json);
  }
  int errors = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    errors += w[i].errors;
  }
  CHECK_EQ(errors, 0);
  engram_pool_info in = query(p);
  CHECK_EQ(in.in_use, 0);
  CHECK_EQ(in.acquisitions, in.releases);
  CHECK(in.peak <= THREADS * HELD);
  CHECK(in.peak <= in.capacity);
  CHECK_EQ(in.flags, ENGRAM_POOL_SHARED);
  engram_pool_destroy(p);
}

static void *local_worker(void *arg)
{
  struct worker *w = arg;
  w->pool = make_pool("local", OBJ, 16, 0, 0, 0, 0);   /* owned by this thread */
  hammer(w);
  return NULL;
}

TEST(thread_local_pools_can_be_read_from_another_thread)
{
  uint64_t seed = test_seed("local pools");
  enum { N = 4 };
  pthread_t t[N];
  struct worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (struct worker){ NULL, i, 0, seed + (uint64_t)i };
    pthread_create(&t[i], NULL, local_worker, &w[i]);
  }
  for (int i = 0; i < 50; i++) {
    char *json = engram_stats_json();   /* reads the counters while the owners run */
    CHECK(json != NULL);
    engram_free(json);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    CHECK_EQ(w[i].errors, 0);
    engram_pool_info in = query(w[i].pool);
    CHECK_EQ(in.in_use, 0);
    CHECK_EQ(in.acquisitions, in.releases);
    CHECK(in.peak >= 1 && in.peak <= HELD);
    engram_pool_adopt(w[i].pool);       /* the owner is gone: this thread takes it over */
    engram_pool_destroy(w[i].pool);
  }
}

/* ---- scoped arenas ----------------------------------------------------------------------- */

static engram_arena_cache_info cache_query(engram_arena_cache *c)
{
  engram_arena_cache_info in;
  ENGRAM_STRUCT_INIT(in, ENGRAM_ARENA_CACHE_INFO_VERSION);
  CHECK_EQ(engram_arena_cache_query(c, &in), 0);
  return in;
}

TEST(arena_cache_reuses_reset_arenas_by_class)
{
  engram_arena_cache_config cfg = { .name = "scratch", .keep_per_class = 2 };
  engram_arena_cache *c = engram_arena_cache_create(&cfg);
  CHECK(c != NULL);
  engram_arena *a = engram_arena_cache_acquire(c, 100 << 10);
  CHECK(a != NULL);
  CHECK_EQ(engram_arena_capacity(a), 128 << 10);
  CHECK(engram_arena_alloc(a, 1000) != NULL);
  CHECK_EQ(engram_arena_cache_release(c, a), 0);
  engram_arena *b = engram_arena_cache_acquire(c, 128 << 10);   /* same class: the kept one */
  CHECK(b == a);
  CHECK_EQ(engram_arena_used(b), 0);
  engram_arena *small = engram_arena_cache_acquire(c, 0);       /* the smallest class */
  CHECK_EQ(engram_arena_capacity(small), 64 << 10);
  engram_arena_cache_info in = cache_query(c);
  CHECK_STR(in.name, "scratch");
  CHECK_EQ(in.acquisitions, 3);
  CHECK_EQ(in.reuses, 1);
  CHECK_EQ(in.created, 2);
  CHECK_EQ(in.out, 2);
  CHECK_EQ(in.kept, 0);
  CHECK_EQ(engram_arena_cache_release(c, b), 0);
  CHECK_EQ(engram_arena_cache_release(c, small), 0);
  in = cache_query(c);
  CHECK_EQ(in.kept, 2);
  CHECK_EQ(in.kept_per_class[0], 1);
  CHECK_EQ(in.kept_per_class[1], 1);
  CHECK_EQ(in.kept_bytes, (64 << 10) + (128 << 10));
  engram_arena_cache_destroy(c);
}

TEST(arena_cache_keeps_a_bounded_number_per_class)
{
  engram_arena_cache_config cfg = { .name = "bounded", .keep_per_class = 3 };
  engram_arena_cache *c = engram_arena_cache_create(&cfg);
  engram_arena *a[5];
  for (int i = 0; i < 5; i++)
    a[i] = engram_arena_cache_acquire(c, 64 << 10);
  engram_stats st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_STATS_VERSION);
  engram_stats_snapshot(&st);
  uint64_t live_before = st.arenas_live;
  for (int i = 0; i < 5; i++)
    CHECK_EQ(engram_arena_cache_release(c, a[i]), 0);
  engram_arena_cache_info in = cache_query(c);
  CHECK_EQ(in.kept, 3);
  CHECK_EQ(in.destroyed, 2);
  CHECK_EQ(in.out, 0);
  engram_stats_snapshot(&st);
  CHECK_EQ(st.arenas_live, live_before - 2);   /* the extra two really were destroyed */
  /* the kept ones come back, newest first, then new ones are made */
  for (int i = 0; i < 4; i++)
    a[i] = engram_arena_cache_acquire(c, 1);
  in = cache_query(c);
  CHECK_EQ(in.reuses, 3);
  CHECK_EQ(in.created, 6);
  for (int i = 0; i < 4; i++)
    engram_arena_cache_release(c, a[i]);
  engram_arena_cache_destroy(c);
  engram_arena_cache_destroy(NULL);
}

TEST(arena_cache_refuses_what_it_cannot_serve_or_did_not_hand_out)
{
  engram_arena_cache *c = engram_arena_cache_create(NULL);
  CHECK(engram_arena_cache_acquire(c, ((size_t)1 << 30) + 1) == NULL);
  CHECK_STR(engram_last_error(), "arena cache: 1073741825 bytes is above the largest size class (1073741824 bytes)");
  engram_arena_config ac;
  engram_config_arena_default(&ac);
  ac.size = 100000;
  engram_arena *other = engram_arena_create(&ac);
  CHECK_EQ(engram_arena_cache_release(c, other), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "arena cache: 'arenas' did not hand out this arena (capacity 100000 is not a size class)");
  ac.size = 64 << 10;
  engram_arena *other2 = engram_arena_create(&ac);
  CHECK_EQ(engram_arena_cache_release(c, other2), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "arena cache: 'arenas' did not hand out this arena (none is out)");
  engram_arena_destroy(other);
  engram_arena_destroy(other2);
  engram_arena_cache_config bad = { .align = 3 };
  CHECK(engram_arena_cache_create(&bad) == NULL);
  engram_arena_cache_destroy(c);
}

int main(void)
{
  RUN(release_then_acquire_is_lifo);
  RUN(objects_are_aligned_and_disjoint_for_every_alignment);
  RUN(growth_doubles_up_to_the_cap_and_fails_with_the_exact_error);
  RUN(a_cap_that_is_not_a_multiple_of_the_stride_is_still_exact);
  RUN(growth_factor_sets_each_new_slab);
  RUN(every_vector_slot_is_64_byte_aligned_for_any_dim);
  RUN(zero_flag_gives_zeroed_objects_on_reuse);
  RUN(stats_count_use_peak_and_reuse);
  RUN(bad_configs_are_refused_with_a_message);
  RUN(debug_builds_abort_on_double_and_foreign_release);
  RUN(poisoning_builds_report_a_use_after_release);
  RUN(shared_pool_survives_32_threads);
  RUN(thread_local_pools_can_be_read_from_another_thread);
  RUN(arena_cache_reuses_reset_arenas_by_class);
  RUN(arena_cache_keeps_a_bounded_number_per_class);
  RUN(arena_cache_refuses_what_it_cannot_serve_or_did_not_hand_out);
  return test_done();
}
