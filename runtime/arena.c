/*
 * arena.c — the bump arena: creation (pages, huge pages, prefault), the slow allocation path
 * (overflow strategies, fallback chunks), reset, rewind, queries and the thread's default arena.
 *
 * The fast path is inline in engram.h. Everything here runs at most once per overflow, reset,
 * rewind or query, so this is where the counters live.
 */
#include "arena.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_2M ((size_t)2 << 20)

/* The public struct and its slow half are one allocation, each on its own cache line so the
 * fast-path fields never share a line with counters read by other threads. */
struct arena_block {
  engram_arena pub __attribute__((aligned(64)));
  struct engram_arena_slow slow __attribute__((aligned(64)));
};

static const char *const overflow_names[] = { "error", "panic", "fallback" };

/* Epochs are unique across the process, so a handle stamped with one can never be mistaken for
 * a handle of another arena that later reuses the same header. */
static uint64_t epoch_counter;

uint64_t engram_epoch_next(void)
{
  return __atomic_add_fetch(&epoch_counter, 1, __ATOMIC_RELAXED);
}

/* Destroyed headers wait here for the next engram_arena_create: stale handles may still point
 * at them, so they are never given back to the system allocator. */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct arena_block *spare_headers;

static struct arena_block *header_take(void)
{
  struct arena_block *b = NULL;
  pthread_mutex_lock(&spare_lock);
  if (spare_headers) {
    b = spare_headers;
    spare_headers = (struct arena_block *)b->slow.reg_next;
  }
  pthread_mutex_unlock(&spare_lock);
  if (!b && posix_memalign((void **)&b, 64, sizeof *b) != 0)
    return NULL;
  return b;
}

static void header_give_back(struct arena_block *b)
{
  pthread_mutex_lock(&spare_lock);
  b->slow.reg_next = (struct engram_arena_slow *)spare_headers;
  spare_headers = b;
  pthread_mutex_unlock(&spare_lock);
}

static size_t page_size(void)
{
  static size_t ps;   /* the same value for every thread: a relaxed race-free cache */
  size_t v = __atomic_load_n(&ps, __ATOMIC_RELAXED);
  if (!v) {
    v = (size_t)sysconf(_SC_PAGESIZE);
    __atomic_store_n(&ps, v, __ATOMIC_RELAXED);
  }
  return v;
}

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) & ~(to - 1);
}

/* ---- mapping the primary block -------------------------------------------------------- */

/* Map `bytes` (a multiple of the page size), trying explicit huge pages, then transparent huge
 * pages, then ordinary pages: huge pages being unavailable is never a failure. */
static void *map_block(size_t bytes, engram_huge_pages huge, size_t *mapped, engram_page_kind *kind)
{
  void *p;

  if (huge == ENGRAM_HUGE_AUTO && bytes >= HUGE_2M) {
    size_t hb = round_up(bytes, HUGE_2M);
    p = mmap(NULL, hb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      *mapped = hb;
      *kind = ENGRAM_PAGES_HUGETLB;
      return p;
    }
    /* THP needs 2 MiB alignment to pay off: over-map, then trim both ends. */
    size_t over = hb + HUGE_2M;
    char *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw != MAP_FAILED) {
      char *aligned = (char *)round_up((uintptr_t)raw, HUGE_2M);
      if (aligned > raw)
        munmap(raw, (size_t)(aligned - raw));
      size_t tail = (size_t)((raw + over) - (aligned + hb));
      if (tail)
        munmap(aligned + hb, tail);
      *mapped = hb;
      *kind = madvise(aligned, hb, MADV_HUGEPAGE) == 0 ? ENGRAM_PAGES_THP : ENGRAM_PAGES_4K;
      return aligned;
    }
  }
  p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  *mapped = bytes;
  *kind = ENGRAM_PAGES_4K;
  return p;
}

static void prefault(void *p, size_t bytes)
{
  for (size_t off = 0; off < bytes; off += page_size())
    ((volatile char *)p)[off] = 0;
}

