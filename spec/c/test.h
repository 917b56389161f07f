/*
 * test.h — the C test harness: named checks, skips, child processes, seeds.
 *
 *   TEST(reset_reuses_memory) { ... CHECK(p == q); CHECK_EQ(used, 0); ... }
 *   int main(void) { RUN(reset_reuses_memory); return test_done(); }
 *
 * Each test prints "ok - name", "not ok - name" (with the failed checks) or "skip - name (why)";
 * test_done() prints "# summary: P passed, F failed, S skipped" for scripts/run-tests.sh and
 * returns the exit status. Tests check behaviour and never time anything.
 */
#ifndef ENGRAM_TEST_H
#define ENGRAM_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TEST(name) static void name(void)
#define RUN(name) test_run_(#name, name)

#define CHECK(cond) \
  do { if (!(cond)) test_fail_(__FILE__, __LINE__, "%s", #cond); } while (0)
#define CHECK_EQ(a, b) \
  do { long long a_ = (long long)(a), b_ = (long long)(b); \
       if (a_ != b_) test_fail_(__FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b, a_, b_); } while (0)
#define CHECK_STR(a, b) \
  do { const char *a_ = (a), *b_ = (b); \
       if (!a_ || !b_ || strcmp(a_, b_) != 0) \
         test_fail_(__FILE__, __LINE__, "%s == %s\n      got:      '%s'\n      expected: '%s'", #a, #b, \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
#define CHECK_CONTAINS(hay, needle) \
  do { const char *h_ = (hay), *n_ = (needle); \
       if (!h_ || !strstr(h_, n_)) \
         test_fail_(__FILE__, __LINE__, "'%s' contains '%s'", h_ ? h_ : "(null)", n_); } while (0)
/* Stop the current test here (it is reported as skipped, with the reason). */
#define SKIP(...) do { test_skip_(__VA_ARGS__); return; } while (0)

void test_run_(const char *name, void (*fn)(void));
void test_fail_(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void test_skip_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int test_done(void);

/* Run fn(arg) in a forked child with stderr (and stdout) captured into out[cap].
 * Returns the raw wait status (WIFSIGNALED / WEXITSTATUS apply). */
int test_child(void (*fn)(void *), void *arg, char *out, size_t cap);

/* A seed for random tests: $ENGRAM_TEST_SEED or the clock; printed so a failure can be
 * replayed. */
uint64_t test_seed(const char *what);
/* xorshift64*: deterministic for a seed. */
uint64_t test_rand(uint64_t *state);

/* Resident set size of this process in bytes (from /proc/self/statm). */
size_t test_rss(void);

#endif
