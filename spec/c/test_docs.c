/*
 * test_docs.c — the contracts of runtime/engram.h and README.md, checked from the outside.
 *
 * Every test is one documented promise (error codes and messages, struct versions, the arena's
 * strategies and scopes, pools, the kernels' argument checks and ENGRAM_ISA, the runtime's
 * submit/shutdown/limits, the store's open and commit errors). A test named mismatch_* shows a
 * place where the library and its documentation disagree; it fails until one of them changes.
 *
 * The environment is read once per process, so the checks of ENGRAM_* variables re-run this
 * program with `--env CASE` and the variable set, and read its one-line verdict.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "engram.h"
#include "test.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char self_exe[4096];
static char tmpdir[256];

static char *tmp_path(const char *name)
{
  static char buf[8][512];
  static int k;
  char *p = buf[k++ & 7];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

static void remove_db(const char *path)
{
  char b[600];
  unlink(path);
  snprintf(b, sizeof b, "%s-wal", path);
  unlink(b);
  snprintf(b, sizeof b, "%s-shm", path);
  unlink(b);
}

static engram_arena *arena_of(size_t size, engram_overflow ov)
{
  engram_arena_config c = { .size = size, .align = 16, .overflow = ov, .huge_pages = ENGRAM_HUGE_OFF };
  return engram_arena_create(&c);
}

static int is_lower_text(const char *s)
{
  if (!s || !*s) return 0;
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') return 0;
  return 1;
}

/* ==================================================================================== */
/* Version and errors                                                                   */

TEST(version_matches_header)
{
  CHECK_EQ(engram_version(), ENGRAM_VERSION_NUM);
  CHECK_EQ(ENGRAM_VERSION_NUM, ENGRAM_VERSION_MAJOR * 10000 + ENGRAM_VERSION_MINOR * 100 + ENGRAM_VERSION_PATCH);
}

TEST(strerror_is_static_lower_case_and_distinct)
{
  for (int c = ENGRAM_ECODE_MIN; c <= 0; c++) {
    const char *s = engram_strerror(c);
    CHECK(is_lower_text(s));
    for (int d = ENGRAM_ECODE_MIN; d < c; d++)
      CHECK(strcmp(s, engram_strerror(d)) != 0);
  }
}

TEST(last_error_is_never_null)
{
  CHECK(engram_last_error() != NULL);
}

static void *fail_on_other_thread(void *arg)
{
  (void)arg;
  size_t v;
  engram_parse_size("not a size", &v);
  return NULL;
}

TEST(last_error_belongs_to_the_calling_thread)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc(a, 1 << 20) == NULL);
  char mine[512];
  snprintf(mine, sizeof mine, "%s", engram_last_error());
  pthread_t t;
  pthread_create(&t, NULL, fail_on_other_thread, NULL);
  pthread_join(t, NULL);
  CHECK_STR(engram_last_error(), mine);
  engram_arena_destroy(a);
}

/* ==================================================================================== */
/* Arena                                                                                */

TEST(arena_null_config_is_the_process_default)
{
  engram_arena_config def;
  CHECK_EQ(engram_config_arena_default(&def), 0);
  CHECK_EQ(def.align, ENGRAM_ARENA_DEFAULT_ALIGN);
  engram_arena *a = engram_arena_create(NULL);
  CHECK(a != NULL);
  CHECK_EQ(engram_arena_capacity(a), def.size);
  engram_arena_destroy(a);
}

TEST(arena_bad_config_is_einval)
{
  engram_arena_config c = { .size = ENGRAM_ARENA_MAX_SIZE + 1, .align = 16 };
  CHECK(engram_arena_create(&c) == NULL);
  c.size = 64 << 10;
  c.align = 3;
  CHECK(engram_arena_create(&c) == NULL);
  c.align = 8192;
  CHECK(engram_arena_create(&c) == NULL);
  c.align = 16;
  c.overflow = (engram_overflow)7;
  CHECK(engram_arena_create(&c) == NULL);
  (void)engram_last_error();
}

TEST(arena_alignments_up_to_4096)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  for (size_t k = 1; k <= ENGRAM_ARENA_MAX_ALIGN; k <<= 1) {
    CHECK(engram_arena_alloc(a, 1) != NULL);
    void *p = engram_arena_alloc_aligned(a, 8, k);
    CHECK(p != NULL && (uintptr_t)p % k == 0);
  }
  engram_arena_destroy(a);
}

/* Through a volatile so the alignment is not a compile-time constant. */
static volatile size_t bad_aligns[] = { 0, 3, 24, 8192 };

TEST(arena_invalid_alignment_is_null_einval)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  for (size_t i = 0; i < sizeof bad_aligns / sizeof bad_aligns[0]; i++) {
    CHECK(engram_arena_alloc_aligned(a, 10, bad_aligns[i]) == NULL);
    CHECK(engram_arena_alloc_slow(a, 10, bad_aligns[i]) == NULL);
  }
  engram_arena_destroy(a);
}

TEST(arena_zero_bytes_is_a_valid_aligned_pointer)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc(a, 1) != NULL);
  size_t before = engram_arena_used(a);
  void *p = engram_arena_alloc_aligned(a, 0, 64);
  CHECK(p != NULL && (uintptr_t)p % 64 == 0);
  CHECK(engram_arena_used(a) - before < 64);
  engram_arena_destroy(a);
}

static volatile size_t big_count = SIZE_MAX / 2;

TEST(arena_array_overflow_is_eoverflow)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(engram_arena_alloc_array(a, big_count, 4, 16) == NULL);
  CHECK_EQ(engram_arena_used(a), 0);
  engram_arena_destroy(a);
}

static volatile size_t huge_n = SIZE_MAX - 8;

TEST(arena_n_near_size_max_never_wraps)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc(a, 1) != NULL);
  CHECK(engram_arena_alloc_aligned(a, huge_n, 64) == NULL);
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  CHECK_EQ(engram_arena_query(a, &info), 0);
  CHECK_EQ(info.overflows, 1);
  engram_arena_destroy(a);
  engram_arena *f = arena_of(64 << 10, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(engram_arena_alloc_aligned(f, huge_n, 64) == NULL);
  engram_arena_destroy(f);
}

/* The out-of-memory message as the README and the header (engram_last_error) show it. */
TEST(arena_out_of_memory_messages_as_documented)
{
  static const struct { size_t cap, first, second; const char *message; } cases[] = {
    { 65536, 4000, 80000, "arena: out of memory (requested 80000 bytes, align 64; 4000 of 65536 bytes used)" },
    { 1048576, 1048000, 4096,
      "arena: out of memory (requested 4096 bytes, align 64; 1048000 of 1048576 bytes used)" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    engram_arena *a = arena_of(cases[i].cap, ENGRAM_OVERFLOW_ERROR);
    CHECK(engram_arena_alloc_aligned(a, cases[i].first, 64) != NULL);
    CHECK(engram_arena_alloc_aligned(a, cases[i].second, 64) == NULL);
    CHECK_STR(engram_last_error(), cases[i].message);
    engram_arena_destroy(a);
  }
}

TEST(arena_reset_gives_everything_back_and_counts)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  uint64_t e0 = a->epoch;
  CHECK(engram_arena_alloc(a, 5000) != NULL);
  engram_arena_reset(a);
  CHECK_EQ(engram_arena_used(a), 0);
  CHECK(a->epoch != e0);
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  CHECK_EQ(engram_arena_query(a, &info), 0);
  CHECK_EQ(info.resets, 1);
  CHECK(info.high_water >= 5000);
  CHECK_EQ(info.capacity, 1 << 20);
  CHECK_EQ(info.used, 0);
  CHECK_EQ(info.overflow_strategy, ENGRAM_OVERFLOW_ERROR);
  CHECK_EQ(info.page_kind, ENGRAM_PAGES_4K);
  engram_arena_destroy(a);
}

TEST(arena_query_checks_size_and_version)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  info.struct_size -= 8;
  CHECK_EQ(engram_arena_query(a, &info), ENGRAM_EVERSION);
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION + 1);
  CHECK_EQ(engram_arena_query(a, &info), ENGRAM_EVERSION);
  engram_arena_destroy(a);
}

TEST(arena_marks_nest_and_stale_marks_are_refused)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_mark m1 = engram_arena_mark(a);
  engram_arena_alloc(a, 100);
  engram_mark m2 = engram_arena_mark(a);
  engram_arena_alloc(a, 200);
  CHECK_EQ(engram_arena_rewind(a, m2), 0);
  size_t at_m2 = engram_arena_used(a);
  CHECK(at_m2 >= 100 && at_m2 < 300);
  CHECK_EQ(engram_arena_rewind(a, m1), 0);
  CHECK_EQ(engram_arena_used(a), 0);
  /* m2 lies beyond the top now: already rewound past */
  engram_arena_alloc(a, 16);
  size_t used = engram_arena_used(a);
  CHECK_EQ(engram_arena_rewind(a, m2), ENGRAM_ESTALE);
  CHECK_EQ(engram_arena_used(a), used);
  /* a mark from before a reset */
  engram_mark m3 = engram_arena_mark(a);
  engram_arena_reset(a);
  engram_arena_alloc(a, 4096);
  CHECK_EQ(engram_arena_rewind(a, m3), ENGRAM_ESTALE);
  CHECK_EQ(engram_arena_used(a), 4096);
  engram_arena_destroy(a);
}

TEST(arena_scopes_make_inner_handles_stale)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  uint64_t outer = a->epoch;
  engram_mark s;
  CHECK_EQ(engram_arena_scope_enter(a, &s), 0);
  uint64_t inner = a->epoch;
  CHECK(inner != outer);
  CHECK(engram_arena_epoch_live(a, outer));
  CHECK(engram_arena_epoch_live(a, inner));
  engram_arena_alloc(a, 1000);
  CHECK_EQ(engram_arena_scope_leave(a, s), 0);
  CHECK_EQ(engram_arena_used(a), 0);
  CHECK(!engram_arena_epoch_live(a, inner));
  CHECK(engram_arena_epoch_live(a, outer));
  CHECK_EQ(a->epoch, outer);
  engram_arena_reset(a);
  CHECK(!engram_arena_epoch_live(a, outer));
  engram_arena_destroy(a);
}

TEST(arena_scopes_nest_up_to_the_maximum_and_outer_leave_closes_inner)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_mark m[ENGRAM_ARENA_MAX_SCOPES + 1];
  uint64_t ep[ENGRAM_ARENA_MAX_SCOPES];
  for (int i = 0; i < ENGRAM_ARENA_MAX_SCOPES; i++) {
    CHECK_EQ(engram_arena_scope_enter(a, &m[i]), 0);
    ep[i] = a->epoch;
  }
  CHECK_EQ(engram_arena_scope_enter(a, &m[ENGRAM_ARENA_MAX_SCOPES]), ENGRAM_EFULL);
  CHECK_EQ(engram_arena_scope_leave(a, m[1]), 0);
  CHECK(engram_arena_epoch_live(a, ep[0]));
  CHECK(!engram_arena_epoch_live(a, ep[1]));
  CHECK(!engram_arena_epoch_live(a, ep[ENGRAM_ARENA_MAX_SCOPES - 1]));
  engram_arena_destroy(a);
}