/* The thread's default arena (engram_arena_thread, below); destroy must know it. */
static __thread engram_arena *thread_arena;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

/* ---- create / destroy ------------------------------------------------------------------ */

engram_arena *engram_arena_create(const engram_arena_config *config)
{
  engram_arena_config def;
  if (!config) {
    if (engram_config_arena_default(&def) != 0)
      return NULL;
    config = &def;
  }
  if (config->size > ENGRAM_ARENA_MAX_SIZE) {
    engram_fail(ENGRAM_EINVAL, "arena: size %zu is out of range (expected 0 to %zu bytes)",
                config->size, ENGRAM_ARENA_MAX_SIZE);
    return NULL;
  }
  if (!engram_align_valid(config->align)) {
    engram_fail(ENGRAM_EINVAL, "arena: bad default alignment %zu (expected a power of two from 1 to %d)",
                config->align, ENGRAM_ARENA_MAX_ALIGN);
    return NULL;
  }
  if ((unsigned)config->overflow > ENGRAM_OVERFLOW_FALLBACK) {
    engram_fail(ENGRAM_EINVAL, "arena: bad overflow strategy %d (expected error, panic or fallback)",
                (int)config->overflow);
    return NULL;
  }

  struct arena_block *b = header_take();
  if (!b) {
    engram_fail(ENGRAM_ENOMEM, "arena: out of system memory (arena header)");
    return NULL;
  }
  memset(&b->slow, 0, sizeof b->slow);

  struct engram_arena_slow *s = &b->slow;
  size_t bytes = round_up(config->size ? config->size : 1, page_size());
  void *map = map_block(bytes, config->huge_pages, &s->map_bytes, &s->page_kind);
  if (!map) {
    engram_fail(ENGRAM_ENOMEM, "arena: cannot map %zu bytes (%s)", bytes, strerror(errno));
    header_give_back(b);
    return NULL;
  }
  if (config->prefault)
    prefault(map, s->map_bytes);
  POISON(map, s->map_bytes);

  s->map = map;
  s->capacity = config->size;
  s->overflow = config->overflow;
  s->owner = pthread_self();
  /* Fallback chunks: an eighth of the arena, between 64 KiB and 16 MiB, so a burst that spills
   * a little takes one or two chunks, not one per allocation. */
  s->chunk_min = config->size / 8;
  if (s->chunk_min < ((size_t)64 << 10))
    s->chunk_min = (size_t)64 << 10;
  if (s->chunk_min > ((size_t)16 << 20))
    s->chunk_min = (size_t)16 << 20;
  s->pub = &b->pub;

  engram_arena *a = &b->pub;
  a->base = (uintptr_t)map;
  a->top = a->base;
  a->limit = a->base + config->size;
  a->align = config->align;
  a->chunk = NULL;
  a->slow_ = s;
  __atomic_store_n(&a->epoch, engram_epoch_next(), __ATOMIC_RELAXED);
  engram_registry_add(s);
  return a;
}

static void free_chunks_until(engram_arena *a, struct engram_chunk *keep)
{
  struct engram_chunk *c = a->chunk;
  while (c && c != keep) {
    struct engram_chunk *prev = c->prev;
    UNPOISON(c, c->bytes);
    free(c);
    c = prev;
  }
  a->chunk = keep;
}

void engram_arena_destroy(engram_arena *a)
{
  if (!a)
    return;
  struct engram_arena_slow *s = a->slow_;
  if (!s->map)
    return;   /* already destroyed, its header not yet reused: a second destroy is ignored */
  if (a == thread_arena) {   /* the thread's default arena: forget it, or thread exit frees it twice */
    thread_arena = NULL;
    pthread_setspecific(thread_key, NULL);
  }
  engram_arena_query(a, NULL);   /* final high-water mark into the retired totals */
  engram_registry_remove(s);
  free_chunks_until(a, NULL);
  UNPOISON(s->map, s->map_bytes);
  munmap(s->map, s->map_bytes);
  s->map = NULL;
  s->scope_depth = 0;
  a->top = a->limit = a->base = 0;
  __atomic_store_n(&a->epoch, engram_epoch_next(), __ATOMIC_RELAXED);
  header_give_back((struct arena_block *)a);
}

