-- engram.parse: the grammars for the text engram reads — durations, sizes, --param overrides
-- and JSON Lines import files of episodes. Pure Lua + lpeg; no FFI needed except for the
-- optional float buffer of parse.episodes.
--
--   local parse = require("engram.parse")
--   parse.duration("1h30m")                --> 5400            (or nil, err)
--   parse.size("8MiB")                     --> 8388608         (or nil, err)
--   parse.params({ "batch=50", "max_age=7d" }, { batch = "integer", max_age = "duration" })
--   local eps, err = parse.episodes_file("episodes.jsonl", { dim = 768 })
--
-- Lifetimes. Every function returns fresh Lua values owned by the caller; nothing is cached
-- between calls (all patterns are compiled once, at load). With opts.floats, parse.episodes
-- writes embeddings into the caller's buffer and keeps no reference to it after returning.
--
-- Errors. Bad input is never raised: every function returns nil, err. Messages say what was
-- wrong, where and what was expected:
--   duration: bad value '36x' at column 3 (expected a number with s, m, h, d or w, like 90s, 36h, 7d)
--   episodes.jsonl:3:17: unexpected 'x' (expected ',' or '}' after a value)
-- Columns count characters (UTF-8 code points) from 1; a column one past the last character
-- of a line means "at the end of the line". Within one line of an import file, syntax errors
-- are found before schema errors (the line is parsed whole, then checked field by field).
-- Misuse (a non-string where text is expected, a bad schema) raises error(msg, 2).
local lpeg = require("lpeg")

local M = {}

local P, R, S, C, Cc, Cp, Ct, Cs, Cmt = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cc, lpeg.Cp, lpeg.Ct,
  lpeg.Cs, lpeg.Cmt
local match = lpeg.match
local byte, char, sub, format, concat = string.byte, string.char, string.sub, string.format, table.concat
local floor, huge = math.floor, math.huge
local tonumber, type, error, pcall, setmetatable, getmetatable = tonumber, type, error, pcall,
  setmetatable, getmetatable

-- Integers above 2^53 are not exact in a Lua number; ids, counts and sizes stop there.
local MAX_EXACT = 2 ^ 53
local FLT_MAX = 3.4028234663852886e38

local digit = R("09")
local digits = digit ^ 1
local EOF = -P(1)

-- ---- durations -----------------------------------------------------------------------------

local DURATION_FORMS = "expected a number with s, m, h, d or w, like 90s, 36h, 7d"
local UNIT_SECONDS = { w = 604800, d = 86400, h = 3600, m = 60, s = 1 }
local UNIT_RANK = { w = 1, d = 2, h = 3, m = 4, s = 5 }

local dur_number = digits * (P(".") * digits) ^ -1
local dur_plain = C(dur_number) * EOF
-- Greedy run of number+unit parts; the position where it stops is where the text goes wrong.
local dur_parts = Ct((Cp() * C(dur_number) * C(S("wdhms"))) ^ 0) * Cp()
local dur_number_end = dur_number * Cp()

local function check_text(fname, text)
  if type(text) ~= "string" then
    error(format("bad argument #1 to '%s' (string expected, got %s)", fname, type(text)), 3)
  end
end

-- Seconds in text: "90s", "15m", "36h", "7d", "2w", sums like "1h30m" (units from largest to
-- smallest, each at most once), decimals ("1.5h"), or a plain number of seconds. No sign, no
-- spaces. Returns seconds (a number) or nil, err.
function M.duration(text)
  check_text("duration", text)
  local v = match(dur_plain, text)
  if v then
    v = tonumber(v)
    if v == huge then
      return nil, format("duration: '%s' is too large", text)
    end
    return v
  end
  local parts, stop = match(dur_parts, text)
  if stop <= #text or #parts == 0 then
    local col = match(dur_number_end, text, stop) or stop
    return nil, format("duration: bad value '%s' at column %d (%s)", text, col, DURATION_FORMS)
  end
  local total, rank = 0, 0
  for k = 1, #parts, 3 do
    local pos, num, unit = parts[k], parts[k + 1], parts[k + 2]
    if UNIT_RANK[unit] <= rank then
      return nil, format("duration: bad value '%s' at column %d (expected units from largest to smallest, "
        .. "each at most once: w, d, h, m, s)", text, pos)
    end
    rank = UNIT_RANK[unit]
    total = total + tonumber(num) * UNIT_SECONDS[unit]
  end
  if total == huge then
    return nil, format("duration: '%s' is too large", text)
  end
  return total
