/*
 * pool.c — fixed-size object pools (and vector pools, which are object pools with 64-byte
 * slots), the scoped-arena cache, and the registry the stats report walks.
 *
 * The inline fast paths in engram.h pop and push the free list of a thread-local pool. This
 * file is everything else: the first use of every object (carved from the newest slab), growth
 * (a new mmap'd slab), the memory cap, shared pools (a mutex around the same list) and the
 * checked mode of debug and poisoning builds, where every call comes here so a bitmap per slab
 * can catch double and foreign releases.
 *
 * Stats cost the fast path two owner-only counter bumps (acquisitions, releases), on the cache
 * line the free-list head is on anyway. Everything else is derived: the free list is LIFO and
 * served before fresh memory, so a fresh object is carved only when every carved object is in
 * use; the number carved is therefore exactly the peak number in use, and reuses are
 * acquisitions minus carved.
 */
#include "pool.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Checked pools: every call goes out of line and is verified. On in debug builds, and in
 * poisoning builds, where released objects are poisoned and only this file may touch them. */
#if (defined(ENGRAM_DEBUG) && ENGRAM_DEBUG) || defined(ENGRAM_POISON)
#  define CHECKED 1
#else
#  define CHECKED 0
#endif

#define LINK sizeof(void *)

struct slab {
  char *base;
  size_t map_bytes;
  size_t objects;
  uint64_t *live;            /* checked pools: bit i set while object i is acquired */
};

struct engram_pool_slow {
  char name[ENGRAM_POOL_NAME_MAX + 1];
  size_t object_size, stride, align;
  size_t body;               /* object_size, at least a pointer: the bytes an acquirer owns */
  size_t max_bytes, max_objects; /* max_objects = max_bytes / stride, SIZE_MAX without a cap */
  size_t first_objects;
  double growth;
  unsigned flags;
  uint32_t vector_dim;
  pthread_t owner;
  pthread_mutex_t lock;      /* shared pools */

  void *free;                /* the free list of pools the inline path leaves alone */
  char *fresh, *fresh_end;   /* never-used objects at the end of the newest slab */
  struct slab *slabs;
  size_t nslabs, slabs_cap;

  /* statistics: written by the owner (or under `lock`), read by anyone (STAT_*) */
  uint64_t capacity;
  uint64_t carved;           /* objects ever handed out fresh = the peak in use */
  uint64_t failures;
  uint64_t bytes_reserved;
  uint64_t slab_count;

  struct engram_pool_slow *reg_next, *reg_prev;
  engram_pool *pub;
};

/* The public struct and its slow half in one allocation, each on its own cache line, so
 * counters other threads read never share a line with the head of a busy free list... except
 * the two fast-path counters, which must sit next to it to stay cheap. */
struct pool_block {
  engram_pool pub __attribute__((aligned(64)));
  struct engram_pool_slow slow __attribute__((aligned(64)));
};

struct engram_arena_cache {
  char name[ENGRAM_POOL_NAME_MAX + 1];
  engram_arena_config arena;
  unsigned keep;
  pthread_mutex_t lock;
  engram_arena **kept;       /* ENGRAM_ARENA_CACHE_CLASSES stacks of `keep` arenas */
  unsigned nkept[ENGRAM_ARENA_CACHE_CLASSES];
  uint64_t acquisitions, reuses, created, destroyed, out;
  struct engram_arena_cache *reg_next, *reg_prev;
};

/* ---- registry ---------------------------------------------------------------------------- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct engram_pool_slow *pools_head, *pools_tail;
static struct engram_arena_cache *caches_head, *caches_tail;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* fork() while another thread holds the registry lock would leave it locked in the child. */
static void atfork_prepare(void) { pthread_mutex_lock(&reg_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&reg_lock); }
static void atfork_init(void) { pthread_atfork(atfork_prepare, atfork_release, atfork_release); }

/* Append (so the report lists pools in creation order). */
#define REG_ADD(head, tail, x) do { \
    (x)->reg_next = NULL; (x)->reg_prev = (tail); \
    if (tail) (tail)->reg_next = (x); else (head) = (x); \
    (tail) = (x); } while (0)
