-- engram.pool: object pools, vector pools, arena caches and the JSON report from Lua.
local ffi = require("ffi")
local lpeg = require("lpeg")
local pool = require("engram.pool")

-- A JSON decoder as an lpeg grammar: objects become tables, arrays become sequences (with n),
-- null becomes the `null` sentinel; integers are kept exact as strings in `raw` when asked.
local null = setmetatable({}, { __tostring = function() return "null" end })
local json
do
  local P, S, R, V, C, Ct, Cg, Cf, Cc =
    lpeg.P, lpeg.S, lpeg.R, lpeg.V, lpeg.C, lpeg.Ct, lpeg.Cg, lpeg.Cf, lpeg.Cc
  local ws = S(" \t\r\n") ^ 0
  local digit = R("09")
  local number = C(P("-") ^ -1 * (P("0") + R("19") * digit ^ 0) * (P(".") * digit ^ 1) ^ -1
    * (S("eE") * S("+-") ^ -1 * digit ^ 1) ^ -1) / tonumber
  local function utf8(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then return string.char(0xc0 + math.floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
      return string.char(0xe0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return string.char(0xf0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
      0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  local hex4 = (R("09", "af", "AF") ^ 4) / function(h) return tonumber(h, 16) end
  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local surrogate = (P("\\u") * hex4 * P("\\u") * hex4) / function(hi, lo)
    assert(hi >= 0xd800 and hi <= 0xdbff and lo >= 0xdc00 and lo <= 0xdfff, "bad surrogate pair")
    return utf8(0x10000 + (hi - 0xd800) * 1024 + (lo - 0xdc00))
  end
  local escape = surrogate + P("\\u") * hex4 / utf8 + P("\\") * C(S('"\\/bfnrt')) / escapes
  local char = escape + C((P(1) - S('"\\') - R("\0\31")) ^ 1)
  local str = P('"') * Ct(char ^ 0) / table.concat * P('"')
  local function pack(t) t.n = #t return t end
  local grammar = P({
    "doc",
    doc = ws * V("value") * ws * -1,
    value = V("object") + V("array") + str + number
      + P("true") * Cc(true) + P("false") * Cc(false) + P("null") * Cc(null),
    member = Cg(ws * str * ws * P(":") * ws * V("value") * ws),
    object = P("{") * ws * Cf(Ct("") * (V("member") * (P(",") * V("member")) ^ 0) ^ -1, rawset) * ws * P("}"),
    array = P("[") * ws * Ct((V("value") * ws * (P(",") * ws * V("value") * ws) ^ 0) ^ -1) / pack * P("]"),
  })
  json = function(text)
    local v = grammar:match(text)
    assert(v ~= nil, "not valid JSON")
    return v
  end
end

describe("engram.pool", function()
  it("hands the last released object out first", function()
    local p = pool.new{ name = "lifo", size = 24, align = 8 }
    local a, b, c = p:acquire(), p:acquire(), p:acquire()
    p:release(b)
    p:release(c)
    assert.equal(c, p:acquire())
    assert.equal(b, p:acquire())
    local d = p:acquire()
    assert.is_true(d ~= a and d ~= b and d ~= c)
    p:release(nil)
    p:destroy()
    p:destroy()
  end)

  it("returns nil and the exact error at the memory cap", function()
    local p = pool.new{ name = "capped", size = 64, align = 64, initial = 16, max_bytes = "64KiB" }
    local n = 0
    while true do
      local o, err = p:acquire()
      if not o then
        assert.equal("pool: memory cap of 64KiB reached ('capped': 1024 objects of 64 bytes in use)", err)
        break
      end
      n = n + 1
    end
    assert.equal(1024, n)
    local s = p:stats()
    assert.equal(1024, s.capacity)
    assert.equal(1024, s.in_use)
    assert.equal(1, s.failures)
    assert.equal(65536, s.bytes_reserved)
    p:destroy()
  end)

  it("aligns every vector slot to 64 bytes for any dim", function()
    for _, dim in ipairs({ 1, 3, 16, 768, 1000 }) do
      local v = pool.vectors{ name = "vec" .. dim, dim = dim }
      local held = {}
      for i = 1, 200 do
        local f = v:acquire()
        assert.is_true(ffi.istype("float *", f))
        assert.equal(0, tonumber(ffi.cast("uintptr_t", f)) % 64)
        f[dim - 1] = -i
        f[0] = i
        held[i] = f
      end
      for i = 1, 200 do
        assert.equal(i, held[i][0])
        if dim > 1 then assert.equal(-i, held[i][dim - 1]) end
      end
      local s = v:stats()
      assert.equal(dim, s.vector_dim)
      assert.equal(math.ceil(dim * 4 / 64) * 64, s.stride)
      v:destroy()
    end
  end)

  it("casts objects to the pool's ctype and zeroes them when asked", function()
    local p = pool.new{ name = "edges", size = 12, align = 4, zero = true,
                        ctype = "struct { int32_t src, dst; float w; } *" }
    local e = p:acquire()
    e.src, e.dst, e.w = 7, 9, 0.5
    p:release(e)
    local e2 = p:acquire()
    assert.equal(ffi.cast("void *", e), ffi.cast("void *", e2))
    assert.equal(0, e2.src)
    assert.equal(0, e2.dst)
    assert.equal(0, e2.w)
    assert.is_true(p:stats().zero)
    p:destroy()
  end)

  it("counts use, peak and reuse", function()
    local p = pool.new{ name = "counted", size = 32 }
    local o = {}
    for i = 1, 10 do o[i] = p:acquire() end
    for i = 1, 6 do p:release(o[i]) end
    for i = 1, 4 do o[i] = p:acquire() end
    local s = p:stats()
    assert.same({ "counted", 14, 6, 8, 10, 4 }, { s.name, s.acquisitions, s.releases, s.in_use, s.peak, s.reuses })
    assert.near(4 / 14, s.reuse_rate, 1e-12)
    p:destroy()
  end)

  it("raises on bad arguments with the library's message", function()
    assert.has_error(function() pool.new{ size = 16, align = 3 } end,
      "pool: bad alignment 3 (expected a power of two from 1 to 4096)")
    assert.has_error(function() pool.new{ size = 16, max_bytes = "12 parsecs" } end)
    assert.has_error(function() pool.new{} end, "pool: size (bytes per object) is required")
    assert.has_error(function() pool.new("x") end, "bad argument #1 to 'new' (table expected, got string)")
    local p = pool.new{ size = 8 }
    assert.has_error(function() p:release(42) end, "bad argument #1 to 'release' (pool object expected, got number)")
    p:destroy()
    assert.has_error(function() p:acquire() end, "pool: used after destroy")
  end)

  it("reuses arenas from a cache and keeps a bounded number per class", function()
    local c = pool.arena_cache{ name = "scratch", keep_per_class = 1 }
    local a = c:acquire("100KiB")
    local b = c:acquire(100 * 1024)
    c:release(a)
    c:release(b)   -- the class already keeps one: destroyed
    local s = c:stats()
    assert.same({ 2, 0, 2, 1, 0, 1 }, { s.acquisitions, s.reuses, s.created, s.destroyed, s.out, s.kept })
    assert.equal(1, s.kept_per_class[128 * 1024])
    local a2 = c:acquire(1000)
    assert.is_true(a2 ~= a)   -- 1000 bytes is the 64 KiB class: a new arena
    assert.equal(64 * 1024, tonumber(require("engram.lib").engram_arena_capacity(a2)))
    c:release(a2)
    assert.equal(a, c:acquire(128 * 1024))
    local _, err = c:acquire(2 ^ 31)
    assert.equal("arena cache: 2147483648 bytes is above the largest size class (1073741824 bytes)", err)
    c:destroy()
  end)

  it("reports every pool in a JSON document that parses back", function()
    local names = { 'plain', 'quote " and \\ backslash', "tab\tnew\nline", "caf\195\169" }
    local pools = {}
    for i, name in ipairs(names) do
      pools[i] = pool.new{ name = name, size = 16 * i, shared = i == 2 }
      for _ = 1, i do pools[i]:acquire() end
    end
    local text = assert(pool.stats_json())
    local doc = json(text)
    assert.equal("0.1.0", doc.version)
    assert.equal("table", type(doc.process))
    assert.equal("number", type(doc.process.arenas_live))
    local found = 0
    for _, entry in ipairs(doc.pools) do
      for i, name in ipairs(names) do
        if entry.name == name then
          found = found + 1
          local s = pools[i]:stats()
          for _, k in ipairs({ "capacity", "in_use", "peak", "acquisitions", "releases", "reuses",
                               "failures", "bytes_reserved", "max_bytes", "slabs", "stride",
                               "object_size", "align", "vector_dim" }) do
            assert.equal(s[k], entry[k], name .. "." .. k)
          end
          assert.equal(s.shared, entry.shared)
          assert.near(s.reuse_rate, entry.reuse_rate, 1e-6)
        end
      end
    end
    assert.equal(#names, found)
    for _, p in ipairs(pools) do p:destroy() end
    assert.is_nil(pool.stats_json():find("quote", 1, true))
  end)
end)
