/*
 * walvfs.c — the VFS that gathers a transaction's WAL frames into one write (see walvfs.h).
 *
 * SQLite appends frame i of a transaction as write(header, 24 bytes, at o) then write(page,
 * P bytes, at o + 24), where o = 32 + i * (P + 24) and P is the page size (in the WAL header);
 * a frame's header holds at bytes 4..7 the database size after the commit for a commit frame,
 * 0 for the others (the WAL file format). Only that exact pattern is gathered: a 24-byte write
 * at a frame boundary that continues exactly where this handle's previous write ended, then its
 * P-byte page. Everything else goes through as it comes, after the gathered run: the checksum
 * rewrites of walRewriteChecksums and in-place page overwrites land before the end, padding
 * pieces split at a sync point are not frame-sized, and a SQLite that wrote frames differently
 * would simply not be gathered.
 *
 * Frames are gathered only while this connection holds the WAL write lock, as seen through its
 * database file's xShmLock (so never in locking_mode=EXCLUSIVE, which takes no shared-memory
 * locks): a transaction that spilled frames and then rolled back leaves gathered frames that
 * must never reach the file, and the release of the write lock discards them (a commit wrote
 * its frames at its commit frame). A failed write keeps the run gathered: the next access
 * retries it, so a transaction cannot commit without the frames it spilled. A run that holds a
 * commit frame's header is the exception: its failure fails the commit, SQLite rolls the
 * transaction back whole, and a later retry (the rollback itself reads the WAL) would put a
 * commit frame of a failed transaction on disk, where recovery could replay it.
 *
 * The run's buffer comes from sqlite3_realloc64, so SQLite's memory configuration and limits
 * cover it; when it cannot grow, the frame is written through after the run.
 *
 * The main database file is wrapped too, to see those locks; every other file is opened by the
 * wrapped VFS in the memory SQLite gave us (our szOsFile is larger than its), with its own
 * methods.
 */
#include "walvfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>

#define FRAME_HEADER 24
#define WAL_HEADER 32
/* The longest run written at once: the unix VFS writes at most 128 KiB - 1 bytes a call (it
 * masks the length), so a bigger transaction is written in runs of up to this size. */
#define GATHER_MAX ((size_t)0x1ffff)

struct walfile;

struct dbfile {
  sqlite3_file base;         /* pMethods = &db_methods */
  sqlite3_file *real;        /* right after this struct */
  const char *name;          /* the name SQLite opened it with (its WAL's is derived from it) */
  struct walfile *wal;       /* this connection's WAL file, once open */
  int writer;                /* this connection holds the WAL write lock */
  struct dbfile *next;       /* open main database files (files_mu) */
};

struct walfile {
  sqlite3_file base;         /* pMethods = &wal_methods */
  sqlite3_file *real;        /* right after this struct */
  struct dbfile *db;         /* NULL: not linked to its database file, nothing is gathered */
  uint32_t page;             /* the page size, from the WAL header (0: not known yet) */
  sqlite3_int64 end;         /* where this handle's last write ended (-1: unknown) */
  unsigned char *buf;        /* the gathered run: bytes for [at, at + len) */
  size_t len, cap;
  sqlite3_int64 at;
  int page_next;             /* the run ends with a frame header: its page comes next */
  int commit;                /* ... and it is a commit frame's */
};

_Static_assert(offsetof(struct walfile, real) == offsetof(struct dbfile, real), "REAL() reads either struct");

static sqlite3_vfs *real_vfs;
static sqlite3_vfs wal_vfs;
static const char *vfs_name;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dbfile *files;
static uint64_t writes;

#define REAL(file) (((struct walfile *)(file))->real)   /* both structs start alike */

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int real_write(struct walfile *f, const void *p, int amount, sqlite3_int64 off)
{
  __atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
  int rc = f->real->pMethods->xWrite(f->real, p, amount, off);
  f->end = rc == SQLITE_OK ? off + amount : -1;
  return rc;
}

