/*
 * test_host.c — the per-burst call: scripts and stage tables, parameters, results as JSON,
 * script errors and bad inputs, arena views across bursts, the script cache, the queue bound,
 * waiting, and shutdown with bursts in flight.
 *
 * Bursts that must stay "in flight" wait on a gate that the test opens: the script calls the
 * exported test_gate_* functions below through the FFI (the test links with -rdynamic).
 */
#include "test.h"

#include "engram.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static int gate_open_flag, gate_entered;

EXPORT int test_gate_open(void);
EXPORT void test_gate_enter(void);
EXPORT int test_gate_open(void) { return __atomic_load_n(&gate_open_flag, __ATOMIC_ACQUIRE); }
EXPORT void test_gate_enter(void) { __atomic_add_fetch(&gate_entered, 1, __ATOMIC_ACQ_REL); }

static void gate_reset(void)
{
  __atomic_store_n(&gate_open_flag, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&gate_entered, 0, __ATOMIC_RELEASE);
}

static void gate_wait_entered(int n)
{
  while (__atomic_load_n(&gate_entered, __ATOMIC_ACQUIRE) < n)
    usleep(200);
}

static const char gated_script[] =
  "local ffi = require('ffi')\n"
  "ffi.cdef[[int test_gate_open(void); void test_gate_enter(void);]]\n"
  "return function(burst)\n"
  "  ffi.C.test_gate_enter()\n"
  "  while ffi.C.test_gate_open() == 0 do end\n"
  "  return burst.id\n"
  "end\n";

static engram_runtime *make_runtime(uint32_t workers, uint32_t queue, uint32_t cache)
{
  engram_runtime_config c;
  if (engram_runtime_config_default(&c) != 0)
    return NULL;
  c.workers = workers;
  if (queue)
    c.queue_capacity = queue;
  if (cache)
    c.script_cache = cache;
  engram_runtime *rt = engram_runtime_create(&c);
  if (!rt)
    printf("    runtime_create: %s\n", engram_last_error());
  return rt;
}

/* Submit and wait; the handle is the caller's to release. */
static engram_burst *run(engram_runtime *rt, int script, const engram_param *p, size_t n)
{
  engram_burst *b = NULL;
  if (engram_runtime_submit(rt, script, p, n, &b) != 0) {
    printf("    submit: %s\n", engram_last_error());
    return NULL;
  }
  engram_burst_wait(b, -1);
  return b;
}

static int load(engram_runtime *rt, const char *name, const char *text)
{
  int id = engram_runtime_load_string(rt, name, text, strlen(text));
  if (id < 0)
    printf("    load: %s\n", engram_last_error());
  return id;
}

TEST(function_script_sees_params_id_and_arena)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  CHECK(rt != NULL);
  if (!rt)
    return;
  int id = load(rt, "params", "return function(burst)\n"
                "  return { x = burst.params.x, n = burst.params.n, id = burst.id,\n"
                "           worker = burst.worker, arena = type(burst.arena.floats) }\n"
                "end\n");
  CHECK(id > 0);
  engram_param p[] = { { "x", "hello", 0 }, { "n", NULL, 2.5 } };
  engram_burst *b = run(rt, id, p, 2);
  CHECK_EQ(engram_burst_status(b), 0);
  CHECK_STR(engram_burst_message(b), "");
  CHECK_STR(engram_burst_result(b), "{\"arena\":\"function\",\"id\":1,\"n\":2.5,\"worker\":0,\"x\":\"hello\"}");
  CHECK_EQ(engram_burst_id(b), 1);
  CHECK_EQ(engram_burst_worker(b), 0);
  engram_burst_release(b);
  engram_runtime_destroy(rt);
}

TEST(stage_table_runs_in_index_order_passing_results)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  int a = load(rt, "stages", "return {\n"
               "  function(burst, prev) return { 'load' } end,\n"
               "  function(burst, prev) prev[#prev + 1] = 'similarity'; return prev end,\n"
               "  function(burst, prev) prev[#prev + 1] = 'store'; return prev, #prev end,\n"
               "}\n");
  int b = load(rt, "stages_field", "return { name = 'x', stages = {\n"
               "  function(burst) return 1 end, function(burst, prev) return prev + 1 end } }\n");
  engram_burst *r = run(rt, a, NULL, 0);
  CHECK_EQ(engram_burst_status(r), 0);
  CHECK_STR(engram_burst_result(r), "[[\"load\",\"similarity\",\"store\"],3]");
  engram_burst_release(r);
  r = run(rt, b, NULL, 0);
  CHECK_STR(engram_burst_result(r), "2");
  engram_burst_release(r);
  engram_runtime_destroy(rt);
}

