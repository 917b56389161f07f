/*
 * arena.h — internals shared by arena.c, config.c, stats.c and error.c.
 * Nothing here is exported; the public contract is in engram.h.
 */
#ifndef ENGRAM_ARENA_INTERNAL_H
#define ENGRAM_ARENA_INTERNAL_H

#include "engram.h"

#include <pthread.h>
#include <stdarg.h>

#define ENGRAM_HIDDEN __attribute__((visibility("hidden")))

/* Counters that another thread may read (engram_stats_snapshot). They have one writer, the
 * owner, so plain load + store is enough; relaxed atomics make the cross-thread read defined. */
#define STAT_LOAD(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STAT_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define STAT_ADD(x, v)   STAT_STORE(x, STAT_LOAD(x) + (v))

/* A fallback chunk, taken from the system allocator when the arena overflows with the
 * `fallback` strategy; chunks form a stack (newest first) freed at reset or rewind. */
struct engram_chunk {
  struct engram_chunk *prev;
  size_t bytes;              /* malloc'd size, header included */
  uintptr_t start;           /* first usable byte */
  uintptr_t end;             /* one past the last usable byte */
  uintptr_t prev_top;        /* top of the previous block when this chunk was opened */
  size_t used_before;        /* arena bytes in use when this chunk was opened */
};

struct engram_arena_slow {
  size_t capacity;           /* usable bytes of the primary block */
  void *map;                 /* the primary mapping */
  size_t map_bytes;
  size_t chunk_min;          /* smallest fallback chunk */
  engram_overflow overflow;
  engram_page_kind page_kind;
  pthread_t owner;

  /* open scopes, outermost first: the epoch each replaced and where it started (its mark);
   * the position tells apart two scopes entered in turn from the same epoch */
  uint32_t scope_depth;
  uint64_t scope_epochs[ENGRAM_ARENA_MAX_SCOPES];
  uintptr_t scope_tops[ENGRAM_ARENA_MAX_SCOPES];
  void *scope_chunks[ENGRAM_ARENA_MAX_SCOPES];

  /* statistics (see STAT_*) */
  uint64_t high_water;
  uint64_t resets;
  uint64_t overflows;
  uint64_t fallback_bytes;
  uint64_t fallback_chunks;

  /* registry of live arenas (stats.c), under the registry lock */
  struct engram_arena_slow *reg_next, *reg_prev;
  engram_arena *pub;
};

/* arena.c */
ENGRAM_HIDDEN uint64_t engram_epoch_next(void);
ENGRAM_HIDDEN const char *engram_overflow_name(engram_overflow o);

/* stats.c */
ENGRAM_HIDDEN void engram_registry_add(struct engram_arena_slow *s);
ENGRAM_HIDDEN void engram_registry_remove(struct engram_arena_slow *s);

/* error.c: record the calling thread's last error; returns code for `return engram_fail(...)`. */
ENGRAM_HIDDEN int engram_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ENGRAM_HIDDEN int engram_failv(int code, const char *fmt, va_list ap);

/* config.c: a byte count written the way people read it ("64KiB", "1.5MiB" is never produced). */
ENGRAM_HIDDEN void engram_format_size(char *buf, size_t cap, size_t bytes);

/* Poisoning of free memory (arena space past the bump pointer or given back, released pool
 * objects): reported on use under ASan, or Valgrind in ENGRAM_VALGRIND builds; no-ops else. */
#if defined(__SANITIZE_ADDRESS__)
#  include <sanitizer/asan_interface.h>
#  define POISON(p, n)   ASAN_POISON_MEMORY_REGION((void *)(p), (n))
#  define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((void *)(p), (n))
#elif defined(ENGRAM_VALGRIND) && __has_include(<valgrind/memcheck.h>)
#  include <valgrind/memcheck.h>
#  define POISON(p, n)   VALGRIND_MAKE_MEM_NOACCESS((void *)(p), (n))
#  define UNPOISON(p, n) VALGRIND_MAKE_MEM_UNDEFINED((void *)(p), (n))
#else
#  define POISON(p, n)   ((void)(p), (void)(n))
#  define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Ownership checks are on in debug builds only. */
#if defined(ENGRAM_DEBUG) && ENGRAM_DEBUG
#  define ENGRAM_ASSERT_OWNER(s, what) engram_assert_owner((s), (what))
ENGRAM_HIDDEN void engram_assert_owner(const struct engram_arena_slow *s, const char *what);
#else
#  define ENGRAM_ASSERT_OWNER(s, what) ((void)0)
#endif

#endif
