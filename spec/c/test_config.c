/*
 * test_config.c — sizes, the ENGRAM_ARENA_* environment (each case in a child process, since
 * the environment is read once per process) and engram_configure_arena.
 */
#include "test.h"
#include "engram.h"

#include <stdlib.h>
#include <sys/wait.h>

TEST(sizes_parse_in_bytes_and_binary_units)
{
  static const struct { const char *text; size_t bytes; } ok[] = {
    { "0", 0 }, { "65536", 65536 }, { "64KiB", 65536 }, { "64K", 65536 }, { "8MiB", 8u << 20 },
    { "8M", 8u << 20 }, { "1GiB", 1u << 30 }, { "1G", 1u << 30 }, { "100B", 100 },
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    size_t v = 1234;
    CHECK_EQ(engram_parse_size(ok[i].text, &v), 0);
    CHECK_EQ(v, ok[i].bytes);
  }
}

TEST(malformed_sizes_name_the_value_and_the_accepted_forms)
{
  static const char *bad[] = { "", "KiB", "12XB", "1.5MiB", "-1", " 64K", "64 K", "64kib", "8MB", "0x10" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t v;
    CHECK_EQ(engram_parse_size(bad[i], &v), ENGRAM_ECONFIG);
  }
  size_t v;
  engram_parse_size("12XB", &v);
  CHECK_STR(engram_last_error(),
            "size: bad value '12XB' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)");
  CHECK_EQ(engram_parse_size("99999999999999999999999", &v), ENGRAM_EOVERFLOW);
  CHECK_STR(engram_last_error(), "size: '99999999999999999999999' is too large");
  CHECK_EQ(engram_parse_size("17179869184G", &v), ENGRAM_EOVERFLOW);
}

/* In a child: set the variables given as "NAME=value" strings, then print what the default
 * configuration (and a thread arena) look like, or the error. */
static void show_config(void *arg)
{
  for (const char **kv = arg; *kv; kv++)
    putenv((char *)*kv);
  engram_arena_config c;
  if (engram_config_arena_default(&c) != 0) {
    printf("error: %s\n", engram_last_error());
    printf("thread arena: %s\n", engram_arena_thread() ? "created" : engram_last_error());
    return;
  }
  printf("size=%zu overflow=%d huge=%d prefault=%d\n", c.size, (int)c.overflow, (int)c.huge_pages, c.prefault);
}