TEST(arena_epochs_are_unique_and_a_destroyed_arena_reads_stale)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  engram_arena *b = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  CHECK(a->epoch != b->epoch);
  uint64_t ea = a->epoch;
  engram_arena_destroy(a);
  CHECK(!engram_arena_epoch_live(a, ea));
  engram_arena *c = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);   /* may recycle a's header */
  CHECK(!engram_arena_epoch_live(a, ea));
  CHECK(c->epoch != ea && c->epoch != b->epoch);
  engram_arena_destroy(b);
  engram_arena_destroy(c);
  engram_arena_destroy(NULL);
}

static uint64_t fallback_bytes(engram_arena *a)
{
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  engram_arena_query(a, &info);
  return info.fallback_bytes;
}

static uint64_t fallback_chunks(engram_arena *a)
{
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  engram_arena_query(a, &info);
  return info.fallback_chunks;
}

TEST(arena_fallback_chunk_is_an_eighth_clamped_to_64k_16m)
{
  /* 1 MiB: an eighth is 128 KiB */
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(engram_arena_alloc(a, 1 << 20) != NULL);
  CHECK(engram_arena_alloc(a, 100) != NULL);
  CHECK(fallback_bytes(a) >= (128u << 10));
  CHECK(fallback_bytes(a) < (256u << 10));
  engram_arena_destroy(a);
  /* 64 KiB: an eighth is 8 KiB, so 64 KiB */
  a = arena_of(64 << 10, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(engram_arena_alloc(a, 64 << 10) != NULL);
  CHECK(engram_arena_alloc(a, 100) != NULL);
  CHECK(fallback_bytes(a) >= (64u << 10));
  CHECK(fallback_bytes(a) < (128u << 10));
  engram_arena_destroy(a);
  /* 256 MiB: an eighth is 32 MiB, so 16 MiB */
  a = arena_of((size_t)256 << 20, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(a != NULL);
  if (a) {
    CHECK(engram_arena_alloc(a, (size_t)256 << 20) != NULL);
    CHECK(engram_arena_alloc(a, 100) != NULL);
    CHECK(fallback_bytes(a) >= (16u << 20));
    CHECK(fallback_bytes(a) < (17u << 20));
    engram_arena_destroy(a);
  }
}

TEST(arena_fallback_takes_the_request_size_if_larger_and_never_doubles)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_FALLBACK);
  char *p = engram_arena_alloc(a, 5u << 20);
  CHECK(p != NULL);
  if (p) { p[0] = 1; p[(5u << 20) - 1] = 2; }
  CHECK(fallback_bytes(a) >= (5u << 20));
  engram_arena_destroy(a);

  a = arena_of(64 << 10, ENGRAM_OVERFLOW_FALLBACK);
  engram_arena_alloc(a, 64 << 10);
  uint64_t last = 0, first = 0;
  for (int i = 0; i < 6; i++) {
    uint64_t before = fallback_bytes(a);
    CHECK(engram_arena_alloc(a, 60 << 10) != NULL);
    uint64_t step = fallback_bytes(a) - before;
    if (i == 0) first = step;
    last = step;
  }
  CHECK_EQ(fallback_chunks(a), 6);
  CHECK_EQ(last, first);
  engram_arena_destroy(a);
}

TEST(arena_fallback_is_given_back_at_rewind_and_reset)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_FALLBACK);
  engram_arena_alloc(a, 1000);
  size_t used = engram_arena_used(a);
  engram_mark m = engram_arena_mark(a);
  CHECK(engram_arena_alloc(a, 200000) != NULL);
  CHECK(engram_arena_used(a) >= used + 200000);
  CHECK_EQ(engram_arena_rewind(a, m), 0);
  CHECK_EQ(engram_arena_used(a), used);
  CHECK(engram_arena_alloc(a, 200000) != NULL);
  engram_arena_reset(a);
  CHECK_EQ(engram_arena_used(a), 0);
  CHECK_EQ(engram_arena_remaining(a), 64 << 10);
  engram_arena_destroy(a);
}

TEST(arena_error_strategy_counts_and_a_request_beyond_the_arena_obeys_it)
{
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc(a, 1 << 20) == NULL);
  CHECK(engram_arena_alloc(a, 100) != NULL);
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  engram_arena_query(a, &info);
  CHECK_EQ(info.overflows, 1);
  CHECK_EQ(info.fallback_chunks, 0);
  engram_arena_destroy(a);
}

static void panic_child(void *arg)
{
  (void)arg;
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_PANIC);
  engram_arena_alloc(a, 1 << 20);
  _exit(0);
}

TEST(arena_panic_prints_the_message_and_aborts)
{
  char out[4096];
  int st = test_child(panic_child, NULL, out, sizeof out);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  CHECK_CONTAINS(out, "arena: out of memory (requested 1048576 bytes");
}

TEST(arena_size_zero_is_accepted)
{
  engram_arena *a = arena_of(0, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(a != NULL);
  if (a) {
    CHECK(engram_arena_alloc(a, 100) != NULL);
    engram_arena_destroy(a);
  }
}

TEST(arena_huge_pages_are_never_a_failure)
{
  engram_arena_config c = { .size = 4 << 20, .align = 16, .huge_pages = ENGRAM_HUGE_AUTO, .prefault = 1 };
  engram_arena *a = engram_arena_create(&c);
  CHECK(a != NULL);
  engram_arena_info info;
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  CHECK_EQ(engram_arena_query(a, &info), 0);
  CHECK(info.page_kind >= ENGRAM_PAGES_4K && info.page_kind <= ENGRAM_PAGES_HUGETLB);
  engram_arena_destroy(a);
  c.huge_pages = ENGRAM_HUGE_OFF;
  a = engram_arena_create(&c);
  ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_INFO_VERSION);
  engram_arena_query(a, &info);
  CHECK_EQ(info.page_kind, ENGRAM_PAGES_4K);
  engram_arena_destroy(a);
}

struct thread_arena_probe {
  int peek_before_null, same, peek_after_same;
  size_t capacity;
};

static void *thread_arena_body(void *arg)
{
  struct thread_arena_probe *p = arg;
  p->peek_before_null = engram_arena_thread_peek() == NULL;
  engram_arena *a = engram_arena_thread();
  p->same = a != NULL && engram_arena_thread() == a;
  p->peek_after_same = engram_arena_thread_peek() == a;
  p->capacity = a ? engram_arena_capacity(a) : 0;
  if (a) {
    engram_arena_alloc(a, 1000);
    engram_reset_arenas();
    p->same = p->same && engram_arena_used(a) == 0;
  }
  return NULL;
}

static engram_stats snap(void)
{
  engram_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_STATS_VERSION);
  engram_stats_snapshot(&s);
  return s;
}

TEST(thread_arena_is_lazy_per_thread_and_retired_at_exit)
{
  engram_stats s0 = snap();
  struct thread_arena_probe p = { 0 };
  pthread_t t;
  pthread_create(&t, NULL, thread_arena_body, &p);
  pthread_join(t, NULL);
  CHECK(p.peek_before_null);
  CHECK(p.same);
  CHECK(p.peek_after_same);
  engram_arena_config def;
  engram_config_arena_default(&def);
  CHECK_EQ(p.capacity, def.size);
  engram_stats s1 = snap();
  CHECK_EQ(s1.arenas_retired, s0.arenas_retired + 1);
  CHECK_EQ(s1.arenas_live, s0.arenas_live);
}

TEST(stats_snapshot_counts_live_and_retired_and_checks_version)
{
  engram_stats s0 = snap();
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_stats s1 = snap();
  CHECK_EQ(s1.arenas_live, s0.arenas_live + 1);
  CHECK_EQ(s1.capacity, s0.capacity + (1 << 20));
  engram_arena_alloc(a, 300000);
  engram_arena_reset(a);
  engram_arena_destroy(a);
  engram_stats s2 = snap();
  CHECK_EQ(s2.arenas_live, s0.arenas_live);
  CHECK_EQ(s2.arenas_retired, s0.arenas_retired + 1);
  CHECK(s2.high_water_max >= 300000);
  CHECK(s2.resets >= s0.resets + 1);
  size_t resets = 0, overflows = 0, hw = 0;
  engram_arena_stats(&resets, &overflows, &hw);
  CHECK(hw >= 300000);
  CHECK(resets >= 1);
  engram_arena_stats(NULL, NULL, NULL);
  engram_stats bad;
  ENGRAM_STRUCT_INIT(bad, ENGRAM_STATS_VERSION);
  bad.struct_size = 8;
  CHECK_EQ(engram_stats_snapshot(&bad), ENGRAM_EVERSION);
}

struct reader { int stop; int ok; };   /* stop: written by the test, read by the reader (atomics) */

static void *snapshot_reader(void *arg)
{
  struct reader *r = arg;
  r->ok = 1;
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    engram_stats s = snap();
    if (s.struct_size != sizeof s) r->ok = 0;
    char *j = engram_stats_json();
    if (!j) r->ok = 0;
    engram_free(j);
  }
  return NULL;
}

TEST(stats_may_be_read_from_any_thread_while_the_owner_allocates)
{
  struct reader r = { 0, 0 };
  pthread_t t;
  pthread_create(&t, NULL, snapshot_reader, &r);
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_FALLBACK);
  for (int i = 0; i < 20000; i++) {
    engram_arena_alloc(a, 100);
    if (i % 100 == 0) engram_arena_reset(a);
  }
  __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
  pthread_join(t, NULL);
  CHECK(r.ok);
  engram_arena_destroy(a);
}

TEST(stats_json_has_the_documented_shape)
{
  engram_pool_config pc = { .name = "docs \"quoted\" pool", .object_size = 32 };
  engram_pool *p = engram_pool_create(&pc);
  char *j = engram_stats_json();
  CHECK(j != NULL);
  if (j) {
    CHECK_CONTAINS(j, "\"version\": \"" ENGRAM_VERSION_STRING "\"");
    CHECK_CONTAINS(j, "\"process\"");
    CHECK_CONTAINS(j, "\"thread_arena\"");
    CHECK_CONTAINS(j, "\"pools\"");
    CHECK_CONTAINS(j, "\"arena_caches\"");
    CHECK_CONTAINS(j, "docs \\\"quoted\\\" pool");
  }
  engram_free(j);
  engram_free(NULL);
  engram_pool_destroy(p);
}

TEST(parse_size_forms)
{
  struct { const char *t; size_t v; } ok[] = {
    { "1048576", 1048576 }, { "64KiB", 64 << 10 }, { "8MiB", 8 << 20 }, { "1GiB", 1u << 30 },
    { "64K", 64 << 10 }, { "8M", 8 << 20 }, { "1G", 1u << 30 },
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    size_t v = 0;
    CHECK_EQ(engram_parse_size(ok[i].t, &v), 0);
    CHECK_EQ(v, ok[i].v);
  }
  size_t v = 7;
  CHECK_EQ(engram_parse_size("12XB", &v), ENGRAM_ECONFIG);
  CHECK_EQ(engram_parse_size("", &v), ENGRAM_ECONFIG);
  CHECK_EQ(engram_parse_size("99999999999999999999999G", &v), ENGRAM_EOVERFLOW);
}