#define REG_REMOVE(head, tail, x) do { \
    if ((x)->reg_prev) (x)->reg_prev->reg_next = (x)->reg_next; else (head) = (x)->reg_next; \
    if ((x)->reg_next) (x)->reg_next->reg_prev = (x)->reg_prev; else (tail) = (x)->reg_prev; \
    (x)->reg_next = (x)->reg_prev = NULL; } while (0)

/* ---- helpers ------------------------------------------------------------------------------ */

static size_t page_size(void)
{
  static size_t ps;
  if (!ps)
    ps = (size_t)sysconf(_SC_PAGESIZE);
  return ps;
}

static int copy_name(char *dst, const char *name, const char *fallback, const char *module)
{
  if (!name)
    name = fallback;
  size_t n = strlen(name);
  if (n > ENGRAM_POOL_NAME_MAX)
    return engram_fail(ENGRAM_EINVAL, "%s: name is %zu bytes long (at most %d)", module, n,
                       ENGRAM_POOL_NAME_MAX);
  memcpy(dst, name, n + 1);
  return 0;
}

/* Debug-build misuse: the library's one way of refusing to continue, like the owner check. */
__attribute__((noreturn, format(printf, 2, 3)))
static void pool_abort(const struct engram_pool_slow *s, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "engram: pool '%s': ", s->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

static void lock_or_check_owner(struct engram_pool_slow *s, const char *what)
{
  if (s->flags & ENGRAM_POOL_SHARED)
    pthread_mutex_lock(&s->lock);
  else if (CHECKED && !pthread_equal(s->owner, pthread_self()))
    pool_abort(s, "%s from a thread that does not own the pool (create it with ENGRAM_POOL_SHARED "
               "or call engram_pool_adopt)", what);
}

static void unlock(struct engram_pool_slow *s)
{
  if (s->flags & ENGRAM_POOL_SHARED)
    pthread_mutex_unlock(&s->lock);
}

/* ---- create / destroy -------------------------------------------------------------------- */

engram_pool *engram_pool_create(const engram_pool_config *config)
{
  if (!config) {
    engram_fail(ENGRAM_EINVAL, "pool: config is NULL");
    return NULL;
  }
  size_t align = config->align ? config->align : ENGRAM_POOL_DEFAULT_ALIGN;
  double growth = config->growth != 0 ? config->growth : 2.0;
  if (config->object_size == 0 || config->object_size > ENGRAM_POOL_MAX_OBJECT) {
    engram_fail(ENGRAM_EINVAL, "pool: object size %zu is out of range (expected 1 to %zu bytes)",
                config->object_size, ENGRAM_POOL_MAX_OBJECT);
    return NULL;
  }
  if (!engram_align_valid(align)) {
    engram_fail(ENGRAM_EINVAL, "pool: bad alignment %zu (expected a power of two from 1 to %d)",
                config->align, ENGRAM_ARENA_MAX_ALIGN);
    return NULL;
  }
  if (!(growth >= 1.125 && growth <= 16)) {   /* written so that NaN fails too */
    engram_fail(ENGRAM_EINVAL, "pool: growth factor %g is out of range (expected 1.125 to 16)", growth);
    return NULL;
  }
  if (config->flags & ~(ENGRAM_POOL_SHARED | ENGRAM_POOL_ZERO)) {
    engram_fail(ENGRAM_EINVAL, "pool: unknown flags 0x%x", config->flags);
    return NULL;
  }

  /* The free-list link lives in the object, so an object is at least a pointer. */
  size_t body = config->object_size < LINK ? LINK : config->object_size;
  size_t stride = (body + align - 1) & ~(align - 1);
  size_t max_objects = config->max_bytes ? config->max_bytes / stride : SIZE_MAX;
  if (max_objects == 0) {
    engram_fail(ENGRAM_EINVAL, "pool: memory cap of %zu bytes is below one object (stride %zu bytes)",
                config->max_bytes, stride);
    return NULL;
  }

  struct pool_block *b;
  if (posix_memalign((void **)&b, 64, sizeof *b) != 0) {
    engram_fail(ENGRAM_ENOMEM, "pool: out of system memory (pool header)");
    return NULL;
  }
  memset(b, 0, sizeof *b);
  struct engram_pool_slow *s = &b->slow;
  if (copy_name(s->name, config->name, "pool", "pool") != 0) {
    free(b);
    return NULL;
  }
  s->object_size = config->object_size;
  s->body = body;
  s->stride = stride;
  s->align = align;
  s->max_bytes = config->max_bytes;
  s->max_objects = max_objects;
  s->first_objects = config->initial_objects;
  s->growth = growth;
  s->flags = config->flags;
  s->owner = pthread_self();
  pthread_mutex_init(&s->lock, NULL);
  s->pub = &b->pub;

  engram_pool *p = &b->pub;
  p->free = NULL;
  p->inline_ok = !CHECKED && !(config->flags & (ENGRAM_POOL_SHARED | ENGRAM_POOL_ZERO));
  p->flags = config->flags;
  p->object_size = config->object_size;
  p->slow_ = s;

  pthread_once(&atfork_once, atfork_init);
  pthread_mutex_lock(&reg_lock);
  REG_ADD(pools_head, pools_tail, s);
  pthread_mutex_unlock(&reg_lock);
  return p;
}

engram_pool *engram_pool_create_vectors(const char *name, size_t dim, size_t max_bytes, unsigned flags)
{
  size_t bytes;
  if (dim == 0 || dim > UINT32_MAX || __builtin_mul_overflow(dim, sizeof(float), &bytes)) {
    engram_fail(ENGRAM_EINVAL, "pool: vector dimension %zu is out of range (expected 1 to %u)",
                dim, UINT32_MAX);
    return NULL;
  }
  engram_pool_config c = {
    .name = name ? name : "vectors",
    .object_size = bytes,
    .align = ENGRAM_POOL_VECTOR_ALIGN,
    .max_bytes = max_bytes,
    .flags = flags,
  };
  engram_pool *p = engram_pool_create(&c);
  if (p)
    p->slow_->vector_dim = (uint32_t)dim;
  return p;
}

void engram_pool_destroy(engram_pool *p)
{
  if (!p)
    return;
  struct engram_pool_slow *s = p->slow_;
  if (CHECKED && !(s->flags & ENGRAM_POOL_SHARED) && !pthread_equal(s->owner, pthread_self()))
    pool_abort(s, "destroy from a thread that does not own the pool");
  pthread_mutex_lock(&reg_lock);
  REG_REMOVE(pools_head, pools_tail, s);
  pthread_mutex_unlock(&reg_lock);
  for (size_t i = 0; i < s->nslabs; i++) {
    UNPOISON(s->slabs[i].base, s->slabs[i].map_bytes);
    munmap(s->slabs[i].base, s->slabs[i].map_bytes);
    free(s->slabs[i].live);
  }
  free(s->slabs);
  pthread_mutex_destroy(&s->lock);
  free((struct pool_block *)p);
}

void engram_pool_adopt(engram_pool *p)
{
  p->slow_->owner = pthread_self();
}

/* ---- growth ------------------------------------------------------------------------------ */

static int full(struct engram_pool_slow *s)
{
  char cap[32];
  engram_format_size(cap, sizeof cap, s->max_bytes);
  return engram_fail(ENGRAM_EFULL, "pool: memory cap of %s reached ('%s': %llu objects of %zu bytes in use)",
                     cap, s->name, (unsigned long long)STAT_LOAD(s->capacity), s->stride);
}

/* Map the next slab: `growth` times the capacity so far (the first one initial_objects, or a
 * page), rounded up to whole pages, and cut down to what the cap still allows so the cap is
 * exact. Makes it the source of fresh objects. */
static int grow(struct engram_pool_slow *s)
{
  size_t cap = (size_t)STAT_LOAD(s->capacity);
  size_t room = s->max_objects - cap;
  if (room == 0)
    return full(s);

  size_t want;
  if (cap == 0) {
    want = s->first_objects ? s->first_objects : 1;
  } else {
    double more = ceil((double)cap * (s->growth - 1.0));
    want = more >= (double)room ? room : (size_t)more;
  }
  if (want > room)
    want = room;
  if (want == 0)
    want = 1;

  size_t bytes, ps = page_size();
  if (__builtin_mul_overflow(want, s->stride, &bytes) || bytes > SIZE_MAX - ps)
    return engram_fail(ENGRAM_EOVERFLOW, "pool: '%s' slab size overflow (%zu objects of %zu bytes)",
                       s->name, want, s->stride);
  size_t map_bytes = (bytes + ps - 1) & ~(ps - 1);
  size_t objects = map_bytes / s->stride;   /* the page rounding's tail holds objects too */
  if (objects > room)
    objects = room;

  if (s->nslabs == s->slabs_cap) {
    size_t n = s->slabs_cap ? s->slabs_cap * 2 : 8;
    struct slab *v = realloc(s->slabs, n * sizeof *v);
    if (!v)
      return engram_fail(ENGRAM_ENOMEM, "pool: out of system memory (slab table of '%s')", s->name);
    s->slabs = v;
    s->slabs_cap = n;
  }
  uint64_t *live = NULL;
  if (CHECKED && !(live = calloc((objects + 63) / 64, sizeof *live)))
    return engram_fail(ENGRAM_ENOMEM, "pool: out of system memory (debug bitmap of '%s')", s->name);
  char *base = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    free(live);
    return engram_fail(ENGRAM_ENOMEM, "pool: cannot map a slab of %zu bytes for '%s' (%s)", map_bytes,
                       s->name, strerror(errno));
  }
  POISON(base, map_bytes);
  s->slabs[s->nslabs++] = (struct slab){ base, map_bytes, objects, live };
  s->fresh = base;
  s->fresh_end = base + objects * s->stride;
  STAT_STORE(s->capacity, cap + objects);
  STAT_ADD(s->bytes_reserved, map_bytes);
  STAT_ADD(s->slab_count, 1);
  return 0;
}

