-- runaway.lua: a burst that never ends. Run it with a deadline:
--   engram-run scripts/examples/runaway.lua --timeout 100
-- The loop is compiled by the JIT; the runtime stops it at the deadline and replaces the
-- worker's Lua state.
return function(burst)
  local i = 0
  while true do i = i + 1 end
end
