/*
 * main.c — engram-run: run a consolidation pipeline script for N bursts on a pool of workers.
 *
 *   engram-run SCRIPT [--workers N] [--arena-size SIZE] [--overflow MODE] [--db PATH]
 *                     [--bursts N] [--timeout MS] [--lua-heap SIZE] [--param KEY=VALUE]...
 *                     [--quiet] [--stats[=json]] [--help]
 *   engram-run import FILE --db PATH
 *   engram-run demo [--db PATH] [--episodes N] [--workers N] [--arena-size SIZE] [--seed N]
 *
 * Results go to stdout, one JSON line per burst in burst order; failures to stderr. Exit
 * status: 0 every burst succeeded, 1 a burst (or the script) failed, 2 usage error.
 */
#include "engram.h"
#include "host.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAILED 1
#define EXIT_USAGE  2

static const char usage_text[] =
  "usage: engram-run SCRIPT [options]\n"
  "       engram-run import FILE --db PATH\n"
  "       engram-run demo [--db PATH] [--episodes N] [--workers N] [--arena-size SIZE] [--seed N]\n"
  "\n"
  "Run the pipeline SCRIPT (a Lua file returning a function, or a table of stage functions)\n"
  "for a number of bursts on a pool of worker threads. Each burst's return values are printed\n"
  "as one JSON line on stdout, in burst order; failures are reported on stderr.\n"
  "\n"
  "options:\n"
  "  --workers N          worker threads, 1..256 (default: online CPUs, at most --bursts)\n"
  "  --arena-size SIZE    arena per worker: bytes or with KiB, MiB, GiB, K, M, G, 64KiB..1GiB\n"
  "                       (default: $ENGRAM_ARENA_SIZE or 1MiB)\n"
  "  --overflow MODE      when a burst overflows its arena: error, panic or fallback\n"
  "                       (default: $ENGRAM_ARENA_OVERFLOW or error)\n"
  "  --db PATH            the SQLite memory store, seen by scripts as burst.store (one\n"
  "                       connection per worker; default: none). The default pipeline on a\n"
  "                       768-d store uses about 1 MiB of arena a burst; give it 2MiB\n"
  "  --bursts N           bursts to run (default 1)\n"
  "  --timeout MS         deadline per burst in milliseconds, 0 for none (default 0)\n"
  "  --lua-heap SIZE      Lua heap limit per worker, at least 1MiB (default: none)\n"
  "  --param KEY=VALUE    burst.params.KEY = VALUE, a number when VALUE reads as one;\n"
  "                       repeatable\n"
  "  --quiet              do not print the results\n"
  "  --stats[=json]       print runtime and arena stats after the run (text, or one JSON line)\n"
  "  --help               this text\n"
  "\n"
  "import FILE --db PATH  load JSON Lines episodes (id, content, embedding, created_at, ...)\n"
  "                       into the store, creating it if needed; all or nothing\n"
  "demo                   generate clustered 768-d episodes over six weeks into a fresh store\n"
  "                       (default engram-demo.db, 3000 episodes; an existing file is replaced\n"
  "                       only if the demo made it), consolidate them all with\n"
  "                       scripts/consolidate.lua and print what changed\n"
  "\n"
  "environment: ENGRAM_ARENA_SIZE, ENGRAM_ARENA_OVERFLOW, ENGRAM_ARENA_HUGEPAGES,\n"
  "  ENGRAM_ARENA_PREFAULT; ENGRAM_LUA_PATH or ENGRAM_ROOT locate the engram Lua module.\n"
  "\n"
  "exit status: 0 every burst succeeded; 1 a burst failed (script error, deadline, heap or\n"
  "  arena limit), the script does not compile, or the runtime cannot start; 2 usage error\n"
  "  (unknown option, bad value, missing or unreadable SCRIPT).\n";

