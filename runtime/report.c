/*
 * report.c — the stats report: one JSON document with the process arena snapshot, the calling
 * thread's arena, every pool and every arena cache (engram_stats_json).
 *
 * The document is built in a growing malloc'd buffer; the pool registry lock is held only
 * while the pools are listed, never across a call into another module.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>

struct buf {
  char *p;
  size_t len, cap;
  int oom;
};

static void reserve(struct buf *b, size_t more)
{
  if (b->oom || b->len + more < b->cap)
    return;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap <= b->len + more)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return;
  }
  b->p = p;
  b->cap = cap;
}

static void put(struct buf *b, const char *s, size_t n)
{
  reserve(b, n);
  if (b->oom)
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void puts_(struct buf *b, const char *s)
{
  put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void putf(struct buf *b, const char *fmt, ...)
{
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid UTF-8 (bad lead
 * byte, missing continuation, overlong form, surrogate, above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
  unsigned c = s[0];
  size_t n;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (n > avail)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* A JSON string: quotes, backslashes and control characters escaped; valid UTF-8 kept as is,
 * invalid bytes replaced by U+FFFD so the document is always valid UTF-8. */
static void put_string(struct buf *b, const char *s)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  puts_(b, "\"");
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    switch (c) {
    case '"':  puts_(b, "\\\""); i++; continue;
    case '\\': puts_(b, "\\\\"); i++; continue;
    case '\n': puts_(b, "\\n"); i++; continue;
    case '\r': puts_(b, "\\r"); i++; continue;
    case '\t': puts_(b, "\\t"); i++; continue;
    case '\b': puts_(b, "\\b"); i++; continue;
    case '\f': puts_(b, "\\f"); i++; continue;
    default: break;
    }
    if (c < 0x20) {
      putf(b, "\\u%04x", c);
      i++;
      continue;
    }
    size_t k = utf8_len(u + i, n - i);
    if (k == 0) {
      puts_(b, "\\ufffd");
      i++;
    } else {
      put(b, s + i, k);
      i += k;
    }
  }
  puts_(b, "\"");
}

static void put_u64(struct buf *b, const char *key, uint64_t v, int last)
{
  putf(b, "\"%s\": %llu%s", key, (unsigned long long)v, last ? "" : ", ");
}

static const char *page_kind_name(int32_t k)
{
  switch (k) {
  case ENGRAM_PAGES_THP: return "thp";
  case ENGRAM_PAGES_HUGETLB: return "hugetlb";
  default: return "4k";
  }
}

static void put_process(struct buf *b)
{
  engram_stats st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_STATS_VERSION);
  puts_(b, "\"process\": ");
  if (engram_stats_snapshot(&st) != 0) {
    puts_(b, "null");
    return;
  }
  puts_(b, "{");
  put_u64(b, "arenas_live", st.arenas_live, 0);
  put_u64(b, "arenas_retired", st.arenas_retired, 0);
  put_u64(b, "capacity", st.capacity, 0);
  put_u64(b, "high_water_max", st.high_water_max, 0);
  put_u64(b, "high_water_sum", st.high_water_sum, 0);
  put_u64(b, "resets", st.resets, 0);
  put_u64(b, "overflows", st.overflows, 0);
  put_u64(b, "fallback_bytes", st.fallback_bytes, 0);
  put_u64(b, "fallback_chunks", st.fallback_chunks, 0);
  put_u64(b, "pages_4k", st.pages_4k, 0);
  put_u64(b, "pages_thp", st.pages_thp, 0);
  put_u64(b, "pages_hugetlb", st.pages_hugetlb, 1);
  puts_(b, "}");
}

static void put_thread_arena(struct buf *b)
{
  engram_arena *a = engram_arena_thread_peek();   /* never creates one as a side effect */
  engram_arena_info in;
  ENGRAM_STRUCT_INIT(in, ENGRAM_ARENA_INFO_VERSION);
  puts_(b, "\"thread_arena\": ");
  if (!a || engram_arena_query(a, &in) != 0) {
    puts_(b, "null");
    return;
  }
  puts_(b, "{");
  put_u64(b, "capacity", in.capacity, 0);
  put_u64(b, "used", in.used, 0);
  put_u64(b, "high_water", in.high_water, 0);
  put_u64(b, "resets", in.resets, 0);
  put_u64(b, "overflows", in.overflows, 0);
  put_u64(b, "fallback_bytes", in.fallback_bytes, 0);
  put_u64(b, "fallback_chunks", in.fallback_chunks, 0);
  put_u64(b, "epoch", in.epoch, 0);
  putf(b, "\"page_kind\": \"%s\", ", page_kind_name(in.page_kind));
  putf(b, "\"overflow\": \"%s\"}", engram_overflow_name((engram_overflow)in.overflow_strategy));
}

