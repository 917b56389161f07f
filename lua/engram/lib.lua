-- engram.lib: the libengram namespace for the FFI.
--   local C = require("engram.lib")
-- Inside a host that links libengram (engram-run, an embedding program) the symbols are
-- already in the process and ffi.C is used. In a plain luajit the shared library is loaded
-- once, from $ENGRAM_LIB, or build/release/libengram.so beside this module's tree, or the
-- system library path. The namespace lives as long as the process.
local ffi = require("ffi")
require("engram.cdef")

local function in_process()
  return pcall(function() return ffi.C.engram_version end)
end

local function module_root()
  local src = debug.getinfo(1, "S").source
  return src:match("^@(.*)/lua/engram/[^/]*$") or (src:match("^@lua/engram/[^/]*$") and ".")
end

local function load()
  if in_process() then
    return ffi.C
  end
  local tried = {}
  local candidates = {}
  if os.getenv("ENGRAM_LIB") and os.getenv("ENGRAM_LIB") ~= "" then
    candidates[#candidates + 1] = os.getenv("ENGRAM_LIB")
  end
  local root = module_root()
  if root then
    candidates[#candidates + 1] = root .. "/build/release/libengram.so"
  end
  candidates[#candidates + 1] = "engram"
  for _, path in ipairs(candidates) do
    local ok, lib = pcall(ffi.load, path)
    if ok then
      return lib
    end
    tried[#tried + 1] = path .. " (" .. tostring(lib) .. ")"
  end
  error("engram: cannot load libengram; tried " .. table.concat(tried, ", ")
        .. " (set ENGRAM_LIB to the library's path)", 2)
end

local C = load()

local have = C.engram_version()
local want = 100 -- ENGRAM_VERSION_NUM of the cdef above (0.1.0)
if math.floor(have / 100) ~= math.floor(want / 100) then
  error(string.format("engram: library version %d does not match the Lua module (%d)", have, want))
end

return C
