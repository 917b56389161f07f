-- engram.kernels: cosine similarity, spreading activation and decay from LuaJIT.
--
--   local K = require("engram.kernels")
--   local scores = ffi.new("float[?]", n)
--   assert(K.cosine(query, rows, n, d, scores))          -- rows: float * of n*d, row-major
--   local g = K.csr(n, nedges, offsets, targets, weights)
--   assert(K.spread_bounded(g, seeds, nseeds, act, { max_depth = 3 }))
--   assert(K.decay({ model = "half_life", half_life = 86400 }, strength, age, n))
--
-- Arguments are raw FFI pointers (float *, uint32_t *) with their lengths; the caller owns the
-- memory and keeps it alive during the call (a graph made by K.csr does not anchor its arrays).
-- Scratch comes from `arena` (an engram_arena *) or, when it is nil, the calling thread's arena,
-- and is given back before the call returns. Misuse (a wrong type, a bad length or parameter)
-- raises an error blaming the caller; a failure of the data or the machine (arena full, graph
-- out of range, unsupported ISA) returns nil and the library's message.
local ffi = require("ffi")
local C = require("engram.lib")

local M = {}

local ffi_string = ffi.string
local floor = math.floor

local EINVAL, EOVERFLOW, EFULL = -1, -4, -3

local csr_t = ffi.typeof("engram_csr")
local spread_params_t = ffi.typeof("engram_spread_params")
local decay_params_t = ffi.typeof("engram_decay_params")
local size_box_t = ffi.typeof("size_t[1]")
local null = nil

local ISA = { scalar = 0, avx2 = 1, avx512 = 2, auto = 3 }
local MODEL = { half_life = 0, time_constant = 1, power = 2, two_component = 3 }

local function last_error()
  return ffi_string(C.engram_last_error())
end

-- 0 -> true; misuse -> error at the caller's caller; anything else -> nil, message.
local function status(rc)
  if rc == 0 then
    return true
  end
  if rc == EINVAL or rc == EOVERFLOW then
    error(last_error(), 3)
  end
  return nil, last_error()
end

local function ptr(x, i, fname, what)
  if type(x) ~= "cdata" then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", i, fname, what, type(x)), 3)
  end
  return x
end

local function opt_ptr(x, i, fname, what)
  if x == nil then
    return null
  end
  return ptr(x, i, fname, what)
end

local function count(x, i, fname)
  if type(x) ~= "number" or x < 0 or x ~= floor(x) or x >= 2 ^ 53 then
    error(string.format("bad argument #%d to '%s' (non-negative integer expected, got %s)", i, fname,
                        tostring(x)), 3)
  end
  return x
end

-- ---- ISA ----------------------------------------------------------------------------------

-- The ISA in use ("scalar", "avx2", "avx512"), or nil, err when ENGRAM_ISA is bad.
function M.isa()
  local rc = C.engram_kernel_isa()
  if rc < 0 then
    return nil, last_error()
  end
  return ffi_string(C.engram_kernel_isa_name(rc))
end

function M.isa_supported(name)
  local id = ISA[name]
  if not id then
    error("bad argument #1 to 'isa_supported' (scalar, avx2, avx512 expected, got " .. tostring(name) .. ")", 2)
  end
  return C.engram_kernel_isa_supported(id) ~= 0
end

-- Select the ISA for every thread ("auto" re-reads ENGRAM_ISA and the CPU). nil, err when the
-- CPU lacks it.
function M.set_isa(name)
  local id = ISA[name]
  if not id then
    error("bad argument #1 to 'set_isa' (scalar, avx2, avx512 or auto expected, got " .. tostring(name) .. ")", 2)
  end
  local rc = C.engram_kernel_set_isa(id)
  if rc ~= 0 then
    return nil, last_error()
  end
  return true
end

-- ---- similarity ------------------------------------------------------------------------------

function M.norms(rows, n, d, inv, arena)
  return status(C.engram_sim_norms(arena, ptr(rows, 1, "norms", "float *"), count(n, 2, "norms"),
                                   count(d, 3, "norms"), ptr(inv, 4, "norms", "float *")))
end

