/*
 * store.c — the SQLite memory store: schema, import, the burst's load (claims + arena copies)
 * and its commit (one transaction).
 *
 * Claims are rows of their own table, written in a short IMMEDIATE transaction by load and
 * deleted by commit or release. They are bookkeeping, never memory data: a burst that fails or
 * is killed leaves the memory graph exactly as it was, and its claims expire after the lease.
 * Statements are prepared once per connection.
 */
#include "arena.h"

#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1

static const char schema_sql[] =
  "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
  /* embeddings live apart from the small, often-updated columns: an UPDATE rewrites the whole
   * record, and with the vector inline every strength update rewrote 3 KiB */
  "CREATE TABLE IF NOT EXISTS embeddings(id INTEGER PRIMARY KEY, vector BLOB NOT NULL);"
  "CREATE TABLE IF NOT EXISTS memories("
  "  id INTEGER PRIMARY KEY,"
  "  created_at REAL NOT NULL,"
  "  last_access REAL NOT NULL,"
  "  access_count INTEGER NOT NULL DEFAULT 0,"
  "  strength REAL NOT NULL DEFAULT 1.0,"
  "  activation REAL NOT NULL DEFAULT 0.0,"
  "  consolidated INTEGER NOT NULL DEFAULT 0,"
  "  content TEXT NOT NULL DEFAULT '');"
  "CREATE INDEX IF NOT EXISTS memories_by_state ON memories(consolidated, created_at);"
  "CREATE TABLE IF NOT EXISTS edges("
  "  src INTEGER NOT NULL, dst INTEGER NOT NULL, weight REAL NOT NULL,"
  "  PRIMARY KEY(src, dst)) WITHOUT ROWID;"
  "CREATE TABLE IF NOT EXISTS patterns("
  "  id INTEGER PRIMARY KEY,"
  "  centroid BLOB NOT NULL,"
  "  strength REAL NOT NULL,"
  "  members BLOB NOT NULL,"
  "  created_at REAL NOT NULL);"
  "CREATE TABLE IF NOT EXISTS claims("
  "  memory_id INTEGER PRIMARY KEY, token INTEGER NOT NULL, expires REAL NOT NULL);"
  "CREATE INDEX IF NOT EXISTS claims_by_token ON claims(token);";

enum {
  Q_CLAIM_EXPIRE, Q_CLAIM, Q_CLAIMED_ROWS, Q_NEIGHBOURS, Q_CONTEXT,
  Q_INSERT, Q_UPDATE, Q_CHECK_CLAIM, Q_EDGE_UPSERT, Q_PATTERN, Q_RELEASE,
  Q_COUNT, Q_PATTERNS_ALL, Q_PATTERN_UPDATE, Q_INSERT_VECTOR,
  Q_PATTERN_ONE, Q_EDGE_UPSERT_N, Q_UPDATE_N, Q_ROWS_N, Q_EDGES_FROM_N, Q_CLAIMED_N, Q_CONSOLIDATE_N,
  NQUERIES
};

/* Statements that take CHUNK rows at once (bound as one VALUES list or IN list): a burst writes
 * and reads hundreds of rows, and per-statement overhead (step, reset, VDBE setup) was a third
 * of the cost of doing them one by one. Built at open. */
#define CHUNK 64

static const char *const query_sql[NQUERIES] = {
  [Q_CLAIM_EXPIRE] = "DELETE FROM claims WHERE expires < ?1",
  [Q_CLAIM] =
    "INSERT INTO claims(memory_id, token, expires) "
    "SELECT id, ?1, ?2 FROM memories m WHERE consolidated = 0 "
    "AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.memory_id = m.id) "
    "ORDER BY created_at DESC, id DESC LIMIT ?3",
  [Q_CLAIMED_ROWS] =
    "SELECT m.id, v.vector, m.created_at, m.last_access, m.access_count, m.strength, m.activation "
    "FROM claims c JOIN memories m ON m.id = c.memory_id JOIN embeddings v ON v.id = m.id "
    "WHERE c.token = ?1 ORDER BY m.created_at DESC, m.id DESC",
  /* out-neighbours only: activation spreads along out-edges, and an index on dst would double
   * the pages every commit dirties */
  [Q_NEIGHBOURS] =
    "SELECT DISTINCT e.dst FROM claims c JOIN edges e ON e.src = c.memory_id WHERE c.token = ?1",
  [Q_CONTEXT] =
    "SELECT id FROM memories WHERE consolidated = 1 ORDER BY created_at DESC, id DESC LIMIT ?1",
  [Q_INSERT] =
    "INSERT INTO memories(id, created_at, last_access, access_count, strength, content) "
    "VALUES (?1, ?3, ?4, ?5, ?6, ?7)",
  [Q_INSERT_VECTOR] = "INSERT INTO embeddings(id, vector) VALUES (?1, ?2)",
  [Q_UPDATE] = "UPDATE memories SET strength = ?2, activation = ?3, last_access = ?4 "
               "WHERE id = ?1 AND (?5 IS NULL OR last_access = ?5)",
  [Q_CHECK_CLAIM] = "SELECT token FROM claims WHERE memory_id = ?1",
  [Q_EDGE_UPSERT] =
    "INSERT INTO edges(src, dst, weight) VALUES (?1, ?2, ?3) "
    "ON CONFLICT(src, dst) DO UPDATE SET weight = excluded.weight",
  [Q_PATTERN] = "INSERT INTO patterns(centroid, strength, members, created_at) VALUES (?1, ?2, ?3, ?4)",
  [Q_RELEASE] = "DELETE FROM claims WHERE token = ?1",
  [Q_PATTERNS_ALL] = "SELECT id, centroid FROM patterns",
  [Q_PATTERN_ONE] = "SELECT centroid, strength, members FROM patterns WHERE id = ?1",
  [Q_PATTERN_UPDATE] = "UPDATE patterns SET centroid = ?2, strength = ?3, members = ?4 WHERE id = ?1",
  [Q_COUNT] =
    "SELECT (SELECT count(*) FROM memories), (SELECT count(*) FROM memories WHERE consolidated = 0), "
    "(SELECT count(*) FROM edges), (SELECT count(*) FROM patterns), (SELECT count(*) FROM claims)",
};

