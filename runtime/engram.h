/*
 * engram.h — the one public header of libengram.
 *
 * engram runs memory-consolidation bursts: short bursts of numeric work scripted in Lua,
 * each taking its scratch memory from a per-thread bump arena that is reset in O(1) when
 * the burst ends. This header is everything an embedder needs: arenas, pools, kernels,
 * the runtime, the store and the stats.
 *
 * Conventions (all sections):
 *   - Functions return 0 on success or a negative ENGRAM_E* code; functions returning a
 *     pointer return NULL on failure. Either way engram_last_error() then describes the
 *     failure for the calling thread. The library never prints and never longjmps, with one
 *     exception chosen by the user: the `panic` overflow strategy prints and aborts.
 *   - Structs that the library fills carry their size and version (ENGRAM_STRUCT_INIT), so a
 *     program built against another header version is caught instead of misread.
 */
#ifndef ENGRAM_H
#define ENGRAM_H

#define ENGRAM_VERSION_MAJOR 0
#define ENGRAM_VERSION_MINOR 1
#define ENGRAM_VERSION_PATCH 0
#define ENGRAM_VERSION_NUM   (ENGRAM_VERSION_MAJOR * 10000 + ENGRAM_VERSION_MINOR * 100 + ENGRAM_VERSION_PATCH)
#define ENGRAM_VERSION_STRING "0.1.0"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library builds with -fvisibility=hidden: only what is marked ENGRAM_API is exported. */
#define ENGRAM_API __attribute__((visibility("default")))

#define ENGRAM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define ENGRAM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ======================================================================================
 * Version and errors
 * ====================================================================================== */

/* The version the library was built as; compare with ENGRAM_VERSION_NUM to catch a
 * header/library mismatch (as luaL_checkversion does for Lua). */
ENGRAM_API int engram_version(void);

enum {
  ENGRAM_OK        =  0,
  ENGRAM_EINVAL    = -1,  /* an argument is out of its documented range */
  ENGRAM_ENOMEM    = -2,  /* the system allocator or mmap failed */
  ENGRAM_EFULL     = -3,  /* an arena or pool is at its capacity / memory cap */
  ENGRAM_EOVERFLOW = -4,  /* a size computation overflowed (n * size, offset + size) */
  ENGRAM_ECONFIG   = -5,  /* a configuration value (often an ENGRAM_* variable) is invalid */
  ENGRAM_ESTALE    = -6,  /* a mark or handle outlived the scope it belongs to */
  ENGRAM_EVERSION  = -7,  /* a struct's size/version does not match this library */
  ENGRAM_ESCRIPT   = -8,  /* a Lua script failed to load or raised an error */
  ENGRAM_ETIMEOUT  = -9,  /* a burst exceeded its deadline */
  ENGRAM_ESTORE    = -10, /* the SQLite store reported an error */
  ENGRAM_ESTATE    = -11, /* the call is not valid in the object's current state */
  ENGRAM_ERANGE    = -12, /* an index or id is out of range (bad CSR offsets, targets) */
  ENGRAM_EBUSY     = -13, /* a bounded queue is full */
  ENGRAM_EIO       = -14, /* a file could not be read or written */
  ENGRAM_ENOTSUP   = -15, /* the feature is not available on this CPU or build */
  ENGRAM_ECODE_MIN = -15
};

/* A static, lower-case description of an ENGRAM_E* code ("arena full", ...). */
ENGRAM_API const char *engram_strerror(int code);

/* The message of the last failure on the calling thread, with detail
 * ("arena: out of memory (requested 4096 bytes, align 64; 1048000 of 1048576 bytes used)").
 * Valid until the next failing call on this thread; never NULL (empty when none). */
ENGRAM_API const char *engram_last_error(void);

/* ======================================================================================
 * Arena — a bump-pointer allocator owned by one thread
 *
 * An arena serves allocations from one committed block by bumping a pointer; `reset` gives
 * everything back in O(1) (+ O(number of fallback chunks)) and keeps the block committed, so
 * a warm burst takes no page faults. Marks give nested scopes: `rewind` returns everything
 * allocated since the mark.
 *
 * Thread safety: an arena belongs to the thread that created it (or adopted it). Only that
 * thread allocates, marks, rewinds or resets it; debug builds assert this. Stats of all
 * arenas can be read from any thread (engram_stats_snapshot).
 *
 * When a request does not fit, the arena's overflow strategy decides:
 *   ENGRAM_OVERFLOW_ERROR     return NULL, count the overflow (engram_last_error has the sizes)
 *   ENGRAM_OVERFLOW_PANIC     print the same message to stderr and abort()
 *   ENGRAM_OVERFLOW_FALLBACK  serve it from a chunk taken from the system allocator, chained to
 *                             the arena and freed at reset (or rewind); counted in the stats.
 * A request larger than the whole arena is handled by the same strategy.
 * ====================================================================================== */

typedef enum engram_overflow {
  ENGRAM_OVERFLOW_ERROR = 0,
  ENGRAM_OVERFLOW_PANIC = 1,
  ENGRAM_OVERFLOW_FALLBACK = 2
} engram_overflow;

typedef enum engram_page_kind {
  ENGRAM_PAGES_4K = 0,      /* ordinary pages */
  ENGRAM_PAGES_THP = 1,     /* transparent huge pages requested with madvise(MADV_HUGEPAGE) */
  ENGRAM_PAGES_HUGETLB = 2  /* explicit huge pages (MAP_HUGETLB) */
} engram_page_kind;

typedef enum engram_huge_pages {
  ENGRAM_HUGE_OFF = 0,      /* 4 KiB pages only */
  ENGRAM_HUGE_AUTO = 1      /* arenas of >= 2 MiB try MAP_HUGETLB, then THP, then 4 KiB */
} engram_huge_pages;

#define ENGRAM_ARENA_MIN_SIZE      ((size_t)64 << 10)  /* range accepted from ENGRAM_ARENA_SIZE */
#define ENGRAM_ARENA_MAX_SIZE      ((size_t)1 << 30)
#define ENGRAM_ARENA_DEFAULT_SIZE  ((size_t)1 << 20)
#define ENGRAM_ARENA_MAX_ALIGN     4096
#define ENGRAM_ARENA_DEFAULT_ALIGN 16

typedef struct engram_arena_config {
  size_t size;               /* bytes of the primary block; 0 .. ENGRAM_ARENA_MAX_SIZE */
  size_t align;              /* default alignment of engram_arena_alloc (power of two <= 4096) */
  engram_overflow overflow;
  engram_huge_pages huge_pages;
  int prefault;              /* non-zero: touch every page at creation (no first-burst faults) */
} engram_arena_config;

/* The process default: ENGRAM_ARENA_SIZE / ENGRAM_ARENA_OVERFLOW / ENGRAM_ARENA_HUGEPAGES /
 * ENGRAM_ARENA_PREFAULT over the built-in defaults (1 MiB, 16, error, auto, off), or the values
 * last set by engram_configure_arena. Returns ENGRAM_ECONFIG with a message naming the variable,
 * its value and the accepted forms when the environment holds a bad value. */
ENGRAM_API int engram_config_arena_default(engram_arena_config *out);

/* Parse a size such as "1048576", "64KiB", "8MiB", "1GiB", "64K", "8M", "1G".
 * Returns 0 and sets *out, or ENGRAM_ECONFIG (bad form) / ENGRAM_EOVERFLOW (too large). */
ENGRAM_API int engram_parse_size(const char *text, size_t *out);

/* The arena. The fields before `slow_` are read by the inline fast path; treat the struct as
 * opaque otherwise. */
typedef struct engram_arena {
  uintptr_t top;             /* next free byte of the current block */
  uintptr_t limit;           /* end of the current block */
  uintptr_t base;            /* start of the primary block */
  uint64_t epoch;            /* generation of the innermost open scope; process-unique, renewed by
                              * every reset and scope change: handles of other epochs are stale */
  size_t align;              /* default alignment */
  void *chunk;               /* current fallback chunk, NULL while in the primary block */
  struct engram_arena_slow *slow_;
} engram_arena;

/* A savepoint: engram_arena_rewind(a, m) frees everything allocated after the mark. */
typedef struct engram_mark {
  uintptr_t top;
  void *chunk;
  uint64_t epoch;
} engram_mark;

/* Create an arena; NULL on failure (ENGRAM_EINVAL for a bad config, ENGRAM_ENOMEM). A NULL
 * config means the process default. The creating thread owns it. */
