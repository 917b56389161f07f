-- The documented promises, checked from the outside: every `it` quotes or paraphrases README.md,
-- the module header comments of lua/engram/*.lua and scripts/consolidate.lua, or
-- `engram-run --help`. A test whose name starts with "MISMATCH:" shows a place where the code
-- and its documentation disagree; it fails until one of them is changed.
local ffi = require("ffi")

local root = os.getenv("ENGRAM_ROOT") or "."
local lib = os.getenv("ENGRAM_LIB") or (root .. "/build/release/libengram.so")
local bindir = lib:match("^(.*)/[^/]*$") or (root .. "/build/release")
local engram_run = bindir .. "/engram-run"

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local temps = {}
local function tmp(suffix)
  local p = os.tmpname()
  os.remove(p)
  p = p .. (suffix or "")
  temps[#temps + 1] = p
  return p
end

local function remove_db(path)
  for _, s in ipairs{ "", "-wal", "-shm", "-journal" } do os.remove(path .. s) end
end

local function cleanup()
  for _, p in ipairs(temps) do remove_db(p) end
  temps = {}
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Run a shell command line; returns stdout, stderr and the exit status.
local function sh(cmdline)
  local errf = os.tmpname()
  local p = assert(io.popen("(" .. cmdline .. ") 2>" .. shq(errf) .. "; echo \"__status=$?\""))
  local out = p:read("*a")
  p:close()
  local err = read_file(errf) or ""
  os.remove(errf)
  local status = tonumber(out:match("__status=(%d+)\n?$"))
  out = out:gsub("__status=%d+\n?$", "")
  return out, err, status
end

-- engram-run with arguments (each quoted), an optional environment prefix.
local function run(args, env)
  local parts = {}
  for _, a in ipairs(args) do parts[#parts + 1] = shq(a) end
  return sh((env or "") .. " " .. shq(engram_run) .. " " .. table.concat(parts, " "))
end

local function script(text)
  local p = tmp(".lua")
  write_file(p, text)
  return p
end

-- A deterministic set of unit-ish vectors in a few tight clusters, as import tables.
local function episodes(n, dim, first_id, t0)
  local eps = {}
  for i = 1, n do
    local e = {}
    local topic = i % 3
    for d = 1, dim do
      e[d] = (d % 3 == topic) and 1 or 0.02 * ((i * 7 + d * 13) % 5)
    end
    eps[i] = { id = (first_id or 1) + i - 1, content = "episode " .. i, embedding = e,
               created_at = (t0 or 1790000000) + i * 60 }
  end
  return eps
end

local function jsonl(eps)
  local lines = {}
  for _, e in ipairs(eps) do
    local v = {}
    for d, x in ipairs(e.embedding) do v[d] = string.format("%.6g", x) end
    lines[#lines + 1] = string.format('{"id":%d,"content":"%s","embedding":[%s],"created_at":%d}',
      e.id, e.content, table.concat(v, ","), e.created_at)
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ==========================================================================================
describe("docs: require('engram')", function()
  it("gives the submodules, loaded on first use (README: the Lua API)", function()
    local engram = require("engram")
    assert.are.equal(require("engram.arena"), engram.arena)
    assert.are.equal(require("engram.store"), engram.store)
    assert.are.equal(require("engram.parse"), engram.parse)
    assert.are.equal(require("engram.pipeline"), engram.pipeline)
    assert.are.equal(require("engram.kernels"), engram.kernels)
    assert.are.equal(require("engram.pool"), engram.pool)
    assert.are.equal(require("engram.import"), engram.import)
  end)

  it("engram.arena.new{size='1MiB'} is the same as require('engram.arena') (init.lua header)", function()
    local a = require("engram").arena.new{ size = "1MiB" }
    assert.are.equal(1048576, a:capacity())
    a:destroy()
  end)
end)

-- ==========================================================================================
describe("docs: the arena from Lua", function()
  local arena = require("engram.arena")

  it("arena.new{size, overflow, align, huge_pages, prefault} takes every documented option", function()
    local a = arena.new{ size = "64KiB", overflow = "fallback", align = 32, huge_pages = "off",
                         prefault = true }
    assert.are.equal(65536, a:capacity())
    assert.are.equal(0, a:used())
    a:destroy()
  end)

  it("arena.thread() is the calling thread's arena, the same one every time", function()
    local t = arena.thread()
    assert.is_not_nil(t)
    assert.are.equal(ffi.cast("uintptr_t", t), ffi.cast("uintptr_t", arena.thread()))
    assert.is_true(t:capacity() >= 65536)
  end)

  it("floats(n) gives n floats, 64-byte aligned, 0-based (#v is the length)", function()
    local a = arena.new{ size = "64KiB" }
    a:bytes(3)
    local v = a:floats(1000)
    assert.are.equal(1000, #v)
    assert.are.equal(0, tonumber(ffi.cast("uintptr_t", v.ptr) % 64))
    for i = 0, #v - 1 do v[i] = i * 0.5 end
    assert.are.equal(0, v[0])
    assert.are.equal(499.5, v[999])
    a:destroy()
  end)

  it("doubles, ints, int64s, bytes have the requested lengths and hold their element types", function()
    local a = arena.new{ size = "64KiB" }
    local d, i, l, b = a:doubles(3), a:ints(4), a:int64s(5), a:bytes(6)
    assert.are.same({ 3, 4, 5, 6 }, { #d, #i, #l, #b })
    d[2] = 0.1; i[3] = -7; l[4] = 2^40; b[5] = 255
    assert.are.equal(0.1, d[2])
    assert.are.equal(-7, i[3])
    assert.are.equal(2^40, tonumber(l[4]))
    assert.are.equal(255, b[5])
    a:destroy()
  end)

  it("matrix(r, c) has r rows and c columns", function()
    local a = arena.new{ size = "64KiB" }
    local m = a:matrix(3, 4)
    assert.are.equal(3, tonumber(m.rows))
    assert.are.equal(4, tonumber(m.cols))
    a:destroy()
  end)

  it("views are bounds-checked: index #v and -1 raise", function()
    local a = arena.new{ size = "64KiB" }
    local v = a:floats(10)
    assert.has_error(function() return v[10] end)
    assert.has_error(function() return v[-1] end)
    assert.has_error(function() v[10] = 1 end)
    a:destroy()
  end)

  it("used() counts what views took and capacity() the block; reset() gives everything back", function()
    local a = arena.new{ size = "64KiB" }
    a:floats(100)
    assert.is_true(a:used() >= 400)
    a:reset()
    assert.are.equal(0, a:used())
    assert.are.equal(65536, a:capacity())
    a:destroy()
  end)

  it("exhaustion raises the C message 'arena: out of memory (requested N bytes, align A; U of C bytes used)'", function()
    local a = arena.new{ size = "64KiB" }
    a:floats(1000)   -- 4000 bytes at offset 0
    local ok, err = pcall(function() return a:floats(20000) end)
    assert.is_false(ok)
    assert.are.equal("arena: out of memory (requested 80000 bytes, align 64; 4000 of 65536 bytes used)",
                     tostring(err))
    a:destroy()
  end)

  it("a:alloc returns nil, err instead of raising when the arena is exhausted", function()
    local a = arena.new{ size = "64KiB" }
    local p, err = a:alloc(80000, 64)
    assert.is_nil(p)
    assert.are.equal("arena: out of memory (requested 80000 bytes, align 64; 0 of 65536 bytes used)", err)
    a:destroy()
  end)

  it("a:alloc(n, align) aligns the address to any power of two up to 4096", function()
    local a = arena.new{ size = "64KiB" }
    local k = 1
    while k <= 4096 do
      a:bytes(1)
      local p = assert(a:alloc(8, k))
      assert.are.equal(0, tonumber(ffi.cast("uintptr_t", p) % k))
      k = k * 2
    end
    a:destroy()
  end)

  it("a:alloc refuses an alignment that is not a power of two up to 4096 with nil and the message", function()
    local a = arena.new{ size = "64KiB" }
    for _, bad in ipairs{ 0, 3, 24, 8192 } do
      local p, err = a:alloc(10, bad)
      assert.is_nil(p)
      assert.are.equal("arena: bad alignment " .. bad .. " (expected a power of two from 1 to 4096)", err)
    end
    assert.are.equal(0, a:used())
    a:destroy()
  end)

  it("the fallback strategy really serves a request larger than the arena and frees it at reset", function()
    local a = arena.new{ size = "64KiB", overflow = "fallback" }
    local big = a:bytes(200000)
    assert.are.equal(200000, #big)
    big[199999] = 7
    local s = a:stats()
    assert.are.equal(1, s.fallback_chunks)
    assert.is_true(s.fallback_bytes >= 200000)
    assert.is_true(a:used() >= 200000)
    a:reset()
    assert.are.equal(0, a:used())
    a:destroy()
  end)

  it("stats() reports capacity, used, high-water mark, resets, overflows, fallback and page kind", function()
    local a = arena.new{ size = "64KiB", huge_pages = "off" }
    a:floats(1000)
    pcall(function() return a:floats(100000) end)
    a:reset()
    local s = a:stats()
    assert.are.equal(65536, s.capacity)
    assert.are.equal(0, s.used)
    assert.is_true(s.high_water >= 4000)
    assert.are.equal(1, s.resets)
    assert.are.equal(1, s.overflows)
    assert.are.equal(0, s.fallback_bytes)
    assert.are.equal(0, s.fallback_chunks)
    assert.is_not_nil(s.page_kind)
    a:destroy()
  end)

  it("arena.new with a bad size or overflow raises, naming what is accepted", function()
    assert.has_error(function() arena.new{ size = "12XB" } end)
    local ok, err = pcall(arena.new, { overflow = "bogus" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("error, panic or fallback", 1, true))
  end)
end)

-- ==========================================================================================
describe("docs: views and staleness", function()
  local arena = require("engram.arena")
  local STALE = "arena view used after its burst ended"

  it("a:reset() makes every view stale: reading raises 'arena view used after its burst ended'", function()
    local a = arena.new{ size = "64KiB" }
    local v = a:floats(4)
    a:reset()
    local ok, err = pcall(function() return v[0] end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(STALE, 1, true))
    ok, err = pcall(function() v[0] = 1 end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(STALE, 1, true))
    a:destroy()
  end)

  it("rewinding a mark gives the memory back; views made after the mark go stale, older ones stay", function()
    local a = arena.new{ size = "64KiB" }
    local before = a:floats(4)
    before[0] = 42
    local used = a:used()
    local m = a:mark()
    local inner = a:ints(100)
    assert.is_true(a:used() > used)
    a:rewind(m)
    assert.are.equal(used, a:used())
    assert.are.equal(42, before[0])
    assert.has_error(function() return inner[0] end, nil)
    local ok, err = pcall(function() return inner[0] end)
    assert.truthy(tostring(err):find(STALE, 1, true))
    a:destroy()
  end)

  it("scope(fn, ...) calls fn with the arguments, returns its results and releases what it made", function()
    local a = arena.new{ size = "64KiB" }
    local outer = a:floats(2)
    outer[1] = 3
    local used = a:used()
    local tmpv, x, y = a:scope(function(p, q) local t = a:ints(10); t[0] = 1; return t, p, q end, 5, "six")
    assert.are.equal(5, x)
    assert.are.equal("six", y)
    assert.are.equal(used, a:used())
    local ok, err = pcall(function() return tmpv[0] end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(STALE, 1, true))
    assert.are.equal(3, outer[1])
    a:destroy()
  end)

  it("a view of an arena destroyed by :destroy() reads stale, never freed memory", function()
    local a = arena.new{ size = "64KiB" }
    local v = a:floats(4)
    a:destroy()
    local ok, err = pcall(function() return v[0] end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(STALE, 1, true))
  end)

  it("a view kept past its burst raises 'arena view used after its burst ended' (engram-run)", function()
    local s = script([[
      return function(burst)
        if kept then return kept[0] end
        kept = burst.arena:floats(8)
        kept[0] = 1
        return "kept"
      end
    ]])
    local out, err, status = run{ s, "--workers", "1", "--bursts", "2" }
    assert.are.equal(1, status)
    assert.are.equal('"kept"\n', out)
    assert.truthy(err:find(STALE, 1, true), err)
  end)
end)

-- ==========================================================================================
describe("docs: the store from Lua", function()
  local store = require("engram.store")
  local arena = require("engram.arena")
  after_each(cleanup)

  local function fresh(n, dim)
    local path = tmp(".db")
    local s = assert(store.open{ path = path, dim = dim or 4, create = true })
    if n and n > 0 then assert(s:import(episodes(n, dim or 4))) end
    return s, path
  end

  it("store.open{path, dim, create} creates a store; :import(episodes) counts in :counts()", function()
    local s = fresh(5, 4)
    local c = s:counts()
    assert.are.equal(5, c.memories)
    assert.are.equal(5, c.unconsolidated)
    assert.are.equal(0, c.edges)
    assert.are.equal(0, c.patterns)
    assert.are.equal(0, c.claims)
    s:close()
  end)

  it("opening a missing file without create fails with a message naming the file", function()
    local path = tmp(".db")
    local s, err = store.open{ path = path, dim = 4 }
    assert.is_nil(s)
    assert.truthy(err:find(path, 1, true), err)
    assert.is_false(exists(path))
  end)

  it("opening a file that is not an engram store fails with a message naming the file", function()
    local path = tmp(".db")
    write_file(path, string.rep("not a database ", 500))
    local s, err = store.open{ path = path }
    assert.is_nil(s)
    assert.truthy(err:find(path, 1, true), err)
  end)

  it("opening a store of another dimension fails with a message naming the file", function()
    local s, path = fresh(1, 4)
    s:close()
    local s2, err = store.open{ path = path, dim = 8 }
    assert.is_nil(s2)
    assert.truthy(err:find(path, 1, true), err)
  end)

  it("opening a store of another schema version fails with a message naming the file", function()
    local s, path = fresh(1, 4)
    s:close()
    local _, _, status = sh("sqlite3 " .. shq(path) .. " 'PRAGMA user_version = 99;'")
    if status ~= 0 then pending("no sqlite3 command line tool") return end
    local s2, err = store.open{ path = path }
    assert.is_nil(s2)
    assert.truthy(err:find(path, 1, true), err)
  end)

  it("the file is SQLite in WAL mode, schema version 2, with the documented tables", function()
    local s, path = fresh(2, 4)
    s:close()
    local out, _, status = sh("sqlite3 " .. shq(path) ..
      " 'PRAGMA journal_mode; PRAGMA user_version; SELECT name FROM sqlite_master WHERE type=\"table\" ORDER BY name;'")
    if status ~= 0 then pending("no sqlite3 command line tool") return end
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("wal", lines[1])
    assert.are.equal("2", lines[2])
    local tables = {}
    for i = 3, #lines do tables[lines[i]] = true end
    for _, t in ipairs{ "memories", "embeddings", "contents", "patterns", "pattern_members", "meta" } do
      assert.is_true(tables[t] == true, "table " .. t)
    end
  end)

  it("import refuses a duplicate id, a wrong dimension and a strength outside 0..1, and imports none of them", function()
    local s = fresh(2, 4)
    local n, err = s:import{ { id = 1, content = "dup", embedding = { 1, 0, 0, 0 }, created_at = 1 } }
    assert.is_nil(n); assert.is_string(err)
    n, err = s:import{ { id = 10, content = "x", embedding = { 1, 0, 0 }, created_at = 1 } }
    assert.is_nil(n); assert.is_string(err)
    n, err = s:import{ { id = 11, content = "x", embedding = { 1, 0, 0, 0 }, created_at = 1, strength = 2 } }
    assert.is_nil(n); assert.is_string(err)
    n, err = s:import{ { id = 12, content = "ok", embedding = { 1, 0, 0, 0 }, created_at = 1 },
                       { id = 1, content = "dup", embedding = { 1, 0, 0, 0 }, created_at = 1 } }
    assert.is_nil(n); assert.is_string(err)
    assert.are.equal(2, s:counts().memories)
    s:close()
  end)

  it(":load(arena, {batch, context}) claims up to batch episodes, newest first, embeddings 64-byte aligned", function()
    local s = fresh(5, 4)
    local a = arena.new{ size = "1MiB" }
    local b = assert(s:load(a, { batch = 3, context = 0 }))
    assert.are.equal(3, b.n)
    assert.are.equal(4, b.dim)
    assert.are.same({ 5, 4, 3 }, { tonumber(b.ids[0]), tonumber(b.ids[1]), tonumber(b.ids[2]) })
    assert.are.equal(0, tonumber(ffi.cast("uintptr_t", b.embeddings.ptr) % 64))
    assert.are.equal(3, s:counts().claims)
    -- claimed episodes are not loaded again while the claim holds
    local b2 = assert(s:load(a, { batch = 10, context = 0 }))
    assert.are.equal(2, b2.n)
    assert.are.same({ 2, 1 }, { tonumber(b2.ids[0]), tonumber(b2.ids[1]) })
    s:release(b)
    s:release(b2)
    assert.are.equal(0, s:counts().claims)
    a:destroy()
    s:close()
  end)

  it("what :load returns lives in the arena given to it and goes stale with it", function()
    local s = fresh(2, 4)
    local a = arena.new{ size = "1MiB" }
    local b = assert(s:load(a, { batch = 2, context = 0 }))
    s:release(b)
    a:reset()
    assert.has_error(function() return b.ids[0] end)
    a:destroy()
    s:close()
  end)

  it(":release(batch) gives the claims back: the episodes become loadable again", function()
    local s = fresh(3, 4)
    local a = arena.new{ size = "1MiB" }
    local b = assert(s:load(a, { batch = 10, context = 0 }))
    assert.are.equal(3, b.n)
    s:release(b)
    a:reset()
    local b2 = assert(s:load(a, { batch = 10, context = 0 }))
    assert.are.equal(3, b2.n)
    s:release_pending()
    assert.are.equal(0, s:counts().claims)
    a:destroy()
    s:close()
  end)

  it(":commit(arena, batch, changes) writes the consolidated flags and releases the claims", function()
    local s = fresh(3, 4)
    local a = arena.new{ size = "1MiB" }
    local b = assert(s:load(a, { batch = 10, context = 0 }))
    assert(s:commit(a, b, { consolidated = { 1, 2, 3 } }))
    local c = s:counts()
    assert.are.equal(0, c.unconsolidated)
    assert.are.equal(0, c.claims)
    a:destroy()
    s:close()
  end)

  it("a commit of an episode the burst did not claim returns nil, err and changes nothing", function()
    local s = fresh(3, 4)
    local a = arena.new{ size = "1MiB" }
    local b = assert(s:load(a, { batch = 2, context = 0 }))   -- claims 3 and 2
    local ok, err = s:commit(a, b, { consolidated = { 3, 1 } })
    assert.is_nil(ok)
    assert.is_string(err)
    assert.are.equal(3, s:counts().unconsolidated)
    s:release_pending()
    a:destroy()
    s:close()
  end)

  it("s:commit(arena, b, changes) as written in the store.lua header commits", function()
    local s = fresh(1, 4)
    local a = arena.new{ size = "1MiB" }
    local b = assert(s:load(a, { batch = 1, context = 0 }))
    local ok, res = pcall(s.commit, s, a, b, { consolidated = { 1 } })
    s:release_pending()
    a:destroy()
    s:close()
    assert.is_true(ok, tostring(res))
    assert.truthy(res)
  end)

  it(":summary() gives the strength distribution", function()
    local s = fresh(2, 4)
    local su = s:summary()
    assert.are.equal(2, su.memories)
    for _, k in ipairs{ "strength_mean", "strength_min", "strength_p10", "strength_p50",
                        "strength_p90", "strength_max" } do
      assert.is_number(su[k], k)
    end
    assert.is_true(su.strength_min <= su.strength_p50 and su.strength_p50 <= su.strength_max)
    s:close()
  end)
end)

-- ==========================================================================================
describe("docs: import (engram.import, JSON Lines)", function()
  local import = require("engram.import")
  local store = require("engram.store")
  after_each(cleanup)

  it("import.file(jsonl, db) returns the number of episodes and creates the store with the file's dimension", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, jsonl(episodes(4, 6)))
    assert.are.equal(4, import.file(f, db))
    local s = assert(store.open{ path = db })
    assert.are.equal(4, s:counts().memories)
    s:close()
  end)

  it("accepts created_at as seconds or as 2026-11-01T12:00:00Z, and the optional fields", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, table.concat({
      '{"id": 1, "content": "a", "embedding": [1, 0], "created_at": 1790000000}',
      '{"id": 2, "content": "b", "embedding": [0, 1], "created_at": "2026-11-01T12:00:00Z", ' ..
        '"last_access": "2026-11-02T00:00:00Z", "access_count": 3, "strength": 0.75}',
    }, "\n") .. "\n")
    assert.are.equal(2, import.file(f, db))
  end)

  it("a malformed file is reported as FILE:LINE:COLUMN: what (expected ...) and imports nothing", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, jsonl(episodes(2, 4)) .. '{"id":3 x}\n')
    local n, err = import.file(f, db)
    assert.is_nil(n)
    assert.are.equal(f .. ":3:9: unexpected 'x' (expected ',' or '}' after a value)", err)
    assert.is_false(exists(db))
  end)

  it("a duplicate id rolls the whole import back (all or nothing), also into an existing store", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, jsonl(episodes(2, 4)))
    assert.are.equal(2, import.file(f, db))
    local f2 = tmp(".jsonl")
    write_file(f2, jsonl(episodes(3, 4, 3)) .. jsonl(episodes(1, 4, 1)))   -- 3, 4, 5 then 1 again
    local n, err = import.file(f2, db)
    assert.is_nil(n)
    assert.is_string(err)
    local s = assert(store.open{ path = db })
    assert.are.equal(2, s:counts().memories)
    s:close()
  end)

  it("a strength outside 0..1 is refused and nothing is imported", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, '{"id":1,"content":"a","embedding":[1,0],"created_at":1}\n' ..
                  '{"id":2,"content":"b","embedding":[1,0],"created_at":1,"strength":1.5}\n')
    local n, err = import.file(f, db)
    assert.is_nil(n)
    assert.truthy(err:find(":2:", 1, true), err)
    assert.is_false(exists(db))
  end)
end)

-- ==========================================================================================
describe("docs: pipeline parameters (engram.pipeline.params)", function()
  local P = require("engram.pipeline")

  it("gives the defaults of the README table", function()
    local p = P.params({})
    assert.are.equal(100, p.batch)
    assert.are.equal(64, p.context)
    assert.are.equal(0.3, p.link_threshold)
    assert.are.equal(0.8, p.cluster_threshold)
    assert.are.equal(3, p.min_cluster)
    assert.are.equal(0.9, p.pattern_merge)
    assert.are.equal(4, p.spread_depth)
    assert.are.equal(0.7, p.spread_rate)
    assert.are.equal(0.01, p.spread_threshold)
    assert.are.equal(7 * 86400, p.half_life)
    assert.are.equal(0.18, p.beta)
    assert.are.equal(3, p.k)
    assert.are.equal(0.05, p.floor)
    assert.are.equal(0.2, p.reinforce)
  end)

  it("now = 0 means the current time", function()
    local p = P.params({ now = 0 })
    assert.is_true(math.abs(p.now - os.time()) < 600)
    assert.are.equal(1800000000, P.params({ now = 1800000000 }).now)
  end)

  it("overrides are applied, and durations read 90s, 36h, 7d, 1h30m", function()
    assert.are.equal(50, P.params({ batch = 50 }).batch)
    assert.are.equal(50, P.params({ batch = "50" }).batch)
    assert.are.equal(90, P.params({ half_life = "90s" }).half_life)
    assert.are.equal(36 * 3600, P.params({ half_life = "36h" }).half_life)
    assert.are.equal(7 * 86400, P.params({ half_life = "7d" }).half_life)
    assert.are.equal(5400, P.params({ half_life = "1h30m" }).half_life)
  end)

  it("an unknown parameter is an error that names it", function()
    local ok, err = pcall(P.params, { bogus = 1 })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bogus", 1, true), err)
  end)

  it("out-of-range values are errors that name the parameter and what it accepts", function()
    for name, bad in pairs{ batch = 0, link_threshold = 1.5, floor = 2, min_cluster = 1.5, spread_rate = -1 } do
      local ok, err = pcall(P.params, { [name] = bad })
      assert.is_false(ok, name)
      err = tostring(err)
      assert.truthy(err:find(name, 1, true), err)
      assert.truthy(err:find("expected", 1, true), err)
    end
  end)
end)

-- ==========================================================================================
describe("docs: parse grammars (engram.parse)", function()
  local parse = require("engram.parse")

  it("duration: 1h30m -> 5400, 90s, 36h, 7d", function()
    assert.are.equal(5400, parse.duration("1h30m"))
    assert.are.equal(90, parse.duration("90s"))
    assert.are.equal(129600, parse.duration("36h"))
    assert.are.equal(604800, parse.duration("7d"))
  end)

  it("duration: bad input returns nil and the documented message", function()
    local v, err = parse.duration("36x")
    assert.is_nil(v)
    assert.are.equal("duration: bad value '36x' at column 3 (expected a number with s, m, h, d or w, like 90s, 36h, 7d)", err)
  end)

  it("size: 8MiB -> 8388608 and the other documented forms", function()
    assert.are.equal(8388608, parse.size("8MiB"))
    assert.are.equal(1048576, parse.size("1048576"))
    assert.are.equal(65536, parse.size("64KiB"))
    assert.are.equal(1073741824, parse.size("1GiB"))
    assert.are.equal(65536, parse.size("64K"))
    assert.are.equal(8388608, parse.size("8M"))
    assert.are.equal(1073741824, parse.size("1G"))
    local v, err = parse.size("12XB")
    assert.is_nil(v)
    assert.is_string(err)
  end)

  it("params: the header's example, {batch=50, max_age=604800}", function()
    local p = parse.params({ "batch=50", "max_age=7d" }, { batch = "integer", max_age = "duration" })
    assert.are.same({ batch = 50, max_age = 604800 }, p)
  end)

  it("params: bad input returns nil, err saying what was wrong and what was expected", function()
    local p, err = parse.params({ "batch=x" }, { batch = "integer" })
    assert.is_nil(p)
    assert.truthy(err:find("batch", 1, true) and err:find("expected", 1, true), err)
    p, err = parse.params({ "nope=1" }, { batch = "integer" })
    assert.is_nil(p)
    assert.truthy(err:find("nope", 1, true), err)
  end)

  it("misuse (a non-string, a bad schema) raises", function()
    assert.has_error(function() parse.duration(5) end)
    assert.has_error(function() parse.params({ "batch=1" }, { batch = "wat" }) end)
  end)

  it("episodes: the header's example error 'episodes.jsonl:3:17: unexpected 'x' (expected ',' or '}' after a value)'", function()
    local text = '{"id":1,"content":"a","embedding":[1],"created_at":1}\n' ..
                 '{"id":2,"content":"b","embedding":[1],"created_at":1}\n' ..
                 '{"id":3,"content":"c" x}\n'
    -- a third line whose 'x' is character 17, as in the header's example
    text = text:gsub('{"id":3,"content":"c" x}', '{"id":3,"c":"c" x}')
    local eps, err = parse.episodes(text, { name = "episodes.jsonl" })
    assert.is_nil(eps)
    assert.are.equal("episodes.jsonl:3:17: unexpected 'x' (expected ',' or '}' after a value)", err)
  end)

  it("episodes: columns count UTF-8 code points from 1", function()
    local eps, err = parse.episodes('{"content":"ééé" x}\n', { name = "f" })
    assert.is_nil(eps)
    assert.are.equal("f:1:18: unexpected 'x' (expected ',' or '}' after a value)", err)
  end)

  it("episodes: within a line, syntax errors are found before schema errors", function()
    local eps, err = parse.episodes('{"id":"not a number","embedding":[1] x}\n', { name = "f" })
    assert.is_nil(eps)
    assert.truthy(err:find("^f:1:38: unexpected 'x'"), err)
  end)

  it("episodes: returns fresh tables with id, content, embedding, created_at (ISO 8601 read as seconds)", function()
    local eps = assert(parse.episodes(
      '{"id":7,"content":"x","embedding":[0.5,2],"created_at":"2026-11-01T12:00:00Z","strength":0.25}\n'))
    assert.are.equal(1, #eps)
    assert.are.equal(7, eps[1].id)
    assert.are.equal("x", eps[1].content)
    assert.are.same({ 0.5, 2 }, eps[1].embedding)
    assert.are.equal(1793534400, eps[1].created_at)
    assert.are.equal(0.25, eps[1].strength)
  end)

  it("episodes_file names the file in its FILE:LINE:COLUMN errors", function()
    local path = tmp(".jsonl")
    write_file(path, '{"id":1,"content":"a","embedding":[1],"created_at":1}\n{"id":2 x}\n')
    local eps, err = parse.episodes_file(path)
    assert.is_nil(eps)
    assert.are.equal(path .. ":2:9: unexpected 'x' (expected ',' or '}' after a value)", err)
    cleanup()
  end)

  it("bad input is never raised: a missing file is nil, err", function()
    local eps, err = parse.episodes_file("/nonexistent/episodes.jsonl")
    assert.is_nil(eps)
    assert.is_string(err)
  end)
end)

-- ==========================================================================================
describe("docs: kernels and pools from Lua", function()
  local K = require("engram.kernels")
  local pool = require("engram.pool")

  it("K.cosine(query, rows, n, d, scores) over raw FFI pointers", function()
    local q = ffi.new("float[4]", { 1, 0, 0, 0 })
    local rows = ffi.new("float[8]", { 2, 0, 0, 0, 0, 3, 0, 0 })
    local sc = ffi.new("float[2]")
    assert.truthy(K.cosine(q, rows, 2, 4, sc))
    assert.are.equal(1, sc[0])
    assert.are.equal(0, sc[1])
  end)

  it("misuse (a wrong type) raises; a graph out of range returns nil and the library's message", function()
    local rows = ffi.new("float[4]")
    assert.has_error(function() K.cosine("x", rows, 1, 4, ffi.new("float[1]")) end)
    local off = ffi.new("uint32_t[3]", { 0, 1, 1 })
    local tg = ffi.new("uint32_t[1]", { 5 })
    local w = ffi.new("float[1]", { 1 })
    local g = K.csr(2, 1, off, tg, w)
    local act = ffi.new("float[2]")
    local ok, err = K.spread_bounded(g, ffi.new("uint32_t[1]", { 0 }), 1, act, { max_depth = 3 })
    assert.is_nil(ok)
    assert.truthy(err:find("^spread: "), err)
    assert.are.equal(0, act[1])
  end)

  it("bounded spread: hop 1 multiplies by exp(-rate)", function()
    local off = ffi.new("uint32_t[3]", { 0, 1, 1 })
    local g = K.csr(2, 1, off, ffi.new("uint32_t[1]", { 1 }), ffi.new("float[1]", { 1 }))
    local act = ffi.new("float[2]")
    assert.truthy(K.spread_bounded(g, ffi.new("uint32_t[1]", { 0 }), 1, act, { max_depth = 3 }))
    assert.are.equal(1, act[0])
    assert.is_true(math.abs(act[1] - math.exp(-0.7)) < 1e-6)
  end)

  it("decay half_life: f = 0.5 at t = half_life", function()
    local st = ffi.new("float[2]", { 1, 1 })
    local age = ffi.new("float[2]", { 86400, 0 })
    assert.truthy(K.decay({ model = "half_life", half_life = 86400 }, st, age, 2))
    assert.is_true(math.abs(st[0] - 0.5) < 1e-6)
    assert.are.equal(1, st[1])
  end)

  it("a pool's acquire returns nil, err at the memory cap, naming the cap", function()
    local p = pool.new{ name = "docs-tiny", size = 4096, max_bytes = 8192 }
    assert.truthy(p:acquire())
    assert.truthy(p:acquire())
    local o, err = p:acquire()
    assert.is_nil(o)
    assert.truthy(err:find("cap", 1, true), err)
    p:destroy()
  end)

  it("the last object released is the next one acquired (LIFO)", function()
    local p = pool.new{ name = "docs-lifo", size = 24, align = 8,
                        ctype = "struct { int32_t src, dst; float w; } *" }
    local a, b = p:acquire(), p:acquire()
    p:release(a)
    p:release(b)
    assert.are.equal(ffi.cast("uintptr_t", b), ffi.cast("uintptr_t", p:acquire()))
    p:destroy()
  end)

  it("vector pools give float * slots 64-byte aligned", function()
    local v = pool.vectors{ name = "docs-vec", dim = 3 }
    for _ = 1, 4 do
      local x = v:acquire()
      assert.are.equal(0, tonumber(ffi.cast("uintptr_t", x) % 64))
    end
    v:destroy()
  end)

  it("pool.stats_json() is the process-wide report with the documented top-level keys", function()
    local p = pool.new{ name = "docs-json", size = 8 }
    p:acquire()
    local j = pool.stats_json()
    for _, k in ipairs{ '"version": "0.1.0"', '"process"', '"thread_arena"', '"pools"', '"arena_caches"', '"docs-json"' } do
      assert.truthy(j:find(k, 1, true), k)
    end
    p:destroy()
  end)
end)

-- ==========================================================================================
describe("docs: engram-run scripts, results and exit statuses", function()
  after_each(cleanup)

  it("--help prints the usage and exits 0", function()
    local out, _, status = run{ "--help" }
    assert.are.equal(0, status)
    assert.truthy(out:find("usage: engram-run SCRIPT", 1, true))
  end)

  it("each burst's return values are printed as one JSON line, in burst order (exit 0)", function()
    local out, _, status = run{ root .. "/scripts/examples/hello.lua", "--bursts", "3", "--param", "n=1000" }
    assert.are.equal(0, status)
    local ids = {}
    for line in out:gmatch("[^\n]+") do
      ids[#ids + 1] = tonumber(line:match('"burst":(%d+)'))
      assert.truthy(line:find('"n":1000', 1, true))
      assert.truthy(line:find('"sum":249750', 1, true))
      assert.truthy(line:find('"arena_used":4000', 1, true), line)
    end
    assert.are.same({ 1, 2, 3 }, ids)
  end)

  it("no value -> null, one value -> that value, several -> an array", function()
    local s0 = script("return function(b) end")
    local s1 = script("return function(b) return 7 end")
    local s3 = script('return function(b) return 1, "two", {3} end')
    assert.are.equal("null\n", (run{ s0 }))
    assert.are.equal("7\n", (run{ s1 }))
    assert.are.equal('[1,"two",[3]]\n', (run{ s3 }))
  end)

  it("tables with keys exactly 1..n are arrays, others objects with keys in byte order; NaN and infinities are null", function()
    local s = script("return function(b) return { b = 1, a = 2, B = 3, [2] = 4 }, { 1, 2, 3 }, 0/0, math.huge, -math.huge end")
    local out, _, status = run{ s }
    assert.are.equal(0, status)
    assert.are.equal('[{"2":4,"B":3,"a":2,"b":1},[1,2,3],null,null,null]\n', out)
  end)

  it("a function in the result is an error (exit 1)", function()
    local _, _, status = run{ script("return function(b) return print end") }
    assert.are.equal(1, status)
  end)

  it("a table of stage functions is called in order, stage i gets what stage i-1 returned", function()
    local s = script([[
      return { function(b) return 2 end, function(b, x) return x * 10 end, function(b, x) return x + 1, b.id end }
    ]])
    local out, _, status = run{ s }
    assert.are.equal(0, status)
    assert.are.equal("[21,1]\n", out)
  end)

  it("--param KEY=VALUE becomes burst.params.KEY, a number when VALUE reads as one", function()
    local s = script("return function(b) return b.params end")
    local out, _, status = run{ s, "--param", "a=1", "--param", "b=x", "--param", "c=1.5" }
    assert.are.equal(0, status)
    assert.are.equal('{"a":1,"b":"x","c":1.5}\n', out)
  end)

  it("burst.arena is released when the call ends, however it ends", function()
    local s = script([[
      return function(b)
        local used = b.arena:used()
        b.arena:floats(1000)
        if b.id == 1 then error("first burst fails") end
        return used
      end
    ]])
    local out, _, status = run{ s, "--workers", "1", "--bursts", "3" }
    assert.are.equal(1, status)
    assert.are.equal("0\n0\n", out)
  end)

  it("a script error exits 1 and names the file and line, with a traceback", function()
    local out, err, status = run{ root .. "/scripts/examples/failing.lua" }
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.truthy(err:find("failing.lua:5: asked to fail", 1, true), err)
    assert.truthy(err:find("stack traceback", 1, true), err)
  end)

  it("the same script succeeds with --param fail=no (exit 0)", function()
    local out, _, status = run{ root .. "/scripts/examples/failing.lua", "--param", "fail=no" }
    assert.are.equal(0, status)
    assert.are.equal('"ok"\n', out)
  end)

  it("a script that does not compile exits 1, naming the file and line", function()
    local s = script("return function(\n  x = \nend\n")
    local _, err, status = run{ s }
    assert.are.equal(1, status)
    assert.truthy(err:find(s .. ":2:", 1, true), err)
  end)

  it("a deadline (--timeout) stops a runaway JIT loop: exit 1", function()
    local _, err, status = run{ root .. "/scripts/examples/runaway.lua", "--timeout", "100" }
    assert.are.equal(1, status)
    assert.truthy(err:find("deadline", 1, true), err)
  end)

  it("the Lua heap limit (--lua-heap) fails the burst: exit 1", function()
    local s = script([[
      return function(b)
        local t = {}
        for i = 1, 1e7 do t[i] = { i } end
        return #t
      end
    ]])
    local _, _, status = run{ s, "--lua-heap", "4MiB" }
    assert.are.equal(1, status)
  end)

  it("the arena limit fails the burst: exit 1 with the arena's message", function()
    local s = script("return function(b) return #b.arena:floats(1e6) end")
    local _, err, status = run{ s, "--arena-size", "64KiB" }
    assert.are.equal(1, status)
    assert.truthy(err:find("arena: out of memory", 1, true), err)
  end)

  it("--overflow fallback serves what does not fit the arena (exit 0)", function()
    local s = script("return function(b) return #b.arena:floats(1e5) end")
    local out, _, status = run{ s, "--arena-size", "64KiB", "--overflow", "fallback" }
    assert.are.equal(0, status)
    assert.are.equal("100000\n", out)
  end)

  it("usage errors exit 2 and name the flag and the accepted forms", function()
    local s = script("return function(b) return 1 end")
    local cases = {
      { { s, "--bogus" }, "--bogus" },
      { { s, "--workers", "0" }, "--workers" },
      { { s, "--workers", "257" }, "--workers" },
      { { s, "--overflow", "maybe" }, "error, panic or fallback" },
      { { s, "--arena-size", "12XB" }, "--arena-size" },
      { { s, "--timeout", "abc" }, "--timeout" },
      { { s, "--bursts", "0" }, "--bursts" },
      { { s, "--param", "novalue" }, "KEY=VALUE" },
      { { s, "--lua-heap", "100K" }, "--lua-heap" },
      { { s, "--stats=xml" }, "--stats" },
    }
    for _, c in ipairs(cases) do
      local out, err, status = run(c[1])
      assert.are.equal(2, status, table.concat(c[1], " "))
      assert.are.equal("", out)
      assert.truthy(err:find(c[2], 1, true), err)
    end
  end)

  it("a missing SCRIPT is a usage error (exit 2)", function()
    local _, err, status = run{}
    assert.are.equal(2, status)
    assert.truthy(err:find("SCRIPT", 1, true), err)
    _, _, status = run{ "/nonexistent/script.lua" }
    assert.are.equal(2, status)
  end)

  it("--stats prints runtime and arena stats; --stats=json prints one JSON line", function()
    local s = script("return function(b) return 1 end")
    local out, _, status = run{ s, "--quiet", "--stats=json" }
    assert.are.equal(0, status)
    local lines = 0
    for _ in out:gmatch("[^\n]+") do lines = lines + 1 end
    assert.are.equal(1, lines)
    assert.truthy(out:find('^{'))
    assert.truthy(out:find('"workers"', 1, true))
    out, _, status = run{ s, "--quiet", "--stats" }
    assert.are.equal(0, status)
    assert.truthy(out:find("arenas", 1, true))
  end)

  it("--quiet does not print the results", function()
    local out, _, status = run{ script("return function(b) return 1 end"), "--quiet" }
    assert.are.equal(0, status)
    assert.are.equal("", out)
  end)

  it("a bad ENGRAM_ARENA_SIZE is never ignored: the run fails, naming the variable, value and accepted forms", function()
    local s = script("return function(b) return 1 end")
    local out, err, status = run({ s }, "ENGRAM_ARENA_SIZE=12XB")
    assert.are_not.equal(0, status)
    assert.are.equal("", out)
    assert.truthy(err:find("config: bad ENGRAM_ARENA_SIZE '12XB' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)", 1, true), err)
  end)

  it("README's example output for ENGRAM_ARENA_SIZE=12XB is exactly its line, with exit status 2", function()
    local _, err, status = run({ root .. "/scripts/consolidate.lua" }, "ENGRAM_ARENA_SIZE=12XB")
    assert.are.equal("engram-run: config: bad ENGRAM_ARENA_SIZE '12XB' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)\n", err)
    assert.are.equal(2, status)
  end)

  it("an empty environment variable counts as unset", function()
    local s = script("return function(b) return b.arena:capacity() end")
    local out, _, status = run({ s }, "ENGRAM_ARENA_SIZE= ENGRAM_ARENA_OVERFLOW=")
    assert.are.equal(0, status)
    assert.are.equal("1048576\n", out)
  end)

  it("ENGRAM_ARENA_SIZE sets the arena per worker; --arena-size overrides it", function()
    local s = script("return function(b) return b.arena:capacity() end")
    local out = run({ s }, "ENGRAM_ARENA_SIZE=2MiB")
    assert.are.equal("2097152\n", out)
    out = run({ s, "--arena-size", "128KiB" }, "ENGRAM_ARENA_SIZE=2MiB")
    assert.are.equal("131072\n", out)
  end)

  it("a bad ENGRAM_ARENA_OVERFLOW is never ignored", function()
    local s = script("return function(b) return 1 end")
    local _, err, status = run({ s }, "ENGRAM_ARENA_OVERFLOW=sometimes")
    assert.are_not.equal(0, status)
    assert.truthy(err:find("ENGRAM_ARENA_OVERFLOW", 1, true), err)
    assert.truthy(err:find("sometimes", 1, true), err)
  end)
end)

-- ==========================================================================================
describe("docs: the default pipeline through engram-run", function()
  local store = require("engram.store")
  after_each(cleanup)

  local function make_db(n)
    local db = tmp(".db")
    local s = assert(store.open{ path = db, dim = 16, create = true })
    assert(s:import(episodes(n, 16)))
    s:close()
    return db
  end

  local function counts(db)
    local s = assert(store.open{ path = db })
    local c = s:counts()
    s:close()
    return c
  end

  it("engram-run import FILE --db PATH imports a JSON Lines file (exit 0)", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, jsonl(episodes(5, 8)))
    local _, _, status = run{ "import", f, "--db", db }
    assert.are.equal(0, status)
    assert.are.equal(5, counts(db).memories)
  end)

  it("engram-run import of a malformed file exits 1 with FILE:LINE:COLUMN and imports nothing", function()
    local f, db = tmp(".jsonl"), tmp(".db")
    write_file(f, jsonl(episodes(2, 4)) .. '{"id":3 x}\n')
    local _, err, status = run{ "import", f, "--db", db }
    assert.are.equal(1, status)
    assert.truthy(err:find(f .. ":3:9: unexpected 'x' (expected ',' or '}' after a value)", 1, true), err)
    assert.is_false(exists(db))
  end)

  it("engram-run import without --db is a usage error (exit 2)", function()
    local f = tmp(".jsonl")
    write_file(f, jsonl(episodes(1, 4)))
    local _, err, status = run{ "import", f }
    assert.are.equal(2, status)
    assert.truthy(err:find("--db", 1, true), err)
  end)

  it("consolidates: returns {episodes, links, patterns, touched, timings}; the next burst finds nothing", function()
    local db = make_db(30)
    local out, err, status = run{ root .. "/scripts/consolidate.lua", "--db", db, "--workers", "1",
                                  "--bursts", "2", "--param", "link_threshold=0.35" }
    assert.are.equal(0, status, err)
    local l1, l2 = out:match("^([^\n]+)\n([^\n]+)\n$")
    assert.truthy(l1, out)
    assert.are.equal(30, tonumber(l1:match('"episodes":(%d+)')))
    assert.truthy(tonumber(l1:match('"links":(%d+)')) > 0)
    assert.truthy(l1:match('"patterns":(%d+)'))
    assert.truthy(l1:match('"touched":(%d+)'))
    for _, k in ipairs{ "load", "similarity", "patterns", "spread", "decay", "store" } do
      assert.truthy(l1:find('"' .. k .. '":', 1, true), k)
    end
    assert.are.equal(0, tonumber(l2:match('"episodes":(%d+)')))
    local c = counts(db)
    assert.are.equal(0, c.unconsolidated)
    assert.are.equal(0, c.claims)
    assert.is_true(c.edges > 0)
  end)

  it("batch limits the episodes per burst, newest first", function()
    local db = make_db(30)
    local out, _, status = run{ root .. "/scripts/consolidate.lua", "--db", db, "--workers", "1",
                                "--param", "batch=10" }
    assert.are.equal(0, status)
    assert.are.equal(10, tonumber(out:match('"episodes":(%d+)')))
    assert.are.equal(20, counts(db).unconsolidated)
  end)

  it("an unknown parameter fails the burst (exit 1), names it, and the store keeps its state", function()
    local db = make_db(10)
    local _, err, status = run{ root .. "/scripts/consolidate.lua", "--db", db, "--param", "bogus=1" }
    assert.are.equal(1, status)
    assert.truthy(err:find("bogus", 1, true), err)
    local c = counts(db)
    assert.are.equal(10, c.unconsolidated)
    assert.are.equal(0, c.edges)
    assert.are.equal(0, c.claims)
  end)

  it("a failed burst writes nothing and the host gives back its claims", function()
    local db = make_db(10)
    local s = script([[
      local P = require("engram.pipeline")
      return function(burst)
        local params = P.params(burst.params)
        local b = P.load(burst, params)
        error("fails after load with " .. b.n .. " episodes claimed")
      end
    ]])
    local _, err, status = run{ s, "--db", db }
    assert.are.equal(1, status)
    assert.truthy(err:find("fails after load with 10 episodes claimed", 1, true), err)
    local c = counts(db)
    assert.are.equal(10, c.unconsolidated)
    assert.are.equal(0, c.claims)
  end)

  it("the README's example pipeline runs as written", function()
    local db = make_db(12)
    local s = script([[
      local P = require("engram.pipeline")
      return function(burst)
        local params = P.params(burst.params)
        local b = P.load(burst, params)
        if not b then return { episodes = 0 } end
        local links, close = P.similarity(burst.arena, b, params)
        local patterns = P.patterns(burst.arena, b, close, params)
        local act, touched = P.spread(burst.arena, b, P.graph(burst.arena, b, links), params)
        local strength = P.decay(burst.arena, b, act, touched, params)
        P.store(burst, b, links, patterns, act, touched, strength, params)
        return { episodes = b.n, links = links.n, patterns = patterns.count }
      end
    ]])
    local out, err, status = run{ s, "--db", db, "--bursts", "2", "--workers", "1" }
    assert.are.equal(0, status, err)
    local l1, l2 = out:match("^([^\n]+)\n([^\n]+)\n$")
    assert.are.equal(12, tonumber(l1:match('"episodes":(%d+)')))
    assert.are.equal('{"episodes":0}', l2)
    assert.are.equal(0, counts(db).unconsolidated)
  end)

  it("engram-run demo --episodes N generates, consolidates everything and prints what changed (exit 0)", function()
    local db = tmp(".db")
    local out, err, status = run{ "demo", "--db", db, "--episodes", "100" }
    assert.are.equal(0, status, err)
    assert.truthy(out:find("consolidated 100 episodes", 1, true), out)
    for _, k in ipairs{ "edges", "patterns", "strength" } do
      assert.truthy(out:find(k, 1, true), k)
    end
    local c = counts(db)
    assert.are.equal(100, c.memories)
    assert.are.equal(0, c.unconsolidated)
  end)
end)
