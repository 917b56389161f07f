/*
 * test_arena.c — the arena on one thread: alignment, capacity, padding, zero-size, reset and
 * reuse, marks and rewind, scopes and epochs, size overflow, each overflow strategy, fallback
 * chunks, stats. Includes the original design's arena test list where it still applies.
 */
#include "test.h"
#include "engram.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

static engram_arena *make(size_t size, engram_overflow ov)
{
  engram_arena_config c = { .size = size, .align = 16, .overflow = ov, .huge_pages = ENGRAM_HUGE_OFF };
  engram_arena *a = engram_arena_create(&c);
  CHECK(a != NULL);
  return a;
}

static engram_arena_info info(engram_arena *a)
{
  engram_arena_info st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_ARENA_INFO_VERSION);
  CHECK_EQ(engram_arena_query(a, &st), 0);
  return st;
}

TEST(basic_allocation_advances_by_its_size)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc_aligned(a, 100, 1) != NULL);
  CHECK_EQ(engram_arena_used(a), 100);
  engram_arena_info st = info(a);
  CHECK_EQ(st.high_water, 100);
  CHECK_EQ(st.overflows, 0);
  CHECK_EQ(st.capacity, 4096);
  engram_arena_destroy(a);
}

TEST(every_power_of_two_alignment_aligns_the_address)
{
  engram_arena *a = make(1 << 20, ENGRAM_OVERFLOW_ERROR);
  for (size_t align = 1; align <= 4096; align *= 2) {
    engram_arena_alloc_aligned(a, 1, 1);   /* knock the top off any alignment */
    char *p = engram_arena_alloc_aligned(a, 24, align);
    CHECK(p != NULL);
    CHECK_EQ((uintptr_t)p % align, 0);
    p[0] = 1;
    p[23] = 2;
  }
  engram_arena_destroy(a);
}

TEST(invalid_alignments_fail_without_counting_an_overflow)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  size_t bad[] = { 0, 3, 6, 12, 8192 };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    volatile size_t al = bad[i];   /* not a constant: the inline check must catch it */
    CHECK(engram_arena_alloc_aligned(a, 8, al) == NULL);
  }
  CHECK_CONTAINS(engram_last_error(), "arena: bad alignment 8192 (expected a power of two from 1 to 4096)");
  CHECK_EQ(engram_arena_used(a), 0);
  CHECK_EQ(info(a).overflows, 0);
  engram_arena_destroy(a);
}

TEST(padding_is_accounted_in_used)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  engram_arena_alloc_aligned(a, 1, 1);
  CHECK_EQ(engram_arena_used(a), 1);
  engram_arena_alloc_aligned(a, 1, 8);
  CHECK_EQ(engram_arena_used(a), 9);
  engram_arena_alloc_aligned(a, 1, 16);
  CHECK_EQ(engram_arena_used(a), 17);
  engram_arena_alloc_aligned(a, 1, 4);
  CHECK_EQ(engram_arena_used(a), 21);
  engram_arena_destroy(a);
}

TEST(exactly_the_capacity_fits_and_one_more_byte_does_not)
{
  engram_arena *a = make(1000, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc_aligned(a, 1000, 1) != NULL);
  CHECK_EQ(engram_arena_remaining(a), 0);
  CHECK(engram_arena_alloc_aligned(a, 1, 1) == NULL);
  CHECK_EQ(info(a).overflows, 1);
  engram_arena_reset(a);
  CHECK(engram_arena_alloc_aligned(a, 999, 1) != NULL);
  CHECK(engram_arena_alloc_aligned(a, 1, 1) != NULL);
  CHECK(engram_arena_alloc_aligned(a, 1, 1) == NULL);
  engram_arena_destroy(a);
}

TEST(failed_allocation_leaves_the_arena_unchanged)
{
  engram_arena *a = make(100, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc_aligned(a, 90, 1) != NULL);
  CHECK(engram_arena_alloc_aligned(a, 20, 1) == NULL);
  CHECK_EQ(engram_arena_used(a), 90);
  CHECK_STR(engram_last_error(), "arena: out of memory (requested 20 bytes, align 1; 90 of 100 bytes used)");
  CHECK(engram_arena_alloc_aligned(a, 10, 1) != NULL);   /* what remains still fits */
  CHECK_EQ(engram_arena_used(a), 100);
  engram_arena_destroy(a);
}

