/*
 * host.c — one lua_State per worker: its heap, its setup, the script cache, the per-burst
 * protected call, the result as JSON, and the deadline (count hook + signal + abandon).
 *
 * Everything here runs on the worker thread that owns the host, except the signal handler,
 * which also runs on that thread (the watchdog directs the signal at it).
 *
 * The deadline, precisely:
 *   1. At the deadline the watchdog sends ENGRAM_DEADLINE_SIGNAL ("soft"). The handler arms a
 *      count hook with count 1. Interpreted Lua stops at its next instruction with
 *      "burst: deadline of N ms exceeded"; the hook stays armed until the burst unwinds, so a
 *      pcall in the script cannot swallow it (every instruction of its handler raises again).
 *      The state is kept.
 *   2. Debian's LuaJIT does not check hooks inside compiled traces, so a JIT-compiled loop
 *      ignores the hook. After a grace period the watchdog sends "hard" signals, one per tick.
 *      The handler looks at the interrupted program counter: inside LuaJIT's machine code
 *      (an anonymous executable mapping) or inside libluajit itself it siglongjmps back to
 *      engram_host_run, which abandons the state (never touches it again, frees its heap
 *      wholesale) and builds a fresh one. Anywhere else (libc, libengram, SQLite, lpeg, an FFI
 *      kernel: code that may hold a lock or be half-way through a shared structure) the signal
 *      is ignored and the next tick tries again.
 *   What it cannot stop: a C function that never returns to Lua (a long FFI kernel, an lpeg
 *   match, string.rep of a huge string inside libc's memcpy...) runs to completion first; the
 *   burst then stops at its next Lua instruction or trace. Under ThreadSanitizer signals are
 *   delivered only at intercepted calls, so compiled loops cannot be stopped there.
 *   Abandoning leaks the state's JIT machine-code area (LuaJIT maps it itself; 32 KiB to
 *   LuaJIT's maxmcode) and skips the state's __gc finalizers; it is counted
 *   (states_abandoned).
 */
#include "host.h"
#include "text.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static __thread struct engram_host *tls_host;

/* ---- the Lua heap ---------------------------------------------------------------------- */

static void heap_link(struct host_heap *hp, struct host_block *b)
{
  b->prev = &hp->head;
  b->next = hp->head.next;
  hp->head.next->prev = b;
  hp->head.next = b;
}

static void heap_unlink(struct host_block *b)
{
  b->prev->next = b->next;
  b->next->prev = b->prev;
}

static void heap_account(struct host_heap *hp, size_t old, size_t new_)
{
  uint64_t used = STAT_LOAD(hp->used) - old + new_;
  STAT_STORE(hp->used, used);
  if (used > STAT_LOAD(hp->peak))
    STAT_STORE(hp->peak, used);
}

/* The lua_Alloc of every worker state. Growth beyond the limit is refused (LuaJIT raises
 * "not enough memory"); a shrink or a free never fails, as LuaJIT requires. Every block is
 * on the heap's list so an abandoned state can be freed without its cooperation. */
static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  struct host_heap *hp = ud;
  struct host_block *b = ptr ? (struct host_block *)ptr - 1 : NULL;
  size_t old = b ? b->size : 0;
  (void)osize;

  if (nsize == 0) {
    if (b) {
      heap_unlink(b);
      heap_account(hp, old, 0);
      free(b);
    }
    return NULL;
  }
  if (nsize > old && hp->limit && STAT_LOAD(hp->used) - old + nsize > hp->limit) {
    hp->refusals++;
    return NULL;
  }
  if (b)
    heap_unlink(b);
  struct host_block *nb = realloc(b, sizeof *nb + nsize);
  if (!nb) {
    if (b) {
      heap_link(hp, b);
      return nsize <= old ? ptr : NULL;   /* a failed shrink keeps the larger block */
    }
    return NULL;
  }
  nb->size = nsize;
  heap_link(hp, nb);
  heap_account(hp, old, nsize);
  return nb + 1;
}

static void heap_init(struct host_heap *hp)
{
  hp->head.prev = hp->head.next = &hp->head;
  STAT_STORE(hp->used, 0);
}

/* Free every block of an abandoned state. */
static void heap_drop(struct host_heap *hp)
{
  struct host_block *b = hp->head.next;
  while (b != &hp->head) {
    struct host_block *next = b->next;
    free(b);
    b = next;
  }
  heap_init(hp);
}

