/*
 * test_report.c — engram_stats_json: the document is parsed back with a small strict JSON
 * parser (below) and checked field by field against the C queries it reports.
 */
#include "engram.h"
#include "test.h"

#include <stdlib.h>

/* ---- a strict JSON parser (RFC 8259), enough to read the report back ---------------------- */

enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval {
  enum jtype type;
  double num;
  char *raw;                 /* numbers: the literal text, for exact 64-bit integers */
  char *str;                 /* strings: decoded UTF-8 */
  size_t n;                  /* arrays and objects: element count */
  struct jval **items;
  char **keys;               /* objects */
} jval;

struct parser {
  const char *s;
  const char *err;
  size_t at;
};

static jval *jnew(enum jtype t)
{
  jval *v = calloc(1, sizeof *v);
  v->type = t;
  return v;
}

static void jfree(jval *v)
{
  if (!v)
    return;
  for (size_t i = 0; i < v->n; i++) {
    jfree(v->items[i]);
    if (v->keys)
      free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->str);
  free(v->raw);
  free(v);
}

static void ws(struct parser *p)
{
  while (p->s[p->at] == ' ' || p->s[p->at] == '\n' || p->s[p->at] == '\r' || p->s[p->at] == '\t')
    p->at++;
}

static jval *fail(struct parser *p, const char *why)
{
  if (!p->err)
    p->err = why;
  return NULL;
}