TEST(alignment_padding_beyond_the_end_is_an_overflow)
{
  engram_arena *a = make(100, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc_aligned(a, 95, 1) != NULL);
  CHECK(engram_arena_alloc_aligned(a, 8, 8) == NULL);        /* 96 + 8 > 100 */
  CHECK(engram_arena_alloc_aligned(a, 1, 64) == NULL);       /* 128 > 100 */
  CHECK(engram_arena_alloc_aligned(a, 0, 4096) == NULL);     /* even zero bytes: 4096 > 100 */
  CHECK_EQ(engram_arena_used(a), 95);
  CHECK_EQ(info(a).overflows, 3);
  engram_arena_destroy(a);
}

TEST(zero_size_allocations_return_aligned_pointers_and_consume_nothing)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  void *p = engram_arena_alloc_aligned(a, 0, 16);
  void *q = engram_arena_alloc_aligned(a, 0, 16);
  CHECK(p != NULL && q != NULL);
  CHECK_EQ(engram_arena_used(a), 0);
  CHECK_EQ((uintptr_t)p % 16, 0);
  engram_arena_destroy(a);
}

TEST(a_zero_capacity_arena_serves_only_empty_requests)
{
  engram_arena *a = make(0, ENGRAM_OVERFLOW_ERROR);
  CHECK_EQ(engram_arena_capacity(a), 0);
  CHECK_EQ(engram_arena_remaining(a), 0);
  CHECK(engram_arena_alloc_aligned(a, 1, 1) == NULL);
  CHECK(engram_arena_alloc_aligned(a, 0, 1) != NULL);
  engram_arena_destroy(a);
}

TEST(size_computations_that_overflow_are_rejected)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  CHECK(engram_arena_alloc_array(a, SIZE_MAX / 2, 4, 4) == NULL);
  CHECK_STR(engram_last_error(), "arena: size overflow (9223372036854775807 elements of 4 bytes)");
  CHECK(engram_arena_alloc_aligned(a, SIZE_MAX, 1) == NULL);
  CHECK(engram_arena_alloc_aligned(a, SIZE_MAX - 8, 64) == NULL);
  CHECK(engram_arena_alloc_array(a, 100, sizeof(float), 4) != NULL);
  CHECK_EQ(engram_arena_used(a), 400);
  engram_arena_destroy(a);

  /* with fallback, an impossible size is still an error, not a giant malloc */
  a = make(4096, ENGRAM_OVERFLOW_FALLBACK);
  CHECK(engram_arena_alloc_aligned(a, SIZE_MAX - 8, 64) == NULL);
  CHECK(engram_arena_alloc_array(a, SIZE_MAX / 2, 4, 4) == NULL);
  CHECK_EQ(info(a).fallback_chunks, 0);
  engram_arena_destroy(a);
}

TEST(reset_gives_back_everything_and_reuses_the_same_memory)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  void *first = engram_arena_alloc_aligned(a, 500, 16);
  for (int i = 0; i < 10; i++) {
    engram_arena_reset(a);
    CHECK_EQ(engram_arena_used(a), 0);
    CHECK(engram_arena_alloc_aligned(a, 500, 16) == first);
  }
  engram_arena_info st = info(a);
  CHECK_EQ(st.resets, 10);
  CHECK_EQ(st.high_water, 500);   /* the lifetime peak survives resets */
  engram_arena_destroy(a);
}

TEST(high_water_is_the_peak_even_when_rewound_before_reset)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  engram_mark m = engram_arena_mark(a);
  engram_arena_alloc_aligned(a, 3000, 1);
  CHECK_EQ(engram_arena_rewind(a, m), 0);
  engram_arena_alloc_aligned(a, 100, 1);
  engram_arena_reset(a);
  CHECK_EQ(info(a).high_water, 3000);
  engram_arena_destroy(a);
}

TEST(marks_nest_and_rewind_from_inner_to_outer)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  engram_arena_alloc_aligned(a, 100, 1);
  engram_mark outer = engram_arena_mark(a);
  char *p1 = engram_arena_alloc_aligned(a, 200, 1);
  engram_mark inner = engram_arena_mark(a);
  engram_arena_alloc_aligned(a, 300, 1);
  CHECK_EQ(engram_arena_used(a), 600);
  CHECK_EQ(engram_arena_rewind(a, inner), 0);
  CHECK_EQ(engram_arena_used(a), 300);
  CHECK_EQ(engram_arena_rewind(a, outer), 0);
  CHECK_EQ(engram_arena_used(a), 100);
  /* the memory of the rewound scope is handed out again */
  CHECK(engram_arena_alloc_aligned(a, 200, 1) == p1);
  engram_arena_destroy(a);
}