struct options {
  const char *script;
  engram_runtime_config config;
  int workers_set;
  uint64_t bursts;
  engram_param *params;
  size_t nparams;
  int quiet;
  int stats;                 /* 0 none, 1 text, 2 json */
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
  va_list ap;
  fputs("engram-run: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(engram-run --help lists the options)\n", stderr);
  return EXIT_USAGE;
}

static int parse_uint(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (!*v || *v == '-' || *end || errno || n < lo || n > hi)
    return usage_error("bad %s '%s' (expected a whole number from %llu to %llu)", flag, v,
                       (unsigned long long)lo, (unsigned long long)hi);
  *out = n;
  return 0;
}

static int parse_size_flag(const char *flag, const char *v, size_t lo, size_t hi, size_t *out)
{
  size_t n;
  if (engram_parse_size(v, &n) != 0 || n < lo || n > hi) {
    char los[32], his[32];
    snprintf(los, sizeof los, lo == ((size_t)64 << 10) ? "64KiB" : "1MiB");
    snprintf(his, sizeof his, hi == ((size_t)1 << 30) ? "1GiB" : "the address space");
    return usage_error("bad %s '%s' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, "
                       "from %s to %s)", flag, v, los, his);
  }
  *out = n;
  return 0;
}

/* A --param value: a number when all of it reads as a finite number, else a string. */
static int add_param(struct options *o, const char *kv)
{
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv)
    return usage_error("bad --param '%s' (expected KEY=VALUE, for example --param batch=100)", kv);
  engram_param *p = realloc(o->params, (o->nparams + 1) * sizeof *p);
  if (!p)
    return usage_error("out of memory");
  o->params = p;
  engram_param *e = &p[o->nparams++];
  e->key = strndup(kv, (size_t)(eq - kv));
  const char *v = eq + 1;
  char *end;
  double d = strtod(v, &end);
  if (*v && !*end && isfinite(d) && *v != ' ') {
    e->text = NULL;
    e->number = d;
  } else {
    e->text = v;
    e->number = 0;
  }
  return 0;
}

/* The value of option `name` at argv[*i]: "--name=value" or "--name value". */
static const char *flag_value(int argc, char **argv, int *i, const char *name, int *rc)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (a[n] == '=')
    return a + n + 1;
  if (*i + 1 >= argc) {
    *rc = usage_error("%s needs a value", name);
    return NULL;
  }
  return argv[++*i];
}

