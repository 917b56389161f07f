/*
 * test_store.c — the SQLite store: schema and open errors, import (all or nothing), round trips
 * (embeddings bit-exact), claims, commits, transaction atomicity (errors and a real kill -9 in
 * the middle of a commit) and concurrent workers on one file.
 */
#include "test.h"
#include "engram.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 32

static char dir[256];

static const char *db_path(const char *name)
{
  static __thread char path[512];   /* workers open stores concurrently */
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

static engram_store *open_store(const char *name, uint32_t dim, int create)
{
  engram_store_config c = { .path = db_path(name), .dim = dim, .create = create };
  return engram_store_open(&c);
}

static void embedding(int64_t id, float *v)
{
  for (int k = 0; k < DIM; k++)
    v[k] = sinf((float)(id * 31 + k)) * 0.5f + (float)k * 1e-3f;
}

/* Import ids first..first+n-1 with created_at = 1000 + id. */
static int import(engram_store *s, int64_t first, int n)
{
  float v[DIM];
  char text[64];
  if (engram_store_import_begin(s) != 0)
    return -1;
  for (int i = 0; i < n; i++) {
    int64_t id = first + i;
    embedding(id, v);
    snprintf(text, sizeof text, "episode %lld", (long long)id);
    engram_episode e = { .id = id, .content = text, .embedding = v, .created_at = 1000.0 + (double)id,
                         .access_count = (int32_t)(id % 5), .strength = 0.5f };
    if (engram_store_import_add(s, &e) != 0) {
      engram_store_import_abort(s);
      return -1;
    }
  }
  return engram_store_import_commit(s);
}

static void check_row(const char *name, const char *query, int x, int y);

static engram_store_counts counts(engram_store *s)
{
  engram_store_counts c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_COUNTS_VERSION);
  CHECK_EQ(engram_store_count(s, &c), 0);
  return c;
}

static engram_arena *arena(size_t size)
{
  engram_arena_config c = { .size = size, .align = 16, .overflow = ENGRAM_OVERFLOW_ERROR };
  return engram_arena_create(&c);
}

TEST(a_new_store_records_its_dimension_and_reopens_with_it)
{
  engram_store *s = open_store("dim.db", DIM, 1);
  CHECK(s != NULL);
  CHECK_EQ(engram_store_dim(s), DIM);
  engram_store_close(s);
  s = open_store("dim.db", 0, 0);
  CHECK(s != NULL);
  CHECK_EQ(engram_store_dim(s), DIM);
  engram_store_close(s);
  CHECK(open_store("dim.db", 768, 0) == NULL);
  char want[600];
  snprintf(want, sizeof want, "store: '%s' holds 32-dimensional embeddings (768 requested)", db_path("dim.db"));
  CHECK_STR(engram_last_error(), want);
}

TEST(opening_what_is_not_an_engram_store_fails_with_the_file_name)
{
  FILE *f = fopen(db_path("junk.db"), "w");
  fputs("this is not a database, just text that is long enough to have a header......", f);
  fclose(f);
  CHECK(open_store("junk.db", DIM, 1) == NULL);
  char want[600];
  snprintf(want, sizeof want, "store: '%s' is not an engram store (file is not a database)", db_path("junk.db"));
  CHECK_STR(engram_last_error(), want);

  CHECK(open_store("missing.db", DIM, 0) == NULL);
  CHECK_CONTAINS(engram_last_error(), "store: cannot open");
  CHECK_CONTAINS(engram_last_error(), "missing.db");

  CHECK(open_store("nodim.db", 0, 1) == NULL);
  CHECK_STR(engram_last_error(), "store: a new store needs an embedding dimension (dim = 0 given)");

  sqlite3 *db;
  sqlite3_open(db_path("other.db"), &db);
  sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK(open_store("other.db", DIM, 1) == NULL);
  CHECK_CONTAINS(engram_last_error(), "is not an engram store (it has other tables and no engram schema)");

  engram_store_close(open_store("future.db", DIM, 1));
  sqlite3_open(db_path("future.db"), &db);
  sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK(open_store("future.db", DIM, 0) == NULL);
  CHECK_CONTAINS(engram_last_error(), "has schema version 9 (this engram reads versions 1 and 2)");
}

TEST(an_import_lands_whole_or_not_at_all)
{
  engram_store *s = open_store("import.db", DIM, 1);
  CHECK_EQ(import(s, 1, 50), 0);
  CHECK_EQ(counts(s).memories, 50);
  check_row("import.db", "SELECT count(*), sum(content = 'episode 17') FROM contents", 50, 1);
  /* a batch with a duplicate id changes nothing */
  float v[DIM];
  embedding(7, v);
  CHECK_EQ(engram_store_import_begin(s), 0);
  engram_episode ok = { .id = 100, .content = "new", .embedding = v, .created_at = 5, .strength = 1 };
  engram_episode dup = { .id = 7, .content = "dup", .embedding = v, .created_at = 5, .strength = 1 };
  CHECK_EQ(engram_store_import_add(s, &ok), 0);
  CHECK_EQ(engram_store_import_add(s, &dup), ENGRAM_EINVAL);
  char want[600];
  snprintf(want, sizeof want, "store: episode id 7 is already in '%s'", db_path("import.db"));
  CHECK_STR(engram_last_error(), want);
  CHECK_EQ(engram_store_import_commit(s), ENGRAM_ESTATE);
  CHECK_STR(engram_last_error(), "store: import rolled back (an episode was rejected)");
  CHECK_EQ(counts(s).memories, 50);
  /* invalid values are rejected too */
  CHECK_EQ(engram_store_import_begin(s), 0);
  engram_episode bad = { .id = 200, .embedding = v, .created_at = 5, .strength = 1.5f };
  CHECK_EQ(engram_store_import_add(s, &bad), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "store: episode 200 has strength 1.5 (expected 0 to 1)");
  v[3] = NAN;
  bad.strength = 1;
  CHECK_EQ(engram_store_import_add(s, &bad), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "store: episode 200 has a missing or non-finite embedding");
  engram_store_import_abort(s);
  CHECK_EQ(counts(s).memories, 50);
  engram_store_close(s);
}

