-- engram.pool: fixed-size object pools, 64-byte aligned vector pools, scoped-arena caches and
-- the JSON stats report, from Lua.
--
--   local pool = require("engram.pool")
--   local edges = pool.new{ name = "edges", size = 24, align = 8, max_bytes = "1MiB",
--                           ctype = "struct { int32_t src, dst; float w; } *" }
--   local e = edges:acquire()          -- nil, err at the memory cap
--   e.src = 1 ... edges:release(e)
--   local vecs = pool.vectors{ name = "embeddings", dim = 768 }   -- acquire gives float *
--   print(pool.stats_json())           -- the process-wide report (also engram.pool.stats_json)
--
-- Lifetimes. A pool lives until :destroy() or until the pool object is collected; the objects
-- it handed out are valid only while it lives and must not be kept beyond it. A thread-local
-- pool (the default) belongs to the thread running this Lua state; `shared = true` makes one
-- any thread may use. Arena caches likewise live until :destroy() or collection; the arenas they
-- hand out are `engram_arena *` (with the engram.arena methods once that module is loaded) and go
-- back with cache:release(a). Misuse (bad arguments) raises; a full pool returns nil, err.
local ffi = require("ffi")
local bit = require("bit")
local C = require("engram.lib")

local M = {}

local SHARED, ZERO = 1, 2
local POOL_INFO_VERSION, CACHE_INFO_VERSION, CACHE_CLASSES = 1, 1, 15
local MIN_CLASS = 64 * 1024

local voidpp = ffi.typeof("void **")
local pool_config_t = ffi.typeof("engram_pool_config")
local pool_info_t = ffi.typeof("engram_pool_info")
local cache_config_t = ffi.typeof("engram_arena_cache_config")
local cache_info_t = ffi.typeof("engram_arena_cache_info")
local size_out_t = ffi.typeof("size_t[1]")
local ffi_string, ffi_cast, ffi_gc, tonumber = ffi.string, ffi.cast, ffi.gc, tonumber

local function last_error()
  return ffi_string(C.engram_last_error())
end

-- A byte count: a non-negative integer or a size string ("64KiB", "8MiB").
local function bytes(v, what)
  if v == nil then
    return 0
  end
  if type(v) == "number" then
    if v < 0 or v ~= math.floor(v) then
      error(string.format("pool: %s must be a whole number of bytes (got %s)", what, tostring(v)), 3)
    end
    return v
  end
  if type(v) == "string" then
    local out = size_out_t()
    if C.engram_parse_size(v, out) ~= 0 then
      error(string.format("pool: bad %s '%s' (%s)", what, v, last_error()), 3)
    end
    return tonumber(out[0])
  end
  error(string.format("pool: %s must be a number or a size string (got %s)", what, type(v)), 3)
end

local function check_opts(opts, fname)
  if type(opts) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table expected, got %s)", fname, type(opts)), 3)
  end
end

-- ---- pools ----------------------------------------------------------------------------

local Pool = {}
Pool.__index = Pool

local function wrap(p, ct, vector)
  -- The finalizer destroys the pool with the collected pointer: the wrapper table holds the
  -- only reference, so objects handed out must not outlive the wrapper.
  return setmetatable({ ptr = ffi_gc(p, C.engram_pool_destroy), ct = ct, vector = vector }, Pool)
end

--- pool.new{ size = n, [name], [align], [initial], [growth], [max_bytes], [shared], [zero], [ctype] }
-- A fixed-size object pool. size and align in bytes (align a power of two up to 4096, default
-- 16); growth the factor each new slab grows the capacity by (default 2); max_bytes the memory
-- cap (number or size string; default none); ctype the pointer type acquire returns
-- (default void *).
function M.new(opts)
  check_opts(opts, "new")
  if type(opts.size) ~= "number" then
    error("pool: size (bytes per object) is required", 2)
  end
  local cfg = pool_config_t()
  cfg.name = opts.name
  cfg.object_size = opts.size
  cfg.align = opts.align or 0
  cfg.initial_objects = opts.initial or 0
  cfg.growth = opts.growth or 0
  cfg.max_bytes = bytes(opts.max_bytes, "max_bytes")
  cfg.flags = (opts.shared and SHARED or 0) + (opts.zero and ZERO or 0)
  local p = C.engram_pool_create(cfg)
  if p == nil then
    error(last_error(), 2)
  end
  local ct = opts.ctype and ffi.typeof(opts.ctype) or nil
  return wrap(p, ct, false)
end

--- pool.vectors{ dim = n, [name], [max_bytes], [shared], [zero] }
-- A pool of float[dim] vectors, every slot 64-byte aligned; acquire returns float *.
function M.vectors(opts)
  check_opts(opts, "vectors")
  if type(opts.dim) ~= "number" then
    error("pool: dim (floats per vector) is required", 2)
  end
  local flags = (opts.shared and SHARED or 0) + (opts.zero and ZERO or 0)
  local p = C.engram_pool_create_vectors(opts.name, opts.dim, bytes(opts.max_bytes, "max_bytes"), flags)
  if p == nil then
    error(last_error(), 2)
  end
  return wrap(p, ffi.typeof("float *"), true)
end

local function live(self)
  local p = self.ptr
  if p == nil then
    error("pool: used after destroy", 3)
  end
  return p
end

--- pool:acquire() -> object | nil, err
-- The thread-local fast path is the same pop as the C header's inline code (compiled by the
-- JIT); shared, zeroing and debug-build pools go through C.
function Pool:acquire()
  local p = live(self)
  local o = p.free
  if o ~= nil then
    p.free = ffi_cast(voidpp, o)[0]
    p.acquisitions = p.acquisitions + 1
  else
    o = C.engram_pool_acquire_slow(p)
    if o == nil then
      return nil, last_error()
    end
  end
  local ct = self.ct
  if ct then
    return ffi_cast(ct, o)
  end
  return o