static int is_flag(const char *a, const char *name)
{
  size_t n = strlen(name);
  return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

static int parse_args(int argc, char **argv, struct options *o)
{
  int rc = 0;
  if (engram_runtime_config_default(&o->config) != 0) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    return EXIT_USAGE;
  }
  o->bursts = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    uint64_t n;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage_text, stdout);
      exit(0);
    } else if (is_flag(a, "--workers")) {
      if (!(v = flag_value(argc, argv, &i, "--workers", &rc)) ||
          (rc = parse_uint("--workers", v, 1, ENGRAM_RUNTIME_MAX_WORKERS, &n)))
        return rc ? rc : EXIT_USAGE;
      o->config.workers = (uint32_t)n;
      o->workers_set = 1;
    } else if (is_flag(a, "--bursts")) {
      if (!(v = flag_value(argc, argv, &i, "--bursts", &rc)) ||
          (rc = parse_uint("--bursts", v, 1, (uint64_t)1 << 40, &o->bursts)))
        return rc ? rc : EXIT_USAGE;
    } else if (is_flag(a, "--timeout")) {
      if (!(v = flag_value(argc, argv, &i, "--timeout", &rc)) ||
          (rc = parse_uint("--timeout", v, 0, 86400000, &n)))
        return rc ? rc : EXIT_USAGE;
      o->config.timeout_ms = (uint32_t)n;
    } else if (is_flag(a, "--arena-size")) {
      if (!(v = flag_value(argc, argv, &i, "--arena-size", &rc)) ||
          (rc = parse_size_flag("--arena-size", v, ENGRAM_ARENA_MIN_SIZE, ENGRAM_ARENA_MAX_SIZE,
                                &o->config.arena_size)))
        return rc ? rc : EXIT_USAGE;
    } else if (is_flag(a, "--lua-heap")) {
      if (!(v = flag_value(argc, argv, &i, "--lua-heap", &rc)) ||
          (rc = parse_size_flag("--lua-heap", v, (size_t)1 << 20, SIZE_MAX, &o->config.lua_heap_limit)))
        return rc ? rc : EXIT_USAGE;
    } else if (is_flag(a, "--overflow")) {
      if (!(v = flag_value(argc, argv, &i, "--overflow", &rc)))
        return rc;
      if (strcmp(v, "error") == 0)
        o->config.overflow = ENGRAM_OVERFLOW_ERROR;
      else if (strcmp(v, "panic") == 0)
        o->config.overflow = ENGRAM_OVERFLOW_PANIC;
      else if (strcmp(v, "fallback") == 0)
        o->config.overflow = ENGRAM_OVERFLOW_FALLBACK;
      else
        return usage_error("bad --overflow '%s' (expected error, panic or fallback)", v);
    } else if (is_flag(a, "--db")) {
      if (!(v = flag_value(argc, argv, &i, "--db", &rc)))
        return rc;
      if (access(v, R_OK | W_OK) != 0)
        return usage_error("cannot open --db '%s' (%s)", v, strerror(errno));
      o->config.store_path = v;
    } else if (is_flag(a, "--param")) {
      if (!(v = flag_value(argc, argv, &i, "--param", &rc)) || (rc = add_param(o, v)))
        return rc ? rc : EXIT_USAGE;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      o->quiet = 1;
    } else if (strcmp(a, "--stats") == 0 || strcmp(a, "--stats=text") == 0) {
      o->stats = 1;
    } else if (strcmp(a, "--stats=json") == 0) {
      o->stats = 2;
    } else if (strncmp(a, "--stats=", 8) == 0) {
      return usage_error("bad --stats '%s' (expected --stats, --stats=text or --stats=json)", a + 8);
    } else if (a[0] == '-' && a[1] != '\0') {
      return usage_error("unknown option '%s'", a);
    } else if (!o->script) {
      o->script = a;
    } else {
      return usage_error("one SCRIPT only (got '%s' and '%s')", o->script, a);
    }
  }
  if (!o->script)
    return usage_error("no SCRIPT given");
  if (access(o->script, R_OK) != 0)
    return usage_error("cannot read script '%s' (%s)", o->script, strerror(errno));
  if (!o->workers_set && o->config.workers > o->bursts)
    o->config.workers = (uint32_t)o->bursts;
  return 0;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_ns(char *buf, size_t cap, uint64_t ns)
{
  if (ns < 10000)
    snprintf(buf, cap, "%llu ns", (unsigned long long)ns);
  else if (ns < 10000000)
    snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
  else
    snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
}

static void fmt_bytes(char *buf, size_t cap, uint64_t n)
{
  if (n < 1024)
    snprintf(buf, cap, "%llu B", (unsigned long long)n);
  else if (n < 1024 * 1024)
    snprintf(buf, cap, "%.1f KiB", (double)n / 1024);
  else
    snprintf(buf, cap, "%.1f MiB", (double)n / (1024 * 1024));
}