TEST(a_mark_beyond_the_top_or_from_before_a_reset_is_stale)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  engram_mark outer = engram_arena_mark(a);
  engram_arena_alloc_aligned(a, 64, 1);
  engram_mark inner = engram_arena_mark(a);
  CHECK_EQ(engram_arena_rewind(a, outer), 0);
  CHECK_EQ(engram_arena_rewind(a, inner), ENGRAM_ESTALE);
  CHECK_STR(engram_last_error(), "arena: mark lies beyond the current top (already rewound past it)");
  engram_mark m = engram_arena_mark(a);
  engram_arena_reset(a);
  CHECK_EQ(engram_arena_rewind(a, m), ENGRAM_ESTALE);
  CHECK_CONTAINS(engram_last_error(), "arena: mark from before the last reset");
  engram_arena_destroy(a);
}

TEST(scopes_make_inner_epochs_stale_and_keep_outer_ones_live)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  uint64_t e0 = a->epoch;
  engram_mark s1, s2;
  CHECK_EQ(engram_arena_scope_enter(a, &s1), 0);
  uint64_t e1 = a->epoch;
  engram_arena_alloc_aligned(a, 10, 1);
  CHECK_EQ(engram_arena_scope_enter(a, &s2), 0);
  uint64_t e2 = a->epoch;
  CHECK(e0 != e1 && e1 != e2 && e0 != e2);
  CHECK(engram_arena_epoch_live(a, e0) && engram_arena_epoch_live(a, e1) && engram_arena_epoch_live(a, e2));
  CHECK_EQ(engram_arena_scope_leave(a, s2), 0);
  CHECK_EQ(a->epoch, e1);
  CHECK(!engram_arena_epoch_live(a, e2));
  CHECK(engram_arena_epoch_live(a, e0));
  CHECK_EQ(engram_arena_used(a), 10);
  CHECK_EQ(engram_arena_scope_leave(a, s2), ENGRAM_ESTALE);
  /* leaving the outer scope closes it; a reset makes everything stale */
  CHECK_EQ(engram_arena_scope_leave(a, s1), 0);
  CHECK_EQ(a->epoch, e0);
  CHECK_EQ(engram_arena_used(a), 0);
  engram_arena_reset(a);
  CHECK(!engram_arena_epoch_live(a, e0) && !engram_arena_epoch_live(a, e1));
  engram_arena_destroy(a);
}

TEST(leaving_an_outer_scope_closes_the_inner_ones)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  engram_mark s1, s2;
  engram_arena_scope_enter(a, &s1);
  engram_arena_scope_enter(a, &s2);
  uint64_t inner = a->epoch;
  CHECK_EQ(engram_arena_scope_leave(a, s1), 0);
  CHECK(!engram_arena_epoch_live(a, inner));
  CHECK_EQ(engram_arena_scope_leave(a, s2), ENGRAM_ESTALE);
  engram_arena_destroy(a);
}

TEST(the_mark_of_a_closed_scope_cannot_close_a_later_one)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  engram_mark m1, m2;
  CHECK_EQ(engram_arena_scope_enter(a, &m1), 0);
  CHECK_EQ(engram_arena_scope_leave(a, m1), 0);
  char *v = engram_arena_alloc(a, 16);       /* outer scope: must stay valid */
  uint64_t outer = a->epoch;
  CHECK_EQ(engram_arena_scope_enter(a, &m2), 0);   /* same outer epoch as m1, later position */
  CHECK_EQ(engram_arena_scope_leave(a, m1), ENGRAM_ESTALE);
  CHECK(engram_arena_epoch_live(a, outer));
  CHECK(engram_arena_alloc(a, 16) != v);
  CHECK_EQ(engram_arena_scope_leave(a, m2), 0);
  CHECK_EQ(engram_arena_used(a), 16);
  /* a plain mark is not a scope */
  engram_mark plain = engram_arena_mark(a);
  CHECK_EQ(engram_arena_scope_leave(a, plain), ENGRAM_ESTALE);
  engram_arena_destroy(a);
}

