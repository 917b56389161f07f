/*
 * stats.c — the registry of live arenas and the process-wide snapshot.
 *
 * The registry lock is taken when an arena is created or destroyed and by the snapshot; no
 * allocation, reset or rewind ever takes it. Counters of a live arena are read with relaxed
 * atomics (their owner writes them on slow paths only). A destroyed arena, including a thread's
 * default arena released at thread exit, folds its counters into the retired totals.
 *
 * fork(): the child inherits the registry with arenas of threads that no longer exist in it.
 * The child's atfork handler retires them (their memory stays mapped, unreachable, by design:
 * freeing memory another thread's code may have been using mid-call is never safe).
 */
#include "arena.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct engram_arena_slow *reg_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static struct {
  uint64_t arenas, resets, overflows, fallback_bytes, fallback_chunks, high_water_max;
} retired;

static void retire_locked(struct engram_arena_slow *s)
{
  retired.arenas++;
  retired.resets += STAT_LOAD(s->resets);
  retired.overflows += STAT_LOAD(s->overflows);
  retired.fallback_bytes += STAT_LOAD(s->fallback_bytes);
  retired.fallback_chunks += STAT_LOAD(s->fallback_chunks);
  uint64_t hw = STAT_LOAD(s->high_water);
  if (hw > retired.high_water_max)
    retired.high_water_max = hw;
}

static void unlink_locked(struct engram_arena_slow *s)
{
  if (s->reg_prev)
    s->reg_prev->reg_next = s->reg_next;
  else
    reg_head = s->reg_next;
  if (s->reg_next)
    s->reg_next->reg_prev = s->reg_prev;
  s->reg_next = s->reg_prev = NULL;
}

static void atfork_prepare(void) { pthread_mutex_lock(&reg_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&reg_lock); }

static void atfork_child(void)
{
  pthread_t self = pthread_self();
  struct engram_arena_slow *s = reg_head, *next;
  for (; s; s = next) {
    next = s->reg_next;
    if (!pthread_equal(s->owner, self)) {
      retire_locked(s);
      unlink_locked(s);
    }
  }
  pthread_mutex_unlock(&reg_lock);
}

static void atfork_init(void)
{
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void engram_registry_add(struct engram_arena_slow *s)
{
  pthread_once(&atfork_once, atfork_init);
  pthread_mutex_lock(&reg_lock);
  s->reg_prev = NULL;
  s->reg_next = reg_head;
  if (reg_head)
    reg_head->reg_prev = s;
  reg_head = s;
  pthread_mutex_unlock(&reg_lock);
}

void engram_registry_remove(struct engram_arena_slow *s)
{
  pthread_mutex_lock(&reg_lock);
  retire_locked(s);
  unlink_locked(s);
  pthread_mutex_unlock(&reg_lock);
}

int engram_stats_snapshot(engram_stats *out)
{
  if (!out || out->struct_size != sizeof *out || out->struct_version != ENGRAM_STATS_VERSION)
    return engram_fail(ENGRAM_EVERSION, "stats: snapshot struct mismatch (expected size %zu version %d)",
                       sizeof *out, ENGRAM_STATS_VERSION);
  uint32_t size = out->struct_size, version = out->struct_version;
  memset(out, 0, sizeof *out);
  out->struct_size = size;
  out->struct_version = version;

  pthread_mutex_lock(&reg_lock);
  for (struct engram_arena_slow *s = reg_head; s; s = s->reg_next) {
    uint64_t hw = STAT_LOAD(s->high_water);
    out->arenas_live++;
    out->capacity += s->capacity;
    out->high_water_sum += hw;
    if (hw > out->high_water_max)
      out->high_water_max = hw;
    out->resets += STAT_LOAD(s->resets);
    out->overflows += STAT_LOAD(s->overflows);
    out->fallback_bytes += STAT_LOAD(s->fallback_bytes);
    out->fallback_chunks += STAT_LOAD(s->fallback_chunks);
    switch (s->page_kind) {
    case ENGRAM_PAGES_HUGETLB: out->pages_hugetlb++; break;
    case ENGRAM_PAGES_THP: out->pages_thp++; break;
    default: out->pages_4k++; break;
    }
  }
  out->arenas_retired = retired.arenas;
  out->resets += retired.resets;
  out->overflows += retired.overflows;
  out->fallback_bytes += retired.fallback_bytes;
  out->fallback_chunks += retired.fallback_chunks;
  if (retired.high_water_max > out->high_water_max)
    out->high_water_max = retired.high_water_max;
  pthread_mutex_unlock(&reg_lock);
  return 0;
}

void engram_arena_stats(size_t *resets, size_t *overflows, size_t *max_high_water)
{
  engram_stats st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_STATS_VERSION);
  engram_stats_snapshot(&st);
  if (resets)
    *resets = st.resets;
  if (overflows)
    *overflows = st.overflows;
  if (max_high_water)
    *max_high_water = st.high_water_max;
}