static void print_stats_text(engram_runtime *rt, double seconds)
{
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  char p50[32], p99[32], mx[32];
  fmt_ns(p50, sizeof p50, s.latency_p50_ns);
  fmt_ns(p99, sizeof p99, s.latency_p99_ns);
  fmt_ns(mx, sizeof mx, s.latency_max_ns);
  printf("runtime: %u workers, %llu bursts in %.3f s (%.0f/s), %llu rejected; run time p50 %s, p99 %s, max %s\n",
         s.workers, (unsigned long long)s.completed, seconds, seconds > 0 ? (double)s.completed / seconds : 0.0,
         (unsigned long long)s.rejected, p50, p99, mx);
  for (uint32_t i = 0; i < s.workers; i++) {
    engram_worker_stats w;
    ENGRAM_STRUCT_INIT(w, ENGRAM_RUNTIME_STATS_VERSION);
    engram_runtime_worker_stats(rt, i, &w);
    char hw[32], cap[32], used[32], peak[32];
    fmt_bytes(hw, sizeof hw, w.arena_high_water);
    fmt_bytes(cap, sizeof cap, w.arena_capacity);
    fmt_bytes(used, sizeof used, w.lua_heap_used);
    fmt_bytes(peak, sizeof peak, w.lua_heap_peak);
    fmt_ns(p50, sizeof p50, w.latency_p50_ns);
    fmt_ns(p99, sizeof p99, w.latency_p99_ns);
    printf("worker %u: %llu bursts, %llu errors, %llu timeouts, %llu heap-limit; arena high-water %s of %s; "
           "lua heap %s (peak %s); states %llu (%llu abandoned); cache %llu hits %llu misses %llu "
           "evictions; p50 %s p99 %s\n",
           i, (unsigned long long)w.bursts, (unsigned long long)w.errors, (unsigned long long)w.timeouts,
           (unsigned long long)w.heap_limit_hits, hw, cap, used, peak, (unsigned long long)w.states_created,
           (unsigned long long)w.states_abandoned, (unsigned long long)w.cache_hits,
           (unsigned long long)w.cache_misses, (unsigned long long)w.cache_evictions, p50, p99);
  }
  engram_stats a;
  ENGRAM_STRUCT_INIT(a, ENGRAM_STATS_VERSION);
  if (engram_stats_snapshot(&a) == 0) {
    char hw[32];
    fmt_bytes(hw, sizeof hw, a.high_water_max);
    printf("arenas: %llu live, %llu retired, %llu resets, %llu overflows, largest high-water %s, "
           "fallback %llu chunks\n",
           (unsigned long long)a.arenas_live, (unsigned long long)a.arenas_retired,
           (unsigned long long)a.resets, (unsigned long long)a.overflows, hw,
           (unsigned long long)a.fallback_chunks);
  }
}

static void print_stats_json(engram_runtime *rt, double seconds)
{
  char *r = engram_runtime_stats_json(rt);
  char *p = engram_stats_json();
  /* One line, so the report is one JSON Lines record (raw newlines are only whitespace in JSON). */
  for (char *q = p; q && *q; q++)
    if (*q == '\n')
      *q = ' ';
  printf("{\"seconds\": %.6f, \"runtime\": %s, \"process\": %s}\n", seconds, r ? r : "null", p ? p : "null");
  engram_free(r);
  engram_free(p);
}

static void progress(uint64_t done, uint64_t total, uint64_t failed, double started)
{
  double t = now_s() - started;
  fprintf(stderr, "\r\033[Kengram-run: %llu/%llu bursts, %llu failed, %.0f/s",
          (unsigned long long)done, (unsigned long long)total, (unsigned long long)failed,
          t > 0 ? (double)done / t : 0.0);
  fflush(stderr);
}