/* The SQL of the CHUNK statements: a head, CHUNK copies of a row pattern, a tail. */
static const struct { int which; const char *head, *row, *tail; } chunk_sql[] = {
  { Q_EDGE_UPSERT_N, "INSERT INTO edges(src, dst, weight) VALUES ", "(?,?,?)",
    " ON CONFLICT(src, dst) DO UPDATE SET weight = excluded.weight" },
  { Q_UPDATE_N, "UPDATE memories SET strength = v.column2, activation = v.column3, last_access = v.column4 "
                "FROM (VALUES ", "(?,?,?,?,?)", ") AS v WHERE memories.id = v.column1 "
                "AND (v.column5 IS NULL OR memories.last_access = v.column5)" },
  { Q_ROWS_N, "SELECT m.id, v.vector, m.created_at, m.last_access, m.access_count, m.strength, m.activation "
              "FROM memories m JOIN embeddings v ON v.id = m.id WHERE m.id IN (", "?", ")" },
  { Q_EDGES_FROM_N, "SELECT src, dst, weight FROM edges WHERE src IN (", "?", ")" },
  /* ?1 is the claim token; ids from ?2 */
  { Q_CLAIMED_N, "SELECT count(*) FROM claims WHERE token = ?1 AND memory_id IN (", "?", ")" },
  { Q_CONSOLIDATE_N, "UPDATE memories SET consolidated = 1, access_count = access_count + 1 "
                     "WHERE consolidated = 0 AND id IN (", "?", ")" },
};

struct engram_store {
  sqlite3 *db;
  sqlite3_stmt *q[NQUERIES];
  uint32_t dim;
  double lease;
  char path[256];
  int importing;             /* 0 none, 1 open, -1 open but an episode was rejected */
  uint64_t token_state;
  /* claims loaded through this connection and not yet committed or released, so a host can
   * give back whatever a failed burst held (engram_store_release_pending) */
  uint64_t pending[16];
  unsigned npending;
};

static void pending_add(engram_store *s, uint64_t token)
{
  if (s->npending == sizeof s->pending / sizeof s->pending[0]) {
    /* the oldest is forgotten here; its lease still expires */
    memmove(s->pending, s->pending + 1, (s->npending - 1) * sizeof s->pending[0]);
    s->npending--;
  }
  s->pending[s->npending++] = token;
}

static void pending_remove(engram_store *s, uint64_t token)
{
  for (unsigned i = 0; i < s->npending; i++)
    if (s->pending[i] == token) {
      s->pending[i] = s->pending[--s->npending];
      return;
    }
}

/* ---- helpers ------------------------------------------------------------------------------ */

static int db_fail(engram_store *s, const char *what)
{
  return engram_fail(ENGRAM_ESTORE, "store: %s failed in '%s' (%s)", what, s->path, sqlite3_errmsg(s->db));
}

static int exec(engram_store *s, const char *sql, const char *what)
{
  char *err = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
    int rc = engram_fail(ENGRAM_ESTORE, "store: %s failed in '%s' (%s)", what, s->path, err ? err : "?");
    sqlite3_free(err);
    return rc;
  }
  return 0;
}

