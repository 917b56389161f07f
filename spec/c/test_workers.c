/*
 * test_workers.c — workers under load and isolation: 32 workers fed from several threads with
 * no cross-talk between their arenas, and the limits: a deadline stopping JIT-compiled and
 * interpreted runaway loops (also inside pcall), a Lua heap limit stopping a memory bomb —
 * each followed by a successful burst on the same worker.
 */
#include "test.h"

#include "engram.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#if defined(__SANITIZE_THREAD__)
#  define UNDER_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define UNDER_TSAN 1
#  endif
#endif

static engram_runtime *make_runtime(uint32_t workers, uint32_t timeout_ms, size_t heap_limit)
{
  engram_runtime_config c;
  if (engram_runtime_config_default(&c) != 0)
    return NULL;
  c.workers = workers;
  c.queue_capacity = 64;
  c.timeout_ms = timeout_ms;
  c.lua_heap_limit = heap_limit;
  engram_runtime *rt = engram_runtime_create(&c);
  if (!rt)
    printf("    runtime_create: %s\n", engram_last_error());
  return rt;
}

static int load(engram_runtime *rt, const char *name, const char *text)
{
  int id = engram_runtime_load_string(rt, name, text, strlen(text));
  if (id < 0)
    printf("    load: %s\n", engram_last_error());
  return id;
}

static engram_burst *run(engram_runtime *rt, int script)
{
  engram_burst *b = NULL;
  if (engram_runtime_submit(rt, script, NULL, 0, &b) != 0)
    return NULL;
  engram_burst_wait(b, -1);
  return b;
}

static engram_worker_stats worker0(engram_runtime *rt)
{
  engram_worker_stats ws;
  ENGRAM_STRUCT_INIT(ws, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_worker_stats(rt, 0, &ws);
  return ws;
}

/* ---- no cross-talk ------------------------------------------------------------------------ */

static const char pattern_script[] =
  "return function(burst)\n"
  "  local seed = burst.params.seed\n"
  "  local n = 256 + seed % 1024\n"
  "  local start = burst.arena:used()\n"
  "  local v = burst.arena:ints(n)\n"
  "  for i = 0, n - 1 do v[i] = seed * 7 + i end\n"
  "  local w = burst.arena:floats(n)\n"
  "  for i = 0, n - 1 do w[i] = i end\n"
  "  local s = 0\n"
  "  for i = 0, n - 1 do\n"
  "    if v[i] ~= seed * 7 + i then error('cross-talk at ' .. i) end\n"
  "    s = s + v[i]\n"
  "  end\n"
  "  return { seed = seed, sum = s, start = start, tag = burst.params.tag }\n"
  "end\n";

struct feeder {
  engram_runtime *rt;
  int script;
  int first, count;
  engram_burst **out;
  int rejected;
};

static void *feed(void *arg)
{
  struct feeder *f = arg;
  for (int i = 0; i < f->count; i++) {
    int seed = f->first + i;
    char tag[32];
    snprintf(tag, sizeof tag, "t%d", seed);
    engram_param p[] = { { "seed", NULL, seed }, { "tag", tag, 0 } };
    int rc;
    while ((rc = engram_runtime_submit(f->rt, f->script, p, 2, &f->out[i])) == ENGRAM_EBUSY) {
      f->rejected++;
      sched_yield();
    }
    if (rc != 0)
      f->out[i] = NULL;
  }
  return NULL;
}

TEST(thirty_two_workers_many_bursts_no_cross_talk)
{
  enum { WORKERS = 32, FEEDERS = 4, PER = 300 };
  uint64_t seed0 = test_seed("no_cross_talk");
  engram_runtime *rt = make_runtime(WORKERS, 0, 0);
  if (!rt)
    return;
  int id = load(rt, "pattern", pattern_script);
  static engram_burst *bursts[FEEDERS * PER];
  struct feeder f[FEEDERS];
  pthread_t t[FEEDERS];
  int base = (int)(seed0 % 100000);
  for (int i = 0; i < FEEDERS; i++) {
    f[i] = (struct feeder){ rt, id, base + i * PER, PER, bursts + i * PER, 0 };
    pthread_create(&t[i], NULL, feed, &f[i]);
  }
  for (int i = 0; i < FEEDERS; i++)
    pthread_join(t[i], NULL);
  int bad = 0, workers_seen[WORKERS] = { 0 };
  uint64_t ids_sum = 0;
  for (int i = 0; i < FEEDERS * PER; i++) {
    engram_burst *b = bursts[i];
    if (!b) {
      bad++;
      continue;
    }
    engram_burst_wait(b, -1);
    long long seed = base + i, n = 256 + seed % 1024;
    long long sum = n * seed * 7 + n * (n - 1) / 2;
    char want[160];
    snprintf(want, sizeof want, "{\"seed\":%lld,\"start\":0,\"sum\":%lld,\"tag\":\"t%lld\"}", seed, sum, seed);
    if (engram_burst_status(b) != 0 || strcmp(engram_burst_result(b), want) != 0) {
      if (bad++ < 3)
        printf("    burst %d: status %d, %s%s (want %s)\n", i, engram_burst_status(b),
               engram_burst_message(b), engram_burst_result(b) ? engram_burst_result(b) : "", want);
    }
    int w = engram_burst_worker(b);
    if (w >= 0 && w < WORKERS)
      workers_seen[w]++;
    ids_sum += engram_burst_id(b);
    engram_burst_release(b);
  }
  CHECK_EQ(bad, 0);
  /* every id 1..N handed out exactly once */
  uint64_t n = FEEDERS * PER;
  CHECK_EQ(ids_sum, n * (n + 1) / 2);
  int used_workers = 0;
  for (int w = 0; w < WORKERS; w++)
    used_workers += workers_seen[w] > 0;
  CHECK(used_workers >= 2);
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  CHECK_EQ(s.submitted, n);
  CHECK_EQ(s.completed, n);
  engram_runtime_destroy(rt);
}

/* ---- the deadline ------------------------------------------------------------------------- */

static const char ok_script[] = "return function(burst) return 'alive' end";

static void check_alive(engram_runtime *rt, int ok)
{
  for (int i = 0; i < 3; i++) {
    engram_burst *b = run(rt, ok);
    CHECK_EQ(engram_burst_status(b), 0);
    CHECK_STR(engram_burst_result(b), "\"alive\"");
    CHECK_EQ(engram_burst_worker(b), 0);
    engram_burst_release(b);
  }
}

TEST(deadline_stops_a_jit_compiled_infinite_loop)
{
#ifdef UNDER_TSAN
  SKIP("ThreadSanitizer delivers signals only at intercepted calls; a compiled loop makes none");
#endif
  engram_runtime *rt = make_runtime(1, 100, 0);
  if (!rt)
    return;
  int spin = load(rt, "spin.lua", "return function(burst) while true do end end");
  int ok = load(rt, "ok.lua", ok_script);
  check_alive(rt, ok);
  engram_burst *b = run(rt, spin);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ETIMEOUT);
  CHECK_CONTAINS(engram_burst_message(b), "burst: deadline of 100 ms exceeded");
  CHECK(engram_burst_run_ns(b) >= 100000000u);
  engram_burst_release(b);
  check_alive(rt, ok);
  engram_worker_stats ws = worker0(rt);
  CHECK_EQ(ws.timeouts, 1);
  CHECK_EQ(ws.states_abandoned, 1);
  CHECK_EQ(ws.states_created, 2);
  engram_runtime_destroy(rt);
}

