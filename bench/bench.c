/* bench.c — shared benchmark support (see bench.h). */
#include "bench.h"

#include <immintrin.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_percentile(double *v, size_t n, double pct)
{
  if (n == 0)
    return 0;
  qsort(v, n, sizeof *v, cmp_double);
  double pos = pct / 100.0 * (double)(n - 1);
  size_t i = (size_t)pos;
  if (i + 1 >= n)
    return v[n - 1];
  double f = pos - (double)i;
  return v[i] * (1 - f) + v[i + 1] * f;
}

double bench_median(double *v, size_t n)
{
  return bench_percentile(v, n, 50);
}

uint64_t bench_faults(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

size_t bench_peak_rss(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (size_t)ru.ru_maxrss * 1024;
}

__attribute__((target("avx2")))
static double read_pass(const float *p, size_t n, int streams)
{
  __m256 acc[8];
  for (int i = 0; i < 8; i++)
    acc[i] = _mm256_setzero_ps();
  if (streams <= 1) {
    for (size_t i = 0; i + 32 <= n; i += 32) {
      acc[0] = _mm256_add_ps(acc[0], _mm256_loadu_ps(p + i));
      acc[1] = _mm256_add_ps(acc[1], _mm256_loadu_ps(p + i + 8));
      acc[2] = _mm256_add_ps(acc[2], _mm256_loadu_ps(p + i + 16));
      acc[3] = _mm256_add_ps(acc[3], _mm256_loadu_ps(p + i + 24));
    }
  } else {
    /* `streams` interleaved streams, a whole 128-byte pair of lines from each per step; no
     * software prefetch: on the machines measured here it only lowered the rate (hardware
     * prefetchers follow this many streams on their own) */
    if (streams > 8)
      streams = 8;
    size_t part = (n / (size_t)streams) & ~(size_t)31;
    for (size_t i = 0; i < part; i += 32) {
      for (int s = 0; s < streams; s++) {
        const float *q = p + (size_t)s * part + i;
        __m256 x = _mm256_add_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(q + 8));
        __m256 y = _mm256_add_ps(_mm256_loadu_ps(q + 16), _mm256_loadu_ps(q + 24));
        acc[s] = _mm256_add_ps(acc[s], _mm256_add_ps(x, y));
      }
    }
  }
  __m256 t = acc[0];
  for (int i = 1; i < 8; i++)
    t = _mm256_add_ps(t, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, t);
  return out[0] + out[7];
}

double bench_read_bandwidth(size_t bytes, int streams, int reps)
{
  if (!__builtin_cpu_supports("avx2"))
    return 0;
  size_t n = bytes / sizeof(float);
  float *p = aligned_alloc(64, n * sizeof(float));
  if (!p)
    return 0;
  for (size_t i = 0; i < n; i++)
    p[i] = (float)(i & 7);
  double best[64];
  if (reps > 64)
    reps = 64;
  for (int r = 0; r < reps; r++) {
    uint64_t t0 = bench_now_ns();
    double s = read_pass(p, n, streams);
    uint64_t t1 = bench_now_ns();
    BENCH_KEEP(s);
    best[r] = (double)bytes / (double)(t1 - t0);
  }
  free(p);
  return bench_median(best, (size_t)reps);
}

/* Ten independent FMA chains (more than latency x ports on current x86 cores), in registers. */
#define FMA_CHAINS 10

__attribute__((target("avx2,fma")))
static double fma_run256(long iters)
{
  __m256 a[FMA_CHAINS], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (int i = 0; i < FMA_CHAINS; i++)
    a[i] = _mm256_set1_ps((float)i);
  for (long k = 0; k < iters; k++)
    for (int i = 0; i < FMA_CHAINS; i++)
      a[i] = _mm256_fmadd_ps(a[i], b, c);
  __m256 t = a[0];
  for (int i = 1; i < FMA_CHAINS; i++)
    t = _mm256_add_ps(t, a[i]);
  float out[8];
  _mm256_storeu_ps(out, t);
  return out[0];
}

__attribute__((target("avx512f")))
static double fma_run512(long iters)
{
  __m512 a[FMA_CHAINS], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (int i = 0; i < FMA_CHAINS; i++)
    a[i] = _mm512_set1_ps((float)i);
  for (long k = 0; k < iters; k++)
    for (int i = 0; i < FMA_CHAINS; i++)
      a[i] = _mm512_fmadd_ps(a[i], b, c);
  __m512 t = a[0];
  for (int i = 1; i < FMA_CHAINS; i++)
    t = _mm512_add_ps(t, a[i]);
  return _mm512_reduce_add_ps(t);
}

double bench_fma_gflops(int bits)
{
  int lanes = bits == 512 ? 16 : 8;
  if (bits == 512 ? !__builtin_cpu_supports("avx512f")
                  : !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    return 0;
  const long iters = 2000000;
  double v[5];
  for (int r = 0; r < 5; r++) {
    uint64_t t0 = bench_now_ns();
    double s = bits == 512 ? fma_run512(iters) : fma_run256(iters);
    uint64_t t1 = bench_now_ns();
    BENCH_KEEP(s);
    v[r] = (double)iters * FMA_CHAINS * lanes * 2 / (double)(t1 - t0);
  }
  return bench_median(v, 5);
}

/* ---- tables ---- */

#define MAX_COLS 16
#define MAX_ROWS 128
static char cells[MAX_ROWS + 1][MAX_COLS][48];
static int ncols, nrows;
static char title[160];

void bench_table_begin(const char *t, ...)
{
  va_list ap;
  snprintf(title, sizeof title, "%s", t);
  ncols = 0;
  nrows = 1;
  va_start(ap, t);
  const char *h;
  while ((h = va_arg(ap, const char *)) && ncols < MAX_COLS)
    snprintf(cells[0][ncols++], sizeof cells[0][0], "%s", h);
  va_end(ap);
}

void bench_table_row(const char *fmt, ...)
{
  if (nrows > MAX_ROWS)
    return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  int c = 0;
  char *save = NULL;
  for (char *tok = strtok_r(line, "|", &save); tok && c < ncols; tok = strtok_r(NULL, "|", &save))
    snprintf(cells[nrows][c++], sizeof cells[0][0], "%s", tok);
  for (; c < ncols; c++)
    cells[nrows][c][0] = 0;
  nrows++;
}

void bench_table_end(void)
{
  int w[MAX_COLS] = {0};
  for (int r = 0; r < nrows; r++)
    for (int c = 0; c < ncols; c++) {
      int l = (int)strlen(cells[r][c]);
      if (l > w[c])
        w[c] = l;
    }
  printf("\n%s\n", title);
  for (int r = 0; r < nrows; r++) {
    for (int c = 0; c < ncols; c++)
      printf(c == 0 ? "| %-*s " : "| %*s ", w[c], cells[r][c]);
    printf("|\n");
    if (r == 0) {
      for (int c = 0; c < ncols; c++) {
        printf("|");
        for (int k = 0; k < w[c] + 2; k++)
          putchar('-');
      }
      printf("|\n");
    }
  }
  fflush(stdout);
}