TEST(a_second_destroy_is_ignored_and_the_thread_arena_detaches)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  engram_arena_destroy(a);
  engram_arena_destroy(a);                    /* header not reused yet: ignored */
  engram_arena *b = make(4096, ENGRAM_OVERFLOW_ERROR);
  engram_arena *c = make(4096, ENGRAM_OVERFLOW_ERROR);
  CHECK(b != c);                              /* the header was recycled once, not twice */
  engram_arena_destroy(b);
  engram_arena_destroy(c);
  engram_arena *t = engram_arena_thread();
  CHECK(t != NULL);
  engram_arena_destroy(t);
  CHECK(engram_arena_thread_peek() == NULL);
  engram_arena *t2 = engram_arena_thread();   /* a new one on demand */
  CHECK(t2 != NULL && engram_arena_alloc(t2, 8) != NULL);
}

TEST(scopes_nest_to_a_bounded_depth)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_ERROR);
  engram_mark m[ENGRAM_ARENA_MAX_SCOPES + 1];
  for (int i = 0; i < ENGRAM_ARENA_MAX_SCOPES; i++)
    CHECK_EQ(engram_arena_scope_enter(a, &m[i]), 0);
  CHECK_EQ(engram_arena_scope_enter(a, &m[ENGRAM_ARENA_MAX_SCOPES]), ENGRAM_EFULL);
  CHECK_STR(engram_last_error(), "arena: too many nested scopes (at most 64)");
  engram_arena_reset(a);
  CHECK_EQ(engram_arena_scope_enter(a, &m[0]), 0);
  engram_arena_destroy(a);
}

TEST(epochs_are_unique_across_arenas_and_a_destroyed_arena_is_stale)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  uint64_t ea = a->epoch;
  engram_arena_destroy(a);
  /* the header is recycled: the stale pointer still reads a valid header with a new epoch */
  engram_arena *b = make(4096, ENGRAM_OVERFLOW_ERROR);
  CHECK(b->epoch != ea);
  CHECK(!engram_arena_epoch_live(b, ea));
  if (a == b)
    CHECK(!engram_arena_epoch_live(a, ea));
  engram_arena_destroy(b);
}

TEST(fallback_serves_overflowing_requests_from_chunks_freed_at_reset)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_FALLBACK);
  size_t total = 0;
  char *ptrs[64];
  for (int i = 0; i < 64; i++) {       /* 64 × 1.5 KiB = 96 KiB: 1.5× the arena */
    ptrs[i] = engram_arena_alloc_aligned(a, 1536, 64);
    CHECK(ptrs[i] != NULL);
    CHECK_EQ((uintptr_t)ptrs[i] % 64, 0);
    memset(ptrs[i], i, 1536);
    total += 1536;
  }
  for (int i = 0; i < 64; i++)
    CHECK(ptrs[i][0] == (char)i && ptrs[i][1535] == (char)i);
  engram_arena_info st = info(a);
  CHECK(st.used >= total);
  CHECK(st.fallback_chunks >= 1);
  CHECK(st.fallback_bytes >= 32 << 10);
  CHECK_EQ(st.overflows, st.fallback_chunks);
  engram_arena_reset(a);
  CHECK_EQ(engram_arena_used(a), 0);
  CHECK(a->chunk == NULL);
  /* the primary block serves again after reset */
  CHECK(engram_arena_alloc_aligned(a, 16, 16) == (void *)a->base);
  engram_arena_destroy(a);
}

TEST(a_request_larger_than_the_arena_gets_its_own_chunk)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_FALLBACK);
  char *small = engram_arena_alloc_aligned(a, 64, 16);
  char *big = engram_arena_alloc_aligned(a, 1 << 20, 4096);   /* 16× the arena */
  CHECK(big != NULL);
  CHECK_EQ((uintptr_t)big % 4096, 0);
  memset(big, 7, 1 << 20);
  engram_arena_info st = info(a);
  CHECK_EQ(st.fallback_chunks, 1);
  CHECK(st.fallback_bytes >= (1 << 20));
  CHECK(st.fallback_bytes < (1 << 20) + 8192);   /* sized to the request, not doubled */
  CHECK(small[0] == small[0]);
  engram_arena_destroy(a);
}

