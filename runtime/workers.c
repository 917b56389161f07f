/*
 * workers.c — the runtime: worker threads, the bounded burst queue, burst handles (submit,
 * wait, poll, release), the script registry, the deadline watchdog, stats and shutdown.
 *
 * One mutex guards the queue; a worker never holds it while running a burst. Idle workers
 * spin briefly on an atomic count before sleeping on the condition variable, and waiters spin
 * briefly before sleeping on a futex in the handle, so a burst submitted to a warm runtime
 * is picked up and reported without a system call on either side.
 */
#include "host.h"
#include "text.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define SPIN_WORKER_NS  30000   /* an idle worker polls the queue this long before sleeping */
#define SPIN_WAITER_NS  20000   /* engram_burst_wait polls this long before sleeping */
#define HIST_BUCKETS    256

enum { BURST_QUEUED = 0, BURST_RUNNING = 1, BURST_DONE = 2 };

struct engram_burst {
  int refs;                  /* submitter + runtime */
  uint32_t state;            /* BURST_*; also the futex word */
  uint32_t waiters;
  int status;
  uint64_t id;
  const struct engram_script *script;
  struct host_param *params;
  size_t nparams;
  char *message;
  char *json;
  int worker;
  uint64_t run_ns;
  char small[96];            /* small results live here: no malloc on one thread and free on another */
};

struct worker {
  engram_runtime *rt;
  uint32_t index;
  pthread_t thread;
  int started;
  int exited;                /* under rt->watch_lock */
  int init_status;
  char init_message[512];
  uint64_t running_seq;      /* 0 while idle; read by the watchdog */
  uint64_t running_start;    /* ns */
  uint64_t latency_max;
  uint64_t hist[HIST_BUCKETS];
  struct engram_host host;
} __attribute__((aligned(64)));

struct engram_runtime {
  engram_runtime_config config;
  char module_path[1024];
  char *store_path;

  pthread_mutex_t lock;      /* queue, stopping, ready */
  pthread_cond_t work;       /* workers sleep here */
  pthread_cond_t ready_cv;   /* creation waits for every worker's state */
  engram_burst **queue;
  uint32_t head, count;
  uint32_t queued;           /* == count, for lock-free polling by spinning workers */
  uint32_t sleepers;
  int stopping;              /* 0, 1 = drain, 2 = cancel */
  int joined;
  uint32_t ready;

  struct worker *workers;

  pthread_mutex_t watch_lock;   /* a worker marks itself exited under it */
  pthread_cond_t watch_cv;
  pthread_t watchdog;
  int watchdog_running, watchdog_stop;

  /* with a store: the thread that checkpoints its WAL, so no burst's commit has to */
  pthread_t checkpointer;
  int checkpointer_running, checkpointer_stop;
  engram_store *checkpoint_store;

  pthread_mutex_t scripts_lock;
  struct engram_script **scripts;
  uint32_t nscripts, scripts_cap;
  lua_State *check_L;        /* compiles scripts at load time to report syntax errors */

  uint64_t next_id;
  uint64_t submitted, rejected, completed, cancelled;
};

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
  return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

/* ---- latency histogram: 4 log-linear buckets per power of two --------------------------- */

static unsigned hist_bucket(uint64_t v)
{
  if (v < 4)
    return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v);
  return 4u + (e - 2u) * 4u + (unsigned)((v >> (e - 2u)) & 3u);
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned i)
{
  if (i < 4)
    return i;
  unsigned e = (i - 4u) / 4u + 2u, sub = (i - 4u) % 4u;
  uint64_t lo = (uint64_t)(4u + sub) << (e - 2u), width = (uint64_t)1 << (e - 2u);
  return lo + width / 2;
}

static uint64_t hist_percentile(const uint64_t *h, uint64_t total, double pct)
{
  if (total == 0)
    return 0;
  uint64_t rank = (uint64_t)((double)total * pct / 100.0);
  if (rank >= total)
    rank = total - 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    seen += h[i];
    if (seen > rank)
      return hist_value(i);
  }
  return hist_value(HIST_BUCKETS - 1);
}

/* A bucket's middle can lie above the largest value seen. */
static uint64_t clamp_to(uint64_t v, uint64_t max)
{
  return v > max ? max : v;
}

/* ---- burst handles ---------------------------------------------------------------------- */

static void burst_unref(engram_burst *b)
{
  if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    free(b->message);
    if (b->json != b->small)
      free(b->json);
    free(b);
  }
}