TEST(load_claims_the_newest_episodes_and_copies_them_bit_exact)
{
  engram_store *s = open_store("load.db", DIM, 1);
  import(s, 1, 40);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 10, 0, 0, &b), 0);
  CHECK_EQ(b.n, 10);
  CHECK_EQ(b.total, 10);
  CHECK_EQ(b.dim, DIM);
  CHECK_EQ((uintptr_t)b.embeddings % 64, 0);
  float v[DIM];
  for (uint32_t i = 0; i < b.n; i++) {
    CHECK_EQ(b.ids[i], 40 - (int64_t)i);   /* newest first */
    embedding(b.ids[i], v);
    CHECK(memcmp(v, b.embeddings + (size_t)i * DIM, sizeof v) == 0);
    CHECK(b.created_at[i] == 1000.0 + (double)b.ids[i]);
    CHECK_EQ(b.access_count[i], b.ids[i] % 5);
    CHECK(b.strength[i] == 0.5f);
  }
  CHECK_EQ(counts(s).claims, 10);
  /* a second burst gets the next ten, never the claimed ones */
  engram_batch b2;
  CHECK_EQ(engram_store_load(s, a, 10, 0, 0, &b2), 0);
  CHECK_EQ(b2.ids[0], 30);
  CHECK(b2.claim != b.claim);
  /* released claims are loadable again */
  CHECK_EQ(engram_store_release(s, b.claim), 0);
  engram_batch b3;
  CHECK_EQ(engram_store_load(s, a, 5, 0, 0, &b3), 0);
  CHECK_EQ(b3.ids[0], 40);
  /* what a host does after a failed burst: every claim of this connection is given back */
  CHECK_EQ(counts(s).claims, 15);
  CHECK_EQ(engram_store_release_pending(s), 0);
  CHECK_EQ(counts(s).claims, 0);
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(claims_expire_after_their_lease)
{
  engram_store_config c = { .path = db_path("lease.db"), .dim = DIM, .create = 1, .lease_seconds = 1 };
  engram_store *s = engram_store_open(&c);
  import(s, 1, 5);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 5, 0, 1e9, &b), 0);
  CHECK_EQ(b.n, 5);
  /* a burst's clock does not move leases (this one says a year later): real time does */
  CHECK_EQ(engram_store_load(s, a, 5, 0, 1e9 + 365 * 86400.0, &b), 0);
  CHECK_EQ(b.n, 0);                                  /* all held */
  CHECK_EQ(counts(s).claims, 5);
  usleep(1200000);
  CHECK_EQ(counts(s).claims, 0);
  CHECK_EQ(engram_store_load(s, a, 5, 0, 1e9, &b), 0);
  CHECK_EQ(b.n, 5);                                  /* the lease ran out */
  engram_arena_destroy(a);
  engram_store_close(s);
}

static engram_store_changes changes_for(const engram_batch *b)
{
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  c.claim = b->claim;
  c.n_consolidated = b->n;
  c.consolidated_ids = b->ids;
  return c;
}

TEST(commit_writes_everything_and_releases_the_claims)
{
  engram_store *s = open_store("commit.db", DIM, 1);
  import(s, 1, 6);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 6, 0, 0, &b), 0);
  engram_store_changes c = changes_for(&b);
  float st[6], ac[6];
  for (int i = 0; i < 6; i++) {
    st[i] = 0.1f * (float)i;
    ac[i] = (float)i;
  }
  c.n_updates = 6;
  c.update_ids = b.ids;
  c.update_strength = st;
  c.update_activation = ac;
  int64_t src[] = { 1, 2, 3 }, dst[] = { 2, 3, 1 };
  float w[] = { 0.5f, 0.6f, 0.7f };
  c.n_edges = 3;
  c.edge_src = src;
  c.edge_dst = dst;
  c.edge_weight = w;
  float centroid[DIM] = { 1 };
  float pst[] = { 0.9f };
  uint32_t off[] = { 0, 3 };
  int64_t members[] = { 1, 2, 3 };
  c.n_patterns = 1;
  c.pattern_centroids = centroid;
  c.pattern_strength = pst;
  c.pattern_offsets = off;
  c.pattern_members = members;
  CHECK_EQ(engram_store_commit(s, &c), 0);
  engram_store_counts n = counts(s);
  CHECK_EQ(n.unconsolidated, 0);
  CHECK_EQ(n.edges, 3);
  CHECK_EQ(n.patterns, 1);
  CHECK_EQ(n.claims, 0);
  /* the same claim cannot commit twice */
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_ESTATE);
  CHECK_CONTAINS(engram_last_error(), "is not claimed by this burst (its claim expired or was released); nothing was written");
  CHECK_EQ(counts(s).patterns, 1);
  /* an edge upsert re-weights */
  w[0] = 0.9f;
  engram_store_changes e;
  ENGRAM_STRUCT_INIT(e, ENGRAM_STORE_CHANGES_VERSION);
  e.n_edges = 1;
  e.edge_src = src;
  e.edge_dst = dst;
  e.edge_weight = w;
  CHECK_EQ(engram_store_commit(s, &e), 0);
  CHECK_EQ(counts(s).edges, 3);
  engram_arena_destroy(a);
  engram_store_close(s);
}

