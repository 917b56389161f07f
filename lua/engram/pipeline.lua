-- engram.pipeline: the stages of a consolidation burst, for scripts/consolidate.lua and for
-- pipelines of your own.
--
--   local P = require("engram.pipeline")
--   local params = P.params(burst.params)          -- defaults + overrides, checked
--   local b = P.load(burst, params)                -- nil when nothing is left to consolidate
--   local links, close = P.similarity(burst.arena, b, params)
--   local patterns = P.patterns(burst.arena, b, close, params)
--   local g = P.graph(burst.arena, b, links)
--   local act, touched = P.spread(burst.arena, b, g, params)
--   local strength = P.decay(burst.arena, b, act, touched, params)
--   P.store(burst, b, links, patterns, act, touched, strength, params)
--
-- Everything a stage returns lives in the burst's arena (views, or tables of views) and goes
-- stale when the burst ends. Stages raise on misuse and on kernel or store failures, with the
-- kernel's or store's message; the host turns that into the burst's error (and the store then
-- keeps its previous state: nothing is written before P.store's single transaction).
local ffi = require("ffi")
local parse = require("engram.parse")
local K = require("engram.kernels")

local M = {}

local floor, sqrt = math.floor, math.sqrt

-- A kernel's (result or nil, err) as the stage's error, blaming the stage's caller.
local function need(stage, ok, err)
  if not ok then
    error(stage .. ": " .. tostring(err), 3)
  end
  return ok
end

-- ---- parameters ------------------------------------------------------------------------

-- name -> { default, kind, description }; kinds as engram.parse.params takes them.
M.defaults = {
  batch = { 100, "integer", "episodes per burst, newest unconsolidated first" },
  context = { 64, "integer", "context rows: out-neighbours in the graph, then the consolidated memories nearest in time" },
  link_threshold = { 0.3, "number", "cosine at or above which two memories are linked (both ways)" },
  cluster_threshold = { 0.8, "number", "cosine at or above which memories join one cluster" },
  min_cluster = { 3, "integer", "members a cluster needs to become a pattern" },
  pattern_merge = { 0.9, "number", "centroid cosine at which a new pattern merges into a stored one" },
  spread_depth = { 4, "integer", "hops of spreading activation from the batch" },
  spread_rate = { 0.7, "number", "per-hop decay rate: hop h multiplies by exp(-rate * h)" },
  spread_threshold = { 0.01, "number", "contributions below this are dropped" },
  half_life = { 7 * 86400, "duration", "half-life of memories accessed fewer than k times" },
  beta = { 0.18, "number", "power-law exponent (per day) at k accesses or more" },
  k = { 3, "integer", "accesses at which a memory decays by the power law" },
  floor = { 0.05, "number", "smallest decay factor" },
  reinforce = { 0.2, "number", "strength += (1 - strength) * reinforce * activation" },
  now = { 0, "number", "the burst's clock in seconds since the epoch (0: the current time)" },
}

local ranges = {
  batch = { 1, 100000 }, context = { 0, 1000000 }, link_threshold = { -1, 1 },
  cluster_threshold = { -1, 1 }, min_cluster = { 2, 1000000 }, pattern_merge = { 0, 1 },
  spread_depth = { 0, 64 }, spread_rate = { 0, 100 }, spread_threshold = { 0, 1 },
  half_life = { 1e-3, 1e12 }, beta = { 0, 16 }, k = { 0, 1e9 }, floor = { 0, 1 }, reinforce = { 0, 1 },
  now = { 0, 1e12 },
}