static int run_import(int argc, char **argv);
static int run_demo(int argc, char **argv);

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "import") == 0)
    return run_import(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "demo") == 0)
    return run_demo(argc - 1, argv + 1);

  struct options o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(argc, argv, &o);
  if (rc)
    return rc;

  engram_runtime *rt = engram_runtime_create(&o.config);
  if (!rt) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    return EXIT_FAILED;
  }
  int script = engram_runtime_load_file(rt, o.script);
  if (script < 0) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    engram_runtime_destroy(rt);
    return script == ENGRAM_EIO ? EXIT_USAGE : EXIT_FAILED;
  }

  /* A window of bursts in flight, completed and reported in order. */
  uint64_t window = o.config.queue_capacity < o.bursts ? o.config.queue_capacity : o.bursts;
  engram_burst **ring = calloc(window, sizeof *ring);
  if (!ring) {
    fprintf(stderr, "engram-run: out of memory\n");
    engram_runtime_destroy(rt);
    return EXIT_FAILED;
  }
  int show_progress = isatty(1) && isatty(2) && o.bursts > 1;
  double started = now_s(), last_progress = started;
  uint64_t submitted = 0, done = 0, failed = 0;
  while (done < o.bursts) {
    while (submitted < o.bursts && submitted - done < window) {
      engram_burst **slot = &ring[submitted % window];
      int e = engram_runtime_submit(rt, script, o.params, o.nparams, slot);
      if (e == ENGRAM_EBUSY)
        break;
      if (e != 0) {
        fprintf(stderr, "engram-run: %s\n", engram_last_error());
        engram_runtime_destroy(rt);
        return EXIT_FAILED;
      }
      submitted++;
    }
    engram_burst *b = ring[done % window];
    engram_burst_wait(b, -1);
    int status = engram_burst_status(b);
    if (status == 0) {
      if (!o.quiet) {
        if (show_progress)
          fputs("\r\033[K", stderr);
        printf("%s\n", engram_burst_result(b));
      }
    } else {
      failed++;
      if (show_progress)
        fputs("\r\033[K", stderr);
      fflush(stdout);
      fprintf(stderr, "engram-run: burst %llu failed (%s): %s\n", (unsigned long long)engram_burst_id(b),
              engram_strerror(status), engram_burst_message(b));
    }
    engram_burst_release(b);
    done++;
    if (show_progress) {
      double t = now_s();
      if (t - last_progress > 0.1 || done == o.bursts) {
        progress(done, o.bursts, failed, started);
        last_progress = t;
      }
    }
  }
  double seconds = now_s() - started;
  if (show_progress)
    fputs("\n", stderr);
  fflush(stdout);
  if (o.stats == 1)
    print_stats_text(rt, seconds);
  else if (o.stats == 2)
    print_stats_json(rt, seconds);
  engram_runtime_destroy(rt);
  free(ring);
  for (size_t i = 0; i < o.nparams; i++)
    free((char *)o.params[i].key);
  free(o.params);
  return failed ? EXIT_FAILED : 0;
}

/* ==========================================================================================
 * engram-run import / demo: one-off Lua work (parsing, generating, reporting) runs as a burst
 * of a one-worker runtime, so it finds the engram module exactly as pipelines do.
 * ========================================================================================== */

/* Run `script_text` once with params on a fresh one-worker runtime (no store). Returns the
 * burst's status; *json gets a malloc'd copy of its result (NULL on failure, the message is
 * printed). Lua-side failures meant for the user are printed by the script itself, which then
 * returns false. */
static int run_once(engram_runtime *rt, int script, const engram_param *params, size_t n, char **json)
{
  engram_burst *b;
  *json = NULL;
  int rc = engram_runtime_submit(rt, script, params, n, &b);
  if (rc != 0) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    return rc;
  }
  engram_burst_wait(b, -1);
  rc = engram_burst_status(b);
  if (rc != 0)
    fprintf(stderr, "engram-run: %s\n", engram_burst_message(b));
  else
    *json = strdup(engram_burst_result(b));
  engram_burst_release(b);
  return rc;
}

static engram_runtime *tool_runtime(size_t arena_size, const char *script_text, int *script)
{
  engram_runtime_config c;
  if (engram_runtime_config_default(&c) != 0) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    return NULL;
  }
  c.workers = 1;
  if (arena_size)
    c.arena_size = arena_size;
  engram_runtime *rt = engram_runtime_create(&c);
  if (!rt) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    return NULL;
  }
  *script = engram_runtime_load_string(rt, "=engram-run", script_text, strlen(script_text));
  if (*script < 0) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    engram_runtime_destroy(rt);
    return NULL;
  }
  return rt;
}