struct list {
  struct buf *b;
  int n;
};

static void put_pool(const engram_pool_info *in, void *arg)
{
  struct list *l = arg;
  struct buf *b = l->b;
  puts_(b, l->n++ ? ",\n    {" : "\n    {");
  puts_(b, "\"name\": ");
  put_string(b, in->name);
  putf(b, ", \"shared\": %s, \"zero\": %s, ", in->flags & ENGRAM_POOL_SHARED ? "true" : "false",
       in->flags & ENGRAM_POOL_ZERO ? "true" : "false");
  put_u64(b, "vector_dim", in->vector_dim, 0);
  put_u64(b, "object_size", in->object_size, 0);
  put_u64(b, "stride", in->stride, 0);
  put_u64(b, "align", in->align, 0);
  put_u64(b, "capacity", in->capacity, 0);
  put_u64(b, "in_use", in->in_use, 0);
  put_u64(b, "peak", in->peak, 0);
  put_u64(b, "acquisitions", in->acquisitions, 0);
  put_u64(b, "releases", in->releases, 0);
  put_u64(b, "reuses", in->reuses, 0);
  put_u64(b, "failures", in->failures, 0);
  putf(b, "\"reuse_rate\": %.6f, ", in->reuse_rate);
  put_u64(b, "bytes_reserved", in->bytes_reserved, 0);
  put_u64(b, "max_bytes", in->max_bytes, 0);
  put_u64(b, "slabs", in->slabs, 1);
  puts_(b, "}");
}

static void put_cache(const engram_arena_cache_info *in, void *arg)
{
  struct list *l = arg;
  struct buf *b = l->b;
  puts_(b, l->n++ ? ",\n    {" : "\n    {");
  puts_(b, "\"name\": ");
  put_string(b, in->name);
  puts_(b, ", ");
  put_u64(b, "keep_per_class", in->keep_per_class, 0);
  put_u64(b, "acquisitions", in->acquisitions, 0);
  put_u64(b, "reuses", in->reuses, 0);
  put_u64(b, "created", in->created, 0);
  put_u64(b, "destroyed", in->destroyed, 0);
  put_u64(b, "out", in->out, 0);
  put_u64(b, "kept", in->kept, 0);
  put_u64(b, "kept_bytes", in->kept_bytes, 0);
  puts_(b, "\"kept_per_class\": {");
  int first = 1;
  for (unsigned k = 0; k < ENGRAM_ARENA_CACHE_CLASSES; k++) {
    if (!in->kept_per_class[k])
      continue;
    putf(b, "%s\"%zu\": %llu", first ? "" : ", ", ENGRAM_ARENA_CACHE_MIN_CLASS << k,
         (unsigned long long)in->kept_per_class[k]);
    first = 0;
  }
  puts_(b, "}}");
}

char *engram_stats_json(void)
{
  struct buf b = { 0 };
  struct list l = { &b, 0 };
  puts_(&b, "{\n  \"version\": \"" ENGRAM_VERSION_STRING "\",\n  ");
  put_process(&b);
  puts_(&b, ",\n  ");
  put_thread_arena(&b);
  puts_(&b, ",\n  \"pools\": [");
  engram_pool_each(put_pool, &l);
  puts_(&b, l.n ? "\n  ],\n  \"arena_caches\": [" : "],\n  \"arena_caches\": [");
  l.n = 0;
  engram_arena_cache_each(put_cache, &l);
  puts_(&b, l.n ? "\n  ]\n}\n" : "]\n}\n");
  if (b.oom) {
    free(b.p);
    engram_fail(ENGRAM_ENOMEM, "stats: out of system memory (json report)");
    return NULL;
  }
  return b.p;
}

void engram_free(void *p)
{
  free(p);
}
