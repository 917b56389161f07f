-- The kernels from Lua: raw FFI pointers in, statuses out (spec for lua/engram/kernels.lua).
local ffi = require("ffi")
local C = require("engram.lib")
local K = require("engram.kernels")

local function floats(t)
  return ffi.new("float[?]", #t, t)
end

local function u32(t)
  return ffi.new("uint32_t[?]", #t, t)
end

local function small_arena(bytes)
  local cfg = ffi.new("engram_arena_config", { size = bytes, align = 16, overflow = C.ENGRAM_OVERFLOW_ERROR })
  return ffi.gc(C.engram_arena_create(cfg), C.engram_arena_destroy)
end

describe("engram.kernels", function()
  after_each(function()
    K.set_isa("auto")
  end)

  describe("ISA selection", function()
    it("reports the ISA in use and switches to the scalar reference on request", function()
      assert.is_string(K.isa())
      assert.is_true(K.set_isa("scalar"))
      assert.are.equal("scalar", K.isa())
    end)

    it("refuses an ISA the CPU lacks with the library's message", function()
      if K.isa_supported("avx512") then
        assert.is_true(K.set_isa("avx512"))
      else
        local ok, err = K.set_isa("avx512")
        assert.is_nil(ok)
        assert.are.equal("kernels: this CPU does not support avx512", err)
      end
    end)

    it("raises on an unknown ISA name", function()
      assert.has_error(function() K.set_isa("sse9") end,
        "bad argument #1 to 'set_isa' (scalar, avx2, avx512 or auto expected, got sse9)")
    end)
  end)

  describe("similarity", function()
    it("scores identical, opposite, orthogonal and zero vectors", function()
      local q = floats({ 1, 2, 3, 0 })
      local rows = floats({ 1, 2, 3, 0,  -2, -4, -6, 0,  0, 0, 0, 5,  0, 0, 0, 0 })
      local s = ffi.new("float[4]")
      assert.is_true(K.cosine(q, rows, 4, 4, s))
      assert.is_true(math.abs(s[0] - 1) < 1e-6 and s[0] <= 1)
      assert.is_true(math.abs(s[1] + 1) < 1e-6 and s[1] >= -1)
      assert.are.equal(0, s[2])
      assert.are.equal(0, s[3])
    end)

    it("gives the same scores with precomputed inverse norms", function()
      local q = floats({ 0.5, -1, 2 })
      local rows = floats({ 1, 1, 1,  3, -1, 0.25,  -2, 0, 1 })
      local inv, a, b = ffi.new("float[3]"), ffi.new("float[3]"), ffi.new("float[3]")
      assert.is_true(K.norms(rows, 3, 3, inv))
      assert.is_true(K.cosine(q, rows, 3, 3, a))
      assert.is_true(K.cosine_normed(q, rows, inv, 3, 3, b))
      for i = 0, 2 do
        assert.is_true(math.abs(a[i] - b[i]) < 1e-6)
      end
    end)

    it("fills a symmetric matrix with a unit diagonal", function()
      local rows = floats({ 1, 0,  1, 1,  0, 1 })
      local m = ffi.new("float[9]")
      assert.is_true(K.matrix(rows, 3, 2, m))
      assert.are.equal(1, m[0])
      assert.are.equal(1, m[4])
      assert.are.equal(m[1], m[3])
      assert.is_true(math.abs(m[1] - math.sqrt(0.5)) < 1e-6)
      assert.are.equal(0, m[2])
    end)

    it("lists pairs above a threshold and reports a full buffer with the count", function()
      local rows = floats({ 1, 0,  1, 0.1,  0, 1,  0.1, 1 })
      local out = ffi.new("engram_sim_pair[6]")
      assert.are.equal(2, K.pairs(rows, 4, 2, 0.9, out, 6))
      local ok, err, found = K.pairs(rows, 4, 2, 0.9, out, 1)
      assert.is_nil(ok)
      assert.are.equal("similarity: 2 pairs found, room for 1 (the first 1 are kept)", err)
      assert.are.equal(2, found)
    end)

    it("lists the pairs of a prefix among itself and against the rest", function()
      -- rows 0, 1 (the prefix) and 2, 3: pairs (0,1), (0,2), (0,3), (1,2), (1,3) are candidates, (2,3) is not
      local rows = floats({ 1, 0,  0, 1,  1, 0.1,  0.1, 1 })
      local out = ffi.new("engram_sim_pair[5]")
      assert.are.equal(2, K.pairs_prefix(rows, 2, 4, 2, 0.9, out, 5))
      local got = {}
      for k = 0, 1 do got[#got + 1] = out[k].i .. "-" .. out[k].j end
      table.sort(got)
      assert.are.same({ "0-2", "1-3" }, got)
      assert.are.equal(0, K.pairs_prefix(rows, 0, 4, 2, 0.9, out, 5))
      assert.has_error(function() K.pairs_prefix(rows, 3, 2, 2, 0.9, out, 5) end,
        "similarity: 3 rows of 2 (expected n <= total)")
      assert.has_error(function() K.pairs_prefix(rows, 2, 4, 2, "x", out, 5) end,
        "bad argument #5 to 'pairs_prefix' (number expected, got string)")
    end)

    it("finds each row's nearest rows", function()
      local rows = floats({ 1, 0,  1, 0.1,  0, 1,  0.1, 1 })
      local idx, sc = ffi.new("uint32_t[4]"), ffi.new("float[4]")
      assert.is_true(K.topk(rows, 4, 2, 1, idx, sc))
      assert.are.same({ 1, 0, 3, 2 }, { idx[0], idx[1], idx[2], idx[3] })
    end)

    it("returns nil and the message when the arena is too small", function()
      local n, d = 64, 512
      local rows, m = ffi.new("float[?]", n * d), ffi.new("float[?]", n * n)
      for i = 0, n * d - 1 do rows[i] = (i % 7) - 3 end
      local ok, err = K.matrix(rows, n, d, m, nil, small_arena(65536))
      assert.is_nil(ok)
      assert.matches("^similarity: scratch of %d+ bytes does not fit the arena", err)
    end)

    it("raises on misuse", function()
      assert.has_error(function() K.cosine(nil, nil, 1, 4, nil) end,
        "bad argument #1 to 'cosine' (float * expected, got nil)")
      local v = floats({ 1, 2 })
      assert.has_error(function() K.cosine(v, v, 1, 0, v) end, "similarity: dimension d must be >= 1")
    end)
  end)

  describe("spreading activation", function()
    -- 0 -> 1 -> 2 -> 3, weights 0.9
    local off, tg, w = u32({ 0, 1, 2, 3, 3 }), u32({ 1, 2, 3 }), floats({ 0.9, 0.9, 0.9 })
    local g = K.csr(4, 3, off, tg, w)

    it("runs the iterative mode (Jacobi rounds)", function()
      local act = floats({ 1, 0, 0, 0 })
      assert.is_true(K.spread_iterate(g, act, 1))
      assert.is_true(act[1] > 0)
      assert.are.equal(0, act[2])
    end)

    it("pushes from seeds with per-hop decay and reports what it touched", function()
      local act, touched = floats({ 0, 0, 0, 0 }), ffi.new("uint32_t[4]")
      local n = K.spread_bounded(g, u32({ 0 }), 1, act, { max_depth = 2, touched = touched, cap = 4 })
      assert.are.equal(3, n)
      local f1, f2 = math.exp(-0.7 * 1), math.exp(-0.7 * 2)
      assert.are.equal(1, act[0])
      assert.is_true(math.abs(act[1] - 0.9 * f1) < 1e-6)
      assert.is_true(math.abs(act[2] - 0.9 * f1 * 0.9 * f2) < 1e-6)
      assert.are.equal(0, act[3])
      assert.are.same({ 0, 1, 2 }, { touched[0], touched[1], touched[2] })
    end)

    it("returns nil and the message for a target out of range, leaving act alone", function()
      local bad = K.csr(2, 1, u32({ 0, 1, 1 }), u32({ 5 }), floats({ 1 }))
      local act = floats({ 1, 0 })
      local ok, err = K.spread_iterate(bad, act, 1)
      assert.is_nil(ok)
      assert.are.equal("spread: edge 0 (from node 0) targets node 5, beyond the 2 nodes", err)
      assert.are.equal(1, act[0])
      assert.are.equal(0, act[1])
      assert.is_nil((K.validate(bad)))
    end)
  end)

  describe("decay", function()
    it("halves a strength after one half-life", function()
      local s, t = floats({ 1, 0.8 }), floats({ 86400, 0 })
      assert.is_true(K.decay({ model = "half_life", half_life = 86400 }, s, t, 2))
      assert.is_true(math.abs(s[0] - 0.5) < 1e-6)
      assert.is_true(math.abs(s[1] - 0.8) < 1e-7)
    end)

    it("uses the access counts in the two-component model", function()
      local s, t = floats({ 1, 1 }), floats({ 3600, 3600 })
      assert.is_true(K.decay({ model = "two_component", half_life = 3600, beta = 1, unit = 3600, k = 3 },
                             s, t, 2, u32({ 0, 5 })))
      assert.is_true(math.abs(s[0] - 0.5) < 1e-6)
      assert.is_true(math.abs(s[1] - 0.5) < 1e-6)
    end)

    it("raises on bad parameters with the library's message", function()
      local s, t = floats({ 1 }), floats({ 1 })
      assert.has_error(function() K.decay({ model = "half_life", half_life = 0 }, s, t, 1) end,
        "decay: bad half_life 0 (expected seconds > 0)")
      assert.has_error(function() K.decay({ model = "cubic" }, s, t, 1) end,
        "bad argument #1 to 'decay' (unknown model 'cubic'; expected half_life, time_constant, power or two_component)")
    end)
  end)
end)
