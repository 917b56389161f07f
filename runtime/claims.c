/*
 * claims.c — the per-file claims tables of this process (see claims.h).
 *
 * A table is an open-addressing hash of episode id -> (token, expiry) with linear probing. It
 * holds the batches of the bursts in flight (a few hundred entries), so releasing a token
 * rebuilds it into its spare array without the token's entries (growing drops the expired ones
 * too): no tombstones, no backward shifting, no allocation on the burst path once the table
 * has grown to its working size.
 */
#include "claims.h"
#include "arena.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <math.h>
#include <string.h>
#include <time.h>

struct slot {
  int64_t id;
  uint64_t token;            /* 0 = empty */
  double expires;
};

struct engram_claims {
  pthread_mutex_t mu;
  pthread_mutex_t writer;
  dev_t dev;
  ino_t ino;
  int shared;                /* linked into `files` */
  unsigned refs;
  struct slot *slots, *spare;
  uint32_t mask, used;
  struct engram_claims *next;
};

static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;
static engram_claims *files;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child is another process: the parent's claims are not its own, and a lock another
 * thread held at the fork would never be released there. It starts with no tables (the
 * parent's stay allocated, unreachable; connections must not cross a fork anyway). */
static void child_after_fork(void)
{
  pthread_mutex_init(&files_mu, NULL);
  files = NULL;
}

static void register_atfork(void)
{
  pthread_atfork(NULL, NULL, child_after_fork);
}

static uint32_t home(const engram_claims *c, int64_t id)
{
  return (uint32_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 32) & c->mask;
}

/* Insert into slots (which must have room and not hold id). */
static void put(struct slot *slots, uint32_t mask, int64_t id, uint64_t token, double expires)
{
  uint32_t i = (uint32_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 32) & mask;
  while (slots[i].token)
    i = (i + 1) & mask;
  slots[i] = (struct slot){ id, token, expires };
}

/* Rebuild the table into `cap` slots, dropping the entries of drop_token and those expired at
 * now. ENGRAM_ENOMEM leaves it as it was. */
static int rebuild(engram_claims *c, uint32_t cap, uint64_t drop_token, double now)
{
  struct slot *to = cap == c->mask + 1 ? c->spare : calloc(cap, sizeof *to);
  struct slot *spare = cap == c->mask + 1 ? NULL : calloc(cap, sizeof *spare);
  if (!to || (cap != c->mask + 1 && !spare)) {
    if (cap != c->mask + 1) {
      free(to);
      free(spare);
    }
    return ENGRAM_ENOMEM;
  }
  if (cap == c->mask + 1)
    memset(to, 0, cap * sizeof *to);
  uint32_t used = 0;
  for (uint32_t i = 0; i <= c->mask; i++) {
    const struct slot *s = &c->slots[i];
    if (s->token && s->token != drop_token && s->expires >= now) {
      put(to, cap - 1, s->id, s->token, s->expires);
      used++;
    }
  }
  if (cap == c->mask + 1) {
    c->spare = c->slots;
  } else {
    free(c->slots);
    free(c->spare);
    c->spare = spare;
  }
  c->slots = to;
  c->mask = cap - 1;
  c->used = used;
  return 0;
}

engram_claims *engram_claims_attach(const char *path)
{
  pthread_once(&atfork_once, register_atfork);
  struct stat st;
  int shared = stat(path, &st) == 0;
  pthread_mutex_lock(&files_mu);
  if (shared)
    for (engram_claims *c = files; c; c = c->next)
      if (c->dev == st.st_dev && c->ino == st.st_ino) {
        c->refs++;
        pthread_mutex_unlock(&files_mu);
        return c;
      }
  engram_claims *c = calloc(1, sizeof *c);
  if (c) {
    c->slots = calloc(256, sizeof *c->slots);
    c->spare = calloc(256, sizeof *c->spare);
    if (!c->slots || !c->spare) {
      free(c->slots);
      free(c->spare);
      free(c);
      c = NULL;
    }
  }
  if (c) {
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->writer, NULL);
    c->mask = 255;
    c->refs = 1;
    c->shared = shared;
    if (shared) {
      c->dev = st.st_dev;
      c->ino = st.st_ino;
      c->next = files;
      files = c;
    }
  }
  pthread_mutex_unlock(&files_mu);
  return c;
}

void engram_claims_detach(engram_claims *c)
{
  if (!c)
    return;
  pthread_mutex_lock(&files_mu);
  int last = --c->refs == 0;
  if (last && c->shared)
    for (engram_claims **p = &files; *p; p = &(*p)->next)
      if (*p == c) {
        *p = c->next;
        break;
      }
  pthread_mutex_unlock(&files_mu);
  if (last) {
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->writer);
    free(c->slots);
    free(c->spare);
    free(c);
  }
}

void engram_claims_lock(engram_claims *c)
{
  pthread_mutex_lock(&c->mu);
}

void engram_claims_unlock(engram_claims *c)
{
  pthread_mutex_unlock(&c->mu);
}

int engram_claims_writer_enter(engram_claims *c, int timeout_ms)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  return pthread_mutex_timedlock(&c->writer, &until);
}

void engram_claims_writer_leave(engram_claims *c)
{
  pthread_mutex_unlock(&c->writer);
}

int engram_claims_take_locked(engram_claims *c, int64_t id, uint64_t token, double now, double expires)
{
  uint32_t i = home(c, id);
  while (c->slots[i].token && c->slots[i].id != id)
    i = (i + 1) & c->mask;
  struct slot *s = &c->slots[i];
  if (s->token) {
    if (s->token != token && s->expires >= now)
      return 0;
    s->token = token;         /* an expired claim (or our own) is simply taken over */
    s->expires = expires;
    return 1;
  }
  if (2 * (c->used + 1) > c->mask + 1) {
    if (rebuild(c, 2 * (c->mask + 1), 0, now) != 0)
      return engram_fail(ENGRAM_ENOMEM, "store: out of memory for claims");
    return engram_claims_take_locked(c, id, token, now, expires);
  }
  *s = (struct slot){ id, token, expires };
  c->used++;
  return 1;
}

uint32_t engram_claims_check(engram_claims *c, const int64_t *ids, uint32_t n, uint64_t token, uint64_t *owner)
{
  pthread_mutex_lock(&c->mu);
  uint32_t k = 0;
  for (; k < n; k++) {
    uint32_t i = home(c, ids[k]);
    while (c->slots[i].token && c->slots[i].id != ids[k])
      i = (i + 1) & c->mask;
    if (c->slots[i].token != token) {
      *owner = c->slots[i].token;
      break;
    }
  }
  pthread_mutex_unlock(&c->mu);
  return k;
}

void engram_claims_release(engram_claims *c, uint64_t token)
{
  pthread_mutex_lock(&c->mu);
  /* Expired claims are kept: their expiry is on the clock of the bursts that took them, which
   * need not be this one's; a later claim of the same episode takes them over. */
  rebuild(c, c->mask + 1, token, -INFINITY);   /* same size: cannot fail */
  pthread_mutex_unlock(&c->mu);
}

int64_t engram_claims_live(engram_claims *c, double now)
{
  pthread_mutex_lock(&c->mu);
  int64_t n = 0;
  for (uint32_t i = 0; i <= c->mask; i++)
    n += c->slots[i].token && c->slots[i].expires >= now;
  pthread_mutex_unlock(&c->mu);
  return n;
}