/* ---- checked mode ------------------------------------------------------------------------ */

/* The slab and index of an object, or abort naming what is wrong with the pointer. */
static void locate(const struct engram_pool_slow *s, const void *o, size_t *slab, size_t *index)
{
  const char *c = o;
  for (size_t i = 0; i < s->nslabs; i++) {
    const struct slab *sl = &s->slabs[i];
    if (c < sl->base || c >= sl->base + sl->objects * s->stride)
      continue;
    size_t off = (size_t)(c - sl->base);
    if (off % s->stride != 0)
      pool_abort(s, "release of %p, which points inside object %zu of slab %zu, not at its start",
                 o, off / s->stride, i);
    if (i + 1 == s->nslabs && c >= s->fresh)
      pool_abort(s, "release of %p, which this pool never handed out", o);
    *slab = i;
    *index = off / s->stride;
    return;
  }
  pool_abort(s, "release of %p, which is not from this pool", o);
}

static void mark_acquired(struct engram_pool_slow *s, void *o)
{
  size_t i, k;
  locate(s, o, &i, &k);
  s->slabs[i].live[k / 64] |= (uint64_t)1 << (k % 64);
}

static void mark_released(struct engram_pool_slow *s, void *o)
{
  size_t i, k;
  locate(s, o, &i, &k);
  uint64_t bit = (uint64_t)1 << (k % 64);
  if (!(s->slabs[i].live[k / 64] & bit))
    pool_abort(s, "double release of %p (object %zu of slab %zu)", o, k, i);
  s->slabs[i].live[k / 64] &= ~bit;
}