static int hex4(struct parser *p, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p->s[p->at++];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

static char *parse_string(struct parser *p)
{
  if (p->s[p->at] != '"')
    return fail(p, "expected a string"), NULL;
  p->at++;
  size_t cap = 64, len = 0;
  char *out = malloc(cap);
  for (;;) {
    if (len + 8 > cap)
      out = realloc(out, cap *= 2);
    unsigned char c = (unsigned char)p->s[p->at++];
    if (c == '"')
      break;
    if (c == 0 || c < 0x20) {
      free(out);
      return fail(p, "unterminated string or raw control character"), NULL;
    }
    if (c != '\\') {
      out[len++] = (char)c;
      continue;
    }
    char e = p->s[p->at++];
    unsigned cp, lo;
    switch (e) {
    case '"': out[len++] = '"'; break;
    case '\\': out[len++] = '\\'; break;
    case '/': out[len++] = '/'; break;
    case 'b': out[len++] = '\b'; break;
    case 'f': out[len++] = '\f'; break;
    case 'n': out[len++] = '\n'; break;
    case 'r': out[len++] = '\r'; break;
    case 't': out[len++] = '\t'; break;
    case 'u':
      if (hex4(p, &cp) != 0) {
        free(out);
        return fail(p, "bad \\u escape"), NULL;
      }
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (p->s[p->at] != '\\' || p->s[p->at + 1] != 'u' || (p->at += 2, hex4(p, &lo) != 0) ||
            lo < 0xdc00 || lo > 0xdfff) {
          free(out);
          return fail(p, "lone surrogate"), NULL;
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      len += put_utf8(out + len, cp);
      break;
    default:
      free(out);
      return fail(p, "bad escape"), NULL;
    }
  }
  out[len] = 0;
  return out;
}

static jval *parse_value(struct parser *p);

static jval *parse_container(struct parser *p, int object)
{
  jval *v = jnew(object ? J_OBJ : J_ARR);
  char close = object ? '}' : ']';
  p->at++;
  ws(p);
  if (p->s[p->at] == close) {
    p->at++;
    return v;
  }
  for (;;) {
    char *key = NULL;
    ws(p);
    if (object) {
      if (!(key = parse_string(p)))
        return jfree(v), NULL;
      ws(p);
      if (p->s[p->at++] != ':') {
        free(key);
        jfree(v);
        return fail(p, "expected ':'");
      }
    }
    jval *item = parse_value(p);
    if (!item) {
      free(key);
      return jfree(v), NULL;
    }
    v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
    if (object)
      v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys), v->keys[v->n] = key;
    v->items[v->n++] = item;
    ws(p);
    char c = p->s[p->at++];
    if (c == close)
      return v;
    if (c != ',') {
      jfree(v);
      return fail(p, "expected ',' or a closing bracket");
    }
  }
}

static jval *parse_value(struct parser *p)
{
  ws(p);
  const char *s = p->s + p->at;
  if (*s == '{' || *s == '[')
    return parse_container(p, *s == '{');
  if (*s == '"') {
    char *str = parse_string(p);
    if (!str)
      return NULL;
    jval *v = jnew(J_STR);
    v->str = str;
    return v;
  }
  if (!strncmp(s, "null", 4)) { p->at += 4; return jnew(J_NULL); }
  if (!strncmp(s, "true", 4)) { p->at += 4; return jnew(J_TRUE); }
  if (!strncmp(s, "false", 5)) { p->at += 5; return jnew(J_FALSE); }
  /* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
  size_t i = 0;
  if (s[i] == '-') i++;
  if (s[i] == '0') i++;
  else if (s[i] >= '1' && s[i] <= '9') while (s[i] >= '0' && s[i] <= '9') i++;
  else return fail(p, "unexpected character");
  if (s[i] == '.') {
    i++;
    if (!(s[i] >= '0' && s[i] <= '9')) return fail(p, "bad fraction");
    while (s[i] >= '0' && s[i] <= '9') i++;
  }
  if (s[i] == 'e' || s[i] == 'E') {
    i++;
    if (s[i] == '+' || s[i] == '-') i++;
    if (!(s[i] >= '0' && s[i] <= '9')) return fail(p, "bad exponent");
    while (s[i] >= '0' && s[i] <= '9') i++;
  }
  jval *v = jnew(J_NUM);
  v->raw = strndup(s, i);
  v->num = strtod(v->raw, NULL);
  p->at += i;
  return v;
}

static jval *json_parse(const char *text, const char **err)
{
  struct parser p = { text, NULL, 0 };
  jval *v = parse_value(&p);
  ws(&p);
  if (v && p.s[p.at] != 0) {
    jfree(v);
    v = fail(&p, "trailing text");
  }
  *err = p.err;
  return v;
}

static jval *get(const jval *o, const char *key)
{
  if (!o || o->type != J_OBJ)
    return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (!strcmp(o->keys[i], key))
      return o->items[i];
  return NULL;
}

/* An exact unsigned integer field, or ~0 when missing or not an integer literal. */
static unsigned long long u64(const jval *o, const char *key)
{
  const jval *v = get(o, key);
  if (!v || v->type != J_NUM || strpbrk(v->raw, ".eE-"))
    return ~0ull;
  return strtoull(v->raw, NULL, 10);
}

/* ---- the parser itself ------------------------------------------------------------------- */

TEST(the_test_parser_rejects_what_it_should)
{
  const char *bad[] = { "{", "{\"a\" 1}", "[1,]", "\"\x01\"", "01", "1.", "[\"\\ud800\"]", "{} x", "tru" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *err;
    jval *v = json_parse(bad[i], &err);
    CHECK(v == NULL && err != NULL);
    jfree(v);
  }
  const char *err;
  jval *v = json_parse("{\"a\": [1, -2.5e3, true, null], \"b\": \"\\u00e9\\ud83d\\ude00\"}", &err);
  CHECK(v != NULL);
  CHECK_STR(get(v, "b")->str, "\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(get(v, "a")->items[1]->num == -2500);
  jfree(v);
}

/* ---- the report -------------------------------------------------------------------------- */

static void check_pool(const jval *j, engram_pool *p, const char *name)
{
  engram_pool_info in;
  ENGRAM_STRUCT_INIT(in, ENGRAM_POOL_INFO_VERSION);
  CHECK_EQ(engram_pool_query(p, &in), 0);
  CHECK(j != NULL && j->type == J_OBJ);
  CHECK_STR(get(j, "name")->str, name);   /* as decoded: invalid UTF-8 became U+FFFD */
  CHECK_EQ(get(j, "shared")->type, (in.flags & ENGRAM_POOL_SHARED) ? J_TRUE : J_FALSE);
  CHECK_EQ(get(j, "zero")->type, (in.flags & ENGRAM_POOL_ZERO) ? J_TRUE : J_FALSE);
  CHECK_EQ(u64(j, "vector_dim"), in.vector_dim);
  CHECK_EQ(u64(j, "object_size"), in.object_size);
  CHECK_EQ(u64(j, "stride"), in.stride);
  CHECK_EQ(u64(j, "align"), in.align);
  CHECK_EQ(u64(j, "capacity"), in.capacity);
  CHECK_EQ(u64(j, "in_use"), in.in_use);
  CHECK_EQ(u64(j, "peak"), in.peak);
  CHECK_EQ(u64(j, "acquisitions"), in.acquisitions);
  CHECK_EQ(u64(j, "releases"), in.releases);
  CHECK_EQ(u64(j, "reuses"), in.reuses);
  CHECK_EQ(u64(j, "failures"), in.failures);
  CHECK_EQ(u64(j, "bytes_reserved"), in.bytes_reserved);
  CHECK_EQ(u64(j, "max_bytes"), in.max_bytes);
  CHECK_EQ(u64(j, "slabs"), in.slabs);
  const jval *rate = get(j, "reuse_rate");
  CHECK(rate && rate->type == J_NUM && rate->num > in.reuse_rate - 1e-6 && rate->num < in.reuse_rate + 1e-6);
}

TEST(report_lists_process_thread_pools_and_caches_field_by_field)
{
  /* names that need escaping: quote, backslash, control characters, UTF-8, an invalid byte */
  const char *names[] = { "edges", "say \"hi\"\\now", "tab\there\nline\x01", "caf\xc3\xa9 \xe2\x82\xac",
                          "bad \xff byte" };
  const char *decoded[] = { "edges", "say \"hi\"\\now", "tab\there\nline\x01", "caf\xc3\xa9 \xe2\x82\xac",
                            "bad \xef\xbf\xbd byte" };
  enum { NP = 5 };
  engram_pool *p[NP + 1];
  for (int i = 0; i < NP; i++) {
    engram_pool_config c = { .name = names[i], .object_size = 24 + (size_t)i * 8,
                             .flags = i == 1 ? ENGRAM_POOL_SHARED : i == 2 ? ENGRAM_POOL_ZERO : 0,
                             .max_bytes = i == 3 ? 1 << 20 : 0 };
    p[i] = engram_pool_create(&c);
    CHECK(p[i] != NULL);
    void *o[7];
    for (int k = 0; k <= i + 1; k++)
      o[k] = engram_pool_acquire(p[i]);
    for (int k = 0; k < i; k++)
      engram_pool_release(p[i], o[k]);
    for (int k = 0; k < i; k++)
      (void)engram_pool_acquire(p[i]);
  }
  p[NP] = engram_pool_create_vectors("embeddings", 768, 0, 0);
  (void)engram_pool_acquire(p[NP]);
  engram_arena_cache_config cc = { .name = "scratch \"arenas\"", .keep_per_class = 2 };
  engram_arena_cache *cache = engram_arena_cache_create(&cc);
  engram_arena *a = engram_arena_cache_acquire(cache, 200 << 10);
  engram_arena_cache_release(cache, a);
  a = engram_arena_cache_acquire(cache, 1);

  engram_arena *ta = engram_arena_thread();
  CHECK(ta != NULL);
  CHECK(engram_arena_alloc(ta, 4000) != NULL);

  engram_stats st;
  ENGRAM_STRUCT_INIT(st, ENGRAM_STATS_VERSION);
  CHECK_EQ(engram_stats_snapshot(&st), 0);
  char *text = engram_stats_json();
  CHECK(text != NULL);
  if (!text)
    return;
  const char *err = NULL;
  jval *doc = json_parse(text, &err);
  if (!doc)
    printf("    parse error: %s\n%s\n", err, text);
  CHECK(doc != NULL && doc->type == J_OBJ);
  if (!doc) {
    engram_free(text);
    return;
  }

  CHECK_STR(get(doc, "version")->str, ENGRAM_VERSION_STRING);

  const jval *proc = get(doc, "process");
  CHECK(proc && proc->type == J_OBJ);
  CHECK_EQ(u64(proc, "arenas_live"), st.arenas_live);
  CHECK_EQ(u64(proc, "arenas_retired"), st.arenas_retired);
  CHECK_EQ(u64(proc, "capacity"), st.capacity);
  CHECK_EQ(u64(proc, "high_water_sum"), st.high_water_sum);
  CHECK_EQ(u64(proc, "high_water_max"), st.high_water_max);
  CHECK_EQ(u64(proc, "resets"), st.resets);
  CHECK_EQ(u64(proc, "overflows"), st.overflows);
  CHECK_EQ(u64(proc, "fallback_bytes"), st.fallback_bytes);
  CHECK_EQ(u64(proc, "fallback_chunks"), st.fallback_chunks);
  CHECK_EQ(u64(proc, "pages_4k"), st.pages_4k);
  CHECK_EQ(u64(proc, "pages_thp"), st.pages_thp);
  CHECK_EQ(u64(proc, "pages_hugetlb"), st.pages_hugetlb);

  const jval *pools = get(doc, "pools");
  CHECK(pools && pools->type == J_ARR);
  /* other tests' pools may be listed too: find ours by decoded name, in creation order */
  size_t at = 0;
  for (int i = 0; i <= NP && pools; i++) {
    const char *want = i < NP ? decoded[i] : "embeddings";
    while (at < pools->n && strcmp(get(pools->items[at], "name")->str, want) != 0)
      at++;
    CHECK(at < pools->n);
    if (at < pools->n)
      check_pool(pools->items[at], p[i], want);
  }
  if (pools && at < pools->n)
    CHECK_EQ(u64(pools->items[at], "vector_dim"), 768);

  const jval *caches = get(doc, "arena_caches");
  CHECK(caches && caches->type == J_ARR && caches->n >= 1);
  const jval *cj = NULL;
  for (size_t i = 0; caches && i < caches->n; i++)
    if (!strcmp(get(caches->items[i], "name")->str, "scratch \"arenas\""))
      cj = caches->items[i];
  CHECK(cj != NULL);
  CHECK_EQ(u64(cj, "keep_per_class"), 2);
  CHECK_EQ(u64(cj, "acquisitions"), 2);
  CHECK_EQ(u64(cj, "reuses"), 0);
  CHECK_EQ(u64(cj, "created"), 2);
  CHECK_EQ(u64(cj, "out"), 1);
  CHECK_EQ(u64(cj, "kept"), 1);
  CHECK_EQ(u64(cj, "kept_bytes"), 256 << 10);
  CHECK_EQ(u64(get(cj, "kept_per_class"), "262144"), 1);

  const jval *tj = get(doc, "thread_arena");
  CHECK(tj != NULL);
  jfree(doc);
  engram_free(text);

  engram_arena_cache_release(cache, a);
  engram_arena_cache_destroy(cache);
  for (int i = 0; i <= NP; i++)
    engram_pool_destroy(p[i]);

  /* destroyed pools leave the report */
  text = engram_stats_json();
  CHECK(text && !strstr(text, "\"embeddings\""));
  engram_free(text);
}

TEST(report_includes_the_calling_threads_arena)
{
  engram_arena *ta = engram_arena_thread();
  CHECK(engram_arena_alloc(ta, 1000) != NULL);
  char *text = engram_stats_json();
  const char *err;
  jval *doc = json_parse(text, &err);
  CHECK(doc != NULL);
  engram_arena_info in;
  ENGRAM_STRUCT_INIT(in, ENGRAM_ARENA_INFO_VERSION);
  CHECK_EQ(engram_arena_query(ta, &in), 0);
  const jval *tj = get(doc, "thread_arena");
  CHECK(tj && tj->type == J_OBJ);
  CHECK_EQ(u64(tj, "capacity"), in.capacity);
  CHECK_EQ(u64(tj, "used"), in.used);
  CHECK_EQ(u64(tj, "high_water"), in.high_water);
  CHECK_EQ(u64(tj, "resets"), in.resets);
  CHECK_EQ(u64(tj, "epoch"), in.epoch);
  jfree(doc);
  engram_free(text);
}

int main(void)
{
  RUN(the_test_parser_rejects_what_it_should);
  RUN(report_lists_process_thread_pools_and_caches_field_by_field);
  RUN(report_includes_the_calling_threads_arena);
  return test_done();
}
