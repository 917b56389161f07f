/*
 * store.c — the SQLite memory store: schema, import, the burst's load (claims + arena copies)
 * and its commit (one transaction).
 *
 * A burst touches a few hundred memories; SQLite costs about a microsecond per row visited and
 * a few per page a commit dirties, so the layout is chosen for rows and pages per burst:
 *  - a memory's out-edges live in its own row (`memories.edges`, a packed list sorted by
 *    target), so loading a memory brings its edges, and a commit writes each touched memory —
 *    new strength, activation and edges together — in one row update;
 *  - embeddings live in their own table, written once at import and never rewritten;
 *  - claims live in the process (claims.c), so a load is a read transaction only.
 * Statements are prepared once per connection.
 */
#include "arena.h"
#include "claims.h"
#include "walvfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 2


/* memories.edges: EDGE_BYTES per edge, the target id (int64) then the weight (float32), both
 * little-endian, sorted by target, one entry per target; then free slots (target EDGE_FREE)
 * up to a multiple of EDGE_SLOTS entries. The slack lets a memory gain edges without its row
 * changing size: rows are imported tightly packed, and a row that grows splits and rebalances
 * its page, which doubled the cost of a commit's row writes. */
#define EDGE_BYTES 12
#define EDGE_SLOTS 8
#define EDGE_FREE INT64_MIN

static const char schema_sql[] =
  "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
  /* embeddings and contents live apart from the small, often-updated columns: an UPDATE
   * rewrites the whole record, and with the vector inline every strength update rewrote 3 KiB
   * (an episode's text can be longer still) */
  "CREATE TABLE IF NOT EXISTS embeddings(id INTEGER PRIMARY KEY, vector BLOB NOT NULL);"
  "CREATE TABLE IF NOT EXISTS contents(id INTEGER PRIMARY KEY, content TEXT NOT NULL);"
  "CREATE TABLE IF NOT EXISTS memories("
  "  id INTEGER PRIMARY KEY,"
  "  created_at REAL NOT NULL,"
  "  last_access REAL NOT NULL,"
  "  access_count INTEGER NOT NULL DEFAULT 0,"
  "  strength REAL NOT NULL DEFAULT 1.0,"
  "  activation REAL NOT NULL DEFAULT 0.0,"
  "  consolidated INTEGER NOT NULL DEFAULT 0,"
  "  edges BLOB);"
  "CREATE INDEX IF NOT EXISTS memories_by_state ON memories(consolidated, created_at);"
  "CREATE TABLE IF NOT EXISTS patterns("
  "  id INTEGER PRIMARY KEY,"
  "  centroid BLOB NOT NULL,"
  "  strength REAL NOT NULL,"
  "  size INTEGER NOT NULL DEFAULT 0,"
  "  created_at REAL NOT NULL);"
  /* one row per member: a merge adds its new members instead of rewriting a list that grows
   * with every burst of the topic */
  "CREATE TABLE IF NOT EXISTS pattern_members("
  "  pattern INTEGER NOT NULL, memory INTEGER NOT NULL,"
  "  PRIMARY KEY(pattern, memory)) WITHOUT ROWID;";

enum {
  Q_UNCONSOLIDATED, Q_CONTEXT_AFTER, Q_CONTEXT_BEFORE, Q_INSERT, Q_INSERT_VECTOR, Q_INSERT_CONTENT, Q_COUNT, Q_PATTERNS_ALL, Q_PATTERN,
  Q_PATTERN_UPDATE, Q_DATA_VERSION, Q_ROW_STATE, Q_WRITE, Q_WRITE_CONSOLIDATE, Q_ROWS_N, Q_MEMBERS_N,
  NQUERIES
};

/* Statements that take CHUNK rows at once (bound as one VALUES list or IN list): a burst reads
 * and writes hundreds of rows, and per-statement overhead (step, reset, VDBE setup) was a third
 * of the cost of doing them one by one. Built at open. */
#define CHUNK 64

/* The columns every row write sets (see Q_WRITE). */
#define WRITE_FRESH "?3 IS NOT NULL AND (?6 IS NULL OR last_access = ?6)"
#define WRITE_SET                                                          \
  "strength = CASE WHEN " WRITE_FRESH " THEN ?3 ELSE strength END, "       \
  "activation = CASE WHEN " WRITE_FRESH " THEN ?4 ELSE activation END, "   \
  "last_access = CASE WHEN " WRITE_FRESH " THEN ?5 ELSE last_access END, " \
  "edges = CASE WHEN ?7 IS NULL THEN edges ELSE engram_edges_merge(edges, ?7) END"

static const char *const query_sql[NQUERIES] = {
  /* newest first, straight off the index (consolidated, created_at, id) */
  [Q_UNCONSOLIDATED] = "SELECT id FROM memories WHERE consolidated = 0 ORDER BY created_at DESC, id DESC",
  /* consolidated memories from the batch's oldest episode on, and before it, each nearest first */
  [Q_CONTEXT_AFTER] =
    "SELECT id, created_at FROM memories WHERE consolidated = 1 AND created_at >= ?1 ORDER BY created_at, id",
  [Q_CONTEXT_BEFORE] =
    "SELECT id, created_at FROM memories WHERE consolidated = 1 AND created_at < ?1 ORDER BY created_at DESC, id DESC",
  [Q_INSERT] =
    "INSERT INTO memories(id, created_at, last_access, access_count, strength, edges) "
    "VALUES (?1, ?3, ?4, ?5, ?6, ?8)",
  [Q_INSERT_VECTOR] = "INSERT INTO embeddings(id, vector) VALUES (?1, ?2)",
  [Q_INSERT_CONTENT] = "INSERT INTO contents(id, content) VALUES (?1, ?2)",
  [Q_COUNT] =
    "SELECT (SELECT count(*) FROM memories), (SELECT count(*) FROM memories WHERE consolidated = 0), "
    "(SELECT total(engram_edges_count(edges)) FROM memories), (SELECT count(*) FROM patterns)",
  [Q_PATTERNS_ALL] = "SELECT id, centroid, strength, size FROM patterns",
  [Q_PATTERN] = "INSERT INTO patterns(centroid, strength, size, created_at) VALUES (?1, ?2, ?4, ?3)",
  [Q_PATTERN_UPDATE] = "UPDATE patterns SET centroid = ?2, strength = ?3, size = ?4 WHERE id = ?1",
  [Q_ROW_STATE] = "SELECT consolidated FROM memories WHERE id = ?1",
  [Q_DATA_VERSION] = "PRAGMA data_version",
  /* One write per memory a burst touched: ?1 id, ?2 consolidate (0/1), ?3 strength (NULL: keep),
   * ?4 activation, ?5 the burst's clock, ?6 last_access seen at load (NULL: don't check), ?7 new
   * out-edges (NULL: none). New values land only where last_access is still what the load saw:
   * concurrent bursts share context rows, and the later commit would otherwise undo the earlier
   * one's decay and reinforcement. Edges always merge. All SET expressions read the old row.
   * One row a statement: an UPDATE ... FROM (VALUES ...) over 64 rows materialises its join
   * first and cost twice as much per row. */
  [Q_WRITE] = "UPDATE memories SET " WRITE_SET " WHERE id = ?1 AND ?2 = 0",
  /* the same for one of the burst's episodes (?2 = 1): only these statements name the indexed
   * column, so only they pay for the state index */
  [Q_WRITE_CONSOLIDATE] =
    "UPDATE memories SET consolidated = 1, access_count = access_count + 1, " WRITE_SET
    " WHERE id = ?1 AND ?2 = 1 AND consolidated = 0",
};

