/*
 * test_walvfs.c — the VFS that gathers WAL frames: what it writes is exactly what SQLite
 * wrote, only later and in fewer calls. Each database written through it is read back
 * through SQLite's default VFS.
 */
#include "test.h"
#include "walvfs.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static const char *path(const char *name)
{
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static sqlite3 *open_db(const char *name, int gathered)
{
  sqlite3 *db = NULL;
  const char *p = path(name);
  if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, gathered ? engram_walvfs_name() : NULL) !=
      SQLITE_OK)
    return NULL;
  sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;", NULL,
               NULL, NULL);
  return db;
}

static int exec(sqlite3 *db, const char *sql)
{
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Insert rows [first, first + n) of 3 KiB each, every byte derived from the row id. */
static int insert(sqlite3 *db, int first, int n)
{
  static unsigned char v[3072];
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT INTO t(id, v) VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
    return SQLITE_ERROR;
  int rc = SQLITE_DONE;
  for (int id = first; id < first + n && rc == SQLITE_DONE; id++) {
    for (size_t k = 0; k < sizeof v; k++)
      v[k] = (unsigned char)(id * 131 + k * 7);
    sqlite3_bind_int(st, 1, id);
    sqlite3_bind_blob(st, 2, v, sizeof v, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The number of rows, or -1 if any row's bytes are not the ones insert() wrote. */
static int verify(sqlite3 *db)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT id, v FROM t ORDER BY id", -1, &st, NULL) != SQLITE_OK)
    return -1;
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    int id = sqlite3_column_int(st, 0);
    const unsigned char *v = sqlite3_column_blob(st, 1);
    if (sqlite3_column_bytes(st, 1) != 3072)
      n = -1000000;
    for (int k = 0; k < 3072 && n >= 0; k++)
      if (v[k] != (unsigned char)(id * 131 + k * 7))
        n = -1000000;
    n++;
  }
  sqlite3_finalize(st);
  return n < 0 ? -1 : n;
}

static int integrity_ok(sqlite3 *db)
{
  sqlite3_stmt *st;
  int ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
           sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
  sqlite3_finalize(st);
  return ok;
}

static long long wal_size(const char *name)
{
  char p[600];
  struct stat sb;
  snprintf(p, sizeof p, "%s-wal", path(name));
  return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Copy name and its WAL to copy (and drop copy's old files): what a crash at this moment would
 * leave on disk, for SQLite's recovery to read. */
static void snapshot(const char *name, const char *copy)
{
  char cmd[4400], from[600], to[600];
  snprintf(from, sizeof from, "%s", path(name));
  snprintf(to, sizeof to, "%s", path(copy));
  snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm' && cp '%s' '%s' && cp '%s-wal' '%s-wal'", to, to, to, from,
           to, from, to);
  CHECK_EQ(system(cmd), 0);
}

/* Rows of table t in a snapshot, read through the default VFS (which recovers its WAL): with
 * `content`, only if every row holds what insert() wrote. -1 when it cannot be read (or a row's
 * content is wrong), -2 when the file is not sound. */
static int recovered(const char *copy, int content)
{
  sqlite3 *db = open_db(copy, 0);
  sqlite3_stmt *st = NULL;
  int n = -1;
  if (db && content)
    n = verify(db);
  else if (db && sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK &&
           sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (db && n >= 0 && !integrity_ok(db))
    n = -2;
  sqlite3_close(db);
  return n;
}

TEST(the_vfs_is_registered_once_under_one_name)
{
  const char *name = engram_walvfs_name();
  CHECK_STR(name, "engram-wal");
  CHECK(engram_walvfs_name() == name);
  CHECK(sqlite3_vfs_find(name) != NULL);
  CHECK(sqlite3_vfs_find(NULL) != sqlite3_vfs_find(name));   /* not made the default */
}

TEST(commits_of_every_size_read_back_through_the_default_vfs)
{
  sqlite3 *w = open_db("sizes.db", 1), *r = open_db("sizes.db", 0);
  CHECK(w && r);
  CHECK_EQ(exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  /* one frame; a run just under and just over 128 KiB; many runs */
  static const int sizes[] = { 1, 30, 31, 32, 45, 1500 };
  int total = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
    CHECK_EQ(insert(w, total + 1, sizes[i]), SQLITE_OK);
    CHECK_EQ(exec(w, "COMMIT"), SQLITE_OK);
    total += sizes[i];
    CHECK_EQ(verify(r), total);
  }
  sqlite3_close(w);
  CHECK_EQ(verify(r), total);
  CHECK(integrity_ok(r));
  sqlite3_close(r);
}

TEST(frames_reach_the_file_only_when_their_transaction_commits)
{
  sqlite3 *w = open_db("commit.db", 1), *r = open_db("commit.db", 0);
  CHECK(w && r);
  CHECK_EQ(exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  CHECK_EQ(verify(r), 0);
  long long before = wal_size("commit.db");
  CHECK(before > 0);
  CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
  CHECK_EQ(insert(w, 1, 20), SQLITE_OK);
  CHECK_EQ(verify(w), 20);          /* the writer sees its rows (from its page cache) */
  uint64_t writes = engram_walvfs_writes();
  CHECK_EQ(exec(w, "COMMIT"), SQLITE_OK);
  CHECK_EQ(engram_walvfs_writes() - writes, 1);   /* 21 frames (42 writes for SQLite), one write */
  CHECK(wal_size("commit.db") > before + 20 * 3072);
  CHECK_EQ(verify(r), 20);
  /* a transaction still open has written nothing: readers and the file are as before */
  before = wal_size("commit.db");
  CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
  CHECK_EQ(insert(w, 21, 20), SQLITE_OK);
  CHECK_EQ(exec(w, "SAVEPOINT s; RELEASE s"), SQLITE_OK);
  CHECK_EQ(wal_size("commit.db"), before);
  CHECK_EQ(verify(r), 20);
  CHECK_EQ(exec(w, "ROLLBACK"), SQLITE_OK);
  CHECK_EQ(verify(r), 20);
  CHECK_EQ(verify(w), 20);
  sqlite3_close(w);
  sqlite3_close(r);
}

TEST(a_transaction_larger_than_the_page_cache_reads_its_spilled_pages_back)
{
  sqlite3 *w = open_db("spill.db", 1), *r = open_db("spill.db", 0);
  CHECK(w && r);
  CHECK_EQ(exec(w, "PRAGMA cache_size = 16; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
  CHECK_EQ(insert(w, 1, 600), SQLITE_OK);   /* ~600 pages through a 16-page cache */
  CHECK_EQ(verify(w), 600);                 /* read back from the WAL inside the transaction */
  CHECK_EQ(verify(r), 0);
  CHECK_EQ(exec(w, "ROLLBACK"), SQLITE_OK);
  CHECK_EQ(verify(w), 0);
  CHECK_EQ(verify(r), 0);
  CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
  CHECK_EQ(insert(w, 1, 600), SQLITE_OK);
  CHECK_EQ(exec(w, "UPDATE t SET v = v WHERE id % 7 = 0"), SQLITE_OK);   /* rewrite spilled pages */
  CHECK_EQ(exec(w, "COMMIT"), SQLITE_OK);
  CHECK_EQ(verify(r), 600);
  CHECK(integrity_ok(r));
  sqlite3_close(w);
  sqlite3_close(r);
}

TEST(checkpoints_and_wal_restarts_keep_every_commit)
{
  sqlite3 *w = open_db("restart.db", 1), *r = open_db("restart.db", 0);
  CHECK(w && r);
  CHECK_EQ(exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  int total = 0;
  for (int round = 0; round < 6; round++) {
    CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
    CHECK_EQ(insert(w, total + 1, 40), SQLITE_OK);
    CHECK_EQ(exec(w, "COMMIT"), SQLITE_OK);
    total += 40;
    /* a checkpoint from the other connection; the next commit restarts the WAL from its start */
    CHECK_EQ(exec(round % 2 ? r : w, "PRAGMA wal_checkpoint(RESTART)"), SQLITE_OK);
    CHECK_EQ(verify(r), total);
  }
  sqlite3_close(w);
  sqlite3_close(r);
  sqlite3 *again = open_db("restart.db", 0);
  CHECK_EQ(verify(again), total);
  CHECK(integrity_ok(again));
  sqlite3_close(again);
}

#define RANDOM_ROWS(table, first, n)                                                            \
  "WITH RECURSIVE c(i) AS (SELECT " #first " UNION ALL SELECT i + 1 FROM c WHERE i < " #first   \
  " + " #n " - 1) INSERT INTO " table " SELECT i, randomblob(3000) FROM c"

/* Spilled pages changed again before the commit make SQLite rewrite the checksums of the frames
 * it wrote since (walRewriteChecksums: a read, then a 24-byte write at an earlier frame): those
 * headers must reach the file before the commit is published, or recovery stops short. */
TEST(a_commit_that_rewrites_spilled_frames_survives_a_crash_right_after_it)
{
  sqlite3 *w = open_db("rewrite.db", 1), *other = open_db("rewrite.db", 1);
  CHECK(w && other);
  CHECK_EQ(exec(w, "PRAGMA cache_size = 16; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  CHECK_EQ(exec(w, "BEGIN"), SQLITE_OK);
  CHECK_EQ(exec(w, RANDOM_ROWS("t", 1, 600)), SQLITE_OK);
  CHECK_EQ(exec(w, "UPDATE t SET v = randomblob(3000) WHERE id % 7 = 0"), SQLITE_OK);
  CHECK_EQ(exec(w, "COMMIT"), SQLITE_OK);
  snapshot("rewrite.db", "rewrite-crash.db");
  CHECK_EQ(recovered("rewrite-crash.db", 0), 600);
  /* nothing this connection still holds may land on another connection's frames later */
  CHECK_EQ(exec(other, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
  for (int k = 0; k < 50; k++)
    CHECK_EQ(exec(other, "INSERT INTO t SELECT max(id) + 1, randomblob(100) FROM t"), SQLITE_OK);
  sqlite3_close(w);
  snapshot("rewrite.db", "rewrite-crash.db");
  CHECK_EQ(recovered("rewrite-crash.db", 0), 650);
  sqlite3_close(other);
}

/* Frames spilled by a transaction that rolls back were never part of the database: they must not
 * be written later over the frames of the connection that commits next. */
TEST(frames_of_a_rolled_back_transaction_never_reach_the_file)
{
  sqlite3 *a = open_db("rollback.db", 1), *b = open_db("rollback.db", 1);
  CHECK(a && b);
  CHECK_EQ(exec(a, "PRAGMA cache_size = 10; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  CHECK_EQ(exec(a, "CREATE TABLE u(id INTEGER PRIMARY KEY, v BLOB)"), SQLITE_OK);
  int total = 0;
  for (int round = 0; round < 4; round++) {
    CHECK_EQ(exec(b, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
    CHECK_EQ(exec(a, "BEGIN"), SQLITE_OK);
    CHECK_EQ(exec(a, RANDOM_ROWS("u", 1, 30)), SQLITE_OK);   /* spills, the last frames gathered */
    CHECK_EQ(exec(a, "ROLLBACK"), SQLITE_OK);
    CHECK_EQ(exec(b, "BEGIN"), SQLITE_OK);
    CHECK_EQ(insert(b, total + 1, 40), SQLITE_OK);
    CHECK_EQ(exec(b, "COMMIT"), SQLITE_OK);
    total += 40;
    CHECK_EQ(verify(a), total);   /* a reads the WAL: anything it still held would be written now */
    CHECK_EQ(verify(b), total);
  }
  sqlite3_close(a);
  CHECK_EQ(verify(b), total);
  snapshot("rollback.db", "rollback-crash.db");
  CHECK_EQ(recovered("rollback-crash.db", 1), total);
  sqlite3_close(b);
}

/* Run fn in a child process, which must exit with status 0 (else the status names the step
 * that differed). */
static void child_succeeds(void (*fn)(void *), void *arg)
{
  char out[4096];
  int status = test_child(fn, arg, out, sizeof out);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
}

/* The unix VFS's pwrite, replaced in a child to fail with ENOSPC while `failing` is set. */
static sqlite3_syscall_ptr real_pwrite, real_pwrite64;
/* failing: every write fails; fail_next: the next one; fail_header = k: the k-th write of a
 * lone frame header (24 bytes) from now */
static volatile int failing, fail_next, fail_header;

static int fails(size_t n)
{
  if (fail_header && n == 24 && --fail_header == 0) {
    errno = ENOSPC;
    return 1;
  }
  if (!failing && !fail_next)
    return 0;
  fail_next = 0;
  errno = ENOSPC;
  return 1;
}

static ssize_t failing_pwrite(int fd, const void *p, size_t n, off_t off)
{
  if (fails(n))
    return -1;
  return ((ssize_t (*)(int, const void *, size_t, off_t))real_pwrite)(fd, p, n, off);
}

static ssize_t failing_pwrite64(int fd, const void *p, size_t n, off_t off)
{
  if (fails(n))
    return -1;
  return ((ssize_t (*)(int, const void *, size_t, off_t))real_pwrite64)(fd, p, n, off);
}

/* Route the unix VFS's pwrite through the failing versions above. */
static void inject_write_failures(void)
{
  sqlite3_vfs *v = sqlite3_vfs_find(engram_walvfs_name());
  real_pwrite = v->xGetSystemCall(v, "pwrite");
  real_pwrite64 = v->xGetSystemCall(v, "pwrite64");
  if (real_pwrite)
    v->xSetSystemCall(v, "pwrite", (sqlite3_syscall_ptr)failing_pwrite);
  if (real_pwrite64)
    v->xSetSystemCall(v, "pwrite64", (sqlite3_syscall_ptr)failing_pwrite64);
}

/* In a child: gathered spill frames fail to be written when the transaction reads them back
 * (the disk is full); the read fails, the transaction goes on, and its commit (once there is
 * room again) must write them, or the database would point at frames that are not there. */
static void full_disk_during_a_read(void *arg)
{
  (void)arg;
  inject_write_failures();
  sqlite3 *w = open_db("enospc.db", 1);
  if (!w || exec(w, "PRAGMA cache_size = 10; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"))
    exit(2);
  if (exec(w, "BEGIN") || exec(w, RANDOM_ROWS("t", 1, 60)))
    exit(3);
  failing = 1;
  int rc = exec(w, "UPDATE t SET v = zeroblob(3000) WHERE id <= 3");   /* reads spilled pages */
  failing = 0;
  if (rc == SQLITE_OK)
    exit(4);   /* nothing was gathered when the read came: the test did not test anything */
  if (exec(w, "COMMIT") != SQLITE_OK)
    sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(w);
  exit(0);
}

TEST(a_write_that_fails_during_a_read_cannot_leave_a_commit_without_its_frames)
{
  child_succeeds(full_disk_during_a_read, NULL);
  int n = recovered("enospc.db", 0);
  CHECK(n == 0 || n == 60);   /* all or nothing, and a sound file either way */
  CHECK(n >= 0);
}

/* In a child: the one write of a small commit fails once. SQLite rolls the transaction back,
 * reading the WAL as it does; the failed run must not be written then (or by any later read),
 * or recovery after a crash would replay a commit its caller was told had failed. The child
 * leaves a crash snapshot of the moment after the rollback and a read. */
static void failed_commit_then_read(void *arg)
{
  (void)arg;
  inject_write_failures();
  sqlite3 *w = open_db("failed.db", 1);
  if (!w || exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)") || exec(w, "BEGIN") || insert(w, 1, 10) ||
      exec(w, "COMMIT"))
    exit(2);
  if (exec(w, "BEGIN") || insert(w, 11, 5))
    exit(3);
  fail_next = 1;
  if (exec(w, "COMMIT") == SQLITE_OK)
    exit(4);
  if (fail_next)
    exit(5);   /* the commit wrote nothing: the test did not test anything */
  sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
  if (verify(w) != 10)
    exit(6);
  snapshot("failed.db", "failed-crash.db");
  exit(0);
}

TEST(the_frames_of_a_failed_commit_are_never_written_later)
{
  child_succeeds(failed_commit_then_read, NULL);
  CHECK_EQ(recovered("failed-crash.db", 1), 10);
}

/* SQLite's allocator, replaced in a child (after sqlite3_shutdown) to fail the next
 * reallocation of a block to fail_grow bytes or more once armed: the gathered run growing past
 * 64 KiB (SQLite's own blocks stay below 128 KiB here). */
static sqlite3_mem_methods real_mem;
static volatile int fail_grow;

static void *failing_realloc(void *p, int n)
{
  if (fail_grow && p && n >= fail_grow) {
    fail_grow = 0;
    return NULL;
  }
  return real_mem.xRealloc(p, n);
}

static void fail_allocations(void)
{
  static sqlite3_mem_methods m;
  if (sqlite3_shutdown() != SQLITE_OK || sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK)
    exit(10);
  m = real_mem;
  m.xRealloc = failing_realloc;
  if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK || sqlite3_initialize() != SQLITE_OK)
    exit(11);
}

/* In a child: a commit frame's header is gathered, its 64 KiB page cannot be (the run cannot
 * grow), and writing the header before the page then fails. The commit fails and SQLite rolls
 * it back, reading the WAL; the header must not be written then. Here the page's place already
 * holds the same page (the same CREATE TABLE ran in the WAL's previous generation), so a late
 * header would make a valid commit frame and recovery would replay the failed transaction. */
static void commit_header_fails_without_its_page(void *arg)
{
  (void)arg;
  fail_allocations();
  sqlite3 *d = NULL, *a;
  if (sqlite3_open_v2(path("oom.db"), &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
      exec(d, "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;"
                    "CREATE TABLE t(a); PRAGMA wal_checkpoint(TRUNCATE); PRAGMA user_version = 1;"
                    "CREATE TABLE x(a); DROP TABLE x; PRAGMA wal_checkpoint(RESTART); PRAGMA user_version = 2"))
    exit(2);
  if (!(a = open_db("oom.db", 1)) || exec(a, "PRAGMA wal_autocheckpoint = 0; SELECT count(*) FROM sqlite_schema"))
    exit(3);
  inject_write_failures();
  fail_grow = 128 * 1024;
  fail_header = 2;   /* the transaction's first frame (page 1) is written through; then page 3's,
                        the commit frame, whose header is gathered alone */
  if (exec(a, "CREATE TABLE x(a)") == SQLITE_OK)
    exit(4);
  if (fail_grow || fail_header)
    exit(5);   /* the path under test was not taken: the test did not test anything */
  if (exec(a, "SELECT * FROM x") == SQLITE_OK)
    exit(6);
  snapshot("oom.db", "oom-crash.db");
  exit(0);
}

TEST(a_commit_header_whose_page_could_not_be_gathered_is_never_written_after_its_failure)
{
  child_succeeds(commit_header_fails_without_its_page, NULL);
  sqlite3 *c = open_db("oom-crash.db", 0);
  CHECK(c != NULL);
  CHECK(exec(c, "SELECT * FROM x") != SQLITE_OK);   /* no such table: the failed commit stayed failed */
  CHECK_EQ(exec(c, "SELECT * FROM t"), SQLITE_OK);
  CHECK(integrity_ok(c));
  sqlite3_close(c);
}

/* synchronous = FULL with powersafe overwrite off pads a commit to a sector boundary and splits
 * the write that crosses it; no piece of that may be taken for a frame. */
TEST(full_sync_with_padding_keeps_every_commit)
{
  sqlite3 *w = NULL, *r = NULL;
  char uri[700];
  snprintf(uri, sizeof uri, "file:%s?psow=0", path("pad.db"));
  CHECK_EQ(sqlite3_open_v2(uri, &w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, engram_walvfs_name()),
           SQLITE_OK);
  CHECK_EQ(exec(w, "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                   "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"),
           SQLITE_OK);
  r = open_db("pad.db", 0);
  sqlite3_stmt *ins, *chk;
  CHECK_EQ(sqlite3_prepare_v2(w, "INSERT INTO t VALUES (?1, printf('%0100d', ?1))", -1, &ins, NULL), SQLITE_OK);
  CHECK_EQ(sqlite3_prepare_v2(r, "SELECT count(*), sum(v <> printf('%0100d', id)) FROM t", -1, &chk, NULL), SQLITE_OK);
  int bad = 0, k;
  for (k = 1; k <= 400 && !bad; k++) {
    sqlite3_bind_int(ins, 1, k);
    bad += sqlite3_step(ins) != SQLITE_DONE;
    sqlite3_reset(ins);
    bad += sqlite3_step(chk) != SQLITE_ROW || sqlite3_column_int(chk, 0) != k || sqlite3_column_int(chk, 1) != 0;
    sqlite3_reset(chk);
  }
  CHECK_EQ(bad, 0);
  sqlite3_finalize(ins);
  sqlite3_finalize(chk);
  snapshot("pad.db", "pad-crash.db");
  sqlite3 *c = open_db("pad-crash.db", 0);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(c, "SELECT count(*) FROM t", -1, &st, NULL);
  CHECK_EQ(sqlite3_step(st), SQLITE_ROW);
  CHECK_EQ(sqlite3_column_int(st, 0), 400);
  sqlite3_finalize(st);
  CHECK(integrity_ok(c));
  sqlite3_close(c);
  sqlite3_close(w);
  sqlite3_close(r);
}

/* In a child: a file size limit makes the commit's write fail; the commit reports it, and the
 * database keeps its last good state, which the same connection can extend once the limit is
 * gone. Exit status: 0 as expected, else the step that differed. */
static void fail_then_recover(void *arg)
{
  int rows = *(const int *)arg;
  signal(SIGXFSZ, SIG_IGN);   /* the write fails with EFBIG instead of killing the process */
  sqlite3 *w = open_db("full.db", 1);
  if (!w || exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)") != SQLITE_OK || exec(w, "BEGIN") ||
      insert(w, 1, 10) || exec(w, "COMMIT"))
    exit(2);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = (rlim_t)wal_size("full.db") + 32 * 1024;   /* room for part of the next commit */
  setrlimit(RLIMIT_FSIZE, &lim);
  if (exec(w, "BEGIN") || insert(w, 11, rows))
    exit(3);
  int rc = exec(w, "COMMIT");
  if ((rc & 0xff) != SQLITE_FULL && (rc & 0xff) != SQLITE_IOERR)
    exit(4);
  sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);   /* if the failed commit left it open */
  if (verify(w) != 10)
    exit(5);
  setrlimit(RLIMIT_FSIZE, &old);
  if (exec(w, "BEGIN") || insert(w, 11, rows) || exec(w, "COMMIT") || verify(w) != 10 + rows)
    exit(6);
  sqlite3_close(w);
  exit(0);
}

TEST(a_commit_whose_write_fails_is_rolled_back_and_the_database_keeps_its_last_state)
{
  /* 20 rows: the one write is the commit's; 100 rows: a run before the commit fails */
  static const int rows[] = { 20, 100 };
  for (int i = 0; i < 2; i++) {
    unlink(path("full.db"));
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", path("full.db"));
    unlink(wal);
    child_succeeds(fail_then_recover, (void *)&rows[i]);
    sqlite3 *r = open_db("full.db", 0);
    CHECK_EQ(verify(r), 10 + rows[i]);
    CHECK(integrity_ok(r));
    sqlite3_close(r);
  }
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/engram-walvfs-test-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(the_vfs_is_registered_once_under_one_name);
  RUN(commits_of_every_size_read_back_through_the_default_vfs);
  RUN(frames_reach_the_file_only_when_their_transaction_commits);
  RUN(a_transaction_larger_than_the_page_cache_reads_its_spilled_pages_back);
  RUN(checkpoints_and_wal_restarts_keep_every_commit);
  RUN(a_commit_whose_write_fails_is_rolled_back_and_the_database_keeps_its_last_state);
  RUN(a_commit_that_rewrites_spilled_frames_survives_a_crash_right_after_it);
  RUN(frames_of_a_rolled_back_transaction_never_reach_the_file);
  RUN(a_write_that_fails_during_a_read_cannot_leave_a_commit_without_its_frames);
  RUN(full_sync_with_padding_keeps_every_commit);
  RUN(the_frames_of_a_failed_commit_are_never_written_later);
  RUN(a_commit_header_whose_page_could_not_be_gathered_is_never_written_after_its_failure);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return test_done();
}
