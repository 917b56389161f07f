-- The default pipeline (scripts/consolidate.lua) on a small hand-built graph, checked against a
-- plain Lua reference implementation written here from the documented semantics.
local arena = require("engram.arena")
local store = require("engram.store")

local root = os.getenv("ENGRAM_ROOT") or "."
local consolidate = dofile(root .. "/scripts/consolidate.lua")

local DIM = 4
local NOW = 2000000000
local DAY = 86400

-- Episodes: 1..3 are consolidated context (with edges), 4..9 are new. Topics: x-axis (tight),
-- y-axis (loose), and one lone z vector.
local function fixture()
  return {
    { id = 1, e = { 1, 0.05, 0, 0 }, created = NOW - 20 * DAY, last = NOW - 2 * DAY, access = 5, s = 0.9 },
    { id = 2, e = { 0, 1, 0.1, 0 }, created = NOW - 19 * DAY, last = NOW - 19 * DAY, access = 1, s = 0.8 },
    { id = 3, e = { 0, 0, 0, 1 }, created = NOW - 18 * DAY, last = NOW - 10 * DAY, access = 0, s = 0.7 },
    { id = 4, e = { 1, 0.1, 0, 0 }, created = NOW - 5 * DAY, last = NOW - 5 * DAY, access = 0, s = 1.0 },
    { id = 5, e = { 1, -0.1, 0.05, 0 }, created = NOW - 4 * DAY, last = NOW - 1 * DAY, access = 4, s = 0.6 },
    { id = 6, e = { 0.95, 0, 0.1, 0.1 }, created = NOW - 3 * DAY, last = NOW - 3 * DAY, access = 2, s = 0.5 },
    { id = 7, e = { 0.3, 1, 0, 0 }, created = NOW - 2 * DAY, last = NOW - 2 * DAY, access = 1, s = 0.9 },
    { id = 8, e = { 0, 0.6, 0.8, 0 }, created = NOW - 1 * DAY, last = NOW - 1 * DAY, access = 3, s = 0.4 },
    { id = 9, e = { 0, 0, 1, 0 }, created = NOW - 3600, last = NOW - 3600, access = 0, s = 1.0 },
  }
end
local old_edges = { { 1, 2, 0.5 }, { 2, 3, 0.4 }, { 3, 1, 0.3 } }

-- ---- the reference ----------------------------------------------------------------------

local function cos(x, y)
  local xy, xx, yy = 0, 0, 0
  for k = 1, #x do xy, xx, yy = xy + x[k] * y[k], xx + x[k] * x[k], yy + y[k] * y[k] end
  if xx < 1e-30 or yy < 1e-30 then return 0 end
  return math.max(-1, math.min(1, xy / math.sqrt(xx * yy)))
end