static sqlite3_stmt *q(engram_store *s, int which)
{
  sqlite3_stmt *st = s->q[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static double now_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Claim tokens are random 62-bit numbers: unique across workers and processes sharing a file. */
static uint64_t new_token(engram_store *s)
{
  uint64_t x = s->token_state += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (x >> 2) | 1;
}

static uint64_t seed_tokens(void)
{
  uint64_t seed = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed)
      seed = 0;
    close(fd);
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return seed ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* ---- open / close --------------------------------------------------------------------------- */

static int read_meta_dim(engram_store *s, uint32_t *dim)
{
  sqlite3_stmt *st;
  *dim = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'dim'", -1, &st, NULL) != SQLITE_OK)
    return db_fail(s, "reading the schema");
  if (sqlite3_step(st) == SQLITE_ROW)
    *dim = (uint32_t)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return 0;
}

static int check_schema(engram_store *s, uint32_t want_dim, int create)
{
  sqlite3_stmt *st;
  int version = 0;
  /* The first read is where SQLite notices a file that is not a database. */
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    int rc = engram_fail(ENGRAM_ESTORE, "store: '%s' is not an engram store (%s)", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc;
  }
  version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);

  if (version == 0) {
    /* an empty database gets the schema; anything else without our version is foreign */
    int tables = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      tables = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (tables > 0)
      return engram_fail(ENGRAM_ESTORE, "store: '%s' is not an engram store (it has other tables and no engram schema)",
                         s->path);
    if (!create)
      return engram_fail(ENGRAM_ESTORE, "store: '%s' has no engram schema (open it with create to make one)", s->path);
    if (want_dim == 0)
      return engram_fail(ENGRAM_EINVAL, "store: a new store needs an embedding dimension (dim = 0 given)");
    char sql[96];
    snprintf(sql, sizeof sql, "INSERT INTO meta VALUES ('dim', %u); PRAGMA user_version = %d;", want_dim,
             SCHEMA_VERSION);
    int rc = exec(s, "BEGIN IMMEDIATE", "creating the schema");
    if (rc == 0)
      rc = exec(s, schema_sql, "creating the schema");
    if (rc == 0)
      rc = exec(s, sql, "creating the schema");
    if (rc == 0)
      rc = exec(s, "COMMIT", "creating the schema");
    if (rc != 0) {
      exec(s, "ROLLBACK", "rollback");
      return rc;
    }
    s->dim = want_dim;
    return 0;
  }
  if (version != SCHEMA_VERSION)
    return engram_fail(ENGRAM_ESTORE, "store: '%s' has schema version %d (this engram reads version %d)", s->path,
                       version, SCHEMA_VERSION);
  uint32_t dim;
  int rc = read_meta_dim(s, &dim);
  if (rc)
    return rc;
  if (dim == 0)
    return engram_fail(ENGRAM_ESTORE, "store: '%s' has no embedding dimension recorded", s->path);
  if (want_dim && want_dim != dim)
    return engram_fail(ENGRAM_ESTORE, "store: '%s' holds %u-dimensional embeddings (%u requested)", s->path, dim,
                       want_dim);
  s->dim = dim;
  return 0;
}

engram_store *engram_store_open(const engram_store_config *cfg)
{
  if (!cfg || !cfg->path || !*cfg->path) {
    engram_fail(ENGRAM_EINVAL, "store: no path given");
    return NULL;
  }
  if (cfg->dim > 65536) {
    engram_fail(ENGRAM_EINVAL, "store: dimension %u is out of range (expected 1 to 65536)", cfg->dim);
    return NULL;
  }
  engram_store *s = calloc(1, sizeof *s);
  if (!s) {
    engram_fail(ENGRAM_ENOMEM, "store: out of memory");
    return NULL;
  }
  snprintf(s->path, sizeof s->path, "%s", cfg->path);
  s->lease = cfg->lease_seconds > 0 ? cfg->lease_seconds : 300;
  s->token_state = seed_tokens();

  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (cfg->create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(cfg->path, &s->db, flags, NULL) != SQLITE_OK) {
    engram_fail(ENGRAM_ESTORE, "store: cannot open '%s' (%s)", cfg->path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_close(s->db);
    free(s);
    return NULL;
  }
  sqlite3_busy_timeout(s->db, cfg->busy_timeout_ms > 0 ? cfg->busy_timeout_ms : 5000);
  sqlite3_extended_result_codes(s->db, 1);

  if (check_schema(s, cfg->dim, cfg->create) != 0 ||
      exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;"
              "PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY;"
              "PRAGMA journal_size_limit = 67108864;",
           "setting WAL mode") != 0)
    goto fail;
  /* A checkpoint inside a burst's commit costs the burst its fsync: with manual checkpoints
   * they happen on another connection, off the burst path. */
  if (cfg->manual_checkpoint && exec(s, "PRAGMA wal_autocheckpoint = 0", "setting manual checkpoints") != 0)
    goto fail;
  for (int i = 0; i < NQUERIES; i++) {
    if (!query_sql[i])
      continue;
    if (sqlite3_prepare_v3(s->db, query_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) != SQLITE_OK) {
      db_fail(s, "preparing a statement");
      goto fail;
    }
  }
  for (size_t i = 0; i < sizeof chunk_sql / sizeof chunk_sql[0]; i++) {
    char sql[4096];
    size_t len = (size_t)snprintf(sql, sizeof sql, "%s", chunk_sql[i].head);
    for (int k = 0; k < CHUNK; k++)
      len += (size_t)snprintf(sql + len, sizeof sql - len, k ? ",%s" : "%s", chunk_sql[i].row);
    snprintf(sql + len, sizeof sql - len, "%s", chunk_sql[i].tail);
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->q[chunk_sql[i].which], NULL) != SQLITE_OK) {
      db_fail(s, "preparing a statement");
      goto fail;
    }
  }
  return s;

fail:
  engram_store_close(s);
  return NULL;
}

void engram_store_close(engram_store *s)
{
  if (!s)
    return;
  if (s->importing)
    engram_store_import_abort(s);
  for (int i = 0; i < NQUERIES; i++)
    sqlite3_finalize(s->q[i]);
  sqlite3_close(s->db);
  free(s);
}

uint32_t engram_store_dim(const engram_store *s)
{
  return s->dim;
}

/* ---- import ------------------------------------------------------------------------------- */

int engram_store_import_begin(engram_store *s)
{
  if (s->importing)
    return engram_fail(ENGRAM_ESTATE, "store: an import is already open");
  int rc = exec(s, "BEGIN IMMEDIATE", "starting the import");
  if (rc == 0)
    s->importing = 1;
  return rc;
}

static int finite_floats(const float *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return 0;
  return 1;
}

int engram_store_import_add(engram_store *s, const engram_episode *e)
{
  if (!s->importing)
    return engram_fail(ENGRAM_ESTATE, "store: import_add outside an import");
  int rc = 0;
  if (!e->embedding || !finite_floats(e->embedding, s->dim))
    rc = engram_fail(ENGRAM_EINVAL, "store: episode %lld has a missing or non-finite embedding", (long long)e->id);
  else if (!(e->strength >= 0 && e->strength <= 1))
    rc = engram_fail(ENGRAM_EINVAL, "store: episode %lld has strength %g (expected 0 to 1)", (long long)e->id,
                     (double)e->strength);
  else if (e->access_count < 0)
    rc = engram_fail(ENGRAM_EINVAL, "store: episode %lld has access_count %d (expected 0 or more)", (long long)e->id,
                     e->access_count);
  else if (!isfinite(e->created_at) || !isfinite(e->last_access))
    rc = engram_fail(ENGRAM_EINVAL, "store: episode %lld has a non-finite timestamp", (long long)e->id);
  if (rc) {
    s->importing = -1;
    return rc;
  }
  sqlite3_stmt *st = q(s, Q_INSERT);
  sqlite3_bind_int64(st, 1, e->id);
  sqlite3_bind_double(st, 3, e->created_at);
  sqlite3_bind_double(st, 4, e->last_access > 0 ? e->last_access : e->created_at);
  sqlite3_bind_int(st, 5, e->access_count);
  sqlite3_bind_double(st, 6, e->strength);
  sqlite3_bind_text(st, 7, e->content ? e->content : "", -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  if (r == SQLITE_DONE) {
    st = q(s, Q_INSERT_VECTOR);
    sqlite3_bind_int64(st, 1, e->id);
    sqlite3_bind_blob(st, 2, e->embedding, (int)(s->dim * sizeof(float)), SQLITE_STATIC);
    r = sqlite3_step(st);
  }
  if (r != SQLITE_DONE) {
    s->importing = -1;
    if (r == SQLITE_CONSTRAINT_PRIMARYKEY)
      return engram_fail(ENGRAM_EINVAL, "store: episode id %lld is already in '%s'", (long long)e->id, s->path);
    return db_fail(s, "importing an episode");
  }
  return 0;
}

int engram_store_import_commit(engram_store *s)
{
  if (!s->importing)
    return engram_fail(ENGRAM_ESTATE, "store: import_commit outside an import");
  if (s->importing < 0) {
    engram_store_import_abort(s);
    return engram_fail(ENGRAM_ESTATE, "store: import rolled back (an episode was rejected)");
  }
  int rc = exec(s, "COMMIT", "committing the import");
  if (rc != 0)
    exec(s, "ROLLBACK", "rollback");
  s->importing = 0;
  return rc;
}

void engram_store_import_abort(engram_store *s)
{
  if (s->importing) {
    char *err = NULL;
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, &err);
    sqlite3_free(err);
  }
  s->importing = 0;
}