static int edge_list_bytes(const char *name, int64_t id)
{
  sqlite3 *db;
  sqlite3_stmt *st;
  int bytes = -1;
  if (sqlite3_open(db_path(name), &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "SELECT length(edges) FROM memories WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
      bytes = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return bytes;
}

TEST(edge_lists_grow_in_place_until_their_free_slots_run_out)
{
  engram_store *s = open_store("slots.db", DIM, 1);
  import(s, 1, 30);
  CHECK_EQ(edge_list_bytes("slots.db", 1), 8 * 12);     /* imported with 8 free slots */
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  int64_t src[20], dst[20];
  float w[20];
  for (int i = 0; i < 20; i++)
    src[i] = 1, dst[i] = 30 - i, w[i] = 0.01f * (float)i;
  c.edge_src = src, c.edge_dst = dst, c.edge_weight = w;
  c.n_edges = 5;                                        /* 30..26 */
  CHECK_EQ(engram_store_commit(s, &c), 0);
  CHECK_EQ(edge_list_bytes("slots.db", 1), 8 * 12);     /* same size: written in place */
  CHECK_EQ(counts(s).edges, 5);
  c.n_edges = 8;                                        /* 30..23: 3 more, one re-weighted list */
  CHECK_EQ(engram_store_commit(s, &c), 0);
  CHECK_EQ(edge_list_bytes("slots.db", 1), 8 * 12);
  c.n_edges = 20;                                       /* 30..11: grows to 24 slots */
  CHECK_EQ(engram_store_commit(s, &c), 0);
  CHECK_EQ(edge_list_bytes("slots.db", 1), 24 * 12);
  CHECK_EQ(counts(s).edges, 20);
  /* loading 1 (as the newest unconsolidated after 2..30 are set aside) brings its 20 edges */
  sqlite3 *db;
  CHECK_EQ(sqlite3_open(db_path("slots.db"), &db), SQLITE_OK);
  CHECK_EQ(sqlite3_exec(db, "UPDATE memories SET consolidated = 1 WHERE id > 1", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 1, 29, 0, &b), 0);
  CHECK_EQ(b.ids[0], 1);
  CHECK_EQ(b.n_edges, 20);
  for (uint32_t e = 0; e < b.n_edges; e++) {
    int64_t to = b.ids[b.edge_dst[e]];
    CHECK_EQ(b.edge_src[e], 0);
    CHECK(to >= 11 && to <= 30 && b.edge_weight[e] == 0.01f * (float)(30 - to));
  }
  engram_store_release(s, b.claim);
  /* the id that marks a free slot is refused, as an episode and as a target */
  dst[0] = INT64_MIN;
  c.n_edges = 1;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "store: edge 1 -> -9223372036854775808 targets the reserved id");
  engram_arena_destroy(a);
  engram_store_close(s);
}

static int commit_pattern(engram_store *s, float x0, float x1, const int64_t *members, uint32_t n, float merge)
{
  float centroid[DIM] = { 0 };
  centroid[0] = x0;
  centroid[1] = x1;
  float strength = 0.5f;
  uint32_t off[2] = { 0, n };
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  c.n_patterns = 1;
  c.pattern_centroids = centroid;
  c.pattern_strength = &strength;
  c.pattern_offsets = off;
  c.pattern_members = members;
  c.pattern_merge = merge;
  return engram_store_commit(s, &c);
}

TEST(similar_patterns_merge_and_different_ones_do_not)
{
  engram_store *s = open_store("patterns.db", DIM, 1);
  int64_t m1[] = { 1, 2, 3 }, m2[] = { 3, 4, 5 }, m3[] = { 7, 8, 9 };
  CHECK_EQ(commit_pattern(s, 1, 0, m1, 3, 0.9f), 0);
  CHECK_EQ(commit_pattern(s, 1, 0.1f, m2, 3, 0.9f), 0);    /* cosine 0.995: merged */
  CHECK_EQ(counts(s).patterns, 1);
  CHECK_EQ(commit_pattern(s, 0, 1, m3, 3, 0.9f), 0);       /* orthogonal: a new pattern */
  CHECK_EQ(counts(s).patterns, 2);
  CHECK_EQ(commit_pattern(s, 1, 0.1f, m2, 3, 0), 0);       /* merging off: always inserted */
  CHECK_EQ(counts(s).patterns, 3);
  engram_store_summary sum;
  ENGRAM_STRUCT_INIT(sum, ENGRAM_STORE_SUMMARY_VERSION);
  CHECK_EQ(engram_store_summarize(s, &sum), 0);
  CHECK(fabs(sum.pattern_members_mean - (5 + 3 + 3) / 3.0) < 1e-9);   /* {1..5}, {7,8,9}, {3,4,5} */
  engram_store_close(s);
}

TEST(many_patterns_merge_into_the_nearest_stored_one_or_one_of_the_same_commit)
{
  engram_store *s = open_store("manypatterns.db", DIM, 1);
  /* 100 patterns at angles 0.9 degrees apart in the first plane (cos of neighbours 0.99988),
   * then one more on pattern 5's direction with a new member, 200 */
  enum { P = 100 };
  static float cen[(P + 2) * DIM];
  float strength[P + 2];
  uint32_t off[P + 2];
  int64_t members[P + 1];
  for (int p = 0; p <= P + 1; p++) {
    double t = (p < P ? p : p == P ? 5 : 37.2) * 0.9 * M_PI / 180;   /* the last between 37 and 38 */
    cen[p * DIM] = (float)cos(t);
    cen[p * DIM + 1] = (float)sin(t);
    strength[p] = 0.5f;
    if (p <= P) {
      off[p] = (uint32_t)p;
      members[p] = p < P ? p + 1 : 200;
    }
  }
  off[P + 1] = P + 1;
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  c.n_patterns = P + 1;
  c.pattern_centroids = cen;
  c.pattern_strength = strength;
  c.pattern_offsets = off;
  c.pattern_members = members;
  c.pattern_merge = 0.99995f;   /* above the neighbours' cosine: only the last merges (into 5) */
  CHECK_EQ(engram_store_commit(s, &c), 0);
  CHECK_EQ(counts(s).patterns, P);
  engram_store_summary sum;
  ENGRAM_STRUCT_INIT(sum, ENGRAM_STORE_SUMMARY_VERSION);
  CHECK_EQ(engram_store_summarize(s, &sum), 0);
  CHECK(fabs(sum.pattern_members_mean - 1.01) < 1e-12);   /* pattern 5: {6, 200} */
  /* one more (members {38}) 0.18 degrees from pattern 37 (members {38}): merged there, and 38
   * was a member already */
  c.n_patterns = 1;
  c.pattern_centroids = cen + (P + 1) * DIM;
  c.pattern_strength = strength + P + 1;
  uint32_t one[2] = { 0, 1 };
  c.pattern_offsets = one;
  int64_t m38 = 38;
  c.pattern_members = &m38;
  CHECK_EQ(engram_store_commit(s, &c), 0);
  CHECK_EQ(counts(s).patterns, P);
  CHECK_EQ(engram_store_summarize(s, &sum), 0);
  CHECK(fabs(sum.pattern_members_mean - 1.01) < 1e-12);
  engram_store_close(s);
}

TEST(a_connection_sees_patterns_another_connection_merged_since_its_last_commit)
{
  engram_store_config cfg = { .path = db_path("twopatterns.db"), .dim = DIM, .create = 1 };
  engram_store *s = engram_store_open(&cfg), *t = engram_store_open(&cfg);
  CHECK(s && t);
  int64_t m1[] = { 1, 2, 3 }, m2[] = { 3, 4 }, m3[] = { 5, 6 }, m4[] = { 7 };
  CHECK_EQ(commit_pattern(s, 1, 0, m1, 3, 0.9f), 0);        /* s: inserted, cached */
  CHECK_EQ(commit_pattern(t, 1, 0.05f, m2, 2, 0.9f), 0);    /* t: merged into it (size 4) */
  CHECK_EQ(commit_pattern(s, 1, 0.05f, m3, 2, 0.9f), 0);    /* s must see t's merge: size 6 */
  CHECK_EQ(commit_pattern(s, 0, 1, m4, 1, 0.9f), 0);        /* orthogonal: a second pattern */
  CHECK_EQ(counts(s).patterns, 2);
  check_row("twopatterns.db", "SELECT max(size), min(size) FROM patterns", 6, 1);
  /* inserted without merging, then merged into through the same connection's cache */
  CHECK_EQ(commit_pattern(s, 0, 1, m4, 1, 0), 0);           /* a third, not cached */
  CHECK_EQ(commit_pattern(s, 0, 1, m3, 2, 0.999f), 0);      /* merges into one of the (0, 1) */
  CHECK_EQ(counts(s).patterns, 3);
  check_row("twopatterns.db", "SELECT count(*), sum(size) FROM patterns", 3, 10);
  /* a new pattern that lists a member twice counts it once */
  int64_t twice[] = { 8, 8, 9 };
  CHECK_EQ(commit_pattern(s, 1, 1, twice, 3, 0), 0);
  check_row("twopatterns.db", "SELECT count(*), max(id = (SELECT max(id) FROM patterns) AND size = 2) FROM patterns",
            4, 1);
  engram_store_close(t);
  engram_store_close(s);
}

TEST(invalid_changes_are_refused_before_anything_is_written)
{
  engram_store *s = open_store("invalid.db", DIM, 1);
  import(s, 1, 3);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  engram_store_load(s, a, 3, 0, 0, &b);
  engram_store_changes c = changes_for(&b);
  float st[] = { 0.5f, 2.0f, 0.5f }, ac[] = { 0, 0, 0 };
  c.n_updates = 3;
  c.update_ids = b.ids;
  c.update_strength = st;
  c.update_activation = ac;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "store: memory 2 would get strength 2 (expected 0 to 1)");
  CHECK_EQ(counts(s).unconsolidated, 3);
  /* a consolidated id this burst never claimed aborts the whole commit */
  st[1] = 0.5f;
  int64_t ids[] = { 3, 2, 99 };
  c.n_consolidated = 3;
  c.consolidated_ids = ids;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_ESTATE);
  CHECK_EQ(counts(s).unconsolidated, 3);
  CHECK_EQ(counts(s).claims, 3);
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(load_brings_neighbours_recent_context_and_edges_as_row_indices)
{
  engram_store *s = open_store("graph.db", DIM, 1);
  import(s, 1, 20);
  engram_arena *a = arena(1 << 20);
  /* consolidate 1..15 with edges 16 -> 3, 17 -> 4, 5 -> 6 among them */
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 20, 0, 0, &b), 0);
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  c.claim = b.claim;
  int64_t old[15];
  for (int i = 0; i < 15; i++)
    old[i] = i + 1;
  c.n_consolidated = 15;
  c.consolidated_ids = old;
  int64_t src[] = { 16, 17, 5 }, dst[] = { 3, 4, 6 };
  float w[] = { 0.4f, 0.5f, 0.6f };
  c.n_edges = 3;
  c.edge_src = src;
  c.edge_dst = dst;
  c.edge_weight = w;
  CHECK_EQ(engram_store_commit(s, &c), 0);       /* 16..20 claims stay: release them */
  engram_store_release(s, b.claim);
  engram_arena_reset(a);

  CHECK_EQ(engram_store_load(s, a, 5, 4, 0, &b), 0);
  CHECK_EQ(b.n, 5);                              /* 20, 19, 18, 17, 16 */
  CHECK_EQ(b.total, 9);                          /* out-neighbours 3, 4, then recent 15, 14 */
  int64_t want[] = { 20, 19, 18, 17, 16 };
  for (int i = 0; i < 5; i++)
    CHECK_EQ(b.ids[i], want[i]);
  int seen3 = 0, seen4 = 0, seen15 = 0;
  for (uint32_t i = 5; i < b.total; i++) {
    seen3 += b.ids[i] == 3;
    seen4 += b.ids[i] == 4;
    seen15 += b.ids[i] == 15;
  }
  CHECK(seen3 && seen4 && seen15);
  CHECK_EQ(b.n_edges, 2);                        /* 5 -> 6 has no loaded end */
  for (uint32_t e = 0; e < b.n_edges; e++) {
    int64_t s_id = b.ids[b.edge_src[e]], d_id = b.ids[b.edge_dst[e]];
    CHECK((s_id == 16 && d_id == 3 && b.edge_weight[e] == 0.4f) || (s_id == 17 && d_id == 4 && b.edge_weight[e] == 0.5f));
  }
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(context_is_the_consolidated_memories_nearest_in_time_to_the_batch)
{
  engram_store *s = open_store("backfill.db", DIM, 1);
  import(s, 1, 40);                              /* created_at = 1000 + id */
  engram_arena *a = arena(1 << 20);
  /* a backfill: the newest 20 (21..40) are consolidated first */
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 20, 0, 0, &b), 0);
  engram_store_changes c = changes_for(&b);
  CHECK_EQ(engram_store_commit(s, &c), 0);
  engram_arena_reset(a);
  /* the next batch, 20..16, gets 21..24 as context (nearest after it), not 37..40 (newest) */
  CHECK_EQ(engram_store_load(s, a, 5, 4, 0, &b), 0);
  CHECK_EQ(b.ids[0], 20);
  CHECK_EQ(b.total, 9);
  for (uint32_t i = 5; i < b.total; i++)
    CHECK(b.ids[i] >= 21 && b.ids[i] <= 24);
  engram_store_release(s, b.claim);
  engram_arena_reset(a);
  /* consolidated on both sides (1..15 too): the nearest on either side, alternately */
  CHECK_EQ(engram_store_load(s, a, 20, 0, 0, &b), 0);   /* 20..1 */
  engram_store_changes d = changes_for(&b);
  int64_t old[15];
  for (int i = 0; i < 15; i++)
    old[i] = i + 1;
  d.n_consolidated = 15;
  d.consolidated_ids = old;
  CHECK_EQ(engram_store_commit(s, &d), 0);
  engram_store_release(s, b.claim);
  engram_arena_reset(a);
  CHECK_EQ(engram_store_load(s, a, 5, 4, 0, &b), 0);   /* 20..16 */
  int after = 0, before = 0;
  for (uint32_t i = 5; i < b.total; i++) {
    after += b.ids[i] == 21 || b.ids[i] == 22;
    before += b.ids[i] == 15 || b.ids[i] == 14;
  }
  CHECK_EQ(b.total, 9);
  CHECK_EQ(after, 2);                            /* 21, 22: 1 and 2 s after the batch's newest */
  CHECK_EQ(before, 2);                           /* 15, 14: 1 and 2 s before its oldest */
  engram_store_release(s, b.claim);
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(a_batch_that_does_not_fit_the_arena_is_an_error_and_releases_its_claims)
{
  engram_store *s = open_store("small.db", DIM, 1);
  import(s, 1, 100);
  engram_arena *a = arena(4096);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 100, 0, 0, &b), ENGRAM_EFULL);
  CHECK_CONTAINS(engram_last_error(), "store: the arena cannot hold the batch of 100 + 0 rows of 32 floats (arena: out of memory");
  CHECK_EQ(counts(s).claims, 0);
  CHECK_EQ(engram_arena_used(a), 0);
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(an_empty_store_loads_nothing_without_needing_arena_room)
{
  engram_store *s = open_store("empty.db", 768, 1);
  engram_arena *a = arena(4096);                /* far too small for 100 + 256 rows of 768 */
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 100, 256, 0, &b), 0);
  CHECK_EQ(b.n, 0);
  CHECK_EQ(engram_arena_used(a), 0);
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(claims_are_shared_by_the_connections_of_a_process_and_need_no_write_lock)
{
  engram_store_config c = { .path = db_path("busy.db"), .dim = DIM, .create = 1, .busy_timeout_ms = 1 };
  engram_store *s = engram_store_open(&c), *t = engram_store_open(&c);
  CHECK(s && t);
  import(s, 1, 20);
  engram_arena *a = arena(1 << 20);
  engram_batch b1, b2;
  CHECK_EQ(engram_store_load(s, a, 5, 0, 0, &b1), 0);
  CHECK_EQ(engram_store_load(t, a, 5, 0, 0, &b2), 0);   /* another connection skips s's claims */
  CHECK_EQ(b1.ids[0], 20);
  CHECK_EQ(b2.ids[0], 15);
  CHECK_EQ(counts(t).claims, 10);
  sqlite3 *other;
  CHECK_EQ(sqlite3_open(db_path("busy.db"), &other), SQLITE_OK);
  CHECK_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);   /* hold the write lock */
  CHECK_EQ(engram_store_release_pending(s), 0);            /* giving back needs no write */
  engram_batch b3;
  CHECK_EQ(engram_store_load(s, a, 5, 0, 0, &b3), 0);      /* nor does claiming */
  CHECK_EQ(b3.ids[0], 20);
  CHECK_EQ(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  CHECK_EQ(engram_store_release_pending(s), 0);
  CHECK_EQ(engram_store_release_pending(t), 0);
  CHECK_EQ(counts(s).claims, 0);
  engram_arena_destroy(a);
  engram_store_close(t);
  engram_store_close(s);
}

