-- The transport contract (docs/transport.md) run against the transport smm.new would pick here:
-- libcurl (smm.core) under busted, the cosockets when spec/21-suite_in_nginx_spec.lua runs this
-- file inside an nginx worker. Both must send the same form bytes for every value
-- (helpers/conformance.lua's FORMS, through the echo server) and hand back results of the same
-- shape. Under busted the C core's bytes are also compared, on thousands of numbers, with
-- smm.transport.form: the encoder the ngx transport (and any transport written in Lua) uses.
local conformance = require "helpers.conformance"
local echo = require "helpers.echo"
local transport = require "smm.transport"
local form = require "smm.transport.form"

local name = transport.default_name()

conformance.run(name, function(opts) return transport.open({ public = opts }) end,
  { describe = describe, it = it, setup = setup, teardown = teardown, assert = assert })

describe("one form encoding (" .. _VERSION .. ")", function()
  it("smm.transport.form writes every body of the conformance table", function()
    for _, case in ipairs(conformance.FORMS) do
      assert.equal(case[3], form.encode(case[2]), case[1])
    end
  end)

  it("smm.transport.form refuses what the conformance table refuses, naming the field", function()
    for _, case in ipairs(conformance.REFUSED) do
      local ok, err = pcall(form.encode, case[2])
      assert.is_false(ok, case[1])
      assert.matches(case[3], err)
      ok, err = pcall(form.encode, case[2], 3)
      assert.is_false(ok, case[1])
      assert.matches("(item 3)", err, 1, true)
    end
  end)

  if name ~= "curl" then return end

  -- Doubles of every magnitude (subnormals to 2^1023), money-like decimals and thirds,
  -- deterministic on every Lua (a Park-Miller generator: every step exact in a double).
  local function numbers(count)
    local state = 20261201
    local function nxt(n)
      state = (state * 16807) % 2147483647
      return state % n
    end
    local list = {}
    for i = 1, count do
      local kind = nxt(4)
      local x
      if kind == 0 then
        x = (nxt(2 ^ 26) * 2 ^ 26 + nxt(2 ^ 26)) * 2.0 ^ (nxt(2098) - 1126)
      elseif kind == 1 then
        x = nxt(10 ^ 7) / 10 ^ nxt(12)
      elseif kind == 2 then
        x = nxt(10 ^ 6) / (nxt(999) + 1)
      else
        x = nxt(2 ^ 30) * 2.0 ^ (nxt(80) - 40)
      end
      if nxt(2) == 1 then x = -x end
      if x ~= x or x == math.huge or x == -math.huge then x = i end
      list[i] = x
    end
    return list
  end

  it("the C core and smm.transport.form write the same bytes for 4000 numbers", function()
    local srv = echo.start()
    local t = transport.open({ public = {} })
    local ok, err = pcall(function()
      local xs = numbers(4000)
      for chunk = 0, 7 do
        local fields = {}
        for i = 1, 500 do fields["n" .. i] = xs[chunk * 500 + i] end
        local r = t:request(srv.url, fields, { idempotent = true })
        assert.is_nil(r.failure, r.message)
        local want = form.encode(fields)
        if r.body ~= want then
          for pair in want:gmatch("[^&]+") do
            assert.truthy(r.body:find(pair, 1, true), "the C core did not send " .. pair)
          end
        end
        assert.equal(want, r.body)
        assert.is_nil(r.body:find("e", 1, true), "an exponent was sent")
      end
    end)
    t:close()
    srv:stop()
    assert(ok, err)
  end)
end)