int engram_store_count(engram_store *s, engram_store_counts *out)
{
  if (out->struct_size != sizeof *out || out->struct_version != ENGRAM_STORE_COUNTS_VERSION)
    return engram_fail(ENGRAM_EVERSION, "store: counts struct mismatch");
  sqlite3_stmt *st = q(s, Q_COUNT);
  if (sqlite3_step(st) != SQLITE_ROW)
    return db_fail(s, "counting");
  out->memories = sqlite3_column_int64(st, 0);
  out->unconsolidated = sqlite3_column_int64(st, 1);
  out->edges = sqlite3_column_int64(st, 2);
  out->patterns = sqlite3_column_int64(st, 3);
  out->claims = sqlite3_column_int64(st, 4);
  sqlite3_reset(st);
  return 0;
}

/* ---- load ---------------------------------------------------------------------------------- */

/* id -> row index, open addressing in the arena (no malloc on the burst path). */
struct id_map {
  int64_t *keys;
  int32_t *vals;
  uint32_t mask;
};

static int map_init(struct id_map *m, engram_arena *a, uint32_t n)
{
  uint32_t cap = 16;
  while (cap < 2 * n)
    cap <<= 1;
  m->keys = engram_arena_alloc_array(a, cap, sizeof(int64_t), 64);
  m->vals = engram_arena_alloc_array(a, cap, sizeof(int32_t), 64);
  if (!m->keys || !m->vals)
    return ENGRAM_EFULL;
  for (uint32_t i = 0; i < cap; i++)
    m->vals[i] = -1;
  m->mask = cap - 1;
  return 0;
}

static uint32_t map_slot(const struct id_map *m, int64_t id)
{
  uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;
  uint32_t i = (uint32_t)(h >> 32) & m->mask;
  while (m->vals[i] >= 0 && m->keys[i] != id)
    i = (i + 1) & m->mask;
  return i;
}

static int32_t map_get(const struct id_map *m, int64_t id)
{
  return m->vals[map_slot(m, id)];
}

/* Copy one memories row (Q_CLAIMED_ROWS / Q_ROWS_N column order) into row r of the batch. */
static int copy_row(engram_store *s, sqlite3_stmt *st, engram_batch *b, uint32_t r)
{
  b->ids[r] = sqlite3_column_int64(st, 0);
  const void *blob = sqlite3_column_blob(st, 1);
  int bytes = sqlite3_column_bytes(st, 1);
  if (bytes != (int)(s->dim * sizeof(float)))
    return engram_fail(ENGRAM_ESTORE, "store: memory %lld in '%s' has a %d-byte embedding (expected %zu)",
                       (long long)b->ids[r], s->path, bytes, s->dim * sizeof(float));
  memcpy(b->embeddings + (size_t)r * s->dim, blob, (size_t)bytes);
  b->created_at[r] = sqlite3_column_double(st, 2);
  b->last_access[r] = sqlite3_column_double(st, 3);
  b->access_count[r] = sqlite3_column_int(st, 4);
  b->strength[r] = (float)sqlite3_column_double(st, 5);
  b->activation[r] = (float)sqlite3_column_double(st, 6);
  return 0;
}

static int alloc_rows(engram_arena *a, engram_batch *b, uint32_t rows, uint32_t dim)
{
  b->ids = engram_arena_alloc_array(a, rows, sizeof(int64_t), 64);
  b->embeddings = engram_arena_alloc_array(a, (size_t)rows * dim, sizeof(float), 64);
  b->created_at = engram_arena_alloc_array(a, rows, sizeof(double), 64);
  b->last_access = engram_arena_alloc_array(a, rows, sizeof(double), 64);
  b->access_count = engram_arena_alloc_array(a, rows, sizeof(int32_t), 64);
  b->strength = engram_arena_alloc_array(a, rows, sizeof(float), 64);
  b->activation = engram_arena_alloc_array(a, rows, sizeof(float), 64);
  if (!b->ids || !b->embeddings || !b->created_at || !b->last_access || !b->access_count || !b->strength ||
      !b->activation)
    return ENGRAM_EFULL;
  return 0;
}

/* Claim up to `batch` episodes for token; *claimed gets how many. */
static int claim(engram_store *s, uint64_t token, uint32_t batch, double now, uint32_t *claimed)
{
  int rc = exec(s, "BEGIN IMMEDIATE", "claiming episodes");
  if (rc)
    return rc;
  sqlite3_stmt *st = q(s, Q_CLAIM_EXPIRE);
  sqlite3_bind_double(st, 1, now);
  if (sqlite3_step(st) != SQLITE_DONE)
    goto fail;
  st = q(s, Q_CLAIM);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)token);
  sqlite3_bind_double(st, 2, now + s->lease);
  sqlite3_bind_int64(st, 3, batch);
  if (sqlite3_step(st) != SQLITE_DONE)
    goto fail;
  *claimed = (uint32_t)sqlite3_changes(s->db);
  sqlite3_reset(st);
  return exec(s, "COMMIT", "claiming episodes");
fail:
  rc = db_fail(s, "claiming episodes");
  exec(s, "ROLLBACK", "rollback");
  return rc;
}