/* Write the gathered run. On failure it stays gathered (see the top of the file), unless it
 * holds a commit frame's header, whether or not its page was gathered too. */
static int flush(struct walfile *f)
{
  if (!f->len)
    return SQLITE_OK;
  int rc = real_write(f, f->buf, (int)f->len, f->at);
  /* a failed commit is rolled back whole: its run must never be retried (a retry during the
   * rollback's reads would leave a commit frame on disk for recovery to replay; with its page
   * not gathered, one whose checksum holds when the bytes already there are the same page) */
  if (rc == SQLITE_OK || f->commit)
    f->len = 0, f->page_next = f->commit = 0;
  return rc;
}

/* Forget the gathered run: its transaction ended without committing it. */
static void discard(struct walfile *f)
{
  if (f->len)
    f->end = -1;
  f->len = 0;
  f->page_next = f->commit = 0;
}

static int gather(struct walfile *f, const void *p, size_t n)
{
  if (f->len + n > f->cap) {
    size_t cap = f->cap ? f->cap : 64 * 1024;
    while (cap < f->len + n)
      cap *= 2;
    unsigned char *nb = sqlite3_realloc64(f->buf, cap);
    if (!nb)
      return 0;   /* out of memory: the caller writes through */
    f->buf = nb;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, p, n);
  f->len += n;
  return 1;
}

/* The page size from the WAL header on disk, for a handle that has not written the header
 * itself (another connection started this WAL). 0 when it cannot be read. */
static uint32_t read_page_size(struct walfile *f)
{
  unsigned char h[WAL_HEADER];
  if (f->real->pMethods->xRead(f->real, h, WAL_HEADER, 0) != SQLITE_OK)
    return 0;
  uint32_t magic = be32(h), page = be32(h + 8);
  if ((magic & 0xfffffffe) != 0x377f0682 || page < 512 || page > 65536 || (page & (page - 1)))
    return 0;
  return page;
}

static int w_write(sqlite3_file *file, const void *p, int amount, sqlite3_int64 off)
{
  struct walfile *f = (struct walfile *)file;
  size_t n = (size_t)amount;
  int rc;
  if (off == 0 && n == WAL_HEADER)
    f->page = be32((const unsigned char *)p + 8);   /* written through below */
  if (f->db && f->db->writer && off == f->end) {
    if (n == FRAME_HEADER && !f->page_next) {
      if (!f->page)
        f->page = read_page_size(f);
      size_t frame = FRAME_HEADER + f->page;
      if (f->page && off >= WAL_HEADER && (size_t)(off - WAL_HEADER) % frame == 0) {
        if (f->len && f->len + frame > GATHER_MAX && (rc = flush(f)) != SQLITE_OK)
          return rc;
        if (!f->len)
          f->at = off;
        if (gather(f, p, n)) {
          const unsigned char *h = p;
          f->page_next = 1;
          f->commit = (h[4] | h[5] | h[6] | h[7]) != 0;
          f->end = off + amount;
          return SQLITE_OK;
        }
      }
    } else if (f->page_next && n == f->page && gather(f, p, n)) {
      f->page_next = 0;
      f->end = off + amount;
      return f->commit ? flush(f) : SQLITE_OK;   /* the transaction is whole: write it */
    }
  }
  if ((rc = flush(f)) != SQLITE_OK)
    return rc;
  return real_write(f, p, amount, off);
}

static int w_close(sqlite3_file *file)
{
  struct walfile *f = (struct walfile *)file;
  pthread_mutex_lock(&files_mu);
  if (f->db)
    f->db->wal = NULL;
  pthread_mutex_unlock(&files_mu);
  discard(f);   /* a commit wrote its frames: anything left belongs to none */
  sqlite3_free(f->buf);
  f->buf = NULL;
  return f->real->pMethods->xClose(f->real);
}

