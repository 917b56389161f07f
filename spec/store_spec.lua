-- The store from Lua (engram.store): import, load into arena views, commit, conflicts.
local store = require("engram.store")
local arena = require("engram.arena")

local function tmpdb()
  local path = os.tmpname()
  os.remove(path)
  return path .. ".db"
end

local function episodes(n, dim, first)
  local t = {}
  for i = 1, n do
    local id = (first or 1) + i - 1
    local e = {}
    for k = 1, dim do e[k] = math.sin(id * 7 + k) end
    t[i] = { id = id, content = "episode " .. id, embedding = e, created_at = 1000 + id, strength = 0.5 }
  end
  return t
end

describe("engram.store", function()
  local path, s, a
  before_each(function()
    path = tmpdb()
    s = assert(store.open{ path = path, dim = 8, create = true })
    a = arena.new{ size = "1MiB" }
  end)
  after_each(function()
    s:close()
    a:destroy()
    os.remove(path); os.remove(path .. "-wal"); os.remove(path .. "-shm")
  end)

  it("imports episodes and loads them back into arena views, newest first", function()
    assert.are.equal(10, s:import(episodes(10, 8)))
    local b = assert(s:load(a, { batch = 4, context = 0 }))
    assert.are.equal(4, b.n)
    assert.are.same({ 10, 9, 8, 7 }, b.ids:totable())
    assert.are.equal(8, b.embeddings.cols)
    local want = math.sin(10 * 7 + 3)
    assert.is_true(math.abs(b.embeddings:get(0, 2) - want) < 1e-6)
    assert.are.equal(1010, b.created_at[0])
    assert.are.equal(0.5, b.strength[3])
    assert.are.same({ memories = 10, unconsolidated = 10, edges = 0, patterns = 0, claims = 4 }, s:counts())
  end)

  it("refuses an import with a wrong dimension and keeps nothing of it", function()
    local eps = episodes(3, 8)
    eps[3].embedding = { 1, 2, 3 }
    local n, err = s:import(eps)
    assert.is_nil(n)
    assert.are.equal("store: episode 3 has 3 embedding values (expected 8)", err)
    assert.are.equal(0, s:counts().memories)
  end)

  it("commits a burst's changes and refuses to commit the same claim twice", function()
    s:import(episodes(5, 8))
    local b = assert(s:load(a, { batch = 5, context = 0 }))
    local ok = assert(s:commit(a, b, {
      consolidated = b.ids,
      updates = { ids = b.ids, strength = { 0.1, 0.2, 0.3, 0.4, 0.5 }, activation = b.activation },
      edges = { src = { 1, 2 }, dst = { 2, 3 }, weight = { 0.5, 0.25 } },
    }))
    assert.is_true(ok)
    assert.are.same({ memories = 5, unconsolidated = 0, edges = 2, patterns = 0, claims = 0 }, s:counts())
    local again, err = s:commit(a, b, { consolidated = b.ids })
    assert.is_nil(again)
    assert.matches("is not claimed by this burst", err)
  end)

  it("makes a burst's views stale when the arena is reset", function()
    s:import(episodes(2, 8))
    local b = assert(s:load(a, { batch = 2, context = 0 }))
    a:reset()
    assert.has_error(function() return b.ids[0] end, arena.STALE)
    assert.has_error(function() return b.embeddings:get(0, 0) end, arena.STALE)
  end)

  it("rolls an import back when a field does not convert, and stays usable", function()
    local eps = episodes(3, 8)
    eps[2].id = "two"
    assert.has_error(function() s:import(eps) end)
    assert.are.equal(0, s:counts().memories)
    assert.are.equal(3, s:import(episodes(3, 8)))     -- no import left open
  end)

  it("refuses columns of the wrong kind and patterns of the wrong shape", function()
    s:import(episodes(2, 8))
    local b = assert(s:load(a, { batch = 2, context = 0 }))
    local src = a:ints(1)
    src[0] = 1
    assert.has_error(function() s:commit(a, b, { edges = { src = src, dst = { 2 }, weight = { 0.5 } } }) end,
      "bad changes: edges.src must be a Lua array or int64s (got ints)")
    local m = a:matrix(1, 8)
    assert.has_error(function()
      s:commit(a, b, { patterns = { count = 1, centroids = m, strength = { 0.5 }, offsets = { 0 }, members = { 1 } } })
    end, "bad changes: 1 patterns need 1 strengths, 2 offsets and as many members as the last offset (got 1, 1, 1)")
    assert.has_error(function()
      s:commit(a, b, { patterns = { count = 1, centroids = a:matrix(1, 4), strength = { 0.5 }, offsets = { 0, 1 }, members = { 1 } } })
    end, "bad changes: patterns.centroids must be a matrix of at least 1 rows of 8 floats")
    assert.has_error(function() s:load(nil) end, "bad argument #1 to 'load' (arena expected, got nil)")
    assert(s:release(b))
  end)

  it("returns nil and the message for a file that is not a store", function()
    local junk = tmpdb()
    local f = io.open(junk, "w") f:write(("x"):rep(200)) f:close()
    local t, err = store.open{ path = junk }
    assert.is_nil(t)
    assert.are.equal("store: '" .. junk .. "' is not an engram store (file is not a database)", err)
    os.remove(junk)
  end)
end)