size_t engram_host_heap_used(const struct engram_host *h)
{
  return (size_t)STAT_LOAD(h->heap.used);
}

/* ---- where the engram module lives ------------------------------------------------------ */

static int file_exists(const char *path)
{
  return access(path, R_OK) == 0;
}

void engram_host_default_module_dir(char *out, size_t cap)
{
  const char *v;
  char probe[PATH_MAX + 64];

  out[0] = '\0';
  if ((v = getenv("ENGRAM_LUA_PATH")) && *v) {
    snprintf(out, cap, "%s", v);
    return;
  }
  if ((v = getenv("ENGRAM_ROOT")) && *v) {
    snprintf(out, cap, "%s/lua", v);
    return;
  }
  /* The source tree: the executable lives in build/MODE/{,spec,examples,bench}/. */
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return;
  exe[n] = '\0';
  for (int up = 1; up <= 4; up++) {
    char *slash = strrchr(exe, '/');
    if (!slash)
      return;
    *slash = '\0';
    snprintf(probe, sizeof probe, "%s/lua/engram/init.lua", exe);
    if (file_exists(probe)) {
      snprintf(out, cap, "%s/lua", exe);
      return;
    }
    snprintf(probe, sizeof probe, "%s/share/lua/5.1/engram/init.lua", exe);
    if (file_exists(probe)) {
      snprintf(out, cap, "%s/share/lua/5.1", exe);
      return;
    }
  }
}

/* ---- state setup ------------------------------------------------------------------------ */

/* Run once per state with (arena pointer, module dir, module path pattern): makes the engram
 * module findable, checks that the module and lpeg load, wraps the worker's arena and returns
 * it with the pipeline maker. A stage table {f1, f2, ...} (or {stages = {...}}) becomes one
 * function: stage i is called as f_i(burst, result of stage i-1); the last stage's return
 * values are the burst's. */
static const char prelude[] =
  "local arena_ptr, dir, pattern, store_ptr = ...\n"
  "if pattern ~= '' then package.path = pattern .. ';' .. package.path\n"
  "elseif dir ~= '' then package.path = dir .. '/?.lua;' .. dir .. '/?/init.lua;' .. package.path end\n"
  "local ok, err = pcall(require, 'engram')\n"
  "if not ok then error('host: cannot load the engram Lua module (' .. tostring(err) .. ')', 0) end\n"
  "ok, err = pcall(require, 'lpeg')\n"
  "if not ok then error('host: cannot load lpeg (' .. tostring(err) .. ')', 0) end\n"
  "local ffi = require('ffi')\n"
  "local arena = require('engram.arena').wrap(ffi.cast('engram_arena *', arena_ptr))\n"
  "local function pipeline(stages, n)\n"
  "  local s = {}\n"
  "  for i = 1, n do s[i] = stages[i] end\n"
  "  if n == 1 then return s[1] end\n"
  "  return function(burst)\n"
  "    local r\n"
  "    for i = 1, n - 1 do r = s[i](burst, r) end\n"
  "    return s[n](burst, r)\n"
  "  end\n"
  "end\n"
  "local store = store_ptr and require('engram.store').wrap(store_ptr) or false\n"
  "return arena, pipeline, store\n";

static int traceback(lua_State *L);
static int burst_body(lua_State *L);

static int state_setup(lua_State *L)
{
  struct engram_host *h = lua_touserdata(L, 1);
  const char *dir = h->module_dir;
  int is_pattern = strchr(dir, '?') != NULL;

  luaL_openlibs(L);
  lua_pushcfunction(L, traceback);
  h->ref_traceback = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, burst_body);
  h->ref_body = luaL_ref(L, LUA_REGISTRYINDEX);
  if (luaL_loadbuffer(L, prelude, sizeof prelude - 1, "=engram.host") != 0)
    return lua_error(L);
  lua_pushlightuserdata(L, h->arena);
  lua_pushstring(L, is_pattern ? "" : dir);
  lua_pushstring(L, is_pattern ? dir : "");
  if (h->store)
    lua_pushlightuserdata(L, h->store);
  else
    lua_pushnil(L);
  lua_call(L, 4, 3);
  h->ref_store = luaL_ref(L, LUA_REGISTRYINDEX);   /* false without a store */
  h->ref_pipeline = luaL_ref(L, LUA_REGISTRYINDEX);
  h->ref_arena = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static void cache_clear(struct engram_host *h)
{
  for (uint32_t i = 0; i < h->config.cache_size; i++)
    h->cache[i].script = 0;
}