/* Everything that observes the file sees what was gathered written first. */
#define FLUSHED(f, call)                         \
  do {                                           \
    int rc_ = flush(f);                          \
    return rc_ != SQLITE_OK ? rc_ : (call);      \
  } while (0)

static int w_read(sqlite3_file *file, void *p, int amount, sqlite3_int64 off)
{
  FLUSHED((struct walfile *)file, REAL(file)->pMethods->xRead(REAL(file), p, amount, off));
}

static int w_truncate(sqlite3_file *file, sqlite3_int64 size)
{
  FLUSHED((struct walfile *)file, REAL(file)->pMethods->xTruncate(REAL(file), size));
}

static int w_sync(sqlite3_file *file, int flags)
{
  FLUSHED((struct walfile *)file, REAL(file)->pMethods->xSync(REAL(file), flags));
}

static int w_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
  FLUSHED((struct walfile *)file, REAL(file)->pMethods->xFileSize(REAL(file), size));
}

static int w_file_control(sqlite3_file *file, int op, void *arg)
{
  FLUSHED((struct walfile *)file, REAL(file)->pMethods->xFileControl(REAL(file), op, arg));
}

static int w_fetch(sqlite3_file *file, sqlite3_int64 off, int amount, void **pp)
{
  *pp = NULL;
  if (REAL(file)->pMethods->iVersion < 3)
    return SQLITE_OK;   /* no memory map: SQLite reads instead */
  FLUSHED((struct walfile *)file, REAL(file)->pMethods->xFetch(REAL(file), off, amount, pp));
}

/* ---- pass-through methods, shared by both wrappers (REAL works for either struct) ---------- */

static int p_read(sqlite3_file *file, void *p, int amount, sqlite3_int64 off)
{
  return REAL(file)->pMethods->xRead(REAL(file), p, amount, off);
}
static int p_write(sqlite3_file *file, const void *p, int amount, sqlite3_int64 off)
{
  return REAL(file)->pMethods->xWrite(REAL(file), p, amount, off);
}
static int p_truncate(sqlite3_file *file, sqlite3_int64 size) { return REAL(file)->pMethods->xTruncate(REAL(file), size); }
static int p_sync(sqlite3_file *file, int flags) { return REAL(file)->pMethods->xSync(REAL(file), flags); }
static int p_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
  return REAL(file)->pMethods->xFileSize(REAL(file), size);
}
static int p_file_control(sqlite3_file *file, int op, void *arg)
{
  return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}
static int p_lock(sqlite3_file *file, int lock) { return REAL(file)->pMethods->xLock(REAL(file), lock); }
static int p_unlock(sqlite3_file *file, int lock) { return REAL(file)->pMethods->xUnlock(REAL(file), lock); }
static int p_check_reserved(sqlite3_file *file, int *out)
{
  return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}
static int p_sector_size(sqlite3_file *file) { return REAL(file)->pMethods->xSectorSize(REAL(file)); }
static int p_device(sqlite3_file *file) { return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file)); }
static int p_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
  *pp = NULL;
  return REAL(file)->pMethods->iVersion < 2 ? SQLITE_IOERR_SHMMAP
                                            : REAL(file)->pMethods->xShmMap(REAL(file), pg, pgsz, extend, pp);
}
static int p_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
  return REAL(file)->pMethods->iVersion < 2 ? SQLITE_IOERR_SHMLOCK
                                            : REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}
static void p_shm_barrier(sqlite3_file *file)
{
  if (REAL(file)->pMethods->iVersion >= 2)
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}
static int p_shm_unmap(sqlite3_file *file, int del)
{
  return REAL(file)->pMethods->iVersion < 2 ? SQLITE_OK : REAL(file)->pMethods->xShmUnmap(REAL(file), del);
}
static int p_fetch(sqlite3_file *file, sqlite3_int64 off, int amount, void **pp)
{
  *pp = NULL;
  return REAL(file)->pMethods->iVersion < 3 ? SQLITE_OK : REAL(file)->pMethods->xFetch(REAL(file), off, amount, pp);
}
static int p_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
  return REAL(file)->pMethods->iVersion < 3 ? SQLITE_OK : REAL(file)->pMethods->xUnfetch(REAL(file), off, p);
}