/* ==================================================================================== */
/* Environment (each case in a fresh process)                                           */

/* Run this program with `--env NAME` under the assignments `env` ("VAR=value ..."); returns the
 * child's stdout. */
static const char *run_env(const char *env, const char *name)
{
  static char out[8192];
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "env %s '%s' --env %s 2>&1", env, self_exe, name);
  FILE *f = popen(cmd, "r");
  out[0] = 0;
  if (!f) return out;
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = 0;
  pclose(f);
  return out;
}

/* The child side: prints one verdict line per check. */
static int env_child(const char *name)
{
  if (!strcmp(name, "arena")) {
    engram_arena_config c;
    int rc = engram_config_arena_default(&c);
    printf("default=%d msg=%s\n", rc, engram_last_error());
    printf("again=%d\n", engram_config_arena_default(&c));
    printf("create=%s\n", engram_arena_create(NULL) ? "ok" : "null");
    printf("thread=%s\n", engram_arena_thread() ? "ok" : "null");
    engram_runtime_config rc2;
    printf("runtime=%d\n", engram_runtime_config_default(&rc2));
    printf("size=%zu overflow=%d huge=%d prefault=%d\n", c.size, (int)c.overflow, (int)c.huge_pages, c.prefault);
    return 0;
  }
  if (!strcmp(name, "isa")) {
    int isa = engram_kernel_isa();
    printf("isa=%d msg=%s\n", isa, isa < 0 ? engram_last_error() : "");
    float q[4] = { 1, 0, 0, 0 }, s[1] = { -5 };
    int rc = engram_sim_cosine(NULL, q, q, 1, 4, s);
    printf("kernel=%d score=%g\n", rc, s[0]);
    printf("again=%d\n", engram_sim_cosine(NULL, q, q, 1, 4, s));
    printf("set=%d\n", engram_kernel_set_isa(ENGRAM_ISA_SCALAR));
    rc = engram_sim_cosine(NULL, q, q, 1, 4, s);
    printf("after=%d score=%g\n", rc, s[0]);
    return 0;
  }
  if (!strcmp(name, "configure")) {
    engram_arena_config c0, c1;
    engram_config_arena_default(&c0);
    printf("zero=%d big=%d strat=%d\n", engram_configure_arena(0, 1), engram_configure_arena(1025, 1),
           engram_configure_arena(4, 3));
    engram_config_arena_default(&c1);
    printf("unchanged=%d\n", c0.size == c1.size && c0.overflow == c1.overflow);
    printf("set=%d\n", engram_configure_arena(2, 2));
    engram_config_arena_default(&c1);
    printf("size=%zu overflow=%d\n", c1.size, (int)c1.overflow);
    engram_arena *t = engram_arena_thread();
    printf("thread=%zu\n", t ? engram_arena_capacity(t) : 0);
    return 0;
  }
  printf("unknown case\n");
  return 1;
}

TEST(env_bad_arena_size_fails_every_call_with_the_documented_message)
{
  const char *o = run_env("ENGRAM_ARENA_SIZE=12XB", "arena");
  char want[512];
  snprintf(want, sizeof want, "default=%d msg=config: bad ENGRAM_ARENA_SIZE '12XB' (expected bytes, or a "
           "number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)\n", ENGRAM_ECONFIG);
  CHECK_CONTAINS(o, want);
  snprintf(want, sizeof want, "again=%d\n", ENGRAM_ECONFIG);
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "create=null\n");
  CHECK_CONTAINS(o, "thread=null\n");
  snprintf(want, sizeof want, "runtime=%d\n", ENGRAM_ECONFIG);
  CHECK_CONTAINS(o, want);
}

TEST(env_arena_size_out_of_range_is_refused)
{
  char want[64];
  snprintf(want, sizeof want, "default=%d msg=", ENGRAM_ECONFIG);
  const char *o = run_env("ENGRAM_ARENA_SIZE=32KiB", "arena");
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "ENGRAM_ARENA_SIZE '32KiB'");
  o = run_env("ENGRAM_ARENA_SIZE=2GiB", "arena");
  CHECK_CONTAINS(o, want);
}

TEST(env_empty_counts_as_unset_and_good_values_apply)
{
  const char *o = run_env("ENGRAM_ARENA_SIZE= ENGRAM_ARENA_OVERFLOW= ENGRAM_ARENA_HUGEPAGES= ENGRAM_ARENA_PREFAULT=",
                          "arena");
  CHECK_CONTAINS(o, "default=0 ");
  CHECK_CONTAINS(o, "size=1048576 overflow=0 huge=1 prefault=0\n");
  o = run_env("ENGRAM_ARENA_SIZE=8M ENGRAM_ARENA_OVERFLOW=fallback ENGRAM_ARENA_HUGEPAGES=off ENGRAM_ARENA_PREFAULT=on",
              "arena");
  CHECK_CONTAINS(o, "default=0 ");
  CHECK_CONTAINS(o, "size=8388608 overflow=2 huge=0 prefault=1\n");
}

TEST(env_bad_overflow_hugepages_prefault_name_the_variable)
{
  const char *vars[] = { "ENGRAM_ARENA_OVERFLOW=sometimes", "ENGRAM_ARENA_HUGEPAGES=maybe",
                         "ENGRAM_ARENA_PREFAULT=yes" };
  const char *names[] = { "ENGRAM_ARENA_OVERFLOW 'sometimes'", "ENGRAM_ARENA_HUGEPAGES 'maybe'",
                          "ENGRAM_ARENA_PREFAULT 'yes'" };
  char want[64];
  snprintf(want, sizeof want, "default=%d msg=", ENGRAM_ECONFIG);
  for (int i = 0; i < 3; i++) {
    const char *o = run_env(vars[i], "arena");
    CHECK_CONTAINS(o, want);
    CHECK_CONTAINS(o, names[i]);
  }
}

TEST(env_bad_isa_fails_every_kernel_until_set_isa)
{
  const char *o = run_env("ENGRAM_ISA=sse9", "isa");
  char want[128];
  snprintf(want, sizeof want, "isa=%d msg=", ENGRAM_ECONFIG);
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "ENGRAM_ISA");
  snprintf(want, sizeof want, "kernel=%d score=-5\n", ENGRAM_ECONFIG);
  CHECK_CONTAINS(o, want);
  snprintf(want, sizeof want, "again=%d\n", ENGRAM_ECONFIG);
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "set=0\n");
  CHECK_CONTAINS(o, "after=0 score=1\n");
}

TEST(env_isa_the_cpu_lacks_is_enotsup)
{
  if (engram_kernel_isa_supported(ENGRAM_ISA_AVX512))
    SKIP("this CPU has AVX-512");
  const char *o = run_env("ENGRAM_ISA=avx512", "isa");
  char want[128];
  snprintf(want, sizeof want, "isa=%d msg=", ENGRAM_ENOTSUP);
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "ENGRAM_ISA");
  snprintf(want, sizeof want, "kernel=%d", ENGRAM_ENOTSUP);
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "after=0 score=1\n");
}

TEST(env_isa_scalar_is_used)
{
  const char *o = run_env("ENGRAM_ISA=scalar", "isa");
  CHECK_CONTAINS(o, "isa=0 ");
  CHECK_CONTAINS(o, "kernel=0 score=1\n");
}

TEST(configure_arena_checks_its_range_and_sets_the_thread_default)
{
  const char *o = run_env("ENGRAM_ARENA_SIZE=", "configure");
  char want[128];
  snprintf(want, sizeof want, "zero=%d big=%d strat=%d\n", ENGRAM_EINVAL, ENGRAM_EINVAL, ENGRAM_EINVAL);
  CHECK_CONTAINS(o, want);
  CHECK_CONTAINS(o, "unchanged=1\n");
  CHECK_CONTAINS(o, "set=0\n");
  CHECK_CONTAINS(o, "size=2097152 overflow=2\n");
  CHECK_CONTAINS(o, "thread=2097152\n");
}

/* ==================================================================================== */
/* Pools                                                                                */

static engram_pool_info pool_info(engram_pool *p)
{
  engram_pool_info i;
  ENGRAM_STRUCT_INIT(i, ENGRAM_POOL_INFO_VERSION);
  engram_pool_query(p, &i);
  return i;
}

TEST(pool_bad_config_is_einval_naming_the_field)
{
  engram_pool_config c = { .name = "bad", .object_size = 0 };
  CHECK(engram_pool_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "size");
  c.object_size = ENGRAM_POOL_MAX_OBJECT + 1;
  CHECK(engram_pool_create(&c) == NULL);
  c.object_size = 16;
  c.align = 3;
  CHECK(engram_pool_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "align");
  c.align = 8192;
  CHECK(engram_pool_create(&c) == NULL);
  c.align = 0;
  c.growth = 1.0;
  CHECK(engram_pool_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "growth");
  c.growth = 17;
  CHECK(engram_pool_create(&c) == NULL);
  CHECK(engram_pool_create_vectors("v", 0, 0, 0) == NULL);
}

TEST(pool_defaults_stride_and_no_slab_before_first_acquire)
{
  engram_pool_config c = { .name = NULL, .object_size = 24 };
  engram_pool *p = engram_pool_create(&c);
  engram_pool_info i = pool_info(p);
  CHECK_STR(i.name, "pool");
  CHECK_EQ(i.align, ENGRAM_POOL_DEFAULT_ALIGN);
  CHECK_EQ(i.stride, 32);
  CHECK_EQ(i.slabs, 0);
  CHECK_EQ(i.bytes_reserved, 0);
  CHECK_EQ(i.capacity, 0);
  CHECK(i.reuse_rate == 0);
  void *o = engram_pool_acquire(p);
  CHECK(o != NULL && (uintptr_t)o % 16 == 0);
  i = pool_info(p);
  CHECK_EQ(i.slabs, 1);
  CHECK(i.bytes_reserved % 4096 == 0 && i.bytes_reserved > 0);
  CHECK_EQ(i.in_use, 1);
  engram_pool_release(p, o);
  engram_pool_release(p, NULL);
  engram_pool_destroy(p);
  engram_pool_destroy(NULL);
}

TEST(pool_is_lifo_and_keeps_all_but_the_first_word)
{
  engram_pool_config c = { .name = "docs-lifo", .object_size = 64 };
  engram_pool *p = engram_pool_create(&c);
  unsigned char *a = engram_pool_acquire(p), *b = engram_pool_acquire(p);
  memset(a, 0xab, 64);
  engram_pool_release(p, b);
  engram_pool_release(p, a);
  unsigned char *again = engram_pool_acquire(p);
  CHECK(again == a);
  int kept = 1;
  for (size_t k = sizeof(void *); k < 64; k++)
    if (again[k] != 0xab) kept = 0;
  CHECK(kept);
  CHECK(engram_pool_acquire(p) == b);
  engram_pool_info i = pool_info(p);
  CHECK_EQ(i.reuses, 2);
  CHECK_EQ(i.acquisitions, 4);
  CHECK_EQ(i.peak, 2);
  engram_pool_destroy(p);
}