int engram_store_load(engram_store *s, engram_arena *a, uint32_t batch, uint32_t context, double now,
                      engram_batch *out)
{
  if (!a && !(a = engram_arena_thread()))
    return ENGRAM_ENOMEM;
  if (batch == 0 || batch > 1000000 || context > 1000000)
    return engram_fail(ENGRAM_EINVAL, "store: batch %u / context %u out of range (expected 1..1000000 / 0..1000000)",
                       batch, context);
  if (now <= 0)
    now = now_seconds();
  memset(out, 0, sizeof *out);
  out->dim = s->dim;
  out->claim = new_token(s);
  engram_mark m = engram_arena_mark(a);

  uint32_t claimed = 0;
  int rc = claim(s, out->claim, batch, now, &claimed);
  if (rc)
    return rc;
  if (claimed == 0)
    return 0;   /* nothing to consolidate: n = 0, nothing allocated */

  /* Everything below reads one snapshot. */
  if ((rc = exec(s, "BEGIN", "loading a batch")) != 0)
    goto fail_claimed;

  uint32_t rows = claimed + context;
  if (alloc_rows(a, out, rows, s->dim) != 0) {
    rc = ENGRAM_EFULL;
    goto fail_arena;
  }
  struct id_map map;
  if ((rc = map_init(&map, a, rows)) != 0)
    goto fail_arena;

  uint32_t n = 0;
  sqlite3_stmt *st = q(s, Q_CLAIMED_ROWS);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)out->claim);
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW && n < claimed) {
    if ((rc = copy_row(s, st, out, n)) != 0)
      goto fail_read;
    uint32_t slot = map_slot(&map, out->ids[n]);
    map.keys[slot] = out->ids[n];
    map.vals[slot] = (int32_t)n;
    n++;
  }
  if (r != SQLITE_DONE && r != SQLITE_ROW) {
    rc = db_fail(s, "loading claimed episodes");
    goto fail_read;
  }
  out->n = n;
  if (n > 0)
    pending_add(s, out->claim);
  uint32_t total = n;

  /* Context: out-neighbours in the graph first, then the newest consolidated memories (by creation
   * time). A context
   * row that no longer exists keeps an occupied map slot that maps to no row (INT32_MAX). */
  if (n > 0 && context > 0) {
    int64_t *cand = engram_arena_alloc_array(a, context, sizeof(int64_t), 8);
    if (!cand) {
      rc = ENGRAM_EFULL;
      goto fail_arena;
    }
    uint32_t nc = 0;
    r = SQLITE_DONE;
    for (int pass = 0; pass < 2 && nc < context; pass++) {
      st = q(s, pass == 0 ? Q_NEIGHBOURS : Q_CONTEXT);
      if (pass == 0)
        sqlite3_bind_int64(st, 1, (sqlite3_int64)out->claim);
      else
        sqlite3_bind_int64(st, 1, (sqlite3_int64)context + nc);   /* enough to skip the neighbours */
      while (nc < context && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        uint32_t slot = map_slot(&map, id);
        if (map.vals[slot] >= 0)
          continue;
        map.keys[slot] = id;
        map.vals[slot] = INT32_MAX;
        cand[nc++] = id;
      }
      sqlite3_reset(st);
      if (nc < context && r != SQLITE_DONE) {
        rc = db_fail(s, "choosing context rows");
        goto fail_read;
      }
    }
    /* CHUNK ids per statement; unbound slots of the last chunk are NULL and match nothing.
     * A candidate without a row (an edge to a memory that no longer exists) just never comes
     * back. */
    for (uint32_t i = 0; i < nc; i += CHUNK) {
      st = q(s, Q_ROWS_N);
      for (uint32_t k = 0; k < CHUNK && i + k < nc; k++)
        sqlite3_bind_int64(st, (int)k + 1, cand[i + k]);
      while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = copy_row(s, st, out, total)) != 0)
          goto fail_read;
        map.vals[map_slot(&map, out->ids[total])] = (int32_t)total;
        total++;
      }
      if (r != SQLITE_DONE) {
        rc = db_fail(s, "loading context rows");
        goto fail_read;
      }
    }
    sqlite3_reset(s->q[Q_ROWS_N]);
  }
  out->total = total;

  /* Edges with both ends loaded, as row indices. Degree is unknown up front: collect into the
   * arena as we go, growing by doubling (old arrays stay in the arena until the burst ends). */
  uint32_t cap = 64, ne = 0;
  int32_t *es = engram_arena_alloc_array(a, cap, sizeof(int32_t), 64);
  int32_t *ed = engram_arena_alloc_array(a, cap, sizeof(int32_t), 64);
  float *ew = engram_arena_alloc_array(a, cap, sizeof(float), 64);
  if (!es || !ed || !ew) {
    rc = ENGRAM_EFULL;
    goto fail_arena;
  }
  for (uint32_t i = 0; i < total; i += CHUNK) {
    st = q(s, Q_EDGES_FROM_N);
    for (uint32_t k = 0; k < CHUNK && i + k < total; k++)
      sqlite3_bind_int64(st, (int)k + 1, out->ids[i + k]);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
      int32_t from = map_get(&map, sqlite3_column_int64(st, 0));
      int32_t j = map_get(&map, sqlite3_column_int64(st, 1));
      if (from < 0 || (uint32_t)from >= total || j < 0 || (uint32_t)j >= total)
        continue;
      if (ne == cap) {
        cap *= 2;
        int32_t *ns = engram_arena_alloc_array(a, cap, sizeof(int32_t), 64);
        int32_t *nd = engram_arena_alloc_array(a, cap, sizeof(int32_t), 64);
        float *nw = engram_arena_alloc_array(a, cap, sizeof(float), 64);
        if (!ns || !nd || !nw) {
          rc = ENGRAM_EFULL;
          goto fail_arena;
        }
        memcpy(ns, es, ne * sizeof *es);
        memcpy(nd, ed, ne * sizeof *ed);
        memcpy(nw, ew, ne * sizeof *ew);
        es = ns, ed = nd, ew = nw;
      }
      es[ne] = from;
      ed[ne] = j;
      ew[ne] = (float)sqlite3_column_double(st, 2);
      ne++;
    }
    if (r != SQLITE_DONE) {
      rc = db_fail(s, "loading edges");
      goto fail_read;
    }
  }
  sqlite3_reset(st);
  out->n_edges = ne;
  out->edge_src = es;
  out->edge_dst = ed;
  out->edge_weight = ew;
  exec(s, "COMMIT", "loading a batch");
  return 0;

