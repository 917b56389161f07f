--[[
consolidate.lua — the default consolidation pipeline: load -> similarity -> spread -> decay -> store.

Each burst claims up to `batch` unconsolidated episodes (newest first) with their context (their
out-neighbours in the graph, then the consolidated memories nearest to them in creation time), links every
pair of batch episodes, and every batch episode with every context row, whose cosine reaches
`link_threshold`, groups memories at `cluster_threshold` into patterns, spreads
activation from the batch through the graph, decays and reinforces the strength of every memory
it reached, and writes it all in one transaction. A burst that fails writes nothing.

Parameters (engram-run ... --param name=value; durations like 36h or 7d):
  batch              100    episodes per burst
  context            64     context rows loaded with the batch
  link_threshold     0.3    cosine at or above which two memories are linked, both ways
  cluster_threshold  0.8    cosine at or above which memories join one cluster
  min_cluster        3      members for a cluster to become a pattern
  pattern_merge      0.9    centroid cosine at which a new pattern merges into a stored one
  spread_depth       4      hops of bounded spreading activation
  spread_rate        0.7    per-hop decay: hop h multiplies by exp(-rate * h)
  spread_threshold   0.01   contributions below this are dropped
  half_life          7d     half-life of memories accessed fewer than k times
  beta               0.18   power-law exponent (per day) at k accesses or more
  k                  3      accesses at which a memory decays by the power law
  floor              0.05   smallest decay factor
  reinforce          0.2    strength += (1 - strength) * reinforce * activation
  now                0      the burst's clock (seconds since the epoch; 0: now)

Returns { episodes, links, patterns, touched, timings = { load, similarity, patterns, spread,
decay, store } (seconds) }; episodes == 0 means nothing was left to consolidate.
]]
local P = require("engram.pipeline")

return function(burst)
  local params = P.params(burst.params)
  local a = burst.arena
  local t = { P.clock() }
  local b = P.load(burst, params)
  t[2] = P.clock()
  if not b then
    return { episodes = 0, links = 0, patterns = 0, touched = 0, timings = { load = t[2] - t[1] } }
  end
  local links, close = P.similarity(a, b, params)
  t[3] = P.clock()
  local patterns = P.patterns(a, b, close, params)
  t[4] = P.clock()
  local g = P.graph(a, b, links)
  local act, touched = P.spread(a, b, g, params)
  t[5] = P.clock()
  local strength = P.decay(a, b, act, touched, params)
  t[6] = P.clock()
  P.store(burst, b, links, patterns, act, touched, strength, params)
  t[7] = P.clock()
  return {
    episodes = b.n,
    links = links.n,
    patterns = patterns.count,
    touched = touched.n,
    timings = {
      load = t[2] - t[1], similarity = t[3] - t[2], patterns = t[4] - t[3], spread = t[5] - t[4],
      decay = t[6] - t[5], store = t[7] - t[6],
    },
  }
end
