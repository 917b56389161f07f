-- Importing JSON Lines files into a store (engram.import): all or nothing, exact messages.
local import = require("engram.import")
local store = require("engram.store")

local root = os.getenv("ENGRAM_ROOT") or "."
local function fixture(name) return root .. "/spec/fixtures/" .. name end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

describe("engram.import", function()
  local db
  before_each(function() db = os.tmpname() .. ".db" end)
  after_each(function()
    for _, suffix in ipairs{ "", "-wal", "-shm" } do os.remove(db .. suffix) end
  end)

  it("creates a store with the file's dimension and imports every episode", function()
    assert.are.equal(3, import.file(fixture("episodes_good.jsonl"), db))
    local s = assert(store.open{ path = db })
    assert.are.equal(4, s:dim())
    assert.are.equal(3, s:counts().memories)
    s:close()
  end)

  it("lands nothing when a line is malformed, and creates no store", function()
    local path = fixture("episodes_syntax.jsonl")
    local n, err = import.file(path, db)
    assert.is_nil(n)
    assert.are.equal(path .. ":3:23: unexpected '\"' (expected ',' or '}' after a value)", err)
    assert.is_false(exists(db))
  end)

  it("rolls back a whole file when the store refuses one episode", function()
    assert.are.equal(3, import.file(fixture("episodes_good.jsonl"), db))
    local n, err = import.file(fixture("episodes_good.jsonl"), db)
    assert.is_nil(n)
    assert.are.equal(fixture("episodes_good.jsonl") .. ":1: store: episode id 1 is already in '" .. db .. "'", err)
    local s = assert(store.open{ path = db })
    assert.are.equal(3, s:counts().memories)
    s:close()
  end)

  it("refuses embeddings of another dimension than the store's", function()
    local s = assert(store.open{ path = db, dim = 8, create = true })
    s:close()
    local n, err = import.file(fixture("episodes_good.jsonl"), db)
    assert.is_nil(n)
    assert.matches("episodes_good.jsonl:1:%d+: embedding has 4 numbers %(expected 8%)", err)
  end)

  it("names a file that cannot be read", function()
    local n, err = import.file("/nonexistent/episodes.jsonl", db)
    assert.is_nil(n)
    assert.are.equal("episodes: cannot open /nonexistent/episodes.jsonl: No such file or directory", err)
    assert.is_false(exists(db))
  end)
end)