end

-- ---- sizes -----------------------------------------------------------------------------------

-- The same forms as engram_parse_size in runtime/config.c; the limit is below 2^53 bytes
-- (where a Lua number stops being exact) instead of SIZE_MAX. Below 2^53 the digits convert
-- exactly and the unit is a power of two, so the check cannot be fooled by rounding.
local SIZE_FORMS = "expected bytes, or a number with B, K, KiB, M, MiB, G or GiB, like 4096, 64KiB, 8MiB"
local SIZE_SHIFT = { [""] = 0, B = 0, K = 10, KiB = 10, M = 20, MiB = 20, G = 30, GiB = 30 }

local size_unit = P("KiB") + P("MiB") + P("GiB") + S("BKMG")
local size_full = C(digits) * C(size_unit ^ -1) * EOF
local size_stop = (digits * (size_unit + P(true))) ^ -1 * Cp()

-- Bytes in text: digits, optionally followed by B, K/KiB, M/MiB or G/GiB (powers of 1024).
-- Returns bytes (an exact integer) or nil, err.
function M.size(text)
  check_text("size", text)
  local num, unit = match(size_full, text)
  if not num then
    return nil, format("size: bad value '%s' at column %d (%s)", text, match(size_stop, text), SIZE_FORMS)
  end
  local v = tonumber(num) * 2 ^ SIZE_SHIFT[unit]
  if v >= MAX_EXACT then
    return nil, format("size: '%s' is too large (expected less than 2^53 bytes)", text)
  end
  return v
end

-- ---- --param key=value ----------------------------------------------------------------------

local key_start = R("az", "AZ") + P("_")
local key_rest = R("az", "AZ", "09") + P("_")
local param_pattern = C(key_start * key_rest ^ 0) * P("=") * C(P(1) ^ 0)
local param_stop = (key_start * key_rest ^ 0) ^ -1 * Cp()
local param_number = C(S("+-") ^ -1 * (digits * (P(".") * digit ^ 0) ^ -1 + P(".") * digits)
  * (S("eE") * S("+-") ^ -1 * digits) ^ -1) * EOF
local param_integer = C(S("+-") ^ -1 * digits) * EOF
local BOOLEANS = { ["true"] = true, on = true, yes = true, ["1"] = true,
  ["false"] = false, off = false, no = false, ["0"] = false }

-- Each type: a converter returning the value or nil, and what the message says was expected.
local PARAM_TYPES = {
  number = { function(v)
    local n = match(param_number, v)
    n = n and tonumber(n)
    return n and n > -huge and n < huge and n or nil
  end, "a number" },
  integer = { function(v)
    local n = match(param_integer, v)
    n = n and tonumber(n)
    return n and n >= -MAX_EXACT and n <= MAX_EXACT and n or nil
  end, "an integer" },
  duration = { function(v) return (M.duration(v)) end, "a duration like 90s, 36h, 7d" },
  size = { function(v) return (M.size(v)) end, "a size like 4096, 64KiB, 8MiB" },
  boolean = { function(v) return BOOLEANS[v] end, "a boolean: true, false, on, off, yes, no, 1 or 0" },
  string = { function(v) return v end, "a string" },
}

local function check_schema(schema, level)
  if schema == nil then
    return
  end
  if type(schema) ~= "table" then
    error("parse.params: schema must be a table of key = type", level + 1)
  end
  for k, t in pairs(schema) do
    if not PARAM_TYPES[t] then
      error(format("parse.params: bad type '%s' for '%s' in the schema (expected number, integer, "
        .. "duration, size, boolean or string)", tostring(t), tostring(k)), level + 1)
    end
  end