static const char import_script[] =
  "local import = require('engram.import')\n"
  "return function(burst)\n"
  "  local n, err = import.file(burst.params.file, burst.params.db)\n"
  "  if not n then io.stderr:write('engram-run: ', err, '\\n') return false end\n"
  "  return n\n"
  "end\n";

static int run_import(int argc, char **argv)
{
  const char *file = NULL, *db = NULL;
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else if (is_flag(a, "--db")) {
      if (!(db = flag_value(argc, argv, &i, "--db", &rc)))
        return rc;
    } else if (a[0] == '-' && a[1] != '\0') {
      return usage_error("unknown option '%s' for import", a);
    } else if (!file) {
      file = a;
    } else {
      return usage_error("import takes one FILE (got '%s' and '%s')", file, a);
    }
  }
  if (!file)
    return usage_error("import needs a FILE of JSON Lines episodes");
  if (!db)
    return usage_error("import needs --db PATH (the store to import into)");
  if (access(file, R_OK) != 0)
    return usage_error("cannot read import file '%s' (%s)", file, strerror(errno));

  int script;
  engram_runtime *rt = tool_runtime(0, import_script, &script);
  if (!rt)
    return EXIT_FAILED;
  engram_param params[] = { { "file", file, 0 }, { "db", db, 0 } };
  char *json;
  rc = run_once(rt, script, params, 2, &json);
  engram_runtime_destroy(rt);
  if (rc != 0 || !json || strcmp(json, "false") == 0) {
    free(json);
    return EXIT_FAILED;
  }
  printf("imported %s episodes from %s into %s\n", json, file, db);
  free(json);
  return 0;
}

/* The demo's Lua side: generate (keeping the "before" snapshot in the script's upvalue: the
 * runtime has one worker, whose state keeps the script) and report. */
static const char demo_script[] =
  "local demo = require('engram.demo')\n"
  "local store = require('engram.store')\n"
  "local before\n"
  "return function(burst)\n"
  "  local p = burst.params\n"
  "  if p.step == 'generate' then\n"
  "    local info, err = demo.generate{ path = p.db, episodes = p.episodes, seed = p.seed }\n"
  "    if not info then io.stderr:write('engram-run: ', err, '\\n') return false end\n"
  "    local s = assert(store.open{ path = p.db })\n"
  "    before = demo.snapshot(s)\n"
  "    s:close()\n"
  "    return info\n"
  "  end\n"
  "  local s = assert(store.open{ path = p.db })\n"
  "  local after = demo.snapshot(s)\n"
  "  s:close()\n"
  "  io.stdout:write(demo.report(before, after, p.extra), '\\n')\n"
  "  io.stdout:flush()\n"
  "  return true\n"
  "end\n";