local function reference(eps, edges, p)
  -- rows: batch (unconsolidated, newest first), then neighbours of the batch, then recent context
  local byid = {}
  for _, e in ipairs(eps) do byid[e.id] = e end
  local batch = {}
  for _, e in ipairs(eps) do if e.id >= 4 then batch[#batch + 1] = e end end
  table.sort(batch, function(x, y) return x.created > y.created end)
  local rows, index = {}, {}
  for _, e in ipairs(batch) do rows[#rows + 1] = e; index[e.id] = #rows end
  -- (no edge touches the batch yet, so the context is the recently consolidated: 3, 2, 1)
  for _, id in ipairs{ 3, 2, 1 } do rows[#rows + 1] = byid[id]; index[id] = #rows end
  local n, total = #batch, #rows

  -- similarity: links and close pairs (row pairs i < j with i in the batch)
  local links, close = {}, {}
  for i = 1, n do
    for j = i + 1, total do
      local s = cos(rows[i].e, rows[j].e)
      if s >= p.link_threshold then links[#links + 1] = { i, j, s } end
      if s >= p.cluster_threshold then close[#close + 1] = { i, j } end
    end
  end
  -- clusters: components of close pairs, >= min_cluster members, at least one batch row
  local parent = {}
  local function find(x) while parent[x] and parent[x] ~= x do x = parent[x] end return x end
  for _, c in ipairs(close) do
    local a, b = find(c[1]), find(c[2])
    parent[a], parent[b] = parent[a] or a, parent[b] or b
    if a ~= b then parent[math.max(a, b)] = math.min(a, b) end
  end
  local groups = {}
  for r = 1, total do
    if parent[r] then
      local g = find(r)
      groups[g] = groups[g] or {}
      table.insert(groups[g], rows[r].id)
    end
  end
  local patterns = {}
  for root_row, members in pairs(groups) do
    if #members >= p.min_cluster and root_row <= n then
      table.sort(members)
      patterns[#patterns + 1] = members
    end
  end
  -- graph: stored edges among loaded rows (replaced where a new link exists) + links both ways
  local adj = {}
  for r = 1, total do adj[r] = {} end
  local fresh = {}
  for _, l in ipairs(links) do fresh[l[1] .. ":" .. l[2]] = true; fresh[l[2] .. ":" .. l[1]] = true end
  for _, e in ipairs(edges) do
    local s, d = index[e[1]], index[e[2]]
    if s and d and not fresh[s .. ":" .. d] then table.insert(adj[s], { d, e[3] }) end
  end
  for _, l in ipairs(links) do
    table.insert(adj[l[1]], { l[2], l[3] })
    table.insert(adj[l[2]], { l[1], l[3] })
  end
  -- bounded spread from the batch rows (seed 1), as documented for engram_spread_bounded
  local act, pulse, touched = {}, {}, {}
  for r = 1, n do act[r] = math.min(1, (act[r] or 0) + 1); pulse[r] = 1; touched[r] = true end
  for h = 1, p.spread_depth do
    local recv = {}
    for u, pu in pairs(pulse) do
      if pu > 0 then
        for _, e in ipairs(adj[u]) do
          local c = pu * e[2] * math.exp(-p.spread_rate * h)
          if c >= p.spread_threshold then recv[e[1]] = (recv[e[1]] or 0) + c; touched[e[1]] = true end
        end
      end
    end
    pulse = {}
    for t, c in pairs(recv) do
      local old = act[t] or 0
      act[t] = math.min(1, old + c)
      pulse[t] = act[t] - old
    end
  end
  -- decay + reinforcement of touched rows
  local strength = {}
  for r in pairs(touched) do
    local e = rows[r]
    local t = NOW - e.last
    local f
    if e.access < p.k then f = 2 ^ (-t / p.half_life) else f = (1 + t / DAY) ^ (-p.beta) end
    f = math.max(f, p.floor)
    local s = e.s * f
    s = s + (1 - s) * p.reinforce * (act[r] or 0)
    strength[e.id] = math.max(0, math.min(1, s))
  end
  local activation = {}
  for r in pairs(touched) do activation[rows[r].id] = act[r] or 0 end
  local link_ids = {}
  for _, l in ipairs(links) do
    link_ids[#link_ids + 1] = { rows[l[1]].id, rows[l[2]].id, l[3] }
  end
  return { n = n, links = link_ids, patterns = patterns, strength = strength, activation = activation }
end

-- ---- reading the store back ---------------------------------------------------------------

local function sqlite(path, sql)
  local p = io.popen(("sqlite3 -separator ' ' %q %q"):format(path, sql))
  local out = {}
  for line in p:lines() do
    local row = {}
    for v in line:gmatch("%S+") do row[#row + 1] = tonumber(v) or v end
    out[#out + 1] = row
  end
  p:close()
  return out
end

-- Every stored edge as "src:dst" -> weight, decoded from memories.edges (12-byte entries:
-- little-endian int64 target, float32 weight, target INT64_MIN for a free slot; see the README's
-- store section).
local function stored_edges(path)
  local ffi = require("ffi")
  local edges, n = {}, 0
  for _, r in ipairs(sqlite(path, "SELECT id, 'x' || hex(edges) FROM memories WHERE edges IS NOT NULL")) do
    local hex = r[2]:sub(2)   -- the 'x' keeps an all-digit hex string a string
    local bytes = ffi.new("uint8_t[?]", #hex / 2)
    for k = 0, #hex / 2 - 1 do bytes[k] = tonumber(hex:sub(2 * k + 1, 2 * k + 2), 16) end
    for at = 0, #hex / 2 - 12, 12 do
      local dst, w = ffi.new("int64_t[1]"), ffi.new("float[1]")
      ffi.copy(dst, bytes + at, 8)
      ffi.copy(w, bytes + at + 8, 4)
      if dst[0] ~= -9223372036854775807LL - 1 then   -- not a free slot
        edges[r[1] .. ":" .. tonumber(dst[0])] = w[0]
        n = n + 1
      end
    end
  end
  return edges, n
end

local function close_to(a, b, tol)
  return math.abs(a - b) <= tol
end

describe("scripts/consolidate.lua", function()
  local path, s, a
  local params = { now = NOW, context = 3, batch = 10 }
  before_each(function()
    path = os.tmpname() .. ".db"
    s = assert(store.open{ path = path, dim = DIM, create = true })
    a = arena.new{ size = "1MiB" }
    local eps = {}
    for _, e in ipairs(fixture()) do
      eps[#eps + 1] = { id = e.id, content = "e" .. e.id, embedding = e.e, created_at = e.created,
                        last_access = e.last, access_count = e.access, strength = e.s }
    end
    assert(s:import(eps))
    -- consolidate 1..3 with their edges by hand, through the store API
    local b = assert(s:load(a, { batch = 9, context = 0, now = NOW }))
    local olds = { 1, 2, 3 }
    assert(s:commit(a, b, {
      now = NOW - 30 * DAY,
      consolidated = olds,
      edges = { src = { 1, 2, 3 }, dst = { 2, 3, 1 }, weight = { 0.5, 0.4, 0.3 } },
    }))
    assert(s:release(b))
    a:reset()
  end)
  after_each(function()
    s:close()
    a:destroy()
    os.remove(path); os.remove(path .. "-wal"); os.remove(path .. "-shm")
  end)

  it("matches the reference implementation on a hand-built graph", function()
    local p = require("engram.pipeline").params(params)
    local want = reference(fixture(), old_edges, p)
    local got = consolidate({ arena = a, store = s, params = params, id = 1 })
    assert.are.equal(want.n, got.episodes)
    assert.are.equal(#want.links, got.links)
    assert.are.equal(#want.patterns, got.patterns)

    -- edges: every link stored both ways with its cosine
    local edges = stored_edges(path)
    for _, l in ipairs(want.links) do
      assert.is_true(close_to(edges[l[1] .. ":" .. l[2]], l[3], 1e-5), "edge " .. l[1] .. "->" .. l[2])
      assert.is_true(close_to(edges[l[2] .. ":" .. l[1]], l[3], 1e-5), "edge " .. l[2] .. "->" .. l[1])
    end
    -- strengths and activations of every touched memory
    local rows = sqlite(path, "SELECT id, strength, activation, consolidated FROM memories ORDER BY id")
    for _, r in ipairs(rows) do
      local id = r[1]
      if want.strength[id] then
        assert.is_true(close_to(r[2], want.strength[id], 1e-5), ("strength of %d: %g vs %g"):format(id, r[2], want.strength[id]))
        assert.is_true(close_to(r[3], want.activation[id], 1e-5), ("activation of %d: %g vs %g"):format(id, r[3], want.activation[id]))
      end
      assert.are.equal(1, r[4])
    end
    -- patterns: the same member sets
    local stored = {}
    for _, r in ipairs(sqlite(path, "SELECT group_concat(memory) FROM pattern_members GROUP BY pattern")) do
      local members = {}
      for v in tostring(r[1]):gmatch("%d+") do members[#members + 1] = tonumber(v) end
      table.sort(members)
      stored[#stored + 1] = table.concat(members, ",")
    end
    local expected = {}
    for _, m in ipairs(want.patterns) do expected[#expected + 1] = table.concat(m, ",") end
    table.sort(stored)
    table.sort(expected)
    assert.are.same(expected, stored)
  end)

  it("finds the tight topic as a pattern and leaves nothing unconsolidated", function()
    local got = consolidate({ arena = a, store = s, params = params, id = 1 })
    assert.is_true(got.patterns >= 1)
    assert.are.equal(0, s:counts().unconsolidated)
    local again = consolidate({ arena = a, store = s, params = params, id = 2 })
    assert.are.equal(0, again.episodes)
  end)

  it("writes nothing when a stage fails, and its claims can be given back", function()
    local q = "SELECT count(*), sum(strength), sum(activation) FROM memories WHERE consolidated = 1"
    local before = sqlite(path, q)
    local _, edges_before = stored_edges(path)
    -- the store stage fails (as a full disk would): everything computed so far is discarded
    local failing = setmetatable({ commit = function() return nil, "store: injected failure" end }, { __index = s })
    local ok, err = pcall(consolidate, { arena = a, store = failing, params = params, id = 3 })
    assert.is_false(ok)
    assert.matches("store: injected failure", err)
    assert.are.same(before, sqlite(path, q))
    assert.are.equal(edges_before, select(2, stored_edges(path)))
    assert.are.equal(6, s:counts().claims)
    assert(s:release_pending())
    assert.are.equal(0, s:counts().claims)
    local got = consolidate({ arena = a, store = s, params = params, id = 4 })
    assert.are.equal(6, got.episodes)
  end)

  it("rejects unknown and out-of-range parameters by name", function()
    assert.has_error(function() consolidate({ arena = a, store = s, params = { bacth = 5 }, id = 1 }) end)
    local ok, err = pcall(consolidate, { arena = a, store = s, params = { link_threshold = "2" }, id = 1 })
    assert.is_false(ok)
    assert.matches("parameter 'link_threshold' is 2 %(expected a number from %-1 to 1%)", err)
  end)
end)
