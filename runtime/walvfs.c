/*
 * walvfs.c — the VFS that gathers a transaction's WAL frames into one write (see walvfs.h).
 *
 * SQLite appends frame i of a transaction as write(header, 24 bytes, at o) then write(page,
 * szPage bytes, at o + 24), and a frame's header holds at bytes 4..7 the database size after
 * the commit for a commit frame, 0 for the others (the WAL file format). Only that exact
 * pattern is gathered: a 24-byte write that starts or extends the gathered run, then the
 * write of the page right after it. Everything else goes through as it comes, after the
 * gathered run; so a SQLite that wrote frames differently would simply not be gathered.
 *
 * Every file that is not a WAL is opened by the wrapped VFS in the memory SQLite gave us
 * (our szOsFile is larger than its), with its own methods: no cost on the database file.
 */
#include "walvfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_HEADER 24
/* The longest run written at once: the unix VFS writes at most 128 KiB - 1 bytes a call (it
 * masks the length), so a bigger transaction is written in runs of up to this size. */
#define GATHER_MAX ((size_t)0x1ffff)

struct walfile {
  sqlite3_file base;         /* pMethods = &wal_methods */
  sqlite3_file *real;        /* the wrapped VFS's file, right after this struct */
  unsigned char *buf;        /* the gathered run: bytes for [at, at + len) */
  size_t len, cap;
  sqlite3_int64 at;
  size_t page;               /* the size of the last page gathered (0: none yet) */
  int page_next;             /* the run ends with a frame header: its page comes next */
  int commit;                /* ... and it is a commit frame's */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs wal_vfs;
static const char *vfs_name;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t writes;

static int real_write(struct walfile *f, const void *p, int amount, sqlite3_int64 off)
{
  __atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
  return f->real->pMethods->xWrite(f->real, p, amount, off);
}

static int flush(struct walfile *f)
{
  if (!f->len)
    return SQLITE_OK;
  int rc = real_write(f, f->buf, (int)f->len, f->at);
  f->len = 0;
  f->page_next = f->commit = 0;
  return rc;
}

static int gather(struct walfile *f, const void *p, size_t n)
{
  if (f->len + n > f->cap) {
    size_t cap = f->cap ? f->cap : 64 * 1024;
    while (cap < f->len + n)
      cap *= 2;
    unsigned char *nb = realloc(f->buf, cap);
    if (!nb)
      return 0;   /* out of memory: the caller writes through */
    f->buf = nb;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, p, n);
  f->len += n;
  return 1;
}

static int w_write(sqlite3_file *file, const void *p, int amount, sqlite3_int64 off)
{
  struct walfile *f = (struct walfile *)file;
  size_t n = (size_t)amount;
  int appends = off == f->at + (sqlite3_int64)f->len;
  int rc;
  if (n == FRAME_HEADER && !f->page_next) {
    /* room for the header and its page (at most 64 KiB) in this run, or start another */
    size_t frame = n + (f->page ? f->page : 65536);
    if (f->len && (!appends || f->len + frame > GATHER_MAX) && (rc = flush(f)) != SQLITE_OK)
      return rc;
    if (!f->len)
      f->at = off;
    const unsigned char *h = p;
    int commit = (h[4] | h[5] | h[6] | h[7]) != 0;
    if (gather(f, p, n)) {
      f->page_next = 1;
      f->commit = commit;
      return SQLITE_OK;
    }
  } else if (n > FRAME_HEADER && f->page_next && appends && f->len + n <= GATHER_MAX && gather(f, p, n)) {
    f->page_next = 0;
    f->page = n;
    return f->commit ? flush(f) : SQLITE_OK;   /* the transaction is whole: write it */
  }
  if ((rc = flush(f)) != SQLITE_OK)
    return rc;
  return real_write(f, p, amount, off);
}

static int w_close(sqlite3_file *file)
{
  struct walfile *f = (struct walfile *)file;
  int rc = flush(f);
  int rc2 = f->real->pMethods->xClose(f->real);
  free(f->buf);
  f->buf = NULL;
  f->cap = 0;
  return rc != SQLITE_OK ? rc : rc2;
}

/* Everything that observes the file sees what was gathered written first. */
#define FLUSHED(f, call)                         \
  do {                                           \
    int rc_ = flush(f);                          \
    return rc_ != SQLITE_OK ? rc_ : (call);      \
  } while (0)
#define REAL(file) (((struct walfile *)(file))->real)

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

static int w_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
  return REAL(file)->pMethods->iVersion < 3 ? SQLITE_OK : REAL(file)->pMethods->xUnfetch(REAL(file), off, p);
}

static int w_lock(sqlite3_file *file, int lock) { return REAL(file)->pMethods->xLock(REAL(file), lock); }
static int w_unlock(sqlite3_file *file, int lock) { return REAL(file)->pMethods->xUnlock(REAL(file), lock); }
static int w_check_reserved(sqlite3_file *file, int *out)
{
  return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}
static int w_sector_size(sqlite3_file *file) { return REAL(file)->pMethods->xSectorSize(REAL(file)); }
static int w_device(sqlite3_file *file) { return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file)); }

/* A WAL file has no shared memory of its own (the database file has); these exist only
 * because version 2 of the methods lists them. */
static int w_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
  *pp = NULL;
  return REAL(file)->pMethods->iVersion < 2 ? SQLITE_IOERR_SHMMAP
                                            : REAL(file)->pMethods->xShmMap(REAL(file), pg, pgsz, extend, pp);
}
static int w_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
  return REAL(file)->pMethods->iVersion < 2 ? SQLITE_IOERR_SHMLOCK
                                            : REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}
static void w_shm_barrier(sqlite3_file *file)
{
  if (REAL(file)->pMethods->iVersion >= 2)
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}
static int w_shm_unmap(sqlite3_file *file, int del)
{
  return REAL(file)->pMethods->iVersion < 2 ? SQLITE_OK : REAL(file)->pMethods->xShmUnmap(REAL(file), del);
}

static const sqlite3_io_methods wal_methods = {
  3, w_close, w_read, w_write, w_truncate, w_sync, w_file_size, w_lock, w_unlock, w_check_reserved,
  w_file_control, w_sector_size, w_device, w_shm_map, w_shm_lock, w_shm_barrier, w_shm_unmap, w_fetch, w_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
  (void)vfs;
  if (!(flags & SQLITE_OPEN_WAL))
    return real_vfs->xOpen(real_vfs, name, file, flags, out);
  struct walfile *f = (struct walfile *)file;
  memset(f, 0, sizeof *f);
  f->real = (sqlite3_file *)(f + 1);
  f->real->pMethods = NULL;
  int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
  if (rc != SQLITE_OK) {
    /* SQLite closes a failed open only through our methods, which we do not set */
    if (f->real->pMethods)
      f->real->pMethods->xClose(f->real);
    return rc;
  }
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
  wal_vfs = (sqlite3_vfs){
    .iVersion = r->iVersion < 3 ? r->iVersion : 3,
    .szOsFile = (int)sizeof(struct walfile) + r->szOsFile,
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
