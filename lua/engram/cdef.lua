-- engram.cdef: the C declarations of libengram for LuaJIT's FFI; the only ffi.cdef call site.
--   require("engram.cdef")   -- once, before ffi.C / the library namespace is used
-- Each section mirrors one section of runtime/engram.h and must be kept in step with it.
local ffi = require("ffi")

-- Declarations belong to the Lua state, not to this module: when a module loader runs this
-- file again (a test runner that unloads modules between files), declare nothing twice.
local registry = debug.getregistry()
if registry["engram.cdef"] then
  return true
end

ffi.cdef[[
/* ---- version and errors ---- */
int engram_version(void);
const char *engram_strerror(int code);
const char *engram_last_error(void);

/* ---- arena ---- */
typedef enum { ENGRAM_OVERFLOW_ERROR = 0, ENGRAM_OVERFLOW_PANIC = 1, ENGRAM_OVERFLOW_FALLBACK = 2 } engram_overflow;
typedef enum { ENGRAM_PAGES_4K = 0, ENGRAM_PAGES_THP = 1, ENGRAM_PAGES_HUGETLB = 2 } engram_page_kind;
typedef enum { ENGRAM_HUGE_OFF = 0, ENGRAM_HUGE_AUTO = 1 } engram_huge_pages;

typedef struct engram_arena_config {
  size_t size;
  size_t align;
  engram_overflow overflow;
  engram_huge_pages huge_pages;
  int prefault;
} engram_arena_config;

typedef struct engram_arena {
  uintptr_t top;
  uintptr_t limit;
  uintptr_t base;
  uint64_t epoch;
  size_t align;
  void *chunk;
  struct engram_arena_slow *slow_;
} engram_arena;

typedef struct engram_mark {
  uintptr_t top;
  void *chunk;
  uint64_t epoch;
} engram_mark;

typedef struct engram_arena_info {
  uint32_t struct_size;
  uint32_t struct_version;
  uint64_t capacity;
  uint64_t used;
  uint64_t high_water;
  uint64_t resets;
  uint64_t overflows;
  uint64_t fallback_bytes;
  uint64_t fallback_chunks;
  uint64_t epoch;
  int32_t page_kind;
  int32_t overflow_strategy;
} engram_arena_info;

int engram_config_arena_default(engram_arena_config *out);
int engram_parse_size(const char *text, size_t *out);
engram_arena *engram_arena_create(const engram_arena_config *config);
void engram_arena_destroy(engram_arena *a);
void engram_arena_adopt(engram_arena *a);
engram_arena *engram_arena_thread(void);
engram_arena *engram_arena_thread_peek(void);
void *engram_arena_alloc_slow(engram_arena *a, size_t n, size_t align);
void *engram_arena_size_overflow_slow(engram_arena *a, size_t count, size_t size);
void engram_arena_reset(engram_arena *a);
int engram_arena_rewind(engram_arena *a, engram_mark m);
size_t engram_arena_used(const engram_arena *a);
size_t engram_arena_capacity(const engram_arena *a);
int engram_arena_query(engram_arena *a, engram_arena_info *out);
int engram_configure_arena(uint32_t pool_mb, uint8_t strategy);
void engram_arena_stats(size_t *resets, size_t *overflows, size_t *max_high_water);
void engram_reset_arenas(void);
int engram_arena_scope_enter(engram_arena *a, engram_mark *out);
int engram_arena_scope_leave(engram_arena *a, engram_mark m);
int engram_arena_epoch_live(const engram_arena *a, uint64_t epoch);
int engram_arena_poisoning(void);

/* Lua views of arena memory (lua/engram/arena.lua): a pointer, a length in elements and the
 * epoch of the arena scope they were made in. Not part of the C API. */
typedef struct engram_view_f32 { float *ptr; int64_t len; uint64_t epoch; engram_arena *arena; } engram_view_f32;
typedef struct engram_view_f64 { double *ptr; int64_t len; uint64_t epoch; engram_arena *arena; } engram_view_f64;
typedef struct engram_view_i32 { int32_t *ptr; int64_t len; uint64_t epoch; engram_arena *arena; } engram_view_i32;
typedef struct engram_view_u8 { uint8_t *ptr; int64_t len; uint64_t epoch; engram_arena *arena; } engram_view_u8;
typedef struct engram_view_i64 { int64_t *ptr; int64_t len; uint64_t epoch; engram_arena *arena; } engram_view_i64;
typedef struct engram_matrix_f32 {
  float *ptr; int64_t rows; int64_t cols; uint64_t epoch; engram_arena *arena;
} engram_matrix_f32;

/* ---- process-wide stats ---- */
typedef struct engram_stats {
  uint32_t struct_size;
  uint32_t struct_version;
  uint64_t arenas_live;
  uint64_t arenas_retired;
  uint64_t capacity;
  uint64_t high_water_max;
  uint64_t high_water_sum;
  uint64_t resets;
  uint64_t overflows;
  uint64_t fallback_bytes;
  uint64_t fallback_chunks;
  uint64_t pages_4k;
  uint64_t pages_thp;
  uint64_t pages_hugetlb;
} engram_stats;
int engram_stats_snapshot(engram_stats *out);
]]

