/*
 * bench_host.c — what a burst costs the host, against the peers measured in the same run:
 *
 *   1. round trip of an empty burst (submit -> worker picks it up -> Lua call -> encode ->
 *      arena reset -> waiter sees the result), median and p99, against a bare lua_pcall of an
 *      empty function on this thread; also the worker-side run time alone, and the round trip
 *      with a deadline armed (watchdog running), which is the deadline's normal-path cost;
 *   2. arena view allocation from Lua (arena:floats(n)) against ffi.new("float[n]"), for
 *      views that stay local (the JIT may sink them) and views that escape;
 *   3. bursts per second with 1 and 2 workers, for empty bursts and for ~50 us bursts.
 *
 * Medians of interleaved repetitions; nothing here asserts.
 */
#include "bench.h"

#include "engram.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#define REPS 5

/* ---- 1. round trips --------------------------------------------------------------------- */

static double bare_pcall_ns(void)
{
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_loadstring(L, "return function() end");
  lua_call(L, 0, 1);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  enum { N = 1000000 };
  uint64_t t0 = bench_now_ns();
  for (int i = 0; i < N; i++) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pcall(L, 0, 0, 0);
  }
  double ns = (double)(bench_now_ns() - t0) / N;
  lua_close(L);
  return ns;
}

static engram_runtime *runtime(uint32_t workers, uint32_t timeout_ms)
{
  engram_runtime_config c;
  engram_runtime_config_default(&c);
  c.workers = workers;
  c.timeout_ms = timeout_ms;
  c.queue_capacity = 4096;
  engram_runtime *rt = engram_runtime_create(&c);
  if (!rt) {
    fprintf(stderr, "bench_host: %s\n", engram_last_error());
    exit(1);
  }
  return rt;
}

struct trip {
  double median, p99, run_median;
};

static struct trip round_trips(engram_runtime *rt, int script, int n)
{
  double *rt_ns = malloc(n * sizeof *rt_ns), *run_ns = malloc(n * sizeof *run_ns);
  for (int i = 0; i < n + 1000; i++) {
    engram_burst *b;
    uint64_t t0 = bench_now_ns();
    engram_runtime_submit(rt, script, NULL, 0, &b);
    engram_burst_wait(b, -1);
    uint64_t t1 = bench_now_ns();
    if (i >= 1000) {   /* the first thousand warm the JIT, the cache and the spinning paths */
      rt_ns[i - 1000] = (double)(t1 - t0);
      run_ns[i - 1000] = (double)engram_burst_run_ns(b);
    }
    engram_burst_release(b);
  }
  struct trip t = { bench_median(rt_ns, n), bench_percentile(rt_ns, n, 99), bench_median(run_ns, n) };
  free(rt_ns);
  free(run_ns);
  return t;
}

/* ---- 3. throughput ---------------------------------------------------------------------- */

static double bursts_per_second(engram_runtime *rt, int script, int n)
{
  enum { WINDOW = 256 };
  engram_burst *ring[WINDOW];
  int submitted = 0, done = 0;
  uint64_t t0 = bench_now_ns();
  while (done < n) {
    while (submitted < n && submitted - done < WINDOW) {
      if (engram_runtime_submit(rt, script, NULL, 0, &ring[submitted % WINDOW]) != 0)
        break;
      submitted++;
    }
    engram_burst_wait(ring[done % WINDOW], -1);
    engram_burst_release(ring[done % WINDOW]);
    done++;
  }
  return (double)n / ((double)(bench_now_ns() - t0) * 1e-9);
}

/* ---- 2. view allocation ----------------------------------------------------------------- */

/* Per-allocation ns of arena:floats(n) and of ffi.new("float[n]") in one LuaJIT state, for a
 * view that stays local to the loop (the JIT may sink the view object) and for one that
 * escapes into a table slot (the view object, like the ffi.new array, must then live on the
 * GC heap). The arena is reset whenever the next view would not fit, as bursts would. */