function M.cosine(query, rows, n, d, scores, arena)
  return status(C.engram_sim_cosine(arena, ptr(query, 1, "cosine", "float *"), ptr(rows, 2, "cosine", "float *"),
                                    count(n, 3, "cosine"), count(d, 4, "cosine"),
                                    ptr(scores, 5, "cosine", "float *")))
end

function M.cosine_normed(query, rows, inv, n, d, scores, arena)
  local f = "cosine_normed"
  return status(C.engram_sim_cosine_normed(arena, ptr(query, 1, f, "float *"), ptr(rows, 2, f, "float *"),
                                           ptr(inv, 3, f, "float *"), count(n, 4, f), count(d, 5, f),
                                           ptr(scores, 6, f, "float *")))
end

-- out: float * of n*n. inv (optional): precomputed inverse norms.
function M.matrix(rows, n, d, out, inv, arena)
  local f = "matrix"
  return status(C.engram_sim_matrix(arena, ptr(rows, 1, f, "float *"), opt_ptr(inv, 5, f, "float *"),
                                    count(n, 2, f), count(d, 3, f), ptr(out, 4, f, "float *")))
end

-- out: float * of na*nb.
function M.cross(arows, na, brows, nb, d, out, inv_a, inv_b, arena)
  local f = "cross"
  return status(C.engram_sim_cross(arena, ptr(arows, 1, f, "float *"), opt_ptr(inv_a, 7, f, "float *"),
                                   count(na, 2, f), ptr(brows, 3, f, "float *"), opt_ptr(inv_b, 8, f, "float *"),
                                   count(nb, 4, f), count(d, 5, f), ptr(out, 6, f, "float *")))
end

-- Pairs i < j with cos >= threshold into out (engram_sim_pair *, room for cap). Returns the
-- number found; when it exceeds cap: nil, err, number found (the first cap are kept).
local function threshold_arg(x, i, f)
  if type(x) ~= "number" then
    error("bad argument #" .. i .. " to '" .. f .. "' (number expected, got " .. type(x) .. ")", 3)
  end
  return x
end

-- The call itself, arguments checked by the caller.
local function pairs_call(arena, rows, inv, n, total, d, threshold, out, cap)
  local box = size_box_t()
  local rc = C.engram_sim_pairs_prefix(arena, rows, inv, n, total, d, threshold, out, cap, box)
  if rc == 0 then
    return tonumber(box[0])
  elseif rc == EINVAL or rc == EOVERFLOW then
    error(last_error(), 4)   -- misuse: blame the caller of M.pairs / M.pairs_prefix
  elseif rc == EFULL then
    return nil, last_error(), tonumber(box[0])
  end
  return nil, last_error()
end

function M.pairs(rows, n, d, threshold, out, cap, inv, arena)
  local f = "pairs"
  cap = count(cap or 0, 6, f)
  n = count(n, 2, f)
  return pairs_call(arena, ptr(rows, 1, f, "float *"), opt_ptr(inv, 7, f, "float *"), n, n, count(d, 3, f),
                    threshold_arg(threshold, 4, f), cap > 0 and ptr(out, 5, f, "engram_sim_pair *") or null, cap)
end

-- The pairs (i, j), i < n, i < j < total, with cos >= threshold: the first n rows among
-- themselves and against the rest (inv, if given, has all total rows). Returns as pairs.
function M.pairs_prefix(rows, n, total, d, threshold, out, cap, inv, arena)
  local f = "pairs_prefix"
  cap = count(cap or 0, 7, f)
  return pairs_call(arena, ptr(rows, 1, f, "float *"), opt_ptr(inv, 8, f, "float *"), count(n, 2, f),
                    count(total, 3, f), count(d, 4, f), threshold_arg(threshold, 5, f),
                    cap > 0 and ptr(out, 6, f, "engram_sim_pair *") or null, cap)
end

-- For each row its k most similar other rows: idx (uint32_t *) and score (float *) of n*k.
function M.topk(rows, n, d, k, idx, score, inv, arena)
  local f = "topk"
  return status(C.engram_sim_topk(arena, ptr(rows, 1, f, "float *"), opt_ptr(inv, 7, f, "float *"),
                                  count(n, 2, f), count(d, 3, f), count(k, 4, f),
                                  ptr(idx, 5, f, "uint32_t *"), ptr(score, 6, f, "float *")))