/* Publish the result; wakes waiters. The runtime's reference is dropped by the caller. */
static void burst_finish(engram_burst *b)
{
  __atomic_store_n(&b->state, BURST_DONE, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&b->waiters, __ATOMIC_SEQ_CST))
    futex(&b->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

int engram_burst_done(const engram_burst *b)
{
  return __atomic_load_n(&b->state, __ATOMIC_ACQUIRE) == BURST_DONE;
}

int engram_burst_wait(engram_burst *b, int64_t timeout_ms)
{
  if (engram_burst_done(b))
    return 0;
  uint64_t start = now_ns();
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
  for (unsigned i = 0;; i++) {
    if (engram_burst_done(b))
      return 0;
    if ((i & 63) == 63 && now_ns() - start > SPIN_WAITER_NS)
      break;
    cpu_relax();
  }
  __atomic_add_fetch(&b->waiters, 1, __ATOMIC_SEQ_CST);
  int rc = 0;
  for (;;) {
    uint32_t s = __atomic_load_n(&b->state, __ATOMIC_SEQ_CST);
    if (s == BURST_DONE)
      break;
    struct timespec ts, *tp = NULL;
    if (deadline != UINT64_MAX) {
      uint64_t now = now_ns();
      if (now >= deadline) {
        rc = engram_fail(ENGRAM_ETIMEOUT, "runtime: burst %llu still running after %lld ms",
                         (unsigned long long)b->id, (long long)timeout_ms);
        break;
      }
      uint64_t left = deadline - now;
      ts.tv_sec = (time_t)(left / 1000000000u);
      ts.tv_nsec = (long)(left % 1000000000u);
      tp = &ts;
    }
    futex(&b->state, FUTEX_WAIT_PRIVATE, s, tp);
  }
  __atomic_sub_fetch(&b->waiters, 1, __ATOMIC_SEQ_CST);
  return rc;
}

int engram_burst_status(const engram_burst *b)
{
  return engram_burst_done(b) ? b->status : ENGRAM_EBUSY;
}

const char *engram_burst_message(const engram_burst *b)
{
  return engram_burst_done(b) && b->message ? b->message : "";
}

const char *engram_burst_result(const engram_burst *b)
{
  return engram_burst_done(b) ? b->json : NULL;
}

uint64_t engram_burst_id(const engram_burst *b)
{
  return b->id;
}

int engram_burst_worker(const engram_burst *b)
{
  return engram_burst_done(b) ? b->worker : -1;
}

uint64_t engram_burst_run_ns(const engram_burst *b)
{
  return engram_burst_done(b) ? b->run_ns : 0;
}

void engram_burst_release(engram_burst *b)
{
  if (b)
    burst_unref(b);
}

/* ---- the worker ------------------------------------------------------------------------- */

/* The next burst, or NULL when the runtime stops and nothing is left to run. */
static engram_burst *take(engram_runtime *rt)
{
  uint64_t start = 0;
  for (unsigned i = 0;; i++) {
    if (__atomic_load_n(&rt->queued, __ATOMIC_RELAXED) || __atomic_load_n(&rt->stopping, __ATOMIC_RELAXED))
      break;
    if ((i & 63) == 63) {
      uint64_t t = now_ns();
      if (!start)
        start = t;
      else if (t - start > SPIN_WORKER_NS)
        break;
    }
    cpu_relax();
  }
  pthread_mutex_lock(&rt->lock);
  while (rt->count == 0 && !rt->stopping) {
    rt->sleepers++;
    pthread_cond_wait(&rt->work, &rt->lock);
    rt->sleepers--;
  }
  engram_burst *b = NULL;
  if (rt->count) {
    b = rt->queue[rt->head];
    rt->head = (rt->head + 1) % rt->config.queue_capacity;
    rt->count--;
    __atomic_store_n(&rt->queued, rt->count, __ATOMIC_RELAXED);
    __atomic_store_n(&b->state, BURST_RUNNING, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&rt->lock);
  return b;
}

static void run_one(struct worker *w, engram_burst *b)
{
  struct host_call c;
  memset(&c, 0, sizeof c);
  c.script = b->script;
  c.params = b->params;
  c.nparams = b->nparams;
  c.id = b->id;
  c.seq = engram_host_next_seq();
  c.json = c.json_inline = b->small;
  c.json_cap = sizeof b->small;

  uint64_t start = now_ns();
  __atomic_store_n(&w->running_start, start, __ATOMIC_RELAXED);
  __atomic_store_n(&w->running_seq, c.seq, __ATOMIC_RELEASE);
  engram_host_run(&w->host, &c);
  __atomic_store_n(&w->running_seq, 0, __ATOMIC_RELEASE);
  uint64_t ns = now_ns() - start;

  STAT_ADD(w->hist[hist_bucket(ns)], 1);
  if (ns > STAT_LOAD(w->latency_max))
    STAT_STORE(w->latency_max, ns);

  b->status = c.status;
  b->message = c.message;
  if (c.status == 0) {
    b->json = c.json;
  } else {
    if (c.json != b->small)
      free(c.json);
    b->json = NULL;
  }
  b->worker = (int)w->index;
  b->run_ns = ns;
  __atomic_add_fetch(&w->rt->completed, 1, __ATOMIC_RELAXED);
  burst_finish(b);
  burst_unref(b);
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  engram_runtime *rt = w->rt;
  struct host_config hc;
  sigset_t set;

  /* The deadline signal must reach this thread even if the creator blocked it. */
  sigemptyset(&set);
  sigaddset(&set, ENGRAM_DEADLINE_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);

  memset(&hc, 0, sizeof hc);
  if (engram_config_arena_default(&hc.arena) != 0) {
    hc.arena.align = ENGRAM_ARENA_DEFAULT_ALIGN;   /* the config's own fields decide the rest */
    hc.arena.huge_pages = ENGRAM_HUGE_AUTO;
  }
  hc.arena.size = rt->config.arena_size;
  hc.arena.overflow = rt->config.overflow;
  hc.heap_limit = rt->config.lua_heap_limit;
  hc.cache_size = rt->config.script_cache;
  hc.timeout_ms = rt->config.timeout_ms;
  hc.module_dir = rt->module_path;
  hc.worker_index = (int)w->index;
  hc.store_path = rt->config.store_path;
  int rc = engram_host_init(&w->host, &hc);

  pthread_mutex_lock(&rt->lock);
  w->init_status = rc;
  if (rc)
    snprintf(w->init_message, sizeof w->init_message, "%s", engram_last_error());
  rt->ready++;
  pthread_cond_broadcast(&rt->ready_cv);
  pthread_mutex_unlock(&rt->lock);

  if (rc == 0) {
    engram_burst *b;
    while ((b = take(rt)) != NULL)
      run_one(w, b);
    engram_host_fini(&w->host);
  }
  pthread_mutex_lock(&rt->watch_lock);
  w->exited = 1;
  pthread_mutex_unlock(&rt->watch_lock);
  return NULL;
}

/* ---- the checkpointer -------------------------------------------------------------------- */

/* Every 20 ms, a passive checkpoint of the store's WAL on a connection of its own. Worker
 * connections never checkpoint (manual_checkpoint), so the fsync of a checkpoint never lands
 * inside a burst. Shares watch_lock / watch_cv with the watchdog for its sleep and its stop. */
static void *checkpointer_main(void *arg)
{
  engram_runtime *rt = arg;
  pthread_mutex_lock(&rt->watch_lock);
  while (!rt->checkpointer_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 20000000u;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    pthread_cond_timedwait(&rt->watch_cv, &rt->watch_lock, &ts);
    if (rt->checkpointer_stop)
      break;
    pthread_mutex_unlock(&rt->watch_lock);
    engram_store_checkpoint(rt->checkpoint_store, NULL);   /* a failure is retried next tick */
    pthread_mutex_lock(&rt->watch_lock);
  }
  pthread_mutex_unlock(&rt->watch_lock);
  engram_store_checkpoint(rt->checkpoint_store, NULL);
  return NULL;
}

static void stop_checkpointer(engram_runtime *rt)
{
  if (rt->checkpointer_running) {
    pthread_mutex_lock(&rt->watch_lock);
    rt->checkpointer_stop = 1;
    pthread_cond_broadcast(&rt->watch_cv);
    pthread_mutex_unlock(&rt->watch_lock);
    pthread_join(rt->checkpointer, NULL);
    rt->checkpointer_running = 0;
  }
  engram_store_close(rt->checkpoint_store);
  rt->checkpoint_store = NULL;
}

/* ---- the watchdog ----------------------------------------------------------------------- */

static void *watchdog_main(void *arg)
{
  engram_runtime *rt = arg;
  uint64_t timeout = (uint64_t)rt->config.timeout_ms * 1000000u;
  uint64_t grace = timeout / 10, tick = timeout / 20;
  if (grace < 2000000u) grace = 2000000u;
  if (grace > 50000000u) grace = 50000000u;
  if (tick < 1000000u) tick = 1000000u;
  if (tick > 10000000u) tick = 10000000u;
  uint32_t n = rt->config.workers;
  uint64_t *soft_sent = calloc(n, sizeof *soft_sent);   /* the seq last sent a soft signal */

  pthread_mutex_lock(&rt->watch_lock);
  while (!rt->watchdog_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + tick;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    pthread_cond_timedwait(&rt->watch_cv, &rt->watch_lock, &ts);
    if (rt->watchdog_stop)
      break;
    uint64_t now = now_ns();
    for (uint32_t i = 0; i < n; i++) {
      struct worker *w = &rt->workers[i];
      if (!w->started || w->exited)
        continue;
      uint64_t seq = __atomic_load_n(&w->running_seq, __ATOMIC_ACQUIRE);
      if (!seq)
        continue;
      uint64_t start = __atomic_load_n(&w->running_start, __ATOMIC_RELAXED);
      if (__atomic_load_n(&w->running_seq, __ATOMIC_ACQUIRE) != seq || now < start + timeout)
        continue;
      int hard = now >= start + timeout + grace;
      if (!hard && soft_sent && soft_sent[i] == seq)
        continue;
      union sigval v;
      v.sival_ptr = (void *)(uintptr_t)((seq << 1) | (uint64_t)hard);
      pthread_sigqueue(w->thread, ENGRAM_DEADLINE_SIGNAL, v);
      if (soft_sent)
        soft_sent[i] = seq;
    }
  }
  pthread_mutex_unlock(&rt->watch_lock);
  free(soft_sent);
  return NULL;
}

/* ---- configuration and creation --------------------------------------------------------- */

int engram_runtime_config_default(engram_runtime_config *out)
{
  engram_arena_config a;
  memset(out, 0, sizeof *out);
  out->struct_size = (uint32_t)sizeof *out;
  out->struct_version = ENGRAM_RUNTIME_CONFIG_VERSION;
  int rc = engram_config_arena_default(&a);
  if (rc)
    return rc;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  out->workers = cpus < 1 ? 1 : cpus > ENGRAM_RUNTIME_MAX_WORKERS ? ENGRAM_RUNTIME_MAX_WORKERS : (uint32_t)cpus;
  out->queue_capacity = 1024;
  out->arena_size = a.size;
  out->overflow = a.overflow;
  out->timeout_ms = 0;
  out->lua_heap_limit = 0;
  out->script_cache = 64;
  out->module_path = NULL;
  out->store_path = NULL;
  return 0;
}

static int check_config(const engram_runtime_config *c)
{
  if (c->struct_size != sizeof *c || c->struct_version != ENGRAM_RUNTIME_CONFIG_VERSION)
    return engram_fail(ENGRAM_EVERSION, "runtime: config struct size %u version %u does not match the "
                       "library (%zu, %d); fill it with engram_runtime_config_default",
                       c->struct_size, c->struct_version, sizeof *c, ENGRAM_RUNTIME_CONFIG_VERSION);
  if (c->workers < 1 || c->workers > ENGRAM_RUNTIME_MAX_WORKERS)
    return engram_fail(ENGRAM_EINVAL, "runtime: workers %u is out of range (1 to %d)", c->workers,
                       ENGRAM_RUNTIME_MAX_WORKERS);
  if (c->queue_capacity < 1 || c->queue_capacity > (1u << 24))
    return engram_fail(ENGRAM_EINVAL, "runtime: queue_capacity %u is out of range (1 to 16777216)",
                       c->queue_capacity);
  if (c->arena_size < ENGRAM_ARENA_MIN_SIZE || c->arena_size > ENGRAM_ARENA_MAX_SIZE) {
    char s[32];
    engram_format_size(s, sizeof s, c->arena_size);
    return engram_fail(ENGRAM_EINVAL, "runtime: arena_size %s is out of range (64KiB to 1GiB)", s);
  }
  if ((unsigned)c->overflow > ENGRAM_OVERFLOW_FALLBACK)
    return engram_fail(ENGRAM_EINVAL, "runtime: overflow %d is not an engram_overflow (0 error, 1 panic, "
                       "2 fallback)", (int)c->overflow);
  if (c->script_cache < 1 || c->script_cache > 65536)
    return engram_fail(ENGRAM_EINVAL, "runtime: script_cache %u is out of range (1 to 65536)", c->script_cache);
  if (c->lua_heap_limit && c->lua_heap_limit < ((size_t)1 << 20))
    return engram_fail(ENGRAM_EINVAL, "runtime: lua_heap_limit %zu is below 1MiB (a Lua state with the "
                       "engram module needs about 300KiB to start)", c->lua_heap_limit);
  return 0;
}

static void join_workers(engram_runtime *rt)
{
  for (uint32_t i = 0; i < rt->config.workers; i++)
    if (rt->workers[i].started)
      pthread_join(rt->workers[i].thread, NULL);
  rt->joined = 1;
}

static void stop_watchdog(engram_runtime *rt)
{
  if (!rt->watchdog_running)
    return;
  pthread_mutex_lock(&rt->watch_lock);
  rt->watchdog_stop = 1;
  pthread_cond_broadcast(&rt->watch_cv);   /* the checkpointer may sleep on it too */
  pthread_mutex_unlock(&rt->watch_lock);
  pthread_join(rt->watchdog, NULL);
  rt->watchdog_running = 0;
}

static void runtime_free(engram_runtime *rt)
{
  for (uint32_t i = 0; i < rt->nscripts; i++) {
    free(rt->scripts[i]->name);
    free(rt->scripts[i]->chunkname);
    free(rt->scripts[i]->text);
    free(rt->scripts[i]);
  }
  free(rt->scripts);
  if (rt->check_L)
    lua_close(rt->check_L);
  pthread_mutex_destroy(&rt->lock);
  pthread_cond_destroy(&rt->work);
  pthread_cond_destroy(&rt->ready_cv);
  pthread_mutex_destroy(&rt->watch_lock);
  pthread_cond_destroy(&rt->watch_cv);
  pthread_mutex_destroy(&rt->scripts_lock);
  free(rt->queue);
  free(rt->workers);
  free(rt->store_path);
  free(rt);
}

engram_runtime *engram_runtime_create(const engram_runtime_config *config)
{
  engram_runtime_config def;
  if (!config) {
    if (engram_runtime_config_default(&def) != 0)
      return NULL;
    config = &def;
  }
  if (check_config(config) != 0)
    return NULL;

  engram_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) {
    engram_fail(ENGRAM_ENOMEM, "runtime: out of memory");
    return NULL;
  }
  rt->config = *config;
  if (config->module_path)
    snprintf(rt->module_path, sizeof rt->module_path, "%s", config->module_path);
  rt->config.module_path = rt->module_path;
  if (config->store_path && !(rt->config.store_path = rt->store_path = strdup(config->store_path))) {
    engram_fail(ENGRAM_ENOMEM, "runtime: out of memory");
    free(rt);
    return NULL;
  }
  pthread_mutex_init(&rt->lock, NULL);
  pthread_cond_init(&rt->work, NULL);
  pthread_cond_init(&rt->ready_cv, NULL);
  pthread_mutex_init(&rt->watch_lock, NULL);
  pthread_mutex_init(&rt->scripts_lock, NULL);
  {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->watch_cv, &ca);
    pthread_condattr_destroy(&ca);
  }
  rt->queue = calloc(config->queue_capacity, sizeof *rt->queue);
  if (posix_memalign((void **)&rt->workers, 64, config->workers * sizeof *rt->workers) != 0)
    rt->workers = NULL;
  if (!rt->queue || !rt->workers) {
    engram_fail(ENGRAM_ENOMEM, "runtime: out of memory for %u workers", config->workers);
    runtime_free(rt);
    return NULL;
  }
  memset(rt->workers, 0, config->workers * sizeof *rt->workers);
  if (config->timeout_ms && engram_host_signal_init() != 0) {
    runtime_free(rt);
    return NULL;
  }

  /* Workers start one after another, each once the previous one has built its state: the
   * first failure (say, the engram module not found) stops creation before more states are
   * built, and no two workers create their first arena at the same instant. */
  int failed = 0;
  char message[512] = "";
  for (uint32_t i = 0; i < config->workers && !failed; i++) {
    struct worker *w = &rt->workers[i];
    w->rt = rt;
    w->index = i;
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e != 0) {
      failed = engram_fail(ENGRAM_ENOMEM, "runtime: cannot start worker %u (%s)", i, strerror(e));
      snprintf(message, sizeof message, "%s", engram_last_error());
      break;
    }
    w->started = 1;
    pthread_mutex_lock(&rt->lock);
    while (rt->ready < i + 1)
      pthread_cond_wait(&rt->ready_cv, &rt->lock);
    if (w->init_status) {
      failed = w->init_status;
      snprintf(message, sizeof message, "%s", w->init_message);
    }
    pthread_mutex_unlock(&rt->lock);
  }
  if (failed) {
    pthread_mutex_lock(&rt->lock);
    rt->stopping = 1;
    pthread_cond_broadcast(&rt->work);
    pthread_mutex_unlock(&rt->lock);
  }

  if (!failed && rt->store_path) {
    engram_store_config sc;
    memset(&sc, 0, sizeof sc);
    sc.path = rt->store_path;
    sc.manual_checkpoint = 1;
    int e = (rt->checkpoint_store = engram_store_open(&sc)) ? 0 : -1;
    if (e == 0 && (e = pthread_create(&rt->checkpointer, NULL, checkpointer_main, rt)) != 0)
      snprintf(message, sizeof message, "runtime: cannot start the checkpoint thread (%s)", strerror(e));
    else if (e != 0)
      snprintf(message, sizeof message, "%s", engram_last_error());
    if (e != 0) {
      failed = ENGRAM_ESTORE;
      pthread_mutex_lock(&rt->lock);
      rt->stopping = 1;
      pthread_cond_broadcast(&rt->work);
      pthread_mutex_unlock(&rt->lock);
    } else {
      rt->checkpointer_running = 1;
    }
  }
  if (!failed && config->timeout_ms) {
    int e = pthread_create(&rt->watchdog, NULL, watchdog_main, rt);
    if (e != 0) {
      failed = ENGRAM_ENOMEM;
      snprintf(message, sizeof message, "runtime: cannot start the watchdog thread (%s)", strerror(e));
      pthread_mutex_lock(&rt->lock);
      rt->stopping = 1;
      pthread_cond_broadcast(&rt->work);
      pthread_mutex_unlock(&rt->lock);
    } else {
      rt->watchdog_running = 1;
    }
  }
  if (failed) {
    join_workers(rt);
    stop_checkpointer(rt);
    runtime_free(rt);
    engram_fail(failed, "%s", message);
    return NULL;
  }
  return rt;
}