TEST(pool_zero_flag_zeroes_reused_objects)
{
  engram_pool_config c = { .name = "docs-zero", .object_size = 48, .flags = ENGRAM_POOL_ZERO };
  engram_pool *p = engram_pool_create(&c);
  unsigned char *a = engram_pool_acquire(p);
  memset(a, 0x5a, 48);
  engram_pool_release(p, a);
  unsigned char *b = engram_pool_acquire(p);
  int zero = 1;
  for (int k = 0; k < 48; k++)
    if (b[k]) zero = 0;
  CHECK(zero);
  engram_pool_destroy(p);
}

TEST(pool_cap_is_efull_naming_the_cap)
{
  engram_pool_config c = { .name = "docs-cap", .object_size = 4096, .max_bytes = 8192 };
  engram_pool *p = engram_pool_create(&c);
  CHECK(engram_pool_acquire(p) != NULL);
  CHECK(engram_pool_acquire(p) != NULL);
  CHECK(engram_pool_acquire(p) == NULL);
  CHECK_CONTAINS(engram_last_error(), "cap");
  engram_pool_info i = pool_info(p);
  CHECK_EQ(i.failures, 1);
  CHECK(i.capacity * i.stride <= 8192);
  engram_pool_destroy(p);
}

TEST(pool_grows_by_the_growth_factor)
{
  engram_pool_config c = { .name = "docs-grow", .object_size = 64, .initial_objects = 64, .growth = 2 };
  engram_pool *p = engram_pool_create(&c);
  engram_pool_acquire(p);
  uint64_t cap1 = pool_info(p).capacity;
  CHECK(cap1 >= 64);
  for (uint64_t k = 1; k <= cap1; k++) engram_pool_acquire(p);
  engram_pool_info i = pool_info(p);
  CHECK_EQ(i.slabs, 2);
  CHECK(i.capacity >= 2 * cap1);
  engram_pool_destroy(p);
}

TEST(vector_pool_slots_are_64_aligned)
{
  engram_pool *p = engram_pool_create_vectors("docs-vec", 3, 0, 0);
  for (int k = 0; k < 10; k++) {
    float *v = engram_pool_acquire_vector(p);
    CHECK(v != NULL && (uintptr_t)v % 64 == 0);
  }
  engram_pool_info i = pool_info(p);
  CHECK_EQ(i.vector_dim, 3);
  CHECK_EQ(i.stride, 64);
  CHECK_EQ(i.align, ENGRAM_POOL_VECTOR_ALIGN);
  engram_pool_destroy(p);
}

TEST(pool_query_checks_version)
{
  engram_pool_config c = { .name = "docs-q", .object_size = 8 };
  engram_pool *p = engram_pool_create(&c);
  engram_pool_info i;
  ENGRAM_STRUCT_INIT(i, ENGRAM_POOL_INFO_VERSION + 1);
  CHECK_EQ(engram_pool_query(p, &i), ENGRAM_EVERSION);
  ENGRAM_STRUCT_INIT(i, ENGRAM_POOL_INFO_VERSION);
  i.struct_size = 16;
  CHECK_EQ(engram_pool_query(p, &i), ENGRAM_EVERSION);
  engram_pool_destroy(p);
}

struct shared_arg { engram_pool *p; int ok; void *handoff[64]; };

static void *shared_worker(void *arg)
{
  struct shared_arg *s = arg;
  s->ok = 1;
  for (int k = 0; k < 64; k++) engram_pool_release(s->p, s->handoff[k]);   /* acquired elsewhere */
  for (int r = 0; r < 5000; r++) {
    void *o[4];
    for (int k = 0; k < 4; k++) if (!(o[k] = engram_pool_acquire(s->p))) s->ok = 0;
    for (int k = 0; k < 4; k++) engram_pool_release(s->p, o[k]);
  }
  return NULL;
}

TEST(shared_pool_may_be_used_from_any_thread)
{
  engram_pool_config c = { .name = "docs-shared", .object_size = 32, .flags = ENGRAM_POOL_SHARED };
  engram_pool *p = engram_pool_create(&c);
  struct shared_arg a = { .p = p }, b = { .p = p };
  for (int k = 0; k < 64; k++) { a.handoff[k] = engram_pool_acquire(p); b.handoff[k] = engram_pool_acquire(p); }
  pthread_t t1, t2;
  pthread_create(&t1, NULL, shared_worker, &a);
  pthread_create(&t2, NULL, shared_worker, &b);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  CHECK(a.ok && b.ok);
  engram_pool_info i = pool_info(p);
  CHECK_EQ(i.in_use, 0);
  CHECK_EQ(i.acquisitions, 128 + 2 * 5000 * 4);
  CHECK_EQ(i.releases, i.acquisitions);
  engram_pool_destroy(p);
}

static engram_arena_cache_info cache_info(engram_arena_cache *c)
{
  engram_arena_cache_info i;
  ENGRAM_STRUCT_INIT(i, ENGRAM_ARENA_CACHE_INFO_VERSION);
  engram_arena_cache_query(c, &i);
  return i;
}

TEST(arena_cache_hands_out_size_classes_and_keeps_released_arenas)
{
  engram_arena_cache_config cc = { .name = "docs-cache", .keep_per_class = 1 };
  engram_arena_cache *c = engram_arena_cache_create(&cc);
  engram_arena *a = engram_arena_cache_acquire(c, 100 << 10);
  CHECK(a != NULL);
  CHECK_EQ(engram_arena_capacity(a), 128 << 10);
  engram_arena_alloc(a, 5000);
  engram_arena *b = engram_arena_cache_acquire(c, 100 << 10);
  CHECK_EQ(engram_arena_cache_release(c, a), 0);
  CHECK_EQ(engram_arena_cache_release(c, b), 0);
  engram_arena_cache_info i = cache_info(c);
  CHECK_EQ(i.kept, 1);
  CHECK_EQ(i.destroyed, 1);
  CHECK_EQ(i.kept_bytes, 128 << 10);
  engram_arena *r = engram_arena_cache_acquire(c, 65 << 10);
  CHECK(r != NULL);
  CHECK_EQ(engram_arena_used(r), 0);
  i = cache_info(c);
  CHECK_EQ(i.reuses, 1);
  CHECK_EQ(i.out, 1);
  CHECK(engram_arena_cache_acquire(c, ((size_t)1 << 30) + 1) == NULL);
  engram_arena *foreign = arena_of(100 << 10, ENGRAM_OVERFLOW_ERROR);
  CHECK_EQ(engram_arena_cache_release(c, foreign), ENGRAM_EINVAL);
  engram_arena_destroy(foreign);
  engram_arena_cache_destroy(c);
  engram_arena_alloc(r, 10);   /* still valid after the cache is gone */
  engram_arena_destroy(r);
  engram_arena_cache_destroy(NULL);
}

/* ==================================================================================== */
/* Kernels                                                                              */

TEST(kernels_check_their_arguments_with_prefixed_messages)
{
  float q[4] = { 1, 0, 0, 0 }, s[2] = { 7, 7 };
  CHECK_EQ(engram_sim_cosine(NULL, q, q, 1, 0, s), ENGRAM_EINVAL);
  CHECK(strncmp(engram_last_error(), "similarity: ", 12) == 0);
  CHECK(s[0] == 7);
  uint32_t idx[2];
  float sc[2];
  CHECK_EQ(engram_sim_topk(NULL, q, NULL, 1, 4, 0, idx, sc), ENGRAM_EINVAL);
  engram_decay_params dp;
  CHECK_EQ(engram_decay_params_default((engram_decay_model)9, &dp), ENGRAM_EINVAL);
}

TEST(similarity_zero_and_nonfinite_vectors_score_zero_and_scores_are_clamped)
{
  float rows[12] = { 0, 0, 0, 0,  1e20f, 1e20f, 1e20f, 1e20f,  3, 4, 0, 0 };
  rows[4] = NAN;
  float out[9];
  CHECK_EQ(engram_sim_matrix(NULL, rows, NULL, 3, 4, out), 0);
  CHECK(out[0] == 0);       /* zero vector, with itself */
  CHECK(out[4] == 0);       /* NaN vector, with itself */
  CHECK(out[1] == 0 && out[2] == 0 && out[5] == 0);
  CHECK(out[8] == 1);
  float big[8] = { 1e18f, 1e18f, 1e18f, 1e18f, 1e18f, 1e18f, 1e18f, 1e18f };
  float sc[2];
  CHECK_EQ(engram_sim_cosine(NULL, big, big, 2, 4, sc), 0);
  CHECK(sc[0] <= 1 && sc[0] >= 1 - 1e-5);
}

TEST(similarity_scratch_is_rewound_and_efull_names_the_kernel)
{
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_arena_alloc(a, 123);
  size_t used = engram_arena_used(a);
  float rows[64];
  for (int k = 0; k < 64; k++) rows[k] = (float)((k * 7) % 5) - 2;
  float out[256];
  CHECK_EQ(engram_sim_matrix(a, rows, NULL, 16, 4, out), 0);
  CHECK_EQ(engram_arena_used(a), used);
  engram_arena_destroy(a);
  engram_arena *small = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  engram_arena_alloc(small, 60 << 10);
  CHECK_EQ(engram_sim_matrix(small, rows, NULL, 16, 4, out), ENGRAM_EFULL);
  CHECK(strncmp(engram_last_error(), "similarity: ", 12) == 0);
  engram_arena_destroy(small);
}

TEST(sim_pairs_reports_more_pairs_than_room)
{
  float rows[16] = { 1, 1, 0, 0,  2, 2, 0, 0,  1, 1, 0, 0,  3, 3, 0, 0 };
  engram_sim_pair out[2];
  size_t count = 0;
  CHECK_EQ(engram_sim_pairs(NULL, rows, NULL, 4, 4, 0.5f, out, 2, &count), ENGRAM_EFULL);
  CHECK_EQ(count, 6);
  CHECK_CONTAINS(engram_last_error(), "pairs found, room for");
  CHECK(out[0].i < out[0].j && out[1].i < out[1].j);
  engram_sim_pair all[6];
  CHECK_EQ(engram_sim_pairs(NULL, rows, NULL, 4, 4, 0.5f, all, 6, &count), 0);
  CHECK_EQ(count, 6);
}

TEST(sim_topk_fills_missing_slots)
{
  float rows[8] = { 1, 0, 0, 0,  0.5f, 0.5f, 0, 0 };
  uint32_t idx[6];
  float sc[6];
  CHECK_EQ(engram_sim_topk(NULL, rows, NULL, 2, 4, 3, idx, sc), 0);
  CHECK_EQ(idx[0], 1);
  CHECK_EQ(idx[1], UINT32_MAX);
  CHECK(isinf(sc[1]) && sc[1] < 0);
  CHECK_EQ(idx[2], UINT32_MAX);
  CHECK_EQ(idx[3], 0);
}