static const char alloc_bench[] =
  "local ffi = require('ffi')\n"
  "local arena = require('engram.arena')\n"
  "local a = arena.wrap(...)\n"
  "local function clock() local t = ffi.new('engram_timespec'); ffi.C.clock_gettime(1, t)\n"
  "  return tonumber(t.tv_sec) * 1e9 + tonumber(t.tv_nsec) end\n"
  "local function views_local(n, iters)\n"
  "  local bytes, s = n * 4 + 64, 0\n"
  "  local t0 = clock()\n"
  "  for i = 1, iters do\n"
  "    if a:remaining() < bytes then a:reset() end\n"
  "    local v = a:floats(n); v[0] = i; v[n - 1] = i; s = s + v[0]\n"
  "  end\n"
  "  local t = (clock() - t0) / iters\n"
  "  a:reset()\n"
  "  return t, s\n"
  "end\n"
  "local function views_kept(n, iters)\n"
  "  local bytes, keep = n * 4 + 64, {}\n"
  "  local t0 = clock()\n"
  "  for i = 1, iters do\n"
  "    if a:remaining() < bytes then a:reset() end\n"
  "    local v = a:floats(n); v[0] = i; v[n - 1] = i; keep[i % 8 + 1] = v\n"
  "  end\n"
  "  local t = (clock() - t0) / iters\n"
  "  keep = nil\n"
  "  a:reset()\n"
  "  return t\n"
  "end\n"
  "local function news_local(n, iters)\n"
  "  local ct, s = ffi.typeof('float[$]', n), 0\n"
  "  local t0 = clock()\n"
  "  for i = 1, iters do local v = ffi.new(ct); v[0] = i; v[n - 1] = i; s = s + v[0] end\n"
  "  return (clock() - t0) / iters, s\n"
  "end\n"
  "local function news_kept(n, iters)\n"
  "  local ct, keep = ffi.typeof('float[$]', n), {}\n"
  "  local t0 = clock()\n"
  "  for i = 1, iters do local v = ffi.new(ct); v[0] = i; v[n - 1] = i; keep[i % 8 + 1] = v end\n"
  "  return (clock() - t0) / iters\n"
  "end\n"
  "return function(kind, n, iters)\n"
  "  if kind == 0 then return (views_local(n, iters)) end\n"
  "  if kind == 1 then return (news_local(n, iters)) end\n"
  "  if kind == 2 then return views_kept(n, iters) end\n"
  "  return news_kept(n, iters)\n"
  "end\n";

#define ALLOC_SIZES 3
static const int alloc_sizes[ALLOC_SIZES] = { 16, 1024, 16384 };