TEST(results_encode_as_json)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  struct { const char *script, *json; } cases[] = {
    { "return function() end", "null" },
    { "return function() return nil end", "null" },
    { "return function() return true, false end", "[true,false]" },
    { "return function() return 0/0, 1/0, -1/0, 0.1, -3, 2^53 end",
      "[null,null,null,0.10000000000000001,-3,9007199254740992]" },
    { "return function() return 'a\"b\\\\c\\n\\1\\255' end", "\"a\\\"b\\\\c\\n\\u0001\\ufffd\"" },
    { "return function() return 'h\\195\\169' end", "\"h\xc3\xa9\"" },
    { "return function() return {} end", "{}" },
    { "return function() return { 1, 2, { a = { 3 } } } end", "[1,2,{\"a\":[3]}]" },
    { "return function() return { [1] = 'a', [3] = 'c' } end", "{\"1\":\"a\",\"3\":\"c\"}" },
    { "return function() return { b = 1, a = 2, [10] = 3 } end", "{\"10\":3,\"a\":2,\"b\":1}" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "json%zu", i);
    int id = load(rt, name, cases[i].script);
    engram_burst *b = run(rt, id, NULL, 0);
    CHECK_EQ(engram_burst_status(b), 0);
    CHECK_STR(engram_burst_result(b), cases[i].json);
    engram_burst_release(b);
  }
  /* results larger than the handle's inline buffer */
  int big = load(rt, "big", "return function() local t = {} for i = 1, 300 do t[i] = i end\n"
                 "  return string.rep('ab', 500), t end");
  engram_burst *r = run(rt, big, NULL, 0);
  const char *json = engram_burst_result(r);
  CHECK(json != NULL && strlen(json) == 1 + 1002 + 1 + 1093 + 1);
  CHECK(json && strncmp(json, "[\"ababab", 8) == 0);
  CHECK(json && strstr(json, ",299,300]]") != NULL);
  engram_burst_release(r);
  int id = load(rt, "fn", "return function() return { ok = 1, bad = { print } } end");
  engram_burst *b = run(rt, id, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_burst_message(b), "burst result: cannot encode a function value at result.bad[1]");
  CHECK(engram_burst_result(b) == NULL);
  engram_burst_release(b);
  id = load(rt, "cycle", "return function() local t = {}; t.t = t; return t end");
  b = run(rt, id, NULL, 0);
  CHECK_CONTAINS(engram_burst_message(b), "nested deeper than 32 levels");
  engram_burst_release(b);
  engram_runtime_destroy(rt);
}

TEST(script_error_is_the_result_and_the_worker_keeps_serving)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  int bad = load(rt, "bad.lua", "local function inner(x)\n"
                 "  return x.field\n"
                 "end\n"
                 "return function(burst) local v = inner(nil); return v end\n");
  int good = load(rt, "good.lua", "return function(burst) return 'fine' end");
  engram_burst *b = run(rt, bad, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_burst_message(b), "bad.lua:2: attempt to index local 'x' (a nil value)");
  CHECK_CONTAINS(engram_burst_message(b), "stack traceback:");
  CHECK_CONTAINS(engram_burst_message(b), "in function 'inner'");
  CHECK(engram_burst_result(b) == NULL);
  engram_burst_release(b);
  for (int i = 0; i < 3; i++) {
    b = run(rt, good, NULL, 0);
    CHECK_EQ(engram_burst_status(b), 0);
    CHECK_STR(engram_burst_result(b), "\"fine\"");
    engram_burst_release(b);
  }
  b = run(rt, load(rt, "err.lua", "return function() error({ code = 1 }) end"), NULL, 0);
  CHECK_CONTAINS(engram_burst_message(b), "(error object is a table value)");
  engram_burst_release(b);

  engram_worker_stats ws;
  ENGRAM_STRUCT_INIT(ws, ENGRAM_RUNTIME_STATS_VERSION);
  CHECK_EQ(engram_runtime_worker_stats(rt, 0, &ws), 0);
  CHECK_EQ(ws.bursts, 5);
  CHECK_EQ(ws.errors, 2);
  CHECK_EQ(ws.states_created, 1);
  engram_runtime_destroy(rt);
}