fail_arena:
  {
    char why[256];   /* the arena's message, copied: engram_fail writes the same buffer */
    snprintf(why, sizeof why, "%s", engram_last_error());
    rc = engram_fail(ENGRAM_EFULL, "store: the arena cannot hold the batch of %u + %u rows of %u floats (%s)", batch,
                     context, s->dim, why);
  }
fail_read:
  for (int i = 0; i < NQUERIES; i++)
    sqlite3_reset(s->q[i]);
  exec(s, "ROLLBACK", "rollback");
fail_claimed:
  {
    char msg[512];   /* the failure's message, not the cleanup's */
    snprintf(msg, sizeof msg, "%s", engram_last_error());
    engram_store_release(s, out->claim);
    engram_arena_rewind(a, m);
    memset(out, 0, sizeof *out);
    return engram_fail(rc, "%s", msg);
  }
}

/* ---- commit / release ----------------------------------------------------------------------- */

static int check_changes(const engram_store *s, const engram_store_changes *c)
{
  if (c->struct_size != sizeof *c || c->struct_version != ENGRAM_STORE_CHANGES_VERSION)
    return engram_fail(ENGRAM_EVERSION, "store: changes struct mismatch");
  for (uint32_t i = 0; i < c->n_updates; i++) {
    float st = c->update_strength[i], ac = c->update_activation[i];
    if (!(st >= 0 && st <= 1))
      return engram_fail(ENGRAM_EINVAL, "store: memory %lld would get strength %g (expected 0 to 1)",
                         (long long)c->update_ids[i], (double)st);
    if (!isfinite(ac))
      return engram_fail(ENGRAM_EINVAL, "store: memory %lld would get a non-finite activation",
                         (long long)c->update_ids[i]);
  }
  for (uint32_t i = 0; i < c->n_edges; i++)
    if (!isfinite(c->edge_weight[i]))
      return engram_fail(ENGRAM_EINVAL, "store: edge %lld -> %lld has a non-finite weight",
                         (long long)c->edge_src[i], (long long)c->edge_dst[i]);
  if (c->n_patterns) {
    if (c->pattern_offsets[0] != 0)
      return engram_fail(ENGRAM_EINVAL, "store: pattern offsets must start at 0");
    for (uint32_t p = 0; p < c->n_patterns; p++) {
      if (c->pattern_offsets[p + 1] < c->pattern_offsets[p])
        return engram_fail(ENGRAM_EINVAL, "store: pattern offsets decrease at pattern %u", p);
      if (c->pattern_offsets[p + 1] - c->pattern_offsets[p] > (1u << 24))
        return engram_fail(ENGRAM_EINVAL, "store: pattern %u has %u members (at most %u)", p,
                           c->pattern_offsets[p + 1] - c->pattern_offsets[p], 1u << 24);
      if (!finite_floats(c->pattern_centroids + (size_t)p * s->dim, s->dim) || !isfinite(c->pattern_strength[p]))
        return engram_fail(ENGRAM_EINVAL, "store: pattern %u has a non-finite centroid or strength", p);
    }
  }
  return 0;
}

static int step_done(engram_store *s, sqlite3_stmt *st, const char *what)
{
  int r = sqlite3_step(st);
  sqlite3_reset(st);
  return r == SQLITE_DONE ? 0 : db_fail(s, what);
}

static double cosine(const float *x, const float *y, uint32_t d)
{
  double xy = 0, xx = 0, yy = 0;
  for (uint32_t k = 0; k < d; k++) {
    xy += (double)x[k] * y[k];
    xx += (double)x[k] * x[k];
    yy += (double)y[k] * y[k];
  }
  return xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0;
}

/* Merge a new pattern into the most similar stored one when their centroids' cosine reaches
 * `threshold`: members are united, centroid and strength averaged with the member counts as
 * weights. 1 = merged, 0 = no stored pattern close enough, < 0 = error. Runs inside the
 * commit's transaction, so patterns merged earlier in the same commit are seen. */
static int merge_pattern(engram_store *s, const float *centroid, float strength, const int64_t *members,
                         uint32_t nmembers, float threshold)
{
  sqlite3_stmt *st = q(s, Q_PATTERNS_ALL);
  int64_t best = -1;
  double best_cos = threshold;
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 1) != (int)(s->dim * sizeof(float)))
      continue;
    double cs = cosine(centroid, sqlite3_column_blob(st, 1), s->dim);
    if (cs >= best_cos) {
      best_cos = cs;
      best = sqlite3_column_int64(st, 0);
    }
  }
  sqlite3_reset(st);
  if (r != SQLITE_DONE)
    return db_fail(s, "reading patterns");
  if (best < 0)
    return 0;

  /* reread the winner (the scan's column pointers are gone) and build the merged row */
  sqlite3_stmt *one = q(s, Q_PATTERN_ONE);
  sqlite3_bind_int64(one, 1, best);
  if (sqlite3_step(one) != SQLITE_ROW) {
    sqlite3_reset(one);
    return db_fail(s, "reading a pattern");
  }
  const float *old_c = sqlite3_column_blob(one, 0);
  double old_s = sqlite3_column_double(one, 1);
  const int64_t *old_m = sqlite3_column_blob(one, 2);
  uint32_t nold = (uint32_t)(sqlite3_column_bytes(one, 2) / (int)sizeof(int64_t));
  float *cen = malloc(s->dim * sizeof(float));
  int64_t *mem = malloc(((size_t)nold + nmembers + 1) * sizeof(int64_t));
  if (!cen || !mem) {
    free(cen);
    free(mem);
    sqlite3_reset(one);
    return engram_fail(ENGRAM_ENOMEM, "store: out of memory merging patterns");
  }
  memcpy(mem, old_m, (size_t)nold * sizeof(int64_t));
  uint32_t nm = nold;
  for (uint32_t i = 0; i < nmembers; i++) {
    uint32_t k = 0;
    while (k < nold && mem[k] != members[i])
      k++;
    if (k == nold)
      mem[nm++] = members[i];
  }
  double wo = nold, wn = nmembers, w = wo + wn > 0 ? wo + wn : 1;
  for (uint32_t k = 0; k < s->dim; k++)
    cen[k] = (float)((old_c[k] * wo + centroid[k] * wn) / w);
  double merged_strength = (old_s * wo + strength * wn) / w;
  sqlite3_reset(one);

  st = q(s, Q_PATTERN_UPDATE);
  sqlite3_bind_int64(st, 1, best);
  sqlite3_bind_blob(st, 2, cen, (int)(s->dim * sizeof(float)), SQLITE_TRANSIENT);
  sqlite3_bind_double(st, 3, merged_strength);
  sqlite3_bind_blob(st, 4, mem, (int)(nm * sizeof(int64_t)), SQLITE_TRANSIENT);
  free(cen);
  free(mem);
  int rc = step_done(s, st, "merging a pattern");
  return rc ? rc : 1;
}