TEST(rewind_frees_the_chunks_opened_after_the_mark)
{
  engram_arena *a = make(1 << 16, ENGRAM_OVERFLOW_FALLBACK);
  engram_arena_alloc_aligned(a, 60000, 1);
  engram_mark m = engram_arena_mark(a);
  size_t before = engram_arena_used(a);
  engram_arena_alloc_aligned(a, 10000, 1);   /* spills into a chunk */
  CHECK(a->chunk != NULL);
  engram_mark in_chunk = engram_arena_mark(a);
  engram_arena_alloc_aligned(a, 100, 1);
  CHECK_EQ(engram_arena_rewind(a, in_chunk), 0);
  CHECK(a->chunk != NULL);
  CHECK_EQ(engram_arena_rewind(a, m), 0);
  CHECK(a->chunk == NULL);
  CHECK_EQ(engram_arena_used(a), before);
  CHECK(engram_arena_alloc_aligned(a, 5000, 1) != NULL);   /* fits the primary again */
  CHECK(a->chunk == NULL);
  engram_arena_destroy(a);
}

static void overflow_with_panic(void *arg)
{
  (void)arg;
  engram_arena_config c = { .size = 4096, .align = 16, .overflow = ENGRAM_OVERFLOW_PANIC };
  engram_arena *a = engram_arena_create(&c);
  engram_arena_alloc_aligned(a, 4000, 16);
  engram_arena_alloc_aligned(a, 200, 16);
  printf("still alive\n");   /* must not be reached */
}

TEST(panic_strategy_prints_the_sizes_and_aborts)
{
  char out[1024];
  int status = test_child(overflow_with_panic, NULL, out, sizeof out);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK_CONTAINS(out, "engram: arena: out of memory (requested 200 bytes, align 16; 4000 of 4096 bytes used) "
                      "(overflow strategy: panic)");
  CHECK(strstr(out, "still alive") == NULL);
}

TEST(bad_configs_are_rejected_with_a_message)
{
  engram_arena_config c = { .size = ((size_t)1 << 30) + 1, .align = 16 };
  CHECK(engram_arena_create(&c) == NULL);
  CHECK_STR(engram_last_error(), "arena: size 1073741825 is out of range (expected 0 to 1073741824 bytes)");
  c.size = 4096;
  c.align = 24;
  CHECK(engram_arena_create(&c) == NULL);
  CHECK_STR(engram_last_error(), "arena: bad default alignment 24 (expected a power of two from 1 to 4096)");
  c.align = 16;
  c.overflow = (engram_overflow)7;
  CHECK(engram_arena_create(&c) == NULL);
  CHECK_STR(engram_last_error(), "arena: bad overflow strategy 7 (expected error, panic or fallback)");
}

TEST(the_default_alignment_applies_to_plain_alloc)
{
  engram_arena_config c = { .size = 4096, .align = 64 };
  engram_arena *a = engram_arena_create(&c);
  engram_arena_alloc_aligned(a, 1, 1);
  void *p = engram_arena_alloc(a, 10);
  CHECK_EQ((uintptr_t)p % 64, 0);
  engram_arena_destroy(a);
}

TEST(stats_struct_of_another_version_is_refused)
{
  engram_arena *a = make(4096, ENGRAM_OVERFLOW_ERROR);
  engram_arena_info st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_ARENA_INFO_VERSION + 1);
  CHECK_EQ(engram_arena_query(a, &st), ENGRAM_EVERSION);
  st.struct_version = ENGRAM_ARENA_INFO_VERSION;
  st.struct_size = 8;
  CHECK_EQ(engram_arena_query(a, &st), ENGRAM_EVERSION);
  engram_arena_destroy(a);
}

TEST(large_arenas_report_the_page_kind_they_got)
{
  engram_arena_config c = { .size = 8 << 20, .align = 64, .huge_pages = ENGRAM_HUGE_AUTO, .prefault = 1 };
  engram_arena *a = engram_arena_create(&c);
  CHECK(a != NULL);
  engram_arena_info st = info(a);
  CHECK(st.page_kind == ENGRAM_PAGES_4K || st.page_kind == ENGRAM_PAGES_THP || st.page_kind == ENGRAM_PAGES_HUGETLB);
  printf("# 8 MiB arena with huge pages requested got page kind %d (0 = 4K, 1 = THP, 2 = hugetlb)\n", st.page_kind);
  char *p = engram_arena_alloc_aligned(a, 7 << 20, 4096);
  CHECK(p != NULL);
  memset(p, 1, 7 << 20);
  c.huge_pages = ENGRAM_HUGE_OFF;
  engram_arena *b = engram_arena_create(&c);
  CHECK_EQ(info(b).page_kind, ENGRAM_PAGES_4K);
  engram_arena_destroy(a);
  engram_arena_destroy(b);
}