-- ---- libc (what the Lua side needs of it) ----
ffi.cdef[[
typedef struct engram_timespec { long tv_sec; long tv_nsec; } engram_timespec;
int clock_gettime(int clk, engram_timespec *ts);
]]

-- ---- pools ----
ffi.cdef[[
typedef struct engram_pool_config {
  const char *name;
  size_t object_size;
  size_t align;
  size_t initial_objects;
  double growth;
  size_t max_bytes;
  unsigned flags;
} engram_pool_config;

typedef struct engram_pool {
  void *free;
  uint64_t acquisitions;
  uint64_t releases;
  uint32_t inline_ok;
  uint32_t flags;
  size_t object_size;
  struct engram_pool_slow *slow_;
} engram_pool;

typedef struct engram_pool_info {
  uint32_t struct_size;
  uint32_t struct_version;
  char name[64];
  uint32_t flags;
  uint32_t vector_dim;
  uint64_t object_size;
  uint64_t stride;
  uint64_t align;
  uint64_t capacity;
  uint64_t in_use;
  uint64_t peak;
  uint64_t acquisitions;
  uint64_t releases;
  uint64_t reuses;
  uint64_t failures;
  double reuse_rate;
  uint64_t bytes_reserved;
  uint64_t max_bytes;
  uint64_t slabs;
} engram_pool_info;

engram_pool *engram_pool_create(const engram_pool_config *config);
engram_pool *engram_pool_create_vectors(const char *name, size_t dim, size_t max_bytes, unsigned flags);
void engram_pool_destroy(engram_pool *p);
void engram_pool_adopt(engram_pool *p);
void *engram_pool_acquire_slow(engram_pool *p);
void engram_pool_release_slow(engram_pool *p, void *object);
int engram_pool_query(engram_pool *p, engram_pool_info *out);

typedef struct engram_arena_cache engram_arena_cache;
typedef struct engram_arena_cache_config {
  const char *name;
  unsigned keep_per_class;
  size_t align;
  engram_overflow overflow;
  engram_huge_pages huge_pages;
  int prefault;
} engram_arena_cache_config;
typedef struct engram_arena_cache_info {
  uint32_t struct_size;
  uint32_t struct_version;
  char name[64];
  uint32_t keep_per_class;
  uint32_t reserved_;
  uint64_t acquisitions;
  uint64_t reuses;
  uint64_t created;
  uint64_t destroyed;
  uint64_t out;
  uint64_t kept;
  uint64_t kept_bytes;
  uint64_t kept_per_class[15];
} engram_arena_cache_info;
engram_arena_cache *engram_arena_cache_create(const engram_arena_cache_config *config);
void engram_arena_cache_destroy(engram_arena_cache *c);
engram_arena *engram_arena_cache_acquire(engram_arena_cache *c, size_t min_bytes);
int engram_arena_cache_release(engram_arena_cache *c, engram_arena *a);
int engram_arena_cache_query(engram_arena_cache *c, engram_arena_cache_info *out);

char *engram_stats_json(void);
void engram_free(void *p);
]]