/* A fresh state on the heap (which must be empty). */
static int state_open(struct engram_host *h)
{
  lua_State *L = lua_newstate(heap_alloc, &h->heap);
  if (!L)
    return engram_fail(ENGRAM_ENOMEM, "host: cannot create a lua state (lua heap limit %llu bytes)",
                       (unsigned long long)h->heap.limit);
  if (lua_cpcall(L, state_setup, h) != 0) {
    const char *msg = lua_tostring(L, -1);
    int rc = engram_fail(ENGRAM_ESCRIPT, "%s", msg ? msg : "host: lua state setup failed");
    lua_close(L);
    return rc;
  }
  lua_settop(L, 0);
  h->L = L;
  cache_clear(h);
  STAT_ADD(h->counters.states_created, 1);
  return 0;
}

/* Close the state normally (finalizers run); the heap limit is lifted so closing never fails. */
static void state_close(struct engram_host *h)
{
  if (!h->L)
    return;
  uint64_t limit = h->heap.limit;
  h->heap.limit = 0;
  lua_close(h->L);
  h->heap.limit = limit;
  h->L = NULL;
  cache_clear(h);
}

/* Forget a state that was interrupted at an arbitrary instruction: it is never touched again;
 * its heap is freed block by block. */
static void state_abandon(struct engram_host *h)
{
  h->L = NULL;
  heap_drop(&h->heap);
  cache_clear(h);
  STAT_ADD(h->counters.states_abandoned, 1);
}

/* ---- the script cache ------------------------------------------------------------------- */

/* Push the burst function of script s: from the cache, or compiled (top level run once,
 * its result checked and turned into one function). Raises a Lua error with the script's
 * name on any failure. */
static void cache_push(lua_State *L, struct engram_host *h, const struct engram_script *s)
{
  struct host_cache_entry *victim = NULL;
  uint32_t n = h->config.cache_size;

  for (uint32_t i = 0; i < n; i++) {
    struct host_cache_entry *e = &h->cache[i];
    if (e->script == s->id) {
      e->last_use = ++h->cache_clock;
      STAT_ADD(h->counters.cache_hits, 1);
      lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
      return;
    }
    if (!victim || (victim->script != 0 && (e->script == 0 || e->last_use < victim->last_use)))
      victim = e;
  }
  STAT_ADD(h->counters.cache_misses, 1);

  if (luaL_loadbuffer(L, s->text, s->len, s->chunkname) != 0)
    lua_error(L);
  lua_call(L, 0, 1);
  int t = lua_type(L, -1);
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "stages");
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1))
        luaL_error(L, "%s: the script's 'stages' field is a %s, not a table of functions", s->name,
                   luaL_typename(L, -1));
      lua_replace(L, -2);
    } else {
      lua_pop(L, 1);
    }
    int stages = (int)lua_objlen(L, -1);
    if (stages == 0)
      luaL_error(L, "%s: the script returned a table without stages (expected functions at [1], [2], ...)",
                 s->name);
    for (int i = 1; i <= stages; i++) {
      lua_rawgeti(L, -1, i);
      if (!lua_isfunction(L, -1))
        luaL_error(L, "%s: stage %d is a %s, not a function", s->name, i, luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_pipeline);
    lua_insert(L, -2);
    lua_pushinteger(L, stages);
    lua_call(L, 2, 1);
  } else if (t != LUA_TFUNCTION) {
    luaL_error(L, "%s: a pipeline script must return a function or a table of stage functions "
               "(it returned %s)", s->name, t == LUA_TNIL ? "nothing" : luaL_typename(L, -1));
  }

  if (victim && victim->script != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, victim->ref);
    victim->script = 0;
    STAT_ADD(h->counters.cache_evictions, 1);
  }
  if (victim) {
    lua_pushvalue(L, -1);
    victim->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    victim->script = s->id;
    victim->last_use = ++h->cache_clock;
  }
}

/* ---- the result as JSON ----------------------------------------------------------------- */