TEST(deadline_is_not_swallowed_by_pcall)
{
#ifdef UNDER_TSAN
  SKIP("ThreadSanitizer delivers signals only at intercepted calls; a compiled loop makes none");
#endif
  engram_runtime *rt = make_runtime(1, 100, 0);
  if (!rt)
    return;
  /* compiled loop inside pcall, retried by the script */
  int jit = load(rt, "pcall_jit.lua", "return function(burst)\n"
                 "  for i = 1, 5 do pcall(function() while true do end end) end\n"
                 "  return 'swallowed'\n"
                 "end\n");
  /* interpreted loop inside pcall: the hook's error is caught, and raised again at once */
  int interp = load(rt, "pcall_interp.lua", "local function spin() local i = 0 while true do i = i + 1 end end\n"
                    "local function burst(b)\n"
                    "  for i = 1, 5 do local ok, err = pcall(spin) end\n"
                    "  return 'swallowed'\n"
                    "end\n"
                    "jit.off(spin) jit.off(burst)\n"
                    "return burst\n");
  int ok = load(rt, "ok.lua", ok_script);
  engram_burst *b = run(rt, jit);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ETIMEOUT);
  CHECK_CONTAINS(engram_burst_message(b), "deadline of 100 ms exceeded");
  engram_burst_release(b);
  check_alive(rt, ok);
  engram_worker_stats before = worker0(rt);
  b = run(rt, interp);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ETIMEOUT);
  CHECK_CONTAINS(engram_burst_message(b), "burst: deadline of 100 ms exceeded");
  CHECK_CONTAINS(engram_burst_message(b), "stack traceback:");
  engram_burst_release(b);
  check_alive(rt, ok);
  engram_worker_stats after = worker0(rt);
  /* the hook stopped interpreted code without giving up the state */
  CHECK_EQ(after.states_abandoned, before.states_abandoned);
  CHECK_EQ(after.timeouts, before.timeouts + 1);
  engram_runtime_destroy(rt);
}