end

local function known_keys(schema)
  local keys = {}
  for k in pairs(schema) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return #keys > 0 and concat(keys, ", ") or "none"
end

local function param(text, schema)
  local key, raw = match(param_pattern, text)
  if not key then
    return nil, format("param: bad argument '%s' at column %d (expected key=value, the key made of "
      .. "letters, digits and _, not starting with a digit)", text, match(param_stop, text))
  end
  if not schema then
    return key, raw
  end
  local t = schema[key]
  if not t then
    return nil, format("param: unknown key '%s' (known keys: %s)", key, known_keys(schema))
  end
  local conv = PARAM_TYPES[t]
  local v = conv[1](raw)
  if v == nil then
    return nil, format("param: bad value '%s' for %s (expected %s)", raw, key, conv[2])
  end
  return key, v
end

-- One "key=value" override. With a schema (key -> "number" | "integer" | "duration" | "size" |
-- "boolean" | "string"), the value is converted; without one it stays a string.
-- Returns key, value or nil, err.
function M.param(text, schema)
  check_text("param", text)
  check_schema(schema, 2)
  return param(text, schema)
end

-- A list of "key=value" strings (repeated --param options) typed by schema; a key given twice
-- takes its last value, as later options override earlier ones. Returns a table key -> value,
-- or nil, err for the first bad entry.
function M.params(list, schema)
  if type(list) ~= "table" then
    error(format("bad argument #1 to 'params' (table expected, got %s)", type(list)), 2)
  end
  if type(schema) ~= "table" then
    error(format("bad argument #2 to 'params' (table expected, got %s)", type(schema)), 2)
  end
  check_schema(schema, 2)
  local out = {}
  for i = 1, #list do
    if type(list[i]) ~= "string" then
      error(format("bad argument #1 to 'params' (element %d is a %s, expected a string)", i, type(list[i])), 2)
    end
    local k, v = param(list[i], schema)
    if k == nil then
      return nil, v
    end
    out[k] = v
  end
  return out
end

-- ---- JSON Lines of episodes -------------------------------------------------------------------
--
-- The line grammar is strict LL(1) JSON: once a token has started, a failure cannot be fixed
-- by another alternative, so each `expect` raises at the exact position (an error table caught
-- by parse.episodes). Raising costs nothing on valid input: the raising branch is only tried
-- after the expected pattern has failed.

local FAIL = {}        -- metatable marking the error tables raised during a parse
local NULL = setmetatable({}, { __tostring = function() return "null" end })
local ARRAY = {}       -- metatable of generic arrays: { pos1, value1, pos2, value2, ... }
local OBJECT = {}      -- metatable of nested objects (only ever rejected or ignored)

local function throw(pos, what, expected)
  error(setmetatable({ pos = pos, what = what, expected = expected }, FAIL), 0)
end

-- A pattern that raises "unexpected <what is at the position> (expected ...)".
local function fail(expected)
  return Cmt(P(true), function(_, pos) throw(pos, nil, expected) end)
end

local function expect(p, expected)
  return p + fail(expected)
end

local ws = S(" \t\r") ^ 0
local eol = P("\r") ^ -1 * (P("\n") + EOF)
local hex = R("09", "af", "AF")

-- UTF-8 as RFC 3629 has it: no overlong forms, no surrogates, nothing above U+10FFFF.
local cont = R("\128\191")
local utf8_multi = R("\194\223") * cont
  + P("\224") * R("\160\191") * cont + R("\225\236", "\238\239") * cont * cont
  + P("\237") * R("\128\159") * cont
  + P("\240") * R("\144\191") * cont * cont + R("\241\243") * cont * cont * cont
  + P("\244") * R("\128\143") * cont * cont
local utf8_char = R("\0\127") + utf8_multi

local function utf8_encode(cp)
  if cp < 0x80 then
    return char(cp)
  elseif cp < 0x800 then
    return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- Escapes. A \u escape names a UTF-16 unit: a high surrogate must be followed by a low one