static void out_reserve(lua_State *L, struct host_call *c, size_t more)
{
  if (c->json_cap - c->json_len > more)
    return;
  size_t cap = c->json_cap > 256 ? c->json_cap : 256;
  while (cap - c->json_len <= more)
    cap *= 2;
  int inline_buf = c->json && c->json == c->json_inline;
  char *p = inline_buf ? malloc(cap) : realloc(c->json, cap);
  if (!p)
    luaL_error(L, "burst: out of memory encoding the result (%zu bytes)", cap);
  if (inline_buf)
    memcpy(p, c->json, c->json_len);
  c->json = p;
  c->json_cap = cap;
}

static void out_bytes(lua_State *L, struct host_call *c, const char *s, size_t n)
{
  out_reserve(L, c, n);
  memcpy(c->json + c->json_len, s, n);
  c->json_len += n;
  c->json[c->json_len] = '\0';
}

static void out_str(lua_State *L, struct host_call *c, const char *s)
{
  out_bytes(L, c, s, strlen(s));
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void out_json_string(lua_State *L, struct host_call *c, const char *s, size_t n)
{
  out_bytes(L, c, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n;) {
    unsigned char ch = (unsigned char)s[i];
    const char *esc = NULL;
    char buf[8];
    size_t step = 1;
    if (ch == '"') esc = "\\\"";
    else if (ch == '\\') esc = "\\\\";
    else if (ch == '\n') esc = "\\n";
    else if (ch == '\r') esc = "\\r";
    else if (ch == '\t') esc = "\\t";
    else if (ch < 0x20) { snprintf(buf, sizeof buf, "\\u%04x", ch); esc = buf; }
    else if (ch >= 0x80 && !(step = engram_utf8_len((const unsigned char *)s + i, n - i))) { esc = "\\ufffd"; step = 1; }
    if (esc) {
      out_bytes(L, c, s + i - run, run);
      run = 0;
      out_str(L, c, esc);
    } else {
      run += step;
    }
    i += step;
  }
  out_bytes(L, c, s + n - run, run);
  out_bytes(L, c, "\"", 1);
}

static void out_number(lua_State *L, struct host_call *c, double x)
{
  char buf[40];
  if (!isfinite(x))
    snprintf(buf, sizeof buf, "null");
  else if (x == floor(x) && fabs(x) < 9007199254740992.0)
    snprintf(buf, sizeof buf, "%lld", (long long)x);
  else
    snprintf(buf, sizeof buf, "%.17g", x);
  out_str(L, c, buf);
}

struct json_key {
  const char *s;
  size_t len;
  double num;
  int is_num;
  char text[32];
};

static int key_cmp(const void *a, const void *b)
{
  const struct json_key *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int r = memcmp(x->is_num ? x->text : x->s, y->is_num ? y->text : y->s, n);
  return r ? r : (x->len > y->len) - (x->len < y->len);
}

#define JSON_MAX_DEPTH 32

static void out_value(lua_State *L, struct engram_host *h, struct host_call *c, int idx, int depth,
                      const char *path);

/* A table: an array when its keys are exactly 1..n (n > 0), else an object with its string
 * and number keys in byte order (so equal results give equal text). Key arrays come from the
 * burst's arena, which is reset whatever way the burst ends. */
static void out_table(lua_State *L, struct engram_host *h, struct host_call *c, int idx, int depth,
                      const char *path)
{
  size_t n = lua_objlen(L, idx), count = 0;
  int array = 1;
  char sub[200];

  if (depth >= JSON_MAX_DEPTH)
    luaL_error(L, "burst result: tables nested deeper than %d levels at %s (a cycle?)", JSON_MAX_DEPTH, path);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    count++;
    if (lua_type(L, -1) != LUA_TNUMBER) {
      array = 0;
    } else {
      double k = lua_tonumber(L, -1);
      if (k != floor(k) || k < 1 || k > (double)n)
        array = 0;
    }
  }
  if (array && count == n && n > 0) {
    out_bytes(L, c, "[", 1);
    for (size_t i = 1; i <= n; i++) {
      if (i > 1)
        out_bytes(L, c, ",", 1);
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      lua_rawgeti(L, idx, (int)i);
      out_value(L, h, c, lua_gettop(L), depth + 1, sub);
      lua_pop(L, 1);
    }
    out_bytes(L, c, "]", 1);
    return;
  }
  struct json_key *keys = count ? engram_arena_alloc_array(h->arena, count, sizeof *keys, 8) : NULL;
  if (count && !keys)
    luaL_error(L, "burst result: the arena has no room to encode a table of %zu keys at %s", count, path);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    struct json_key *e = &keys[k++];
    if (lua_type(L, -1) == LUA_TSTRING) {
      e->s = lua_tolstring(L, -1, &e->len);   /* anchored by the table */
      e->is_num = 0;
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
      e->num = lua_tonumber(L, -1);
      e->is_num = 1;
      if (e->num == floor(e->num) && fabs(e->num) < 9007199254740992.0)
        snprintf(e->text, sizeof e->text, "%lld", (long long)e->num);
      else
        snprintf(e->text, sizeof e->text, "%.17g", e->num);
      e->s = e->text;
      e->len = strlen(e->text);
    } else {
      luaL_error(L, "burst result: a table key at %s is a %s (only string and number keys can be encoded)",
                 path, luaL_typename(L, -1));
    }
  }
  if (count > 1)   /* an empty table has no key array (qsort wants a valid pointer even for 0) */
    qsort(keys, count, sizeof *keys, key_cmp);   /* moves the entries: number keys re-point below */
  out_bytes(L, c, "{", 1);
  for (size_t i = 0; i < count; i++) {
    struct json_key *e = &keys[i];
    if (e->is_num)
      e->s = e->text;
    if (i)
      out_bytes(L, c, ",", 1);
    out_json_string(L, c, e->s, e->len);
    out_bytes(L, c, ":", 1);
    if (e->is_num)
      lua_pushnumber(L, e->num);
    else
      lua_pushlstring(L, e->s, e->len);
    lua_rawget(L, idx);
    snprintf(sub, sizeof sub, "%s.%.*s", path, (int)(e->len > 40 ? 40 : e->len), e->s);
    out_value(L, h, c, lua_gettop(L), depth + 1, sub);
    lua_pop(L, 1);
  }
  out_bytes(L, c, "}", 1);
}