ENGRAM_API engram_arena *engram_arena_create(const engram_arena_config *config);

/* Free the arena's block and fallback chunks. Its counters are kept in the process stats as a
 * retired arena. The small header stays mapped and is recycled for the next arena, with a new
 * epoch, so a stale handle that still points at it reads "stale", never freed memory.
 * NULL is a no-op. Destroying the thread's default arena detaches it (the next
 * engram_arena_thread makes a new one). A second destroy of the same arena is ignored until
 * its header is reused by another arena; after that it is undefined: destroy once. */
ENGRAM_API void engram_arena_destroy(engram_arena *a);

/* Make the calling thread the owner (hand an arena made on one thread to a worker). */
ENGRAM_API void engram_arena_adopt(engram_arena *a);

/* The calling thread's default arena, created on first use from the process default config
 * (so its pages are first touched by, and local to, this thread) and released when the
 * thread exits. NULL if the configuration is invalid or memory is short. */
ENGRAM_API engram_arena *engram_arena_thread(void);

/* The calling thread's default arena if it exists, else NULL; never creates one (for reports
 * that must not allocate an arena as a side effect). */
ENGRAM_API engram_arena *engram_arena_thread_peek(void);

/* Out-of-line halves of the inline functions below; call those instead. */
ENGRAM_API void *engram_arena_alloc_slow(engram_arena *a, size_t n, size_t align);
ENGRAM_API void *engram_arena_size_overflow_slow(engram_arena *a, size_t count, size_t size);

/* Builds that poison free arena memory (ASan, or Valgrind with ENGRAM_VALGRIND) route every
 * allocation through the out-of-line path, which unpoisons exactly what it hands out. */
#if !defined(ENGRAM_POISON)
#  if defined(__SANITIZE_ADDRESS__) || defined(ENGRAM_VALGRIND)
#    define ENGRAM_POISON 1
#  elif defined(__has_feature)
#    if __has_feature(address_sanitizer)
#      define ENGRAM_POISON 1
#    endif
#  endif
#endif

static inline int engram_align_valid(size_t align)
{
  return align != 0 && (align & (align - 1)) == 0 && align <= ENGRAM_ARENA_MAX_ALIGN;
}

/* n bytes whose address is a multiple of `align` (a power of two <= 4096). Returns NULL when
 * the arena is full and its strategy is `error`, or for an invalid alignment (ENGRAM_EINVAL).
 * n == 0 returns a valid aligned pointer and consumes nothing but padding. The fast path is a
 * handful of instructions and never touches the stats. Builds that poison free memory
 * (ASan, Valgrind) always take the out-of-line path. */
static inline void *engram_arena_alloc_aligned(engram_arena *a, size_t n, size_t align)
{
#if !defined(ENGRAM_POISON)
  uintptr_t p = (a->top + (align - 1)) & ~(uintptr_t)(align - 1);
  /* p <= limit first, so that limit - p cannot wrap; align is checked here only when it is not
   * a compile-time constant (the compiler folds the check away otherwise). */
  if (ENGRAM_LIKELY(engram_align_valid(align) && p <= a->limit && n <= a->limit - p)) {
    a->top = p + n;
    /* tell the compiler this branch never yields NULL, so a caller's NULL test folds into the
     * slow path instead of costing a compare and a taken branch per allocation */
    if ((void *)p == NULL)
      __builtin_unreachable();
    return (void *)p;
  }
#endif
  return engram_arena_alloc_slow(a, n, align);
}

/* n bytes at the arena's default alignment. */
static inline void *engram_arena_alloc(engram_arena *a, size_t n)
{
  return engram_arena_alloc_aligned(a, n, a->align);
}

/* count * size bytes, with the multiplication checked (ENGRAM_EOVERFLOW, NULL). */
static inline void *engram_arena_alloc_array(engram_arena *a, size_t count, size_t size, size_t align)
{
  size_t n;
  if (ENGRAM_UNLIKELY(__builtin_mul_overflow(count, size, &n)))
    return engram_arena_size_overflow_slow(a, count, size);
  return engram_arena_alloc_aligned(a, n, align);
}

/* Everything back, in O(1) plus one free per fallback chunk; the primary block stays committed.
 * Updates the high-water mark, bumps the epoch, counts the reset. */
ENGRAM_API void engram_arena_reset(engram_arena *a);

/* A mark of the current position (inline: three loads). */
static inline engram_mark engram_arena_mark(const engram_arena *a);

/* Scopes: a mark that also opens a new epoch, for handles that must go stale when the scope
 * ends (the Lua views). enter gives the arena a fresh epoch and remembers the outer one;
 * leave rewinds to the scope's mark and restores the outer epoch, so handles made inside are
 * stale and handles made outside stay valid. Scopes nest up to ENGRAM_ARENA_MAX_SCOPES
 * (ENGRAM_EFULL beyond); leaving an outer scope closes the inner ones too. */
#define ENGRAM_ARENA_MAX_SCOPES 64
ENGRAM_API int engram_arena_scope_enter(engram_arena *a, engram_mark *out);
ENGRAM_API int engram_arena_scope_leave(engram_arena *a, engram_mark m);

/* Non-zero when handles stamped with `epoch` are still valid: the current epoch or that of an
 * enclosing open scope. Safe on a destroyed arena (its header is recycled, never unmapped):
 * every epoch of a destroyed arena is stale. */
ENGRAM_API int engram_arena_epoch_live(const engram_arena *a, uint64_t epoch);

/* Non-zero when this library build poisons free arena memory (ASan/Valgrind): bindings that
 * bump the pointer themselves (the Lua views) must then call engram_arena_alloc_slow. */
ENGRAM_API int engram_arena_poisoning(void);

/* Return to a mark taken on this arena in the current epoch (nested marks rewind in any order
 * from inner to outer). ENGRAM_ESTALE for a mark from before the last reset or one that lies
 * beyond the current top (already rewound past it); the arena is unchanged then. */
ENGRAM_API int engram_arena_rewind(engram_arena *a, engram_mark m);

/* Bytes in use: padding included, across the primary block and fallback chunks. */
ENGRAM_API size_t engram_arena_used(const engram_arena *a);

/* Bytes of the primary block. */
ENGRAM_API size_t engram_arena_capacity(const engram_arena *a);

/* Bytes still free in the current block, ignoring alignment padding. */
static inline size_t engram_arena_remaining(const engram_arena *a)
{
  return (size_t)(a->limit - a->top);
}

static inline engram_mark engram_arena_mark(const engram_arena *a)
{
  engram_mark m;
  m.top = a->top;
  m.chunk = a->chunk;
  m.epoch = a->epoch;
  return m;
}

/* Initialise a struct the library fills: sets its size and version fields. */
#define ENGRAM_STRUCT_INIT(s, ver) \
  do { memset(&(s), 0, sizeof(s)); (s).struct_size = (uint32_t)sizeof(s); (s).struct_version = (ver); } while (0)

#define ENGRAM_ARENA_INFO_VERSION 1

typedef struct engram_arena_info {
  uint32_t struct_size;      /* sizeof(engram_arena_info), set by ENGRAM_STRUCT_INIT */
  uint32_t struct_version;   /* ENGRAM_ARENA_INFO_VERSION */
  uint64_t capacity;         /* bytes of the primary block */
  uint64_t used;             /* bytes in use now (primary + fallback chunks) */
  uint64_t high_water;       /* most bytes ever in use at once (as of this query) */
  uint64_t resets;
  uint64_t overflows;        /* requests that did not fit the current block */
  uint64_t fallback_bytes;   /* bytes taken from the system allocator for fallback chunks */
  uint64_t fallback_chunks;  /* fallback chunks taken */
  uint64_t epoch;
  int32_t page_kind;         /* engram_page_kind of the primary block */
  int32_t overflow_strategy; /* engram_overflow */
} engram_arena_info;

/* Fill *out for one arena (owner thread only; it reads the bump pointer). ENGRAM_EVERSION when
 * out's size/version does not match. */
ENGRAM_API int engram_arena_query(engram_arena *a, engram_arena_info *out);

/* ---- the original design's calls (kept for existing callers) ------------------------- */

/* Set the process default for thread arenas created after this call: pool_mb in 1..1024,
 * strategy 0 = panic, 1 = error, 2 = fallback. ENGRAM_EINVAL for values out of range (the
 * default is unchanged then). */
