/*
 * report.c — the stats report: one JSON document with the process arena snapshot, the calling
 * thread's arena, every pool and every arena cache (engram_stats_json).
 *
 * The document is built in a growing malloc'd buffer; the pool registry lock is held only
 * while the pools are listed, never across a call into another module.
 */
#include "pool.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>

static void put_u64(struct engram_text *b, const char *key, uint64_t v, int last)
{
  engram_text_printf(b, "\"%s\": %llu%s", key, (unsigned long long)v, last ? "" : ", ");
}

static const char *page_kind_name(int32_t k)
{
  switch (k) {
  case ENGRAM_PAGES_THP: return "thp";
  case ENGRAM_PAGES_HUGETLB: return "hugetlb";
  default: return "4k";
  }
}

static void put_process(struct engram_text *b)
{
  engram_stats st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_STATS_VERSION);
  engram_text_puts(b, "\"process\": ");
  if (engram_stats_snapshot(&st) != 0) {
    engram_text_puts(b, "null");
    return;
  }
  engram_text_puts(b, "{");
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
  engram_text_puts(b, "}");
}

static void put_thread_arena(struct engram_text *b)
{
  engram_arena *a = engram_arena_thread_peek();   /* never creates one as a side effect */
  engram_arena_info in;
  ENGRAM_STRUCT_INIT(in, ENGRAM_ARENA_INFO_VERSION);
  engram_text_puts(b, "\"thread_arena\": ");
  if (!a || engram_arena_query(a, &in) != 0) {
    engram_text_puts(b, "null");
    return;
  }
  engram_text_puts(b, "{");
  put_u64(b, "capacity", in.capacity, 0);
  put_u64(b, "used", in.used, 0);
  put_u64(b, "high_water", in.high_water, 0);
  put_u64(b, "resets", in.resets, 0);
  put_u64(b, "overflows", in.overflows, 0);
  put_u64(b, "fallback_bytes", in.fallback_bytes, 0);
  put_u64(b, "fallback_chunks", in.fallback_chunks, 0);
  put_u64(b, "epoch", in.epoch, 0);
  engram_text_printf(b, "\"page_kind\": \"%s\", ", page_kind_name(in.page_kind));
  engram_text_printf(b, "\"overflow\": \"%s\"}", engram_overflow_name((engram_overflow)in.overflow_strategy));
}

struct list {
  struct engram_text *b;
  int n;
};

static void put_pool(const engram_pool_info *in, void *arg)
{
  struct list *l = arg;
  struct engram_text *b = l->b;
  engram_text_puts(b, l->n++ ? ",\n    {" : "\n    {");
  engram_text_puts(b, "\"name\": ");
  engram_text_json_string(b, in->name, strlen(in->name));
  engram_text_printf(b, ", \"shared\": %s, \"zero\": %s, ", in->flags & ENGRAM_POOL_SHARED ? "true" : "false",
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
  engram_text_printf(b, "\"reuse_rate\": %.6f, ", in->reuse_rate);
  put_u64(b, "bytes_reserved", in->bytes_reserved, 0);
  put_u64(b, "max_bytes", in->max_bytes, 0);
  put_u64(b, "slabs", in->slabs, 1);
  engram_text_puts(b, "}");
}

static void put_cache(const engram_arena_cache_info *in, void *arg)
{
  struct list *l = arg;
  struct engram_text *b = l->b;
  engram_text_puts(b, l->n++ ? ",\n    {" : "\n    {");
  engram_text_puts(b, "\"name\": ");
  engram_text_json_string(b, in->name, strlen(in->name));
  engram_text_puts(b, ", ");
  put_u64(b, "keep_per_class", in->keep_per_class, 0);
  put_u64(b, "acquisitions", in->acquisitions, 0);
  put_u64(b, "reuses", in->reuses, 0);
  put_u64(b, "created", in->created, 0);
  put_u64(b, "destroyed", in->destroyed, 0);
  put_u64(b, "out", in->out, 0);
  put_u64(b, "kept", in->kept, 0);
  put_u64(b, "kept_bytes", in->kept_bytes, 0);
  engram_text_puts(b, "\"kept_per_class\": {");
  int first = 1;
  for (unsigned k = 0; k < ENGRAM_ARENA_CACHE_CLASSES; k++) {
    if (!in->kept_per_class[k])
      continue;
    engram_text_printf(b, "%s\"%zu\": %llu", first ? "" : ", ", ENGRAM_ARENA_CACHE_MIN_CLASS << k,
         (unsigned long long)in->kept_per_class[k]);
    first = 0;
  }
  engram_text_puts(b, "}}");
}

char *engram_stats_json(void)
{
  struct engram_text b = { 0 };
  struct list l = { &b, 0 };
  engram_text_puts(&b, "{\n  \"version\": \"" ENGRAM_VERSION_STRING "\",\n  ");
  put_process(&b);
  engram_text_puts(&b, ",\n  ");
  put_thread_arena(&b);
  engram_text_puts(&b, ",\n  \"pools\": [");
  engram_pool_each(put_pool, &l);
  engram_text_puts(&b, l.n ? "\n  ],\n  \"arena_caches\": [" : "],\n  \"arena_caches\": [");
  l.n = 0;
  engram_arena_cache_each(put_cache, &l);
  engram_text_puts(&b, l.n ? "\n  ]\n}\n" : "]\n}\n");
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