static void out_value(lua_State *L, struct engram_host *h, struct host_call *c, int idx, int depth,
                      const char *path)
{
  size_t n;
  const char *s;
  luaL_checkstack(L, 4, "burst result");
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    out_str(L, c, "null");
    break;
  case LUA_TBOOLEAN:
    out_str(L, c, lua_toboolean(L, idx) ? "true" : "false");
    break;
  case LUA_TNUMBER:
    out_number(L, c, lua_tonumber(L, idx));
    break;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    out_json_string(L, c, s, n);
    break;
  case LUA_TTABLE:
    out_table(L, h, c, idx, depth, path);
    break;
  default:
    luaL_error(L, "burst result: cannot encode a %s value at %s (return numbers, strings, booleans "
               "and tables; copy arena views into tables first)", luaL_typename(L, idx), path);
  }
}

/* ---- the burst call --------------------------------------------------------------------- */

/* Message handler: the error text with a traceback. A C function, so the deadline hook
 * (which fires only on Lua instructions) cannot interrupt it. */
static int traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    struct engram_host *h = tls_host;
    if (!(h && h->hook_armed) && luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* The protected body of a burst: find the script's function, build the burst table, call it,
 * encode what it returned. Runs inside lua_pcall, so every Lua error lands in the result. */
static int burst_body(lua_State *L)
{
  struct engram_host *h = lua_touserdata(L, 1);
  struct host_call *c = h->call;

  lua_settop(L, 0);
  cache_push(L, h, c->script);
  lua_createtable(L, 0, 5);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_arena);
  lua_setfield(L, -2, "arena");
  lua_createtable(L, 0, (int)c->nparams);
  for (size_t i = 0; i < c->nparams; i++) {
    if (c->params[i].text)
      lua_pushstring(L, c->params[i].text);
    else
      lua_pushnumber(L, c->params[i].number);
    lua_setfield(L, -2, c->params[i].key);
  }
  lua_setfield(L, -2, "params");
  lua_pushnumber(L, (double)c->id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, h->config.worker_index);
  lua_setfield(L, -2, "worker");
  if (h->store) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_store);
    lua_setfield(L, -2, "store");
  }
  lua_call(L, 1, LUA_MULTRET);

  /* What the script left in the arena is measured before the encoder borrows from it. */
  c->arena_used = engram_arena_used(h->arena);
  int nret = lua_gettop(L);
  c->json_len = 0;
  if (nret == 0) {
    out_str(L, c, "null");
  } else if (nret == 1) {
    out_value(L, h, c, 1, 0, "result");
  } else {
    char path[32];
    out_bytes(L, c, "[", 1);
    for (int i = 1; i <= nret; i++) {
      if (i > 1)
        out_bytes(L, c, ",", 1);
      snprintf(path, sizeof path, "result[%d]", i);
      out_value(L, h, c, i, 1, path);
    }
    out_bytes(L, c, "]", 1);
  }
  return 0;
}

