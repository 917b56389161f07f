-- engram.import: load a JSON Lines file of episodes into a store, all or nothing.
--
--   local import = require("engram.import")
--   local n, err = import.file("episodes.jsonl", "memory.db")    -- n episodes, or nil, err
--
-- The file is parsed with engram.parse.episodes and streamed into one store transaction:
-- malformed input (the message gives FILE:LINE:COLUMN) or an episode the store refuses (a
-- duplicate id) rolls the whole import back. A store that does not exist yet is created with
-- the dimension of the file's first embedding, and removed again if the import fails. Nothing
-- returned refers to memory the caller must free.
local ffi = require("ffi")
local C = require("engram.lib")
local parse = require("engram.parse")
local store = require("engram.store")

local M = {}

local function last_error()
  return ffi.string(C.engram_last_error())
end

-- True when path holds something (an empty file, as `touch` leaves, is made a store).
local function exists(path)
  local f = io.open(path, "rb")
  if f then
    local size = f:seek("end")
    f:close()
    return size > 0
  end
  return false
end

local function remove_store(path)
  for _, suffix in ipairs{ "", "-wal", "-shm" } do os.remove(path .. suffix) end
end

-- Import the episodes of `path` into the store at `db`. opts.dim: the dimension a new store
-- must have (default: the file's). Returns the number of episodes imported, or nil, err.
function M.file(path, db, opts)
  opts = opts or {}
  local s, err
  local created = false
  if exists(db) then
    s, err = store.open{ path = db }
    if not s then
      return nil, err
    end
  end
  local buf, e, began
  local function add(ep)
    if not s then
      s, err = store.open{ path = db, dim = opts.dim or #ep.embedding, create = true }
      if not s then
        return nil, err
      end
      created = true
    end
    if not began then
      if C.engram_store_import_begin(s.ptr) ~= 0 then
        return nil, last_error()
      end
      began = true
      buf = ffi.new("float[?]", s:dim())
      e = ffi.new("engram_episode")
    end
    local emb = ep.embedding
    for k = 1, #emb do buf[k - 1] = emb[k] end
    e.id, e.content, e.embedding = ep.id, ep.content, buf
    e.created_at, e.last_access = ep.created_at, ep.last_access or 0
    e.access_count, e.strength = ep.access_count or 0, ep.strength or 1
    if C.engram_store_import_add(s.ptr, e) ~= 0 then
      return nil, last_error()
    end
  end

  local n, perr = parse.episodes_file(path, { dim = s and s:dim() or opts.dim, on_episode = add })
  if n and began and C.engram_store_import_commit(s.ptr) ~= 0 then
    n, perr = nil, last_error()
  end
  if not n then
    if began then
      C.engram_store_import_abort(s.ptr)
    end
    if s then
      s:close()
    end
    if created then
      remove_store(db)
    end
    return nil, perr
  end
  if s then
    s:close()
  end
  return n
end

return M