static const sqlite3_io_methods wal_methods = {
  3, w_close, w_read, w_write, w_truncate, w_sync, w_file_size, p_lock, p_unlock, p_check_reserved,
  w_file_control, p_sector_size, p_device, p_shm_map, p_shm_lock, p_shm_barrier, p_shm_unmap, w_fetch, p_unfetch,
};

/* ---- the main database file: watches the WAL write lock (shared-memory slot 0) ------------- */

static int d_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
  struct dbfile *d = (struct dbfile *)file;
  int rc = p_shm_lock(file, offset, n, flags);
  if (rc == SQLITE_OK && offset == 0 && n >= 1 && (flags & SQLITE_SHM_EXCLUSIVE)) {
    if (flags & SQLITE_SHM_LOCK) {
      d->writer = 1;
    } else {
      d->writer = 0;
      if (d->wal)
        discard(d->wal);
    }
  }
  return rc;
}

static int d_close(sqlite3_file *file)
{
  struct dbfile *d = (struct dbfile *)file;
  pthread_mutex_lock(&files_mu);
  for (struct dbfile **p = &files; *p; p = &(*p)->next)
    if (*p == d) {
      *p = d->next;
      break;
    }
  if (d->wal)
    d->wal->db = NULL;
  pthread_mutex_unlock(&files_mu);
  return d->real->pMethods->xClose(d->real);
}

static const sqlite3_io_methods db_methods = {
  3, d_close, p_read, p_write, p_truncate, p_sync, p_file_size, p_lock, p_unlock, p_check_reserved,
  p_file_control, p_sector_size, p_device, p_shm_map, d_shm_lock, p_shm_barrier, p_shm_unmap, p_fetch, p_unfetch,
};

/* Open the wrapped VFS's file right after our struct of `size` bytes at file. */
static int open_real(sqlite3_file *file, size_t size, const char *name, int flags, int *out)
{
  memset(file, 0, size);
  sqlite3_file *real = (sqlite3_file *)((char *)file + size);
  ((struct walfile *)file)->real = real;   /* same offset in both structs */
  real->pMethods = NULL;
  int rc = real_vfs->xOpen(real_vfs, name, real, flags, out);
  if (rc != SQLITE_OK && real->pMethods) {
    /* SQLite closes a failed open only through our methods, which we do not set */
    real->pMethods->xClose(real);
  }
  return rc;
}

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
  (void)vfs;
  int rc;
  if ((flags & SQLITE_OPEN_MAIN_DB) && name) {
    struct dbfile *d = (struct dbfile *)file;
    if ((rc = open_real(file, sizeof *d, name, flags, out)) != SQLITE_OK)
      return rc;
    d->name = name;
    d->base.pMethods = &db_methods;
    pthread_mutex_lock(&files_mu);
    d->next = files;
    files = d;
    pthread_mutex_unlock(&files_mu);
    return SQLITE_OK;
  }
  if (!(flags & SQLITE_OPEN_WAL) || !name)
    return real_vfs->xOpen(real_vfs, name, file, flags, out);
  struct walfile *f = (struct walfile *)file;
  if ((rc = open_real(file, sizeof *f, name, flags, out)) != SQLITE_OK)
    return rc;
  f->end = -1;
  /* the database file of this connection: SQLite derives the WAL's name from the same block,
   * so the pointer identifies the connection (two connections to one file have two) */
  const char *db = sqlite3_filename_database(name);
  pthread_mutex_lock(&files_mu);
  for (struct dbfile *d = files; d; d = d->next)
    if (d->name == db && !d->wal) {
      d->wal = f;
      f->db = d;
      break;
    }
  pthread_mutex_unlock(&files_mu);
  f->base.pMethods = &wal_methods;
  return SQLITE_OK;
}