ENGRAM_API int engram_configure_arena(uint32_t pool_mb, uint8_t strategy);

/* Process-wide totals: resets, overflows and the largest high-water mark of all arenas, live
 * and retired. Any pointer may be NULL. */
ENGRAM_API void engram_arena_stats(size_t *resets, size_t *overflows, size_t *max_high_water);

/* Reset the calling thread's default arena (if it exists). */
ENGRAM_API void engram_reset_arenas(void);

/* ======================================================================================
 * Process-wide stats
 *
 * A snapshot sums all arenas, live and retired (destroyed, or released at thread exit),
 * without taking any lock that an allocation could wait on: counters are written only on
 * slow paths (reset, overflow, query) by the owning thread and read here with relaxed atomics.
 * `used` of a live arena is only known to its owner; the snapshot reports the high-water marks
 * as of each arena's last reset or query instead.
 * ====================================================================================== */

#define ENGRAM_STATS_VERSION 1

typedef struct engram_stats {
  uint32_t struct_size;
  uint32_t struct_version;
  uint64_t arenas_live;
  uint64_t arenas_retired;
  uint64_t capacity;         /* bytes of primary blocks of live arenas */
  uint64_t high_water_max;   /* largest high-water mark of any arena, live or retired */
  uint64_t high_water_sum;   /* sum of high-water marks of live arenas */
  uint64_t resets;
  uint64_t overflows;
  uint64_t fallback_bytes;
  uint64_t fallback_chunks;
  uint64_t pages_4k;         /* live arenas by page kind */
  uint64_t pages_thp;
  uint64_t pages_hugetlb;
} engram_stats;

ENGRAM_API int engram_stats_snapshot(engram_stats *out);

/* ======================================================================================
 * Pools                                                              (runtime/pool.c)
 *
 * Fixed-size object pools: O(1) acquire/release through an intrusive LIFO free list (the
 * last object released is the next one acquired, still warm in cache). A pool grows by
 * mapping slabs from the system, each `growth` times the capacity so far, until its memory
 * cap; at the cap acquire returns NULL with ENGRAM_EFULL and a message naming the cap. Slabs
 * stay mapped until the pool is destroyed. Vector pools are object pools of `dim` floats
 * whose every slot is 64-byte aligned (the stride is rounded up to 64 bytes).
 *
 * Thread safety, chosen at creation:
 *   - thread-local (default): the creating thread (or the one that called engram_pool_adopt)
 *     is the only one that acquires and releases; the fast paths are inline and take no lock.
 *     Debug builds (ENGRAM_DEBUG) abort with a message when another thread uses the pool.
 *   - ENGRAM_POOL_SHARED: any thread may acquire and release; every call takes the pool's
 *     mutex (out of line). An object may be released by a thread other than the acquirer.
 * Stats (engram_pool_query) and the JSON report may be read from any thread at any time; for
 * a thread-local pool in use they are a consistent-enough snapshot (each counter is exact,
 * the counters are not read atomically together).
 *
 * Zeroing (ENGRAM_POOL_ZERO) happens on acquire: every object handed out reads as zero,
 * whether it is fresh or reused. Zeroing pools take the out-of-line path (the memset costs
 * more than the call), which keeps the flag test off everyone else's fast path. Without the
 * flag a reused object holds what its last user left, except the first pointer-sized word,
 * which the free list overwrote.
 *
 * Misuse: releasing an object twice, or a pointer that this pool never handed out, is
 * undefined in release builds. Debug builds (ENGRAM_DEBUG, the library's build mode) check
 * every release and abort with a message naming the pool and the pointer
 * ("engram: pool 'edges': double release of 0x...").
 * ====================================================================================== */

#define ENGRAM_POOL_SHARED  1u   /* any thread may use the pool (mutex) */
#define ENGRAM_POOL_ZERO    2u   /* acquire returns zero-filled objects */

#define ENGRAM_POOL_NAME_MAX     63             /* bytes of a pool's name, without the NUL */
#define ENGRAM_POOL_MAX_OBJECT   ((size_t)1 << 30)
#define ENGRAM_POOL_DEFAULT_ALIGN 16
#define ENGRAM_POOL_VECTOR_ALIGN 64

typedef struct engram_pool_config {
  const char *name;          /* shown in the stats report; copied; NULL -> "pool" */
  size_t object_size;        /* bytes per object, 1 .. ENGRAM_POOL_MAX_OBJECT */
  size_t align;              /* of every object's address: a power of two <= 4096; 0 -> 16 */
  size_t initial_objects;    /* objects in the first slab (rounded up to fill its pages);
                              * 0 -> one page worth */
  double growth;             /* each new slab makes the capacity `growth` times larger:
                              * 1.125 .. 16; 0 -> 2 */
  size_t max_bytes;          /* memory cap: capacity * stride never exceeds it; 0 -> no cap */
  unsigned flags;            /* ENGRAM_POOL_SHARED | ENGRAM_POOL_ZERO */
} engram_pool_config;

/* The pool. The fields before `slow_` are used by the inline fast paths; treat the struct as
 * opaque otherwise. `free` stays NULL for pools the inline path must not touch (shared and
 * zeroing pools, debug builds), which sends every acquire to the out-of-line path. */
typedef struct engram_pool {
  void *free;                /* head of the intrusive free list */
  uint64_t acquisitions;     /* written by the owner only; read by anyone (relaxed) */
  uint64_t releases;
  uint32_t inline_ok;        /* 1: the inline release may push onto `free` */
  uint32_t flags;            /* ENGRAM_POOL_* as created */
  size_t object_size;
  struct engram_pool_slow *slow_;
} engram_pool;

/* Create a pool; NULL on failure (ENGRAM_EINVAL naming the bad field, ENGRAM_ENOMEM). No slab
 * is mapped until the first acquire. */
ENGRAM_API engram_pool *engram_pool_create(const engram_pool_config *config);

/* A pool of float vectors of `dim` elements (dim >= 1), each slot 64-byte aligned.
 * max_bytes and flags as in engram_pool_config. */
ENGRAM_API engram_pool *engram_pool_create_vectors(const char *name, size_t dim, size_t max_bytes,
                                                   unsigned flags);

/* Unmap every slab (objects still acquired become invalid) and leave the stats report.
 * NULL is a no-op. */
ENGRAM_API void engram_pool_destroy(engram_pool *p);

/* Make the calling thread the owner of a thread-local pool. */
ENGRAM_API void engram_pool_adopt(engram_pool *p);

/* The complete acquire and release, out of line: what the inline functions below call when
 * their fast path does not apply, and what bindings without inline code (the FFI) call. */
ENGRAM_API void *engram_pool_acquire_slow(engram_pool *p);
ENGRAM_API void engram_pool_release_slow(engram_pool *p, void *object);