/* The number after "name": in a flat JSON object (the pipeline's result), or NAN. */
static double json_number(const char *json, const char *name)
{
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char *p = json ? strstr(json, key) : NULL;
  return p ? strtod(p + strlen(key), NULL) : NAN;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
  if (!n)
    return 0;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Where scripts/consolidate.lua is: beside the Lua module tree the runtime uses. */
static int find_pipeline(char *out, size_t cap)
{
  char dir[PATH_MAX];
  engram_host_default_module_dir(dir, sizeof dir);
  const char *base = dir[0] ? dir : ".";
  /* an installed tree keeps the module in share/lua/5.1 and the scripts in share/engram */
  snprintf(out, cap, "%s/../../engram/scripts/consolidate.lua", base);
  if (access(out, R_OK) == 0)
    return 0;
  snprintf(out, cap, "%s/../scripts/consolidate.lua", base);   /* the source tree */
  return access(out, R_OK) == 0 ? 0 : -1;
}

static const char *const stage_names[] = { "load", "similarity", "patterns", "spread", "decay", "store" };
#define NSTAGES (sizeof stage_names / sizeof stage_names[0])

static int run_demo(int argc, char **argv)
{
  const char *db = "engram-demo.db";
  uint64_t episodes = 3000, seed = 7, workers = 0;
  size_t arena_size = (size_t)16 << 20;
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else if (is_flag(a, "--db")) {
      if (!(db = flag_value(argc, argv, &i, "--db", &rc)))
        return rc;
    } else if (is_flag(a, "--episodes")) {
      if (!(v = flag_value(argc, argv, &i, "--episodes", &rc)) ||
          (rc = parse_uint("--episodes", v, 100, 1000000, &episodes)))
        return rc ? rc : EXIT_USAGE;
    } else if (is_flag(a, "--seed")) {
      if (!(v = flag_value(argc, argv, &i, "--seed", &rc)) || (rc = parse_uint("--seed", v, 1, UINT32_MAX, &seed)))
        return rc ? rc : EXIT_USAGE;
    } else if (is_flag(a, "--workers")) {
      if (!(v = flag_value(argc, argv, &i, "--workers", &rc)) ||
          (rc = parse_uint("--workers", v, 1, ENGRAM_RUNTIME_MAX_WORKERS, &workers)))
        return rc ? rc : EXIT_USAGE;
    } else if (is_flag(a, "--arena-size")) {
      if (!(v = flag_value(argc, argv, &i, "--arena-size", &rc)) ||
          (rc = parse_size_flag("--arena-size", v, ENGRAM_ARENA_MIN_SIZE, ENGRAM_ARENA_MAX_SIZE, &arena_size)))
        return rc ? rc : EXIT_USAGE;
    } else {
      return usage_error("unknown argument '%s' for demo", a);
    }
  }
  char pipeline[PATH_MAX + 64];
  if (find_pipeline(pipeline, sizeof pipeline) != 0) {
    fprintf(stderr, "engram-run: cannot find the default pipeline (looked for %s; set ENGRAM_ROOT)\n", pipeline);
    return EXIT_FAILED;
  }

  /* 1. generate */
  int tool;
  engram_runtime *trt = tool_runtime(0, demo_script, &tool);
  if (!trt)
    return EXIT_FAILED;
  char *json;
  engram_param gen[] = { { "step", "generate", 0 }, { "db", db, 0 }, { "episodes", NULL, (double)episodes },
                         { "seed", NULL, (double)seed } };
  if (run_once(trt, tool, gen, 4, &json) != 0 || strcmp(json, "false") == 0) {
    free(json);
    engram_runtime_destroy(trt);
    return EXIT_FAILED;
  }
  printf("generated %.0f episodes (%.0f topics, %.0f-d embeddings, ages over six weeks) into %s\n",
         json_number(json, "episodes"), json_number(json, "topics"), json_number(json, "dim"), db);
  fflush(stdout);
  free(json);

  /* 2. consolidate everything, a window of bursts in flight, until a burst finds nothing */
  engram_runtime_config c;
  engram_runtime_config_default(&c);
  if (workers)
    c.workers = (uint32_t)workers;
  c.arena_size = arena_size;
  c.store_path = db;
  engram_runtime *rt = engram_runtime_create(&c);
  int script = rt ? engram_runtime_load_file(rt, pipeline) : -1;
  if (!rt || script < 0) {
    fprintf(stderr, "engram-run: %s\n", engram_last_error());
    engram_runtime_destroy(rt);
    engram_runtime_destroy(trt);
    return EXIT_FAILED;
  }
  size_t window = 2 * (size_t)c.workers;
  engram_burst **ring = calloc(window, sizeof *ring);
  /* per burst: the stage times and their total (ms), NSTAGES + 1 doubles */
  size_t cap_t = 1024, nt = 0;
  double *times = malloc(cap_t * (NSTAGES + 1) * sizeof *times);
  if (!ring || !times) {
    fprintf(stderr, "engram-run: out of memory\n");
    free(ring);
    free(times);
    engram_runtime_destroy(rt);
    engram_runtime_destroy(trt);
    return EXIT_FAILED;
  }
  int tty = isatty(1) && isatty(2), empty = 0, failed = 0;
  uint64_t submitted = 0, done = 0, consolidated = 0;
  double started = now_s(), last = 0;
  while (!failed && (!empty || done < submitted)) {
    while (!empty && !failed && submitted - done < window) {
      if (engram_runtime_submit(rt, script, NULL, 0, &ring[submitted % window]) != 0)
        break;
      submitted++;
    }
    if (done == submitted)
      break;
    engram_burst *b = ring[done % window];
    engram_burst_wait(b, -1);
    if (engram_burst_status(b) != 0) {
      fprintf(stderr, "%sengram-run: burst %llu failed: %s\n", tty ? "\r\033[K" : "",
              (unsigned long long)engram_burst_id(b), engram_burst_message(b));
      failed = 1;
    } else {
      const char *r = engram_burst_result(b);
      double n = json_number(r, "episodes");
      if (!(n > 0)) {
        empty = 1;
      } else {
        consolidated += (uint64_t)n;
        if (nt == cap_t) {   /* without memory for more samples the run goes on, the report uses fewer */
          double *grown = realloc(times, 2 * cap_t * (NSTAGES + 1) * sizeof *times);
          if (grown) {
            times = grown;
            cap_t *= 2;
          }
        }
        if (nt < cap_t) {
          double *row = times + nt * (NSTAGES + 1);
          row[NSTAGES] = 0;
          for (size_t k = 0; k < NSTAGES; k++) {
            row[k] = json_number(strstr(r, "\"timings\":"), stage_names[k]) * 1e3;
            row[NSTAGES] += row[k];
          }
          nt++;
        }
      }
    }
    engram_burst_release(b);
    done++;
    double t = now_s();
    if (tty && (t - last > 0.1 || empty)) {
      fprintf(stderr, "\r\033[Kconsolidating: %llu/%llu episodes, %llu bursts, %.0f bursts/s",
              (unsigned long long)consolidated, (unsigned long long)episodes, (unsigned long long)nt,
              (double)nt / (t - started));
      last = t;
    }
  }
  while (done < submitted) {   /* after a failure: let the in-flight bursts finish */
    engram_burst_wait(ring[done % window], -1);
    engram_burst_release(ring[done % window]);
    done++;
  }
  double seconds = now_s() - started;
  if (tty)
    fputs("\n", stderr);

  /* 3. the report */
  char extra[1024];
  int len = snprintf(extra, sizeof extra, "  %llu bursts on %u workers in %.2f s (%.0f bursts/s); per burst (ms, median):",
                     (unsigned long long)nt, c.workers, seconds, seconds > 0 ? (double)nt / seconds : 0.0);
  double *col = malloc((nt ? nt : 1) * sizeof *col);
  for (size_t k = 0; col && k <= NSTAGES && len > 0 && (size_t)len < sizeof extra; k++) {
    for (size_t i = 0; i < nt; i++)
      col[i] = times[i * (NSTAGES + 1) + k];
    len += snprintf(extra + len, sizeof extra - (size_t)len, k < NSTAGES ? " %s %.2f," : " %s %.2f",
                    k < NSTAGES ? stage_names[k] : "total", median(col, nt));
  }
  free(col);
  engram_runtime_destroy(rt);
  free(times);
  free(ring);
  if (!failed) {
    engram_param rep[] = { { "step", "report", 0 }, { "db", db, 0 }, { "extra", extra, 0 } };
    if (run_once(trt, tool, rep, 3, &json) != 0)
      failed = 1;
    free(json);
  }
  engram_runtime_destroy(trt);
  return failed ? EXIT_FAILED : 0;
}