/* The message for a chunk of consolidated ids that failed the claim check: the first id not
 * held by this burst. Returns ENGRAM_ESTATE. */
static int unclaimed(engram_store *s, const engram_store_changes *c, uint32_t from, uint32_t m)
{
  for (uint32_t i = from; i < from + m; i++) {
    sqlite3_stmt *st = q(s, Q_CHECK_CLAIM);
    sqlite3_bind_int64(st, 1, c->consolidated_ids[i]);
    uint64_t owner = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (owner != c->claim)
      return engram_fail(ENGRAM_ESTATE, "store: episode %lld is not claimed by this burst (%s); nothing was written",
                         (long long)c->consolidated_ids[i],
                         owner ? "another burst holds it" : "its claim expired or was released");
  }
  return engram_fail(ENGRAM_ESTATE, "store: an episode is listed twice among the consolidated; nothing was written");
}

int engram_store_commit(engram_store *s, const engram_store_changes *c)
{
  int rc = check_changes(s, c);
  if (rc)
    return rc;
  double now = c->now > 0 ? c->now : now_seconds();
  if ((rc = exec(s, "BEGIN IMMEDIATE", "committing a burst")) != 0)
    return rc;

  sqlite3_stmt *st;
  /* The batch, CHUNK ids a statement: all claimed by this burst, all still unconsolidated.
   * When a chunk fails the check, its ids are checked one by one for the message. */
  for (uint32_t i = 0; i < c->n_consolidated; i += CHUNK) {
    uint32_t k, m = c->n_consolidated - i < CHUNK ? c->n_consolidated - i : CHUNK;
    st = q(s, Q_CLAIMED_N);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)c->claim);
    for (k = 0; k < m; k++)
      sqlite3_bind_int64(st, (int)k + 2, c->consolidated_ids[i + k]);
    if (sqlite3_step(st) != SQLITE_ROW) {
      rc = db_fail(s, "checking claims");
      goto rollback;
    }
    int held = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (held != (int)m) {
      rc = unclaimed(s, c, i, m);
      goto rollback;
    }
    st = q(s, Q_CONSOLIDATE_N);
    for (k = 0; k < m; k++)
      sqlite3_bind_int64(st, (int)k + 1, c->consolidated_ids[i + k]);
    if ((rc = step_done(s, st, "marking episodes consolidated")) != 0)
      goto rollback;
    if (sqlite3_changes(s->db) != (int)m) {
      rc = engram_fail(ENGRAM_ESTATE, "store: an episode of this burst was already consolidated (or listed twice); "
                       "nothing was written");
      goto rollback;
    }
  }
  uint32_t u = 0;
  for (; u + CHUNK <= c->n_updates; u += CHUNK) {
    st = q(s, Q_UPDATE_N);
    for (int k = 0; k < CHUNK; k++) {
      sqlite3_bind_int64(st, 5 * k + 1, c->update_ids[u + k]);
      sqlite3_bind_double(st, 5 * k + 2, c->update_strength[u + k]);
      sqlite3_bind_double(st, 5 * k + 3, c->update_activation[u + k]);
      sqlite3_bind_double(st, 5 * k + 4, now);
      if (c->update_last_access)
        sqlite3_bind_double(st, 5 * k + 5, c->update_last_access[u + k]);
    }
    if ((rc = step_done(s, st, "updating memories")) != 0)
      goto rollback;
  }
  for (uint32_t i = u; i < c->n_updates; i++) {
    st = q(s, Q_UPDATE);
    sqlite3_bind_int64(st, 1, c->update_ids[i]);
    sqlite3_bind_double(st, 2, c->update_strength[i]);
    sqlite3_bind_double(st, 3, c->update_activation[i]);
    sqlite3_bind_double(st, 4, now);
    if (c->update_last_access)
      sqlite3_bind_double(st, 5, c->update_last_access[i]);
    if ((rc = step_done(s, st, "updating memories")) != 0)
      goto rollback;
  }
  uint32_t i = 0;
  for (; i + CHUNK <= c->n_edges; i += CHUNK) {
    st = q(s, Q_EDGE_UPSERT_N);
    for (int k = 0; k < CHUNK; k++) {
      sqlite3_bind_int64(st, 3 * k + 1, c->edge_src[i + k]);
      sqlite3_bind_int64(st, 3 * k + 2, c->edge_dst[i + k]);
      sqlite3_bind_double(st, 3 * k + 3, c->edge_weight[i + k]);
    }
    if ((rc = step_done(s, st, "writing edges")) != 0)
      goto rollback;
  }
  for (; i < c->n_edges; i++) {
    st = q(s, Q_EDGE_UPSERT);
    sqlite3_bind_int64(st, 1, c->edge_src[i]);
    sqlite3_bind_int64(st, 2, c->edge_dst[i]);
    sqlite3_bind_double(st, 3, c->edge_weight[i]);
    if ((rc = step_done(s, st, "writing edges")) != 0)
      goto rollback;
  }
  for (uint32_t p = 0; p < c->n_patterns; p++) {
    uint32_t lo = c->pattern_offsets[p], hi = c->pattern_offsets[p + 1];
    if (c->pattern_merge > 0) {
      int merged = merge_pattern(s, c->pattern_centroids + (size_t)p * s->dim, c->pattern_strength[p],
                                 c->pattern_members + lo, hi - lo, c->pattern_merge);
      if (merged < 0) {
        rc = merged;
        goto rollback;
      }
      if (merged)
        continue;
    }
    st = q(s, Q_PATTERN);
    sqlite3_bind_blob(st, 1, c->pattern_centroids + (size_t)p * s->dim, (int)(s->dim * sizeof(float)), SQLITE_STATIC);
    sqlite3_bind_double(st, 2, c->pattern_strength[p]);
    sqlite3_bind_blob(st, 3, c->pattern_members + lo, (int)((hi - lo) * sizeof(int64_t)), SQLITE_STATIC);
    sqlite3_bind_double(st, 4, now);
    if ((rc = step_done(s, st, "writing patterns")) != 0)
      goto rollback;
  }
  st = q(s, Q_RELEASE);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)c->claim);
  if ((rc = step_done(s, st, "releasing claims")) != 0)
    goto rollback;
  if ((rc = exec(s, "COMMIT", "committing a burst")) != 0)
    goto rollback;
  pending_remove(s, c->claim);
  return 0;