TEST(csr_violations_are_einval_or_erange_naming_the_place)
{
  uint32_t off[3] = { 1, 1, 1 }, tg[1] = { 0 };
  float w[1] = { 1 };
  engram_csr g = { 2, 1, off, tg, w };
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_EINVAL);
  uint32_t off2[3] = { 0, 1, 0 };
  g.offsets = off2;
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_EINVAL);
  uint32_t off3[3] = { 0, 1, 1 }, bad[1] = { 2 };
  g.offsets = off3;
  g.targets = bad;
  CHECK_EQ(engram_csr_validate(&g), ENGRAM_ERANGE);
  CHECK_CONTAINS(engram_last_error(), "spread: ");
  CHECK_CONTAINS(engram_last_error(), "edge 0");
  float act[2] = { 1, 0.5f };
  CHECK_EQ(engram_spread_iterate(NULL, &g, act, 3), ENGRAM_ERANGE);
  CHECK(act[0] == 1 && act[1] == 0.5f);
  g.targets = tg;
  CHECK_EQ(engram_csr_validate(&g), 0);
}

TEST(spread_bounded_contract)
{
  /* 0 -> 1 (w 1), 1 -> 2 (w 0.5) */
  uint32_t off[4] = { 0, 1, 2, 2 }, tg[2] = { 1, 2 };
  float w[2] = { 1, 0.5f };
  engram_csr g = { 3, 2, off, tg, w };
  engram_spread_params p;
  engram_spread_params_default(&p);
  CHECK_EQ(p.max_depth, 4);
  CHECK(fabsf(p.rate - 0.7f) < 1e-7f && fabsf(p.threshold - 0.01f) < 1e-9f);
  uint32_t seed = 0, touched[2];
  size_t nt = 0;
  float act[3] = { 0, 0, 0 };
  CHECK_EQ(engram_spread_bounded(NULL, &g, &seed, NULL, 1, NULL, act, touched, 2, &nt), 0);
  CHECK(act[0] == 1);
  CHECK(fabs(act[1] - exp(-0.7)) < 1e-6);
  CHECK(fabs(act[2] - exp(-0.7) * 0.5 * exp(-1.4)) < 1e-6);
  CHECK_EQ(nt, 3);
  CHECK_EQ(touched[0], 0);
  CHECK_EQ(touched[1], 1);
  /* depth 0 applies the seeds only */
  float act0[3] = { 0.5f, 0, 0 };
  engram_spread_params d0 = p;
  d0.max_depth = 0;
  float v = 0.25f;
  CHECK_EQ(engram_spread_bounded(NULL, &g, &seed, &v, 1, &d0, act0, NULL, 0, NULL), 0);
  CHECK(act0[0] == 0.75f && act0[1] == 0 && act0[2] == 0);
  /* bad seeds: act untouched */
  float keep[3] = { 0.1f, 0.2f, 0.3f };
  uint32_t far = 3;
  CHECK_EQ(engram_spread_bounded(NULL, &g, &far, NULL, 1, NULL, keep, NULL, 0, NULL), ENGRAM_ERANGE);
  float neg = -1, nan_ = NAN;
  CHECK_EQ(engram_spread_bounded(NULL, &g, &seed, &neg, 1, NULL, keep, NULL, 0, NULL), ENGRAM_EINVAL);
  CHECK_EQ(engram_spread_bounded(NULL, &g, &seed, &nan_, 1, NULL, keep, NULL, 0, NULL), ENGRAM_EINVAL);
  CHECK(keep[0] == 0.1f && keep[1] == 0.2f && keep[2] == 0.3f);
}

TEST(decay_defaults_and_models)
{
  engram_decay_params p;
  CHECK_EQ(engram_decay_params_default(ENGRAM_DECAY_TWO_COMPONENT, &p), 0);
  /* "half_life 4891 s (the 1.96 h time constant times ln 2)": 7056 ln 2 = 4890.85 */
  CHECK(fabs(p.half_life - 7056 * log(2)) < 1e-6 && fabs(p.half_life - 4891) < 0.5);
  CHECK(p.tau == 7056 && p.beta == 0.18 && p.unit == 86400 && p.k == 3);
  CHECK(fabsf(p.floor - 0.01f) < 1e-9f);
  engram_decay_params_default(ENGRAM_DECAY_HALF_LIFE, &p);
  float hl = (float)p.half_life;
  float s[5] = { 1, 1, 1, 0, 1 }, age[5] = { hl, -100, NAN, hl, INFINITY };
  CHECK_EQ(engram_decay_apply(NULL, &p, s, age, NULL, 5), 0);
  CHECK(fabsf(s[0] - 0.5f) < 1e-6f);
  CHECK(s[1] == 1);             /* negative ages count as 0 */
  CHECK(isnan(s[2]));
  CHECK(s[3] == 0);
  CHECK(s[4] == 0);
  engram_decay_params_default(ENGRAM_DECAY_TIME_CONSTANT, &p);
  float t[1] = { 1 }, at[1] = { 7056 };
  CHECK_EQ(engram_decay_apply(NULL, &p, t, at, NULL, 1), 0);
  CHECK(fabs(t[0] - exp(-1)) < 1e-6);
  engram_decay_params_default(ENGRAM_DECAY_TWO_COMPONENT, &p);
  float u[2] = { 1, 1 }, au[2] = { INFINITY, 86400 };
  uint32_t acc[2] = { 0, 3 };
  CHECK_EQ(engram_decay_apply(NULL, &p, u, au, acc, 2), 0);
  CHECK(fabsf(u[0] - 0.01f) < 1e-8f);
  CHECK(fabs(u[1] - pow(2, -0.18)) < 1e-6);
}

TEST(decay_checks_parameters_before_writing)
{
  engram_decay_params p;
  engram_decay_params_default(ENGRAM_DECAY_HALF_LIFE, &p);
  p.half_life = 0;
  float s[1] = { 0.7f }, age[1] = { 100 };
  CHECK_EQ(engram_decay_apply(NULL, &p, s, age, NULL, 1), ENGRAM_EINVAL);
  CHECK_CONTAINS(engram_last_error(), "half_life");
  CHECK(strncmp(engram_last_error(), "decay: ", 7) == 0);
  CHECK(s[0] == 0.7f);
  engram_decay_params_default(ENGRAM_DECAY_TWO_COMPONENT, &p);
  CHECK_EQ(engram_decay_apply(NULL, &p, s, age, NULL, 1), ENGRAM_EINVAL);
  p.floor = 2;
  uint32_t acc[1] = { 0 };
  CHECK_EQ(engram_decay_apply(NULL, &p, s, age, acc, 1), ENGRAM_EINVAL);
  CHECK(s[0] == 0.7f);
}

TEST(isa_selection_contract)
{
  int cur = engram_kernel_isa();
  CHECK(cur >= 0 && cur <= ENGRAM_ISA_AVX512);
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_SCALAR), "scalar");
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_AVX2), "avx2");
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_AVX512), "avx512");
  CHECK_STR(engram_kernel_isa_name(ENGRAM_ISA_AUTO), "auto");
  CHECK_STR(engram_kernel_isa_name(42), "unknown");
  CHECK_EQ(engram_kernel_isa_supported(ENGRAM_ISA_SCALAR), 1);
  CHECK_EQ(engram_kernel_isa_supported(ENGRAM_ISA_AVX512), __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") ? engram_kernel_isa_supported(ENGRAM_ISA_AVX512) : 0);
  CHECK_EQ(engram_kernel_set_isa(42), ENGRAM_EINVAL);
  CHECK_EQ(engram_kernel_isa(), cur);
  if (!engram_kernel_isa_supported(ENGRAM_ISA_AVX512)) {
    CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AVX512), ENGRAM_ENOTSUP);
    CHECK_EQ(engram_kernel_isa(), cur);
  }
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_SCALAR), 0);
  CHECK_EQ(engram_kernel_isa(), ENGRAM_ISA_SCALAR);
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_AUTO), 0);
  CHECK_EQ(engram_kernel_isa(), cur);
}

TEST(isas_agree_within_the_stated_bound)
{
  uint64_t st = test_seed("isas_agree");
  enum { N = 17, D = 100 };
  static float rows[N * D], q[D];
  for (int k = 0; k < N * D; k++) rows[k] = (float)((int)(test_rand(&st) % 2001) - 1000) / 1000.0f;
  for (int k = 0; k < D; k++) q[k] = (float)((int)(test_rand(&st) % 2001) - 1000) / 1000.0f;
  float ref[N], got[N];
  CHECK_EQ(engram_kernel_set_isa(ENGRAM_ISA_SCALAR), 0);
  CHECK_EQ(engram_sim_cosine(NULL, q, rows, N, D, ref), 0);
  for (int isa = ENGRAM_ISA_AVX2; isa <= ENGRAM_ISA_AVX512; isa++) {
    if (!engram_kernel_isa_supported(isa)) continue;
    CHECK_EQ(engram_kernel_set_isa(isa), 0);
    CHECK_EQ(engram_sim_cosine(NULL, q, rows, N, D, got), 0);
    double bound = 2 * (1e-5 + ldexp(1, -23) * sqrt(D));   /* both sides within the bound */
    for (int k = 0; k < N; k++) CHECK(fabs(got[k] - ref[k]) <= bound);
  }
  engram_kernel_set_isa(ENGRAM_ISA_AUTO);
}

/* ==================================================================================== */
/* Runtime                                                                              */

static engram_runtime *rt_make(uint32_t workers, uint32_t queue, uint32_t timeout_ms, size_t heap)
{
  engram_runtime_config c;
  engram_runtime_config_default(&c);
  c.workers = workers;
  if (queue) c.queue_capacity = queue;
  c.timeout_ms = timeout_ms;
  c.lua_heap_limit = heap;
  return engram_runtime_create(&c);
}

static int load(engram_runtime *rt, const char *name, const char *text)
{
  return engram_runtime_load_string(rt, name, text, strlen(text));
}

static engram_burst *run_burst(engram_runtime *rt, int script, const engram_param *p, size_t np)
{
  engram_burst *b = NULL;
  if (engram_runtime_submit(rt, script, p, np, &b) != 0) return NULL;
  engram_burst_wait(b, -1);
  return b;
}

TEST(runtime_config_defaults)
{
  engram_runtime_config c;
  memset(&c, 0xff, sizeof c);
  CHECK_EQ(engram_runtime_config_default(&c), 0);
  CHECK_EQ(c.struct_size, sizeof c);
  CHECK_EQ(c.struct_version, ENGRAM_RUNTIME_CONFIG_VERSION);
  CHECK_EQ(c.workers, sysconf(_SC_NPROCESSORS_ONLN));
  CHECK_EQ(c.queue_capacity, 1024);
  CHECK_EQ(c.timeout_ms, 0);
  CHECK_EQ(c.lua_heap_limit, 0);
  CHECK_EQ(c.script_cache, 64);
  CHECK(c.store_path == NULL);
  engram_arena_config a;
  engram_config_arena_default(&a);
  CHECK_EQ(c.arena_size, a.size);
  CHECK_EQ(c.overflow, a.overflow);
}