-- ---- kernels ----
ffi.cdef[[
typedef enum { ENGRAM_ISA_SCALAR = 0, ENGRAM_ISA_AVX2 = 1, ENGRAM_ISA_AVX512 = 2, ENGRAM_ISA_AUTO = 3 } engram_isa;
int engram_kernel_isa(void);
const char *engram_kernel_isa_name(int isa);
int engram_kernel_isa_supported(int isa);
int engram_kernel_set_isa(int isa);

int engram_sim_norms(engram_arena *a, const float *rows, size_t n, size_t d, float *inv);
int engram_sim_cosine(engram_arena *a, const float *query, const float *rows, size_t n, size_t d, float *scores);
int engram_sim_cosine_normed(engram_arena *a, const float *query, const float *rows, const float *inv,
                             size_t n, size_t d, float *scores);
int engram_sim_matrix(engram_arena *a, const float *rows, const float *inv, size_t n, size_t d, float *out);
int engram_sim_cross(engram_arena *a, const float *arows, const float *inv_a, size_t na,
                     const float *brows, const float *inv_b, size_t nb, size_t d, float *out);
typedef struct engram_sim_pair { uint32_t i, j; float score; } engram_sim_pair;
int engram_sim_pairs(engram_arena *a, const float *rows, const float *inv, size_t n, size_t d,
                     float threshold, engram_sim_pair *out, size_t cap, size_t *count);
int engram_sim_pairs_prefix(engram_arena *a, const float *rows, const float *inv, size_t n, size_t total,
                            size_t d, float threshold, engram_sim_pair *out, size_t cap, size_t *count);
int engram_sim_topk(engram_arena *a, const float *rows, const float *inv, size_t n, size_t d,
                    size_t k, uint32_t *idx, float *score);
int engram_sim_centroid(const float *rows, const float *inv, size_t d, const uint32_t *members, size_t m,
                        float *out, float *norm);

typedef struct engram_csr {
  size_t n;
  size_t nedges;
  const uint32_t *offsets;
  const uint32_t *targets;
  const float *weights;
} engram_csr;
int engram_csr_validate(const engram_csr *g);
int engram_spread_iterate(engram_arena *a, const engram_csr *g, float *act, unsigned iterations);
typedef struct engram_spread_params { unsigned max_depth; float rate; float threshold; } engram_spread_params;
void engram_spread_params_default(engram_spread_params *p);
int engram_spread_bounded(engram_arena *a, const engram_csr *g, const uint32_t *seeds,
                          const float *seed_act, size_t nseeds, const engram_spread_params *params,
                          float *act, uint32_t *touched, size_t cap, size_t *ntouched);

typedef enum {
  ENGRAM_DECAY_HALF_LIFE = 0, ENGRAM_DECAY_TIME_CONSTANT = 1, ENGRAM_DECAY_POWER = 2,
  ENGRAM_DECAY_TWO_COMPONENT = 3
} engram_decay_model;
typedef struct engram_decay_params {
  engram_decay_model model;
  double half_life;
  double tau;
  double beta;
  double unit;
  uint32_t k;
  float floor;
} engram_decay_params;
int engram_decay_params_default(engram_decay_model model, engram_decay_params *p);
int engram_decay_apply(engram_arena *a, const engram_decay_params *p, float *strength,
                       const float *age, const uint32_t *access, size_t n);
]]

-- ---- runtime ----
ffi.cdef[[
typedef struct engram_runtime engram_runtime;
typedef struct engram_burst engram_burst;
typedef struct engram_runtime_config {
  uint32_t struct_size; uint32_t struct_version; uint32_t workers; uint32_t queue_capacity;
  size_t arena_size; engram_overflow overflow; uint32_t timeout_ms; size_t lua_heap_limit;
  uint32_t script_cache; const char *module_path; const char *store_path;
} engram_runtime_config;
int engram_runtime_config_default(engram_runtime_config *out);
engram_runtime *engram_runtime_create(const engram_runtime_config *config);
int engram_runtime_load_file(engram_runtime *rt, const char *path);
int engram_runtime_load_string(engram_runtime *rt, const char *name, const char *text, size_t len);
typedef struct engram_param { const char *key; const char *text; double number; } engram_param;
int engram_runtime_submit(engram_runtime *rt, int script, const engram_param *params, size_t nparams,
                          engram_burst **out);
int engram_burst_wait(engram_burst *b, int64_t timeout_ms);
int engram_burst_done(const engram_burst *b);
int engram_burst_status(const engram_burst *b);
const char *engram_burst_message(const engram_burst *b);
const char *engram_burst_result(const engram_burst *b);
uint64_t engram_burst_id(const engram_burst *b);
int engram_burst_worker(const engram_burst *b);
uint64_t engram_burst_run_ns(const engram_burst *b);
void engram_burst_release(engram_burst *b);
typedef enum { ENGRAM_SHUTDOWN_DRAIN = 0, ENGRAM_SHUTDOWN_CANCEL = 1 } engram_shutdown;
void engram_runtime_shutdown(engram_runtime *rt, engram_shutdown how);
void engram_runtime_destroy(engram_runtime *rt);
typedef struct engram_worker_stats {
  uint32_t struct_size; uint32_t struct_version;
  uint64_t bursts, errors, timeouts, heap_limit_hits, states_created, states_abandoned;
  uint64_t cache_hits, cache_misses, cache_evictions;
  uint64_t arena_capacity, arena_high_water;
  uint64_t lua_heap_used, lua_heap_peak, lua_heap_limit;
  uint64_t latency_p50_ns, latency_p99_ns, latency_max_ns;
} engram_worker_stats;
typedef struct engram_runtime_stats {
  uint32_t struct_size; uint32_t struct_version; uint32_t workers; uint32_t scripts;
  uint64_t submitted, rejected, completed, cancelled, queued;
  uint64_t latency_p50_ns, latency_p99_ns, latency_max_ns;
} engram_runtime_stats;
int engram_runtime_stats_get(engram_runtime *rt, engram_runtime_stats *out);
int engram_runtime_worker_stats(engram_runtime *rt, uint32_t worker, engram_worker_stats *out);
char *engram_runtime_stats_json(engram_runtime *rt);
]]