TEST(bad_inputs_name_the_file_and_line)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  CHECK_EQ(engram_runtime_load_file(rt, "/nonexistent/dir/script.lua"), ENGRAM_EIO);
  CHECK_STR(engram_last_error(), "runtime: cannot read script '/nonexistent/dir/script.lua' (No such file or directory)");

  char path[] = "/tmp/engram-test-XXXXXX.lua";
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0);
  const char text[] = "return function(burst)\n  local x = = 1\nend\n";
  CHECK_EQ(write(fd, text, sizeof text - 1), (long long)(sizeof text - 1));
  close(fd);
  CHECK_EQ(engram_runtime_load_file(rt, path), ENGRAM_ESCRIPT);
  char want[128];
  snprintf(want, sizeof want, "%s:2: unexpected symbol near '='", path);
  CHECK_STR(engram_last_error(), want);

  /* a script returning a number, then one returning nothing, from a file: named in the error */
  FILE *f = fopen(path, "w");
  fputs("return 42\n", f);
  fclose(f);
  int id = engram_runtime_load_file(rt, path);
  CHECK(id > 0);
  engram_burst *b = run(rt, id, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  snprintf(want, sizeof want, "%s: a pipeline script must return a function or a table of stage "
           "functions (it returned number)", path);
  CHECK_CONTAINS(engram_burst_message(b), want);
  engram_burst_release(b);
  unlink(path);

  b = run(rt, load(rt, "empty", "local x = 1"), NULL, 0);
  CHECK_CONTAINS(engram_burst_message(b), "empty: a pipeline script must return a function or a table "
                 "of stage functions (it returned nothing)");
  engram_burst_release(b);
  b = run(rt, load(rt, "stage2", "return { function() end, 'oops' }"), NULL, 0);
  CHECK_CONTAINS(engram_burst_message(b), "stage2: stage 2 is a string, not a function");
  engram_burst_release(b);
  b = run(rt, load(rt, "nostages", "return { name = 'x' }"), NULL, 0);
  CHECK_CONTAINS(engram_burst_message(b), "nostages: the script returned a table without stages");
  engram_burst_release(b);
  b = run(rt, load(rt, "toplevel", "error('at load time')"), NULL, 0);
  CHECK_CONTAINS(engram_burst_message(b), "toplevel:1: at load time");
  engram_burst_release(b);

  engram_burst *none = NULL;
  CHECK_EQ(engram_runtime_submit(rt, 999, NULL, 0, &none), ENGRAM_ERANGE);
  CHECK(none == NULL);
  engram_param nokey = { NULL, "v", 0 };
  CHECK_EQ(engram_runtime_submit(rt, id, &nokey, 1, &none), ENGRAM_EINVAL);

  /* the same name and text load to the same id */
  CHECK_EQ(load(rt, "toplevel", "error('at load time')"), load(rt, "toplevel", "error('at load time')"));
  engram_runtime_destroy(rt);
}

TEST(bad_config_is_refused_with_the_field_named)
{
  engram_runtime_config c;
  CHECK_EQ(engram_runtime_config_default(&c), 0);
  c.workers = 0;
  CHECK(engram_runtime_create(&c) == NULL);
  CHECK_STR(engram_last_error(), "runtime: workers 0 is out of range (1 to 256)");
  engram_runtime_config_default(&c);
  c.arena_size = 1000;
  CHECK(engram_runtime_create(&c) == NULL);
  CHECK_STR(engram_last_error(), "runtime: arena_size 1000B is out of range (64KiB to 1GiB)");
  engram_runtime_config_default(&c);
  c.struct_size = 8;
  CHECK(engram_runtime_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "fill it with engram_runtime_config_default");
  /* A configured module path comes before LUA_PATH: a broken engram module there is reported. */
  char dir[] = "/tmp/engram-mod-XXXXXX", sub[64], file[96];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(sub, sizeof sub, "%s/engram", dir);
  mkdir(sub, 0700);
  snprintf(file, sizeof file, "%s/init.lua", sub);
  FILE *f = fopen(file, "w");
  fputs("error('broken on purpose')\n", f);
  fclose(f);
  engram_runtime_config_default(&c);
  c.module_path = dir;
  c.workers = 2;
  CHECK(engram_runtime_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "host: cannot load the engram Lua module (");
  CHECK_CONTAINS(engram_last_error(), "/engram/init.lua:1: broken on purpose");
  unlink(file);
  rmdir(sub);
  rmdir(dir);
}