-- The burst's parameters: defaults overridden by p (a table of numbers or strings as they come
-- from the command line: "36h", "0.35"). Raises naming the parameter and what it accepts.
function M.params(p)
  local out = {}
  for name, d in pairs(M.defaults) do out[name] = d[1] end
  for name, v in pairs(p or {}) do
    local d = M.defaults[name]
    if not d then
      local known = {}
      for k in pairs(M.defaults) do known[#known + 1] = k end
      table.sort(known)
      error(("unknown parameter '%s' (known: %s)"):format(tostring(name), table.concat(known, ", ")), 2)
    end
    local value = v
    if type(v) == "string" then
      local parsed, err = parse.params({ name .. "=" .. v }, { [name] = d[2] })
      if not parsed then
        error(err, 2)
      end
      value = parsed[name]
    end
    if type(value) ~= "number" then
      error(("parameter '%s' must be a number (got %s)"):format(name, tostring(v)), 2)
    end
    local r = ranges[name]
    if value < r[1] or value > r[2] or (d[2] == "integer" and value ~= floor(value)) then
      error(("parameter '%s' is %s (expected %s from %s to %s)"):format(name, tostring(v),
        d[2] == "integer" and "an integer" or "a number", tostring(r[1]), tostring(r[2])), 2)
    end
    out[name] = value
  end
  if out.now == 0 then
    out.now = os.time()
  end
  return out
end

-- ---- load ----------------------------------------------------------------------------------

-- Claim and load the batch; nil when no unconsolidated episode is left.
function M.load(burst, params)
  if not burst.store then
    error("this pipeline needs a store (run it with --db PATH)", 2)
  end
  local b, err = burst.store:load(burst.arena, { batch = params.batch, context = params.context, now = params.now })
  if not b then
    if err:find("arena cannot hold", 1, true) then
      err = err .. " (give the workers a larger arena, e.g. --arena-size 16MiB, or lower batch or context)"
    end
    error(err, 2)
  end
  if b.n == 0 then
    return nil
  end
  return b
end

-- ---- similarity ------------------------------------------------------------------------------

-- Links (cos >= link_threshold) and close pairs (cos >= cluster_threshold) among the batch and
-- between the batch and its context, as row indices. Returns links = { n, i, j, w } (one entry
-- per unordered pair; P.graph adds both directions) and close = { n, i, j }.
function M.similarity(a, b, params)
  local n, total, d = b.n, b.total, b.dim
  local emb = b.embeddings:pointer()
  local inv = a:floats(total)
  need("similarity", K.norms(emb, total, d, inv:pointer(), a))
  local lt, ct = params.link_threshold, params.cluster_threshold
  local lo = math.min(lt, ct)

  -- every pair with a batch row at one end, batch x batch and batch x context, in one fused
  -- threshold pass at the lower of the two thresholds (no matrix is stored). Its order is
  -- unspecified; nothing below depends on it (links are a set, clusters are components).
  local cap = n * (n - 1) / 2 + n * (total - n)
  local np, pairs = 0, nil
  if cap > 0 then
    pairs = ffi.cast("engram_sim_pair *", need("similarity", a:alloc(cap * ffi.sizeof("engram_sim_pair"), 64)))
    np = need("similarity", K.pairs_prefix(emb, n, total, d, lo, pairs, cap, inv:pointer(), a))
  end

  -- split into links and close pairs (a plain loop: no closure, every burst JITs)
  local li, lj, lw = a:ints(np), a:ints(np), a:floats(np)
  local ci, cj = a:ints(np), a:ints(np)
  local lip, ljp, lwp, cip, cjp = li:pointer(), lj:pointer(), lw:pointer(), ci:pointer(), cj:pointer()
  local nl, nc = 0, 0
  for k = 0, np - 1 do
    local pr = pairs[k]
    local s = pr.score
    if s >= lt then
      lip[nl], ljp[nl], lwp[nl] = pr.i, pr.j, s
      nl = nl + 1
    end
    if s >= ct then
      cip[nc], cjp[nc] = pr.i, pr.j
      nc = nc + 1
    end
  end
  return { n = nl, i = li, j = lj, w = lw }, { n = nc, i = ci, j = cj, inv = inv }
end

-- ---- patterns -----------------------------------------------------------------------------------

-- Clusters: connected components of the close pairs (single linkage at cluster_threshold) with at
-- least min_cluster members, one of them from the batch. Each becomes a pattern with the mean of
-- its members' unit vectors as centroid and the mean cosine of members to it as strength (which
-- is the centroid's norm).
-- Returns { count, centroids (matrix), strength (floats), offsets (ints), members (int64s) }.
function M.patterns(a, b, close, params)
  local total, d, n = b.total, b.dim, b.n
  -- union-find over rows in arena arrays (no Lua tables: this runs every burst): parent -1 for a
  -- row in no close pair; every root is its component's smallest row (union by minimum)
  local parent = ffi.cast("int32_t *", a:ints(math.max(total, 1)):pointer())
  local size = ffi.cast("int32_t *", a:ints(math.max(total, 1)):pointer())
  for r = 0, total - 1 do
    parent[r], size[r] = -1, 0
  end
  local cip, cjp = close.i:pointer(), close.j:pointer()
  for k = 0, close.n - 1 do
    local x, y = cip[k], cjp[k]
    if parent[x] < 0 then parent[x] = x end
    if parent[y] < 0 then parent[y] = y end
    while parent[x] ~= x do
      parent[x] = parent[parent[x]]   -- path halving
      x = parent[x]
    end
    while parent[y] ~= y do
      parent[y] = parent[parent[y]]
      y = parent[y]
    end
    if x < y then parent[y] = x elseif y < x then parent[x] = y end
  end
  for r = 0, total - 1 do   -- every row straight to its root; count the members
    local x = parent[r]
    if x >= 0 then
      while parent[x] ~= x do x = parent[x] end
      parent[r] = x
      size[x] = size[x] + 1
    end
  end
  -- chosen components, in order of their smallest row: at least min_cluster members, the
  -- smallest (the root) a batch row; slot[root] = the pattern's index
  local slot = ffi.cast("int32_t *", a:ints(math.max(total, 1)):pointer())
  local np, nmembers = 0, 0
  for r = 0, total - 1 do
    slot[r] = -1
    if parent[r] == r and size[r] >= params.min_cluster and r < n then
      slot[r] = np
      np = np + 1
      nmembers = nmembers + size[r]
    end
  end

  local centroids = a:matrix(math.max(np, 1), d)
  local strength, offsets, members = a:floats(np), a:ints(np + 1), a:int64s(nmembers)
  local op, mp = offsets:pointer(), members:pointer()
  local rows = ffi.cast("uint32_t *", a:ints(math.max(nmembers, 1)):pointer())
  -- members of pattern p at [offsets[p], offsets[p+1]), in row order
  local pos = 0
  for r = 0, total - 1 do
    if slot[r] >= 0 then
      op[slot[r]] = pos
      pos = pos + size[r]
    end
  end
  op[np] = pos
  local fill = ffi.cast("int32_t *", a:ints(math.max(np, 1)):pointer())
  for p = 0, np - 1 do fill[p] = op[p] end
  local ids = b.ids:pointer()
  for r = 0, total - 1 do
    local root = parent[r]
    if root >= 0 and slot[root] >= 0 then
      local p = slot[root]
      rows[fill[p]], mp[fill[p]] = r, ids[r]
      fill[p] = fill[p] + 1
    end
  end
  -- the inverse norms the similarity stage computed (a close table built by hand has none)
  local emb = b.embeddings:pointer()
  local inv = close.inv
  if not inv then
    inv = a:floats(total)
    need("patterns", K.norms(emb, total, d, inv:pointer(), a))
  end
  local iv, cen, sp = inv:pointer(), centroids:pointer(), strength:pointer()
  for p = 0, np - 1 do
    -- the centroid's norm is the members' mean cosine to it (see engram_sim_centroid)
    sp[p] = need("patterns", K.centroid(emb, iv, d, rows + op[p], op[p + 1] - op[p], cen + p * d))
  end
  return { count = np, centroids = centroids, strength = strength, offsets = offsets, members = members,
           merge = params.pattern_merge }
end

-- ---- graph -----------------------------------------------------------------------------------------

-- The loaded subgraph as CSR by source over the b.total rows: the store's edges among them plus
-- every new link in both directions (a link that already exists replaces its old weight).
-- Returns { csr (engram_csr cdata), offsets, targets, weights }.
function M.graph(a, b, links)
  local total = b.total
  local ne_old, nl = b.edges.n, links.n
  local maxe = ne_old + 2 * nl
  -- new links win over stored edges between the same rows. Every link has a batch row at one end,
  -- so only a stored edge from or to a batch row can collide (batch episodes are unconsolidated
  -- and rarely have edges): the links are put in a table only when there is such an edge.
  local li, lj, lw = links.i:pointer(), links.j:pointer(), links.w:pointer()
  local es, ed, ew = b.edges.src:pointer(), b.edges.dst:pointer(), b.edges.weight:pointer()
  local n, fresh = b.n, nil
  for k = 0, ne_old - 1 do
    if es[k] < n or ed[k] < n then
      fresh = {}
      for x = 0, nl - 1 do
        fresh[li[x] * total + lj[x]] = true
        fresh[lj[x] * total + li[x]] = true
      end
      break
    end
  end
  local src, dst, w = a:ints(maxe), a:ints(maxe), a:floats(maxe)
  local sp, dp, wp = src:pointer(), dst:pointer(), w:pointer()
  local e = 0
  for k = 0, ne_old - 1 do
    if not (fresh and fresh[es[k] * total + ed[k]]) then
      sp[e], dp[e], wp[e] = es[k], ed[k], ew[k]
      e = e + 1
    end
  end
  for k = 0, nl - 1 do
    sp[e], dp[e], wp[e] = li[k], lj[k], lw[k]
    sp[e + 1], dp[e + 1], wp[e + 1] = lj[k], li[k], lw[k]
    e = e + 2
  end
  -- counting sort by source
  local offsets = a:ints(total + 1)
  local op = ffi.cast("uint32_t *", offsets:pointer())
  for r = 0, total do op[r] = 0 end
  for k = 0, e - 1 do op[sp[k] + 1] = op[sp[k] + 1] + 1 end
  for r = 1, total do op[r] = op[r] + op[r - 1] end
  local targets, weights = a:ints(e), a:floats(e)
  local tp, wq = ffi.cast("uint32_t *", targets:pointer()), weights:pointer()
  local fill = a:ints(total)
  local fp = fill:pointer()
  for r = 0, total - 1 do fp[r] = op[r] end
  for k = 0, e - 1 do
    local s = sp[k]
    local at = fp[s]
    tp[at], wq[at] = dp[k], wp[k]
    fp[s] = at + 1
  end
  return { csr = K.csr(total, e, op, tp, wq), offsets = offsets, targets = targets, weights = weights, nedges = e }
end

-- ---- spread ------------------------------------------------------------------------------------------

-- Bounded spreading activation from the batch rows (seed value 1) over the subgraph. Returns the
-- activation of every row (0 where not reached) and the touched rows (seeds first).
function M.spread(a, b, g, params)
  local total = b.total
  local act = a:floats(total):fill(0)
  local seeds = a:ints(b.n)
  local sp = ffi.cast("uint32_t *", seeds:pointer())
  for r = 0, b.n - 1 do sp[r] = r end
  local touched = a:ints(total)
  local nt = need("spread", K.spread_bounded(g.csr, sp, b.n, act:pointer(), {
    max_depth = params.spread_depth, rate = params.spread_rate, threshold = params.spread_threshold,
    touched = ffi.cast("uint32_t *", touched:pointer()), cap = total,
  }, a))
  return act, { n = nt, rows = touched }
end

-- ---- decay ----------------------------------------------------------------------------------------------

-- New strengths of the touched rows: the two-component decay over the time since each row's
-- last access, then reinforcement by the activation it received. Returns floats (per touched row).
function M.decay(a, b, act, touched, params)
  local nt = touched.n
  local rows = touched.rows:pointer()
  local strength, age, access = a:floats(nt), a:floats(nt), a:ints(nt)
  local s, ag, ac = strength:pointer(), age:pointer(), ffi.cast("uint32_t *", access:pointer())
  local bs, bl, bc = b.strength:pointer(), b.last_access:pointer(), b.access_count:pointer()
  local now = params.now
  for k = 0, nt - 1 do
    local r = rows[k]
    s[k] = bs[r]
    ag[k] = now - bl[r]
    ac[k] = bc[r]
  end
  need("decay", K.decay({ model = "two_component", half_life = params.half_life, beta = params.beta, k = params.k,
                          floor = params.floor }, s, ag, nt, ac, a))
  local ap, re = act:pointer(), params.reinforce
  for k = 0, nt - 1 do
    local v = s[k] + (1 - s[k]) * re * ap[rows[k]]
    s[k] = v > 1 and 1 or (v < 0 and 0 or v)
  end
  return strength
end

-- ---- store ------------------------------------------------------------------------------------------------

-- One transaction: the batch consolidated, new links (both directions), new strengths and
-- activations of the touched rows, patterns.
function M.store(burst, b, links, patterns, act, touched, strength, params)
  local a = burst.arena
  local nt = touched.n
  local ids, upd_ids, upd_act, upd_seen = b.ids:pointer(), a:int64s(nt), a:floats(nt), a:doubles(nt)
  local rows, ap, seen = touched.rows:pointer(), act:pointer(), b.last_access:pointer()
  for k = 0, nt - 1 do
    upd_ids[k] = ids[rows[k]]
    upd_act[k] = ap[rows[k]]
    upd_seen[k] = seen[rows[k]]   -- a row another burst wrote since the load keeps its values
  end
  local nl = links.n
  local src, dst, w = a:int64s(2 * nl), a:int64s(2 * nl), a:floats(2 * nl)
  local li, lj, lw = links.i:pointer(), links.j:pointer(), links.w:pointer()
  for k = 0, nl - 1 do
    src[2 * k], dst[2 * k], w[2 * k] = ids[li[k]], ids[lj[k]], lw[k]
    src[2 * k + 1], dst[2 * k + 1], w[2 * k + 1] = ids[lj[k]], ids[li[k]], lw[k]
  end
  local consolidated = a:int64s(b.n)
  for r = 0, b.n - 1 do consolidated[r] = ids[r] end
  local ok, err = burst.store:commit(a, b, {
    now = params.now,
    consolidated = consolidated,
    updates = { ids = upd_ids, strength = strength, activation = upd_act, last_access = upd_seen },
    edges = { src = src, dst = dst, weight = w },
    patterns = patterns,
  })
  if not ok then
    error(err, 2)
  end
end

-- ---- timing --------------------------------------------------------------------------------------------------

local ts = ffi.new("engram_timespec")

-- Monotonic seconds (for per-stage timings in a burst's result).
function M.clock()
  ffi.C.clock_gettime(1, ts)   -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

return M
