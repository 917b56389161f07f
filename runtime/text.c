/* text.c — the growing text buffer and JSON strings (see text.h). */
#include "text.h"

#include <stdio.h>
#include <stdlib.h>

static int reserve(struct engram_text *t, size_t more)
{
  if (t->oom)
    return 0;
  if (t->len + more < t->cap)
    return 1;
  size_t cap = t->cap ? t->cap : 1024;
  while (cap <= t->len + more)
    cap *= 2;
  char *p = realloc(t->p, cap);
  if (!p) {
    t->oom = 1;
    return 0;
  }
  t->p = p;
  t->cap = cap;
  return 1;
}

void engram_text_put(struct engram_text *t, const char *s, size_t n)
{
  if (!reserve(t, n))
    return;
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = 0;
}

void engram_text_puts(struct engram_text *t, const char *s)
{
  engram_text_put(t, s, strlen(s));
}

void engram_text_printf(struct engram_text *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !reserve(t, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

size_t engram_utf8_len(const unsigned char *s, size_t avail)
{
  size_t n;
  uint32_t cp;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) { n = 2; cp = s[0] & 0x1f; }
  else if (s[0] >= 0xe0 && s[0] <= 0xef) { n = 3; cp = s[0] & 0x0f; }
  else if (s[0] >= 0xf0 && s[0] <= 0xf4) { n = 4; cp = s[0] & 0x07; }
  else return 0;
  if (n > avail)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

void engram_text_json_string(struct engram_text *t, const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  engram_text_put(t, "\"", 1);
  size_t run = 0;   /* bytes copied as they are, flushed before each escape */
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    const char *esc = NULL;
    char hex[8];
    size_t step = 1;
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c == '\b') esc = "\\b";
    else if (c == '\f') esc = "\\f";
    else if (c < 0x20) { snprintf(hex, sizeof hex, "\\u%04x", c); esc = hex; }
    else if (c >= 0x80 && !(step = engram_utf8_len(u + i, n - i))) { esc = "\\ufffd"; step = 1; }
    if (esc) {
      engram_text_put(t, s + i - run, run);
      run = 0;
      engram_text_puts(t, esc);
    } else {
      run += step;
    }
    i += step;
  }
  engram_text_put(t, s + n - run, run);
  engram_text_put(t, "\"", 1);
}
