/*
 * pool.h — internals shared by pool.c and report.c. Nothing here is exported; the public
 * contract is the "Pools" section of engram.h.
 */
#ifndef ENGRAM_POOL_INTERNAL_H
#define ENGRAM_POOL_INTERNAL_H

#include "arena.h"

/* Call fn on a snapshot of every live pool (then every arena cache), oldest first, under the
 * pool registry lock: fn must not create or destroy pools or caches. */
ENGRAM_HIDDEN void engram_pool_each(void (*fn)(const engram_pool_info *info, void *arg), void *arg);
ENGRAM_HIDDEN void engram_arena_cache_each(void (*fn)(const engram_arena_cache_info *info, void *arg),
                                           void *arg);

#endif