/* ---- acquire / release ------------------------------------------------------------------- */

void *engram_pool_acquire_slow(engram_pool *p)
{
  struct engram_pool_slow *s = p->slow_;
  lock_or_check_owner(s, "acquire");
  void **head = p->inline_ok ? &p->free : &s->free;
  void *o = *head;
  int reused = o != NULL;
  if (reused) {
    UNPOISON(o, LINK);
    *head = *(void **)o;
    UNPOISON(o, s->body);
  } else {
    if (s->fresh == s->fresh_end && grow(s) != 0) {
      STAT_ADD(s->failures, 1);
      unlock(s);
      return NULL;
    }
    o = s->fresh;
    s->fresh += s->stride;
    UNPOISON(o, s->body);
    STAT_ADD(s->carved, 1);
  }
  if (CHECKED)
    mark_acquired(s, o);
  engram_pool_count_(&p->acquisitions);
  unlock(s);
  /* Fresh objects come from never-written anonymous pages: already zero. */
  if (reused && (s->flags & ENGRAM_POOL_ZERO))
    memset(o, 0, s->object_size);
  return o;
}

void engram_pool_release_slow(engram_pool *p, void *o)
{
  if (!o)
    return;
  struct engram_pool_slow *s = p->slow_;
  lock_or_check_owner(s, "release");
  if (CHECKED)
    mark_released(s, o);
  void **head = p->inline_ok ? &p->free : &s->free;
  *(void **)o = *head;
  *head = o;
  POISON((char *)o + LINK, s->stride - LINK);
  POISON(o, LINK);
  engram_pool_count_(&p->releases);
  unlock(s);
}