TEST(arena_views_live_for_one_burst)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  int keep = load(rt, "keep", "return function(burst)\n"
                  "  local v = burst.arena:floats(100)\n"
                  "  for i = 0, 99 do v[i] = i end\n"
                  "  if burst.params.use then return kept[5] end\n"
                  "  kept = v\n"
                  "  return v[99], burst.arena:used()\n"
                  "end\n");
  engram_burst *b = run(rt, keep, NULL, 0);
  CHECK_EQ(engram_burst_status(b), 0);
  CHECK_STR(engram_burst_result(b), "[99,400]");
  engram_burst_release(b);
  engram_param use = { "use", "yes", 0 };
  b = run(rt, keep, &use, 1);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_burst_message(b), "arena view used after its burst ended");
  engram_burst_release(b);

  int big = load(rt, "big", "return function(burst) local v = burst.arena:floats(1e7) return #v end");
  b = run(rt, big, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_burst_message(b), "arena: out of memory (requested 40000000 bytes");
  engram_burst_release(b);

  /* the arena was reset after each of those: a burst starts with an empty arena */
  b = run(rt, load(rt, "used", "return function(burst) return burst.arena:used() end"), NULL, 0);
  CHECK_STR(engram_burst_result(b), "0");
  engram_burst_release(b);

  engram_worker_stats ws;
  ENGRAM_STRUCT_INIT(ws, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_worker_stats(rt, 0, &ws);
  CHECK(ws.arena_high_water >= 400);
  CHECK_EQ(ws.arena_capacity, 1 << 20);
  engram_runtime_destroy(rt);
}

TEST(script_cache_counts_hits_misses_and_evictions)
{
  engram_runtime *rt = make_runtime(1, 0, 2);
  if (!rt)
    return;
  int a = load(rt, "a", "return function() return 'a' end");
  int b = load(rt, "b", "return function() return 'b' end");
  int c = load(rt, "c", "return function() return 'c' end");
  int order[] = { a, a, b, a, c, b, a };   /* LRU of 2: miss miss(b) hit miss(c evicts b) ... */
  const char *want[] = { "\"a\"", "\"a\"", "\"b\"", "\"a\"", "\"c\"", "\"b\"", "\"a\"" };
  for (int i = 0; i < 7; i++) {
    engram_burst *r = run(rt, order[i], NULL, 0);
    CHECK_STR(engram_burst_result(r), want[i]);
    engram_burst_release(r);
  }
  /* a miss, a hit, b miss, a hit, c miss (evicts b), b miss (evicts a), a miss (evicts c) */
  engram_worker_stats ws;
  ENGRAM_STRUCT_INIT(ws, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_worker_stats(rt, 0, &ws);
  CHECK_EQ(ws.cache_misses, 5);
  CHECK_EQ(ws.cache_hits, 2);
  CHECK_EQ(ws.cache_evictions, 3);
  engram_runtime_destroy(rt);
}

TEST(full_queue_rejects_and_wait_times_out)
{
  gate_reset();
  engram_runtime *rt = make_runtime(1, 2, 0);
  if (!rt)
    return;
  int g = load(rt, "gated", gated_script);
  engram_burst *running, *q1, *q2, *extra = NULL;
  CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &running), 0);
  gate_wait_entered(1);
  CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &q1), 0);
  CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &q2), 0);
  CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &extra), ENGRAM_EBUSY);
  CHECK_STR(engram_last_error(), "runtime: queue full (2 bursts waiting)");
  CHECK(extra == NULL);
  CHECK_EQ(engram_burst_done(running), 0);
  CHECK_EQ(engram_burst_status(running), ENGRAM_EBUSY);
  CHECK_EQ(engram_burst_wait(running, 20), ENGRAM_ETIMEOUT);
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  CHECK_EQ(s.submitted, 3);
  CHECK_EQ(s.rejected, 1);
  CHECK_EQ(s.queued, 2);
  __atomic_store_n(&gate_open_flag, 1, __ATOMIC_RELEASE);
  CHECK_EQ(engram_burst_wait(running, -1), 0);
  CHECK_EQ(engram_burst_wait(q1, 10000), 0);
  CHECK_EQ(engram_burst_wait(q2, -1), 0);
  CHECK_STR(engram_burst_result(q2), "3");
  engram_burst_release(running);
  engram_burst_release(q1);
  engram_burst_release(q2);
  engram_runtime_destroy(rt);
}

struct opener {
  int delay_us;
};