TEST(runtime_create_checks_its_config)
{
  engram_runtime_config c;
  engram_runtime_config_default(&c);
  c.workers = 0;
  CHECK(engram_runtime_create(&c) == NULL);
  c.workers = ENGRAM_RUNTIME_MAX_WORKERS + 1;
  CHECK(engram_runtime_create(&c) == NULL);
  engram_runtime_config_default(&c);
  c.workers = 1;
  c.struct_version = ENGRAM_RUNTIME_CONFIG_VERSION + 1;
  CHECK(engram_runtime_create(&c) == NULL);
  engram_runtime_config_default(&c);
  c.workers = 1;
  c.struct_size = 8;
  CHECK(engram_runtime_create(&c) == NULL);
  engram_runtime_config_default(&c);
  c.workers = 1;
  c.store_path = "/nonexistent-dir/engram/memory.db";
  CHECK(engram_runtime_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "/nonexistent-dir/engram/memory.db");
  engram_runtime_destroy(NULL);
  engram_burst_release(NULL);
}

TEST(runtime_scripts_compile_once_and_report_errors)
{
  engram_runtime *rt = rt_make(1, 0, 0, 0);
  CHECK(rt != NULL);
  if (!rt) return;
  CHECK_EQ(load(rt, "broken.lua", "return function(\n  x = \nend\n"), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_last_error(), "broken.lua:2:");
  CHECK_EQ(engram_runtime_load_file(rt, "/nonexistent/script.lua"), ENGRAM_EIO);
  int a = load(rt, "a.lua", "return function(b) return 1 end");
  CHECK(a > 0);
  CHECK_EQ(load(rt, "a.lua", "return function(b) return 1 end"), a);
  int b = load(rt, "a.lua", "return function(b) return 2 end");
  CHECK(b > 0 && b != a);
  engram_burst *h = NULL;
  CHECK_EQ(engram_runtime_submit(rt, 9999, NULL, 0, &h), ENGRAM_ERANGE);
  engram_param p[1] = { { NULL, "x", 0 } };
  CHECK_EQ(engram_runtime_submit(rt, a, p, 1, &h), ENGRAM_EINVAL);
  engram_runtime_destroy(rt);
}

TEST(runtime_bursts_return_json_ids_and_params)
{
  engram_runtime *rt = rt_make(2, 0, 0, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "p.lua", "return function(b) return b.id, b.params, b.store == nil end");
  engram_param p[2] = { { "text", "hello", 0 }, { "num", NULL, 2.5 } };
  engram_burst *b1 = run_burst(rt, s, p, 2);
  engram_burst *b2 = run_burst(rt, s, NULL, 0);
  CHECK_EQ(engram_burst_status(b1), 0);
  CHECK_STR(engram_burst_message(b1), "");
  CHECK_STR(engram_burst_result(b1), "[1,{\"num\":2.5,\"text\":\"hello\"},true]");
  CHECK_STR(engram_burst_result(b2), "[2,{},true]");
  CHECK_EQ(engram_burst_id(b1), 1);
  CHECK_EQ(engram_burst_id(b2), 2);
  CHECK(engram_burst_worker(b1) >= 0 && engram_burst_worker(b1) < 2);
  CHECK_EQ(engram_burst_done(b1), 1);
  engram_burst_release(b1);
  engram_burst_release(b2);
  int st = load(rt, "stages.lua", "return { stages = { function(b) return 3 end, function(b, x) return x * 2 end } }");
  engram_burst *b3 = run_burst(rt, st, NULL, 0);
  CHECK_STR(engram_burst_result(b3), "6");
  engram_burst_release(b3);
  engram_runtime_destroy(rt);
}

TEST(runtime_script_errors_are_isolated)
{
  engram_runtime *rt = rt_make(1, 0, 0, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "fails.lua", "return function(b)\n  if b.params.fail then\n    error('boom')\n  end\n  return 'fine'\nend\n");
  engram_param p[1] = { { "fail", "yes", 0 } };
  engram_burst *b = run_burst(rt, s, p, 1);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_burst_message(b), "fails.lua:3: boom");
  CHECK_CONTAINS(engram_burst_message(b), "traceback");
  CHECK(engram_burst_result(b) == NULL);
  engram_burst_release(b);
  b = run_burst(rt, s, NULL, 0);
  CHECK_EQ(engram_burst_status(b), 0);
  CHECK_STR(engram_burst_result(b), "\"fine\"");
  engram_burst_release(b);
  engram_worker_stats w;
  ENGRAM_STRUCT_INIT(w, ENGRAM_RUNTIME_STATS_VERSION);
  CHECK_EQ(engram_runtime_worker_stats(rt, 0, &w), 0);
  CHECK_EQ(w.states_created, 1);
  CHECK_EQ(w.bursts, 2);
  CHECK_EQ(w.errors, 1);
  CHECK_EQ(engram_runtime_worker_stats(rt, 1, &w), ENGRAM_ERANGE);
  engram_runtime_destroy(rt);
}

static const char *GATE_SCRIPT =
  "return function(b)\n"
  "  while true do local f = io.open(b.params.gate) if f then f:close() break end end\n"
  "  return 'released'\n"
  "end\n";

static engram_runtime_stats rt_stats(engram_runtime *rt)
{
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  return s;
}

static void open_gate(const char *path)
{
  FILE *f = fopen(path, "w");
  if (f) fclose(f);
}

/* Until the single worker has taken the running burst off the queue. */
static void wait_dequeued(engram_runtime *rt)
{
  while (rt_stats(rt).queued != 0) sched_yield();
}

TEST(runtime_full_queue_is_ebusy_and_a_running_burst_is_not_finished)
{
  const char *gate = tmp_path("gate-busy");
  unlink(gate);
  engram_runtime *rt = rt_make(1, 1, 20000, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "gate.lua", GATE_SCRIPT);
  engram_param p[1] = { { "gate", gate, 0 } };
  engram_burst *a = NULL, *b = NULL, *c = NULL;
  CHECK_EQ(engram_runtime_submit(rt, s, p, 1, &a), 0);
  wait_dequeued(rt);
  CHECK_EQ(engram_runtime_submit(rt, s, p, 1, &b), 0);
  CHECK_EQ(engram_runtime_submit(rt, s, p, 1, &c), ENGRAM_EBUSY);
  CHECK_EQ(engram_burst_done(a), 0);
  CHECK_EQ(engram_burst_status(a), ENGRAM_EBUSY);
  CHECK_EQ(engram_burst_wait(a, 0), ENGRAM_ETIMEOUT);
  engram_runtime_stats st = rt_stats(rt);
  CHECK_EQ(st.rejected, 1);
  CHECK_EQ(st.submitted, 2);
  open_gate(gate);
  CHECK_EQ(engram_burst_wait(a, -1), 0);
  CHECK_EQ(engram_burst_wait(b, -1), 0);
  CHECK_EQ(engram_burst_status(a), 0);
  CHECK_STR(engram_burst_result(b), "\"released\"");
  engram_burst_release(a);
  engram_burst_release(b);
  engram_runtime_destroy(rt);
  unlink(gate);
}

struct prober { engram_runtime *rt; int script; const char *gate; };

static void *shutdown_prober(void *arg)
{
  struct prober *p = arg;
  for (;;) {
    engram_burst *h = NULL;
    int rc = engram_runtime_submit(p->rt, p->script, NULL, 0, &h);
    if (rc == 0) engram_burst_release(h);
    if (rc == ENGRAM_ESTATE) break;
    usleep(1000);
  }
  open_gate(p->gate);
  return NULL;
}

TEST(runtime_shutdown_cancel_completes_queued_bursts_with_estate)
{
  const char *gate = tmp_path("gate-cancel");
  unlink(gate);
  engram_runtime *rt = rt_make(1, 64, 20000, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "gate.lua", GATE_SCRIPT);
  int quick = load(rt, "quick.lua", "return function(b) return 1 end");
  engram_param p[1] = { { "gate", gate, 0 } };
  engram_burst *a = NULL, *b = NULL, *c = NULL;
  CHECK_EQ(engram_runtime_submit(rt, s, p, 1, &a), 0);
  wait_dequeued(rt);
  CHECK_EQ(engram_runtime_submit(rt, quick, NULL, 0, &b), 0);
  CHECK_EQ(engram_runtime_submit(rt, quick, NULL, 0, &c), 0);
  struct prober pr = { rt, quick, gate };
  pthread_t t;
  pthread_create(&t, NULL, shutdown_prober, &pr);
  engram_runtime_shutdown(rt, ENGRAM_SHUTDOWN_CANCEL);
  pthread_join(t, NULL);
  CHECK_EQ(engram_burst_wait(a, -1), 0);
  CHECK_EQ(engram_burst_status(a), 0);
  CHECK_EQ(engram_burst_wait(b, -1), 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESTATE);
  CHECK_STR(engram_burst_message(b), "runtime: burst cancelled by shutdown");
  CHECK_EQ(engram_burst_status(c), ENGRAM_ESTATE);
  engram_burst *d = NULL;
  CHECK_EQ(engram_runtime_submit(rt, quick, NULL, 0, &d), ENGRAM_ESTATE);
  engram_runtime_shutdown(rt, ENGRAM_SHUTDOWN_DRAIN);   /* idempotent */
  engram_runtime_stats st = rt_stats(rt);
  CHECK(st.cancelled >= 2);
  engram_runtime_destroy(rt);
  /* handles stay valid until released */
  CHECK_STR(engram_burst_message(c), "runtime: burst cancelled by shutdown");
  engram_burst_release(a);
  engram_burst_release(b);
  engram_burst_release(c);
  unlink(gate);
}

TEST(runtime_destroy_drains_queued_bursts)
{
  engram_runtime *rt = rt_make(1, 0, 0, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "n.lua", "return function(b) local t = 0 for i = 1, 10000 do t = t + i end return t end");
  engram_burst *h[20];
  for (int k = 0; k < 20; k++) CHECK_EQ(engram_runtime_submit(rt, s, NULL, 0, &h[k]), 0);
  engram_runtime_destroy(rt);
  for (int k = 0; k < 20; k++) {
    CHECK_EQ(engram_burst_done(h[k]), 1);
    CHECK_EQ(engram_burst_status(h[k]), 0);
    CHECK_STR(engram_burst_result(h[k]), "50005000");
    engram_burst_release(h[k]);
  }
}

