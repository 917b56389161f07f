/*
 * bench.h — what every benchmark program shares: a clock, medians and percentiles, fault and
 * RSS counters, memory-bandwidth and FMA probes, and table printing.
 *
 * Benchmarks print tables of ratios against peers measured in the same run and never assert.
 * The machines are shared and noisy: report medians over repeated, interleaved runs.
 */
#ifndef ENGRAM_BENCH_H
#define ENGRAM_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

/* Median / percentile (0..100) of n values; the array is sorted in place. */
double bench_median(double *v, size_t n);
double bench_percentile(double *v, size_t n, double pct);

/* Minor + major page faults of this process so far. */
uint64_t bench_faults(void);
/* Peak resident set size of this process, bytes. */
size_t bench_peak_rss(void);

/* Read bandwidth in GB/s over `bytes` of memory with `streams` interleaved streams
 * (1 = one sequential stream; up to 8 streams in parallel). Median of `reps` passes. Which
 * is faster depends on the machine: a limit is the larger of the two. */
double bench_read_bandwidth(size_t bytes, int streams, int reps);
/* Single-thread peak FMA throughput in GFLOP/s with 256-bit (AVX2+FMA) or 512-bit (AVX-512F)
 * vectors, 0 if the CPU lacks them. Some cores run 512-bit FMAs at half the width's rate, some
 * at the full rate: a kernel's limit is the probe of the width it runs. */
double bench_fma_gflops(int bits);

/* Tables: bench_table_begin("title", "col1", "col2", ..., NULL); rows with bench_table_row
 * (printf-style, columns separated by '|'); bench_table_end(). Columns are aligned. */
void bench_table_begin(const char *title, ...);
void bench_table_row(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_table_end(void);

/* Keep the compiler from optimising a value away. */
#define BENCH_KEEP(x) __asm__ volatile("" : : "r,m"(x) : "memory")

#endif