TEST(deadline_leaves_ordinary_bursts_alone)
{
  engram_runtime *rt = make_runtime(2, 200, 0);
  if (!rt)
    return;
  int id = load(rt, "work.lua", "return function(burst)\n"
                "  local s = 0 for i = 1, 10000 do s = s + i end\n"
                "  return s\n"
                "end\n");
  for (int i = 0; i < 200; i++) {
    engram_burst *b = run(rt, id);
    CHECK_EQ(engram_burst_status(b), 0);
    engram_burst_release(b);
  }
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  CHECK_EQ(s.completed, 200);
  engram_runtime_destroy(rt);
}

/* ---- the Lua heap limit ------------------------------------------------------------------- */

TEST(heap_limit_turns_a_memory_bomb_into_an_error)
{
  engram_runtime *rt = make_runtime(1, 0, (size_t)32 << 20);
  if (!rt)
    return;
  int bomb = load(rt, "bomb.lua", "return function(burst)\n"
                  "  local t, i = {}, 0\n"
                  "  while true do i = i + 1; t[i] = string.rep('x', 4096) .. i end\n"
                  "end\n");
  int caught = load(rt, "caught.lua", "return function(burst)\n"
                    "  local ok = pcall(function()\n"
                    "    local t = {} for i = 1, 1e9 do t[i] = { i, i, i, i } end\n"
                    "  end)\n"
                    "  collectgarbage()\n"
                    "  return 'survived'\n"
                    "end\n");
  int ok = load(rt, "ok.lua", ok_script);
  check_alive(rt, ok);
  engram_burst *b = run(rt, bomb);
  CHECK_EQ(engram_burst_status(b), ENGRAM_EFULL);
  CHECK_STR(engram_burst_message(b), "burst: lua heap limit of 32MiB exceeded (the worker's Lua state was replaced)");
  engram_burst_release(b);
  check_alive(rt, ok);
  b = run(rt, caught);
  CHECK_EQ(engram_burst_status(b), ENGRAM_EFULL);
  CHECK_CONTAINS(engram_burst_message(b), "the script caught the allocation failure");
  engram_burst_release(b);
  check_alive(rt, ok);
  engram_worker_stats ws = worker0(rt);
  CHECK_EQ(ws.heap_limit_hits, 2);
  CHECK_EQ(ws.states_created, 3);
  CHECK(ws.lua_heap_peak <= ((uint64_t)32 << 20));
  CHECK(ws.lua_heap_peak > ((uint64_t)16 << 20));
  CHECK(ws.lua_heap_used < ((uint64_t)4 << 20));
  engram_runtime_destroy(rt);
}

TEST(deadline_and_heap_limit_together_on_many_workers)
{
#ifdef UNDER_TSAN
  SKIP("ThreadSanitizer delivers signals only at intercepted calls; a compiled loop makes none");
#endif
  engram_runtime *rt = make_runtime(4, 300, (size_t)8 << 20);
  if (!rt)
    return;
  const char *scripts[] = {
    "return function() while true do end end",
    "return function() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end end",
    "return function() error('plain') end",
    "return function(b) return b.id end",
  };
  int ids[4];
  for (int i = 0; i < 4; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    ids[i] = load(rt, name, scripts[i]);
  }
  engram_burst *b[24];
  for (int i = 0; i < 24; i++)
    CHECK_EQ(engram_runtime_submit(rt, ids[i % 4], NULL, 0, &b[i]), 0);
  const int want[4] = { ENGRAM_ETIMEOUT, ENGRAM_EFULL, ENGRAM_ESCRIPT, 0 };
  for (int i = 0; i < 24; i++) {
    engram_burst_wait(b[i], -1);
    CHECK_EQ(engram_burst_status(b[i]), want[i % 4]);
    if (i % 4 == 3) {
      char id[24];
      snprintf(id, sizeof id, "%llu", (unsigned long long)engram_burst_id(b[i]));
      CHECK_STR(engram_burst_result(b[i]), id);
    }
    engram_burst_release(b[i]);
  }
  engram_runtime_destroy(rt);
}

int main(void)
{
  RUN(thirty_two_workers_many_bursts_no_cross_talk);
  RUN(deadline_stops_a_jit_compiled_infinite_loop);
  RUN(deadline_is_not_swallowed_by_pcall);
  RUN(deadline_leaves_ordinary_bursts_alone);
  RUN(heap_limit_turns_a_memory_bomb_into_an_error);
  RUN(deadline_and_heap_limit_together_on_many_workers);
  return test_done();
}
