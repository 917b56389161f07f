/*
 * test_poison.c — under AddressSanitizer, arena memory beyond the bump pointer and memory given
 * back by reset or rewind is poisoned: a use after reset is reported, not silently read. Each
 * case runs in a child process that must die with the sanitizer's report. Other builds skip.
 */
#include "test.h"
#include "engram.h"

#include <sys/wait.h>

static engram_arena *small_arena(void)
{
  engram_arena_config c = { .size = 1 << 16, .align = 16, .overflow = ENGRAM_OVERFLOW_FALLBACK };
  return engram_arena_create(&c);
}

static void use_after_reset(void *arg)
{
  engram_arena *a = small_arena();
  volatile char *p = engram_arena_alloc(a, 64);
  p[0] = 1;
  engram_arena_reset(a);
  printf("read %d\n", p[1]);   /* must be reported */
}

static void use_after_rewind(void *arg)
{
  engram_arena *a = small_arena();
  engram_mark m = engram_arena_mark(a);
  volatile char *p = engram_arena_alloc(a, 64);
  p[0] = 1;
  engram_arena_rewind(a, m);
  p[2] = 3;
}

static void past_the_bump_pointer(void *arg)
{
  engram_arena *a = small_arena();
  volatile char *p = engram_arena_alloc(a, 32);
  p[40] = 1;   /* inside the block, beyond what was handed out */
}

static void fallback_chunk_after_reset(void *arg)
{
  engram_arena *a = small_arena();
  engram_arena_alloc(a, 60000);
  volatile char *p = engram_arena_alloc(a, 20000);   /* served from a fallback chunk */
  p[0] = 1;
  engram_arena_reset(a);                              /* chunk freed */
  printf("read %d\n", p[10]);
}

static void correct_use(void *arg)
{
  engram_arena *a = small_arena();
  for (int burst = 0; burst < 3; burst++) {
    char *p = engram_arena_alloc(a, 64);
    memset(p, 1, 64);
    engram_mark m = engram_arena_mark(a);
    char *q = engram_arena_alloc_aligned(a, 100000, 64);   /* spills into a chunk */
    memset(q, 2, 100000);
    engram_arena_rewind(a, m);
    memset(p, 3, 64);
    engram_arena_reset(a);
  }
  engram_arena_destroy(a);
  printf("clean\n");
}

#if defined(__SANITIZE_ADDRESS__)
static void expect_report(void (*fn)(void *), const char *kind)
{
  char out[8192];
  int status = test_child(fn, NULL, out, sizeof out);
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK_CONTAINS(out, "ERROR: AddressSanitizer");
  CHECK_CONTAINS(out, kind);
}
#define NEED_ASAN() ((void)0)
#else
static void expect_report(void (*fn)(void *), const char *kind) { (void)fn; (void)kind; }
#define NEED_ASAN() SKIP("needs MODE=asan")
#endif

TEST(a_read_after_reset_is_reported) { NEED_ASAN(); expect_report(use_after_reset, "use-after-poison"); }
TEST(a_write_after_rewind_is_reported) { NEED_ASAN(); expect_report(use_after_rewind, "use-after-poison"); }
TEST(a_write_past_the_bump_pointer_is_reported) { NEED_ASAN(); expect_report(past_the_bump_pointer, "use-after-poison"); }
TEST(a_fallback_chunk_used_after_reset_is_reported) { NEED_ASAN(); expect_report(fallback_chunk_after_reset, "heap-use-after-free"); }

TEST(correct_use_is_not_reported)
{
  char out[8192];
  int status = test_child(correct_use, NULL, out, sizeof out);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_STR(out, "clean\n");
}

int main(void)
{
  RUN(a_read_after_reset_is_reported);
  RUN(a_write_after_rewind_is_reported);
  RUN(a_write_past_the_bump_pointer_is_reported);
  RUN(a_fallback_chunk_used_after_reset_is_reported);
  RUN(correct_use_is_not_reported);
  return test_done();
}