/* ---- scripts ---------------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 0x100000001b3ull;
  return h;
}

/* Register under rt->scripts_lock. name is the display name, chunkname the Lua one. */
static int register_script(engram_runtime *rt, const char *name, const char *chunkname,
                           const char *text, size_t len)
{
  uint64_t hash = fnv1a(fnv1a(0xcbf29ce484222325ull, name, strlen(name) + 1), text, len);
  int id = 0;

  pthread_mutex_lock(&rt->scripts_lock);
  for (uint32_t i = 0; i < rt->nscripts; i++) {
    struct engram_script *s = rt->scripts[i];
    if (s->hash == hash && s->len == len && strcmp(s->name, name) == 0 && memcmp(s->text, text, len) == 0) {
      id = s->id;
      goto out;
    }
  }
  if (!rt->check_L && !(rt->check_L = luaL_newstate())) {
    id = engram_fail(ENGRAM_ENOMEM, "runtime: cannot create a lua state to check scripts");
    goto out;
  }
  if (luaL_loadbuffer(rt->check_L, text, len, chunkname) != 0) {
    const char *msg = lua_tostring(rt->check_L, -1);
    id = engram_fail(ENGRAM_ESCRIPT, "%s", msg ? msg : "script: cannot be compiled");
    lua_settop(rt->check_L, 0);
    goto out;
  }
  lua_settop(rt->check_L, 0);
  if (rt->nscripts == rt->scripts_cap) {
    uint32_t cap = rt->scripts_cap ? rt->scripts_cap * 2 : 16;
    struct engram_script **p = realloc(rt->scripts, cap * sizeof *p);
    if (!p) {
      id = engram_fail(ENGRAM_ENOMEM, "runtime: out of memory for scripts");
      goto out;
    }
    rt->scripts = p;
    rt->scripts_cap = cap;
  }
  struct engram_script *s = calloc(1, sizeof *s);
  if (s) {
    s->name = strdup(name);
    s->chunkname = strdup(chunkname);
    s->text = malloc(len + 1);
  }
  if (!s || !s->name || !s->chunkname || !s->text) {
    if (s) {
      free(s->name);
      free(s->chunkname);
      free(s->text);
      free(s);
    }
    id = engram_fail(ENGRAM_ENOMEM, "runtime: out of memory for a script of %zu bytes", len);
    goto out;
  }
  memcpy(s->text, text, len);
  s->text[len] = '\0';
  s->len = len;
  s->hash = hash;
  s->id = (int)rt->nscripts + 1;
  rt->scripts[rt->nscripts] = s;
  __atomic_store_n(&rt->nscripts, rt->nscripts + 1, __ATOMIC_RELEASE);
  id = s->id;
out:
  pthread_mutex_unlock(&rt->scripts_lock);
  return id;
}