TEST(runtime_deadline_stops_interpreted_and_compiled_loops)
{
#if defined(__SANITIZE_THREAD__)
  /* the header: the deadline stops a compiled loop with a signal; ThreadSanitizer delivers
   * signals only at calls it intercepts, and a compiled loop makes none */
  SKIP("ThreadSanitizer delivers signals only at intercepted calls; a compiled loop makes none");
#endif
  engram_runtime *rt = rt_make(1, 0, 50, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int jit = load(rt, "spin.lua", "return function(b) local i = 0 while true do i = i + 1 end end");
  int caught = load(rt, "caught.lua",
                     "return function(b) for k = 1, 1e9 do pcall(function() local s = {} for i = 1, 100 do s[i] = i end end) end end");
  engram_burst *b = run_burst(rt, jit, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ETIMEOUT);
  engram_burst_release(b);
  b = run_burst(rt, caught, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ETIMEOUT);
  engram_burst_release(b);
  int ok = load(rt, "ok.lua", "return function(b) return 'alive' end");
  b = run_burst(rt, ok, NULL, 0);
  CHECK_STR(engram_burst_result(b), "\"alive\"");
  engram_burst_release(b);
  engram_worker_stats w;
  ENGRAM_STRUCT_INIT(w, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_worker_stats(rt, 0, &w);
  CHECK_EQ(w.timeouts, 2);
  engram_runtime_destroy(rt);
}

TEST(runtime_heap_limit_is_efull_even_when_caught)
{
  engram_runtime *rt = rt_make(1, 0, 0, 8 << 20);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "heap.lua",
               "return function(b)\n"
               "  pcall(function() local t = {} for i = 1, 1e8 do t[i] = { i } end end)\n"
               "  return 'caught'\n"
               "end\n");
  engram_burst *b = run_burst(rt, s, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_EFULL);
  engram_burst_release(b);
  int ok = load(rt, "ok.lua", "return function(b) return 'alive' end");
  b = run_burst(rt, ok, NULL, 0);
  CHECK_STR(engram_burst_result(b), "\"alive\"");
  engram_burst_release(b);
  engram_worker_stats w;
  ENGRAM_STRUCT_INIT(w, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_worker_stats(rt, 0, &w);
  CHECK_EQ(w.heap_limit_hits, 1);
  CHECK_EQ(w.lua_heap_limit, 8 << 20);
  CHECK(w.states_created >= 2);
  engram_runtime_destroy(rt);
}

TEST(runtime_arena_is_reset_whichever_way_the_burst_ends)
{
  engram_runtime *rt = rt_make(1, 0, 0, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "arena.lua",
               "return function(b) local u = b.arena:used() b.arena:floats(1000)\n"
               "  if b.params.fail then error('x') end return u end");
  engram_param p[1] = { { "fail", "1", 0 } };
  engram_burst *b = run_burst(rt, s, p, 1);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  engram_burst_release(b);
  b = run_burst(rt, s, NULL, 0);
  CHECK_STR(engram_burst_result(b), "0");
  engram_burst_release(b);
  engram_runtime_destroy(rt);
}

TEST(runtime_json_encoding_rules)
{
  engram_runtime *rt = rt_make(1, 0, 0, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  struct { const char *src, *json; } cases[] = {
    { "return function(b) end", "null" },
    { "return function(b) return {} end", NULL },
    { "return function(b) return { z = 1, a = { 1, 2 }, [1.5] = true } end", NULL },
    { "return function(b) return 0/0, 1/0 end", "[null,null]" },
    { "return function(b) return { 'a', 'b' } end", "[\"a\",\"b\"]" },
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char name[32];
    snprintf(name, sizeof name, "json%zu.lua", k);
    engram_burst *b = run_burst(rt, load(rt, name, cases[k].src), NULL, 0);
    CHECK_EQ(engram_burst_status(b), 0);
    if (cases[k].json) CHECK_STR(engram_burst_result(b), cases[k].json);
    engram_burst_release(b);
  }
  engram_burst *b = run_burst(rt, load(rt, "cdata.lua", "return function(b) return b.arena end"), NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  engram_burst_release(b);
  engram_runtime_destroy(rt);
}

struct submitter { engram_runtime *rt; int script; int ok; };

static void *submit_many(void *arg)
{
  struct submitter *s = arg;
  s->ok = 1;
  for (int k = 0; k < 50; k++) {
    engram_burst *b = NULL;
    int rc;
    while ((rc = engram_runtime_submit(s->rt, s->script, NULL, 0, &b)) == ENGRAM_EBUSY) sched_yield();
    if (rc != 0) { s->ok = 0; continue; }
    if (engram_burst_wait(b, -1) != 0 || engram_burst_status(b) != 0) s->ok = 0;
    engram_burst_release(b);
  }
  return NULL;
}

TEST(runtime_submit_from_many_threads)
{
  engram_runtime *rt = rt_make(2, 8, 0, 0);
  if (!rt) { CHECK(rt != NULL); return; }
  int s = load(rt, "q.lua", "return function(b) return b.id end");
  struct submitter a = { rt, s, 0 }, b = { rt, s, 0 }, c = { rt, s, 0 };
  pthread_t t1, t2, t3;
  pthread_create(&t1, NULL, submit_many, &a);
  pthread_create(&t2, NULL, submit_many, &b);
  pthread_create(&t3, NULL, submit_many, &c);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  pthread_join(t3, NULL);
  CHECK(a.ok && b.ok && c.ok);
  engram_runtime_stats st = rt_stats(rt);
  CHECK_EQ(st.submitted, 150);
  CHECK_EQ(st.completed, 150);
  CHECK_EQ(st.workers, 2);
  engram_runtime_stats bad;
  ENGRAM_STRUCT_INIT(bad, ENGRAM_RUNTIME_STATS_VERSION + 1);
  CHECK_EQ(engram_runtime_stats_get(rt, &bad), ENGRAM_EVERSION);
  char *j = engram_runtime_stats_json(rt);
  CHECK(j != NULL);
  if (j) {
    CHECK_CONTAINS(j, "\"workers\"");
    CHECK_CONTAINS(j, "\"per_worker\"");
    CHECK_CONTAINS(j, "\"latency_ns\"");
  }
  engram_free(j);
  engram_runtime_destroy(rt);
}

/* ==================================================================================== */
/* Store                                                                                */

static engram_store *store_new(const char *path, uint32_t dim)
{
  remove_db(path);
  engram_store_config c = { .path = path, .dim = dim, .create = 1 };
  return engram_store_open(&c);
}

static engram_store_counts counts_of(engram_store *s)
{
  engram_store_counts c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_COUNTS_VERSION);
  engram_store_count(s, &c);
  return c;
}

static int import_n(engram_store *s, int first, int n, uint32_t dim)
{
  float v[64];
  if (engram_store_import_begin(s) != 0) return -1;
  for (int k = 0; k < n; k++) {
    for (uint32_t d = 0; d < dim; d++) v[d] = (float)((d + (uint32_t)k) % 3 == 0);
    engram_episode e = { .id = first + k, .content = "e", .embedding = v,
                         .created_at = 1790000000 + k * 60, .strength = 0.5f };
    if (engram_store_import_add(s, &e) != 0) { engram_store_import_abort(s); return -1; }
  }
  return engram_store_import_commit(s);
}

TEST(store_open_errors_name_the_file)
{
  const char *missing = tmp_path("missing.db");
  remove_db(missing);
  engram_store_config c = { .path = missing, .dim = 4 };
  CHECK(engram_store_open(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), missing);
  CHECK_CONTAINS(engram_last_error(), "store: ");

  const char *junk = tmp_path("junk.db");
  FILE *f = fopen(junk, "w");
  for (int k = 0; k < 500; k++) fputs("this is not a database ", f);
  fclose(f);
  c.path = junk;
  CHECK(engram_store_open(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), junk);
  unlink(junk);

  const char *dimdb = tmp_path("dim.db");
  engram_store *s = store_new(dimdb, 4);
  CHECK(s != NULL);
  CHECK_EQ(engram_store_dim(s), 4);
  engram_store_close(s);
  c.path = dimdb;
  c.dim = 8;
  CHECK(engram_store_open(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), dimdb);
  c.dim = 0;
  s = engram_store_open(&c);
  CHECK(s != NULL);
  if (s) CHECK_EQ(engram_store_dim(s), 4);
  engram_store_close(s);

  sqlite3 *db;
  CHECK_EQ(sqlite3_open(dimdb, &db), SQLITE_OK);
  CHECK_EQ(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  CHECK(engram_store_open(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), dimdb);
  remove_db(dimdb);
}

TEST(store_schema_is_version_2_in_wal_mode)
{
  const char *path = tmp_path("schema.db");
  engram_store *s = store_new(path, 4);
  CHECK(s != NULL);
  engram_store_close(s);
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  CHECK_EQ(sqlite3_step(st), SQLITE_ROW);
  CHECK_EQ(sqlite3_column_int(st, 0), 2);
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
  CHECK_EQ(sqlite3_step(st), SQLITE_ROW);
  CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  remove_db(path);
}

TEST(store_import_is_all_or_nothing)
{
  const char *path = tmp_path("import.db");
  engram_store *s = store_new(path, 4);
  CHECK_EQ(import_n(s, 1, 3, 4), 0);
  float v[4] = { 1, 0, 0, 0 }, nanv[4] = { NAN, 0, 0, 0 };
  CHECK_EQ(engram_store_import_begin(s), 0);
  engram_episode ok = { .id = 10, .content = "new", .embedding = v, .created_at = 1, .strength = 1 };
  CHECK_EQ(engram_store_import_add(s, &ok), 0);
  engram_episode dup = { .id = 2, .content = "dup", .embedding = v, .created_at = 1, .strength = 1 };
  CHECK(engram_store_import_add(s, &dup) < 0);
  CHECK_EQ(engram_store_import_commit(s), ENGRAM_ESTATE);
  CHECK_EQ(counts_of(s).memories, 3);
  /* each invalid field is refused */
  CHECK_EQ(engram_store_import_begin(s), 0);
  engram_episode bad = ok;
  bad.strength = 1.5f;
  CHECK(engram_store_import_add(s, &bad) < 0);
  bad = ok; bad.embedding = nanv;
  CHECK(engram_store_import_add(s, &bad) < 0);
  bad = ok; bad.access_count = -1;
  CHECK(engram_store_import_add(s, &bad) < 0);
  engram_store_import_abort(s);
  CHECK_EQ(counts_of(s).memories, 3);
  engram_store_counts c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_COUNTS_VERSION + 1);
  CHECK_EQ(engram_store_count(s, &c), ENGRAM_EVERSION);
  engram_store_close(s);
  remove_db(path);
}

TEST(store_load_claims_newest_first_aligned)
{
  const char *path = tmp_path("load.db");
  engram_store *s = store_new(path, 16);
  CHECK_EQ(import_n(s, 1, 5, 16), 0);
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_arena_alloc(a, 4);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 3, 0, 0, &b), 0);
  CHECK_EQ(b.n, 3);
  CHECK_EQ(b.dim, 16);
  CHECK_EQ(b.ids[0], 5);
  CHECK_EQ(b.ids[1], 4);
  CHECK_EQ(b.ids[2], 3);
  CHECK((uintptr_t)b.embeddings % 64 == 0);
  CHECK((uintptr_t)(b.embeddings + 16) % 64 == 0);
  CHECK_EQ(counts_of(s).claims, 3);
  engram_batch b2;
  CHECK_EQ(engram_store_load(s, a, 10, 0, 0, &b2), 0);
  CHECK_EQ(b2.n, 2);
  CHECK_EQ(engram_store_release(s, b.claim), 0);
  CHECK_EQ(counts_of(s).claims, 2);
  CHECK_EQ(engram_store_release_pending(s), 0);
  CHECK_EQ(counts_of(s).claims, 0);
  engram_arena_destroy(a);
  engram_store_close(s);
  remove_db(path);
}

TEST(store_load_nothing_to_do_is_success_and_arena_exhaustion_releases_claims)
{
  const char *path = tmp_path("load2.db");
  engram_store *s = store_new(path, 64);
  engram_arena *a = arena_of(64 << 10, ENGRAM_OVERFLOW_ERROR);
  engram_batch b;
  b.n = 12345;
  CHECK_EQ(engram_store_load(s, a, 10, 0, 0, &b), 0);
  CHECK_EQ(b.n, 0);
  CHECK_EQ(import_n(s, 1, 40, 64), 0);
  engram_arena_reset(a);
  CHECK(engram_arena_alloc(a, 60 << 10) != NULL);   /* 4 KiB left: 40 rows of 256 bytes do not fit */
  CHECK_EQ(engram_store_load(s, a, 40, 0, 0, &b), ENGRAM_EFULL);
  CHECK_CONTAINS(engram_last_error(), "arena");
  CHECK_EQ(counts_of(s).claims, 0);
  engram_arena_destroy(a);
  engram_store_close(s);
  remove_db(path);
}

TEST(store_commit_errors_change_nothing)
{
  const char *path = tmp_path("commit.db");
  engram_store *s = store_new(path, 4);
  CHECK_EQ(import_n(s, 1, 4, 4), 0);
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 2, 0, 0, &b), 0);   /* claims 4 and 3 */
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  c.claim = b.claim;
  int64_t unclaimed[2] = { 4, 1 };
  c.n_consolidated = 2;
  c.consolidated_ids = unclaimed;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_ESTATE);
  CHECK_EQ(counts_of(s).unconsolidated, 4);

  int64_t mine[2] = { 4, 3 }, uid[1] = { 4 };
  float bad_strength[1] = { 2 }, act[1] = { 0.5f };
  c.consolidated_ids = mine;
  c.n_updates = 1;
  c.update_ids = uid;
  c.update_strength = bad_strength;
  c.update_activation = act;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_EINVAL);
  CHECK_EQ(counts_of(s).unconsolidated, 4);

  float good_strength[1] = { 0.5f };
  c.update_strength = good_strength;
  float cen[8] = { 1, 0, 0, 0, 0, 1, 0, 0 }, pst[2] = { 0.9f, 0.8f };
  uint32_t offs[3] = { 0, 2, 1 };
  int64_t members[2] = { 3, 4 };
  c.n_patterns = 2;
  c.pattern_centroids = cen;
  c.pattern_strength = pst;
  c.pattern_offsets = offs;
  c.pattern_members = members;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_EINVAL);
  engram_store_counts k = counts_of(s);
  CHECK_EQ(k.unconsolidated, 4);
  CHECK_EQ(k.patterns, 0);

  uint32_t good_offs[3] = { 0, 2, 2 };
  c.pattern_offsets = good_offs;
  int64_t es[1] = { 4 }, ed[1] = { 3 };
  float ew[1] = { 0.7f };
  c.n_edges = 1;
  c.edge_src = es;
  c.edge_dst = ed;
  c.edge_weight = ew;
  CHECK_EQ(engram_store_commit(s, &c), 0);
  k = counts_of(s);
  CHECK_EQ(k.unconsolidated, 2);
  CHECK_EQ(k.claims, 0);
  CHECK_EQ(k.edges, 1);
  CHECK_EQ(k.patterns, 2);

  engram_store_changes v;
  ENGRAM_STRUCT_INIT(v, ENGRAM_STORE_CHANGES_VERSION + 1);
  CHECK_EQ(engram_store_commit(s, &v), ENGRAM_EVERSION);

  engram_store_summary sum;
  ENGRAM_STRUCT_INIT(sum, ENGRAM_STORE_SUMMARY_VERSION);
  CHECK_EQ(engram_store_summarize(s, &sum), 0);
  CHECK_EQ(sum.memories, 4);
  CHECK(sum.strength_min <= sum.strength_p50 && sum.strength_p50 <= sum.strength_max);
  int wal = -1;
  CHECK_EQ(engram_store_checkpoint(s, &wal), 0);
  CHECK(wal >= 0);
  CHECK_EQ(engram_store_checkpoint(s, NULL), 0);
  engram_arena_destroy(a);
  engram_store_close(s);
  remove_db(path);
}

