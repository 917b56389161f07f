-- engram.arena: the bump arena seen from Lua, with typed views that go stale with their burst.
--
--   local arena = require("engram.arena")
--   local a = burst.arena                        -- or arena.new{ size = "8MiB" }, arena.thread()
--   local s = a:floats(1000)                     -- 1000 floats, 64-byte aligned, 0-based
--   for i = 0, #s - 1 do s[i] = i * 0.5 end
--   a:scope(function() local tmp = a:ints(10) ... end)   -- tmp is released (and stale) after
--
-- Lifetimes. An arena object is the C `engram_arena *` itself (a metatype, no wrapper). A view
-- is valid until its arena is reset (the host resets a worker's arena after every burst) or the
-- scope it was made in is rewound; using it afterwards raises
-- "arena view used after its burst ended" instead of touching reused memory. Views index from
-- 0 like FFI arrays, check bounds, and hold no GC finalizer: nothing here touches an arena from
-- a finalizer. Arenas made with arena.new are destroyed by :destroy() or when collected.
-- Exhaustion raises "arena: out of memory (requested N bytes, ...)"; :alloc returns nil, err.
local ffi = require("ffi")
local bit = require("bit")
local C = require("engram.lib")

-- Metatypes are bound once per Lua state: a second load of this file (a module loader run
-- again) returns the module the first one made, whose methods the metatypes hold.
local registry = debug.getregistry()
if registry["engram.arena"] then
  return registry["engram.arena"]
end

local M = {}

local band, bnot = bit.band, bit.bnot
local floor = math.floor
local ffi_string, ffi_cast = ffi.string, ffi.cast

local STALE = "arena view used after its burst ended"
local VIEW_ALIGN = 64
-- Views from the Lua side never ask for more than this many bytes at once; larger requests are
-- size overflows, reported before any double-to-size_t conversion can lose precision.
local MAX_BYTES = 2 ^ 52

local arena_ptr_t = ffi.typeof("engram_arena *")
local mark_t = ffi.typeof("engram_mark")
local info_t = ffi.typeof("engram_arena_info")
local config_t = ffi.typeof("engram_arena_config")
local uptr_t = ffi.typeof("uintptr_t")

-- Builds that poison free memory must hand out memory through C, which unpoisons it.
local poisoning = C.engram_arena_poisoning() ~= 0

local function last_error()
  return ffi_string(C.engram_last_error())
end

-- n bytes at `align` from arena a, or nil + message. The bump is done here, on the struct the
-- C fast path uses, so the JIT turns it into a few instructions with no call.
local function bump(a, n, align)
  if not poisoning then
    local top = a.top
    local p = band(top + (align - 1), bnot(ffi_cast(uptr_t, align - 1)))
    local limit = a.limit
    if p <= limit and n <= limit - p then
      a.top = p + n
      return p
    end
  end
  local p = C.engram_arena_alloc_slow(a, n, align)
  if p == nil then
    return nil, last_error()
  end
  return ffi_cast(uptr_t, p)
end

local function check_count(n, what, level)
  if type(n) ~= "number" or n < 0 or n ~= floor(n) then
    error(("bad argument #1 to '%s' (non-negative integer expected, got %s)"):format(what, tostring(n)), level + 1)
  end
end

local function live(v)
  local a = v.arena
  return v.epoch == a.epoch or C.engram_arena_epoch_live(a, v.epoch) ~= 0
end

-- ---- vectors -------------------------------------------------------------------------

local views_by_name = {}   -- name -> { view_t, ptr_t }, filled by vector_type

-- A view type over elements of elem_ctype. as_number: convert elements to Lua numbers on read
-- (64-bit integers would otherwise come back as boxed cdata).
local function vector_type(ctype, elem_ctype, name, as_number)
  local elem_size = ffi.sizeof(elem_ctype)
  local ptr_t = ffi.typeof(elem_ctype .. " *")
  local methods = {}

  local function bad_index(v, i)
    if not live(v) then
      error(STALE, 3)
    end
    error(("arena view index %s out of range (0 to %d)"):format(tostring(i), tonumber(v.len) - 1), 3)
  end

  local index
  if as_number then
    index = function(v, i)
      if type(i) == "number" then
        if i >= 0 and i < v.len and (v.epoch == v.arena.epoch or live(v)) then
          return tonumber(v.ptr[i])
        end
        bad_index(v, i)
      end
      return methods[i]
    end
  else
    index = function(v, i)
      if type(i) == "number" then
        if i >= 0 and i < v.len and v.epoch == v.arena.epoch then
          return v.ptr[i]
        end
        if i >= 0 and i < v.len and live(v) then   -- a view of an enclosing scope
          return v.ptr[i]
        end
        bad_index(v, i)
      end
      return methods[i]
    end
  end

  local mt = {
    __index = index,
    __newindex = function(v, i, x)
      if type(i) == "number" and i >= 0 and i < v.len and (v.epoch == v.arena.epoch or live(v)) then
        v.ptr[i] = x
        return
      end
      if type(i) ~= "number" then
        error(("cannot set field '%s' of an arena view"):format(tostring(i)), 2)
      end
      bad_index(v, i)
    end,
    __len = function(v) return tonumber(v.len) end,
    __tostring = function(v)
      return ("engram.%s(%d)%s"):format(name, tonumber(v.len), live(v) and "" or " (stale)")
    end,
  }

  -- Raise unless the view is still valid.
  function methods.check(v)
    if not live(v) then
      error(STALE, 2)
    end
    return v
  end
  -- The element count (also #v).
  function methods.len(v) return tonumber(v.len) end
  -- The raw pointer, for FFI calls (kernels); checked once here.
  function methods.pointer(v)
    if not live(v) then
      error(STALE, 2)
    end
    return v.ptr
  end
  -- Set every element to x.
  function methods.fill(v, x)
    if not live(v) then
      error(STALE, 2)
    end
    local p = v.ptr
    for i = 0, tonumber(v.len) - 1 do
      p[i] = x
    end
    return v
  end
  -- A Lua table copy (1-based), for results that must outlive the burst.
  function methods.totable(v)
    if not live(v) then
      error(STALE, 2)
    end
    local t, p = {}, v.ptr
    for i = 0, tonumber(v.len) - 1 do
      t[i + 1] = tonumber(p[i])
    end
    return t
  end

  local view_t = ffi.metatype(ctype, mt)
  views_by_name[name] = { view_t = view_t, ptr_t = ptr_t }

  -- a:<name>(n): a new view of n elements.
  return function(a, n)
    check_count(n, name, 2)
    local bytes = n * elem_size
    if bytes > MAX_BYTES then
      error(("arena: size overflow (%d elements of %d bytes)"):format(n, elem_size), 2)
    end
    local p, err = bump(a, bytes, VIEW_ALIGN)
    if not p then
      error(err, 2)
    end
    return view_t(ffi_cast(ptr_t, p), n, a.epoch, a)
  end, view_t
end

local floats, floats_t = vector_type("engram_view_f32", "float", "floats")
local doubles = vector_type("engram_view_f64", "double", "doubles")
local ints = vector_type("engram_view_i32", "int32_t", "ints")
local bytes = vector_type("engram_view_u8", "uint8_t", "bytes")
local int64s = vector_type("engram_view_i64", "int64_t", "int64s", true)

-- ---- matrices (row-major floats) -------------------------------------------------------

local matrix_methods = {}
local matrix_t = ffi.metatype("engram_matrix_f32", {
  __index = matrix_methods,
  __tostring = function(m)
    return ("engram.matrix(%d x %d)%s"):format(tonumber(m.rows), tonumber(m.cols), live(m) and "" or " (stale)")
  end,
})

local function matrix_check(m, r, c, level)
  if not (m.epoch == m.arena.epoch or live(m)) then
    error(STALE, level + 1)
  end
  if r < 0 or r >= m.rows or c < 0 or c >= m.cols then
    error(("arena matrix index (%s, %s) out of range (%d x %d)"):format(tostring(r), tostring(c),
      tonumber(m.rows), tonumber(m.cols)), level + 1)
  end
end

function matrix_methods.get(m, r, c)
  matrix_check(m, r, c, 2)
  return m.ptr[r * m.cols + c]
end

function matrix_methods.set(m, r, c, x)
  matrix_check(m, r, c, 2)
  m.ptr[r * m.cols + c] = x
end

-- Row r as a float view sharing the matrix memory and epoch.
function matrix_methods.row(m, r)
  matrix_check(m, r, 0, 2)
  return floats_t(m.ptr + r * m.cols, m.cols, m.epoch, m.arena)
end

function matrix_methods.pointer(m)
  if not live(m) then
    error(STALE, 2)
  end
  return m.ptr
end

function matrix_methods.check(m)
  if not live(m) then
    error(STALE, 2)
  end
  return m
end

local function matrix(a, rows, cols)
  check_count(rows, "matrix", 2)
  check_count(cols, "matrix", 2)
  local nbytes = rows * cols * 4
  if nbytes > MAX_BYTES then
    error(("arena: size overflow (%d x %d floats)"):format(rows, cols), 2)
  end
  local p, err = bump(a, nbytes, VIEW_ALIGN)
  if not p then
    error(err, 2)
  end
  return matrix_t(ffi_cast("float *", p), rows, cols, a.epoch, a)
end

-- ---- the arena ----------------------------------------------------------------------------

local arena_methods = {
  floats = floats,
  doubles = doubles,
  ints = ints,
  bytes = bytes,
  int64s = int64s,
  matrix = matrix,
}

-- n raw bytes at `align` (default 16; a power of two up to 4096): a void* cdata, or nil and the
-- message.
function arena_methods.alloc(a, n, align)
  check_count(n, "alloc", 2)
  align = align or 16
  if type(align) ~= "number" or align < 1 or align > 4096 or align ~= floor(align) or band(align, align - 1) ~= 0 then
    return nil, ("arena: bad alignment %s (expected a power of two from 1 to 4096)"):format(tostring(align))
  end
  if n > MAX_BYTES then
    return nil, ("arena: size overflow (%d bytes)"):format(n)
  end
  local p, err = bump(a, n, align)
  if not p then
    return nil, err
  end
  return ffi_cast("void *", p)
end

-- Open a scope: views made until the matching rewind go stale then.
function arena_methods.mark(a)
  local m = mark_t()
  if C.engram_arena_scope_enter(a, m) ~= 0 then
    error(last_error(), 2)
  end
  return m
end

-- Close the scope opened by mark m (and any scope opened inside it).
function arena_methods.rewind(a, m)
  if not ffi.istype(mark_t, m) then
    error("bad argument #1 to 'rewind' (mark expected, got " .. type(m) .. ")", 2)
  end
  if C.engram_arena_scope_leave(a, m) ~= 0 then
    error(last_error(), 2)
  end
end

-- Call fn(...) in a scope; the scope is closed however fn ends. Returns fn's results.
function arena_methods.scope(a, fn, ...)
  local m = mark_t()
  if C.engram_arena_scope_enter(a, m) ~= 0 then
    error(last_error(), 2)
  end
  local res = { pcall(fn, ...) }
  -- fails harmlessly (stale mark) when fn reset the arena or left an outer scope itself
  C.engram_arena_scope_leave(a, m)
  if not res[1] then
    error(res[2], 0)
  end
  return unpack(res, 2, table.maxn(res))
end

function arena_methods.used(a) return tonumber(C.engram_arena_used(a)) end
function arena_methods.capacity(a) return tonumber(C.engram_arena_capacity(a)) end
function arena_methods.remaining(a) return tonumber(a.limit - a.top) end
function arena_methods.reset(a) C.engram_arena_reset(a) end
function arena_methods.epoch(a) return a.epoch end

local page_kinds = { [0] = "4k", [1] = "thp", [2] = "hugetlb" }
local strategies = { [0] = "error", [1] = "panic", [2] = "fallback" }

-- A table of the arena's counters.
function arena_methods.stats(a)
  local st = info_t()
  st.struct_size = ffi.sizeof(info_t)
  st.struct_version = 1
  if C.engram_arena_query(a, st) ~= 0 then
    error(last_error(), 2)
  end
  return {
    capacity = tonumber(st.capacity),
    used = tonumber(st.used),
    high_water = tonumber(st.high_water),
    resets = tonumber(st.resets),
    overflows = tonumber(st.overflows),
    fallback_bytes = tonumber(st.fallback_bytes),
    fallback_chunks = tonumber(st.fallback_chunks),
    page_kind = page_kinds[st.page_kind],
    overflow = strategies[st.overflow_strategy],
  }
end

-- The arena objects made by arena.new, the only ones Lua may destroy. Keyed by the cdata
-- object itself (weak: a collected arena leaves), so another object for the same address (a
-- worker's arena wrapped later into the same header) is never taken for one of them.
local owned = setmetatable({}, { __mode = "k" })

-- Destroy an arena made by arena.new. Raises for any other (a worker's burst.arena, the thread
-- arena) and for one already destroyed.
function arena_methods.destroy(a)
  if not owned[a] then
    error("arena: destroy takes an arena made by arena.new, not yet destroyed", 2)
  end
  owned[a] = nil
  ffi.gc(a, nil)
  C.engram_arena_destroy(a)
end

ffi.metatype("engram_arena", { __index = arena_methods })

-- ---- constructors -----------------------------------------------------------------------

local overflow_codes = { error = 0, panic = 1, fallback = 2 }

-- Parse a size given as a number of bytes or text ("8MiB"); returns bytes or nil, err.
function M.parse_size(v)
  if type(v) == "number" then
    return v
  end
  local out = ffi.new("size_t[1]")
  if C.engram_parse_size(tostring(v), out) ~= 0 then
    return nil, last_error()
  end
  return tonumber(out[0])
end

-- A new arena owned by the calling thread: opts.size (bytes or "8MiB"), opts.overflow
-- ("error" | "panic" | "fallback"), opts.align (default 16), opts.huge_pages (boolean),
-- opts.prefault (boolean). Missing options come from the process default (ENGRAM_ARENA_*).
function M.new(opts)
  opts = opts or {}
  local cfg = config_t()
  if C.engram_config_arena_default(cfg) ~= 0 then
    error(last_error(), 2)
  end
  if opts.size ~= nil then
    local n, err = M.parse_size(opts.size)
    if not n then
      error(err, 2)
    end
    cfg.size = n
  end
  if opts.overflow ~= nil then
    local code = overflow_codes[opts.overflow]
    if not code then
      error(("bad option 'overflow' to 'arena.new' (expected error, panic or fallback, got %s)")
        :format(tostring(opts.overflow)), 2)
    end
    cfg.overflow = code
  end
  if opts.align ~= nil then cfg.align = opts.align end
  if opts.huge_pages ~= nil then cfg.huge_pages = opts.huge_pages and 1 or 0 end
  if opts.prefault ~= nil then cfg.prefault = opts.prefault and 1 or 0 end
  local a = C.engram_arena_create(cfg)
  if a == nil then
    error(last_error(), 2)
  end
  a = ffi.gc(a, C.engram_arena_destroy)
  owned[a] = true
  return a
end

-- The calling thread's default arena (created on first use, released at thread exit).
function M.thread()
  local a = C.engram_arena_thread()
  if a == nil then
    error(last_error(), 2)
  end
  return a
end

-- An arena pointer handed over by C (for example a worker's arena) as an arena object.
function M.wrap(ptr)
  return ffi_cast(arena_ptr_t, ptr)
end

-- A view of n elements of kind ("floats", "doubles", "ints", "bytes", "int64s") over memory that C
-- code allocated in arena a during the current scope (a store load, a kernel's output).
function M.view(a, kind, ptr, n)
  local k = views_by_name[kind]
  if not k then
    error(("bad argument #2 to 'view' (floats, doubles, ints, bytes or int64s expected, got %s)")
      :format(tostring(kind)), 2)
  end
  return k.view_t(ffi_cast(k.ptr_t, ptr), n, a.epoch, a)
end

-- A rows x cols float matrix over C-allocated memory of arena a (see M.view).
function M.matrix_view(a, ptr, rows, cols)
  return matrix_t(ffi_cast("float *", ptr), rows, cols, a.epoch, a)
end

-- The kind of view v is ("floats", "doubles", "ints", "bytes", "int64s", "matrix"), or nil.
function M.kind(v)
  if type(v) ~= "cdata" then
    return nil
  end
  if ffi.istype(matrix_t, v) then
    return "matrix"
  end
  for name, k in pairs(views_by_name) do
    if ffi.istype(k.view_t, v) then
      return name
    end
  end
  return nil
end

-- True when v is a view or matrix that can still be used.
function M.is_live(v)
  return live(v)
end

M.STALE = STALE

registry["engram.arena"] = M
return M
