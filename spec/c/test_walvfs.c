/*
 * test_walvfs.c — the VFS that gathers WAL frames: what it writes is exactly what SQLite
 * wrote, only later and in fewer calls. Each database written through it is read back
 * through SQLite's default VFS.
 */
#include "test.h"
#include "walvfs.h"

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
    char out[4096], wal[600];
    snprintf(wal, sizeof wal, "%s-wal", path("full.db"));
    unlink(wal);
    int status = test_child(fail_then_recover, (void *)&rows[i], out, sizeof out);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
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
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return test_done();
}
