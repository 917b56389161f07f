/*
 * claims.h — which episodes the bursts of this process hold, per database file (internal).
 *
 * A burst's load claims the episodes it will consolidate; its commit (or a release) gives them
 * back. Claims live in the process, not in the database: taking and giving them back costs no
 * write transaction, and a killed process leaves none behind. Every connection to the same file
 * (same device and inode) shares one table, so workers never load the same episode. Another
 * process on the same file is not seen here; the commit's check that an episode is still
 * unconsolidated makes the later of two such commits fail without writing anything.
 *
 * A claim expires after its lease: a burst that never commits or releases (a stuck script)
 * does not hold its episodes forever. All functions are thread-safe.
 */
#ifndef ENGRAM_CLAIMS_H
#define ENGRAM_CLAIMS_H

#include <stdint.h>

typedef struct engram_claims engram_claims;

/* The table of the file at path (shared with every other attach of the same file; a path that
 * cannot be stat'ed gets a table of its own). NULL when out of memory. */
engram_claims *engram_claims_attach(const char *path);
void engram_claims_detach(engram_claims *c);

/* Take the claims table's lock around a claiming pass: while a load holds it, no commit of
 * another connection can release claims, so an episode is either still claimed or already
 * consolidated in any snapshot the load reads after locking. */
void engram_claims_lock(engram_claims *c);
void engram_claims_unlock(engram_claims *c);

/* With the lock held: claim id for token until `expires` unless another live claim (one that
 * has not expired at `now`) holds it. 1 = taken, 0 = held by another, ENGRAM_ENOMEM. */
int engram_claims_take_locked(engram_claims *c, int64_t id, uint64_t token, double now, double expires);

/* Serialise the commits of this process's connections to the file. SQLite lets one writer in at
 * a time and makes the others wait in its busy handler, which sleeps a millisecond or more per
 * retry — longer than a whole commit; a mutex hands the lock over as soon as it is free. */
int engram_claims_writer_enter(engram_claims *c, int timeout_ms);   /* 0, or ETIMEDOUT */
void engram_claims_writer_leave(engram_claims *c);

/* Whether every one of ids[n] is held by token. Returns the index of the first that is not,
 * or n; *owner gets that episode's holder (0: none). */
uint32_t engram_claims_check(engram_claims *c, const int64_t *ids, uint32_t n, uint64_t token, uint64_t *owner);

/* Give back every claim of token. */
void engram_claims_release(engram_claims *c, uint64_t token);

/* Claims that have not expired at now. */
int64_t engram_claims_live(engram_claims *c, double now);

#endif /* ENGRAM_CLAIMS_H */
