-- engram.demo: a realistic synthetic memory set, and the report a person reads after a run.
--
--   local demo = require("engram.demo")
--   local info = demo.generate{ path = "demo.db", episodes = 3000, dim = 768, seed = 7 }
--   local before = demo.snapshot(store)  ... consolidate ...  print(demo.report(before, demo.snapshot(store)))
--
-- The set: episodes drawn around topic centres (unit vectors in `dim` dimensions). Each topic
-- has its own spread, so some topics are tight (pairwise cosine around 0.85-0.9: they become
-- patterns) and some loose (0.5-0.7: they link but do not cluster); topics are near-orthogonal
-- to each other. Ages spread over `weeks` weeks, more of them recent; access counts are skewed
-- (most episodes seen once or twice, a few often). Deterministic for a seed. Nothing returned
-- holds arena memory; the store is closed before generate returns.
local ffi = require("ffi")
local bit = require("bit")
local store = require("engram.store")

local M = {}

local sqrt, log, cos, pi, floor = math.sqrt, math.log, math.cos, math.pi, math.floor

-- A small deterministic generator (xorshift64*), independent of math.random's state.
local function rng(seed)
  local s = ffi.new("uint64_t[1]", seed ~= 0 and seed or 88172645463325252ULL)
  local function u32()
    local x = s[0]
    x = bit.bxor(x, bit.rshift(x, 12))
    x = bit.bxor(x, bit.lshift(x, 25))
    x = bit.bxor(x, bit.rshift(x, 27))
    s[0] = x
    return tonumber(bit.rshift(x * 2685821657736338717ULL, 32))
  end
  local function uniform()       -- (0, 1)
    return (u32() + 0.5) / 4294967296
  end
  local function normal()
    return sqrt(-2 * log(uniform())) * cos(2 * pi * uniform())
  end
  return uniform, normal
end

local topics_words = {
  "kitchen", "meeting", "garden", "train", "music", "code review", "birthday", "hiking", "rain",
  "library", "market", "doctor", "football", "sunset", "exam", "coffee", "museum", "beach",
  "deadline", "concert", "bakery", "bicycle", "snow", "airport", "chess", "theatre", "river",
  "interview", "picnic", "workshop",
}

