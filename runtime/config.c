/*
 * config.c — arena options and their environment variables.
 *
 *   ENGRAM_ARENA_SIZE       bytes, or a number with KiB/MiB/GiB (or K/M/G); 64KiB .. 1GiB; 1MiB
 *   ENGRAM_ARENA_OVERFLOW   error | panic | fallback                                   ; error
 *   ENGRAM_ARENA_HUGEPAGES  auto | off                                                  ; auto
 *   ENGRAM_ARENA_PREFAULT   on | off                                                    ; off
 *
 * The environment is read once per process. A bad value is never ignored: every call that
 * needs the default configuration fails with a message naming the variable, its value and the
 * accepted forms. An empty variable counts as unset. engram_configure_arena overrides size and
 * strategy afterwards.
 */
#include "arena.h"

#include <stdio.h>
#include <stdlib.h>

static const char size_forms[] =
  "expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB";

/* ---- sizes --------------------------------------------------------------------------- */

int engram_parse_size(const char *text, size_t *out)
{
  static const struct { const char *suffix; unsigned shift; } units[] = {
    { "", 0 }, { "B", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 },
    { "G", 30 }, { "GiB", 30 },
  };
  const char *p = text;
  size_t v = 0;

  if (!text || *p < '0' || *p > '9')
    return engram_fail(ENGRAM_ECONFIG, "size: bad value '%s' (%s)", text ? text : "(null)", size_forms);
  for (; *p >= '0' && *p <= '9'; p++) {
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (size_t)(*p - '0'), &v))
      return engram_fail(ENGRAM_EOVERFLOW, "size: '%s' is too large", text);
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(p, units[i].suffix) == 0) {
      if (units[i].shift && v > (SIZE_MAX >> units[i].shift))
        return engram_fail(ENGRAM_EOVERFLOW, "size: '%s' is too large", text);
      *out = v << units[i].shift;
      return 0;
    }
  }
  return engram_fail(ENGRAM_ECONFIG, "size: bad value '%s' (%s)", text, size_forms);
}

void engram_format_size(char *buf, size_t cap, size_t bytes)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  unsigned u = 0;
  while (u + 1 < sizeof units / sizeof units[0] && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    u++;
  }
  snprintf(buf, cap, "%zu%s", bytes, units[u]);
}

/* ---- the process default --------------------------------------------------------------- */

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static engram_arena_config env_config;
static int env_status;
static char env_message[320];

static int overridden_size, overridden_overflow;
static engram_arena_config override_config;

static const char *env(const char *name)
{
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

static int env_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int env_bad(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env_message, sizeof env_message, fmt, ap);
  va_end(ap);
  return ENGRAM_ECONFIG;
}

static int read_env(engram_arena_config *c)
{
  const char *v;

  if ((v = env("ENGRAM_ARENA_SIZE"))) {
    size_t n;
    if (engram_parse_size(v, &n) == ENGRAM_ECONFIG)
      return env_bad("config: bad ENGRAM_ARENA_SIZE '%s' (%s)", v, size_forms);
    if (engram_parse_size(v, &n) != 0 || n < ENGRAM_ARENA_MIN_SIZE || n > ENGRAM_ARENA_MAX_SIZE)
      return env_bad("config: ENGRAM_ARENA_SIZE '%s' is out of range (expected 64KiB to 1GiB)", v);
    c->size = n;
  }
  if ((v = env("ENGRAM_ARENA_OVERFLOW"))) {
    if (strcmp(v, "error") == 0)
      c->overflow = ENGRAM_OVERFLOW_ERROR;
    else if (strcmp(v, "panic") == 0)
      c->overflow = ENGRAM_OVERFLOW_PANIC;
    else if (strcmp(v, "fallback") == 0)
      c->overflow = ENGRAM_OVERFLOW_FALLBACK;
    else
      return env_bad("config: bad ENGRAM_ARENA_OVERFLOW '%s' (expected error, panic or fallback)", v);
  }
  if ((v = env("ENGRAM_ARENA_HUGEPAGES"))) {
    if (strcmp(v, "auto") == 0)
      c->huge_pages = ENGRAM_HUGE_AUTO;
    else if (strcmp(v, "off") == 0)
      c->huge_pages = ENGRAM_HUGE_OFF;
    else
      return env_bad("config: bad ENGRAM_ARENA_HUGEPAGES '%s' (expected auto or off)", v);
  }
  if ((v = env("ENGRAM_ARENA_PREFAULT"))) {
    if (strcmp(v, "on") == 0)
      c->prefault = 1;
    else if (strcmp(v, "off") == 0)
      c->prefault = 0;
    else
      return env_bad("config: bad ENGRAM_ARENA_PREFAULT '%s' (expected on or off)", v);
  }
  return 0;
}

static void load_env(void)
{
  engram_arena_config c = {
    .size = ENGRAM_ARENA_DEFAULT_SIZE,
    .align = ENGRAM_ARENA_DEFAULT_ALIGN,
    .overflow = ENGRAM_OVERFLOW_ERROR,
    .huge_pages = ENGRAM_HUGE_AUTO,
    .prefault = 0,
  };
  env_status = read_env(&c);
  env_config = c;
}

int engram_config_arena_default(engram_arena_config *out)
{
  pthread_once(&env_once, load_env);
  if (env_status != 0)
    return engram_fail(env_status, "%s", env_message);
  pthread_mutex_lock(&config_lock);
  *out = env_config;
  if (overridden_size)
    out->size = override_config.size;
  if (overridden_overflow)
    out->overflow = override_config.overflow;
  pthread_mutex_unlock(&config_lock);
  return 0;
}

int engram_configure_arena(uint32_t pool_mb, uint8_t strategy)
{
  static const engram_overflow map[] = { ENGRAM_OVERFLOW_PANIC, ENGRAM_OVERFLOW_ERROR, ENGRAM_OVERFLOW_FALLBACK };
  if (pool_mb < 1 || pool_mb > 1024)
    return engram_fail(ENGRAM_EINVAL, "config: arena size %u MiB is out of range (expected 1 to 1024)", pool_mb);
  if (strategy > 2)
    return engram_fail(ENGRAM_EINVAL, "config: bad overflow strategy %u (expected 0 = panic, 1 = error, 2 = fallback)",
                       strategy);
  pthread_mutex_lock(&config_lock);
  override_config.size = (size_t)pool_mb << 20;
  override_config.overflow = map[strategy];
  overridden_size = overridden_overflow = 1;
  pthread_mutex_unlock(&config_lock);
  return 0;
}
