/*
 * host.h — internals shared by host.c (one Lua state per worker, the per-burst call) and
 * workers.c (threads, queue, watchdog, the public runtime API). Nothing here is exported.
 */
#ifndef ENGRAM_HOST_INTERNAL_H
#define ENGRAM_HOST_INTERNAL_H

#include "arena.h"

#include <setjmp.h>
#include <signal.h>

struct lua_State;

/* A loaded script: immutable once registered, freed with the runtime. */
struct engram_script {
  int id;                    /* 1-based, as handed to the embedder */
  uint64_t hash;             /* of name and text: equal scripts share one id */
  char *name;                /* the path for files (messages say path:line), or the given name */
  char *chunkname;           /* "@path" or "=name" for luaL_loadbuffer */
  char *text;
  size_t len;
};

/* One submitted key/value parameter, copied into the burst. */
struct host_param {
  const char *key;
  const char *text;          /* NULL: the value is `number` */
  double number;
};

/* What one burst call needs and what it produces. */
struct host_call {
  const struct engram_script *script;
  const struct host_param *params;
  size_t nparams;
  uint64_t id;
  uint64_t seq;              /* the worker's burst sequence number (the watchdog's key) */

  int status;                /* 0 or ENGRAM_ESCRIPT / ENGRAM_ETIMEOUT / ENGRAM_EFULL / ... */
  char *message;             /* malloc'd; NULL when ok */
  char *json;                /* JSON of the returned values: json_inline or malloc'd */
  size_t json_len, json_cap;
  char *json_inline;         /* the caller's buffer for small results (no malloc), or NULL */
  uint64_t arena_used;       /* arena bytes in use when the script returned (before reset) */
};

/* The Lua heap of a worker's state: every block the state owns is on one list, so an
 * abandoned state can be dropped wholesale. used/peak are read by other threads (STAT_LOAD). */
struct host_block {
  struct host_block *prev, *next;
  size_t size;
  size_t pad_;               /* keeps the payload 16-byte aligned */
};

struct host_heap {
  struct host_block head;    /* circular list of live blocks */
  uint64_t used;             /* payload bytes in use */
  uint64_t peak;             /* most bytes in use, over every state of this worker */
  uint64_t limit;            /* 0 = unlimited */
  uint64_t refusals;         /* growth requests refused at the limit (this burst) */
};

struct host_config {
  engram_arena_config arena;
  size_t heap_limit;         /* bytes; 0 = unlimited */
  uint32_t cache_size;       /* compiled scripts kept per worker */
  uint32_t timeout_ms;       /* 0 = no deadline */
  const char *module_dir;    /* directory holding engram/ (the Lua module tree) or NULL */
  int worker_index;          /* burst.worker */
  const char *store_path;    /* one store connection per worker, or NULL */
};

struct host_cache_entry {
  int script;                /* script id, 0 = free slot */
  int ref;                   /* registry reference of the burst function */
  uint64_t last_use;
};

/* Counters one worker writes and anyone reads (STAT_*). */
struct host_counters {
  uint64_t bursts, errors, timeouts, heap_limit_hits;
  uint64_t states_created, states_abandoned;
  uint64_t cache_hits, cache_misses, cache_evictions;
  uint64_t arena_high_water;
  uint64_t heap_peak;
};

/* One worker's Lua side. Created, used and destroyed on the worker thread only. */
struct engram_host {
  struct lua_State *L;
  struct host_heap heap;
  engram_arena *arena;
  struct host_config config;
  char module_dir[1024];

  engram_store *store;       /* this worker's connection, or NULL */
  int ref_body, ref_traceback, ref_arena, ref_pipeline, ref_store;

  struct host_cache_entry *cache;
  uint64_t cache_clock;

  struct host_counters counters;

  /* The deadline guard, read by the signal handler on this thread. `active` is set only while
   * the thread is inside the protected Lua call of burst `seq`. */
  volatile sig_atomic_t active;
  volatile sig_atomic_t hook_armed;
  volatile sig_atomic_t timed_out;
  volatile sig_atomic_t jumped;
  volatile uint64_t seq;
  sigjmp_buf jump;
  struct host_call *call;
};

/* Create the host (state, arena) on the calling thread: ENGRAM_ENOMEM, ENGRAM_ECONFIG (bad
 * arena config), ENGRAM_ESCRIPT (the engram module or lpeg cannot be loaded; the message
 * says which and the path searched). */
ENGRAM_HIDDEN int engram_host_init(struct engram_host *h, const struct host_config *config);
ENGRAM_HIDDEN void engram_host_fini(struct engram_host *h);

/* Run one burst: the script's function under a protected call, results into c->json, the
 * arena reset on every way out. Replaces the Lua state after a hard stop or a heap-limit hit. */
ENGRAM_HIDDEN void engram_host_run(struct engram_host *h, struct host_call *c);

/* Lua heap of the current state: bytes in use now (any thread may read). */
ENGRAM_HIDDEN size_t engram_host_heap_used(const struct engram_host *h);

/* Install the process-wide deadline signal handler (once). */
ENGRAM_HIDDEN int engram_host_signal_init(void);

/* The signal the watchdog sends to a worker thread that overran its deadline. The value
 * carries (seq << 1) | hard: soft arms the count hook, hard may abandon the state. */
#define ENGRAM_DEADLINE_SIGNAL SIGURG

/* A process-unique burst-sequence source so a late signal never matches another burst. */
ENGRAM_HIDDEN uint64_t engram_host_next_seq(void);

/* Where the engram Lua module lives when nothing is configured: ENGRAM_LUA_PATH,
 * ENGRAM_ROOT/lua, or the source tree next to the running executable. Empty when unknown. */
ENGRAM_HIDDEN void engram_host_default_module_dir(char *out, size_t cap);

#endif
