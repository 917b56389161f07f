/* test.c — the C test harness (see test.h). */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed, skipped;
static int cur_failed, cur_skipped;
static char cur_skip_reason[256];

void test_run_(const char *name, void (*fn)(void))
{
  cur_failed = cur_skipped = 0;
  fflush(stdout);
  fn();
  if (cur_failed) {
    failed++;
    printf("not ok - %s\n", name);
  } else if (cur_skipped) {
    skipped++;
    printf("skip - %s (%s)\n", name, cur_skip_reason);
  } else {
    passed++;
    printf("ok - %s\n", name);
  }
  fflush(stdout);
}

void test_fail_(const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  cur_failed++;
  printf("    check failed at %s:%d: ", file, line);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

void test_skip_(const char *fmt, ...)
{
  va_list ap;
  cur_skipped = 1;
  va_start(ap, fmt);
  vsnprintf(cur_skip_reason, sizeof cur_skip_reason, fmt, ap);
  va_end(ap);
}

int test_done(void)
{
  printf("# summary: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  fflush(stdout);
  return failed ? 1 : 0;
}

int test_child(void (*fn)(void *), void *arg, char *out, size_t cap)
{
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    fn(arg);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t r;
  while ((r = read(fds[0], out + len, cap - 1 - len)) > 0) {
    len += (size_t)r;
    if (len == cap - 1) {
      char sink[256];
      while (read(fds[0], sink, sizeof sink) > 0) {}
      break;
    }
  }
  out[len] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

uint64_t test_seed(const char *what)
{
  const char *env = getenv("ENGRAM_TEST_SEED");
  uint64_t seed;
  if (env && *env) {
    seed = strtoull(env, NULL, 0);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
  }
  if (!seed)
    seed = 0x9e3779b97f4a7c15ull;
  printf("# %s: seed %llu (replay with ENGRAM_TEST_SEED=%llu)\n", what, (unsigned long long)seed,
         (unsigned long long)seed);
  return seed;
}

uint64_t test_rand(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

size_t test_rss(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}
