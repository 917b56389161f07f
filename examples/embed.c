/*
 * embed.c — embedding the engram runtime in a C program: the whole loop.
 *
 *   1. create a runtime from a config (workers, arena, deadline, Lua heap limit);
 *   2. load a pipeline script (here from a string; engram_runtime_load_file for files);
 *   3. submit bursts with parameters from several threads, handling a full queue;
 *   4. wait for each burst, read its status and its result (JSON text);
 *   5. read the stats, shut down, release the handles.
 *
 * Build: cc embed.c -lengram -lluajit-5.1 -lsqlite3 -lm -ldl -pthread -rdynamic
 * (-rdynamic lets the Lua side reach libengram's symbols through the FFI; linking
 * libengram.so instead works too). Exits 0 when every step behaved as shown.
 */
#include <engram.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

/* The pipeline: two stages. The first fills a vector in the burst's arena (scratch memory that
 * is reset when the burst ends), the second reduces it to plain numbers — views must not
 * outlive their burst, so results are copied out as Lua values. */
static const char pipeline[] =
  "local function fill(burst)\n"
  "  local n = burst.params.n\n"
  "  local v = burst.arena:floats(n)\n"
  "  for i = 0, n - 1 do v[i] = burst.params.scale * i end\n"
  "  return v\n"
  "end\n"
  "local function reduce(burst, v)\n"
  "  local sum = 0\n"
  "  for i = 0, #v - 1 do sum = sum + v[i] end\n"
  "  return { label = burst.params.label, n = #v, sum = sum }\n"
  "end\n"
  "return { fill, reduce }\n";

enum { THREADS = 3, PER_THREAD = 40 };

struct client {
  engram_runtime *rt;
  int script;
  int index;
  int failures;
};

/* One client thread: submit, wait, check. Submit is thread-safe and never blocks; a full queue
 * is reported as ENGRAM_EBUSY and is the caller's to retry (or shed). */
static void *client_main(void *arg)
{
  struct client *c = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    char label[32];
    snprintf(label, sizeof label, "client%d-%d", c->index, i);
    engram_param params[] = {
      { "n", NULL, 100 + i },
      { "scale", NULL, 2 },
      { "label", label, 0 },
    };
    engram_burst *b;
    int rc;
    while ((rc = engram_runtime_submit(c->rt, c->script, params, 3, &b)) == ENGRAM_EBUSY)
      sched_yield();
    if (rc != 0) {
      fprintf(stderr, "submit: %s\n", engram_last_error());
      c->failures++;
      continue;
    }
    engram_burst_wait(b, -1);
    long n = 100 + i;
    char want[128];
    snprintf(want, sizeof want, "{\"label\":\"%s\",\"n\":%ld,\"sum\":%ld}", label, n, n * (n - 1));
    if (engram_burst_status(b) != 0 || strcmp(engram_burst_result(b), want) != 0) {
      fprintf(stderr, "burst %llu: %s %s (expected %s)\n", (unsigned long long)engram_burst_id(b),
              engram_burst_message(b), engram_burst_result(b) ? engram_burst_result(b) : "", want);
      c->failures++;
    }
    engram_burst_release(b);
  }
  return NULL;
}

int main(void)
{
  if (engram_version() / 100 != ENGRAM_VERSION_NUM / 100) {
    fprintf(stderr, "libengram %d does not match engram.h %d\n", engram_version(), ENGRAM_VERSION_NUM);
    return 1;
  }

  /* 1. the runtime */
  engram_runtime_config config;
  if (engram_runtime_config_default(&config) != 0) {
    fprintf(stderr, "config: %s\n", engram_last_error());
    return 1;
  }
  config.workers = 2;
  config.arena_size = (size_t)4 << 20;
  config.timeout_ms = 2000;                 /* a runaway burst ends with ENGRAM_ETIMEOUT */
  config.lua_heap_limit = (size_t)64 << 20; /* a memory bomb ends with ENGRAM_EFULL */
  config.queue_capacity = 16;
  engram_runtime *rt = engram_runtime_create(&config);
  if (!rt) {
    fprintf(stderr, "runtime: %s\n", engram_last_error());
    return 1;
  }

  /* 2. scripts: syntax errors are reported here, with the line */
  int script = engram_runtime_load_string(rt, "pipeline", pipeline, sizeof pipeline - 1);
  if (script < 0) {
    fprintf(stderr, "load: %s\n", engram_last_error());
    return 1;
  }
  static const char broken[] = "return function(burst)\n  return burst.params.x +\nend\n";
  if (engram_runtime_load_string(rt, "broken", broken, sizeof broken - 1) != ENGRAM_ESCRIPT ||
      !strstr(engram_last_error(), "broken:3:")) {
    fprintf(stderr, "expected a syntax error at broken:3, got '%s'\n", engram_last_error());
    return 1;
  }

  /* 3 + 4. clients on several threads */
  struct client clients[THREADS];
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) {
    clients[i] = (struct client){ rt, script, i, 0 };
    pthread_create(&threads[i], NULL, client_main, &clients[i]);
  }
  int failures = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    failures += clients[i].failures;
  }

  /* A failing burst: the error is the burst's result; the worker keeps serving. */
  static const char faulty[] = "return function(burst) local t = nil; return t.x end\n";
  int bad = engram_runtime_load_string(rt, "faulty", faulty, sizeof faulty - 1);
  engram_burst *b;
  if (bad < 0 || engram_runtime_submit(rt, bad, NULL, 0, &b) != 0) {
    fprintf(stderr, "faulty: %s\n", engram_last_error());
    return 1;
  }
  engram_burst_wait(b, -1);
  if (engram_burst_status(b) != ENGRAM_ESCRIPT || !strstr(engram_burst_message(b), "faulty:1:")) {
    fprintf(stderr, "expected a script error at faulty:1, got %d '%s'\n", engram_burst_status(b),
            engram_burst_message(b));
    failures++;
  }
  printf("a failing burst reports: %.60s...\n", engram_burst_message(b));
  engram_burst_release(b);

  /* 5. stats and shutdown */
  engram_runtime_stats stats;
  ENGRAM_STRUCT_INIT(stats, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &stats);
  printf("%llu bursts on %u workers, %llu rejected submits (retried), run time p50 %llu ns, p99 %llu ns\n",
         (unsigned long long)stats.completed, stats.workers, (unsigned long long)stats.rejected,
         (unsigned long long)stats.latency_p50_ns, (unsigned long long)stats.latency_p99_ns);
  if (stats.completed != THREADS * PER_THREAD + 1)
    failures++;
  char *json = engram_runtime_stats_json(rt);
  if (!json)
    failures++;
  engram_free(json);

  engram_runtime_shutdown(rt, ENGRAM_SHUTDOWN_DRAIN);
  engram_runtime_destroy(rt);
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
