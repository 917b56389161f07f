-- stages.lua: a pipeline as a table of stages, called in order; each stage gets the burst and
-- what the previous stage returned, and the last stage's values are the burst's result.
--   engram-run scripts/examples/stages.lua --param size=64
local function load(burst)
  local n = tonumber(burst.params.size) or 32
  local v = burst.arena:floats(n)
  for i = 0, n - 1 do v[i] = (i % 7) / 7 end
  return { v = v, n = n }
end

local function normalize(burst, s)
  local max = 0
  for i = 0, s.n - 1 do if s.v[i] > max then max = s.v[i] end end
  for i = 0, s.n - 1 do s.v[i] = s.v[i] / max end
  return s
end

local function summarize(burst, s)
  local total = 0
  for i = 0, s.n - 1 do total = total + s.v[i] end
  -- Views die with the burst: return plain numbers, not the view.
  return { n = s.n, mean = total / s.n }
end

return { load, normalize, summarize }