/* ---- stats ------------------------------------------------------------------------------- */

static void pool_info(const struct engram_pool_slow *s, engram_pool_info *out)
{
  const engram_pool *p = s->pub;
  memcpy(out->name, s->name, sizeof out->name);
  out->flags = s->flags;
  out->vector_dim = s->vector_dim;
  out->object_size = s->object_size;
  out->stride = s->stride;
  out->align = s->align;
  out->max_bytes = s->max_bytes;
  /* Read order keeps the derived values non-negative while the owner keeps running:
   * carved before acquisitions (carved <= acquisitions at every instant), releases before
   * acquisitions (releases <= acquisitions). */
  uint64_t carved = STAT_LOAD(s->carved);
  uint64_t rel = __atomic_load_n(&p->releases, __ATOMIC_RELAXED);
  uint64_t acq = __atomic_load_n(&p->acquisitions, __ATOMIC_RELAXED);
  out->capacity = STAT_LOAD(s->capacity);
  out->acquisitions = acq;
  out->releases = rel;
  out->peak = carved;
  out->in_use = acq - rel > carved ? carved : acq - rel;
  out->reuses = acq > carved ? acq - carved : 0;
  out->reuse_rate = acq ? (double)out->reuses / (double)acq : 0.0;
  out->failures = STAT_LOAD(s->failures);
  out->bytes_reserved = STAT_LOAD(s->bytes_reserved);
  out->slabs = STAT_LOAD(s->slab_count);
}

static int check_struct(uint32_t size, uint32_t version, size_t want_size, uint32_t want_version,
                        const char *what)
{
  if (size != want_size || version != want_version)
    return engram_fail(ENGRAM_EVERSION, "pool: %s struct mismatch (size %u version %u, expected %zu and %u)",
                       what, size, version, want_size, want_version);
  return 0;
}

int engram_pool_query(engram_pool *p, engram_pool_info *out)
{
  if (!p || !out)
    return engram_fail(ENGRAM_EINVAL, "pool: query of a NULL pool or into a NULL struct");
  int rc = check_struct(out->struct_size, out->struct_version, sizeof *out, ENGRAM_POOL_INFO_VERSION,
                        "stats");
  if (rc)
    return rc;
  pool_info(p->slow_, out);
  return 0;
}

void engram_pool_each(void (*fn)(const engram_pool_info *info, void *arg), void *arg)
{
  engram_pool_info info;
  pthread_mutex_lock(&reg_lock);
  for (struct engram_pool_slow *s = pools_head; s; s = s->reg_next) {
    ENGRAM_STRUCT_INIT(info, ENGRAM_POOL_INFO_VERSION);
    pool_info(s, &info);
    fn(&info, arg);
  }
  pthread_mutex_unlock(&reg_lock);
}

/* ---- scoped arenas ----------------------------------------------------------------------- */