TEST(an_episode_another_process_consolidated_fails_the_commit_and_nothing_is_written)
{
  engram_store *s = open_store("another.db", DIM, 1);
  import(s, 1, 6);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 6, 0, 0, &b), 0);
  /* what a burst of another process (which does not see this one's claims) would leave */
  sqlite3 *other;
  CHECK_EQ(sqlite3_open(db_path("another.db"), &other), SQLITE_OK);
  CHECK_EQ(sqlite3_exec(other, "UPDATE memories SET consolidated = 1 WHERE id = 4", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  engram_store_changes c = changes_for(&b);
  int64_t src[1] = { 6 }, dst[1] = { 5 };
  float w[1] = { 0.5f };
  c.n_edges = 1, c.edge_src = src, c.edge_dst = dst, c.edge_weight = w;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_ESTATE);
  CHECK_STR(engram_last_error(), "store: episode 4 was consolidated by another burst; nothing was written");
  engram_store_counts n = counts(s);
  CHECK_EQ(n.unconsolidated, 5);
  CHECK_EQ(n.edges, 0);
  engram_store_release(s, b.claim);
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(a_forked_process_does_not_inherit_claims_and_the_later_commit_fails)
{
  engram_store *s = open_store("forked.db", DIM, 1);
  import(s, 1, 10);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 4, 0, 0, &b), 0);     /* 10..7, claimed in this process */
  pid_t pid = fork();
  if (pid == 0) {
    /* another process: it sees none of the parent's claims, takes 10..7 too and commits */
    engram_store *t = open_store("forked.db", 0, 0);
    engram_arena *ca = arena(1 << 20);
    engram_batch cb;
    int ok = t && ca && engram_store_load(t, ca, 4, 0, 0, &cb) == 0 && cb.n == 4 && cb.ids[0] == 10;
    engram_store_changes c = changes_for(&cb);
    ok = ok && engram_store_commit(t, &c) == 0;
    _exit(ok ? 0 : 1);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  engram_store_changes c = changes_for(&b);
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_ESTATE);
  CHECK_CONTAINS(engram_last_error(), "was consolidated by another burst; nothing was written");
  engram_store_release(s, b.claim);
  CHECK_EQ(counts(s).unconsolidated, 6);
  engram_arena_destroy(a);
  engram_store_close(s);
}