end

-- The mean of the unit vectors of rows members[0..m) (uint32_t row numbers) into out (d floats),
-- with inverse norms inv; returns its norm (the members' mean cosine to it).
local norm_box = ffi.new("float[1]")
function M.centroid(rows, inv, d, members, m, out)
  local f = "centroid"
  local ok, err = status(C.engram_sim_centroid(ptr(rows, 1, f, "float *"), ptr(inv, 2, f, "float *"), count(d, 3, f),
                                               ptr(members, 4, f, "uint32_t *"), count(m, 5, f),
                                               ptr(out, 6, f, "float *"), norm_box))
  if not ok then
    return nil, err
  end
  return norm_box[0]
end

-- ---- spreading activation -----------------------------------------------------------------------

-- A CSR graph (engram_csr cdata) over the caller's arrays: offsets (n+1), targets, weights.
function M.csr(n, nedges, offsets, targets, weights)
  local f = "csr"
  return csr_t(count(n, 1, f), count(nedges, 2, f), ptr(offsets, 3, f, "uint32_t *"),
               opt_ptr(targets, 4, f, "uint32_t *"), opt_ptr(weights, 5, f, "float *"))
end

function M.validate(g)
  return status(C.engram_csr_validate(ptr(g, 1, "validate", "engram_csr")))
end

function M.spread_iterate(g, act, iterations, arena)
  local f = "spread_iterate"
  return status(C.engram_spread_iterate(arena, ptr(g, 1, f, "engram_csr"), ptr(act, 2, f, "float *"),
                                        count(iterations, 3, f)))
end

-- opts (all optional): max_depth, rate, threshold (defaults 4, 0.7, 0.01), seed_act (float *),
-- touched (uint32_t *) with cap. Returns the number of nodes touched.
function M.spread_bounded(g, seeds, nseeds, act, opts, arena)
  local f = "spread_bounded"
  opts = opts or {}
  local p = spread_params_t()
  C.engram_spread_params_default(p)
  if opts.max_depth ~= nil then p.max_depth = count(opts.max_depth, 5, f) end
  if opts.rate ~= nil then p.rate = opts.rate end
  if opts.threshold ~= nil then p.threshold = opts.threshold end
  local box = size_box_t()
  local cap = count(opts.cap or 0, 5, f)
  local rc = C.engram_spread_bounded(arena, ptr(g, 1, f, "engram_csr"), ptr(seeds, 2, f, "uint32_t *"),
                                     opt_ptr(opts.seed_act, 5, f, "float *"), count(nseeds, 3, f), p,
                                     ptr(act, 4, f, "float *"),
                                     cap > 0 and ptr(opts.touched, 5, f, "uint32_t *") or null, cap, box)
  local ok, err = status(rc)
  if not ok then
    return nil, err
  end
  return tonumber(box[0])
end

-- ---- decay ----------------------------------------------------------------------------------

-- params: { model = "half_life" | "time_constant" | "power" | "two_component", half_life, tau,
-- beta, unit, k, floor } (missing fields take the model's defaults). access (uint32_t *) is
-- needed by two_component only. Strengths are updated in place.
function M.decay(params, strength, age, n, access, arena)
  local f = "decay"
  if type(params) ~= "table" then
    error("bad argument #1 to 'decay' (table expected, got " .. type(params) .. ")", 2)
  end
  local model = MODEL[params.model or "two_component"]
  if not model then
    error("bad argument #1 to 'decay' (unknown model '" .. tostring(params.model) ..
          "'; expected half_life, time_constant, power or two_component)", 2)
  end
  local p = decay_params_t()
  C.engram_decay_params_default(model, p)
  for _, k in ipairs({ "half_life", "tau", "beta", "unit", "k", "floor" }) do
    if params[k] ~= nil then
      p[k] = params[k]
    end
  end
  return status(C.engram_decay_apply(arena, p, ptr(strength, 2, f, "float *"), ptr(age, 3, f, "float *"),
                                     opt_ptr(access, 5, f, "uint32_t *"), count(n, 4, f)))
end

return M