TEST(errors_have_a_description_for_every_code)
{
  for (int c = 0; c >= ENGRAM_ECODE_MIN; c--)
    CHECK(strcmp(engram_strerror(c), "unknown error") != 0);
  CHECK_STR(engram_strerror(1), "unknown error");
  CHECK_STR(engram_strerror(ENGRAM_ECODE_MIN - 1), "unknown error");
  CHECK_EQ(engram_version(), ENGRAM_VERSION_NUM);
}

TEST(random_allocation_sequences_keep_every_block_intact)
{
  uint64_t seed = test_seed("random_allocation_sequences");
  engram_arena *a = make(1 << 18, ENGRAM_OVERFLOW_FALLBACK);
  for (int round = 0; round < 20; round++) {
    struct { unsigned char *p; size_t n; unsigned char v; } blocks[400];
    int nb = 0;
    for (int i = 0; i < 400; i++) {
      size_t n = test_rand(&seed) % 3000;
      size_t align = (size_t)1 << (test_rand(&seed) % 13);
      unsigned char *p = engram_arena_alloc_aligned(a, n, align);
      CHECK(p != NULL);
      if (!p)
        break;
      CHECK_EQ((uintptr_t)p % align, 0);
      memset(p, i & 0xff, n);
      blocks[nb].p = p;
      blocks[nb].n = n;
      blocks[nb].v = (unsigned char)(i & 0xff);
      nb++;
    }
    for (int i = 0; i < nb; i++)
      for (size_t k = 0; k < blocks[i].n; k += 97)
        if (blocks[i].p[k] != blocks[i].v) {
          CHECK(!"block overwritten");
          i = nb;
          break;
        }
    engram_arena_reset(a);
  }
  engram_arena_destroy(a);
}

int main(void)
{
  RUN(basic_allocation_advances_by_its_size);
  RUN(every_power_of_two_alignment_aligns_the_address);
  RUN(invalid_alignments_fail_without_counting_an_overflow);
  RUN(padding_is_accounted_in_used);
  RUN(exactly_the_capacity_fits_and_one_more_byte_does_not);
  RUN(failed_allocation_leaves_the_arena_unchanged);
  RUN(alignment_padding_beyond_the_end_is_an_overflow);
  RUN(zero_size_allocations_return_aligned_pointers_and_consume_nothing);
  RUN(a_zero_capacity_arena_serves_only_empty_requests);
  RUN(size_computations_that_overflow_are_rejected);
  RUN(reset_gives_back_everything_and_reuses_the_same_memory);
  RUN(high_water_is_the_peak_even_when_rewound_before_reset);
  RUN(marks_nest_and_rewind_from_inner_to_outer);
  RUN(a_mark_beyond_the_top_or_from_before_a_reset_is_stale);
  RUN(scopes_make_inner_epochs_stale_and_keep_outer_ones_live);
  RUN(leaving_an_outer_scope_closes_the_inner_ones);
  RUN(the_mark_of_a_closed_scope_cannot_close_a_later_one);
  RUN(a_second_destroy_is_ignored_and_the_thread_arena_detaches);
  RUN(scopes_nest_to_a_bounded_depth);
  RUN(epochs_are_unique_across_arenas_and_a_destroyed_arena_is_stale);
  RUN(fallback_serves_overflowing_requests_from_chunks_freed_at_reset);
  RUN(a_request_larger_than_the_arena_gets_its_own_chunk);
  RUN(rewind_frees_the_chunks_opened_after_the_mark);
  RUN(panic_strategy_prints_the_sizes_and_aborts);
  RUN(bad_configs_are_rejected_with_a_message);
  RUN(the_default_alignment_applies_to_plain_alloc);
  RUN(stats_struct_of_another_version_is_refused);
  RUN(large_arenas_report_the_page_kind_they_got);
  RUN(errors_have_a_description_for_every_code);
  RUN(random_allocation_sequences_keep_every_block_intact);
  return test_done();
}