/* A store in the version 1 schema, as engram 0.1 wrote it: memories 1..3 (2-d), edges
 * 2->1 0.25, 1->2 0.5, 1->3 0.75, one pattern with members 1 and 2; then `extra` SQL. */
static int make_v1(const char *name, const char *extra)
{
  sqlite3 *db;
  if (sqlite3_open(db_path(name), &db) != SQLITE_OK)
    return -1;
  int rc = sqlite3_exec(db,
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE embeddings(id INTEGER PRIMARY KEY, vector BLOB NOT NULL);"
    "CREATE TABLE memories(id INTEGER PRIMARY KEY, created_at REAL NOT NULL, last_access REAL NOT NULL,"
    "  access_count INTEGER NOT NULL DEFAULT 0, strength REAL NOT NULL DEFAULT 1.0,"
    "  activation REAL NOT NULL DEFAULT 0.0, consolidated INTEGER NOT NULL DEFAULT 0,"
    "  content TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX memories_by_state ON memories(consolidated, created_at);"
    "CREATE TABLE edges(src INTEGER NOT NULL, dst INTEGER NOT NULL, weight REAL NOT NULL,"
    "  PRIMARY KEY(src, dst)) WITHOUT ROWID;"
    "CREATE TABLE patterns(id INTEGER PRIMARY KEY, centroid BLOB NOT NULL, strength REAL NOT NULL,"
    "  members BLOB NOT NULL, created_at REAL NOT NULL);"
    "CREATE TABLE claims(memory_id INTEGER PRIMARY KEY, token INTEGER NOT NULL, expires REAL NOT NULL);"
    "CREATE INDEX claims_by_token ON claims(token);"
    "INSERT INTO meta VALUES ('dim', 2);"
    "INSERT INTO embeddings VALUES (1, x'0000803f00000000'), (2, x'000000000000803f'), (3, x'0000803f0000803f');"
    "INSERT INTO memories(id, created_at, last_access, consolidated, content) VALUES (1, 1, 1, 1, 'first'), (2, 2, 2, 1, ''),"
    "  (3, 3, 3, 0, 'third');"
    "INSERT INTO edges VALUES (2, 1, 0.25), (1, 2, 0.5), (1, 3, 0.75);"
    "INSERT INTO patterns VALUES (1, x'0000803f00000000', 0.5, x'01000000000000000200000000000000', 1);"
    "PRAGMA user_version = 1;", NULL, NULL, NULL);
  if (rc == SQLITE_OK && extra)
    rc = sqlite3_exec(db, extra, NULL, NULL, NULL);
  sqlite3_close(db);
  return rc == SQLITE_OK ? 0 : -1;
}