-- Generate opts.episodes episodes (default 3000) of opts.dim (768) into a fresh store at
-- opts.path (an existing file there is replaced). opts.topics (40), opts.weeks (6), opts.seed (7),
-- opts.now (the current time). Returns { episodes, topics, dim, now }, or nil, err when the file
-- exists and is not a store this function made (it is never replaced then).
function M.generate(opts)
  local n = opts.episodes or 3000
  local dim = opts.dim or 768
  local ntopics = opts.topics or 40
  local weeks = opts.weeks or 6
  local now = opts.now or os.time()
  local uniform, normal = rng(opts.seed or 7)

  -- A fresh file each time, but never at the cost of a store the demo did not make.
  local f = io.open(opts.path, "rb")
  if f then
    local size = f:seek("end")
    f:close()
    local old = size > 0 and store.open{ path = opts.path }
    local ours = old and old:meta("generator") == "engram.demo"
    if old then old:close() end
    if size > 0 and not ours then
      return nil, ("demo: refusing to replace '%s': it is not a store the demo made "
        .. "(remove it, or choose another --db)"):format(opts.path)
    end
  end
  for _, suffix in ipairs{ "", "-wal", "-shm" } do os.remove(opts.path .. suffix) end
  local s, err = store.open{ path = opts.path, dim = dim, create = true }
  if not s then
    return nil, err
  end
  assert(s:set_meta("generator", "engram.demo"))

  -- topic centres (unit vectors) and spreads
  local centres = ffi.new("float[?]", ntopics * dim)
  local spread = {}
  for t = 0, ntopics - 1 do
    local norm = 0
    for k = 0, dim - 1 do
      local v = normal()
      centres[t * dim + k] = v
      norm = norm + v * v
    end
    norm = 1 / sqrt(norm)
    for k = 0, dim - 1 do centres[t * dim + k] = centres[t * dim + k] * norm end
    -- noise norm s gives a pairwise cosine of about 1 / (1 + s^2): 0.30..0.95 -> 0.92..0.52
    spread[t] = 0.30 + 0.65 * uniform()
  end

  local batch, done = {}, 0
  local function flush()
    assert(s:import(batch))
    done = done + #batch
    batch = {}
  end
  -- ids follow time, as an agent assigns them: the oldest episode is 1. (It also keeps what a
  -- burst writes local in the store's B-trees: recent memories have neighbouring ids.)
  local ages = {}
  for i = 1, n do
    ages[i] = weeks * 7 * 86400 * uniform() ^ 2   -- squared uniform leans towards recent
  end
  table.sort(ages, function(x, y) return x > y end)
  for i = 1, n do
    local t = floor(uniform() * ntopics)
    local sigma = spread[t] / sqrt(dim)
    local emb = ffi.new("float[?]", dim)
    local norm = 0
    for k = 0, dim - 1 do
      local v = centres[t * dim + k] + sigma * normal()
      emb[k] = v
      norm = norm + v * v
    end
    norm = 1 / sqrt(norm)
    for k = 0, dim - 1 do emb[k] = emb[k] * norm end
    local age = ages[i]
    local created = now - age
    local access = floor(-log(uniform()) * 1.5)
    batch[#batch + 1] = {
      id = i,
      content = ("episode %d: %s, %d days ago"):format(i, topics_words[t % #topics_words + 1], floor(age / 86400)),
      embedding = emb,
      created_at = created,
      last_access = created + (now - created) * uniform() * (access > 0 and 1 or 0),
      access_count = access,
      strength = 0.6 + 0.4 * uniform(),
    }
    if #batch == 500 then flush() end
  end
  if #batch > 0 then flush() end
  s:close()
  return { episodes = done, topics = ntopics, dim = dim, now = now }
end

-- What the report compares: counts and the strength distribution of a store.
function M.snapshot(s)
  local c = s:counts()
  local sum = s:summary()
  for k, v in pairs(c) do sum[k] = v end
  return sum
end

local function row(name, a, b, fmt)
  fmt = fmt or "%.3f"
  return ("  %-22s %12s %12s"):format(name, fmt:format(a), fmt:format(b))
end

-- A report a person can read: what changed between two snapshots.
function M.report(before, after, extra)
  local lines = {
    ("consolidated %d episodes; %d edges added, %d patterns found")
      :format(before.unconsolidated - after.unconsolidated, after.edges - before.edges, after.patterns - before.patterns),
    "",
    ("  %-22s %12s %12s"):format("", "before", "after"),
    row("memories", before.memories, after.memories, "%d"),
    row("unconsolidated", before.unconsolidated, after.unconsolidated, "%d"),
    row("edges", before.edges, after.edges, "%d"),
    row("patterns", before.patterns, after.patterns, "%d"),
    row("strength mean", before.strength_mean, after.strength_mean),
    row("strength p10", before.strength_p10, after.strength_p10),
    row("strength median", before.strength_p50, after.strength_p50),
    row("strength p90", before.strength_p90, after.strength_p90),
    row("activation mean", before.activation_mean, after.activation_mean),
  }
  if after.patterns > 0 then
    lines[#lines + 1] = ("  %-22s %12s %12.1f"):format("members per pattern", "-", after.pattern_members_mean)
  end
  if after.edges > 0 then
    lines[#lines + 1] = ("  %-22s %12s %12.3f"):format("edge weight mean", "-", after.edge_weight_mean)
  end
  if extra then
    lines[#lines + 1] = ""
    lines[#lines + 1] = extra
  end
  return table.concat(lines, "\n")
end

return M