-- ---- store ----
ffi.cdef[[
typedef struct engram_store engram_store;
typedef struct engram_store_config {
  const char *path; uint32_t dim; int create; int busy_timeout_ms; double lease_seconds;
  int manual_checkpoint;
} engram_store_config;
engram_store *engram_store_open(const engram_store_config *config);
void engram_store_close(engram_store *s);
uint32_t engram_store_dim(const engram_store *s);
typedef struct engram_episode {
  int64_t id; const char *content; const float *embedding; double created_at; double last_access;
  int32_t access_count; float strength;
} engram_episode;
int engram_store_import_begin(engram_store *s);
int engram_store_import_add(engram_store *s, const engram_episode *e);
int engram_store_import_commit(engram_store *s);
void engram_store_import_abort(engram_store *s);
typedef struct engram_store_counts {
  uint32_t struct_size; uint32_t struct_version;
  int64_t memories; int64_t unconsolidated; int64_t edges; int64_t patterns; int64_t claims;
} engram_store_counts;
int engram_store_count(engram_store *s, engram_store_counts *out);
typedef struct engram_batch {
  uint64_t claim; uint32_t dim; uint32_t n; uint32_t total;
  int64_t *ids; float *embeddings; double *created_at; double *last_access; int32_t *access_count;
  float *strength; float *activation;
  uint32_t n_edges; int32_t *edge_src; int32_t *edge_dst; float *edge_weight;
} engram_batch;
int engram_store_load(engram_store *s, engram_arena *a, uint32_t batch, uint32_t context, double now,
                      engram_batch *out);
typedef struct engram_store_changes {
  uint32_t struct_size; uint32_t struct_version; uint64_t claim; double now;
  uint32_t n_updates; const int64_t *update_ids; const float *update_strength; const float *update_activation;
  const double *update_last_access;
  uint32_t n_consolidated; const int64_t *consolidated_ids;
  uint32_t n_edges; const int64_t *edge_src; const int64_t *edge_dst; const float *edge_weight;
  uint32_t n_patterns; const float *pattern_centroids; const float *pattern_strength;
  const uint32_t *pattern_offsets; const int64_t *pattern_members; float pattern_merge;
} engram_store_changes;
int engram_store_commit(engram_store *s, const engram_store_changes *c);
int engram_store_release(engram_store *s, uint64_t claim);
int engram_store_release_pending(engram_store *s);
int engram_store_checkpoint(engram_store *s, int *wal_pages);
int engram_store_meta_set(engram_store *s, const char *key, const char *value);
int engram_store_meta_get(engram_store *s, const char *key, char *buf, size_t cap);
typedef struct engram_store_summary {
  uint32_t struct_size; uint32_t struct_version; int64_t memories;
  double strength_mean; double strength_min; double strength_p10; double strength_p50; double strength_p90;
  double strength_max; double activation_mean; double edge_weight_mean; double pattern_members_mean;
} engram_store_summary;
int engram_store_summarize(engram_store *s, engram_store_summary *out);
]]

registry["engram.cdef"] = true
return true
