-- The arena seen from Lua (engram.arena): views, bounds, staleness, scopes, exhaustion, stats,
-- sizes and the environment.
local arena = require("engram.arena")
local ffi = require("ffi")

local function luajit_with_env(env, code)
  local cmd = ("%s luajit -e %q 2>&1"):format(env, code)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

describe("engram.arena", function()
  local a
  before_each(function() a = arena.new{ size = "64KiB", overflow = "error" } end)
  after_each(function() a:destroy() end)

  it("hands out 0-based typed views that read back what was written", function()
    local f, d, i, b = a:floats(5), a:doubles(3), a:ints(4), a:bytes(7)
    for k = 0, 4 do f[k] = k + 0.5 end
    for k = 0, 2 do d[k] = k / 3 end
    for k = 0, 3 do i[k] = -k end
    for k = 0, 6 do b[k] = 250 + k end
    assert.are.equal(5, #f)
    assert.are.equal(4.5, f[4])
    assert.are.equal(2 / 3, d[2])
    assert.are.equal(-3, i[3])
    assert.are.equal(0, b[6])        -- uint8 wraps, like C
    assert.are.same({ 0.5, 1.5, 2.5, 3.5, 4.5 }, f:totable())
  end)

  it("aligns every view to 64 bytes", function()
    a:bytes(3)
    local f = a:floats(3)
    assert.are.equal(0, tonumber(ffi.cast("uintptr_t", f:pointer())) % 64)
  end)

  it("checks bounds on reads and writes", function()
    local f = a:floats(3)
    assert.has_error(function() return f[3] end, "arena view index 3 out of range (0 to 2)")
    assert.has_error(function() return f[-1] end, "arena view index -1 out of range (0 to 2)")
    assert.has_error(function() f[3] = 1 end, "arena view index 3 out of range (0 to 2)")
    assert.has_error(function() f.x = 1 end, "cannot set field 'x' of an arena view")
  end)

  it("raises when a view is used after its arena was reset", function()
    local f = a:floats(4)
    f[0] = 1
    a:reset()
    assert.has_error(function() return f[0] end, arena.STALE)
    assert.has_error(function() f[0] = 2 end, arena.STALE)
    assert.has_error(function() f:pointer() end, arena.STALE)
    assert.has_error(function() f:totable() end, arena.STALE)
    assert.is_false(arena.is_live(f))
    assert.are.equal("engram.floats(4) (stale)", tostring(f))
  end)

  it("makes views of a rewound scope stale and keeps outer views valid", function()
    local outer = a:floats(2)
    outer[0] = 7
    local m = a:mark()
    local inner = a:ints(2)
    inner[0] = 1
    outer[1] = 8                    -- outer views stay usable inside the scope
    a:rewind(m)
    assert.has_error(function() return inner[0] end, arena.STALE)
    assert.are.equal(7, outer[0])
    assert.are.equal(8, outer[1])
    assert.are.equal(8, a:used())
  end)

  it("runs a function in a scope and releases its memory however it ends", function()
    local before = a:used()
    local kept
    local r = a:scope(function(x) kept = a:floats(100); return x * 2 end, 21)
    assert.are.equal(42, r)
    assert.are.equal(before, a:used())
    assert.has_error(function() return kept[0] end, arena.STALE)
    assert.has_error(function() a:scope(function() a:floats(10); error("boom", 0) end) end, "boom")
    assert.are.equal(before, a:used())
  end)

  it("refuses a mark that was already rewound", function()
    local m = a:mark()
    a:rewind(m)
    assert.has_error(function() a:rewind(m) end, "arena: scope already closed (or its mark is from another arena)")
    assert.has_error(function() a:rewind(42) end, "bad argument #1 to 'rewind' (mark expected, got number)")
  end)

  it("raises on exhaustion with the sizes, and alloc returns nil and the message", function()
    a:floats(1000)
    assert.has_error(function() a:floats(20000) end,
      "arena: out of memory (requested 80000 bytes, align 64; 4000 of 65536 bytes used)")
    local p, err = a:alloc(70000)
    assert.is_nil(p)
    assert.are.equal("arena: out of memory (requested 70000 bytes, align 16; 4000 of 65536 bytes used)", err)
    assert.are.equal(4000, a:used())   -- a failed request changes nothing
  end)

  it("rejects counts that are not non-negative integers", function()
    assert.has_error(function() a:floats(-1) end, "bad argument #1 to 'floats' (non-negative integer expected, got -1)")
    assert.has_error(function() a:ints(1.5) end, "bad argument #1 to 'ints' (non-negative integer expected, got 1.5)")
    assert.has_error(function() a:bytes("x") end, "bad argument #1 to 'bytes' (non-negative integer expected, got x)")
    assert.has_error(function() a:floats(2 ^ 60) end, "arena: size overflow (1152921504606846976 elements of 4 bytes)")
  end)

  it("gives row-major matrices with checked get, set and row views", function()
    local m = a:matrix(3, 4)
    for r = 0, 2 do for c = 0, 3 do m:set(r, c, r * 10 + c) end end
    assert.are.equal(23, m:get(2, 3))
    local row = m:row(1)
    assert.are.equal(4, #row)
    assert.are.equal(12, row[2])
    assert.has_error(function() m:get(3, 0) end, "arena matrix index (3, 0) out of range (3 x 4)")
    a:reset()
    assert.has_error(function() m:get(0, 0) end, arena.STALE)
    assert.has_error(function() return row[0] end, arena.STALE)
  end)

  it("serves from fallback chunks when configured to, and counts them", function()
    local b = arena.new{ size = "64KiB", overflow = "fallback" }
    local v = b:floats(32768)      -- 128 KiB: twice the arena
    v[32767] = 3
    assert.are.equal(3, v[32767])
    local st = b:stats()
    assert.are.equal(1, st.fallback_chunks)
    assert.is_true(st.fallback_bytes >= 131072)
    assert.are.equal("fallback", st.overflow)
    b:reset()
    assert.are.equal(0, b:stats().used)
    b:destroy()
  end)

  it("reports its counters", function()
    a:floats(100)
    a:reset()
    a:bytes(10)
    local st = a:stats()
    assert.are.equal(65536, st.capacity)
    assert.are.equal(10, st.used)
    assert.are.equal(400, st.high_water)
    assert.are.equal(1, st.resets)
    assert.are.equal("4k", st.page_kind)
    assert.are.equal("error", st.overflow)
  end)

  it("destroys only arenas it made, and only once", function()
    local b = arena.new{ size = "64KiB" }
    b:destroy()
    assert.has_error(function() b:destroy() end, "arena: destroy takes an arena made by arena.new, not yet destroyed")
    assert.has_error(function() arena.thread():destroy() end,
      "arena: destroy takes an arena made by arena.new, not yet destroyed")
    -- the same arena seen through a pointer handed over by C (as the host hands a worker's)
    assert.has_error(function() arena.wrap(ffi.cast("void *", a)):destroy() end,
      "arena: destroy takes an arena made by arena.new, not yet destroyed")
    assert.are.equal(0, a:used())   -- `a` (made by arena.new) is untouched
  end)

  it("refuses to close a later scope with the mark of an earlier one", function()
    local m1 = a:mark()
    a:rewind(m1)
    local v = a:floats(4)
    v[0] = 1
    local m2 = a:mark()
    assert.has_error(function() a:rewind(m1) end, "arena: scope already closed (or its mark is from another arena)")
    local w = a:floats(4)
    w[0] = 42
    assert.are.equal(1, v[0])
    a:rewind(m2)
    assert.has_error(function() return w[0] end, arena.STALE)
    assert.are.equal(1, v[0])
  end)

  it("parses sizes and rejects bad ones with the accepted forms", function()
    assert.are.equal(8 * 2 ^ 20, arena.parse_size("8MiB"))
    assert.are.equal(65536, arena.parse_size("64K"))
    local n, err = arena.parse_size("8 MB")
    assert.is_nil(n)
    assert.are.equal("size: bad value '8 MB' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)", err)
    assert.has_error(function() arena.new{ size = "lots" } end,
      "size: bad value 'lots' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)")
    assert.has_error(function() arena.new{ overflow = "ignore" } end,
      "bad option 'overflow' to 'arena.new' (expected error, panic or fallback, got ignore)")
  end)

  it("gives each thread's default arena the size from ENGRAM_ARENA_SIZE", function()
    local code = 'local a = require("engram.arena").thread() print(a:capacity())'
    assert.are.equal("8388608\n", luajit_with_env("ENGRAM_ARENA_SIZE=8MiB", code))
  end)

  it("reports a bad ENGRAM_ARENA_OVERFLOW instead of ignoring it", function()
    local code = 'local ok, err = pcall(require("engram.arena").thread) print(err)'
    assert.are.equal("config: bad ENGRAM_ARENA_OVERFLOW 'error_return' (expected error, panic or fallback)\n",
      luajit_with_env("ENGRAM_ARENA_OVERFLOW=error_return", code))
  end)
end)
