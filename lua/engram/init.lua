-- engram: the Lua module of the engram runtime; gives access to its submodules, loaded on
-- first use.
--   local engram = require("engram")
--   local a = engram.arena.new{ size = "1MiB" }     -- same as require("engram.arena")
-- Works inside engram-run and embedding hosts (libengram already in the process) and in a
-- plain luajit (libengram.so is loaded through the FFI, see engram.lib). Submodules live as
-- long as the Lua state; this table holds no other state.
local M = {
  version = "0.1.0",
}

-- engram.<name> is require("engram.<name>") for every module file in lua/engram/. A name with
-- no module file is nil (so `if engram.store then` works before a module exists); an error
-- inside an existing module is raised as is.
local searchpath = package.searchpath

setmetatable(M, {
  __index = function(t, name)
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or name == "init" then
      return nil
    end
    local modname = "engram." .. name
    if not package.loaded[modname] and searchpath and not searchpath(modname, package.path) then
      return nil
    end
    local mod = require(modname)
    rawset(t, name, mod)
    return mod
  end,
})

return M