static void *open_gate_later(void *arg)
{
  struct opener *o = arg;
  usleep((useconds_t)o->delay_us);
  __atomic_store_n(&gate_open_flag, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void shutdown_with_bursts_in_flight(engram_shutdown how)
{
  gate_reset();
  engram_runtime *rt = make_runtime(2, 64, 0);
  if (!rt)
    return;
  int g = load(rt, "gated", gated_script);
  engram_burst *b[10];
  for (int i = 0; i < 10; i++)
    CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &b[i]), 0);
  gate_wait_entered(2);
  /* Both workers are inside a burst; 8 wait in the queue. The gate opens while shutdown waits. */
  pthread_t t;
  struct opener o = { 20000 };
  pthread_create(&t, NULL, open_gate_later, &o);
  engram_runtime_shutdown(rt, how);
  pthread_join(t, NULL);
  engram_burst *late = NULL;
  CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &late), ENGRAM_ESTATE);
  int ok = 0, cancelled = 0;
  for (int i = 0; i < 10; i++) {
    CHECK_EQ(engram_burst_done(b[i]), 1);
    if (engram_burst_status(b[i]) == 0)
      ok++;
    else if (engram_burst_status(b[i]) == ENGRAM_ESTATE) {
      cancelled++;
      CHECK_STR(engram_burst_message(b[i]), "runtime: burst cancelled by shutdown");
      CHECK_EQ(engram_burst_worker(b[i]), -1);
    }
  }
  if (how == ENGRAM_SHUTDOWN_DRAIN) {
    CHECK_EQ(ok, 10);
  } else {
    CHECK_EQ(ok, 2);
    CHECK_EQ(cancelled, 8);
  }
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  CHECK_EQ(s.completed, 10);
  CHECK_EQ(s.cancelled, how == ENGRAM_SHUTDOWN_CANCEL ? 8 : 0);
  /* handles outlive the runtime */
  engram_runtime_destroy(rt);
  CHECK_EQ(engram_burst_status(b[9]), how == ENGRAM_SHUTDOWN_DRAIN ? 0 : ENGRAM_ESTATE);
  for (int i = 0; i < 10; i++)
    engram_burst_release(b[i]);
}

TEST(shutdown_drain_runs_queued_bursts)
{
  shutdown_with_bursts_in_flight(ENGRAM_SHUTDOWN_DRAIN);
}

TEST(shutdown_cancel_completes_queued_bursts_with_a_status)
{
  shutdown_with_bursts_in_flight(ENGRAM_SHUTDOWN_CANCEL);
}

TEST(handle_released_before_the_burst_ends)
{
  gate_reset();
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  int g = load(rt, "gated", gated_script);
  engram_burst *b;
  CHECK_EQ(engram_runtime_submit(rt, g, NULL, 0, &b), 0);
  gate_wait_entered(1);
  engram_burst_release(b);   /* freed by the worker when it finishes */
  __atomic_store_n(&gate_open_flag, 1, __ATOMIC_RELEASE);
  engram_runtime_destroy(rt);
  CHECK(1);
}

TEST(lua_module_gives_lazy_access_to_submodules)
{
  engram_runtime *rt = make_runtime(1, 0, 0);
  if (!rt)
    return;
  int id = load(rt, "mod", "local engram = require('engram')\n"
                "return function() return { engram.version, type(engram.arena), engram.no_such_module == nil,\n"
                "  type(require('lpeg').match) } end\n");
  engram_burst *b = run(rt, id, NULL, 0);
  CHECK_STR(engram_burst_result(b), "[\"0.1.0\",\"table\",true,\"function\"]");
  engram_burst_release(b);
  engram_runtime_destroy(rt);
}

TEST(stats_json_has_runtime_and_worker_sections)
{
  engram_runtime *rt = make_runtime(2, 0, 0);
  if (!rt)
    return;
  int id = load(rt, "x", "return function() return 1 end");
  for (int i = 0; i < 10; i++)
    engram_burst_release(run(rt, id, NULL, 0));
  char *json = engram_runtime_stats_json(rt);
  CHECK(json != NULL);
  CHECK_CONTAINS(json, "{\"workers\": 2, \"config\": {\"arena_size\": 1048576, \"overflow\": \"error\"");
  CHECK_CONTAINS(json, "\"submitted\": 10, \"rejected\": 0, \"completed\": 10");
  CHECK_CONTAINS(json, "\"per_worker\": [{\"worker\": 0, \"bursts\": ");
  CHECK_CONTAINS(json, "\"lua_heap\": {\"used\": ");
  engram_free(json);
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  CHECK(s.latency_p50_ns > 0);
  CHECK(s.latency_p99_ns >= s.latency_p50_ns);
  CHECK(s.latency_max_ns >= s.latency_p50_ns * 7 / 8);
  s.struct_version = 99;
  CHECK_EQ(engram_runtime_stats_get(rt, &s), ENGRAM_EVERSION);
  engram_worker_stats ws;
  ENGRAM_STRUCT_INIT(ws, ENGRAM_RUNTIME_STATS_VERSION);
  CHECK_EQ(engram_runtime_worker_stats(rt, 2, &ws), ENGRAM_ERANGE);
  CHECK_EQ(engram_runtime_worker_stats(rt, 1, &ws), 0);
  CHECK(ws.lua_heap_used > 0);
  CHECK(ws.lua_heap_peak >= ws.lua_heap_used);
  engram_runtime_destroy(rt);
}

