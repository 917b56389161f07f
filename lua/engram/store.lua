-- engram.store: the SQLite memory store from Lua — open, import, a burst's load and commit.
--
--   local store = require("engram.store")
--   local s = store.open{ path = "memory.db", dim = 768, create = true }
--   local b = s:load(arena, { batch = 100, context = 256 })    -- views in the burst's arena
--   ... compute ...
--   s:commit(arena, b, { consolidated = ..., updates = ..., edges = ..., patterns = ... })
--
-- Lifetimes: a store object owns one SQLite connection (use it from one thread); store.open's
-- objects close when collected or by :close(); store.wrap(ptr) borrows a connection owned by C
-- (the host's per-worker store) and never closes it. What :load returns lives in the arena
-- given to it: its views go stale when the burst ends. Expected failures (a conflict, a
-- malformed change) return nil, err; misuse raises.
local ffi = require("ffi")
local C = require("engram.lib")
local arena = require("engram.arena")

local M = {}

local ffi_string = ffi.string
local config_t = ffi.typeof("engram_store_config")
local batch_t = ffi.typeof("engram_batch")
local counts_t = ffi.typeof("engram_store_counts")
local changes_t = ffi.typeof("engram_store_changes")
local episode_t = ffi.typeof("engram_episode")

local function last_error()
  return ffi_string(C.engram_last_error())
end

local Store = {}
Store.__index = Store

-- Open (or with create = true, create) a store: { path, dim, create, busy_timeout_ms, lease }.
function M.open(opts)
  if type(opts) ~= "table" or type(opts.path) ~= "string" then
    error("bad argument #1 to 'open' (table with a 'path' string expected)", 2)
  end
  local cfg = config_t()
  cfg.path = opts.path
  cfg.dim = opts.dim or 0
  cfg.create = opts.create and 1 or 0
  cfg.busy_timeout_ms = opts.busy_timeout_ms or 0
  cfg.lease_seconds = opts.lease or 0
  local p = C.engram_store_open(cfg)
  if p == nil then
    return nil, last_error()
  end
  return setmetatable({ ptr = ffi.gc(p, C.engram_store_close), owned = true }, Store)
end

-- A store connection owned by C (engram_store *), borrowed for the life of its owner.
function M.wrap(ptr)
  return setmetatable({ ptr = ffi.cast("engram_store *", ptr), owned = false }, Store)
end

function Store:close()
  if self.owned and self.ptr ~= nil then
    ffi.gc(self.ptr, nil)
    C.engram_store_close(self.ptr)
  end
  self.ptr = nil
end

function Store:dim()
  return C.engram_store_dim(self.ptr)
end

-- Counts of memories, unconsolidated episodes, edges, patterns and claims in flight.
function Store:counts()
  local c = counts_t()
  c.struct_size = ffi.sizeof(counts_t)
  c.struct_version = 1
  if C.engram_store_count(self.ptr, c) ~= 0 then
    error(last_error(), 2)
  end
  return {
    memories = tonumber(c.memories), unconsolidated = tonumber(c.unconsolidated),
    edges = tonumber(c.edges), patterns = tonumber(c.patterns), claims = tonumber(c.claims),
  }
end

-- A label kept in the store (nil when unset), and setting one (keys "dim" and "engram.*" are
-- reserved). set_meta returns true, or nil, err.
function Store:meta(key)
  local buf = ffi.new("char[?]", 1024)
  if C.engram_store_meta_get(self.ptr, key, buf, 1024) ~= 0 then
    return nil
  end
  return ffi_string(buf)
end

function Store:set_meta(key, value)
  if C.engram_store_meta_set(self.ptr, key, tostring(value)) ~= 0 then
    return nil, last_error()
  end
  return true
end

-- The strength distribution and averages of the whole store (for reports).
function Store:summary()
  local c = ffi.new("engram_store_summary")
  c.struct_size = ffi.sizeof(c)
  c.struct_version = 1
  if C.engram_store_summarize(self.ptr, c) ~= 0 then
    error(last_error(), 2)
  end
  return {
    memories = tonumber(c.memories), strength_mean = c.strength_mean, strength_min = c.strength_min,
    strength_p10 = c.strength_p10, strength_p50 = c.strength_p50, strength_p90 = c.strength_p90,
    strength_max = c.strength_max, activation_mean = c.activation_mean,
    edge_weight_mean = c.edge_weight_mean, pattern_members_mean = c.pattern_members_mean,
  }
end

-- Import episodes (tables with id, content, embedding (a Lua array, or cdata of at least dim
-- floats), created_at, last_access, access_count, strength), all or nothing. Returns the count,
-- or nil, err; the import is rolled back on any failure, a raised one included.
function Store:import(episodes)
  local dim = self:dim()
  local buf = ffi.new("float[?]", dim)
  local e = episode_t()
  if C.engram_store_import_begin(self.ptr) ~= 0 then
    return nil, last_error()
  end
  local function add_all()
    for i = 1, #episodes do
      local ep = episodes[i]
      local emb = ep.embedding
      if type(emb) == "table" then
        if #emb ~= dim then
          return ("store: episode %s has %d embedding values (expected %d)"):format(tostring(ep.id), #emb, dim)
        end
        for k = 1, dim do buf[k - 1] = emb[k] end
        e.embedding = buf
      elseif type(emb) == "cdata" and ffi.sizeof(emb) and ffi.sizeof(emb) >= dim * 4 then
        e.embedding = emb
      else
        return ("store: episode %s has no embedding of %d floats (a Lua array, or a float array cdata)")
          :format(tostring(ep.id), dim)
      end
      e.id = ep.id
      e.content = ep.content or ""
      e.created_at = ep.created_at or 0
      e.last_access = ep.last_access or 0
      e.access_count = ep.access_count or 0
      e.strength = ep.strength or 1
      if C.engram_store_import_add(self.ptr, e) ~= 0 then
        return last_error()
      end
    end
  end
  local ok, err = pcall(add_all)
  if not ok or err then
    C.engram_store_import_abort(self.ptr)
    if not ok then
      error(err, 2)   -- a field that does not convert (an id that is not a number): misuse
    end
    return nil, err
  end
  if C.engram_store_import_commit(self.ptr) ~= 0 then
    return nil, last_error()
  end
  return #episodes
end

-- Claim and load a burst's batch into arena a: opts.batch (default 100), opts.context (default
-- 64, as the default pipeline's), opts.now. Returns a table of views (n, total, dim, claim, ids, embeddings (matrix),
-- created_at, last_access, access_count, strength, activation, edges = {n, src, dst, weight})
-- or nil, err.
function Store:load(a, opts)
  if arena.kind(a) ~= nil or type(a) ~= "cdata" then
    error("bad argument #1 to 'load' (arena expected, got " .. type(a) .. ")", 2)
  end
  opts = opts or {}
  local b = batch_t()
  local rc = C.engram_store_load(self.ptr, a, opts.batch or 100, opts.context or 64, opts.now or 0, b)
  if rc ~= 0 then
    return nil, last_error()
  end
  local total, ne = b.total, b.n_edges
  return {
    claim = b.claim,
    n = b.n,
    total = total,
    dim = b.dim,
    ids = arena.view(a, "int64s", b.ids, total),
    embeddings = arena.matrix_view(a, b.embeddings, total, b.dim),
    created_at = arena.view(a, "doubles", b.created_at, total),
    last_access = arena.view(a, "doubles", b.last_access, total),
    access_count = arena.view(a, "ints", b.access_count, total),
    strength = arena.view(a, "floats", b.strength, total),
    activation = arena.view(a, "floats", b.activation, total),
    edges = {
      n = ne,
      src = arena.view(a, "ints", b.edge_src, ne),
      dst = arena.view(a, "ints", b.edge_dst, ne),
      weight = arena.view(a, "floats", b.edge_weight, ne),
    },
  }
end

-- The view kind that holds each C element type.
local kind_of = { int64_t = "int64s", float = "floats", double = "doubles", uint32_t = "ints" }

-- Pointer and count of a column: a view of the matching kind, or a Lua array copied into the
-- arena as ctype. Raises (blaming the caller of commit) for a view of another kind.
local function column(a, v, ctype, what)
  if v == nil then
    return nil, 0
  end
  if type(v) == "table" then
    local n = #v
    local p = ffi.cast(ctype .. " *", a:alloc(n * ffi.sizeof(ctype), 64) or error("arena: out of memory", 3))
    for i = 1, n do p[i - 1] = v[i] end
    return p, n
  end
  local kind = arena.kind(v)
  if kind ~= kind_of[ctype] then
    error(("bad changes: %s must be a Lua array or %s (got %s)"):format(what, kind_of[ctype], kind or type(v)), 3)
  end
  return ffi.cast(ctype .. " *", v:pointer()), #v
end

-- Write a burst's changes in one transaction and release its claims. `b` is what :load returned;
-- changes = { consolidated = ids, updates = { ids, strength, activation },
-- edges = { src = ids, dst = ids, weight }, patterns = { centroids (matrix), strength,
-- offsets (n + 1), members (ids) }, now }. Each list is a view or a Lua array. Returns true,
-- or nil, err (and nothing was written).
function Store:commit(a, b, changes)
  local c = changes_t()
  c.struct_size = ffi.sizeof(changes_t)
  c.struct_version = 1
  c.claim = b and b.claim or 0
  c.now = changes.now or 0
  local n
  if changes.consolidated then
    c.consolidated_ids, n = column(a, changes.consolidated, "int64_t", "consolidated")
    c.n_consolidated = n
  end
  local u = changes.updates
  if u then
    local nn, ns, na, nl
    c.update_ids, nn = column(a, u.ids, "int64_t", "updates.ids")
    c.update_strength, ns = column(a, u.strength, "float", "updates.strength")
    c.update_activation, na = column(a, u.activation, "float", "updates.activation")
    if u.last_access then
      c.update_last_access, nl = column(a, u.last_access, "double", "updates.last_access")
    end
    if nn ~= ns or nn ~= na or (nl and nl ~= nn) then
      error(("bad changes: updates have %d ids, %d strengths, %d activations%s (lengths differ)")
        :format(nn, ns, na, nl and (", " .. nl .. " last_access") or ""), 2)
    end
    c.n_updates = nn
  end
  local e = changes.edges
  if e then
    local n1, n2, n3
    c.edge_src, n1 = column(a, e.src, "int64_t", "edges.src")
    c.edge_dst, n2 = column(a, e.dst, "int64_t", "edges.dst")
    c.edge_weight, n3 = column(a, e.weight, "float", "edges.weight")
    if n1 ~= n2 or n1 ~= n3 then
      error(("bad changes: edges have %d src, %d dst, %d weights (lengths differ)"):format(n1, n2, n3), 2)
    end
    c.n_edges = n1
  end
  local p = changes.patterns
  if p and p.count and p.count > 0 then
    local count, dim = p.count, self:dim()
    if arena.kind(p.centroids) ~= "matrix" or p.centroids.cols ~= dim or p.centroids.rows < count then
      error(("bad changes: patterns.centroids must be a matrix of at least %d rows of %d floats"):format(count, dim), 2)
    end
    local ns, no, nm
    c.pattern_strength, ns = column(a, p.strength, "float", "patterns.strength")
    c.pattern_offsets, no = column(a, p.offsets, "uint32_t", "patterns.offsets")
    c.pattern_members, nm = column(a, p.members, "int64_t", "patterns.members")
    if ns < count or no < count + 1 or c.pattern_offsets[count] > nm then
      error(("bad changes: %d patterns need %d strengths, %d offsets and as many members as the last offset "
        .. "(got %d, %d, %d)"):format(count, count, count + 1, ns, no, nm), 2)
    end
    c.n_patterns = count
    c.pattern_centroids = p.centroids:pointer()
    c.pattern_merge = p.merge or 0
  end
  if C.engram_store_commit(self.ptr, c) ~= 0 then
    return nil, last_error()
  end
  return true
end

-- Give back every claim loaded through this connection and not committed or released yet.
function Store:release_pending()
  if C.engram_store_release_pending(self.ptr) ~= 0 then
    return nil, last_error()
  end
  return true
end

-- Give back the claims of a burst that will not commit.
function Store:release(b)
  if C.engram_store_release(self.ptr, b.claim) ~= 0 then
    return nil, last_error()
  end
  return true
end

return M