/* The rest is the wrapped VFS's, called with its own handle (it keeps state behind it). */
static int v_delete(sqlite3_vfs *v, const char *z, int sync) { (void)v; return real_vfs->xDelete(real_vfs, z, sync); }
static int v_access(sqlite3_vfs *v, const char *z, int flags, int *out)
{
  (void)v;
  return real_vfs->xAccess(real_vfs, z, flags, out);
}
static int v_full_pathname(sqlite3_vfs *v, const char *z, int n, char *out)
{
  (void)v;
  return real_vfs->xFullPathname(real_vfs, z, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *z) { (void)v; return real_vfs->xDlOpen(real_vfs, z); }
static void v_dlerror(sqlite3_vfs *v, int n, char *out) { (void)v; real_vfs->xDlError(real_vfs, n, out); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *z))(void)
{
  (void)v;
  return real_vfs->xDlSym(real_vfs, h, z);
}
static void v_dlclose(sqlite3_vfs *v, void *h) { (void)v; real_vfs->xDlClose(real_vfs, h); }
static int v_randomness(sqlite3_vfs *v, int n, char *out) { (void)v; return real_vfs->xRandomness(real_vfs, n, out); }
static int v_sleep(sqlite3_vfs *v, int us) { (void)v; return real_vfs->xSleep(real_vfs, us); }
static int v_current_time(sqlite3_vfs *v, double *t) { (void)v; return real_vfs->xCurrentTime(real_vfs, t); }
static int v_last_error(sqlite3_vfs *v, int n, char *out) { (void)v; return real_vfs->xGetLastError(real_vfs, n, out); }
static int v_current_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
  (void)v;
  return real_vfs->xCurrentTimeInt64(real_vfs, t);
}
static int v_set_syscall(sqlite3_vfs *v, const char *z, sqlite3_syscall_ptr p)
{
  (void)v;
  return real_vfs->xSetSystemCall(real_vfs, z, p);
}
static sqlite3_syscall_ptr v_get_syscall(sqlite3_vfs *v, const char *z)
{
  (void)v;
  return real_vfs->xGetSystemCall(real_vfs, z);
}
static const char *v_next_syscall(sqlite3_vfs *v, const char *z)
{
  (void)v;
  return real_vfs->xNextSystemCall(real_vfs, z);
}

static void init(void)
{
  sqlite3_vfs *r = sqlite3_vfs_find(NULL);
  if (!r)
    return;
  real_vfs = r;
  size_t ours = sizeof(struct walfile) > sizeof(struct dbfile) ? sizeof(struct walfile) : sizeof(struct dbfile);
  wal_vfs = (sqlite3_vfs){
    .iVersion = r->iVersion < 3 ? r->iVersion : 3,
    .szOsFile = (int)ours + r->szOsFile,
    .mxPathname = r->mxPathname,
    .zName = "engram-wal",
    .xOpen = v_open, .xDelete = v_delete, .xAccess = v_access, .xFullPathname = v_full_pathname,
    .xDlOpen = v_dlopen, .xDlError = v_dlerror, .xDlSym = v_dlsym, .xDlClose = v_dlclose,
    .xRandomness = v_randomness, .xSleep = v_sleep, .xCurrentTime = v_current_time,
    .xGetLastError = v_last_error,
  };
  if (r->iVersion >= 2)
    wal_vfs.xCurrentTimeInt64 = v_current_time64;
  if (r->iVersion >= 3) {
    wal_vfs.xSetSystemCall = v_set_syscall;
    wal_vfs.xGetSystemCall = v_get_syscall;
    wal_vfs.xNextSystemCall = v_next_syscall;
  }
  if (sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK)
    vfs_name = wal_vfs.zName;
}

const char *engram_walvfs_name(void)
{
  pthread_once(&once, init);
  return vfs_name;
}

uint64_t engram_walvfs_writes(void)
{
  return __atomic_load_n(&writes, __ATOMIC_RELAXED);
}