-- (together one code point above U+FFFF); a lone surrogate is an error, not a replacement char.
local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
local hex4_msg = "4 hex digits after \\u"
local hex4 = expect(hex, hex4_msg) * expect(hex, hex4_msg) * expect(hex, hex4_msg) * expect(hex, hex4_msg)
local high = S("dD") * R("89", "ab", "AB") * hex * hex
local low = S("dD") * R("cf", "CF") * hex * hex
local esc_simple = C(S('"\\/bfnrt')) / ESCAPES
local esc_pair = C(high) * expect(P("\\u") * C(low), "a low surrogate \\uDC00 to \\uDFFF after a high surrogate")
  / function(h, l)
    return utf8_encode(0x10000 + (tonumber(h, 16) - 0xD800) * 0x400 + (tonumber(l, 16) - 0xDC00))
  end
local esc_lone_low = Cmt(Cp() * C(low), function(_, _, pos, l)
  throw(pos - 2, format("unexpected low surrogate \\u%s", l), "a high surrogate \\uD800 to \\uDBFF before it")
end)
local esc_code = C(hex4) / function(h) return utf8_encode(tonumber(h, 16)) end
local esc_u = P("u") / "" * (esc_pair + esc_lone_low + esc_code)
local escape = P("\\") / "" * expect(esc_simple + esc_u, "one of \" \\ / b f n r t u after '\\'")

local str_plain = (R("\32\33", "\35\91", "\93\127") + utf8_multi) ^ 1
local str_close = P('"')
  + #eol * fail("'\"' to close the string")
  + #R("\0\31") * fail("control characters in a string escaped, like \\t or \\u0001")
  + fail("UTF-8 text in a string")
local str = P('"') * Cs((str_plain + escape) ^ 0) * str_close

-- Numbers: JSON's form exactly (no leading zeros, no '+', no bare '.').
local num_text = P("-") ^ -1 * (P("0") + R("19") * digit ^ 0) * (P(".") * digits) ^ -1
  * (S("eE") * S("+-") ^ -1 * digits) ^ -1
local num_checked = P("-") ^ -1 * expect(P("0") + R("19") * digit ^ 0, "a digit")
  * (P(".") * expect(digits, "a digit after '.'")) ^ -1
  * (S("eE") * S("+-") ^ -1 * expect(digits, "a digit in the exponent")) ^ -1