void engram_arena_adopt(engram_arena *a)
{
  a->slow_->owner = pthread_self();
}

#if defined(ENGRAM_DEBUG) && ENGRAM_DEBUG
void engram_assert_owner(const struct engram_arena_slow *s, const char *what)
{
  if (!pthread_equal(s->owner, pthread_self())) {
    fprintf(stderr, "engram: arena %s from a thread that does not own the arena\n", what);
    abort();
  }
}
#endif

/* ---- sizes ------------------------------------------------------------------------------ */

size_t engram_arena_used(const engram_arena *a)
{
  const struct engram_chunk *c = a->chunk;
  if (c)
    return c->used_before + (size_t)(a->top - c->start);
  return (size_t)(a->top - a->base);
}

size_t engram_arena_capacity(const engram_arena *a)
{
  return a->slow_->capacity;
}

static void note_high_water(engram_arena *a)
{
  struct engram_arena_slow *s = a->slow_;
  uint64_t used = engram_arena_used(a);
  if (used > STAT_LOAD(s->high_water))
    STAT_STORE(s->high_water, used);
}

/* ---- the slow path ---------------------------------------------------------------------- */

static void *overflow_fail(engram_arena *a, int code, const char *detail)
{
  struct engram_arena_slow *s = a->slow_;
  STAT_ADD(s->overflows, 1);
  if (s->overflow == ENGRAM_OVERFLOW_PANIC) {
    fprintf(stderr, "engram: %s (overflow strategy: panic)\n", detail);
    abort();
  }
  engram_fail(code, "%s", detail);
  return NULL;
}

/* Open a fallback chunk able to hold n bytes at `align` and serve the request from it. */
static void *fallback_alloc(engram_arena *a, size_t n, size_t align, const char *detail)
{
  struct engram_arena_slow *s = a->slow_;
  size_t header = round_up(sizeof(struct engram_chunk), 64);
  size_t want;
  if (__builtin_add_overflow(n, header + align, &want)) {
    engram_fail(ENGRAM_EOVERFLOW, "%s", detail);
    return NULL;
  }
  if (want < s->chunk_min)
    want = s->chunk_min;
  struct engram_chunk *c = malloc(want);
  if (!c) {
    engram_fail(ENGRAM_ENOMEM, "arena: fallback chunk of %zu bytes failed (%s)", want, detail);
    return NULL;
  }
  c->prev = a->chunk;
  c->bytes = want;
  c->start = (uintptr_t)c + header;
  c->end = (uintptr_t)c + want;
  c->prev_top = a->top;
  c->used_before = engram_arena_used(a);
  POISON(c->start, c->end - c->start);

  STAT_ADD(s->overflows, 1);
  STAT_ADD(s->fallback_chunks, 1);
  STAT_ADD(s->fallback_bytes, want);

  a->chunk = c;
  a->top = c->start;
  a->limit = c->end;
  uintptr_t p = (a->top + (align - 1)) & ~(uintptr_t)(align - 1);
  UNPOISON(p, n);
  a->top = p + n;
  return (void *)p;
}