TEST(store_two_connections_never_load_the_same_episode)
{
  const char *path = tmp_path("two.db");
  engram_store *s1 = store_new(path, 4);
  CHECK_EQ(import_n(s1, 1, 6, 4), 0);
  engram_store_config c = { .path = path };
  engram_store *s2 = engram_store_open(&c);
  engram_arena *a = arena_of(1 << 20, ENGRAM_OVERFLOW_ERROR);
  engram_batch b1, b2;
  CHECK_EQ(engram_store_load(s1, a, 4, 0, 0, &b1), 0);
  CHECK_EQ(engram_store_load(s2, a, 4, 0, 0, &b2), 0);
  CHECK_EQ(b1.n, 4);
  CHECK_EQ(b2.n, 2);
  for (uint32_t i = 0; i < b1.n; i++)
    for (uint32_t j = 0; j < b2.n; j++) CHECK(b1.ids[i] != b2.ids[j]);
  engram_store_release_pending(s1);
  engram_store_release_pending(s2);
  engram_arena_destroy(a);
  engram_store_close(s2);
  engram_store_close(s1);
  remove_db(path);
}

TEST(runtime_store_path_gives_scripts_burst_store_and_releases_claims)
{
  const char *path = tmp_path("rt.db");
  engram_store *s = store_new(path, 4);
  CHECK_EQ(import_n(s, 1, 3, 4), 0);
  engram_runtime_config c;
  engram_runtime_config_default(&c);
  c.workers = 1;
  c.store_path = path;
  engram_runtime *rt = engram_runtime_create(&c);
  CHECK(rt != NULL);
  if (rt) {
    int sc = load(rt, "claim.lua",
                  "return function(b) local x = b.store:load(b.arena, { batch = 2, context = 0 })\n"
                  "  return x.n end");
    engram_burst *h = run_burst(rt, sc, NULL, 0);
    CHECK_EQ(engram_burst_status(h), 0);
    CHECK_STR(engram_burst_result(h), "2");
    engram_burst_release(h);
    engram_runtime_destroy(rt);
    CHECK_EQ(counts_of(s).claims, 0);
  }
  engram_store_close(s);
  remove_db(path);
}

int main(int argc, char **argv)
{
  if (argc == 3 && !strcmp(argv[1], "--env")) return env_child(argv[2]);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  self_exe[n > 0 ? n : 0] = 0;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/engram-docs-XXXXXX");
  if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }

  RUN(version_matches_header);
  RUN(strerror_is_static_lower_case_and_distinct);
  RUN(last_error_is_never_null);
  RUN(last_error_belongs_to_the_calling_thread);

  RUN(arena_null_config_is_the_process_default);
  RUN(arena_bad_config_is_einval);
  RUN(arena_alignments_up_to_4096);
  RUN(arena_invalid_alignment_is_null_einval);
  RUN(arena_zero_bytes_is_a_valid_aligned_pointer);
  RUN(arena_array_overflow_is_eoverflow);
  RUN(arena_n_near_size_max_never_wraps);
  RUN(arena_out_of_memory_messages_as_documented);
  RUN(arena_reset_gives_everything_back_and_counts);
  RUN(arena_query_checks_size_and_version);
  RUN(arena_marks_nest_and_stale_marks_are_refused);
  RUN(arena_scopes_make_inner_handles_stale);
  RUN(arena_scopes_nest_up_to_the_maximum_and_outer_leave_closes_inner);
  RUN(arena_epochs_are_unique_and_a_destroyed_arena_reads_stale);
  RUN(arena_fallback_chunk_is_an_eighth_clamped_to_64k_16m);
  RUN(arena_fallback_takes_the_request_size_if_larger_and_never_doubles);
  RUN(arena_fallback_is_given_back_at_rewind_and_reset);
  RUN(arena_error_strategy_counts_and_a_request_beyond_the_arena_obeys_it);
  RUN(arena_panic_prints_the_message_and_aborts);
  RUN(arena_size_zero_is_accepted);
  RUN(arena_huge_pages_are_never_a_failure);
  RUN(thread_arena_is_lazy_per_thread_and_retired_at_exit);
  RUN(stats_snapshot_counts_live_and_retired_and_checks_version);
  RUN(stats_may_be_read_from_any_thread_while_the_owner_allocates);
  RUN(stats_json_has_the_documented_shape);
  RUN(parse_size_forms);

  RUN(env_bad_arena_size_fails_every_call_with_the_documented_message);
  RUN(env_arena_size_out_of_range_is_refused);
  RUN(env_empty_counts_as_unset_and_good_values_apply);
  RUN(env_bad_overflow_hugepages_prefault_name_the_variable);
  RUN(env_bad_isa_fails_every_kernel_until_set_isa);
  RUN(env_isa_the_cpu_lacks_is_enotsup);
  RUN(env_isa_scalar_is_used);
  RUN(configure_arena_checks_its_range_and_sets_the_thread_default);

  RUN(pool_bad_config_is_einval_naming_the_field);
  RUN(pool_defaults_stride_and_no_slab_before_first_acquire);
  RUN(pool_is_lifo_and_keeps_all_but_the_first_word);
  RUN(pool_zero_flag_zeroes_reused_objects);
  RUN(pool_cap_is_efull_naming_the_cap);
  RUN(pool_grows_by_the_growth_factor);
  RUN(vector_pool_slots_are_64_aligned);
  RUN(pool_query_checks_version);
  RUN(shared_pool_may_be_used_from_any_thread);
  RUN(arena_cache_hands_out_size_classes_and_keeps_released_arenas);

  RUN(kernels_check_their_arguments_with_prefixed_messages);
  RUN(similarity_zero_and_nonfinite_vectors_score_zero_and_scores_are_clamped);
  RUN(similarity_scratch_is_rewound_and_efull_names_the_kernel);
  RUN(sim_pairs_reports_more_pairs_than_room);
  RUN(sim_topk_fills_missing_slots);
  RUN(csr_violations_are_einval_or_erange_naming_the_place);
  RUN(spread_bounded_contract);
  RUN(decay_defaults_and_models);
  RUN(decay_checks_parameters_before_writing);
  RUN(isa_selection_contract);
  RUN(isas_agree_within_the_stated_bound);

  RUN(runtime_config_defaults);
  RUN(runtime_create_checks_its_config);
  RUN(runtime_scripts_compile_once_and_report_errors);
  RUN(runtime_bursts_return_json_ids_and_params);
  RUN(runtime_script_errors_are_isolated);
  RUN(runtime_full_queue_is_ebusy_and_a_running_burst_is_not_finished);
  RUN(runtime_shutdown_cancel_completes_queued_bursts_with_estate);
  RUN(runtime_destroy_drains_queued_bursts);
  RUN(runtime_deadline_stops_interpreted_and_compiled_loops);
  RUN(runtime_heap_limit_is_efull_even_when_caught);
  RUN(runtime_arena_is_reset_whichever_way_the_burst_ends);
  RUN(runtime_json_encoding_rules);
  RUN(runtime_submit_from_many_threads);

  RUN(store_open_errors_name_the_file);
  RUN(store_schema_is_version_2_in_wal_mode);
  RUN(store_import_is_all_or_nothing);
  RUN(store_load_claims_newest_first_aligned);
  RUN(store_load_nothing_to_do_is_success_and_arena_exhaustion_releases_claims);
  RUN(store_commit_errors_change_nothing);
  RUN(store_two_connections_never_load_the_same_episode);
  RUN(runtime_store_path_gives_scripts_burst_store_and_releases_claims);

  rmdir(tmpdir);
  return test_done();
}
