-- engram.cdef: the C declarations of libengram for LuaJIT's FFI; the only ffi.cdef call site.
--   require("engram.cdef")   -- once, before ffi.C / the library namespace is used
-- Each section mirrors one section of runtime/engram.h and must be kept in step with it.
local ffi = require("ffi")

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

-- ---- pools ----

-- ---- kernels ----

-- ---- runtime ----

-- ---- store ----

return true