engram_arena_cache *engram_arena_cache_create(const engram_arena_cache_config *config)
{
  engram_arena_cache_config def = { 0 };
  if (!config) {
    def.huge_pages = ENGRAM_HUGE_AUTO;
    config = &def;
  }
  size_t align = config->align ? config->align : ENGRAM_ARENA_DEFAULT_ALIGN;
  if (!engram_align_valid(align)) {
    engram_fail(ENGRAM_EINVAL, "arena cache: bad alignment %zu (expected a power of two from 1 to %d)",
                config->align, ENGRAM_ARENA_MAX_ALIGN);
    return NULL;
  }
  if ((unsigned)config->overflow > ENGRAM_OVERFLOW_FALLBACK) {
    engram_fail(ENGRAM_EINVAL, "arena cache: bad overflow strategy %d (expected error, panic or fallback)",
                (int)config->overflow);
    return NULL;
  }
  unsigned keep = config->keep_per_class ? config->keep_per_class : ENGRAM_ARENA_CACHE_DEFAULT_KEEP;
  if (keep > 1024) {
    engram_fail(ENGRAM_EINVAL, "arena cache: keep_per_class %u is out of range (expected 1 to 1024)", keep);
    return NULL;
  }
  engram_arena_cache *c = calloc(1, sizeof *c);
  if (!c || !(c->kept = calloc((size_t)ENGRAM_ARENA_CACHE_CLASSES * keep, sizeof *c->kept))) {
    free(c);
    engram_fail(ENGRAM_ENOMEM, "arena cache: out of system memory");
    return NULL;
  }
  if (copy_name(c->name, config->name, "arenas", "arena cache") != 0) {
    free(c->kept);
    free(c);
    return NULL;
  }
  c->keep = keep;
  c->arena.align = align;
  c->arena.overflow = config->overflow;
  c->arena.huge_pages = config->huge_pages;
  c->arena.prefault = config->prefault;
  pthread_mutex_init(&c->lock, NULL);

  pthread_once(&atfork_once, atfork_init);
  pthread_mutex_lock(&reg_lock);
  REG_ADD(caches_head, caches_tail, c);
  pthread_mutex_unlock(&reg_lock);
  return c;
}

void engram_arena_cache_destroy(engram_arena_cache *c)
{
  if (!c)
    return;
  pthread_mutex_lock(&reg_lock);
  REG_REMOVE(caches_head, caches_tail, c);
  pthread_mutex_unlock(&reg_lock);
  for (unsigned k = 0; k < ENGRAM_ARENA_CACHE_CLASSES; k++)
    for (unsigned i = 0; i < c->nkept[k]; i++)
      engram_arena_destroy(c->kept[(size_t)k * c->keep + i]);
  pthread_mutex_destroy(&c->lock);
  free(c->kept);
  free(c);
}

engram_arena *engram_arena_cache_acquire(engram_arena_cache *c, size_t min_bytes)
{
  unsigned k = 0;
  while (k < ENGRAM_ARENA_CACHE_CLASSES && (ENGRAM_ARENA_CACHE_MIN_CLASS << k) < min_bytes)
    k++;
  if (k == ENGRAM_ARENA_CACHE_CLASSES) {
    engram_fail(ENGRAM_EINVAL, "arena cache: %zu bytes is above the largest size class (%zu bytes)",
                min_bytes, ENGRAM_ARENA_CACHE_MIN_CLASS << (ENGRAM_ARENA_CACHE_CLASSES - 1));
    return NULL;
  }

  engram_arena *a = NULL;
  pthread_mutex_lock(&c->lock);
  if (c->nkept[k] > 0) {
    a = c->kept[(size_t)k * c->keep + --c->nkept[k]];
    STAT_ADD(c->reuses, 1);
    STAT_ADD(c->acquisitions, 1);
    STAT_ADD(c->out, 1);
  }
  pthread_mutex_unlock(&c->lock);
  if (a) {
    engram_arena_adopt(a);
    return a;
  }

  /* Creating maps memory: outside the lock, so other threads' acquire/release do not wait. */
  engram_arena_config cfg = c->arena;
  cfg.size = ENGRAM_ARENA_CACHE_MIN_CLASS << k;
  a = engram_arena_create(&cfg);
  if (!a)
    return NULL;
  pthread_mutex_lock(&c->lock);
  STAT_ADD(c->created, 1);
  STAT_ADD(c->acquisitions, 1);
  STAT_ADD(c->out, 1);
  pthread_mutex_unlock(&c->lock);
  return a;
}