static void child_config(const char **env, char *out, size_t cap)
{
  int status = test_child(show_config, env, out, cap);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(defaults_apply_without_environment)
{
  char out[512];
  const char *env[] = { NULL };
  unsetenv("ENGRAM_ARENA_SIZE");
  unsetenv("ENGRAM_ARENA_OVERFLOW");
  child_config(env, out, sizeof out);
  CHECK_STR(out, "size=1048576 overflow=0 huge=1 prefault=0\n");
}

TEST(valid_environment_values_are_used)
{
  char out[512];
  const char *env[] = { "ENGRAM_ARENA_SIZE=8MiB", "ENGRAM_ARENA_OVERFLOW=fallback", "ENGRAM_ARENA_HUGEPAGES=off",
                        "ENGRAM_ARENA_PREFAULT=on", NULL };
  child_config(env, out, sizeof out);
  CHECK_STR(out, "size=8388608 overflow=2 huge=0 prefault=1\n");
  const char *env2[] = { "ENGRAM_ARENA_SIZE=65536", "ENGRAM_ARENA_OVERFLOW=panic", NULL };
  child_config(env2, out, sizeof out);
  CHECK_STR(out, "size=65536 overflow=1 huge=1 prefault=0\n");
  const char *env3[] = { "ENGRAM_ARENA_SIZE=", "ENGRAM_ARENA_OVERFLOW=", NULL };   /* empty = unset */
  child_config(env3, out, sizeof out);
  CHECK_STR(out, "size=1048576 overflow=0 huge=1 prefault=0\n");
}

TEST(bad_environment_values_are_rejected_with_exact_messages)
{
  static const struct { const char *env; const char *message; } cases[] = {
    { "ENGRAM_ARENA_SIZE=12XB",
      "config: bad ENGRAM_ARENA_SIZE '12XB' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)" },
    { "ENGRAM_ARENA_SIZE=32KiB", "config: ENGRAM_ARENA_SIZE '32KiB' is out of range (expected 64KiB to 1GiB)" },
    { "ENGRAM_ARENA_SIZE=2G", "config: ENGRAM_ARENA_SIZE '2G' is out of range (expected 64KiB to 1GiB)" },
    { "ENGRAM_ARENA_SIZE=99999999999999999999999",
      "config: ENGRAM_ARENA_SIZE '99999999999999999999999' is out of range (expected 64KiB to 1GiB)" },
    { "ENGRAM_ARENA_OVERFLOW=error_return",
      "config: bad ENGRAM_ARENA_OVERFLOW 'error_return' (expected error, panic or fallback)" },
    { "ENGRAM_ARENA_OVERFLOW=Fallback",
      "config: bad ENGRAM_ARENA_OVERFLOW 'Fallback' (expected error, panic or fallback)" },
    { "ENGRAM_ARENA_HUGEPAGES=yes", "config: bad ENGRAM_ARENA_HUGEPAGES 'yes' (expected auto or off)" },
    { "ENGRAM_ARENA_PREFAULT=1", "config: bad ENGRAM_ARENA_PREFAULT '1' (expected on or off)" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[1024], want[1024];
    const char *env[] = { cases[i].env, NULL };
    child_config(env, out, sizeof out);
    /* the thread arena cannot be created either, with the same message */
    snprintf(want, sizeof want, "error: %s\nthread arena: %s\n", cases[i].message, cases[i].message);
    CHECK_STR(out, want);
  }
}

static void configure_then_show(void *arg)
{
  const int *v = arg;
  int rc = engram_configure_arena((uint32_t)v[0], (uint8_t)v[1]);
  if (rc != 0)
    printf("configure: %s\n", engram_last_error());
  engram_arena *a = engram_arena_thread();
  engram_arena_info st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_ARENA_INFO_VERSION);
  engram_arena_query(a, &st);
  printf("capacity=%llu overflow=%d\n", (unsigned long long)st.capacity, st.overflow_strategy);
}

TEST(configure_arena_sets_the_default_for_new_thread_arenas)
{
  char out[512];
  unsetenv("ENGRAM_ARENA_SIZE");
  unsetenv("ENGRAM_ARENA_OVERFLOW");
  int ok[] = { 2, 2 };
  test_child(configure_then_show, ok, out, sizeof out);
  CHECK_STR(out, "capacity=2097152 overflow=2\n");
  int panic[] = { 1, 0 };
  test_child(configure_then_show, panic, out, sizeof out);
  CHECK_STR(out, "capacity=1048576 overflow=1\n");
  int too_big[] = { 1025, 1 };
  test_child(configure_then_show, too_big, out, sizeof out);
  CHECK_STR(out, "configure: config: arena size 1025 MiB is out of range (expected 1 to 1024)\n"
                 "capacity=1048576 overflow=0\n");
  int bad_strategy[] = { 4, 3 };
  test_child(configure_then_show, bad_strategy, out, sizeof out);
  CHECK_STR(out, "configure: config: bad overflow strategy 3 (expected 0 = panic, 1 = error, 2 = fallback)\n"
                 "capacity=1048576 overflow=0\n");
}

int main(void)
{
  RUN(sizes_parse_in_bytes_and_binary_units);
  RUN(malformed_sizes_name_the_value_and_the_accepted_forms);
  RUN(defaults_apply_without_environment);
  RUN(valid_environment_values_are_used);
  RUN(bad_environment_values_are_rejected_with_exact_messages);
  RUN(configure_arena_sets_the_default_for_new_thread_arenas);
  return test_done();
}