/* ---- the deadline ----------------------------------------------------------------------- */

static void deadline_hook(lua_State *L, lua_Debug *ar)
{
  struct engram_host *h = tls_host;
  (void)ar;
  if (!h || !h->active)
    return;
  h->timed_out = 1;
  lua_pushfstring(L, "burst: deadline of %d ms exceeded", (int)h->config.timeout_ms);
  lua_error(L);
}

static uintptr_t luajit_lo, luajit_hi;   /* executable range of libluajit, 0 if unknown */
static struct sigaction previous_action;
static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static int signal_status;

static uint64_t parse_hex(const char **p)
{
  uint64_t v = 0;
  for (;;) {
    char ch = **p;
    if (ch >= '0' && ch <= '9') v = v * 16 + (uint64_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') v = v * 16 + (uint64_t)(ch - 'a' + 10);
    else return v;
    (*p)++;
  }
}

/* Is pc inside an anonymous executable mapping (LuaJIT's machine code)? Reads
 * /proc/self/maps with open/read only, which are async-signal-safe. */
static int pc_in_anonymous_code(uintptr_t pc)
{
  char buf[2048], line[160];
  size_t ll = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  int found = 0, done = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n && !done; i++) {
      if (buf[i] != '\n') {
        if (ll < sizeof line - 1)
          line[ll++] = buf[i];
        continue;
      }
      line[ll] = '\0';
      ll = 0;
      /* start-end perms offset dev inode [path] */
      const char *p = line;
      uint64_t lo = parse_hex(&p);
      if (*p++ != '-')
        continue;
      uint64_t hi = parse_hex(&p);
      if (pc < lo || pc >= hi)
        continue;
      done = 1;
      if (*p++ != ' ' || p[2] != 'x')
        break;
      p += 4;
      for (int field = 0; field < 3; field++) {   /* offset, dev, inode */
        while (*p == ' ') p++;
        if (field == 2)
          break;
        while (*p && *p != ' ') p++;
      }
      int inode_zero = p[0] == '0' && (p[1] == ' ' || p[1] == '\0');
      while (*p && *p != ' ') p++;
      while (*p == ' ') p++;
      found = inode_zero && *p == '\0';
    }
    if (done)
      break;
  }
  close(fd);
  return found;
}

static int pc_in_lua(void *ucv)
{
#if defined(__x86_64__)
  const ucontext_t *uc = ucv;
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  if (luajit_lo && pc >= luajit_lo && pc < luajit_hi)
    return 1;
  return pc_in_anonymous_code(pc);
#else
  (void)ucv;
  return 0;   /* no hard stop on this architecture: the hook is the only way */
#endif
}

static void on_deadline_signal(int sig, siginfo_t *si, void *ucv)
{
  int saved_errno = errno;
  struct engram_host *h = tls_host;
  uintptr_t v = (uintptr_t)si->si_value.sival_ptr;

  if (si->si_code == SI_QUEUE && si->si_pid == getpid() && h && h->active && (v >> 1) == h->seq) {
    if (!h->hook_armed) {
      h->hook_armed = 1;
      lua_sethook(h->L, deadline_hook, LUA_MASKCOUNT, 1);
    }
    if ((v & 1) && pc_in_lua(ucv)) {
      h->active = 0;
      h->jumped = 1;
      siglongjmp(h->jump, 1);
    }
  } else if (si->si_code != SI_QUEUE || si->si_pid != getpid()) {
    /* Not ours: pass it on to whoever handled the signal before. */
    if ((previous_action.sa_flags & SA_SIGINFO) && previous_action.sa_sigaction)
      previous_action.sa_sigaction(sig, si, ucv);
    else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN)
      previous_action.sa_handler(sig);
  }
  errno = saved_errno;
}

struct find_object {
  uintptr_t base;
  uintptr_t lo, hi;
};