int engram_runtime_load_string(engram_runtime *rt, const char *name, const char *text, size_t len)
{
  if (!rt || !text)
    return engram_fail(ENGRAM_EINVAL, "runtime: load_string needs a runtime and a text");
  if (!name || !*name)
    name = "script";
  size_t n = strlen(name);
  char *chunk = malloc(n + 2);
  if (!chunk)
    return engram_fail(ENGRAM_ENOMEM, "runtime: out of memory");
  chunk[0] = '=';
  memcpy(chunk + 1, name, n + 1);
  int id = register_script(rt, name, chunk, text, len);
  free(chunk);
  return id;
}

int engram_runtime_load_file(engram_runtime *rt, const char *path)
{
  if (!rt || !path)
    return engram_fail(ENGRAM_EINVAL, "runtime: load_file needs a runtime and a path");
  FILE *f = fopen(path, "rb");
  if (!f)
    return engram_fail(ENGRAM_EIO, "runtime: cannot read script '%s' (%s)", path, strerror(errno));
  size_t cap = 4096, len = 0;
  char *text = malloc(cap);
  while (text) {
    size_t got = fread(text + len, 1, cap - len, f);
    len += got;
    if (got == 0)
      break;
    if (len == cap) {
      char *p = realloc(text, cap * 2);
      if (!p) {
        free(text);
        text = NULL;
        break;
      }
      text = p;
      cap *= 2;
    }
  }
  int err = ferror(f);
  fclose(f);
  if (!text)
    return engram_fail(ENGRAM_ENOMEM, "runtime: out of memory reading '%s'", path);
  if (err) {
    free(text);
    return engram_fail(ENGRAM_EIO, "runtime: error reading script '%s'", path);
  }
  size_t n = strlen(path);
  char *chunk = malloc(n + 2);
  int id;
  if (!chunk) {
    id = engram_fail(ENGRAM_ENOMEM, "runtime: out of memory");
  } else {
    chunk[0] = '@';
    memcpy(chunk + 1, path, n + 1);
    id = register_script(rt, path, chunk, text, len);
  }
  free(chunk);
  free(text);
  return id;
}

