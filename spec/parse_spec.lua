-- The grammars of engram.parse: durations, sizes, --param overrides and JSON Lines episodes,
-- every form and every message exactly.
local parse = require("engram.parse")
local ffi = require("ffi")

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local function fixture(name) return here .. "fixtures/" .. name end

-- One episode line with the given embedding text and extra fields.
local function line(id, emb, extra)
  return ('{"id":%d,"content":"c%d","embedding":%s,"created_at":1%s}'):format(id, id, emb, extra or "")
end

local function err_of(text, opts)
  local r, err = parse.episodes(text, opts)
  assert.is_nil(r)
  return err
end

describe("engram.parse", function()
  describe("duration", function()
    it("reads every unit, sums, decimals and plain seconds", function()
      assert.are.equal(90, parse.duration("90s"))
      assert.are.equal(900, parse.duration("15m"))
      assert.are.equal(36 * 3600, parse.duration("36h"))
      assert.are.equal(7 * 86400, parse.duration("7d"))
      assert.are.equal(14 * 86400, parse.duration("2w"))
      assert.are.equal(5400, parse.duration("1h30m"))
      assert.are.equal(5400, parse.duration("1.5h"))
      assert.are.equal(604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5, parse.duration("1w2d3h4m5s"))
      assert.are.equal(42, parse.duration("42"))
      assert.are.equal(0.25, parse.duration("0.25"))
      assert.are.equal(0, parse.duration("0s"))
    end)

    it("names the text, the column and the accepted forms on a bad value", function()
      local forms = "(expected a number with s, m, h, d or w, like 90s, 36h, 7d)"
      local cases = {
        { "36x", 3 }, { "", 1 }, { "-5s", 1 }, { "1h30", 5 }, { "1.h", 2 }, { " 5s", 1 },
        { "5 s", 2 }, { "5S", 2 }, { "h", 1 }, { "1e3s", 2 }, { "1h30mx", 6 }, { ".5h", 1 },
      }
      for _, c in ipairs(cases) do
        local v, err = parse.duration(c[1])
        assert.is_nil(v)
        assert.are.equal(("duration: bad value '%s' at column %d %s"):format(c[1], c[2], forms), err)
      end
    end)

    it("wants units from largest to smallest, each once", function()
      local order = "(expected units from largest to smallest, each at most once: w, d, h, m, s)"
      assert.are.same({ nil, "duration: bad value '30m1h' at column 4 " .. order }, { parse.duration("30m1h") })
      assert.are.same({ nil, "duration: bad value '1h1h' at column 3 " .. order }, { parse.duration("1h1h") })
    end)

    it("rejects values too large for a number", function()
      local big = "1" .. ("0"):rep(400)
      assert.are.same({ nil, "duration: '" .. big .. "w' is too large" }, { parse.duration(big .. "w") })
      assert.are.same({ nil, "duration: '" .. big .. "' is too large" }, { parse.duration(big) })
    end)

    it("raises on a non-string argument", function()
      assert.has_error(function() parse.duration(5) end, "bad argument #1 to 'duration' (string expected, got number)")
    end)
  end)

  describe("size", function()
    it("reads the forms of engram_parse_size", function()
      assert.are.equal(0, parse.size("0"))
      assert.are.equal(4096, parse.size("4096"))
      assert.are.equal(4096, parse.size("4096B"))
      assert.are.equal(65536, parse.size("64K"))
      assert.are.equal(65536, parse.size("64KiB"))
      assert.are.equal(8388608, parse.size("8M"))
      assert.are.equal(8388608, parse.size("8MiB"))
      assert.are.equal(2 ^ 30, parse.size("1G"))
      assert.are.equal(3 * 2 ^ 30, parse.size("3GiB"))
      assert.are.equal(2 ^ 53 - 1, parse.size("9007199254740991"))
    end)

    it("names the column of the first character it cannot take", function()
      local forms = "(expected bytes, or a number with B, K, KiB, M, MiB, G or GiB, like 4096, 64KiB, 8MiB)"
      local cases = {
        { "8X", 2 }, { "8Mi", 3 }, { "8MiBx", 5 }, { "", 1 }, { "-1", 1 }, { "8 MiB", 2 },
        { "1.5M", 2 }, { "8kib", 2 }, { "8KB", 3 }, { "MiB", 1 }, { "8T", 2 },
      }
      for _, c in ipairs(cases) do
        local v, err = parse.size(c[1])
        assert.is_nil(v)
        assert.are.equal(("size: bad value '%s' at column %d %s"):format(c[1], c[2], forms), err)
      end
    end)

    it("rejects sizes of 2^53 bytes and more, where numbers stop being exact", function()
      assert.are.equal(2 ^ 53 - 2 ^ 30, parse.size("8388607G"))
      assert.are.same({ nil, "size: '8388608G' is too large (expected less than 2^53 bytes)" }, { parse.size("8388608G") })
      assert.are.same({ nil, "size: '9007199254740993' is too large (expected less than 2^53 bytes)" },
        { parse.size("9007199254740993") })
      assert.are.same({ nil, "size: '99999999999999999999999GiB' is too large (expected less than 2^53 bytes)" },
        { parse.size("99999999999999999999999GiB") })
    end)
  end)

  describe("params", function()
    local schema = {
      batch = "integer", link_threshold = "number", max_age = "duration", cache = "size",
      verbose = "boolean", label = "string",
    }

    it("types every value by the schema", function()
      local p = assert(parse.params({
        "batch=50", "link_threshold=0.35", "max_age=7d", "cache=8MiB", "verbose=on", "label=a=b c",
      }, schema))
      assert.are.same({ batch = 50, link_threshold = 0.35, max_age = 604800, cache = 8388608, verbose = true,
        label = "a=b c" }, p)
    end)

    it("reads numbers, integers and booleans in their accepted forms", function()
      local function one(t, v) return assert(parse.params({ "x=" .. v }, { x = t })).x end
      assert.are.equal(-3, one("integer", "-3"))
      assert.are.equal(7, one("integer", "+7"))
      assert.are.equal(1e-3, one("number", "1e-3"))
      assert.are.equal(0.5, one("number", ".5"))
      assert.are.equal(2, one("number", "2."))
      assert.are.equal(-2.5e10, one("number", "-2.5E+10"))
      for _, s in ipairs({ "true", "on", "yes", "1" }) do assert.is_true(one("boolean", s)) end
      for _, s in ipairs({ "false", "off", "no", "0" }) do assert.is_false(one("boolean", s)) end
      assert.are.equal("", one("string", ""))
    end)

    it("lets a later override of the same key win", function()
      assert.are.same({ batch = 20 }, parse.params({ "batch=10", "batch=20" }, schema))
    end)

    it("names the key, the value and the expected type of a bad value", function()
      local cases = {
        { "batch=1.5", "param: bad value '1.5' for batch (expected an integer)" },
        { "batch=", "param: bad value '' for batch (expected an integer)" },
        { "batch=99999999999999999999", "param: bad value '99999999999999999999' for batch (expected an integer)" },
        { "link_threshold=abc", "param: bad value 'abc' for link_threshold (expected a number)" },
        { "link_threshold=1e999", "param: bad value '1e999' for link_threshold (expected a number)" },
        { "link_threshold=0x10", "param: bad value '0x10' for link_threshold (expected a number)" },
        { "max_age=36x", "param: bad value '36x' for max_age (expected a duration like 90s, 36h, 7d)" },
        { "cache=8X", "param: bad value '8X' for cache (expected a size like 4096, 64KiB, 8MiB)" },
        { "verbose=maybe", "param: bad value 'maybe' for verbose (expected a boolean: true, false, on, off, yes, no, 1 or 0)" },
      }
      for _, c in ipairs(cases) do
        assert.are.same({ nil, c[2] }, { parse.params({ c[1] }, schema) })
      end
    end)

    it("lists the known keys, sorted, for an unknown key", function()
      assert.are.same({ nil, "param: unknown key 'bach' (known keys: batch, cache, label, link_threshold, max_age, verbose)" },
        { parse.params({ "batch=1", "bach=2" }, schema) })
      assert.are.same({ nil, "param: unknown key 'x' (known keys: none)" }, { parse.params({ "x=1" }, {}) })
    end)

    it("points at the column where key=value goes wrong", function()
      local forms = "(expected key=value, the key made of letters, digits and _, not starting with a digit)"
      for _, c in ipairs({ { "1x=3", 1 }, { "batch", 6 }, { "bat ch=1", 4 }, { "=1", 1 }, { "a-b=1", 2 } }) do
        assert.are.same({ nil, ("param: bad argument '%s' at column %d %s"):format(c[1], c[2], forms) },
          { parse.params({ c[1] }, schema) })
      end
    end)

    it("parses one override with or without a schema", function()
      assert.are.same({ "_k9", "v=1" }, { parse.param("_k9=v=1") })
      assert.are.same({ "max_age", 5400 }, { parse.param("max_age=1h30m", schema) })
      assert.are.same({ nil, "param: unknown key 'x' (known keys: batch, cache, label, link_threshold, max_age, verbose)" },
        { parse.param("x=1", schema) })
    end)

    it("raises on a schema with a type it does not know", function()
      assert.has_error(function() parse.params({}, { x = "float" }) end,
        "parse.params: bad type 'float' for 'x' in the schema (expected number, integer, duration, size, boolean or string)")
      assert.has_error(function() parse.params("a=1", {}) end, "bad argument #1 to 'params' (table expected, got string)")
      assert.has_error(function() parse.params({ "a=1", 2 }, { a = "string" }) end,
        "bad argument #1 to 'params' (element 2 is a number, expected a string)")
    end)
  end)

  describe("episodes", function()
    it("reads every field in every accepted form", function()
      local eps = assert(parse.episodes_file(fixture("episodes_good.jsonl")))
      assert.are.equal(3, #eps)
      assert.are.same({ id = 1, content = "first light", embedding = { 0.5, -0.25, 1e-3, 0 }, created_at = 1790000000,
        last_access = 1790000000, access_count = 0, strength = 1, line = 1 }, eps[1])
      assert.are.same({ id = 2, content = "caf\195\169 \240\159\154\128 \"quoted\"", embedding = { 1, 2, 3, 4 },
        created_at = 1793534400, last_access = 1793577600.5, access_count = 3, strength = 0.75, line = 3 }, eps[2])
      assert.are.same({ id = 3, content = "", embedding = { -150, 0, 2, 3 }, created_at = 0, last_access = 0,
        access_count = 0, strength = 1, line = 4 }, eps[3])
    end)

    it("decodes every JSON escape, surrogate pairs to one UTF-8 character", function()
      local text = line(1, "[1]", [[,"strength":1]]):gsub('"c1"',
        [["q\"b\\s\/\b\f\n\r\t\u0041\u00e9\u20AC\uD834\uDD1E\u0000z"]])
      local eps = assert(parse.episodes(text))
      assert.are.equal('q"b\\s/\b\f\n\r\tA\195\169\226\130\172\240\157\132\158\0z', eps[1].content)
    end)

    it("keeps raw UTF-8 text as it is", function()
      local eps = assert(parse.episodes('{"id":1,"content":"Grüße 日本 🚀","embedding":[1],"created_at":1}'))
      assert.are.equal("Grüße 日本 🚀", eps[1].content)
    end)

    it("reads CR LF files, blank lines and a last line without a newline", function()
      local eps = assert(parse.episodes_file(fixture("episodes_crlf.jsonl")))
      assert.are.equal(2, #eps)
      assert.are.same({ 11, { 3, 4 }, 3 }, { eps[2].id, eps[2].embedding, eps[2].line })
      eps = assert(parse.episodes(" \t\n" .. line(1, "[1]") .. "\r\n\r\n   \n\t" .. line(2, "[ 2 ]") .. " \r\n\n"))
      assert.are.same({ 2, 2, 5 }, { #eps, eps[1].line, eps[2].line })
      eps = assert(parse.episodes("\239\187\191" .. line(1, "[1]")))
      assert.are.equal(1, #eps)
    end)

    it("returns no episodes and no error for an empty file", function()
      assert.are.same({}, parse.episodes_file(fixture("episodes_empty.jsonl")))
      assert.are.same({}, parse.episodes("\n\r\n  \n"))
      assert.are.same({}, parse.episodes(""))
    end)

    it("reads numbers exactly as tonumber does, in every JSON form", function()
      math.randomseed(20261101)
      local texts, want = {}, {}
      local fixed = { "0", "-0", "1", "-1", "0.1", "123456789012345678901234567890", "1e22", "1e23", "1e-22",
        "1E-23", "9007199254740991", "9007199254740993", "0.30000000000000004", "-2.5e+3", "4.9e-324",
        "3.4028234e38", "0.000001", "1.5e-45", "2.2250738585072014e-308" }
      for i, t in ipairs(fixed) do texts[i] = t end
      for i = #fixed + 1, 3000 do
        local digits = math.random(1, 20)
        local mant = tostring(math.random(0, 9)) .. ("%d"):rep(digits - 1):gsub("%%d", function() return math.random(0, 9) end)
        local cut = math.random(1, #mant)
        local t = mant:sub(1, cut):gsub("^0+(%d)", "%1") .. (math.random() < 0.7 and "." .. mant:sub(cut + 1) .. "1" or "")
        if math.random() < 0.3 then t = t .. "e" .. math.random(-30, 15) end   -- within float32 range
        if math.random() < 0.5 then t = "-" .. t end
        texts[i] = t
      end
      for i, t in ipairs(texts) do want[i] = tonumber(t) end
      local eps = assert(parse.episodes(line(1, "[" .. table.concat(texts, " , ") .. "]")))
      assert.are.equal(#texts, #eps[1].embedding)
      for i = 1, #texts do
        local got = eps[1].embedding[i]
        if got ~= want[i] or 1 / got ~= 1 / want[i] then
          error(("number %d '%s' read as %.17g, tonumber gives %.17g (seed 20261101)"):format(i, texts[i], got, want[i]))
        end
      end
    end)

    it("checks the embedding length against opts.dim or the first episode", function()
      assert.are.equal("input:1:36: embedding has 2 numbers (expected 3)", err_of(line(1, "[1,2]"), { dim = 3 }))
      assert.are.equal("input:2:36: embedding has 1 number (expected 2, as on line 1)",
        err_of(line(1, "[1,2]") .. "\n" .. line(2, "[1]")))
      assert.are.equal("spec/x.jsonl:4:46: embedding has 3 numbers (expected 4, as on line 1)",
        err_of(io.open(fixture("episodes_dim.jsonl")):read("*a"), { name = "spec/x.jsonl" }))
    end)

    it("reports a duplicate id at the second one, naming the line of the first", function()
      local path = fixture("episodes_dup_id.jsonl")
      assert.are.same({ nil, path .. ":5:21: duplicate id 42 (first on line 2)" }, { parse.episodes_file(path) })
    end)

    it("reports syntax errors on the first, a middle and the last line", function()
      assert.are.equal("input:1:1: unexpected '[' (expected '{' to start an episode)", err_of("[1]\n" .. line(1, "[1]")))
      local path = fixture("episodes_syntax.jsonl")
      assert.are.same({ nil, path .. ":3:23: unexpected '\"' (expected ',' or '}' after a value)" },
        { parse.episodes_file(path) })
      path = fixture("episodes_crlf_bad.jsonl")
      assert.are.same({ nil, path .. ":2:56: unexpected end of line (expected ',' or '}' after a value)" },
        { parse.episodes_file(path) })
    end)

    it("names what it found and what it expected for every syntax error", function()
      local cases = {
        { '{"id":1 "x"}', "1:9: unexpected '\"' (expected ',' or '}' after a value)" },
        { "{", "1:2: unexpected end of line (expected a field name in double quotes or '}')" },
        { "{\n}", "1:2: unexpected end of line (expected a field name in double quotes or '}')" },
        { "{id:1}", "1:2: unexpected 'i' (expected a field name in double quotes or '}')" },
        { '{"id":1,}', "1:9: unexpected '}' (expected a field name in double quotes)" },
        { '{"id" 1}', "1:7: unexpected '1' (expected ':' after a field name)" },
        { '{"id":}', "1:7: unexpected '}' (expected a value: a string, number, array, object, true, false or null)" },
        { '{"id":tru}', "1:7: unexpected 't' (expected a value: a string, number, array, object, true, false or null)" },
        { '{"id":01}', "1:8: unexpected '1' (expected ',' or '}' after a value)" },
        { '{"id":-}', "1:8: unexpected '}' (expected a digit)" },
        { '{"id":1.}', "1:9: unexpected '}' (expected a digit after '.')" },
        { '{"id":1e+}', "1:10: unexpected '}' (expected a digit in the exponent)" },
        { '{"id":+1}', "1:7: unexpected '+' (expected a value: a string, number, array, object, true, false or null)" },
        { '{"a":[1,2,]}', "1:11: unexpected ']' (expected a value: a string, number, array, object, true, false or null)" },
        { '{"a":[1 2]}', "1:9: unexpected '2' (expected ',' or ']' after a value)" },
        { '{"a":[,]}', "1:7: unexpected ',' (expected a value or ']')" },
        { '{"a":1} {"b":2}', "1:9: unexpected '{' (expected the end of the line after '}')" },
        { '{"a":1}\rx', "1:9: unexpected 'x' (expected the end of the line after '}')" },
        { '{"a":1}\1', "1:8: unexpected control character U+0001 (expected the end of the line after '}')" },
        { '{"a":"x\ty"}', "1:8: unexpected control character U+0009 (expected control characters in a string escaped, like \\t or \\u0001)" },
        { '{"a":"xy', "1:9: unexpected end of line (expected '\"' to close the string)" },
        { '{"a":"xy\r\n', "1:9: unexpected end of line (expected '\"' to close the string)" },
        { '{"a":"x\\qy"}', "1:9: unexpected 'q' (expected one of \" \\ / b f n r t u after '\\')" },
        { '{"a":"x\\', "1:9: unexpected end of line (expected one of \" \\ / b f n r t u after '\\')" },
        { '{"a":"\\u12G4"}', "1:11: unexpected 'G' (expected 4 hex digits after \\u)" },
        { '{"a":"\\ud83d"}', "1:13: unexpected '\"' (expected a low surrogate \\uDC00 to \\uDFFF after a high surrogate)" },
        { '{"a":"\\ud83d\\u0041"}', "1:13: unexpected '\\' (expected a low surrogate \\uDC00 to \\uDFFF after a high surrogate)" },
        { '{"a":"x\\uDC00"}', "1:8: unexpected low surrogate \\uDC00 (expected a high surrogate \\uD800 to \\uDBFF before it)" },
        { '{"a":"é\255"}', "1:8: unexpected byte 0xFF (expected UTF-8 text in a string)" },
        { '{"a":"\192\128"}', "1:7: unexpected byte 0xC0 (expected UTF-8 text in a string)" },
        { '{"a":"\237\160\128"}', "1:7: unexpected byte 0xED (expected UTF-8 text in a string)" },
        { '{"é":1,"ü" 2}', "1:12: unexpected '2' (expected ':' after a field name)" },
        { '{"a":1,ß}', "1:8: unexpected 'ß' (expected a field name in double quotes)" },
      }
      for _, c in ipairs(cases) do
        assert.are.equal("input:" .. c[2], err_of(c[1]))
      end
    end)

    it("counts columns in characters, not bytes", function()
      assert.are.equal("input:1:30: embedding has 1 number (expected 2)",
        err_of('{"content":"日本語","embedding":[1],"id":1,"created_at":1}', { dim = 2 }))
    end)

    it("names the field, the rule and what it got for every schema error", function()
      local base = '{"id":7,"content":"c","embedding":[1],"created_at":1'
      local cases = {
        { '{"id":1.5}', "1:7: id must be an integer from 1 to 2^53 - 1 (got 1.5)" },
        { '{"id":0}', "1:7: id must be an integer from 1 to 2^53 - 1 (got 0)" },
        { '{"id":9007199254740992}', "1:7: id must be an integer from 1 to 2^53 - 1 (got 9007199254740992)" },
        { '{"id":"1"}', "1:7: id must be an integer from 1 to 2^53 - 1 (got a string)" },
        { '{"id":null}', "1:7: id must be an integer from 1 to 2^53 - 1 (got null)" },
        { '{"id":1,"id":2}', "1:9: duplicate field 'id' (first at column 2)" },
        { '{"id":1,"content":{"a":[1]}}', "1:19: content must be a string (got an object)" },
        { '{"id":1,"content":["a"]}', "1:19: content must be a string (got an array)" },
        { '{"id":1,"content":true}', "1:19: content must be a string (got true)" },
        { '{"id":1,"embedding":"1,2"}', "1:21: embedding must be an array of numbers (got a string)" },
        { '{"id":1,"embedding":{"x":1}}', "1:21: embedding must be an array of numbers (got an object)" },
        { '{"id":1,"embedding":[]}', "1:21: embedding is empty (expected at least one number)" },
        { '{"id":1,"embedding":[1, 2, "3"]}', "1:28: embedding element 3 is a string (expected a number)" },
        { '{"id":1,"embedding":[1, [2]]}', "1:25: embedding element 2 is an array (expected a number)" },
        { '{"id":1,"embedding":[1, null]}', "1:25: embedding element 2 is null (expected a number)" },
        { '{"id":1,"embedding":[1, -3.5e38]}', "1:25: embedding element 2 does not fit a float32 (got -3.5e38)" },
        { '{"id":1,"embedding":[1e999]}', "1:22: embedding element 1 does not fit a float32 (got 1e999)" },
        { '{"id":1,"created_at":-1}', "1:22: created_at must be seconds since 1970 or a UTC time like \"2026-11-01T12:00:00Z\" (got -1)" },
        { '{"id":1,"created_at":1e999}', "1:22: created_at must be seconds since 1970 or a UTC time like \"2026-11-01T12:00:00Z\" (got 1e999)" },
        { '{"id":1,"created_at":false}', "1:22: created_at must be seconds since 1970 or a UTC time like \"2026-11-01T12:00:00Z\" (got false)" },
        { '{"id":1,"created_at":"2026-11-01 12:00:00"}', "1:22: created_at \"2026-11-01 12:00:00\" is not a UTC time (expected seconds since 1970 or a UTC time like \"2026-11-01T12:00:00Z\")" },
        { '{"id":1,"created_at":"2026-11-01T12:00:00+01:00"}', "1:22: created_at \"2026-11-01T12:00:00+01:00\" is not a UTC time (expected seconds since 1970 or a UTC time like \"2026-11-01T12:00:00Z\")" },
        { '{"id":1,"created_at":"2026-13-01T12:00:00Z"}', "1:22: created_at \"2026-13-01T12:00:00Z\" is not a valid time (month 13)" },
        { '{"id":1,"created_at":"2026-02-29T12:00:00Z"}', "1:22: created_at \"2026-02-29T12:00:00Z\" is not a valid time (day 29 of a 28-day month)" },
        { '{"id":1,"created_at":"2026-04-00T12:00:00Z"}', "1:22: created_at \"2026-04-00T12:00:00Z\" is not a valid time (day 00 of a 30-day month)" },
        { '{"id":1,"created_at":"2026-11-01T24:00:00Z"}', "1:22: created_at \"2026-11-01T24:00:00Z\" is not a valid time (hour 24)" },
        { '{"id":1,"created_at":"2026-11-01T12:60:00Z"}', "1:22: created_at \"2026-11-01T12:60:00Z\" is not a valid time (minute 60)" },
        { '{"id":1,"created_at":"2026-11-01T12:00:60Z"}', "1:22: created_at \"2026-11-01T12:00:60Z\" is not a valid time (second 60)" },
        { '{"id":1,"created_at":"1969-12-31T23:59:59Z"}', "1:22: created_at \"1969-12-31T23:59:59Z\" is not a valid time (before 1970)" },
        { '{"id":1,"last_access":[1]}', "1:23: last_access must be seconds since 1970 or a UTC time like \"2026-11-01T12:00:00Z\" (got an array)" },
        { '{"id":1,"access_count":-1}', "1:24: access_count must be a non-negative integer (got -1)" },
        { '{"id":1,"access_count":2.5}', "1:24: access_count must be a non-negative integer (got 2.5)" },
        { '{"id":1,"strength":1.5}', "1:20: strength must be a number from 0 to 1 (got 1.5)" },
        { '{"id":1,"strength":"1"}', "1:20: strength must be a number from 0 to 1 (got a string)" },
        { '{"id":1,"Content":"x"}', "1:9: unknown field 'Content' (expected id, content, embedding, created_at, last_access, access_count or strength)" },
        { base .. ',"last_access":0}', "1:68: last_access is before created_at (expected a time at or after created_at)" },
        { '{"id":1,"content":"x"}', "1:22: missing fields 'embedding' and 'created_at' (an episode needs id, content, embedding and created_at)" },
        { '{ }', "1:3: missing fields 'id', 'content', 'embedding' and 'created_at' (an episode needs id, content, embedding and created_at)" },
        { base:gsub('"content":"c",', "") .. "}", "1:39: missing field 'content' (an episode needs id, content, embedding and created_at)" },
      }
      for _, c in ipairs(cases) do
        assert.are.equal("input:" .. c[2], err_of(c[1]))
      end
    end)

    it("reads times: fractions, leap days, null for an optional field", function()
      local eps = assert(parse.episodes(
        '{"id":1,"content":"","embedding":[1],"created_at":"2028-02-29T23:59:59.25Z","last_access":null,'
        .. '"access_count":null,"strength":0}\n'
        .. '{"id":2,"content":"","embedding":[1],"created_at":"1970-01-01T00:00:00Z","last_access":1.5,"access_count":1e2}'))
      assert.are.same({ 1835481599.25, 1835481599.25, 0, 0 },
        { eps[1].created_at, eps[1].last_access, eps[1].access_count, eps[1].strength })
      assert.are.same({ 0, 1.5, 100, 1 }, { eps[2].created_at, eps[2].last_access, eps[2].access_count, eps[2].strength })
    end)

    it("skips unknown fields of any shape with opts.ignore_unknown", function()
      local eps = assert(parse.episodes(line(1, "[1]", [[,"meta":{"tags":["a",{"b":null}],"n":-1e-5},"x":true]]),
        { ignore_unknown = true }))
      assert.are.same({ 1, "c1" }, { eps[1].id, eps[1].content })
      assert.are.equal("input:1:64: unexpected '}' (expected ',' or ']' after a value)",
        err_of(line(1, "[1]", [[,"meta":[1]]), { ignore_unknown = true }))
    end)

    it("returns nothing at all when any line is bad", function()
      local text = line(1, "[1]") .. "\n" .. line(2, "[2]") .. "\n" .. line(3, '["3"]')
      local r, err = parse.episodes(text)
      assert.is_nil(r)
      assert.are.equal("input:3:37: embedding element 1 is a string (expected a number)", err)
    end)

    it("writes embeddings into a caller's float buffer, row by row", function()
      local buf = ffi.new("float[?]", 8)
      local eps = assert(parse.episodes(line(5, "[0.5, -1]") .. "\n" .. line(6, "[1e-3, 3.0e1]"),
        { floats = buf, capacity = 8, dim = 2 }))
      assert.are.same({ 0, 1 }, { eps[1].row, eps[2].row })
      assert.is_nil(eps[1].embedding)
      assert.are.same({ 0.5, -1, ffi.new("float", 1e-3), 30 }, { buf[0], buf[1], buf[2], buf[3] })
      assert.are.equal("input:3:36: no room for this embedding (the buffer holds 5 floats: 2 embeddings of 2)",
        err_of(line(1, "[1,2]") .. "\n" .. line(2, "[1,2]") .. "\n" .. line(3, "[1,2]"), { floats = buf, capacity = 5 }))
      assert.has_error(function() parse.episodes("", { floats = buf }) end,
        "parse.episodes: opts.floats needs opts.capacity, the number of floats it holds")
    end)

    it("hands each episode to opts.on_episode and returns the count", function()
      local seen = {}
      local n = parse.episodes(line(1, "[1]") .. "\n\n" .. line(2, "[2]"), {
        on_episode = function(ep, lineno) seen[#seen + 1] = { ep.id, lineno, ep.embedding[1] } end,
      })
      assert.are.equal(2, n)
      assert.are.same({ { 1, 1, 1 }, { 2, 3, 2 } }, seen)
    end)

    it("stops when opts.on_episode returns nil, err", function()
      local calls = 0
      local r, err = parse.episodes(line(1, "[1]") .. "\n" .. line(2, "[2]") .. "\n" .. line(3, "[3]"), {
        name = "in.jsonl",
        on_episode = function(ep)
          calls = calls + 1
          if ep.id == 2 then return nil, "id 2 is already in the store" end
        end,
      })
      assert.are.same({ nil, "in.jsonl:2: id 2 is already in the store", 2 }, { r, err, calls })
      assert.are.same({ nil, "input:1: stopped by on_episode" },
        { parse.episodes(line(1, "[1]"), { on_episode = function() return false end }) })
    end)

    it("says why a file cannot be read", function()
      assert.are.same({ nil, "episodes: cannot open /nonexistent/e.jsonl: No such file or directory" },
        { parse.episodes_file("/nonexistent/e.jsonl") })
    end)

    it("parses a large generated file of 768-d embeddings", function()
      local dim, count = 768, 5000
      local rows = {}
      for r = 1, 16 do
        local nums = {}
        for k = 1, dim do nums[k] = ("%.7g"):format(math.sin(r * 1000 + k)) end
        rows[r] = table.concat(nums, ",")
      end
      local lines = {}
      for i = 1, count do
        lines[i] = ('{"id":%d,"content":"episode %d","embedding":[%s],"created_at":%d,"access_count":%d}')
          :format(i, i, rows[i % 16 + 1], 1790000000 + i, i % 7)
      end
      local text = table.concat(lines, "\n")
      assert.is_true(#text > 25e6)
      local eps = assert(parse.episodes(text, { dim = dim }))
      assert.are.equal(count, #eps)
      for _, i in ipairs({ 1, 2500, count }) do
        local ep, want = eps[i], tonumber(("%.7g"):format(math.sin((i % 16 + 1) * 1000 + 1)))
        assert.are.same({ i, "episode " .. i, 1790000000 + i, i % 7, dim, want },
          { ep.id, ep.content, ep.created_at, ep.access_count, #ep.embedding, ep.embedding[1] })
        assert.are.equal(tonumber(("%.7g"):format(math.sin((i % 16 + 1) * 1000 + dim))), ep.embedding[dim])
      end
      local buf = ffi.new("float[?]", dim * count)
      local n = assert(parse.episodes(text, { dim = dim, floats = buf, capacity = dim * count, on_episode = function() end }))
      assert.are.equal(count, n)
      assert.are.equal(ffi.new("float", eps[count].embedding[dim]), buf[dim * count - 1])
    end)
  end)
end)