static int find_exec_range(struct dl_phdr_info *info, size_t size, void *arg)
{
  struct find_object *f = arg;
  (void)size;
  if (info->dlpi_addr != f->base)
    return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
      if (!f->lo || lo < f->lo) f->lo = lo;
      if (hi > f->hi) f->hi = hi;
    }
  }
  return 1;
}

static void signal_setup(void)
{
  Dl_info lj, self;
  /* libluajit's own code counts as "inside Lua" only when it is a separate object: linked
   * statically it would share its range with libengram, whose code may hold locks. */
  if (dladdr((void *)lua_pcall, &lj) && dladdr((void *)engram_host_run, &self) &&
      lj.dli_fbase != self.dli_fbase) {
    struct find_object f = { (uintptr_t)lj.dli_fbase, 0, 0 };
    /* dlpi_addr is the load bias; for shared objects it equals the base dladdr reports. */
    dl_iterate_phdr(find_exec_range, &f);
    luajit_lo = f.lo;
    luajit_hi = f.hi;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_deadline_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(ENGRAM_DEADLINE_SIGNAL, &sa, &previous_action) != 0)
    signal_status = ENGRAM_EINVAL;
}

int engram_host_signal_init(void)
{
  pthread_once(&signal_once, signal_setup);
  if (signal_status)
    return engram_fail(signal_status, "host: cannot install the deadline signal handler (%s)",
                       strerror(errno));
  return 0;
}

uint64_t engram_host_next_seq(void)
{
  static uint64_t seq;
  return __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
}

/* ---- one burst -------------------------------------------------------------------------- */

static void set_message(struct host_call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_message(struct host_call *c, int status, const char *fmt, ...)
{
  va_list ap;
  char buf[512];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  c->status = status;
  free(c->message);
  c->message = strdup(buf);
}

static void take_lua_message(struct host_call *c, lua_State *L, int status, const char *prefix)
{
  size_t n;
  const char *msg = lua_tolstring(L, -1, &n);
  if (!msg) {
    msg = "(error object is not a string)";
    n = strlen(msg);
  }
  /* The traceback ends in the host's own C frame ("[C]: at 0x..."), which says nothing. */
  static const char host_frame[] = "\n\t[C]: at 0x";
  for (size_t i = n; i-- > 0;) {
    if (msg[i] == '\n') {
      if (n - i > sizeof host_frame - 1 && memcmp(msg + i, host_frame, sizeof host_frame - 1) == 0 &&
          !memchr(msg + i + 1, '\n', n - i - 1))
        n = i;
      break;
    }
  }
  size_t pn = strlen(prefix);
  char *m = malloc(pn + n + 1);
  if (m) {
    memcpy(m, prefix, pn);
    memcpy(m + pn, msg, n);
    m[pn + n] = '\0';
  }
  free(c->message);
  c->message = m;
  c->status = status;
}

static void arena_done(struct engram_host *h, struct host_call *c)
{
  uint64_t used = engram_arena_used(h->arena);
  if (used > c->arena_used)
    c->arena_used = used;
  if (c->arena_used > STAT_LOAD(h->counters.arena_high_water))
    STAT_STORE(h->counters.arena_high_water, c->arena_used);
  engram_arena_reset(h->arena);
}

void engram_host_run(struct engram_host *h, struct host_call *c)
{
  int rc;

  c->status = 0;
  c->message = NULL;
  c->json_len = 0;
  c->arena_used = 0;
  STAT_ADD(h->counters.bursts, 1);
  if (!h->L && state_open(h) != 0) {
    set_message(c, ENGRAM_ENOMEM, "%s", engram_last_error());
    goto finish;
  }

  h->call = c;
  h->seq = c->seq;
  h->timed_out = 0;
  h->hook_armed = 0;
  h->jumped = 0;
  h->heap.refusals = 0;
  /* Only a runtime with a deadline can jump back here. The mask is not saved (that would be
   * a system call per burst); the jump path unblocks the signal the handler was running on. */
  if (h->config.timeout_ms) {
    if (sigsetjmp(h->jump, 0) != 0) {
      /* The signal handler left the Lua call from inside compiled code. */
      __atomic_signal_fence(__ATOMIC_SEQ_CST);
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, ENGRAM_DEADLINE_SIGNAL);
      pthread_sigmask(SIG_UNBLOCK, &set, NULL);
      state_abandon(h);
      set_message(c, ENGRAM_ETIMEOUT,
                  "burst: deadline of %u ms exceeded (stopped inside compiled Lua code; the worker's "
                  "Lua state was replaced)", h->config.timeout_ms);
      STAT_ADD(h->counters.timeouts, 1);
      goto finish;
    }
  }
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_body);
  lua_pushlightuserdata(L, h);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  h->active = 1;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  rc = lua_pcall(L, 1, 0, 1);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  h->active = 0;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  if (h->hook_armed)
    lua_sethook(L, NULL, 0, 0);

  int replace = 0;
  if (h->timed_out) {
    take_lua_message(c, L, ENGRAM_ETIMEOUT, "");
    STAT_ADD(h->counters.timeouts, 1);
  } else if (h->heap.refusals || rc == LUA_ERRMEM) {
    char limit[32];
    engram_format_size(limit, sizeof limit, (size_t)h->heap.limit);
    if (rc == 0)
      set_message(c, ENGRAM_EFULL, "burst: lua heap limit of %s exceeded (the script caught the "
                  "allocation failure; the worker's Lua state was replaced)", limit);
    else
      set_message(c, ENGRAM_EFULL, "burst: lua heap limit of %s exceeded (the worker's Lua state "
                  "was replaced)", limit);
    STAT_ADD(h->counters.heap_limit_hits, 1);
    replace = 1;
  } else if (rc != 0) {
    take_lua_message(c, L, ENGRAM_ESCRIPT, "");
  }
  if (c->status != 0)
    STAT_ADD(h->counters.errors, 1);
  lua_settop(L, 0);
  if (replace) {
    state_close(h);
    /* Opened again now so the next burst starts warm; a failure is retried then. */
    state_open(h);
  }