TEST(store_is_burst_store_and_claims_never_outlive_a_burst)
{
  char path[] = "/tmp/engram-host-store-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  unlink(path);
  engram_store_config sc;
  memset(&sc, 0, sizeof sc);
  sc.path = path;
  sc.dim = 4;
  sc.create = 1;
  engram_store *s = engram_store_open(&sc);
  CHECK(s != NULL);
  if (!s) {
    printf("    store: %s\n", engram_last_error());
    return;
  }
  CHECK_EQ(engram_store_import_begin(s), 0);
  for (int i = 1; i <= 5; i++) {
    float emb[4] = { (float)i, 1, 0, 0 };
    engram_episode e = { i, "memory", emb, 1000.0 + i, 0, 1, 0.5f };
    CHECK_EQ(engram_store_import_add(s, &e), 0);
  }
  CHECK_EQ(engram_store_import_commit(s), 0);
  engram_store_close(s);

  engram_runtime_config c;
  engram_runtime_config_default(&c);
  c.workers = 1;
  c.store_path = path;
  engram_runtime *rt = engram_runtime_create(&c);
  CHECK(rt != NULL);
  if (!rt) {
    printf("    runtime: %s\n", engram_last_error());
    unlink(path);
    return;
  }
  int counts = load(rt, "counts", "return function(burst) return burst.store:counts() end");
  int claim_and_fail = load(rt, "claim", "return function(burst)\n"
                            "  local b = assert(burst.store:load(burst.arena, { batch = 3, context = 0 }))\n"
                            "  assert(burst.store:counts().claims == 3)\n"
                            "  error('failed after loading ' .. b.n)\n"
                            "end\n");
  engram_burst *b = run(rt, counts, NULL, 0);
  CHECK_STR(engram_burst_result(b), "{\"claims\":0,\"edges\":0,\"memories\":5,\"patterns\":0,\"unconsolidated\":5}");
  engram_burst_release(b);
  b = run(rt, claim_and_fail, NULL, 0);
  CHECK_EQ(engram_burst_status(b), ENGRAM_ESCRIPT);
  CHECK_CONTAINS(engram_burst_message(b), "claim:4: failed after loading 3");
  engram_burst_release(b);
  b = run(rt, counts, NULL, 0);
  CHECK_CONTAINS(engram_burst_result(b), "\"claims\":0,");
  engram_burst_release(b);
  engram_runtime_destroy(rt);

  c.store_path = "/nonexistent/dir/memory.db";
  CHECK(engram_runtime_create(&c) == NULL);
  CHECK_CONTAINS(engram_last_error(), "/nonexistent/dir/memory.db");
  unlink(path);
  char side[64];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

int main(void)
{
  RUN(function_script_sees_params_id_and_arena);
  RUN(stage_table_runs_in_index_order_passing_results);
  RUN(results_encode_as_json);
  RUN(script_error_is_the_result_and_the_worker_keeps_serving);
  RUN(bad_inputs_name_the_file_and_line);
  RUN(bad_config_is_refused_with_the_field_named);
  RUN(arena_views_live_for_one_burst);
  RUN(script_cache_counts_hits_misses_and_evictions);
  RUN(full_queue_rejects_and_wait_times_out);
  RUN(shutdown_drain_runs_queued_bursts);
  RUN(shutdown_cancel_completes_queued_bursts_with_a_status);
  RUN(handle_released_before_the_burst_ends);
  RUN(lua_module_gives_lazy_access_to_submodules);
  RUN(stats_json_has_runtime_and_worker_sections);
  RUN(store_is_burst_store_and_claims_never_outlive_a_burst);
  return test_done();
}
