/*
 * error.c — the error table and the per-thread last-error message.
 *
 * Every code's description lives in one table; detailed messages are formatted by the failing
 * call into a thread-local buffer, so reporting an error never allocates and never races.
 */
#include "arena.h"

#include <stdio.h>

static const char *const messages[] = {
  [0]                   = "ok",
  [-ENGRAM_EINVAL]      = "invalid argument",
  [-ENGRAM_ENOMEM]      = "out of system memory",
  [-ENGRAM_EFULL]       = "capacity exhausted",
  [-ENGRAM_EOVERFLOW]   = "size overflow",
  [-ENGRAM_ECONFIG]     = "invalid configuration",
  [-ENGRAM_ESTALE]      = "stale mark or handle",
  [-ENGRAM_EVERSION]    = "struct size or version mismatch",
  [-ENGRAM_ESCRIPT]     = "script error",
  [-ENGRAM_ETIMEOUT]    = "deadline exceeded",
  [-ENGRAM_ESTORE]      = "store error",
  [-ENGRAM_ESTATE]      = "invalid state",
  [-ENGRAM_ERANGE]      = "index out of range",
  [-ENGRAM_EBUSY]       = "queue full",
  [-ENGRAM_EIO]         = "i/o error",
  [-ENGRAM_ENOTSUP]     = "not supported",
};

static __thread char last_error[512];

int engram_version(void)
{
  return ENGRAM_VERSION_NUM;
}

const char *engram_strerror(int code)
{
  if (code > 0 || code < ENGRAM_ECODE_MIN || !messages[-code])
    return "unknown error";
  return messages[-code];
}

const char *engram_last_error(void)
{
  return last_error;
}

int engram_failv(int code, const char *fmt, va_list ap)
{
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  return code;
}

int engram_fail(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  engram_failv(code, fmt, ap);
  va_end(ap);
  return code;
}