/* out[kind][size]: kind 0 view local, 1 ffi.new local, 2 view kept, 3 ffi.new kept. */
static void view_allocation(double out[4][ALLOC_SIZES])
{
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  const char *root = getenv("ENGRAM_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "package.path = '%s/lua/?.lua;%s/lua/?/init.lua;' .. package.path",
           root ? root : ".", root ? root : ".");
  engram_arena_config ac;
  engram_config_arena_default(&ac);
  ac.size = (size_t)1 << 20;
  engram_arena *a = engram_arena_create(&ac);
  if (luaL_dostring(L, path) != 0 || luaL_loadstring(L, alloc_bench) != 0) {
    fprintf(stderr, "bench_host: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_pushlightuserdata(L, a);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "bench_host: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  double v[4][ALLOC_SIZES][REPS];
  for (int r = 0; r < REPS; r++) {
    for (int s = 0; s < ALLOC_SIZES; s++) {
      for (int k = 0; k < 4; k++) {
        lua_pushvalue(L, -1);
        lua_pushinteger(L, k);
        lua_pushinteger(L, alloc_sizes[s]);
        lua_pushnumber(L, alloc_sizes[s] > 1024 ? 2e5 : 1e6);
        if (lua_pcall(L, 3, 1, 0) != 0) {
          fprintf(stderr, "bench_host: %s\n", lua_tostring(L, -1));
          exit(1);
        }
        v[k][s][r] = lua_tonumber(L, -1);
        lua_pop(L, 1);
      }
    }
  }
  for (int k = 0; k < 4; k++)
    for (int s = 0; s < ALLOC_SIZES; s++)
      out[k][s] = bench_median(v[k][s], REPS);
  lua_close(L);
  engram_arena_destroy(a);
}

int main(void)
{
  enum { TRIPS = 20000 };
  static const char empty[] = "return function() end";
  static const char work[] = "return function(b) local s = 0 for i = 1, 60000 do s = s + i % 7 end return s end";

  /* 1. round trips, interleaved: bare pcall, runtime without and with a deadline */
  double bare[REPS];
  struct trip plain[REPS], dl[REPS];
  engram_runtime *rt1 = runtime(1, 0), *rt1d = runtime(1, 1000);
  int e1 = engram_runtime_load_string(rt1, "empty", empty, sizeof empty - 1);
  int e1d = engram_runtime_load_string(rt1d, "empty", empty, sizeof empty - 1);
  for (int r = 0; r < REPS; r++) {
    bare[r] = bare_pcall_ns();
    plain[r] = round_trips(rt1, e1, TRIPS);
    dl[r] = round_trips(rt1d, e1d, TRIPS);
  }
  engram_runtime_destroy(rt1);
  engram_runtime_destroy(rt1d);
  double med[REPS], p99[REPS], run[REPS], dmed[REPS], dp99[REPS], drun[REPS];
  for (int r = 0; r < REPS; r++) {
    med[r] = plain[r].median;
    p99[r] = plain[r].p99;
    run[r] = plain[r].run_median;
    dmed[r] = dl[r].median;
    dp99[r] = dl[r].p99;
    drun[r] = dl[r].run_median;
  }
  double bare_ns = bench_median(bare, REPS);
  double m = bench_median(med, REPS), p = bench_median(p99, REPS), w = bench_median(run, REPS);
  double dm = bench_median(dmed, REPS), dp = bench_median(dp99, REPS), dw = bench_median(drun, REPS);

  bench_table_begin("empty burst round trip (1 worker; medians of 5 runs of 20000)", "what", "median ns",
                    "p99 ns", "x bare pcall", NULL);
  bench_table_row("bare lua_pcall, empty function, same thread|%.1f|-|1.0", bare_ns);
  bench_table_row("run time on the worker (call, encode, reset)|%.0f|-|%.1f", w, w / bare_ns);
  bench_table_row("round trip, submit -> result|%.0f|%.0f|%.1f", m, p, m / bare_ns);
  bench_table_row("run time on the worker, deadline armed|%.0f|-|%.1f", dw, dw / bare_ns);
  bench_table_row("round trip, deadline armed (1 s)|%.0f|%.0f|%.1f", dm, dp, dm / bare_ns);
  bench_table_end();
  printf("target: round trip within 10x of the bare pcall (%.0f ns) and under 2000 ns: measured %.0f ns "
         "(%.1fx) -> %s\n", 10 * bare_ns, m, m / bare_ns,
         m <= 10 * bare_ns && m < 2000 ? "met" : m < 2000 ? "under 2 us, not within 10x" : "not met");
  printf("deadline cost on the normal path: %+.0f ns per burst on the worker, %+.0f ns per round trip\n",
         dw - w, dm - m);

  /* 2. view allocation */
  double al[4][ALLOC_SIZES];
  view_allocation(al);
  bench_table_begin("allocating float[n] from Lua (JIT on; medians of 5 runs)", "n", "view, local ns",
                    "ffi.new, local ns", "ratio", "view, kept ns", "ffi.new, kept ns", "ratio", NULL);
  for (int s = 0; s < ALLOC_SIZES; s++) {
    bench_table_row("%d|%.1f|%.1f|%.1f|%.1f|%.1f|%.1f", alloc_sizes[s], al[0][s], al[1][s], al[1][s] / al[0][s],
                    al[2][s], al[3][s], al[3][s] / al[2][s]);
  }
  bench_table_end();
  int met = 0, cases = 0;
  char missed[256] = "";
  for (int s = 0; s < ALLOC_SIZES; s++) {
    for (int k = 0; k < 4; k += 2) {
      double ratio = al[k + 1][s] / al[k][s];
      cases++;
      if (ratio >= 10) {
        met++;
      } else {
        size_t used = strlen(missed);
        snprintf(missed + used, sizeof missed - used, "%s%s views of %d floats (%.1fx)", used ? ", " : "",
                 k == 0 ? "local" : "kept", alloc_sizes[s], ratio);
      }
    }
  }
  printf("target: views at least 10x faster than ffi.new of the same size: met in %d of %d cases%s%s\n", met,
         cases, met < cases ? "; not met for " : "", missed);

  /* 3. throughput, interleaved 1 and 2 workers */
  engram_runtime *one = runtime(1, 0), *two = runtime(2, 0);
  int oe = engram_runtime_load_string(one, "empty", empty, sizeof empty - 1);
  int ow = engram_runtime_load_string(one, "work", work, sizeof work - 1);
  int te = engram_runtime_load_string(two, "empty", empty, sizeof empty - 1);
  int tw = engram_runtime_load_string(two, "work", work, sizeof work - 1);
  double e1s[REPS], e2s[REPS], w1s[REPS], w2s[REPS];
  bursts_per_second(one, ow, 200);
  bursts_per_second(two, tw, 200);
  for (int r = 0; r < REPS; r++) {
    e1s[r] = bursts_per_second(one, oe, 100000);
    e2s[r] = bursts_per_second(two, te, 100000);
    w1s[r] = bursts_per_second(one, ow, 4000);
    w2s[r] = bursts_per_second(two, tw, 4000);
  }
  engram_worker_stats ws;
  ENGRAM_STRUCT_INIT(ws, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_worker_stats(one, 0, &ws);
  engram_runtime_destroy(one);
  engram_runtime_destroy(two);
  double e1v = bench_median(e1s, REPS), e2v = bench_median(e2s, REPS);
  double w1v = bench_median(w1s, REPS), w2v = bench_median(w2s, REPS);
  bench_table_begin("bursts per second (submitter thread + workers on 2 cores; medians of 5)", "burst", "1 worker",
                    "2 workers", "2 / 1", NULL);
  bench_table_row("empty|%.0f|%.0f|%.2f", e1v, e2v, e2v / e1v);
  bench_table_row("~%.0f us of Lua arithmetic|%.0f|%.0f|%.2f", 1e6 / w1v, w1v, w2v, w2v / w1v);
  bench_table_end();
  printf("target: 2 workers at least 1.8x the throughput of 1 (work bursts): measured %.2fx -> %s\n",
         w2v / w1v, w2v / w1v >= 1.8 ? "met" : "not met");
  return 0;
}