int engram_arena_cache_release(engram_arena_cache *c, engram_arena *a)
{
  if (!a)
    return engram_fail(ENGRAM_EINVAL, "arena cache: release of a NULL arena");
  size_t cap = engram_arena_capacity(a);
  unsigned k = 0;
  while (k < ENGRAM_ARENA_CACHE_CLASSES && (ENGRAM_ARENA_CACHE_MIN_CLASS << k) != cap)
    k++;
  if (k == ENGRAM_ARENA_CACHE_CLASSES)
    return engram_fail(ENGRAM_EINVAL, "arena cache: '%s' did not hand out this arena (capacity %zu is not "
                       "a size class)", c->name, cap);

  pthread_mutex_lock(&c->lock);
  if (STAT_LOAD(c->out) == 0) {
    pthread_mutex_unlock(&c->lock);
    return engram_fail(ENGRAM_EINVAL, "arena cache: '%s' did not hand out this arena (none is out)", c->name);
  }
  STAT_STORE(c->out, STAT_LOAD(c->out) - 1);
  int keep = c->nkept[k] < c->keep;
  if (!keep)
    STAT_ADD(c->destroyed, 1);
  pthread_mutex_unlock(&c->lock);

  /* Reset by the releasing thread, which owns the arena, before anyone else can take it. */
  if (!keep) {
    engram_arena_destroy(a);
    return 0;
  }
  engram_arena_reset(a);
  pthread_mutex_lock(&c->lock);
  if (c->nkept[k] < c->keep) {
    c->kept[(size_t)k * c->keep + c->nkept[k]++] = a;
    a = NULL;
  } else {
    STAT_ADD(c->destroyed, 1);  /* another release filled the class meanwhile */
  }
  pthread_mutex_unlock(&c->lock);
  if (a)
    engram_arena_destroy(a);
  return 0;
}

static void cache_info(engram_arena_cache *c, engram_arena_cache_info *out)
{
  memcpy(out->name, c->name, sizeof out->name);
  out->keep_per_class = c->keep;
  pthread_mutex_lock(&c->lock);
  out->acquisitions = c->acquisitions;
  out->reuses = c->reuses;
  out->created = c->created;
  out->destroyed = c->destroyed;
  out->out = c->out;
  out->kept = 0;
  out->kept_bytes = 0;
  for (unsigned k = 0; k < ENGRAM_ARENA_CACHE_CLASSES; k++) {
    out->kept_per_class[k] = c->nkept[k];
    out->kept += c->nkept[k];
    out->kept_bytes += (uint64_t)c->nkept[k] * (ENGRAM_ARENA_CACHE_MIN_CLASS << k);
  }
  pthread_mutex_unlock(&c->lock);
}

int engram_arena_cache_query(engram_arena_cache *c, engram_arena_cache_info *out)
{
  if (!c || !out)
    return engram_fail(ENGRAM_EINVAL, "arena cache: query of a NULL cache or into a NULL struct");
  int rc = check_struct(out->struct_size, out->struct_version, sizeof *out,
                        ENGRAM_ARENA_CACHE_INFO_VERSION, "arena cache stats");
  if (rc)
    return rc;
  cache_info(c, out);
  return 0;
}

void engram_arena_cache_each(void (*fn)(const engram_arena_cache_info *info, void *arg), void *arg)
{
  engram_arena_cache_info info;
  pthread_mutex_lock(&reg_lock);
  for (struct engram_arena_cache *c = caches_head; c; c = c->reg_next) {
    ENGRAM_STRUCT_INIT(info, ENGRAM_ARENA_CACHE_INFO_VERSION);
    cache_info(c, &info);
    fn(&info, arg);
  }
  pthread_mutex_unlock(&reg_lock);
}