/* The SQL of the CHUNK statements: a head, CHUNK copies of a row pattern, a tail. */
static const struct { int which; const char *head, *row, *tail; } chunk_sql[] = {
  { Q_ROWS_N, "SELECT m.id, v.vector, m.created_at, m.last_access, m.access_count, m.strength, m.activation, "
              "m.edges FROM memories m JOIN embeddings v ON v.id = m.id WHERE m.id IN (", "?", ")" },
  /* ?1 the pattern, then CHUNK member ids (unbound slots of the last chunk are NULL: skipped) */
  { Q_MEMBERS_N, "INSERT OR IGNORE INTO pattern_members(pattern, memory) SELECT ?1, column1 FROM (VALUES ", "(?)",
    ") WHERE column1 IS NOT NULL" },
};

struct engram_store {
  sqlite3 *db;
  sqlite3_stmt *q[NQUERIES];
  uint32_t dim;
  double lease;
  char path[256];
  int importing;             /* 0 none, 1 open, -1 open but an episode was rejected */
  uint64_t token_state;
  int busy_ms;               /* how long a commit waits for the file */
  engram_claims *claims;     /* shared by every connection of this process to the file */
  /* claims loaded through this connection and not yet committed or released, so a host can
   * give back whatever a failed burst held (engram_store_release_pending) */
  uint64_t pending[16];
  unsigned npending;
  /* the commit's scratch, grown to the largest burst and kept */
  void *scratch;
  size_t scratch_cap;
  /* the stored patterns while a commit merges: centroids (dim floats each), ids, strengths,
   * sizes, and the scores of one new centroid against them, in one block (pat_strength's) */
  float *pat_centroids, *pat_scores;
  int64_t *pat_ids;
  double *pat_strength, *pat_size;
  uint32_t pat_n, pat_cap;
  int pat_valid;             /* the cache holds the committed patterns as of data_version
                              * pat_version (PRAGMA data_version: moves when another connection
                              * commits) */
  int64_t pat_version;
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

/* ---- edge lists ----------------------------------------------------------------------------- */

static int64_t edge_dst(const unsigned char *p)
{
  int64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static float edge_weight(const unsigned char *p)
{
  float v;
  memcpy(&v, p + 8, sizeof v);
  return v;
}

static void edge_put(unsigned char *p, int64_t dst, float w)
{
  memcpy(p, &dst, sizeof dst);
  memcpy(p + 8, &w, sizeof w);
}

/* engram_edges_merge(old, new): the union of two edge lists sorted by target, new weights
 * winning, in as many bytes as old when it has the free slots for it, else rounded up to a
 * multiple of EDGE_SLOTS entries; what a commit writes into memories.edges. Registered on each
 * connection. */
static void sql_edges_merge(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  (void)argc;
  static const unsigned char none[1];
  const unsigned char *a = sqlite3_value_blob(argv[0]), *b = sqlite3_value_blob(argv[1]);
  int na = sqlite3_value_bytes(argv[0]), nb = sqlite3_value_bytes(argv[1]);
  if (na % EDGE_BYTES || nb % EDGE_BYTES) {
    sqlite3_result_error(ctx, "engram_edges_merge: a stored edge list is not a multiple of 12 bytes", -1);
    return;
  }
  a = a ? a : none;   /* NULL (no edges): no pointer arithmetic on NULL below */
  b = b ? b : none;
  size_t used = 0;   /* entries of the union, counted before writing */
  const unsigned char *ae = a + na, *be = b + nb, *x = a, *y = b;
  while (x < ae && edge_dst(x) == EDGE_FREE)
    x += EDGE_BYTES;
  while (x < ae || y < be) {
    int64_t dx = x < ae ? edge_dst(x) : EDGE_FREE, dy = y < be ? edge_dst(y) : EDGE_FREE;
    if (x < ae && (y >= be || dx <= dy))
      x += EDGE_BYTES, y += y < be && dx == dy ? EDGE_BYTES : 0;
    else
      y += EDGE_BYTES;
    while (x < ae && edge_dst(x) == EDGE_FREE)
      x += EDGE_BYTES;
    used++;
  }
  size_t slots = (used + EDGE_SLOTS - 1) / EDGE_SLOTS * EDGE_SLOTS;
  if ((size_t)na / EDGE_BYTES > slots)
    slots = (size_t)na / EDGE_BYTES;
  if (slots == 0) {
    sqlite3_result_null(ctx);
    return;
  }
  unsigned char *out = sqlite3_malloc64(slots * EDGE_BYTES), *o = out;
  if (!out) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  x = a, y = b;
  for (;;) {
    while (x < ae && edge_dst(x) == EDGE_FREE)
      x += EDGE_BYTES;
    if (x >= ae && y >= be)
      break;
    int64_t dx = x < ae ? edge_dst(x) : 0, dy = y < be ? edge_dst(y) : 0;
    if (y >= be || (x < ae && dx < dy)) {
      memcpy(o, x, EDGE_BYTES);
      x += EDGE_BYTES;
    } else {
      if (x < ae && dx == dy)
        x += EDGE_BYTES;   /* the new weight replaces the old */
      memcpy(o, y, EDGE_BYTES);
      y += EDGE_BYTES;
    }
    o += EDGE_BYTES;
  }
  while (o < out + slots * EDGE_BYTES) {
    edge_put(o, EDGE_FREE, 0.0f);
    o += EDGE_BYTES;
  }
  sqlite3_result_blob64(ctx, out, slots * EDGE_BYTES, sqlite3_free);
}

/* engram_edges_count(list): the edges in a memories.edges value (free slots not counted). */
static void sql_edges_count(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  (void)argc;
  const unsigned char *p = sqlite3_value_blob(argv[0]);
  int n = sqlite3_value_bytes(argv[0]);
  sqlite3_int64 count = 0;
  for (int i = 0; i + EDGE_BYTES <= n; i += EDGE_BYTES)
    count += edge_dst(p + i) != EDGE_FREE;
  sqlite3_result_int64(ctx, count);
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

/* Leases run on this clock, not on a burst's `now` (which a caller may set anywhere, e.g. to
 * replay history): a burst's claims hold for lease seconds of real time. */
static double lease_clock(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
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

/* Version 1 kept one row per edge (edges(src, dst, weight)), claims in a table, a pattern's
 * members as one blob and an episode's text in its memories row. Move the edges into their
 * sources' rows, the members and the texts into tables of their own, and drop what is gone, in
 * one transaction: a failure leaves the version 1 store as it was. */
static int migrate_v1(engram_store *s)
{
  int rc = exec(s, "BEGIN IMMEDIATE", "upgrading the schema to version 2");
  if (rc)
    return rc;
  sqlite3_stmt *rd = NULL, *wr = NULL;
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  int64_t src = 0;
  int r = SQLITE_OK;
  /* another connection may have upgraded the file between our reading its version and taking
   * the write lock */
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &rd, NULL) != SQLITE_OK || sqlite3_step(rd) != SQLITE_ROW) {
    rc = db_fail(s, "upgrading the schema to version 2");
    goto fail;
  }
  int version = sqlite3_column_int(rd, 0);
  sqlite3_finalize(rd);
  rd = NULL;
  if (version == SCHEMA_VERSION)
    return exec(s, "COMMIT", "upgrading the schema to version 2");
  if ((rc = exec(s, "ALTER TABLE memories ADD COLUMN edges BLOB", "upgrading the schema to version 2")) != 0)
    goto fail;
  if (sqlite3_prepare_v2(s->db, "SELECT src, dst, weight FROM edges ORDER BY src, dst", -1, &rd, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s->db, "UPDATE memories SET edges = ?2 WHERE id = ?1", -1, &wr, NULL) != SQLITE_OK) {
    rc = db_fail(s, "upgrading the schema to version 2");
    goto fail;
  }
  for (;;) {
    r = sqlite3_step(rd);
    int64_t next = r == SQLITE_ROW ? sqlite3_column_int64(rd, 0) : 0;
    if (len && (r != SQLITE_ROW || next != src)) {   /* write the finished source, with free slots */
      while ((len / EDGE_BYTES) % EDGE_SLOTS) {
        edge_put(buf + len, EDGE_FREE, 0.0f);
        len += EDGE_BYTES;
      }
      sqlite3_bind_int64(wr, 1, src);
      sqlite3_bind_blob(wr, 2, buf, (int)len, SQLITE_STATIC);
      int w = sqlite3_step(wr);
      sqlite3_reset(wr);
      if (w != SQLITE_DONE) {
        rc = db_fail(s, "upgrading the schema to version 2");
        goto fail;
      }
      len = 0;
    }
    if (r != SQLITE_ROW)
      break;
    if (len + EDGE_SLOTS * EDGE_BYTES > cap) {   /* room for this edge and a source's free slots */
      unsigned char *nb = realloc(buf, cap = cap ? 2 * cap : 4096);
      if (!nb) {
        rc = engram_fail(ENGRAM_ENOMEM, "store: out of memory upgrading '%s'", s->path);
        goto fail;
      }
      buf = nb;
    }
    src = next;
    edge_put(buf + len, sqlite3_column_int64(rd, 1), (float)sqlite3_column_double(rd, 2));
    len += EDGE_BYTES;
  }
  if (r != SQLITE_DONE) {
    rc = db_fail(s, "upgrading the schema to version 2");
    goto fail;
  }
  sqlite3_finalize(rd);
  sqlite3_finalize(wr);
  rd = wr = NULL;
  free(buf);
  buf = NULL;
  /* patterns: the members blob (int64s) becomes rows, its length the size */
  if ((rc = exec(s, "CREATE TABLE pattern_members(pattern INTEGER NOT NULL, memory INTEGER NOT NULL,"
                    "  PRIMARY KEY(pattern, memory)) WITHOUT ROWID;"
                    "ALTER TABLE patterns ADD COLUMN size INTEGER NOT NULL DEFAULT 0;",
                 "upgrading the schema to version 2")) != 0)
    goto fail;
  if (sqlite3_prepare_v2(s->db, "SELECT id, members FROM patterns", -1, &rd, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO pattern_members VALUES (?1, ?2)", -1, &wr, NULL) != SQLITE_OK) {
    rc = db_fail(s, "upgrading the schema to version 2");
    goto fail;
  }
  while ((r = sqlite3_step(rd)) == SQLITE_ROW) {
    const unsigned char *m = sqlite3_column_blob(rd, 1);
    int bytes = sqlite3_column_bytes(rd, 1);
    for (int k = 0; k + 8 <= bytes; k += 8) {
      int64_t id;
      memcpy(&id, m + k, sizeof id);
      sqlite3_bind_int64(wr, 1, sqlite3_column_int64(rd, 0));
      sqlite3_bind_int64(wr, 2, id);
      int w = sqlite3_step(wr);
      sqlite3_reset(wr);
      if (w != SQLITE_DONE) {
        rc = db_fail(s, "upgrading the schema to version 2");
        goto fail;
      }
    }
  }
  if (r != SQLITE_DONE) {
    rc = db_fail(s, "upgrading the schema to version 2");
    goto fail;
  }
  sqlite3_finalize(rd);
  sqlite3_finalize(wr);
  rd = wr = NULL;
  if ((rc = exec(s, "UPDATE patterns SET size = (SELECT count(*) FROM pattern_members WHERE pattern = patterns.id);"
                    "ALTER TABLE patterns DROP COLUMN members;"
                    "CREATE TABLE contents(id INTEGER PRIMARY KEY, content TEXT NOT NULL);"
                    "INSERT INTO contents SELECT id, content FROM memories;"
                    "ALTER TABLE memories DROP COLUMN content;"
                    "DROP TABLE edges; DROP TABLE IF EXISTS claims; PRAGMA user_version = 2; COMMIT",
                 "upgrading the schema to version 2")) != 0)
    goto fail;
  return 0;
fail:
  sqlite3_finalize(rd);
  sqlite3_finalize(wr);
  free(buf);
  {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", engram_last_error());
    exec(s, "ROLLBACK", "rollback");
    return engram_fail(rc, "%s", msg);
  }
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
  if (version == 1) {
    int rc = migrate_v1(s);
    if (rc)
      return rc;
  } else if (version != SCHEMA_VERSION) {
    return engram_fail(ENGRAM_ESTORE, "store: '%s' has schema version %d (this engram reads versions 1 and %d)",
                       s->path, version, SCHEMA_VERSION);
  }
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
  if (sqlite3_open_v2(cfg->path, &s->db, flags, engram_walvfs_name()) != SQLITE_OK) {
    engram_fail(ENGRAM_ESTORE, "store: cannot open '%s' (%s)", cfg->path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_close(s->db);
    free(s);
    return NULL;
  }
  s->busy_ms = cfg->busy_timeout_ms > 0 ? cfg->busy_timeout_ms : 5000;
  sqlite3_busy_timeout(s->db, s->busy_ms);
  sqlite3_extended_result_codes(s->db, 1);
  if (sqlite3_create_function_v2(s->db, "engram_edges_merge", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                 NULL, sql_edges_merge, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_create_function_v2(s->db, "engram_edges_count", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                 NULL, sql_edges_count, NULL, NULL, NULL) != SQLITE_OK) {
    db_fail(s, "registering functions");
    goto fail;
  }

  if (check_schema(s, cfg->dim, cfg->create) != 0 ||
      exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;"
              "PRAGMA cache_size = -32768; PRAGMA mmap_size = 2147418112; PRAGMA temp_store = MEMORY;"
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
  if (!(s->claims = engram_claims_attach(cfg->path))) {
    engram_fail(ENGRAM_ENOMEM, "store: out of memory");
    goto fail;
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
  engram_claims_detach(s->claims);
  free(s->scratch);
  free(s->pat_strength);   /* the merge cache's block */
  free(s);
}

uint32_t engram_store_dim(const engram_store *s)
{
  return s->dim;
}

/* ---- import ------------------------------------------------------------------------------- */
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

/* EDGE_SLOTS free slots: a new memory's edge list. */
static unsigned char free_slots[EDGE_SLOTS * EDGE_BYTES];

static void init_free_slots(void)
{
  for (int i = 0; i < EDGE_SLOTS; i++)
    edge_put(free_slots + i * EDGE_BYTES, EDGE_FREE, 0.0f);
}

int engram_store_import_add(engram_store *s, const engram_episode *e)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_free_slots);
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
  else if (e->id == EDGE_FREE)
    rc = engram_fail(ENGRAM_EINVAL, "store: episode id %lld is reserved (expected any other 64-bit integer)",
                     (long long)e->id);
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
  sqlite3_bind_blob(st, 8, free_slots, sizeof free_slots, SQLITE_STATIC);   /* room for its first edges */
  int r = sqlite3_step(st);
  if (r == SQLITE_DONE) {
    st = q(s, Q_INSERT_VECTOR);
    sqlite3_bind_int64(st, 1, e->id);
    sqlite3_bind_blob(st, 2, e->embedding, (int)(s->dim * sizeof(float)), SQLITE_STATIC);
    r = sqlite3_step(st);
  }
  if (r == SQLITE_DONE) {
    st = q(s, Q_INSERT_CONTENT);
    sqlite3_bind_int64(st, 1, e->id);
    sqlite3_bind_text(st, 2, e->content ? e->content : "", -1, SQLITE_STATIC);
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
  out->edges = (int64_t)sqlite3_column_double(st, 2);
  out->patterns = sqlite3_column_int64(st, 3);
  out->claims = engram_claims_live(s->claims, lease_clock());
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

/* A loading burst's state: the batch it fills, the id map, and the edge lists of the rows read
 * so far, copied out of SQLite (decoded once every row is known). */
struct loader {
  engram_store *s;
  engram_arena *a;
  engram_batch *b;
  struct id_map map;
  unsigned char *lists;      /* the rows' edge lists, back to back */
  size_t lists_len, lists_cap;
  uint32_t *list_at, *list_len;   /* per row: offset and bytes in lists */
};

/* Copy one Q_ROWS_N row into batch row r and keep its edge list. */
static int copy_row(struct loader *l, sqlite3_stmt *st, uint32_t r)
{
  engram_store *s = l->s;
  engram_batch *b = l->b;
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
  const void *edges = sqlite3_column_blob(st, 7);
  size_t n = (size_t)sqlite3_column_bytes(st, 7);
  if (n % EDGE_BYTES)
    return engram_fail(ENGRAM_ESTORE, "store: memory %lld in '%s' has a malformed edge list (%zu bytes, expected a "
                       "multiple of %d)", (long long)b->ids[r], s->path, n, EDGE_BYTES);
  if (l->lists_len + n > l->lists_cap) {
    /* grow by doubling; the old copy stays in the arena until the burst ends */
    size_t cap = 2 * (l->lists_len + n);
    unsigned char *nl = engram_arena_alloc_aligned(l->a, cap, 64);
    if (!nl)
      return ENGRAM_EFULL;
    if (l->lists_len)
      memcpy(nl, l->lists, l->lists_len);
    l->lists = nl;
    l->lists_cap = cap;
  }
  if (n)
    memcpy(l->lists + l->lists_len, edges, n);
  l->list_at[r] = (uint32_t)l->lists_len;
  l->list_len[r] = (uint32_t)n;
  l->lists_len += n;
  return 0;
}

/* Read the rows of ids[n]: the claimed ones land at their map rows, context rows at *total as
 * they arrive (a candidate without a row, e.g. an edge to a memory deleted by hand, never
 * arrives). CHUNK ids a statement; unbound slots of the last chunk are NULL and match nothing. */
static int read_rows(struct loader *l, const int64_t *ids, uint32_t n, int context, uint32_t *total)
{
  engram_store *s = l->s;
  int r = SQLITE_DONE, rc;
  if (!context)
    for (uint32_t i = 0; i < n; i++)
      l->list_len[i] = UINT32_MAX;   /* not read yet */
  for (uint32_t i = 0; i < n; i += CHUNK) {
    sqlite3_stmt *st = q(s, Q_ROWS_N);
    for (uint32_t k = 0; k < CHUNK && i + k < n; k++)
      sqlite3_bind_int64(st, (int)k + 1, ids[i + k]);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
      uint32_t slot = map_slot(&l->map, sqlite3_column_int64(st, 0));
      uint32_t row = context ? (*total)++ : (uint32_t)l->map.vals[slot];
      if ((rc = copy_row(l, st, row)) != 0)
        return rc;
      l->map.vals[slot] = (int32_t)row;
    }
    if (r != SQLITE_DONE)
      return db_fail(s, context ? "loading context rows" : "loading claimed episodes");
  }
  sqlite3_reset(s->q[Q_ROWS_N]);
  /* a claimed episode always has its memories row (same snapshot); only a store edited by hand
   * can lack its embedding, and the batch must not keep a row nothing was read into */
  for (uint32_t i = 0; !context && i < n; i++)
    if (l->list_len[i] == UINT32_MAX)
      return engram_fail(ENGRAM_ESTORE, "store: episode %lld in '%s' has no embedding (no row in the embeddings "
                         "table)", (long long)ids[i], s->path);
  return 0;
}

static int alloc_rows(struct loader *l, uint32_t rows, uint32_t dim)
{
  engram_arena *a = l->a;
  engram_batch *b = l->b;
  b->ids = engram_arena_alloc_array(a, rows, sizeof(int64_t), 64);
  b->embeddings = engram_arena_alloc_array(a, (size_t)rows * dim, sizeof(float), 64);
  b->created_at = engram_arena_alloc_array(a, rows, sizeof(double), 64);
  b->last_access = engram_arena_alloc_array(a, rows, sizeof(double), 64);
  b->access_count = engram_arena_alloc_array(a, rows, sizeof(int32_t), 64);
  b->strength = engram_arena_alloc_array(a, rows, sizeof(float), 64);
  b->activation = engram_arena_alloc_array(a, rows, sizeof(float), 64);
  l->list_at = engram_arena_alloc_array(a, rows, sizeof(uint32_t), 64);
  l->list_len = engram_arena_alloc_array(a, rows, sizeof(uint32_t), 64);
  if (!b->ids || !b->embeddings || !b->created_at || !b->last_access || !b->access_count || !b->strength ||
      !b->activation || !l->list_at || !l->list_len)
    return ENGRAM_EFULL;
  return 0;
}

/* Claim up to `batch` unconsolidated episodes no live claim holds, newest first, into the
 * arena (allocated only once there is one: an empty store needs no arena room). Runs inside
 * the load's read transaction, with the claims lock held from before its first read: every
 * episode is then either still claimed or already consolidated in the snapshot. */
static int claim(struct loader *l, uint32_t batch, int64_t **ids, uint32_t *claimed)
{
  double now = lease_clock();
  engram_store *s = l->s;
  uint64_t token = l->b->claim;
  sqlite3_stmt *st = q(s, Q_UNCONSOLIDATED);
  int r, rc = 0;
  uint32_t n = 0;
  *ids = NULL;
  engram_claims_lock(s->claims);
  while (n < batch && (r = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    if (!*ids && !(*ids = engram_arena_alloc_array(l->a, batch, sizeof(int64_t), 8))) {
      rc = ENGRAM_EFULL;
      break;
    }
    int t = engram_claims_take_locked(s->claims, id, token, now, now + s->lease);
    if (t < 0) {
      rc = t;
      break;
    }
    if (t)
      (*ids)[n++] = id;
  }
  engram_claims_unlock(s->claims);
  if (rc == 0 && n < batch && r != SQLITE_DONE)
    rc = db_fail(s, "claiming episodes");
  sqlite3_reset(st);
  *claimed = n;
  return rc;
}

static void want(struct loader *l, int64_t id, int64_t *cand, uint32_t *nc)
{
  uint32_t slot = map_slot(&l->map, id);
  if (l->map.vals[slot] >= 0)
    return;
  l->map.keys[slot] = id;
  l->map.vals[slot] = INT32_MAX;
  cand[(*nc)++] = id;
}

/* Context candidates: the batch's out-neighbours (in row order, then target order), then the
 * consolidated memories nearest in creation time to the batch — those created within its
 * span, then the nearest on either side of it — up to `context`, none already
 * loaded. Nearest in time rather than newest: a store consolidated newest first (a backfill)
 * would otherwise give every burst the same newest memories, whose edge lists would then grow
 * with every burst. Marks each candidate in the map (INT32_MAX: wanted, not read yet). */
static int choose_context(struct loader *l, uint32_t n, uint32_t context, int64_t *cand, uint32_t *ncand)
{
  engram_store *s = l->s;
  uint32_t nc = 0;
  for (uint32_t r = 0; r < n && nc < context; r++) {
    const unsigned char *p = l->lists + l->list_at[r];
    for (uint32_t e = 0; e < l->list_len[r] / EDGE_BYTES && nc < context; e++)
      if (edge_dst(p + (size_t)e * EDGE_BYTES) != EDGE_FREE)
        want(l, edge_dst(p + (size_t)e * EDGE_BYTES), cand, &nc);
  }
  *ncand = nc;
  if (nc == context)
    return 0;
  double lo = INFINITY, hi = -INFINITY;
  for (uint32_t r = 0; r < n; r++) {
    lo = fmin(lo, l->b->created_at[r]);
    hi = fmax(hi, l->b->created_at[r]);
  }
  sqlite3_stmt *after = q(s, Q_CONTEXT_AFTER), *before = q(s, Q_CONTEXT_BEFORE);
  sqlite3_bind_double(after, 1, lo);
  sqlite3_bind_double(before, 1, lo);
  int ra = sqlite3_step(after), rb = sqlite3_step(before);
  while (nc < context && (ra == SQLITE_ROW || rb == SQLITE_ROW)) {
    /* distance to the batch's span: 0 inside it */
    double da = ra == SQLITE_ROW ? fmax(0, sqlite3_column_double(after, 1) - hi) : INFINITY;
    double db = rb == SQLITE_ROW ? lo - sqlite3_column_double(before, 1) : INFINITY;
    sqlite3_stmt *st = da <= db ? after : before;
    want(l, sqlite3_column_int64(st, 0), cand, &nc);
    if (st == after)
      ra = sqlite3_step(after);
    else
      rb = sqlite3_step(before);
  }
  sqlite3_reset(after);
  sqlite3_reset(before);
  if (nc < context && ((ra != SQLITE_DONE && ra != SQLITE_ROW) || (rb != SQLITE_DONE && rb != SQLITE_ROW)))
    return db_fail(s, "choosing context rows");
  *ncand = nc;
  return 0;
}

/* The edges of every loaded row whose target is loaded too, as row indices, into the batch. */
static int decode_edges(struct loader *l, uint32_t total)
{
  engram_batch *b = l->b;
  uint32_t most = (uint32_t)(l->lists_len / EDGE_BYTES);
  b->edge_src = engram_arena_alloc_array(l->a, most, sizeof(int32_t), 64);
  b->edge_dst = engram_arena_alloc_array(l->a, most, sizeof(int32_t), 64);
  b->edge_weight = engram_arena_alloc_array(l->a, most, sizeof(float), 64);
  if (most && (!b->edge_src || !b->edge_dst || !b->edge_weight))
    return ENGRAM_EFULL;
  uint32_t ne = 0;
  for (uint32_t r = 0; r < total; r++) {
    const unsigned char *p = l->lists + l->list_at[r];
    for (uint32_t e = 0; e < l->list_len[r] / EDGE_BYTES; e++, p += EDGE_BYTES) {
      if (edge_dst(p) == EDGE_FREE)
        continue;
      int32_t j = map_get(&l->map, edge_dst(p));
      if (j < 0 || (uint32_t)j >= total)
        continue;
      b->edge_src[ne] = (int32_t)r;
      b->edge_dst[ne] = j;
      b->edge_weight[ne] = edge_weight(p);
      ne++;
    }
  }
  b->n_edges = ne;
  return 0;
}

int engram_store_load(engram_store *s, engram_arena *a, uint32_t batch, uint32_t context, double now,
                      engram_batch *out)
{
  if (!a && !(a = engram_arena_thread()))
    return ENGRAM_ENOMEM;
  if (batch == 0 || batch > 1000000 || context > 1000000)
    return engram_fail(ENGRAM_EINVAL, "store: batch %u / context %u out of range (expected 1..1000000 / 0..1000000)",
                       batch, context);
  (void)now;   /* see engram.h: leases run on lease_clock() */
  memset(out, 0, sizeof *out);
  out->dim = s->dim;
  out->claim = new_token(s);
  engram_mark m = engram_arena_mark(a);
  struct loader l = { .s = s, .a = a, .b = out };
  int64_t *claimed_ids;
  uint32_t n = 0, total = 0;

  /* Everything below reads one snapshot, which the claim's first step opens. */
  int rc = exec(s, "BEGIN", "loading a batch");
  if (rc)
    return rc;
  if ((rc = claim(&l, batch, &claimed_ids, &n)) != 0 || n == 0)
    goto done;
  pending_add(s, out->claim);
  uint32_t rows = n + context;
  if ((rc = alloc_rows(&l, rows, s->dim)) != 0 || (rc = map_init(&l.map, a, rows)) != 0)
    goto done;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t slot = map_slot(&l.map, claimed_ids[i]);
    l.map.keys[slot] = claimed_ids[i];
    l.map.vals[slot] = (int32_t)i;
  }
  if ((rc = read_rows(&l, claimed_ids, n, 0, NULL)) != 0)
    goto done;
  total = n;
  if (context > 0) {
    int64_t *cand = engram_arena_alloc_array(a, context, sizeof(int64_t), 8);
    uint32_t nc = 0;
    if (!cand)
      rc = ENGRAM_EFULL;
    if (rc || (rc = choose_context(&l, n, context, cand, &nc)) != 0 ||
        (rc = read_rows(&l, cand, nc, 1, &total)) != 0)
      goto done;
  }
  out->n = n;
  out->total = total;
  rc = decode_edges(&l, total);

done:
  if (rc == ENGRAM_EFULL) {
    char why[256];   /* the arena's message, copied: engram_fail writes the same buffer */
    snprintf(why, sizeof why, "%s", engram_last_error());
    rc = engram_fail(ENGRAM_EFULL, "store: the arena cannot hold the batch of %u + %u rows of %u floats (%s)", batch,
                     context, s->dim, why);
  }
  for (int i = 0; rc && i < NQUERIES; i++)
    sqlite3_reset(s->q[i]);
  exec(s, rc ? "ROLLBACK" : "COMMIT", "loading a batch");   /* a read transaction: nothing to lose */
  if (rc) {
    char msg[512];   /* the failure's message, not the cleanup's */
    snprintf(msg, sizeof msg, "%s", engram_last_error());
    engram_store_release(s, out->claim);
    engram_arena_rewind(a, m);
    memset(out, 0, sizeof *out);
    return engram_fail(rc, "%s", msg);
  }
  if (n == 0)
    engram_arena_rewind(a, m);   /* nothing to consolidate: n = 0, nothing allocated */
  return 0;
}

/* ---- commit / release ----------------------------------------------------------------------- */

static int check_changes(const engram_store *s, const engram_store_changes *c)
{
  if (c->struct_size != sizeof *c || c->struct_version != ENGRAM_STORE_CHANGES_VERSION)
    return engram_fail(ENGRAM_EVERSION, "store: changes struct mismatch");
  if ((uint64_t)c->n_consolidated + c->n_updates + c->n_edges > (1u << 26))
    return engram_fail(ENGRAM_EINVAL, "store: %u consolidated, %u updates and %u edges in one commit (at most %u in "
                       "all)", c->n_consolidated, c->n_updates, c->n_edges, 1u << 26);
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
    if (c->edge_dst[i] == EDGE_FREE)
      return engram_fail(ENGRAM_EINVAL, "store: edge %lld -> %lld targets the reserved id", (long long)c->edge_src[i],
                         (long long)c->edge_dst[i]);
    else if (!isfinite(c->edge_weight[i]))
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

/* Room for n stored patterns in the merge cache: one block, its arrays moved when it grows. */
static int patterns_reserve(engram_store *s, uint32_t n)
{
  if (n <= s->pat_cap)
    return 0;
  uint32_t cap = s->pat_cap ? s->pat_cap : 64;
  while (cap < n)
    cap *= 2;
  size_t each = (size_t)s->dim * sizeof(float) + sizeof(float) + sizeof(int64_t) + 2 * sizeof(double);
  char *block = malloc((size_t)cap * each);
  if (!block)
    return engram_fail(ENGRAM_ENOMEM, "store: out of memory for %u patterns", n);
  /* doubles and int64s first: every array stays aligned */
  double *st = (double *)block, *sz = st + cap;
  int64_t *id = (int64_t *)(sz + cap);
  float *c = (float *)(id + cap), *sc = c + (size_t)cap * s->dim;
  if (s->pat_n) {
    memcpy(st, s->pat_strength, s->pat_n * sizeof *st);
    memcpy(sz, s->pat_size, s->pat_n * sizeof *sz);
    memcpy(id, s->pat_ids, s->pat_n * sizeof *id);
    memcpy(c, s->pat_centroids, (size_t)s->pat_n * s->dim * sizeof *c);
  }
  free(s->pat_strength);   /* the old block starts with its strengths */
  s->pat_strength = st, s->pat_size = sz, s->pat_ids = id, s->pat_centroids = c, s->pat_scores = sc;
  s->pat_cap = cap;
  return 0;
}

/* Read every stored pattern into the merge cache (inside the commit's transaction). */
static int patterns_read(engram_store *s)
{
  sqlite3_stmt *st = q(s, Q_PATTERNS_ALL);
  int r, rc = 0;
  s->pat_n = 0;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 1) != (int)(s->dim * sizeof(float)))
      continue;   /* not a centroid of this store's dimension: never merged into */
    if ((rc = patterns_reserve(s, s->pat_n + 1)) != 0)
      break;
    uint32_t k = s->pat_n++;
    s->pat_ids[k] = sqlite3_column_int64(st, 0);
    memcpy(s->pat_centroids + (size_t)k * s->dim, sqlite3_column_blob(st, 1), s->dim * sizeof(float));
    s->pat_strength[k] = sqlite3_column_double(st, 2);
    s->pat_size[k] = (double)sqlite3_column_int64(st, 3);
  }
  sqlite3_reset(st);
  if (rc == 0 && r != SQLITE_DONE)
    rc = db_fail(s, "reading patterns");
  return rc;
}

/* Add members to a pattern; *added gets how many were not members yet. */
static int add_members(engram_store *s, int64_t pattern, const int64_t *m, uint32_t n, uint32_t *added)
{
  *added = 0;
  for (uint32_t i = 0; i < n; i += CHUNK) {
    sqlite3_stmt *st = q(s, Q_MEMBERS_N);
    sqlite3_bind_int64(st, 1, pattern);
    for (uint32_t k = 0; k < CHUNK && i + k < n; k++)
      sqlite3_bind_int64(st, (int)k + 2, m[i + k]);
    if (sqlite3_step(st) != SQLITE_DONE) {
      sqlite3_reset(st);
      return db_fail(s, "writing pattern members");
    }
    *added += (uint32_t)sqlite3_changes(s->db);
    sqlite3_reset(st);
  }
  return 0;
}

/* Write the burst's patterns. With pattern_merge > 0 each is merged into the stored pattern
 * whose centroid is most similar, if that cosine reaches pattern_merge: members united,
 * centroid and strength averaged with the member counts as weights; otherwise (and always
 * with pattern_merge == 0) it is inserted. The stored centroids are kept by the connection
 * between commits (read again only after another connection committed) and compared with the
 * similarity kernel; patterns written earlier in the same commit are seen. */
static int write_patterns(engram_store *s, const engram_store_changes *c, double now)
{
  int merging = c->pattern_merge > 0, rc;
  if (c->n_patterns == 0)
    return 0;
  if (!merging) {
    s->pat_valid = 0;   /* inserts below are not cached */
  } else {
    /* re-read only when another connection has committed since the cache was filled (the
     * version does not move for this connection's own commits, which keep the cache current) */
    sqlite3_stmt *st = q(s, Q_DATA_VERSION);
    if (sqlite3_step(st) != SQLITE_ROW) {
      sqlite3_reset(st);
      return db_fail(s, "reading the data version");
    }
    int64_t version = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (!s->pat_valid || version != s->pat_version) {
      if ((rc = patterns_read(s)) != 0)
        return rc;
      s->pat_version = version;
    }
    s->pat_valid = 0;   /* until this commit lands: a rollback would leave it ahead of the file */
  }
  for (uint32_t p = 0; p < c->n_patterns; p++) {
    const float *centroid = c->pattern_centroids + (size_t)p * s->dim;
    const int64_t *members = c->pattern_members + c->pattern_offsets[p];
    uint32_t nmembers = c->pattern_offsets[p + 1] - c->pattern_offsets[p], added;
    int32_t best = -1;
    if (merging && s->pat_n) {
      if ((rc = engram_sim_cosine(NULL, centroid, s->pat_centroids, s->pat_n, s->dim, s->pat_scores)) != 0)
        return rc;
      float top = c->pattern_merge;
      for (uint32_t k = 0; k < s->pat_n; k++)
        if (s->pat_scores[k] >= top) {
          top = s->pat_scores[k];
          best = (int32_t)k;
        }
    }
    int64_t id;
    double size, strength;
    float *cen;
    if (best >= 0) {
      id = s->pat_ids[best];
      if ((rc = add_members(s, id, members, nmembers, &added)) != 0)
        return rc;
      double wo = s->pat_size[best], wn = nmembers, w = wo + wn > 0 ? wo + wn : 1;
      cen = s->pat_centroids + (size_t)best * s->dim;
      for (uint32_t k = 0; k < s->dim; k++)
        cen[k] = (float)((cen[k] * wo + centroid[k] * wn) / w);
      strength = (s->pat_strength[best] * wo + c->pattern_strength[p] * wn) / w;
      size = s->pat_size[best] + added;
      s->pat_strength[best] = strength;
      s->pat_size[best] = size;
    } else {
      sqlite3_stmt *st = q(s, Q_PATTERN);
      sqlite3_bind_blob(st, 1, centroid, (int)(s->dim * sizeof(float)), SQLITE_STATIC);
      sqlite3_bind_double(st, 2, c->pattern_strength[p]);
      sqlite3_bind_double(st, 3, now);
      sqlite3_bind_int64(st, 4, nmembers);   /* corrected below if some are listed twice */
      if ((rc = step_done(s, st, "writing patterns")) != 0)
        return rc;
      id = sqlite3_last_insert_rowid(s->db);
      if ((rc = add_members(s, id, members, nmembers, &added)) != 0)
        return rc;
      size = added;
      strength = c->pattern_strength[p];
      cen = (float *)centroid;
      if (merging) {   /* later patterns of this commit may merge into it */
        if ((rc = patterns_reserve(s, s->pat_n + 1)) != 0)
          return rc;
        uint32_t k = s->pat_n++;
        s->pat_ids[k] = id;
        memcpy(s->pat_centroids + (size_t)k * s->dim, centroid, s->dim * sizeof(float));
        s->pat_strength[k] = strength;
        s->pat_size[k] = size;
        cen = s->pat_centroids + (size_t)k * s->dim;
      }
    }
    if (best < 0 && added == nmembers)
      continue;   /* inserted as it stands */
    sqlite3_stmt *st = q(s, Q_PATTERN_UPDATE);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, cen, (int)(s->dim * sizeof(float)), SQLITE_STATIC);
    sqlite3_bind_double(st, 3, strength);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)size);
    if ((rc = step_done(s, st, "writing patterns")) != 0)
      return rc;
  }
  return 0;
}

/* One memory a commit writes: what changes in its row. */
struct row_write {
  int64_t id;
  int32_t update;            /* index into the update arrays, or -1 */
  uint32_t consolidate;      /* 1: one of this burst's episodes */
  uint32_t edges_at, nedges; /* its new out-edges: bytes at edges_at in the packed lists */
};

/* The commit's plan: one write per distinct memory, in s->scratch. */
struct plan {
  struct row_write *w;
  uint32_t nw;
  unsigned char *lists;      /* new out-edges, per write sorted by target, one per target */
};

static int scratch(engram_store *s, size_t bytes)
{
  if (bytes <= s->scratch_cap)
    return 0;
  void *p = realloc(s->scratch, bytes);
  if (!p)
    return engram_fail(ENGRAM_ENOMEM, "store: out of memory for a commit of %zu bytes of changes", bytes);
  s->scratch = p;
  s->scratch_cap = bytes;
  return 0;
}

/* Group the changes by memory: the consolidated ids, the updates and the edges by source.
 * An update listed twice keeps the last; an edge listed twice keeps the last weight. */
static int plan_writes(engram_store *s, const engram_store_changes *c, struct plan *p)
{
  size_t most = (size_t)c->n_consolidated + c->n_updates + c->n_edges;
  uint32_t cap = 16;
  while (cap < 2 * most)
    cap <<= 1;
  size_t at_keys = 0, at_vals = at_keys + cap * sizeof(int64_t), at_w = at_vals + cap * sizeof(int32_t);
  at_w = (at_w + 7) & ~(size_t)7;
  size_t at_count = at_w + most * sizeof(struct row_write), at_order = at_count + (most + 1) * sizeof(uint32_t);
  size_t at_lists = at_order + (size_t)c->n_edges * sizeof(uint32_t);
  int rc = scratch(s, at_lists + (size_t)c->n_edges * EDGE_BYTES + 64);
  if (rc)
    return rc;
  char *base = s->scratch;
  struct id_map map = { (int64_t *)(base + at_keys), (int32_t *)(base + at_vals), cap - 1 };
  struct row_write *w = (struct row_write *)(base + at_w);
  uint32_t *count = (uint32_t *)(base + at_count), *order = (uint32_t *)(base + at_order);
  p->lists = (unsigned char *)(base + at_lists);
  for (uint32_t i = 0; i < cap; i++)
    map.vals[i] = -1;
  uint32_t nw = 0;
#define WRITE_OF(ident, out)                                                                   \
  do {                                                                                         \
    uint32_t slot_ = map_slot(&map, (ident));                                                  \
    if (map.vals[slot_] < 0) {                                                                 \
      map.keys[slot_] = (ident);                                                               \
      map.vals[slot_] = (int32_t)nw;                                                           \
      w[nw] = (struct row_write){ .id = (ident), .update = -1 };                               \
      nw++;                                                                                    \
    }                                                                                          \
    (out) = (uint32_t)map.vals[slot_];                                                         \
  } while (0)
  uint32_t k;
  for (uint32_t i = 0; i < c->n_consolidated; i++) {
    WRITE_OF(c->consolidated_ids[i], k);
    if (w[k].consolidate)
      return engram_fail(ENGRAM_ESTATE, "store: episode %lld is listed twice among the consolidated; nothing was "
                         "written", (long long)c->consolidated_ids[i]);
    w[k].consolidate = 1;
  }
  for (uint32_t i = 0; i < c->n_updates; i++) {
    WRITE_OF(c->update_ids[i], k);
    w[k].update = (int32_t)i;
  }
  /* edges: a counting sort by source write, then each source's run by (target, position) */
  memset(count, 0, (most + 1) * sizeof *count);
  uint32_t *src_of = order;   /* reused below: source write of edge i, then the sorted order */
  for (uint32_t i = 0; i < c->n_edges; i++) {
    WRITE_OF(c->edge_src[i], k);
    src_of[i] = k;
    count[k + 1]++;
  }
#undef WRITE_OF
  for (uint32_t i = 0; i < nw; i++)
    count[i + 1] += count[i];
  /* place edge positions by source; src_of is read before its slot is overwritten only when
   * positions are processed in order, so place into the packed area first as (position) */
  uint32_t *pos = (uint32_t *)p->lists;   /* n_edges uint32s fit in n_edges * 12 bytes */
  for (uint32_t i = 0; i < c->n_edges; i++)
    pos[count[src_of[i]]++] = i;
  for (uint32_t i = nw; i > 0; i--)         /* count[i] was advanced to the end of run i: shift back */
    count[i] = count[i - 1];
  count[0] = 0;
  memcpy(order, pos, (size_t)c->n_edges * sizeof *order);
  /* per source: insertion sort by (target, position) (runs are a memory's new edges: short),
   * keep the last of equal targets, pack */
  size_t out = 0;
  for (uint32_t i = 0; i < nw; i++) {
    uint32_t lo = count[i], hi = count[i + 1];
    for (uint32_t x = lo + 1; x < hi; x++) {
      uint32_t e = order[x], y = x;
      while (y > lo && (c->edge_dst[order[y - 1]] > c->edge_dst[e] ||
                        (c->edge_dst[order[y - 1]] == c->edge_dst[e] && order[y - 1] > e))) {
        order[y] = order[y - 1];
        y--;
      }
      order[y] = e;
    }
    w[i].edges_at = (uint32_t)out;
    for (uint32_t x = lo; x < hi; x++) {
      uint32_t e = order[x];
      if (x + 1 < hi && c->edge_dst[order[x + 1]] == c->edge_dst[e])
        continue;   /* a later listing of the same edge wins */
      edge_put(p->lists + out, c->edge_dst[e], c->edge_weight[e]);
      out += EDGE_BYTES;
    }
    w[i].nedges = (uint32_t)((out - w[i].edges_at) / EDGE_BYTES);
  }
  p->w = w;
  p->nw = nw;
  return 0;
}

/* Why a write changed no row (asked outside the transaction, of the state it started from):
 * the memory is gone or the episode is consolidated already (by a burst of another process:
 * this one's claims exclude it in-process). */
static int explain_write(engram_store *s, const struct row_write *w, uint32_t m)
{
  for (uint32_t i = 0; i < m; i++) {
    sqlite3_stmt *st = q(s, Q_ROW_STATE);
    sqlite3_bind_int64(st, 1, w[i].id);
    int r = sqlite3_step(st);
    int consolidated = r == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    if (r == SQLITE_DONE)
      return engram_fail(ENGRAM_EINVAL, "store: memory %lld is not in '%s'; nothing was written", (long long)w[i].id,
                         s->path);
    if (r != SQLITE_ROW)
      return db_fail(s, "checking a memory");
    if (w[i].consolidate && consolidated)
      return engram_fail(ENGRAM_ESTATE, "store: episode %lld was consolidated by another burst; nothing was written",
                         (long long)w[i].id);
  }
  return engram_fail(ENGRAM_ESTORE, "store: a write changed fewer memories than it names in '%s'", s->path);
}

/* Run the plan's writes. 1 (and *short_at, the write) when a write changed no row:
 * explain_write says why once the transaction is rolled back. */
static int run_writes(engram_store *s, const engram_store_changes *c, const struct plan *p, double now,
                      uint32_t *short_at)
{
  int rc;
  for (uint32_t i = 0; i < p->nw; i++) {
    const struct row_write *w = &p->w[i];
    sqlite3_stmt *st = q(s, w->consolidate ? Q_WRITE_CONSOLIDATE : Q_WRITE);
    sqlite3_bind_int64(st, 1, w->id);
    sqlite3_bind_int(st, 2, (int)w->consolidate);
    if (w->update >= 0) {
      sqlite3_bind_double(st, 3, c->update_strength[w->update]);
      sqlite3_bind_double(st, 4, c->update_activation[w->update]);
      sqlite3_bind_double(st, 5, now);
      if (c->update_last_access)
        sqlite3_bind_double(st, 6, c->update_last_access[w->update]);
    }
    if (w->nedges)
      sqlite3_bind_blob(st, 7, p->lists + w->edges_at, (int)(w->nedges * EDGE_BYTES), SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE) {
      char what[64];
      snprintf(what, sizeof what, "writing memory %lld", (long long)w->id);
      rc = db_fail(s, what);
      sqlite3_reset(st);
      return rc;
    }
    if (sqlite3_changes(s->db) != 1) {
      *short_at = i;
      return 1;
    }
  }
  return 0;
}

int engram_store_commit(engram_store *s, const engram_store_changes *c)
{
  int rc = check_changes(s, c);
  if (rc)
    return rc;
  uint64_t owner = 0;
  uint32_t k = engram_claims_check(s->claims, c->consolidated_ids, c->n_consolidated, c->claim, &owner);
  if (k < c->n_consolidated)
    return engram_fail(ENGRAM_ESTATE, "store: episode %lld is not claimed by this burst (%s); nothing was written",
                       (long long)c->consolidated_ids[k],
                       owner ? "another burst holds it" : "its claim expired or was released");
  struct plan p = { 0 };
  if ((rc = plan_writes(s, c, &p)) != 0)
    return rc;
  double now = c->now > 0 ? c->now : now_seconds();
  if (engram_claims_writer_enter(s->claims, s->busy_ms) != 0)
    return engram_fail(ENGRAM_ESTORE, "store: committing a burst failed in '%s' (another commit of this process "
                       "held the file for over %d ms); nothing was written", s->path, s->busy_ms);
  if ((rc = exec(s, "BEGIN IMMEDIATE", "committing a burst")) != 0) {
    engram_claims_writer_leave(s->claims);
    return rc;
  }
  uint32_t short_at = 0;
  if ((rc = run_writes(s, c, &p, now, &short_at)) != 0) {
    if (rc < 0)
      goto rollback;
    exec(s, "ROLLBACK", "rollback");
    engram_claims_writer_leave(s->claims);
    return explain_write(s, &p.w[short_at], 1);
  }
  if ((rc = write_patterns(s, c, now)) != 0)
    goto rollback;
  if ((rc = exec(s, "COMMIT", "committing a burst")) != 0)
    goto rollback;
  if (c->n_patterns && c->pattern_merge > 0)
    s->pat_valid = 1;   /* the cache was brought up to date with this commit's patterns */
  engram_claims_writer_leave(s->claims);
  /* after the commit: a load that no longer sees the claims sees the episodes consolidated */
  engram_store_release(s, c->claim);
  return 0;

rollback:
  {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", engram_last_error());
    exec(s, "ROLLBACK", "rollback");
    engram_claims_writer_leave(s->claims);
    return engram_fail(rc, "%s", msg);
  }
}

int engram_store_release(engram_store *s, uint64_t claim)
{
  engram_claims_release(s->claims, claim);
  pending_remove(s, claim);
  return 0;
}

int engram_store_release_pending(engram_store *s)
{
  while (s->npending)
    engram_store_release(s, s->pending[s->npending - 1]);
  return 0;
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

/* The mean weight over every edge list in the store. */
static double edge_weight_mean(engram_store *s, int *rc)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT edges FROM memories WHERE edges IS NOT NULL", -1, &st, NULL) != SQLITE_OK) {
    *rc = db_fail(s, "summarizing");
    return 0;
  }
  double sum = 0;
  int64_t n = 0;
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *p = sqlite3_column_blob(st, 0);
    int bytes = sqlite3_column_bytes(st, 0);
    for (int i = 0; i + EDGE_BYTES <= bytes; i += EDGE_BYTES)
      if (edge_dst(p + i) != EDGE_FREE) {
        sum += edge_weight(p + i);
        n++;
      }
  }
  if (r != SQLITE_DONE)
    *rc = db_fail(s, "summarizing");
  sqlite3_finalize(st);
  return n ? sum / (double)n : 0;
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
  out->edge_weight_mean = edge_weight_mean(s, &rc);
  out->pattern_members_mean = scalar(s, "SELECT avg(size) FROM patterns WHERE ?1 = ?1", 0, &rc);
  return rc;
}
