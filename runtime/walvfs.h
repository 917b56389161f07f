/*
 * walvfs.h — a SQLite VFS that writes a transaction's WAL frames in one system call (internal).
 *
 * SQLite appends a WAL frame as two writes (its 24-byte header, then the page), so a commit of
 * 30 pages costs 60 pwrite calls; on this kind of machine each costs several microseconds, a
 * tenth of a 100-episode burst. This VFS wraps the default one: a WAL file gathers the frames
 * a transaction appends, in order, while its connection holds the WAL write lock, and writes
 * them with one call when the commit frame (the one whose header carries the database size) is
 * complete, before SQLite publishes the commit in the wal-index. Any other access to the WAL
 * file (a read, a sync, a truncate, its size, a write that does not append a frame) first writes
 * what is gathered, so SQLite sees exactly the file it wrote; frames of a transaction that rolls
 * back are dropped when it gives the write lock up. The file format is unchanged: other
 * processes and tools read the store as usual.
 *
 * A failed write fails the SQLite call that made it (the commit's write fails the commit) and
 * keeps the frames gathered, so a transaction cannot commit without them; a process killed with
 * frames gathered never published them (same as being killed before writing them).
 */
#ifndef ENGRAM_WALVFS_H
#define ENGRAM_WALVFS_H

#include <stdint.h>

/* The VFS's name for sqlite3_open_v2, registered on first call (thread-safe), or NULL when
 * SQLite has no default VFS to wrap or registration failed (then open with the default). */
const char *engram_walvfs_name(void);

/* The writes this VFS has issued to WAL files so far, in the whole process (for tests). */
uint64_t engram_walvfs_writes(void);

#endif