end

--- pool:release(object): give an object back (nil is a no-op).
function Pool:release(o)
  local p = live(self)
  if o == nil then
    return
  end
  if type(o) ~= "cdata" then
    error(string.format("bad argument #1 to 'release' (pool object expected, got %s)", type(o)), 2)
  end
  if p.inline_ok ~= 0 then
    ffi_cast(voidpp, o)[0] = p.free
    p.free = o
    p.releases = p.releases + 1
  else
    C.engram_pool_release_slow(p, o)
  end
end

--- pool:stats() -> table of the pool's counters (see engram_pool_info).
function Pool:stats()
  local p = live(self)
  local info = pool_info_t()
  info.struct_size = ffi.sizeof(pool_info_t)
  info.struct_version = POOL_INFO_VERSION
  if C.engram_pool_query(p, info) ~= 0 then
    error(last_error(), 2)
  end
  return {
    name = ffi_string(info.name),
    shared = bit.band(info.flags, SHARED) ~= 0,
    zero = bit.band(info.flags, ZERO) ~= 0,
    vector_dim = tonumber(info.vector_dim),
    object_size = tonumber(info.object_size),
    stride = tonumber(info.stride),
    align = tonumber(info.align),
    capacity = tonumber(info.capacity),
    in_use = tonumber(info.in_use),
    peak = tonumber(info.peak),
    acquisitions = tonumber(info.acquisitions),
    releases = tonumber(info.releases),
    reuses = tonumber(info.reuses),
    failures = tonumber(info.failures),
    reuse_rate = tonumber(info.reuse_rate),
    bytes_reserved = tonumber(info.bytes_reserved),
    max_bytes = tonumber(info.max_bytes),
    slabs = tonumber(info.slabs),
  }
end

--- pool:destroy(): unmap the pool now (objects from it become invalid). Idempotent.
function Pool:destroy()
  local p = self.ptr
  if p ~= nil then
    self.ptr = nil
    C.engram_pool_destroy(ffi_gc(p, nil))
  end
end

-- ---- scoped arenas -------------------------------------------------------------------------

local Cache = {}
Cache.__index = Cache

local function cache_live(self)
  local c = self.ptr
  if c == nil then
    error("pool: arena cache used after destroy", 3)
  end
  return c
end

--- pool.arena_cache{ [name], [keep_per_class], [align], [overflow] }
-- Arenas by size class (powers of two from 64 KiB); release resets one and keeps it for reuse,
-- up to keep_per_class per class (default 4). overflow: "error" (default), "panic", "fallback".
function M.arena_cache(opts)
  opts = opts or {}
  check_opts(opts, "arena_cache")
  local cfg = cache_config_t()
  cfg.name = opts.name
  cfg.keep_per_class = opts.keep_per_class or 0
  cfg.align = opts.align or 0
  local modes = { error = 0, panic = 1, fallback = 2 }
  local ov = modes[opts.overflow or "error"]
  if not ov then
    error(string.format("pool: bad overflow '%s' (expected error, panic or fallback)", tostring(opts.overflow)), 2)
  end
  cfg.overflow = ov
  cfg.huge_pages = 1
  local c = C.engram_arena_cache_create(cfg)
  if c == nil then
    error(last_error(), 2)
  end
  return setmetatable({ ptr = ffi_gc(c, C.engram_arena_cache_destroy) }, Cache)
end

--- cache:acquire(min_bytes) -> arena | nil, err: an empty arena of the smallest class that
-- holds min_bytes (number or size string), owned by this thread.
function Cache:acquire(min_bytes)
  local a = C.engram_arena_cache_acquire(cache_live(self), bytes(min_bytes, "min_bytes"))
  if a == nil then
    return nil, last_error()
  end
  return a
end

--- cache:release(arena): reset it and keep it (or destroy it beyond keep_per_class).
function Cache:release(a)
  if C.engram_arena_cache_release(cache_live(self), a) ~= 0 then
    error(last_error(), 2)
  end
end

--- cache:stats() -> table (kept_per_class is keyed by class size in bytes).
function Cache:stats()
  local info = cache_info_t()
  info.struct_size = ffi.sizeof(cache_info_t)
  info.struct_version = CACHE_INFO_VERSION
  if C.engram_arena_cache_query(cache_live(self), info) ~= 0 then
    error(last_error(), 2)
  end
  local per = {}
  for k = 0, CACHE_CLASSES - 1 do
    local n = tonumber(info.kept_per_class[k])
    if n > 0 then
      per[MIN_CLASS * 2 ^ k] = n
    end
  end
  return {
    name = ffi_string(info.name),
    keep_per_class = tonumber(info.keep_per_class),
    acquisitions = tonumber(info.acquisitions),
    reuses = tonumber(info.reuses),
    created = tonumber(info.created),
    destroyed = tonumber(info.destroyed),
    out = tonumber(info.out),
    kept = tonumber(info.kept),
    kept_bytes = tonumber(info.kept_bytes),
    kept_per_class = per,
  }
end

--- cache:destroy(): destroy the kept arenas now. Idempotent.
function Cache:destroy()
  local c = self.ptr
  if c ~= nil then
    self.ptr = nil
    C.engram_arena_cache_destroy(ffi_gc(c, nil))
  end
end

-- ---- the report ----------------------------------------------------------------------------

--- pool.stats_json() -> string | nil, err: the process-wide stats report (engram_stats_json):
-- process arenas, this thread's arena, every pool and arena cache.
function M.stats_json()
  local s = C.engram_stats_json()
  if s == nil then
    return nil, last_error()
  end
  local text = ffi_string(s)
  C.engram_free(s)
  return text
end

return M