/* A counter that only the owner writes and any thread may read. */
static inline void engram_pool_count_(uint64_t *c)
{
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* One object, aligned as configured; NULL at the memory cap (ENGRAM_EFULL) or when the system
 * has no memory left (ENGRAM_ENOMEM). O(1): a pop from the free list, or out of line a fresh
 * object from the current slab or a new slab. The fast path is one load-test-branch, the pop
 * and one counter; it stores twice (the head, the counter): on this loop-bound kind of code
 * stores are what costs. */
static inline void *engram_pool_acquire(engram_pool *p)
{
  void *o = p->free;
  if (ENGRAM_LIKELY(o != NULL)) {
    p->free = *(void **)o;
    engram_pool_count_(&p->acquisitions);
    return o;
  }
  return engram_pool_acquire_slow(p);
}

/* Give an object back (NULL is a no-op). O(1): a push onto the free list. */
static inline void engram_pool_release(engram_pool *p, void *object)
{
  if (ENGRAM_LIKELY(p->inline_ok && object != NULL)) {
    *(void **)object = p->free;
    p->free = object;
    engram_pool_count_(&p->releases);
    return;
  }
  engram_pool_release_slow(p, object);
}

/* A vector slot of a pool made by engram_pool_create_vectors. */
static inline float *engram_pool_acquire_vector(engram_pool *p)
{
  return (float *)engram_pool_acquire(p);
}

#define ENGRAM_POOL_INFO_VERSION 1

typedef struct engram_pool_info {
  uint32_t struct_size;      /* sizeof(engram_pool_info), set by ENGRAM_STRUCT_INIT */
  uint32_t struct_version;   /* ENGRAM_POOL_INFO_VERSION */
  char name[ENGRAM_POOL_NAME_MAX + 1];
  uint32_t flags;            /* ENGRAM_POOL_SHARED | ENGRAM_POOL_ZERO */
  uint32_t vector_dim;       /* floats per slot for vector pools, else 0 */
  uint64_t object_size;      /* as configured */
  uint64_t stride;           /* bytes between objects: object_size rounded up to align */
  uint64_t align;
  uint64_t capacity;         /* objects the mapped slabs hold */
  uint64_t in_use;           /* acquired and not yet released */
  uint64_t peak;             /* most objects in use at once */
  uint64_t acquisitions;     /* successful acquires */
  uint64_t releases;
  uint64_t reuses;           /* acquires served from the free list (not fresh memory) */
  uint64_t failures;         /* acquires refused at the memory cap or for lack of memory */
  double reuse_rate;         /* reuses / acquisitions (0 before the first acquire) */
  uint64_t bytes_reserved;   /* bytes mapped for slabs (whole pages) */
  uint64_t max_bytes;        /* the memory cap, 0 for none */
  uint64_t slabs;
} engram_pool_info;

/* Fill *out for one pool; any thread. ENGRAM_EVERSION when out's size/version does not match. */
ENGRAM_API int engram_pool_query(engram_pool *p, engram_pool_info *out);

/* ---- scoped arenas --------------------------------------------------------------------
 *
 * An arena cache hands out arenas by size class (powers of two from 64 KiB to 1 GiB) and takes
 * them back: release resets the arena (O(1), its pages stay committed) and keeps it for the next
 * acquire of that class, up to `keep_per_class` per class; arenas released beyond that are
 * destroyed. The cache itself is shared (a mutex, taken only by acquire and release); an
 * acquired arena belongs to the acquiring thread, which must also be the one that releases it.
 */

#define ENGRAM_ARENA_CACHE_MIN_CLASS ((size_t)64 << 10)
#define ENGRAM_ARENA_CACHE_CLASSES   15   /* 64 KiB << 0 .. 64 KiB << 14 = 1 GiB */
#define ENGRAM_ARENA_CACHE_DEFAULT_KEEP 4

typedef struct engram_arena_cache engram_arena_cache;

typedef struct engram_arena_cache_config {
  const char *name;          /* shown in the stats report; copied; NULL -> "arenas" */
  unsigned keep_per_class;   /* arenas kept per class after release; 0 -> 4 */
  size_t align;              /* default alignment of the arenas; 0 -> 16 */
  engram_overflow overflow;  /* overflow strategy of the arenas */
  engram_huge_pages huge_pages;
  int prefault;
} engram_arena_cache_config;

/* NULL config: the defaults above (error strategy, huge pages auto, no prefault). */
ENGRAM_API engram_arena_cache *engram_arena_cache_create(const engram_arena_cache_config *config);

/* Destroy the kept arenas and the cache. Arenas still acquired stay valid and are the caller's
 * to engram_arena_destroy. NULL is a no-op. */
ENGRAM_API void engram_arena_cache_destroy(engram_arena_cache *c);

/* An empty arena of the smallest class holding min_bytes, owned by the calling thread: a kept
 * one when there is one, else a new one. NULL: ENGRAM_EINVAL (min_bytes above 1 GiB),
 * ENGRAM_ENOMEM. */
ENGRAM_API engram_arena *engram_arena_cache_acquire(engram_arena_cache *c, size_t min_bytes);

/* Reset the arena and keep it for reuse, or destroy it when its class already keeps
 * keep_per_class arenas. ENGRAM_EINVAL when the arena is not one this cache handed out (its
 * capacity is not a class size, or nothing is out). */
ENGRAM_API int engram_arena_cache_release(engram_arena_cache *c, engram_arena *a);

#define ENGRAM_ARENA_CACHE_INFO_VERSION 1

typedef struct engram_arena_cache_info {
  uint32_t struct_size;
  uint32_t struct_version;   /* ENGRAM_ARENA_CACHE_INFO_VERSION */
  char name[ENGRAM_POOL_NAME_MAX + 1];
  uint32_t keep_per_class;
  uint32_t reserved_;
  uint64_t acquisitions;
  uint64_t reuses;           /* acquires served by a kept arena */
  uint64_t created;
  uint64_t destroyed;        /* released beyond keep_per_class */
  uint64_t out;              /* acquired and not yet released */
  uint64_t kept;             /* waiting for reuse now */
  uint64_t kept_bytes;       /* capacity of the kept arenas */
  uint64_t kept_per_class[ENGRAM_ARENA_CACHE_CLASSES];
} engram_arena_cache_info;

ENGRAM_API int engram_arena_cache_query(engram_arena_cache *c, engram_arena_cache_info *out);

/* ---- the stats report ------------------------------------------------------------------
 *
 * One JSON document (UTF-8, names escaped) with the process arena snapshot
 * (engram_stats_snapshot), the calling thread's default arena if it exists (engram_arena_query)
 * and every live pool and arena cache, by name:
 *   {"version": "0.1.0", "process": {...}, "thread_arena": {...} | null,
 *    "pools": [{"name": ..., ...}, ...], "arena_caches": [...]}
 * Returns a malloc'd, NUL-terminated string the caller frees with engram_free, or NULL
 * (ENGRAM_ENOMEM). Any thread.
 */
ENGRAM_API char *engram_stats_json(void);

/* Free memory the library returned to the caller (engram_stats_json). NULL is a no-op. */
ENGRAM_API void engram_free(void *p);


/* ======================================================================================
 * Kernels                                                            (kernels/)
 *
 * Numeric kernels of a consolidation burst: cosine similarity, spreading activation over a
 * CSR graph, and strength decay. Inputs and outputs belong to the caller; scratch comes from
 * the arena passed in (NULL = the calling thread's arena, engram_arena_thread()), taken under a
 * mark and rewound before return, so the caller's use of the arena is unchanged. A kernel never
 * silently does nothing: it returns 0 or a negative ENGRAM_E* code with engram_last_error() set
 * ("similarity: ...", "spread: ...", "decay: ..."); ENGRAM_EFULL when the arena cannot hold the
 * scratch (the message gives the kernel and the bytes it needed). On error the outputs are
 * unchanged unless the function says otherwise.
 *
 * ISA. Every kernel has a scalar reference and AVX2+FMA and AVX-512 variants; the variant is
 * chosen once per process from the CPU (the widest it supports), or from ENGRAM_ISA=scalar|avx2|
 * avx512. A bad ENGRAM_ISA value, or an ISA the CPU lacks, is not ignored: every kernel then
 * fails with ENGRAM_ECONFIG / ENGRAM_ENOTSUP and the message names the variable, until a valid
 * ISA is set with engram_kernel_set_isa. Results of different ISAs agree within the error
 * bounds stated below, not bit for bit (summation order differs).
 *
 * Thread safety: all kernels are reentrant (each thread passes its own arena).
 * engram_kernel_set_isa may be called at any time; a kernel call uses the ISA current when it
 * starts.
 * ====================================================================================== */

typedef enum engram_isa {
  ENGRAM_ISA_SCALAR = 0,     /* portable C, the reference every other variant is tested against */
  ENGRAM_ISA_AVX2 = 1,       /* AVX2 + FMA (256-bit) */
  ENGRAM_ISA_AVX512 = 2,     /* AVX-512 F/BW/DQ/VL (512-bit) */
  ENGRAM_ISA_AUTO = 3        /* engram_kernel_set_isa only: back to ENGRAM_ISA / the CPU's best */
} engram_isa;

/* The ISA the kernels run with (an engram_isa >= 0), or ENGRAM_ECONFIG (bad ENGRAM_ISA) /
 * ENGRAM_ENOTSUP (ENGRAM_ISA names an ISA this CPU lacks), with the message set. */
ENGRAM_API int engram_kernel_isa(void);

/* "scalar", "avx2", "avx512" (or "auto"); "unknown" for anything else. */
ENGRAM_API const char *engram_kernel_isa_name(int isa);

/* 1 if this CPU (and OS: the vector state is enabled in XCR0) can run `isa`, else 0. */
ENGRAM_API int engram_kernel_isa_supported(int isa);

/* Select the variant for all threads: 0, ENGRAM_EINVAL (not an engram_isa) or ENGRAM_ENOTSUP
 * (this CPU lacks it); the selection is unchanged on error. ENGRAM_ISA_AUTO re-reads
 * ENGRAM_ISA and the CPU: 0 when that names a usable ISA (engram_kernel_isa() tells which),
 * else the ENGRAM_ECONFIG / ENGRAM_ENOTSUP that engram_kernel_isa() will then report. */
ENGRAM_API int engram_kernel_set_isa(int isa);

/* ---- similarity (kernels/similarity*.c) ----------------------------------------------
 *
 * Vectors are float rows of dimension d (d >= 1), stored row-major and contiguous
 * (row i at rows + i*d); no alignment is required. Cosine contract, on every path: a vector
 * whose squared norm is below 1e-30, or is not finite (a NaN or Inf component, or an overflow
 * of the float sum of squares), has score 0 with everything, itself included; every score is
 * clamped to [-1, 1]. Accuracy: |score - exact| <= 1e-5 + 2^-23 * sqrt(d) for finite inputs
 * (float accumulation; the scalar reference accumulates in double). */

/* inv[i] = 1 / ||row i||, or 0 for a vector that scores 0 (see the contract). Compute this once
 * per batch and pass it to the *_normed / matrix / pairs / topk calls. */
ENGRAM_API int engram_sim_norms(engram_arena *a, const float *rows, size_t n, size_t d, float *inv);

/* scores[i] = cos(query, row i), i < n. Norms are computed in the same pass over the rows. */
ENGRAM_API int engram_sim_cosine(engram_arena *a, const float *query, const float *rows, size_t n,
                                 size_t d, float *scores);

/* The same with the rows' inverse norms precomputed by engram_sim_norms (the query's norm is
 * computed here). Reads each row once; this is the path for large n. */
ENGRAM_API int engram_sim_cosine_normed(engram_arena *a, const float *query, const float *rows,
                                        const float *inv, size_t n, size_t d, float *scores);

/* The full n x n cosine matrix, out[i*n + j] (symmetric; the diagonal is 1, or 0 for a vector
 * that scores 0). inv may be NULL (computed into scratch: 4n bytes). Blocked GEMM-class pass
 * that computes each pair once (i <= j) and mirrors it. Scratch: about 4*(n + 64*d) + 64 KiB. */
ENGRAM_API int engram_sim_matrix(engram_arena *a, const float *rows, const float *inv, size_t n,
                                 size_t d, float *out);

/* out[i*nb + j] = cos(a_row i, b_row j) for i < na, j < nb (e.g. a batch against its graph
 * neighbours). inv_a / inv_b may be NULL. */
ENGRAM_API int engram_sim_cross(engram_arena *a, const float *arows, const float *inv_a, size_t na,
                                const float *brows, const float *inv_b, size_t nb, size_t d,
                                float *out);

typedef struct engram_sim_pair {
  uint32_t i, j;             /* i < j */
  float score;
} engram_sim_pair;

/* Every pair i < j with cos >= threshold, fused into the blocked pass (the n x n matrix is never
 * stored, so n = 100,000 needs only O(n + d) scratch). Pairs are written to out[0 .. cap) in an
 * unspecified but deterministic order (sort them if order matters); *count is set to the number
 * found. When more than cap pairs qualify, the first cap are kept, the scan still counts the
 * rest, and the call returns ENGRAM_EFULL ("similarity: ... pairs found, room for ..."), so the
 * caller can retry with a larger buffer. n < 2^32. */
ENGRAM_API int engram_sim_pairs(engram_arena *a, const float *rows, const float *inv, size_t n,
                                size_t d, float threshold, engram_sim_pair *out, size_t cap,
                                size_t *count);

/* The pairs of a prefix of the rows: every pair (i, j) with i < n and i < j < total whose cosine
 * reaches threshold, i.e. the first n rows among themselves and against rows n .. total-1 (a
 * batch of new episodes and the context loaded with it), in one blocked pass that stores neither
 * matrix. inv, when given, holds the inverse norms of all total rows. Output and errors as for
 * engram_sim_pairs, which is the case total == n; n > total is EINVAL. total < 2^32. */
ENGRAM_API int engram_sim_pairs_prefix(engram_arena *a, const float *rows, const float *inv, size_t n,
                                       size_t total, size_t d, float threshold, engram_sim_pair *out,
                                       size_t cap, size_t *count);

/* For every row i, its k most similar other rows (j != i), fused into the same blocked pass:
 * idx[i*k + r] and score[i*k + r] for r < k, by decreasing score, equal scores by increasing
 * index (the selection uses the same total order, so it does not depend on the order of the
 * blocked pass). When n - 1 < k the remaining slots hold idx UINT32_MAX and score -INFINITY.
 * Scratch: 4n bytes plus the blocked pass. n < 2^32, k >= 1. */
ENGRAM_API int engram_sim_topk(engram_arena *a, const float *rows, const float *inv, size_t n,
                               size_t d, size_t k, uint32_t *idx, float *score);

/* The centroid of a cluster: out (d floats) = the mean of the unit vectors of rows members[0..m)
 * (row i at rows + i*d, inverse norm inv[i] from engram_sim_norms; a row with inv 0 counts as a
 * zero vector), and *norm = ||out||, which is also the members' mean cosine to out (sum_r
 * inv_r row_r . out = m ||out||^2). m = 0 gives zeros. No scratch. */
ENGRAM_API int engram_sim_centroid(const float *rows, const float *inv, size_t d, const uint32_t *members,
                                   size_t m, float *out, float *norm);

/* ---- spreading activation (kernels/spread.c) -----------------------------------------
 *
 * The graph is CSR by source: the edges of node s are e in [offsets[s], offsets[s+1]), each
 * going to targets[e] with weight weights[e]. Required: offsets[0] == 0, offsets
 * non-decreasing, offsets[n] == nedges, every target < n; n and nedges < 2^32. A violation is
 * ENGRAM_EINVAL (offsets) or ENGRAM_ERANGE (a target), with the node / edge in the message,
 * never a crash. */

typedef struct engram_csr {
  size_t n;                  /* nodes */
  size_t nedges;             /* edges (== offsets[n]) */
  const uint32_t *offsets;   /* n + 1 */
  const uint32_t *targets;   /* nedges */
  const float *weights;      /* nedges */
} engram_csr;

/* Check the whole graph (O(n + nedges)): 0, ENGRAM_EINVAL or ENGRAM_ERANGE. */
ENGRAM_API int engram_csr_validate(const engram_csr *g);

/* Iterative mode (the original semantics). For each of `iterations` rounds, with prev = act at
 * the start of the round: act[t] += prev[s] * w for every edge s -> t (sources with prev[s] == 0
 * contribute nothing; a source keeps its own activation); then, if m = max(act) > 1, every act[i]
 * is divided by m (negative values are not bounded). Checks offsets up front and every target it
 * reads; on any error act is unchanged. Scratch: 8n bytes. Work: O(n) + the edges of nodes with
 * non-zero activation, per round. */
ENGRAM_API int engram_spread_iterate(engram_arena *a, const engram_csr *g, float *act,
                                     unsigned iterations);

typedef struct engram_spread_params {
  unsigned max_depth;        /* hops from the seeds (default 4); 0 applies the seeds only */
  float rate;                /* per-hop decay: hop h multiplies by exp(-rate * h) (default 0.7, >= 0) */
  float threshold;           /* a contribution below this is dropped (default 0.01, >= 0) */
} engram_spread_params;

/* Fill *p with the defaults (depth 4, rate 0.7, threshold 0.01). */
ENGRAM_API void engram_spread_params_default(engram_spread_params *p);

/* Bounded mode: activation pushed from seeds, hop by hop, touching only what it reaches.
 *
 *   hop 0:  each seed s (duplicates add up) gets act[s] = min(1, act[s] + v_s), where v_s is
 *           seed_act[i] (1.0 when seed_act is NULL); its pulse is v_s (a seed always spreads
 *           its own value, even when its activation was already 1).
 *   hop h = 1 .. max_depth:  every node u with a pulse p_u > 0 from hop h-1 sends, along each
 *           out-edge u -> t with weight w, the contribution c = p_u * w * exp(-rate * h);
 *           c < threshold (or NaN; so also every w <= 0) is dropped. Each target sums what it
 *           received in this hop, C_t, and takes act[t] = min(1, act[t] + C_t). Its pulse for
 *           the next hop is the increase actually accepted, act_new - act_old (0 for a node
 *           already at 1). Nodes receive and send in every hop they are reached, so cycles are
 *           allowed; the decay factors compound along a path: a pulse reaching depth h carries
 *           the product of its edge weights times exp(-rate * h(h+1)/2).
 *
 * act (n floats) is read and written only at the nodes reached, and written only on success.
 * touched (optional, may be NULL) receives the ids of every node whose activation was read
 * (seeds and every target of a kept contribution), in first-touch order, up to cap;
 * *ntouched (optional) is set to their number (which may exceed cap: then the list is cut).
 * Seeds must be < n and seed values finite and >= 0 (ENGRAM_ERANGE / ENGRAM_EINVAL); params may
 * be NULL (defaults). The graph is checked only where it is reached (offsets of the nodes
 * expanded, targets of the edges examined); use engram_csr_validate for a full check.
 * Work and touched memory: O(seeds + edges examined), independent of n. Scratch: 4n bytes of
 * index (reserved, never cleared or touched beyond the nodes reached) + 16 bytes per node
 * reached + 4 bytes per edge examined. */
ENGRAM_API int engram_spread_bounded(engram_arena *a, const engram_csr *g, const uint32_t *seeds,
                                     const float *seed_act, size_t nseeds,
                                     const engram_spread_params *params, float *act,
                                     uint32_t *touched, size_t cap, size_t *ntouched);

/* ---- decay (kernels/decay*.c) ----------------------------------------------------------
 *
 * strength[i] *= f(age[i] [, access[i]]), in place, for one of four models:
 *   ENGRAM_DECAY_HALF_LIFE      f = 2^(-t / half_life)          (f = 0.5 at t = half_life)
 *   ENGRAM_DECAY_TIME_CONSTANT  f = e^(-t / tau)                 (f = 1/e at t = tau)
 *   ENGRAM_DECAY_POWER          f = (1 + t/unit)^(-beta)
 *   ENGRAM_DECAY_TWO_COMPONENT  access[i] <  k: f = 2^(-t / half_life)   (hippocampal, labile)
 *                               access[i] >= k: f = (1 + t/unit)^(-beta) (neocortical)
 *                               and then f = max(f, floor) in both branches.
 *
 * Ages are float seconds (age = now - last_access, computed by the caller in integer or double
 * time and rounded once). A float carries 24 bits: at 10 years (3.2e8 s) an age is exact to
 * +-8 s, which moves f by at most ln2 * 2^-24 * t/half_life relative (< 6.2e-6 while f is
 * representable); the bounds below are relative to the float age as given. Negative ages count
 * as 0 (clock skew never strengthens); a NaN age gives a NaN strength; an infinite age gives
 * f = 0 (or floor).
 *
 * Accuracy (exp2 / log2 are polynomials of this library, identical in every ISA): for |strength|
 * <= 2^64 and a result in the normal float range, |result - exact| <= 1e-6 * |exact| (exact =
 * strength * f evaluated in double from the same float inputs; the worst measured over ages
 * 0 .. 10 years, time scales 1 h .. 1 year and beta up to 4 is 5.4e-7, spec/c/test_decay.c);
 * results in the subnormal range are within 2 subnormal steps (2^-148) of exact. Strengths of 0 stay 0; subnormal strengths are
 * handled without flushing. No scratch is used (the arena argument is accepted for uniformity
 * and only checked). */

typedef enum engram_decay_model {
  ENGRAM_DECAY_HALF_LIFE = 0,
  ENGRAM_DECAY_TIME_CONSTANT = 1,
  ENGRAM_DECAY_POWER = 2,
  ENGRAM_DECAY_TWO_COMPONENT = 3
} engram_decay_model;

typedef struct engram_decay_params {
  engram_decay_model model;
  double half_life;          /* seconds, > 0 (HALF_LIFE, TWO_COMPONENT) */
  double tau;                /* seconds, > 0 (TIME_CONSTANT) */
  double beta;               /* >= 0 (POWER, TWO_COMPONENT); 0 means no decay */
  double unit;               /* seconds per unit of t in the power law, > 0 (86400 = days) */
  uint32_t k;                /* TWO_COMPONENT: accesses at or above k use the power law */
  float floor;               /* TWO_COMPONENT: smallest factor, 0 .. 1 */
} engram_decay_params;

/* Defaults for a model: half_life 4891 s (the 1.96 h time constant of the hippocampal curve,
 * times ln 2), tau 7056 s (1.96 h), beta 0.18, unit 86400 s (days), k 3, floor 0.01.
 * ENGRAM_EINVAL for an unknown model. */
ENGRAM_API int engram_decay_params_default(engram_decay_model model, engram_decay_params *p);

/* Apply the decay to strength[0 .. n). access may be NULL except for TWO_COMPONENT. Parameters
 * are checked (ENGRAM_EINVAL with the field name) before anything is written. */
ENGRAM_API int engram_decay_apply(engram_arena *a, const engram_decay_params *p, float *strength,
                                  const float *age, const uint32_t *access, size_t n);

/* ======================================================================================
 * Runtime                                                            (runtime/host.c, workers.c)
 *
 * A runtime is N worker threads. Each worker owns, for its whole life, one lua_State (with the
 * engram module and lpeg loadable) and one arena. A burst is one protected call of a loaded
 * script's function with a `burst` table {arena, params, id, worker, store}; the worker's arena is
 * reset whichever way the call ends (return, error, deadline). Scripts are compiled once per
 * worker and kept in a bounded per-worker cache (least recently used evicted).
 *
 * A pipeline script returns a function, or a table of stage functions: the array part
 * {f1, f2, ...} (or the array in its `stages` field) is called in index order, stage i as
 * f_i(burst, what stage i-1 returned); the last stage's return values are the burst's.
 * Those values come back as JSON text: no value -> null, one value -> that value, several ->
 * an array of them. Tables whose keys are exactly 1..n are arrays, other tables objects with
 * keys in byte order; NaN and infinities are null; functions, userdata and cdata are an error.
 *
 * Isolation: a script error becomes the burst's result (status ENGRAM_ESCRIPT, message with
 * file:line and a traceback) and the worker keeps serving with the same state.
 *
 * Deadline (timeout_ms): interpreted code stops at its next instruction (a count hook armed at
 * the deadline, kept armed until the burst unwinds so a pcall in the script cannot swallow
 * it; the state is kept). JIT-compiled loops, which that LuaJIT does not hook, are stopped by
 * a signal (ENGRAM_DEADLINE_SIGNAL, SIGURG) after a grace period of max(2, min(timeout/10, 50))
 * ms: when it lands in LuaJIT code the call is abandoned together with its Lua state, and the
 * worker continues with a fresh one. A signal that lands in C code (libc, libengram, SQLite,
 * lpeg, an FFI kernel) is ignored and retried every tick (about timeout/20, 1..10 ms), so a
 * long C call finishes before the burst stops. Such bursts end with ENGRAM_ETIMEOUT. Handlers
 * installed earlier for SIGURG still receive the signals that are not the runtime's.
 *
 * Lua heap limit (lua_heap_limit): every worker state allocates through a counting allocator
 * that refuses growth beyond the limit (never a shrink or a free); the burst ends with
 * ENGRAM_EFULL, even if the script caught the error, and the worker replaces its state.
 *
 * Threads: everything may be called from any thread; submit is lock-protected and never
 * blocks (a full queue is ENGRAM_EBUSY). A burst handle belongs to the submitter until
 * engram_burst_release.
 *
 * Shutdown: engram_runtime_shutdown stops accepting bursts (ENGRAM_ESTATE), lets running
 * bursts finish (or reach their deadline), then either runs the queued ones (DRAIN) or
 * completes each with status ENGRAM_ESTATE, message "runtime: burst cancelled by shutdown"
 * (CANCEL). engram_runtime_destroy drains first when it was not shut down.
 * ====================================================================================== */

#define ENGRAM_RUNTIME_MAX_WORKERS 256
#define ENGRAM_RUNTIME_CONFIG_VERSION 1

typedef struct engram_runtime engram_runtime;
typedef struct engram_burst engram_burst;

typedef struct engram_runtime_config {
  uint32_t struct_size;      /* set by engram_runtime_config_default */
  uint32_t struct_version;
  uint32_t workers;          /* 1 .. ENGRAM_RUNTIME_MAX_WORKERS; default: online CPUs */
  uint32_t queue_capacity;   /* bursts waiting at most; default 1024 */
  size_t arena_size;         /* per worker; default from ENGRAM_ARENA_SIZE (1 MiB) */
  engram_overflow overflow;  /* default from ENGRAM_ARENA_OVERFLOW (error) */
  uint32_t timeout_ms;       /* per-burst deadline; 0 = none (the default) */
  size_t lua_heap_limit;     /* bytes per worker Lua state; 0 = unlimited (the default) */
  uint32_t script_cache;     /* compiled scripts per worker; default 64 */
  const char *module_path;   /* directory holding engram/init.lua, or a package.path pattern
                              * (contains '?'); NULL: $ENGRAM_LUA_PATH, $ENGRAM_ROOT/lua, the
                              * source tree beside the executable, then LUA_PATH */
  const char *store_path;    /* SQLite memory store: each worker opens one connection to it and
                              * scripts see it as burst.store; after every burst the worker
                              * releases the claims the burst left open. NULL: no store */
} engram_runtime_config;

/* Fill *out with the defaults (arena size and overflow from the environment). ENGRAM_ECONFIG
 * when an ENGRAM_ARENA_* variable is invalid. */
ENGRAM_API int engram_runtime_config_default(engram_runtime_config *out);

/* Start the workers; each builds its Lua state and arena before this returns. NULL on failure:
 * ENGRAM_EINVAL / ENGRAM_EVERSION (config), ENGRAM_ESCRIPT (the engram module or lpeg cannot
 * be loaded: the message says why), ENGRAM_ESTORE (store_path cannot be opened), ENGRAM_ENOMEM.
 * A NULL config means the defaults. */
ENGRAM_API engram_runtime *engram_runtime_create(const engram_runtime_config *config);

/* Register a script; returns its id (> 0) or a negative code. The text is compiled once here
 * to report syntax errors early (ENGRAM_ESCRIPT, "path:line: ..."); ENGRAM_EIO for a file that
 * cannot be read. Loading the same name and text again returns the same id. Workers compile
 * the script on first use and run its top level then. */
ENGRAM_API int engram_runtime_load_file(engram_runtime *rt, const char *path);
ENGRAM_API int engram_runtime_load_string(engram_runtime *rt, const char *name, const char *text,
                                          size_t len);

/* A burst parameter: burst.params[key] is `text` as a Lua string, or `number` when text is
 * NULL. Keys and texts are copied at submit. */
typedef struct engram_param {
  const char *key;
  const char *text;
  double number;
} engram_param;

/* Queue a burst of `script` and return its handle in *out. ENGRAM_EBUSY when the queue is
 * full (nothing queued), ENGRAM_ERANGE for an unknown script id, ENGRAM_ESTATE after shutdown,
 * ENGRAM_EINVAL for a NULL key. Any thread. */
ENGRAM_API int engram_runtime_submit(engram_runtime *rt, int script, const engram_param *params,
                                     size_t nparams, engram_burst **out);

/* Wait until the burst has finished: 0 when it has (whatever its status), ENGRAM_ETIMEOUT when
 * timeout_ms passed first (negative: wait forever). */
ENGRAM_API int engram_burst_wait(engram_burst *b, int64_t timeout_ms);

/* 1 when the burst has finished, else 0 (never blocks). */
ENGRAM_API int engram_burst_done(const engram_burst *b);

/* Of a finished burst: 0, or ENGRAM_ESCRIPT (the script failed), ENGRAM_ETIMEOUT (deadline),
 * ENGRAM_EFULL (Lua heap limit), ENGRAM_ENOMEM, ENGRAM_ESTATE (cancelled by shutdown).
 * ENGRAM_EBUSY while it has not finished. */
ENGRAM_API int engram_burst_status(const engram_burst *b);

/* Of a finished burst: the error message with traceback ("" when ok); the returned values as
 * JSON (NULL on error). Valid until engram_burst_release. */
ENGRAM_API const char *engram_burst_message(const engram_burst *b);
ENGRAM_API const char *engram_burst_result(const engram_burst *b);

/* The id the burst got at submit (burst.id in Lua, 1, 2, ... per runtime), the worker that ran
 * it (-1 if none) and its run time on the worker in nanoseconds. */
ENGRAM_API uint64_t engram_burst_id(const engram_burst *b);
ENGRAM_API int engram_burst_worker(const engram_burst *b);
ENGRAM_API uint64_t engram_burst_run_ns(const engram_burst *b);

/* Give the handle back (a burst still running is freed when it finishes). NULL is a no-op. */
ENGRAM_API void engram_burst_release(engram_burst *b);

typedef enum engram_shutdown {
  ENGRAM_SHUTDOWN_DRAIN = 0,   /* run every queued burst, then stop */
  ENGRAM_SHUTDOWN_CANCEL = 1   /* complete queued bursts with ENGRAM_ESTATE, then stop */
} engram_shutdown;

/* Stop accepting bursts and join the workers (see above). Idempotent; any thread but a worker. */
ENGRAM_API void engram_runtime_shutdown(engram_runtime *rt, engram_shutdown how);

/* Shut down (draining) if needed and free the runtime. Burst handles stay valid until
 * released. NULL is a no-op. */
ENGRAM_API void engram_runtime_destroy(engram_runtime *rt);

#define ENGRAM_RUNTIME_STATS_VERSION 1

/* Per worker. Latency is the run time of a burst on the worker (state lookup, Lua call,
 * encoding, arena reset), from a log-linear histogram (4 buckets per power of two, so a
 * percentile is within 12.5% of the true value, and never above the max). */
typedef struct engram_worker_stats {
  uint32_t struct_size;
  uint32_t struct_version;   /* ENGRAM_RUNTIME_STATS_VERSION */
  uint64_t bursts;           /* finished on this worker */
  uint64_t errors;           /* of which ended with a non-zero status */
  uint64_t timeouts;         /* of which hit the deadline */
  uint64_t heap_limit_hits;  /* of which hit the Lua heap limit */
  uint64_t states_created;   /* Lua states built (1 + replacements) */
  uint64_t states_abandoned; /* states left after a hard stop in compiled code */
  uint64_t cache_hits, cache_misses, cache_evictions;
  uint64_t arena_capacity;
  uint64_t arena_high_water; /* most arena bytes a burst of this worker used */
  uint64_t lua_heap_used;    /* bytes now */
  uint64_t lua_heap_peak;    /* most bytes at once over the worker's life */
  uint64_t lua_heap_limit;   /* 0 = unlimited */
  uint64_t latency_p50_ns, latency_p99_ns, latency_max_ns;
} engram_worker_stats;

typedef struct engram_runtime_stats {
  uint32_t struct_size;
  uint32_t struct_version;   /* ENGRAM_RUNTIME_STATS_VERSION */
  uint32_t workers;
  uint32_t scripts;          /* loaded */
  uint64_t submitted;        /* accepted by submit */
  uint64_t rejected;         /* refused with ENGRAM_EBUSY */
  uint64_t completed;        /* finished, any status, cancelled included */
  uint64_t cancelled;
  uint64_t queued;           /* waiting now */
  uint64_t latency_p50_ns, latency_p99_ns, latency_max_ns;   /* over all workers */
} engram_runtime_stats;

/* Totals, and one worker's counters (0 <= worker < workers: ENGRAM_ERANGE). Any thread;
 * counters are read without locks, each exact, not all from the same instant. */
ENGRAM_API int engram_runtime_stats_get(engram_runtime *rt, engram_runtime_stats *out);
ENGRAM_API int engram_runtime_worker_stats(engram_runtime *rt, uint32_t worker, engram_worker_stats *out);

/* The runtime's stats as one JSON object: {"workers": n, "submitted": ..., ..., "latency_ns":
 * {"p50":..., "p99":..., "max":...}, "per_worker": [{...}, ...]}, with the config it runs with.
 * A malloc'd string the caller frees with engram_free, or NULL (ENGRAM_ENOMEM). */
ENGRAM_API char *engram_runtime_stats_json(engram_runtime *rt);

/* ======================================================================================
 * Store                                                              (runtime/store.c)
 * ====================================================================================== */

/* The memory graph in one SQLite file (WAL mode): memories (episodes with a float32 embedding of
 * a fixed dimension per store, timestamps, access count, strength, activation, a consolidated
 * flag, text content and its weighted out-edges), and patterns (semantic clusters: centroid,
 * strength, member ids). The schema carries a version (PRAGMA user_version); a version 1 store
 * is upgraded when opened.
 *
 * Thread safety: an engram_store is one SQLite connection used by one thread at a time; open one
 * per worker on the same path. Connections of one process coordinate through claims kept in the
 * process (one table per file): a burst's load claims its episodes with a lease, so two bursts
 * never process the same episode; a burst that fails releases its claims (or they expire).
 * Another process on the same file does not see them: when two processes pick the same episode,
 * the later commit fails with ENGRAM_ESTATE and writes nothing. A commit is one transaction, so
 * a failed, interrupted or killed burst changes nothing in the memory graph. */

typedef struct engram_store engram_store;

typedef struct engram_store_config {
  const char *path;          /* the SQLite file */
  uint32_t dim;              /* embedding dimension; 0 = the existing store's */
  int create;                /* non-zero: create the file and schema when missing */
  int busy_timeout_ms;       /* waiting for another writer; 0 = 5000 */
  double lease_seconds;      /* how long a burst's claims hold, in real time; 0 = 300 */
  int manual_checkpoint;     /* non-zero: commits never checkpoint the WAL themselves; another
                              * connection calls engram_store_checkpoint (the runtime runs one
                              * off the burst path). 0: SQLite checkpoints when a commit grows
                              * the WAL past 1000 pages, inside that commit. */
} engram_store_config;

/* Open (or create) a store. NULL with ENGRAM_ESTORE and a message naming the file for: a file
 * that is not a database, a schema from another engram version, a dimension mismatch, a missing
 * file without `create`. */
ENGRAM_API engram_store *engram_store_open(const engram_store_config *config);
ENGRAM_API void engram_store_close(engram_store *s);
ENGRAM_API uint32_t engram_store_dim(const engram_store *s);

/* One episode to import. content is UTF-8 text; embedding has dim floats. */
typedef struct engram_episode {
  int64_t id;
  const char *content;
  const float *embedding;
  double created_at;         /* seconds since the epoch */
  double last_access;        /* 0 = created_at */
  int32_t access_count;
  float strength;            /* in [0, 1] */
} engram_episode;

/* Import is all-or-nothing: begin, add each episode, commit (or abort). add validates the
 * episode (id unique in the store, strength in [0, 1], finite embedding, access_count >= 0)
 * and the import stays open after a rejected episode only until abort or commit — commit after
 * a failed add refuses (ENGRAM_ESTATE) and rolls back. */
ENGRAM_API int engram_store_import_begin(engram_store *s);
ENGRAM_API int engram_store_import_add(engram_store *s, const engram_episode *e);
ENGRAM_API int engram_store_import_commit(engram_store *s);
ENGRAM_API void engram_store_import_abort(engram_store *s);

#define ENGRAM_STORE_COUNTS_VERSION 1
typedef struct engram_store_counts {
  uint32_t struct_size;
  uint32_t struct_version;
  int64_t memories;
  int64_t unconsolidated;
  int64_t edges;
  int64_t patterns;
  int64_t claims;            /* episodes held by bursts in flight */
} engram_store_counts;

ENGRAM_API int engram_store_count(engram_store *s, engram_store_counts *out);

/* What a burst loads: its episodes (the first n rows, newest first) and their context (the
 * remaining rows, in no particular order: out-neighbours of the episodes in the graph first,
 * then the consolidated memories nearest in creation time to the episodes — within their span,
 * then the nearest on either side of it), with every array in the burst's arena. Embedding rows are `dim` floats
 * apart; the block starts 64-byte aligned (rows too when dim is a multiple of 16). Edges are
 * those of the store with both ends loaded, as row indices. */
typedef struct engram_batch {
  uint64_t claim;            /* the token that commit and release take */
  uint32_t dim;
  uint32_t n;                /* claimed episodes */
  uint32_t total;            /* n + context rows */
  int64_t *ids;
  float *embeddings;         /* total x dim */
  double *created_at;
  double *last_access;
  int32_t *access_count;
  float *strength;
  float *activation;
  uint32_t n_edges;
  int32_t *edge_src;         /* row indices */
  int32_t *edge_dst;
  float *edge_weight;
} engram_batch;

/* Claim up to `batch` unconsolidated, unclaimed episodes, newest first, and load them with up
 * to `context` context rows into arena a. n == 0 (nothing to do) is a success. Arena exhaustion
 * is ENGRAM_EFULL (claims are released then). `now` is not used: leases run on the process's
 * monotonic clock, whatever clock a burst keeps (it stays in the signature for callers that
 * pass their burst's time). */
ENGRAM_API int engram_store_load(engram_store *s, engram_arena *a, uint32_t batch, uint32_t context,
                                 double now, engram_batch *out);

#define ENGRAM_STORE_CHANGES_VERSION 1

/* A burst's result, written by engram_store_commit in one transaction. */
typedef struct engram_store_changes {
  uint32_t struct_size;
  uint32_t struct_version;
  uint64_t claim;            /* from engram_store_load */
  double now;                /* 0 = the current time; becomes last_access of touched memories */
  /* new strength and activation of memories (any loaded rows). With update_last_access (the
   * last_access each row had when this burst loaded it; may be NULL), a row that another burst
   * has written since keeps that burst's values: concurrent bursts share context rows, and the
   * later of two commits would otherwise undo the earlier one's decay and reinforcement */
  uint32_t n_updates;
  const int64_t *update_ids;
  const float *update_strength;
  const float *update_activation;
  const double *update_last_access;
  /* episodes now consolidated: must all be claims of this burst */
  uint32_t n_consolidated;
  const int64_t *consolidated_ids;
  /* edges to insert or re-weight (src, dst ids) */
  uint32_t n_edges;
  const int64_t *edge_src;
  const int64_t *edge_dst;
  const float *edge_weight;
  /* patterns: n_patterns centroids of dim floats, strengths, and members as CSR offsets
   * (n_patterns + 1) into member ids */
  uint32_t n_patterns;
  const float *pattern_centroids;
  const float *pattern_strength;
  const uint32_t *pattern_offsets;
  const int64_t *pattern_members;
  /* a new pattern whose centroid has cosine >= this with a stored pattern's is merged into it
   * (members united, centroid and strength averaged by member count); 0 = always insert */
  float pattern_merge;
} engram_store_changes;

/* Apply a burst's changes atomically and release its claims. ENGRAM_ESTATE (and nothing
 * changed) when a consolidated id is not claimed by this burst (lease expired and taken by
 * another burst, or never claimed), is listed twice, or was consolidated meanwhile by another
 * process; ENGRAM_EINVAL for malformed changes (non-finite values, a strength outside [0, 1],
 * pattern offsets out of order) or a memory that is not in the store; ENGRAM_ESTORE for SQLite
 * errors. Every memory named (consolidated, updated, or the source of an edge) is written with
 * one row update. */
ENGRAM_API int engram_store_commit(engram_store *s, const engram_store_changes *c);

/* Give back a failed burst's claims (its episodes become loadable again). Writes nothing to
 * the database; always 0. */
ENGRAM_API int engram_store_release(engram_store *s, uint64_t claim);

/* Give back every claim loaded through this connection and not committed or released since:
 * what a host calls after a burst failed, whatever the script did. */
ENGRAM_API int engram_store_release_pending(engram_store *s);

/* Copy what the WAL holds back into the database file without blocking writers (a passive
 * checkpoint); *wal_pages (may be NULL) gets the frames still in the WAL. Readers of older
 * snapshots can keep frames from being copied: they are copied by a later call. */
ENGRAM_API int engram_store_checkpoint(engram_store *s, int *wal_pages);

/* Labels kept in the store (its meta table) for whoever made it, e.g. "generator". Keys
 * starting with "engram." and "dim" are reserved. get copies the value into buf[cap] and
 * returns 0, or ENGRAM_ERANGE when the key is not set (buf is then ""). */
ENGRAM_API int engram_store_meta_set(engram_store *s, const char *key, const char *value);
ENGRAM_API int engram_store_meta_get(engram_store *s, const char *key, char *buf, size_t cap);

#define ENGRAM_STORE_SUMMARY_VERSION 1

/* The strength distribution of all memories, for reports. */
typedef struct engram_store_summary {
  uint32_t struct_size;
  uint32_t struct_version;
  int64_t memories;
  double strength_mean;
  double strength_min;
  double strength_p10;
  double strength_p50;
  double strength_p90;
  double strength_max;
  double activation_mean;
  double edge_weight_mean;
  double pattern_members_mean;
} engram_store_summary;

ENGRAM_API int engram_store_summarize(engram_store *s, engram_store_summary *out);

#ifdef __cplusplus
}
#endif

#endif /* ENGRAM_H */
