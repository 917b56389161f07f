-- failing.lua: a burst that raises an error on purpose (for the exit-status tests):
-- engram-run reports it with file:line and a traceback and exits with status 1.
local function check(params)
  if params.fail ~= "no" then
    error("asked to fail (pass --param fail=no to succeed)")
  end
  return "ok"
end

return function(burst)
  return check(burst.params)
end
