-- hello.lua: the smallest pipeline. Fills a vector in the burst's arena and returns a summary.
--   engram-run scripts/examples/hello.lua --bursts 3 --param n=1000
return function(burst)
  local n = tonumber(burst.params.n) or 256
  local v = burst.arena:floats(n)
  local sum = 0
  for i = 0, n - 1 do
    v[i] = i * 0.5
    sum = sum + v[i]
  end
  return { burst = burst.id, worker = burst.worker, n = n, sum = sum, arena_used = burst.arena:used() }
end