/* The query's one row on the file holds the integers x and y. */
static void check_row(const char *name, const char *query, int x, int y)
{
  sqlite3 *db;
  sqlite3_stmt *st;
  CHECK_EQ(sqlite3_open(db_path(name), &db), SQLITE_OK);
  CHECK_EQ(sqlite3_prepare_v2(db, query, -1, &st, NULL), SQLITE_OK);
  CHECK_EQ(sqlite3_step(st), SQLITE_ROW);
  CHECK_EQ(sqlite3_column_int(st, 0), x);
  CHECK_EQ(sqlite3_column_int(st, 1), y);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void *open_v1_concurrently(void *arg)
{
  (void)arg;
  engram_store *s = open_store("v1race.db", 0, 0);
  engram_store_close(s);
  return s ? arg : NULL;   /* non-NULL: opened */
}

TEST(two_connections_opening_a_version_1_store_at_once_both_succeed)
{
  CHECK_EQ(make_v1("v1race.db", NULL), 0);
  /* hold the write lock so both see version 1 before either can upgrade */
  sqlite3 *db;
  CHECK_EQ(sqlite3_open(db_path("v1race.db"), &db), SQLITE_OK);
  CHECK_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  pthread_t t[2];
  static int tag;
  for (int i = 0; i < 2; i++)
    CHECK_EQ(pthread_create(&t[i], NULL, open_v1_concurrently, &tag), 0);
  usleep(200000);
  CHECK_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  for (int i = 0; i < 2; i++) {
    void *opened = NULL;
    pthread_join(t[i], &opened);
    CHECK(opened == &tag);
  }
  engram_store *s = open_store("v1race.db", 0, 0);
  CHECK(s != NULL);
  CHECK_EQ(counts(s).edges, 3);
  engram_store_close(s);
}

TEST(an_upgrade_that_fails_leaves_the_version_1_store_as_it_was)
{
  /* the last source's edge list cannot be written */
  CHECK_EQ(make_v1("v1fail.db", "CREATE TRIGGER no BEFORE UPDATE OF edges ON memories WHEN new.id = 2 "
                                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"), 0);
  CHECK(open_store("v1fail.db", 0, 0) == NULL);
  CHECK_CONTAINS(engram_last_error(), "upgrading the schema to version 2 failed");
  CHECK_CONTAINS(engram_last_error(), "injected failure");
  check_row("v1fail.db", "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM edges)", 1, 3);
}

TEST(a_store_edited_by_hand_fails_loads_and_commits_with_the_memory_named)
{
  engram_store *s = open_store("edited.db", DIM, 1);
  import(s, 1, 6);
  sqlite3 *db;
  CHECK_EQ(sqlite3_open(db_path("edited.db"), &db), SQLITE_OK);
  CHECK_EQ(sqlite3_exec(db, "DELETE FROM embeddings WHERE id = 5; UPDATE memories SET edges = x'00' WHERE id = 2",
                        NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 3, 0, 0, &b), ENGRAM_ESTORE);
  CHECK_CONTAINS(engram_last_error(), "store: episode 5 in '");
  CHECK_CONTAINS(engram_last_error(), "has no embedding (no row in the embeddings table)");
  CHECK_EQ(counts(s).claims, 0);                       /* given back */
  CHECK_EQ(engram_arena_used(a), 0);
  /* memory 2's edge list is 1 byte: loading it, or merging edges into it, names it */
  CHECK_EQ(engram_store_load(s, a, 1, 0, 0, &b), 0);   /* 6 */
  engram_store_release(s, b.claim);
  engram_store_changes c;
  ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
  int64_t src = 2, dst = 3;
  float w = 0.5f;
  c.n_edges = 1, c.edge_src = &src, c.edge_dst = &dst, c.edge_weight = &w;
  CHECK_EQ(engram_store_commit(s, &c), ENGRAM_ESTORE);
  CHECK_CONTAINS(engram_last_error(), "store: writing memory 2 failed in '");
  CHECK_CONTAINS(engram_last_error(), "a stored edge list is not a multiple of 12 bytes");
  engram_arena_destroy(a);
  engram_store_close(s);
}

TEST(a_version_1_store_is_upgraded_with_its_edges)
{
  CHECK_EQ(make_v1("v1.db", NULL), 0);
  engram_store *s = open_store("v1.db", 0, 0);
  CHECK(s != NULL);
  CHECK_EQ(engram_store_dim(s), 2);
  engram_store_counts n = counts(s);
  CHECK_EQ(n.memories, 3);
  CHECK_EQ(n.edges, 3);
  CHECK_EQ(n.patterns, 1);
  engram_store_summary summary;
  ENGRAM_STRUCT_INIT(summary, ENGRAM_STORE_SUMMARY_VERSION);
  CHECK_EQ(engram_store_summarize(s, &summary), 0);
  CHECK(summary.pattern_members_mean == 2);      /* members 1 and 2, now rows */
  /* the edges come back as the store's: load 3 with 1 and 2 as context */
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 1, 2, 0, &b), 0);
  CHECK_EQ(b.total, 3);
  CHECK_EQ(b.n_edges, 3);
  float sum = 0;
  for (uint32_t e = 0; e < b.n_edges; e++) {
    int64_t from = b.ids[b.edge_src[e]], to = b.ids[b.edge_dst[e]];
    float w = b.edge_weight[e];
    CHECK((from == 2 && to == 1 && w == 0.25f) || (from == 1 && to == 2 && w == 0.5f) ||
          (from == 1 && to == 3 && w == 0.75f));
    sum += w;
  }
  CHECK(sum == 1.5f);
  engram_store_release(s, b.claim);
  engram_arena_destroy(a);
  engram_store_close(s);
  check_row("v1.db", "SELECT (SELECT user_version FROM pragma_user_version), "
            "(SELECT count(*) FROM sqlite_master WHERE name IN ('edges', 'claims'))", 2, 0);
  /* the texts moved to contents */
  check_row("v1.db", "SELECT count(*), sum(content = 'first') + sum(content = 'third') FROM contents", 3, 2);
}

TEST(a_row_another_burst_wrote_since_the_load_keeps_that_bursts_values)
{
  engram_store *s = open_store("race.db", DIM, 1);
  import(s, 1, 4);
  engram_arena *a = arena(1 << 20);
  engram_batch b;
  CHECK_EQ(engram_store_load(s, a, 4, 0, 1000, &b), 0);
  /* another burst writes memory b.ids[0] first */
  engram_store_changes other;
  ENGRAM_STRUCT_INIT(other, ENGRAM_STORE_CHANGES_VERSION);
  float st0 = 0.9f, ac0 = 0.5f;
  other.now = 2000;
  other.n_updates = 1;
  other.update_ids = &b.ids[0];
  other.update_strength = &st0;
  other.update_activation = &ac0;
  CHECK_EQ(engram_store_commit(s, &other), 0);
  /* this burst's commit, conditional on what it loaded */
  engram_store_changes c = changes_for(&b);
  float st[4] = { 0.1f, 0.1f, 0.1f, 0.1f }, ac[4] = { 0, 0, 0, 0 };
  c.now = 3000;
  c.n_updates = 4;
  c.update_ids = b.ids;
  c.update_strength = st;
  c.update_activation = ac;
  c.update_last_access = b.last_access;
  CHECK_EQ(engram_store_commit(s, &c), 0);
  sqlite3 *db;
  sqlite3_open(db_path("race.db"), &db);
  sqlite3_stmt *q;
  sqlite3_prepare_v2(db, "SELECT id, strength FROM memories ORDER BY id", -1, &q, NULL);
  int kept = 0, written = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    double v = sqlite3_column_double(q, 1);
    if (sqlite3_column_int64(q, 0) == b.ids[0])
      kept += fabs(v - 0.9) < 1e-6;
    else
      written += fabs(v - 0.1) < 1e-6;
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  CHECK_EQ(kept, 1);
  CHECK_EQ(written, 3);
  engram_arena_destroy(a);
  engram_store_close(s);
}

/* ---- kill -9 in the middle of a commit ---- */

static void commit_forever(void *arg)
{
  (void)arg;
  engram_store *s = open_store("kill.db", 0, 0);
  enum { E = 20000 };
  static int64_t src[E], dst[E];
  static float w[E];
  for (int round = 1;; round++) {
    for (int i = 0; i < E; i++) {
      src[i] = i % 100 + 1;
      dst[i] = (int64_t)i + 1000;
      w[i] = (float)round;                  /* every edge of one commit has the round's weight */
    }
    engram_store_changes c;
    ENGRAM_STRUCT_INIT(c, ENGRAM_STORE_CHANGES_VERSION);
    c.n_edges = E;
    c.edge_src = src;
    c.edge_dst = dst;
    c.edge_weight = w;
    engram_store_commit(s, &c);
    if (round == 1) {
      printf("first commit done\n");
      fflush(stdout);
    }
  }
}

TEST(a_process_killed_mid_commit_leaves_the_previous_burst_intact)
{
  engram_store *s = open_store("kill.db", DIM, 1);
  import(s, 1, 100);
  engram_store_close(s);
  uint64_t seed = test_seed("kill_mid_commit");
  for (int trial = 0; trial < 5; trial++) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      commit_forever(NULL);
      _exit(0);
    }
    close(fds[1]);
    char buf[64];
    ssize_t r = read(fds[0], buf, sizeof buf);   /* wait for one whole commit */
    CHECK(r > 0);
    usleep((useconds_t)(test_rand(&seed) % 200000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* every edge carries the weight of one and the same commit, and the file is sound */
    sqlite3 *db;
    CHECK_EQ(sqlite3_open(db_path("kill.db"), &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT edges FROM memories WHERE edges IS NOT NULL", -1, &st, NULL);
    int edges = 0, mixed = 0;
    float first = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char *p = sqlite3_column_blob(st, 0);
      for (int i = 0; i + 12 <= sqlite3_column_bytes(st, 0); i += 12) {
        int64_t to;
        float w;
        memcpy(&to, p + i, sizeof to);     /* 12-byte entries: int64 target, float32 weight */
        memcpy(&w, p + i + 8, sizeof w);
        if (to == INT64_MIN)
          continue;                        /* a free slot */
        edges++;
        if (first < 0)
          first = w;
        mixed += w != first;
      }
    }
    sqlite3_finalize(st);
    CHECK_EQ(edges, 20000);
    CHECK_EQ(mixed, 0);
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    CHECK_EQ(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
}

/* ---- two workers on one store ---- */

#define CONC_EPISODES 600
static int times_consolidated[CONC_EPISODES + 1];

static void *consolidate_worker(void *arg)
{
  int *failures = arg;
  engram_store *s = open_store("conc.db", 0, 0);
  engram_arena *a = arena(1 << 20);
  if (!s || !a) {
    (*failures)++;
    return NULL;
  }
  for (;;) {
    engram_batch b;
    if (engram_store_load(s, a, 25, 8, 0, &b) != 0) {
      (*failures)++;
      break;
    }
    if (b.n == 0)
      break;
    engram_store_changes c = changes_for(&b);
    if (engram_store_commit(s, &c) != 0) {
      (*failures)++;
      break;
    }
    for (uint32_t i = 0; i < b.n; i++)
      __atomic_add_fetch(&times_consolidated[b.ids[i]], 1, __ATOMIC_RELAXED);
    engram_arena_reset(a);
  }
  engram_arena_destroy(a);
  engram_store_close(s);
  return NULL;
}

TEST(two_workers_on_one_store_consolidate_every_episode_exactly_once)
{
  engram_store *s = open_store("conc.db", DIM, 1);
  import(s, 1, CONC_EPISODES);
  pthread_t t[2];
  int failures[2] = { 0, 0 };
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, consolidate_worker, &failures[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  CHECK_EQ(failures[0] + failures[1], 0);
  int wrong = 0;
  for (int id = 1; id <= CONC_EPISODES; id++)
    wrong += times_consolidated[id] != 1;
  CHECK_EQ(wrong, 0);
  engram_store_counts n = counts(s);
  CHECK_EQ(n.unconsolidated, 0);
  CHECK_EQ(n.claims, 0);
  engram_store_close(s);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/engram-store-test-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(a_new_store_records_its_dimension_and_reopens_with_it);
  RUN(opening_what_is_not_an_engram_store_fails_with_the_file_name);
  RUN(an_import_lands_whole_or_not_at_all);
  RUN(load_claims_the_newest_episodes_and_copies_them_bit_exact);
  RUN(claims_expire_after_their_lease);
  RUN(commit_writes_everything_and_releases_the_claims);
  RUN(similar_patterns_merge_and_different_ones_do_not);
  RUN(many_patterns_merge_into_the_nearest_stored_one_or_one_of_the_same_commit);
  RUN(a_connection_sees_patterns_another_connection_merged_since_its_last_commit);
  RUN(invalid_changes_are_refused_before_anything_is_written);
  RUN(load_brings_neighbours_recent_context_and_edges_as_row_indices);
  RUN(context_is_the_consolidated_memories_nearest_in_time_to_the_batch);
  RUN(edge_lists_grow_in_place_until_their_free_slots_run_out);
  RUN(a_batch_that_does_not_fit_the_arena_is_an_error_and_releases_its_claims);
  RUN(an_empty_store_loads_nothing_without_needing_arena_room);
  RUN(claims_are_shared_by_the_connections_of_a_process_and_need_no_write_lock);
  RUN(an_episode_another_process_consolidated_fails_the_commit_and_nothing_is_written);
  RUN(a_forked_process_does_not_inherit_claims_and_the_later_commit_fails);
  RUN(a_version_1_store_is_upgraded_with_its_edges);
  RUN(two_connections_opening_a_version_1_store_at_once_both_succeed);
  RUN(an_upgrade_that_fails_leaves_the_version_1_store_as_it_was);
  RUN(a_store_edited_by_hand_fails_loads_and_commits_with_the_memory_named);
  RUN(a_row_another_burst_wrote_since_the_load_keeps_that_bursts_values);
  RUN(a_process_killed_mid_commit_leaves_the_previous_burst_intact);
  RUN(two_workers_on_one_store_consolidate_every_episode_exactly_once);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    printf("# could not remove %s\n", dir);
  return test_done();
}