void *engram_arena_alloc_slow(engram_arena *a, size_t n, size_t align)
{
  struct engram_arena_slow *s = a->slow_;
  ENGRAM_ASSERT_OWNER(s, "allocation");

  if (!engram_align_valid(align)) {
    engram_fail(ENGRAM_EINVAL, "arena: bad alignment %zu (expected a power of two from 1 to %d)",
                align, ENGRAM_ARENA_MAX_ALIGN);
    return NULL;
  }
  uintptr_t p = (a->top + (align - 1)) & ~(uintptr_t)(align - 1);
  if (p <= a->limit && n <= a->limit - p) {   /* it fits: only poisoning builds get here */
    UNPOISON(p, n);
    a->top = p + n;
    return (void *)p;
  }

  char detail[200];
  snprintf(detail, sizeof detail,
           "arena: out of memory (requested %zu bytes, align %zu; %zu of %zu bytes used)",
           n, align, engram_arena_used(a), s->capacity);
  if (s->overflow == ENGRAM_OVERFLOW_FALLBACK)
    return fallback_alloc(a, n, align, detail);
  return overflow_fail(a, ENGRAM_EFULL, detail);
}

void *engram_arena_size_overflow_slow(engram_arena *a, size_t count, size_t size)
{
  ENGRAM_ASSERT_OWNER(a->slow_, "allocation");
  char detail[160];
  snprintf(detail, sizeof detail, "arena: size overflow (%zu elements of %zu bytes)", count, size);
  return overflow_fail(a, ENGRAM_EOVERFLOW, detail);
}

/* ---- reset and rewind ------------------------------------------------------------------- */

/* The highest address the primary block has handed out since the last reset. */
static uintptr_t primary_top(const engram_arena *a)
{
  const struct engram_chunk *c = a->chunk;
  if (!c)
    return a->top;
  while (c->prev)
    c = c->prev;
  return c->prev_top;
}

void engram_arena_reset(engram_arena *a)
{
  struct engram_arena_slow *s = a->slow_;
  ENGRAM_ASSERT_OWNER(s, "reset");
  note_high_water(a);
  uintptr_t hi = primary_top(a);
  free_chunks_until(a, NULL);
  POISON(a->base, hi - a->base);
  a->top = a->base;
  a->limit = a->base + s->capacity;
  s->scope_depth = 0;
  a->epoch = engram_epoch_next();
  STAT_ADD(s->resets, 1);
}

int engram_arena_rewind(engram_arena *a, engram_mark m)
{
  struct engram_arena_slow *s = a->slow_;
  ENGRAM_ASSERT_OWNER(s, "rewind");
  if (m.epoch != a->epoch)
    return engram_fail(ENGRAM_ESTALE, "arena: mark from before the last reset (epoch %llu, now %llu)",
                       (unsigned long long)m.epoch, (unsigned long long)a->epoch);

  /* Find the mark's block: the current one or an older chunk (NULL = the primary block). The
   * top the block had when it was left bounds where a valid mark can point. */
  struct engram_chunk *c = a->chunk;
  uintptr_t block_top = a->top;
  while (c != m.chunk) {
    if (!c)
      return engram_fail(ENGRAM_ESTALE, "arena: mark does not belong to this arena's current blocks");
    block_top = c->prev_top;
    c = c->prev;
  }
  uintptr_t start = c ? c->start : a->base;
  if (m.top < start || m.top > block_top)
    return engram_fail(ENGRAM_ESTALE, "arena: mark lies beyond the current top (already rewound past it)");

  note_high_water(a);
  free_chunks_until(a, c);
  POISON(m.top, block_top - m.top);
  a->top = m.top;
  a->limit = c ? c->end : a->base + s->capacity;
  return 0;
}

int engram_arena_scope_enter(engram_arena *a, engram_mark *out)
{
  struct engram_arena_slow *s = a->slow_;
  ENGRAM_ASSERT_OWNER(s, "scope");
  if (s->scope_depth == ENGRAM_ARENA_MAX_SCOPES)
    return engram_fail(ENGRAM_EFULL, "arena: too many nested scopes (at most %d)", ENGRAM_ARENA_MAX_SCOPES);
  *out = engram_arena_mark(a);
  s->scope_epochs[s->scope_depth] = a->epoch;
  s->scope_tops[s->scope_depth] = out->top;
  s->scope_chunks[s->scope_depth] = out->chunk;
  s->scope_depth++;
  a->epoch = engram_epoch_next();
  return 0;
}