rollback:
  {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", engram_last_error());
    exec(s, "ROLLBACK", "rollback");
    return engram_fail(rc, "%s", msg);
  }
}

int engram_store_release(engram_store *s, uint64_t claim)
{
  sqlite3_stmt *st = q(s, Q_RELEASE);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)claim);
  int rc = step_done(s, st, "releasing claims");
  if (rc == 0)
    pending_remove(s, claim);   /* kept on failure, so a later call can retry it */
  return rc;
}

int engram_store_release_pending(engram_store *s)
{
  int rc = 0;
  /* from the newest; a token whose release fails stays pending and is skipped this time */
  for (unsigned i = s->npending; i > 0; i--) {
    int r = engram_store_release(s, s->pending[i - 1]);
    if (r != 0)
      rc = r;
  }
  return rc;
}

int engram_store_checkpoint(engram_store *s, int *wal_pages)
{
  int log = 0, done = 0;
  int r = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  if (r != SQLITE_OK && r != SQLITE_BUSY)
    return db_fail(s, "checkpointing the WAL");
  if (wal_pages)
    *wal_pages = log - done;
  return 0;
}

int engram_store_meta_set(engram_store *s, const char *key, const char *value)
{
  if (!key || !*key || !value || strcmp(key, "dim") == 0 || strncmp(key, "engram.", 7) == 0)
    return engram_fail(ENGRAM_EINVAL, "store: meta key '%s' is empty or reserved", key ? key : "(null)");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
    return db_fail(s, "writing meta");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  return r == SQLITE_DONE ? 0 : db_fail(s, "writing meta");
}

int engram_store_meta_get(engram_store *s, const char *key, char *buf, size_t cap)
{
  if (cap)
    buf[0] = '\0';
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
    return db_fail(s, "reading meta");
  sqlite3_bind_text(st, 1, key ? key : "", -1, SQLITE_STATIC);
  int r = sqlite3_step(st), rc = 0;
  if (r == SQLITE_ROW) {
    const unsigned char *v = sqlite3_column_text(st, 0);
    if (cap)
      snprintf(buf, cap, "%s", v ? (const char *)v : "");
  } else if (r == SQLITE_DONE) {
    rc = engram_fail(ENGRAM_ERANGE, "store: meta key '%s' is not set", key ? key : "");
  } else {
    rc = db_fail(s, "reading meta");
  }
  sqlite3_finalize(st);
  return rc;
}

/* ---- summary ------------------------------------------------------------------------------ */

static double scalar(engram_store *s, const char *sql, int64_t arg, int *rc)
{
  sqlite3_stmt *st;
  double v = 0;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    *rc = db_fail(s, "summarizing");
    return 0;
  }
  sqlite3_bind_int64(st, 1, arg);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW)
    v = sqlite3_column_double(st, 0);
  else if (r != SQLITE_DONE)
    *rc = db_fail(s, "summarizing");
  sqlite3_finalize(st);
  return v;
}

int engram_store_summarize(engram_store *s, engram_store_summary *out)
{
  if (out->struct_size != sizeof *out || out->struct_version != ENGRAM_STORE_SUMMARY_VERSION)
    return engram_fail(ENGRAM_EVERSION, "store: summary struct mismatch");
  int rc = 0;
  int64_t n = (int64_t)scalar(s, "SELECT count(*) FROM memories WHERE ?1 = ?1", 0, &rc);
  out->memories = n;
  static const char q_at[] = "SELECT strength FROM memories ORDER BY strength LIMIT 1 OFFSET ?1";
  out->strength_mean = scalar(s, "SELECT avg(strength) FROM memories WHERE ?1 = ?1", 0, &rc);
  out->strength_min = scalar(s, q_at, 0, &rc);
  out->strength_p10 = scalar(s, q_at, n / 10, &rc);
  out->strength_p50 = scalar(s, q_at, n / 2, &rc);
  out->strength_p90 = scalar(s, q_at, (n * 9) / 10, &rc);
  out->strength_max = scalar(s, q_at, n > 0 ? n - 1 : 0, &rc);
  out->activation_mean = scalar(s, "SELECT avg(activation) FROM memories WHERE ?1 = ?1", 0, &rc);
  out->edge_weight_mean = scalar(s, "SELECT avg(weight) FROM edges WHERE ?1 = ?1", 0, &rc);
  out->pattern_members_mean = scalar(s, "SELECT avg(length(members)) / 8.0 FROM patterns WHERE ?1 = ?1", 0, &rc);
  return rc;
}