finish:
  if (h->L == NULL && c->status == ENGRAM_ETIMEOUT)
    state_open(h);
  /* A burst's claims never outlive it: what it loaded and did not commit becomes loadable
   * again (its commit, if any, was one transaction and is already complete). */
  if (h->store)
    engram_store_release_pending(h->store);
  if (c->status != 0)
    c->json_len = 0;
  arena_done(h, c);
  h->call = NULL;
  if (STAT_LOAD(h->heap.peak) > STAT_LOAD(h->counters.heap_peak))
    STAT_STORE(h->counters.heap_peak, STAT_LOAD(h->heap.peak));
}

/* ---- life cycle ------------------------------------------------------------------------- */

int engram_host_init(struct engram_host *h, const struct host_config *config)
{
  memset(h, 0, sizeof *h);
  h->config = *config;
  if (h->config.cache_size == 0)
    h->config.cache_size = 64;
  if (config->module_dir && *config->module_dir)
    snprintf(h->module_dir, sizeof h->module_dir, "%s", config->module_dir);
  else
    engram_host_default_module_dir(h->module_dir, sizeof h->module_dir);
  h->config.module_dir = h->module_dir;
  heap_init(&h->heap);
  h->heap.limit = config->heap_limit;
  h->cache = calloc(h->config.cache_size, sizeof *h->cache);
  if (!h->cache)
    return engram_fail(ENGRAM_ENOMEM, "host: out of memory for the script cache");
  h->arena = engram_arena_create(&h->config.arena);
  if (!h->arena) {
    free(h->cache);
    return engram_last_error()[0] ? ENGRAM_ENOMEM : engram_fail(ENGRAM_ENOMEM, "host: cannot create the arena");
  }
  if (config->store_path) {
    engram_store_config sc;
    memset(&sc, 0, sizeof sc);
    sc.path = config->store_path;
    sc.manual_checkpoint = 1;   /* the runtime's checkpointer thread does it, off the burst path */
    h->store = engram_store_open(&sc);
    if (!h->store) {
      engram_arena_destroy(h->arena);
      free(h->cache);
      return ENGRAM_ESTORE;   /* the store's message names the file */
    }
  }
  int rc = state_open(h);
  if (rc != 0) {
    engram_store_close(h->store);
    engram_arena_destroy(h->arena);
    free(h->cache);
    return rc;
  }
  tls_host = h;
  return 0;
}

void engram_host_fini(struct engram_host *h)
{
  tls_host = NULL;
  state_close(h);
  if (h->store)
    engram_store_close(h->store);
  engram_arena_destroy(h->arena);
  free(h->cache);
  h->arena = NULL;
  h->cache = NULL;
}