/* ---- submit ----------------------------------------------------------------------------- */

int engram_runtime_submit(engram_runtime *rt, int script, const engram_param *params, size_t nparams,
                          engram_burst **out)
{
  if (!rt || !out || (nparams && !params))
    return engram_fail(ENGRAM_EINVAL, "runtime: submit needs a runtime, a handle pointer and the params");
  *out = NULL;
  uint32_t nscripts = __atomic_load_n(&rt->nscripts, __ATOMIC_ACQUIRE);
  if (script < 1 || (uint32_t)script > nscripts)
    return engram_fail(ENGRAM_ERANGE, "runtime: no script with id %d (%u loaded)", script, nscripts);

  size_t bytes = sizeof(engram_burst) + nparams * sizeof(struct host_param);
  for (size_t i = 0; i < nparams; i++) {
    if (!params[i].key)
      return engram_fail(ENGRAM_EINVAL, "runtime: parameter %zu has no key", i);
    bytes += strlen(params[i].key) + 1 + (params[i].text ? strlen(params[i].text) + 1 : 0);
  }
  engram_burst *b = malloc(bytes);
  if (!b)
    return engram_fail(ENGRAM_ENOMEM, "runtime: out of memory for a burst");
  memset(b, 0, sizeof *b);
  b->refs = 2;
  b->worker = -1;
  b->params = (struct host_param *)(b + 1);
  b->nparams = nparams;
  char *str = (char *)(b->params + nparams);
  for (size_t i = 0; i < nparams; i++) {
    size_t k = strlen(params[i].key) + 1;
    memcpy(str, params[i].key, k);
    b->params[i].key = str;
    str += k;
    if (params[i].text) {
      size_t t = strlen(params[i].text) + 1;
      memcpy(str, params[i].text, t);
      b->params[i].text = str;
      str += t;
    } else {
      b->params[i].text = NULL;
    }
    b->params[i].number = params[i].number;
  }
  pthread_mutex_lock(&rt->scripts_lock);
  b->script = rt->scripts[script - 1];
  pthread_mutex_unlock(&rt->scripts_lock);

  pthread_mutex_lock(&rt->lock);
  int rc = 0;
  if (rt->stopping) {
    rc = engram_fail(ENGRAM_ESTATE, "runtime: shut down, no more bursts accepted");
  } else if (rt->count == rt->config.queue_capacity) {
    rt->rejected++;
    rc = engram_fail(ENGRAM_EBUSY, "runtime: queue full (%u bursts waiting)", rt->count);
  } else {
    b->id = ++rt->next_id;
    rt->queue[(rt->head + rt->count) % rt->config.queue_capacity] = b;
    rt->count++;
    rt->submitted++;
    __atomic_store_n(&rt->queued, rt->count, __ATOMIC_RELAXED);
    if (rt->sleepers)
      pthread_cond_signal(&rt->work);
  }
  pthread_mutex_unlock(&rt->lock);
  if (rc) {
    free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* ---- shutdown --------------------------------------------------------------------------- */

void engram_runtime_shutdown(engram_runtime *rt, engram_shutdown how)
{
  if (!rt)
    return;
  pthread_mutex_lock(&rt->lock);
  if (!rt->stopping)
    __atomic_store_n(&rt->stopping, how == ENGRAM_SHUTDOWN_CANCEL ? 2 : 1, __ATOMIC_RELAXED);
  engram_burst *cancel_head = NULL;
  uint32_t ncancel = 0;
  engram_burst **cancelled = NULL;
  if (how == ENGRAM_SHUTDOWN_CANCEL && rt->count) {
    /* Taken off the queue under the lock, finished outside it. */
    cancelled = malloc(rt->count * sizeof *cancelled);
    if (cancelled) {
      while (rt->count) {
        cancelled[ncancel++] = rt->queue[rt->head];
        rt->head = (rt->head + 1) % rt->config.queue_capacity;
        rt->count--;
      }
      __atomic_store_n(&rt->queued, 0, __ATOMIC_RELAXED);
    }
  }
  (void)cancel_head;
  pthread_cond_broadcast(&rt->work);
  pthread_mutex_unlock(&rt->lock);

  for (uint32_t i = 0; i < ncancel; i++) {
    engram_burst *b = cancelled[i];
    b->status = ENGRAM_ESTATE;
    b->message = strdup("runtime: burst cancelled by shutdown");
    __atomic_add_fetch(&rt->cancelled, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&rt->completed, 1, __ATOMIC_RELAXED);
    burst_finish(b);
    burst_unref(b);
  }
  free(cancelled);
  if (!rt->joined)
    join_workers(rt);
  stop_watchdog(rt);
  stop_checkpointer(rt);
}

void engram_runtime_destroy(engram_runtime *rt)
{
  if (!rt)
    return;
  engram_runtime_shutdown(rt, ENGRAM_SHUTDOWN_DRAIN);
  runtime_free(rt);
}

/* ---- stats ------------------------------------------------------------------------------ */

int engram_runtime_worker_stats(engram_runtime *rt, uint32_t worker, engram_worker_stats *out)
{
  if (out->struct_size != sizeof *out || out->struct_version != ENGRAM_RUNTIME_STATS_VERSION)
    return engram_fail(ENGRAM_EVERSION, "runtime: worker stats struct size/version mismatch "
                       "(use ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION))");
  if (worker >= rt->config.workers)
    return engram_fail(ENGRAM_ERANGE, "runtime: no worker %u (%u workers)", worker, rt->config.workers);
  struct worker *w = &rt->workers[worker];
  const struct host_counters *c = &w->host.counters;
  uint64_t hist[HIST_BUCKETS], total = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    total += hist[i] = STAT_LOAD(w->hist[i]);
  out->bursts = STAT_LOAD(c->bursts);
  out->errors = STAT_LOAD(c->errors);
  out->timeouts = STAT_LOAD(c->timeouts);
  out->heap_limit_hits = STAT_LOAD(c->heap_limit_hits);
  out->states_created = STAT_LOAD(c->states_created);
  out->states_abandoned = STAT_LOAD(c->states_abandoned);
  out->cache_hits = STAT_LOAD(c->cache_hits);
  out->cache_misses = STAT_LOAD(c->cache_misses);
  out->cache_evictions = STAT_LOAD(c->cache_evictions);
  out->arena_capacity = rt->config.arena_size;
  out->arena_high_water = STAT_LOAD(c->arena_high_water);
  out->lua_heap_used = STAT_LOAD(w->host.heap.used);
  out->lua_heap_peak = STAT_LOAD(w->host.heap.peak);
  out->lua_heap_limit = rt->config.lua_heap_limit;
  out->latency_max_ns = STAT_LOAD(w->latency_max);
  out->latency_p50_ns = clamp_to(hist_percentile(hist, total, 50), out->latency_max_ns);
  out->latency_p99_ns = clamp_to(hist_percentile(hist, total, 99), out->latency_max_ns);
  return 0;
}

int engram_runtime_stats_get(engram_runtime *rt, engram_runtime_stats *out)
{
  if (out->struct_size != sizeof *out || out->struct_version != ENGRAM_RUNTIME_STATS_VERSION)
    return engram_fail(ENGRAM_EVERSION, "runtime: stats struct size/version mismatch "
                       "(use ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION))");
  uint64_t hist[HIST_BUCKETS] = { 0 }, total = 0, max = 0;
  for (uint32_t i = 0; i < rt->config.workers; i++) {
    struct worker *w = &rt->workers[i];
    for (unsigned j = 0; j < HIST_BUCKETS; j++) {
      uint64_t v = STAT_LOAD(w->hist[j]);
      hist[j] += v;
      total += v;
    }
    if (STAT_LOAD(w->latency_max) > max)
      max = STAT_LOAD(w->latency_max);
  }
  pthread_mutex_lock(&rt->lock);
  out->submitted = rt->submitted;
  out->rejected = rt->rejected;
  out->queued = rt->count;
  pthread_mutex_unlock(&rt->lock);
  out->workers = rt->config.workers;
  out->scripts = __atomic_load_n(&rt->nscripts, __ATOMIC_ACQUIRE);
  out->completed = __atomic_load_n(&rt->completed, __ATOMIC_RELAXED);
  out->cancelled = __atomic_load_n(&rt->cancelled, __ATOMIC_RELAXED);
  out->latency_max_ns = max;
  out->latency_p50_ns = clamp_to(hist_percentile(hist, total, 50), max);
  out->latency_p99_ns = clamp_to(hist_percentile(hist, total, 99), max);
  return 0;
}

char *engram_runtime_stats_json(engram_runtime *rt)
{
  engram_runtime_stats s;
  ENGRAM_STRUCT_INIT(s, ENGRAM_RUNTIME_STATS_VERSION);
  engram_runtime_stats_get(rt, &s);
  struct engram_text b = { 0 };
  engram_text_printf(&b, "{\"workers\": %u, \"config\": {\"arena_size\": %zu, \"overflow\": \"%s\", "
            "\"timeout_ms\": %u, \"lua_heap_limit\": %zu, \"script_cache\": %u, \"queue_capacity\": %u}, "
            "\"scripts\": %u, \"submitted\": %llu, \"rejected\": %llu, \"completed\": %llu, "
            "\"cancelled\": %llu, \"queued\": %llu, "
            "\"latency_ns\": {\"p50\": %llu, \"p99\": %llu, \"max\": %llu}, \"per_worker\": [",
            s.workers, rt->config.arena_size, engram_overflow_name(rt->config.overflow), rt->config.timeout_ms,
            rt->config.lua_heap_limit, rt->config.script_cache, rt->config.queue_capacity, s.scripts,
            (unsigned long long)s.submitted, (unsigned long long)s.rejected,
            (unsigned long long)s.completed, (unsigned long long)s.cancelled,
            (unsigned long long)s.queued, (unsigned long long)s.latency_p50_ns,
            (unsigned long long)s.latency_p99_ns, (unsigned long long)s.latency_max_ns);
  for (uint32_t i = 0; i < rt->config.workers; i++) {
    engram_worker_stats w;
    ENGRAM_STRUCT_INIT(w, ENGRAM_RUNTIME_STATS_VERSION);
    engram_runtime_worker_stats(rt, i, &w);
    engram_text_printf(&b, "%s{\"worker\": %u, \"bursts\": %llu, \"errors\": %llu, \"timeouts\": %llu, "
              "\"heap_limit_hits\": %llu, \"states_created\": %llu, \"states_abandoned\": %llu, "
              "\"cache\": {\"hits\": %llu, \"misses\": %llu, \"evictions\": %llu}, "
              "\"arena\": {\"capacity\": %llu, \"high_water\": %llu}, "
              "\"lua_heap\": {\"used\": %llu, \"peak\": %llu, \"limit\": %llu}, "
              "\"latency_ns\": {\"p50\": %llu, \"p99\": %llu, \"max\": %llu}}",
              i ? ", " : "", i, (unsigned long long)w.bursts, (unsigned long long)w.errors,
              (unsigned long long)w.timeouts, (unsigned long long)w.heap_limit_hits,
              (unsigned long long)w.states_created, (unsigned long long)w.states_abandoned,
              (unsigned long long)w.cache_hits, (unsigned long long)w.cache_misses,
              (unsigned long long)w.cache_evictions, (unsigned long long)w.arena_capacity,
              (unsigned long long)w.arena_high_water, (unsigned long long)w.lua_heap_used,
              (unsigned long long)w.lua_heap_peak, (unsigned long long)w.lua_heap_limit,
              (unsigned long long)w.latency_p50_ns, (unsigned long long)w.latency_p99_ns,
              (unsigned long long)w.latency_max_ns);
  }
  engram_text_printf(&b, "]}");
  if (b.oom) {
    free(b.p);
    engram_fail(ENGRAM_ENOMEM, "runtime: out of memory for the stats report");
    return NULL;
  }
  return b.p;
}