local number = C(#S("-0123456789") * num_checked) / tonumber

-- The fast path for embeddings: an array of numbers only. lpeg just validates it (captures
-- would make one Lua string per number, the dominant cost); the numbers are then read by
-- read_numbers, a loop the JIT compiles. Anything else falls back to the generic array, which
-- reports errors precisely; the fast path itself never raises.
local NUMBERS = setmetatable({}, { __tostring = function() return "numbers" end })
local num_array = P("[") * ws * num_text * (ws * P(",") * ws * num_text) ^ 0 * ws * P("]") * Cc(NUMBERS)
-- Positions of the numbers of an array, for messages about one element.
local num_positions = P("[") * ws * Ct(Cp() * num_text * (ws * P(",") * ws * Cp() * num_text) ^ 0)

-- Exact powers of ten: 10^22 is the largest a double holds exactly.
local POW10 = {}
for i = 0, 22 do
  POW10[i] = tonumber("1e" .. i)
end

-- Reads the numbers of the validated number array whose '[' is at pos into out[1..n];
-- returns n. A decimal with a mantissa below 2^53 and a power of ten within 10^±22 is one
-- IEEE multiply or divide of two exact values, so it is correctly rounded (Clinger's fast
-- path); anything else goes through tonumber. Either way the result equals tonumber(text).
local function read_numbers(text, pos, out)
  local i, n = pos + 1, 0
  local c = byte(text, i)
  while true do
    while c == 32 or c == 9 or c == 13 do
      i = i + 1
      c = byte(text, i)
    end
    local start, neg = i, false
    if c == 45 then
      neg = true
      i = i + 1
      c = byte(text, i)
    end
    local m, e = 0, 0
    while c >= 48 and c <= 57 do
      m = m * 10 + (c - 48)
      i = i + 1
      c = byte(text, i)
    end
    if c == 46 then
      i = i + 1
      c = byte(text, i)
      while c >= 48 and c <= 57 do
        m = m * 10 + (c - 48)
        e = e - 1
        i = i + 1
        c = byte(text, i)
      end
    end
    local x
    if c == 101 or c == 69 then
      repeat
        i = i + 1
        c = byte(text, i)
      until c ~= 43 and c ~= 45 and (c < 48 or c > 57)
      x = tonumber(sub(text, start, i - 1))
    elseif m < MAX_EXACT and e >= -22 then
      -- m below 2^53 was accumulated exactly: rounding only ever pushes it up past 2^53.
      x = e < 0 and m / POW10[-e] or m
      if neg then
        x = -x
      end
    else
      x = tonumber(sub(text, start, i - 1))
    end
    n = n + 1
    out[n] = x
    while c == 32 or c == 9 or c == 13 do
      i = i + 1
      c = byte(text, i)
    end
    if c ~= 44 then
      return n
    end
    i = i + 1
    c = byte(text, i)
  end
end

local VALUE = "a value: a string, number, array, object, true, false or null"
local json = P({
  "object",
  value = str + number + num_array + lpeg.V("array") + lpeg.V("nested")
    + P("true") * Cc(true) + P("false") * Cc(false) + P("null") * Cc(NULL),
  member = Cp() * str * ws * expect(P(":"), "':' after a field name") * ws * Cp() * expect(lpeg.V("value"), VALUE),
  members = Ct(#P("}")
    + expect(lpeg.V("member"), "a field name in double quotes or '}'") * ws
      * (P(",") * ws * expect(lpeg.V("member"), "a field name in double quotes") * ws) ^ 0),
  object = P("{") * ws * lpeg.V("members") * Cp() * expect(P("}"), "',' or '}' after a value"),
  nested = lpeg.V("object") / function(t) return setmetatable(t, OBJECT) end,
  array = P("[") * ws * Ct(#P("]")
    + expect(Cp() * lpeg.V("value"), "a value or ']'") * ws
      * (P(",") * ws * expect(Cp() * lpeg.V("value"), VALUE) * ws) ^ 0)
    * expect(P("]"), "',' or ']' after a value") / function(t) return setmetatable(t, ARRAY) end,
})

-- One line: blank (false) or an object; then the position where the next line starts.
local line_pattern = ws * (#eol * Cc(false) + expect(json, "'{' to start an episode") * ws
  * expect(#eol, "the end of the line after '}'")) * P("\r") ^ -1 * P("\n") ^ -1 * Cp()

local line_end = (1 - S("\r\n")) ^ 0 * Cp()
local utf8_one = C(utf8_char)

-- How the thing at pos looks in a message.
local function found(text, pos)
  if match(eol, text, pos) then
    return "end of line"
  end
  local c = match(utf8_one, text, pos)
  if not c then
    return format("byte 0x%02X", byte(text, pos))
  end
  local b = byte(c)
  if b < 32 or b == 127 then
    return format("control character U+%04X", b)
  end
  return "'" .. c .. "'"
end

local function column(text, line_start, pos)
  local _, n = sub(text, line_start, pos - 1):gsub("[^\128-\191]", "")
  return n + 1
end

-- ---- the episode schema ----

local FIELD_LIST = "id, content, embedding, created_at, last_access, access_count or strength"
local REQUIRED = { "id", "content", "embedding", "created_at" }
local TIME_FORMS = 'seconds since 1970 or a UTC time like "2026-11-01T12:00:00Z"'

local function what_is(v)
  local t = type(v)
  if t == "string" then
    return "a string"
  elseif t == "boolean" then
    return tostring(v)
  elseif v == NULL then
    return "null"
  elseif getmetatable(v) == OBJECT then
    return "an object"
  elseif t == "table" then
    return "an array"
  end
end

-- "got ..." for a message: a number as written in the file, other values by their kind.
local num_source = C(num_text)
local function got(ctx, v, pos)
  if type(v) == "number" then
    return match(num_source, ctx.text, pos)
  end
  return what_is(v)
end

local iso = C(digit * digit * digit * digit) * P("-") * C(digit * digit) * P("-") * C(digit * digit)
  * P("T") * C(digit * digit) * P(":") * C(digit * digit) * P(":") * C(digit * digit * (P(".") * digits) ^ -1)
  * P("Z") * EOF
local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (no time zone involved).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Seconds since 1970 from a number or an ISO-8601 UTC string; raises at pos otherwise.
local function timestamp(ctx, name, v, pos)
  if type(v) == "number" then
    if v < 0 or v == huge then
      throw(pos, format("%s must be %s (got %s)", name, TIME_FORMS, got(ctx, v, pos)))
    end
    return v
  end
  if type(v) ~= "string" then
    throw(pos, format("%s must be %s (got %s)", name, TIME_FORMS, what_is(v)))
  end
  local y, mo, d, h, mi, s = match(iso, v)
  local shown = #v > 40 and sub(v, 1, 37) .. "..." or v
  if not y then
    throw(pos, format('%s "%s" is not a UTC time (expected %s)', name, shown, TIME_FORMS))
  end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  local mdays = mo >= 1 and mo <= 12 and (mo == 2 and leap and 29 or MONTH_DAYS[mo])
  local why = y < 1970 and "before 1970"
    or not mdays and format("month %02d", mo)
    or (d < 1 or d > mdays) and format("day %02d of a %d-day month", d, mdays)
    or h > 23 and format("hour %02d", h)
    or mi > 59 and format("minute %02d", mi)
    or s >= 60 and format("second %02d", floor(s))
  if why then
    throw(pos, format('%s "%s" is not a valid time (%s)', name, shown, why))
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

local function is_integer(v)
  return type(v) == "number" and v == floor(v) and v >= -MAX_EXACT and v <= MAX_EXACT
end

-- The embedding: NUMBERS (the fast path) or a generic value. Checks the dimension and the
-- float32 range; stores a Lua array in ep.embedding, or writes the row into ctx.floats and
-- sets ep.row.
local function embedding(ctx, ep, v, pos)
  if v ~= NUMBERS then
    if getmetatable(v) == ARRAY then
      if #v == 0 then
        throw(pos, ctx.dim and format("embedding is empty (expected %d numbers)", ctx.dim)
          or "embedding is empty (expected at least one number)")
      end
      for k = 2, #v, 2 do
        if type(v[k]) ~= "number" then
          throw(v[k - 1], format("embedding element %d is %s (expected a number)", k / 2, what_is(v[k])))
        end
      end
    end
    throw(pos, format("embedding must be an array of numbers (got %s)", got(ctx, v, pos)))
  end
  local floats = ctx.floats
  local out = floats and ctx.scratch or {}
  local n = read_numbers(ctx.text, pos, out)
  if not ctx.dim then
    ctx.dim, ctx.dim_line = n, ctx.line
  elseif n ~= ctx.dim then
    throw(pos, format("embedding has %d number%s (expected %d%s)", n, n == 1 and "" or "s", ctx.dim,
      ctx.dim_line and format(", as on line %d", ctx.dim_line) or ""))
  end
  for i = 1, n do
    local x = out[i]
    if x > FLT_MAX or x < -FLT_MAX then
      local at = match(num_positions, ctx.text, pos)[i]
      throw(at, format("embedding element %d does not fit a float32 (got %s)", i, match(num_source, ctx.text, at)))
    end
  end
  if floats then
    local row = ctx.count
    if (row + 1) * n > ctx.capacity then
      throw(pos, format("no room for this embedding (the buffer holds %d floats: %d embeddings of %d)",
        ctx.capacity, floor(ctx.capacity / n), n))
    end
    local base = row * n - 1
    for i = 1, n do
      floats[base + i] = out[i]
    end
    ep.row = row
  else
    ep.embedding = out
  end
end

-- Field handlers: (ctx, ep, value, value position). Optional fields treat null as absent.
local FIELDS = {
  id = function(ctx, ep, v, pos)
    if not is_integer(v) or v < 1 or v >= MAX_EXACT then
      throw(pos, format("id must be an integer from 1 to 2^53 - 1 (got %s)", got(ctx, v, pos)))
    end
    local first = ctx.ids[v]
    if first then
      throw(pos, format("duplicate id %d (first on line %d)", v, first))
    end
    ctx.ids[v] = ctx.line
    ep.id = v
  end,
  content = function(ctx, ep, v, pos)
    if type(v) ~= "string" then
      throw(pos, format("content must be a string (got %s)", got(ctx, v, pos)))
    end
    ep.content = v
  end,
  embedding = embedding,
  created_at = function(ctx, ep, v, pos)
    ep.created_at = timestamp(ctx, "created_at", v, pos)
  end,
  last_access = function(ctx, ep, v, pos)
    if v ~= NULL then
      ep.last_access = timestamp(ctx, "last_access", v, pos)
      ctx.last_access_pos = pos
    end
  end,
  access_count = function(ctx, ep, v, pos)
    if v ~= NULL then
      if not is_integer(v) or v < 0 then
        throw(pos, format("access_count must be a non-negative integer (got %s)", got(ctx, v, pos)))
      end
      ep.access_count = v
    end
  end,
  strength = function(ctx, ep, v, pos)
    if v ~= NULL then
      if type(v) ~= "number" or v < 0 or v > 1 then
        throw(pos, format("strength must be a number from 0 to 1 (got %s)", got(ctx, v, pos)))
      end
      ep.strength = v
    end
  end,
}

local function quoted_list(names)
  for i = 1, #names do
    names[i] = "'" .. names[i] .. "'"
  end
  if #names == 1 then
    return names[1]
  end
  return concat(names, ", ", 1, #names - 1) .. " and " .. names[#names]
end

-- Turns one object's members into an episode table, or raises at the offending position.
local function episode(ctx, members, close_pos)
  local ep = { line = ctx.line }
  local seen = {}
  ctx.last_access_pos = nil
  for k = 1, #members, 4 do
    local kpos, key, vpos, v = members[k], members[k + 1], members[k + 2], members[k + 3]
    if seen[key] then
      throw(kpos, format("duplicate field '%s' (first at column %d)", key, column(ctx.text, ctx.line_start, seen[key])))
    end
    seen[key] = kpos
    local handler = FIELDS[key]
    if handler then
      handler(ctx, ep, v, vpos)
    elseif not ctx.ignore_unknown then
      throw(kpos, format("unknown field '%s' (expected %s)", key, FIELD_LIST))
    end
  end
  local missing = {}
  for i = 1, #REQUIRED do
    if not seen[REQUIRED[i]] then
      missing[#missing + 1] = REQUIRED[i]
    end
  end
  if #missing > 0 then
    throw(close_pos, format("missing field%s %s (an episode needs id, content, embedding and created_at)",
      #missing > 1 and "s" or "", quoted_list(missing)))
  end
  if ep.last_access then
    if ep.last_access < ep.created_at then
      throw(ctx.last_access_pos, "last_access is before created_at", "a time at or after created_at")
    end
  else
    ep.last_access = ep.created_at
  end
  ep.access_count = ep.access_count or 0
  ep.strength = ep.strength or 1
  ctx.count = ctx.count + 1
  return ep
end

local function run(ctx)
  local text, pos, n = ctx.text, 1, #ctx.text
  if sub(text, 1, 3) == "\239\187\191" then
    pos = 4                                   -- a UTF-8 byte order mark, as some editors write
  end
  local out, on_episode = ctx.out, ctx.on_episode
  while pos <= n do
    ctx.line, ctx.line_start = ctx.line + 1, pos
    local members, close_pos, next_pos = match(line_pattern, text, pos)
    if members then
      local ep = episode(ctx, members, close_pos)
      if on_episode then
        local ok, err = on_episode(ep, ctx.line)
        if ok == false or (ok == nil and err ~= nil) then
          ctx.stopped = tostring(err or "stopped by on_episode")
          return
        end
      else
        out[#out + 1] = ep
      end
    else
      next_pos = close_pos
    end
    pos = next_pos
  end
end

-- Episodes from JSON Lines text: one object per line; blank lines, CR LF line ends, a missing
-- final newline and a leading UTF-8 byte order mark are fine. Fields:
--   id            integer, 1 .. 2^53-1, unique within the text; any       (required)
--                 JSON number with an integral value (1e2 is 100)
--   content       string                                                  (required)
--   embedding     array of numbers, each within float32 range; all of      (required)
--                 length opts.dim, or of the first episode's length
--   created_at    seconds since 1970 (a number >= 0) or a UTC time         (required)
--                 "YYYY-MM-DDTHH:MM:SS[.fff]Z"
--   last_access   a time as created_at, not before it; default created_at
--   access_count  non-negative integer; default 0
--   strength      number in [0, 1]; default 1
-- Optional fields may be null (= absent). Unknown fields are an error unless
-- opts.ignore_unknown is true; a field given twice is always an error.
--
-- opts: name (for messages; default "input"), dim, ignore_unknown,
--   floats + capacity: a float buffer (cdata convertible to float *, e.g. view:pointer()) of
--     capacity floats; episode k (0-based, in file order) gets its embedding written at
--     floats[k * dim ...] and ep.row = k instead of ep.embedding;
--   on_episode(ep, line): called for each episode as soon as it is parsed, instead of
--     collecting them; return nothing to go on, or nil/false, err to stop (the parse then
--     returns nil, "NAME:LINE: err").
-- Returns an array of episodes { id, content, embedding (Lua array, 1-based) or row,
-- created_at, last_access, access_count, strength, line } — or, with on_episode, the number of
-- episodes — or nil, "NAME:LINE:COLUMN: what (expected ...)".
-- All or nothing: on any error no episodes are returned. With on_episode, episodes before the
-- error have already been handed out; the caller must undo them (e.g. roll back its store
-- transaction). With floats, the buffer holds partial data after an error.
-- Errors raised by on_episode itself propagate unchanged.
function M.episodes(text, opts)
  check_text("episodes", text)
  opts = opts or {}
  local dim = opts.dim
  if dim ~= nil and (not is_integer(dim) or dim < 1) then
    error("parse.episodes: opts.dim must be a positive integer", 2)
  end
  local ctx = {
    text = text, name = opts.name or "input", dim = dim, ignore_unknown = opts.ignore_unknown,
    on_episode = opts.on_episode, out = {}, ids = {}, count = 0, line = 0, line_start = 1,
  }
  if opts.floats ~= nil then
    if not is_integer(opts.capacity) or opts.capacity < 0 then
      error("parse.episodes: opts.floats needs opts.capacity, the number of floats it holds", 2)
    end
    ctx.floats = require("ffi").cast("float *", opts.floats)
    ctx.capacity = opts.capacity
    ctx.scratch = {}
  end
  local ok, err = pcall(run, ctx)
  if not ok then
    if getmetatable(err) ~= FAIL then
      error(err, 0)
    end
    local what = err.what or "unexpected " .. found(text, err.pos)
    return nil, format("%s:%d:%d: %s%s", ctx.name, ctx.line, column(text, ctx.line_start, err.pos), what,
      err.expected and " (expected " .. err.expected .. ")" or "")
  end
  if ctx.stopped then
    return nil, format("%s:%d: %s", ctx.name, ctx.line, ctx.stopped)
  end
  if ctx.on_episode then
    return ctx.count
  end
  return ctx.out
end

-- parse.episodes on the contents of a file; messages name the file as given.
function M.episodes_file(path, opts)
  check_text("episodes_file", path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, format("episodes: cannot open %s", err)
  end
  local text = f:read("*a")
  f:close()
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.name = o.name or path
  return M.episodes(text, o)
end

return M
