/*
 * text.h — a growing text buffer and JSON string encoding, for the reports the library builds
 * (engram_stats_json, engram_runtime_stats_json) and UTF-8 checks shared with the host's
 * result encoder. Internal: nothing here is exported.
 */
#ifndef ENGRAM_TEXT_H
#define ENGRAM_TEXT_H

#include "arena.h"

/* A NUL-terminated text that grows by doubling. A failed allocation sets `oom` and turns every
 * later append into a no-op, so a builder checks once at the end; then free(p). */
struct engram_text {
  char *p;
  size_t len, cap;
  int oom;
};

ENGRAM_HIDDEN void engram_text_put(struct engram_text *t, const char *s, size_t n);
ENGRAM_HIDDEN void engram_text_puts(struct engram_text *t, const char *s);
ENGRAM_HIDDEN void engram_text_printf(struct engram_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s[0 .. n) as a JSON string: quotes, backslashes and control characters escaped, valid UTF-8
 * kept, any other byte replaced by U+FFFD so the document stays valid UTF-8. */
ENGRAM_HIDDEN void engram_text_json_string(struct engram_text *t, const char *s, size_t n);

/* Length (2..4) of the valid multi-byte UTF-8 sequence at s (avail bytes left), or 0 when it
 * is not one (bad lead byte, missing continuation, overlong form, surrogate, > U+10FFFF). */
ENGRAM_HIDDEN size_t engram_utf8_len(const unsigned char *s, size_t avail);

#endif