int engram_arena_scope_leave(engram_arena *a, engram_mark m)
{
  struct engram_arena_slow *s = a->slow_;
  ENGRAM_ASSERT_OWNER(s, "scope");
  uint32_t i = s->scope_depth;
  while (i > 0 && (s->scope_epochs[i - 1] != m.epoch || s->scope_tops[i - 1] != m.top ||
                   s->scope_chunks[i - 1] != m.chunk))
    i--;
  if (i == 0)
    return engram_fail(ENGRAM_ESTALE, "arena: scope already closed (or its mark is from another arena)");
  uint64_t inner = a->epoch;
  a->epoch = m.epoch;
  int rc = engram_arena_rewind(a, m);
  if (rc != 0) {
    a->epoch = inner;
    return rc;
  }
  s->scope_depth = i - 1;
  return 0;
}

int engram_arena_epoch_live(const engram_arena *a, uint64_t epoch)
{
  if (epoch == __atomic_load_n(&a->epoch, __ATOMIC_RELAXED))
    return 1;
  const struct engram_arena_slow *s = a->slow_;
  for (uint32_t i = 0; i < s->scope_depth; i++)
    if (s->scope_epochs[i] == epoch)
      return 1;
  return 0;
}

int engram_arena_poisoning(void)
{
#if defined(ENGRAM_POISON)
  return 1;
#else
  return 0;
#endif
}

/* ---- queries ---------------------------------------------------------------------------- */

int engram_arena_query(engram_arena *a, engram_arena_info *out)
{
  struct engram_arena_slow *s = a->slow_;
  note_high_water(a);
  if (!out)
    return 0;
  if (out->struct_size != sizeof *out || out->struct_version != ENGRAM_ARENA_INFO_VERSION)
    return engram_fail(ENGRAM_EVERSION, "arena: stats struct mismatch (size %u version %u, expected %zu and %d)",
                       out->struct_size, out->struct_version, sizeof *out, ENGRAM_ARENA_INFO_VERSION);
  out->capacity = s->capacity;
  out->used = engram_arena_used(a);
  out->high_water = STAT_LOAD(s->high_water);
  out->resets = STAT_LOAD(s->resets);
  out->overflows = STAT_LOAD(s->overflows);
  out->fallback_bytes = STAT_LOAD(s->fallback_bytes);
  out->fallback_chunks = STAT_LOAD(s->fallback_chunks);
  out->epoch = a->epoch;
  out->page_kind = (int32_t)s->page_kind;
  out->overflow_strategy = (int32_t)s->overflow;
  return 0;
}

const char *engram_overflow_name(engram_overflow o)
{
  return (unsigned)o <= ENGRAM_OVERFLOW_FALLBACK ? overflow_names[o] : "?";
}

/* ---- the thread's default arena ---------------------------------------------------------- */


/* Runs at thread exit: the arena is destroyed (its counters retire into the process stats). */
static void thread_arena_release(void *p)
{
  thread_arena = NULL;
  engram_arena_destroy(p);
}

static void thread_key_init(void)
{
  pthread_key_create(&thread_key, thread_arena_release);
}

engram_arena *engram_arena_thread(void)
{
  if (ENGRAM_LIKELY(thread_arena != NULL))
    return thread_arena;
  pthread_once(&thread_key_once, thread_key_init);
  engram_arena *a = engram_arena_create(NULL);
  if (!a)
    return NULL;
  if (pthread_setspecific(thread_key, a) != 0) {
    engram_arena_destroy(a);
    engram_fail(ENGRAM_ENOMEM, "arena: cannot register the thread arena");
    return NULL;
  }
  thread_arena = a;
  return a;
}

engram_arena *engram_arena_thread_peek(void)
{
  return thread_arena;
}

void engram_reset_arenas(void)
{
  if (thread_arena)
    engram_arena_reset(thread_arena);
}
