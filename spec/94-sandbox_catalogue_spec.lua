-- The sandbox's catalogue options, checked with luasocket (an independent client): three
-- sandboxes selling different catalogues (--services FILE), and POST /sandbox/services changing
-- one between two fetches, as a panel's owner does; add charges by the edited rate and bounds.
local sandbox = require "helpers.sandbox"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local KEY = "sandbox-key"

local function api(sb, fields)
  fields.key = KEY
  local parts = {}
  for k, v in pairs(fields) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", c:byte())
    end)
  end
  local body, out = table.concat(parts, "&"), {}
  local _, code = http.request{ url = sb.url, method = "POST",
    headers = { ["content-type"] = "application/x-www-form-urlencoded", ["content-length"] = #body },
    source = ltn12.source.string(body), sink = ltn12.sink.table(out) }
  assert(code == 200, "HTTP " .. tostring(code))
  return cjson.decode(table.concat(out)), table.concat(out)
end

local function by_id(list)
  local t = {}
  for _, s in ipairs(list) do t[s.service] = s end
  return t
end

local A = {
  { service = 1, name = "Instagram Followers [Refill 30D]", type = "Default",
    category = "Instagram Followers", rate = "0.90", min = 50, max = 10000, refill = true,
    cancel = true, dripfeed = true },
  { service = 2, name = "Instagram Likes", type = "Default", category = "Instagram Likes",
    rate = "0.1234567", min = 10, max = 5000, refill = false, cancel = false },
}
local B = {
  { service = 17, name = "IG Followers - R30", type = "Default", category = "Instagram",
    rate = 0.85, min = 100, max = 20000, refill = true, cancel = false },
}
local C = {
  { service = 300, name = "Insta Followers (30 days refill) \240\159\148\165", type = "Default",
    category = "IG | Followers", rate = "1.05", min = 20, max = 50000, refill = true,
    cancel = true },
  { service = 301, name = "Instagram Starter Package", type = "Package", category = "Packages",
    rate = "12.50", min = 1, max = 1 },
}

describe("sandbox catalogue options", function()
  local a, b, c
  setup(function()
    a = sandbox.start{ services = A }
    b = sandbox.start{ services = B }
    c = sandbox.start{ services = C }
  end)
  teardown(function()
    for _, sb in ipairs{ a, b, c } do if sb then sb:stop() end end
  end)
  before_each(function()
    for _, sb in ipairs{ a, b, c } do sb:reset() end
  end)

  it("three sandboxes sell three different catalogues, exactly as given", function()
    local la, lb, lc = api(a, { action = "services" }), api(b, { action = "services" }),
      api(c, { action = "services" })
    assert.are.equal(2, #la)
    assert.are.equal(1, #lb)
    assert.are.equal(2, #lc)
    assert.are.equal("Instagram Followers [Refill 30D]", la[1].name)
    assert.are.equal("0.1234567", la[2].rate)
    assert.is_true(la[1].dripfeed)
    local _, text = api(b, { action = "services" })
    -- a JSON number in the file stays its exact text, never a float's rendering
    assert.truthy(text:find('"rate":"0.85"', 1, true))
    assert.are.equal(17, lb[1].service)
    assert.are.equal("Insta Followers (30 days refill) \240\159\148\165", lc[1].name)
    assert.are.equal("Package", lc[2].type)
    assert.is_false(lc[2].refill)
    -- the kind is inferred from the type: a package takes a link only
    local placed = api(c, { action = "add", service = 301, link = "https://x.test/p" })
    assert.is_number(placed.order)
    assert.are.equal("87.50", c:stats().balance)
  end)

  it("edits one service's rate, bounds, flags and name; add sees them", function()
    b:services{ service = 17, rate = "0.95", min = 200, max = 30000, refill = "false",
      cancel = "true", name = "IG Followers - R30 (new)" }
    local s = by_id(api(b, { action = "services" }))[17]
    assert.are.same({ "0.95", "200", "30000", false, true, "IG Followers - R30 (new)" },
      { s.rate, s.min, s.max, s.refill, s.cancel, s.name })
    assert.are.equal("Quantity less than minimal 200",
      api(b, { action = "add", service = 17, link = "https://x.test/a", quantity = 150 }).error)
    assert.is_number(api(b, { action = "add", service = 17, link = "https://x.test/a",
      quantity = 1000 }).order)
    assert.are.equal("99.05", b:stats().balance) -- 1000 x 0.95 / 1000
  end)

  it("adds and removes services; a reset goes back to the --services list", function()
    a:services{ service = 3, name = "TikTok Views", type = "Default", category = "TikTok",
      rate = "0.01", min = 100, max = 1000000 }
    a:services{ service = 2, remove = 1 }
    local l = by_id(api(a, { action = "services" }))
    assert.is_nil(l[2])
    assert.are.equal("TikTok Views", l[3].name)
    assert.are.equal("Incorrect service ID",
      api(a, { action = "add", service = 2, link = "https://x.test/a", quantity = 100 }).error)
    a:reset()
    l = by_id(api(a, { action = "services" }))
    assert.truthy(l[2])
    assert.is_nil(l[3])
    -- the other sandboxes never saw a's edits
    assert.are.equal(1, #api(b, { action = "services" }))
  end)

  it("replaces the whole list, or generates one, from the admin endpoint", function()
    a:services{ list = cjson.encode(B) }
    local l = api(a, { action = "services" })
    assert.are.equal(1, #l)
    assert.are.equal(17, l[1].service)
    assert.are.equal(4999, a:services{ count = 4999 }.count)
    assert.are.equal(4999, #api(a, { action = "services" }))
    a:services{ count = 0 }
    assert.are.equal(12, #api(a, { action = "services" })) -- the built-in catalogue
  end)

  it("refuses a bad change with the field and the value, changing nothing", function()
    local function refused(fields, pattern)
      local out = a:admin("services", fields)
      assert.is_false(out.ok)
      assert.matches(pattern, out.error)
    end
    refused({ service = 1, rate = "0,90" }, 'rate: a decimal >= 0, not "0,90"')
    refused({ service = 1, min = "-5" }, "min: a whole number")
    refused({ service = 1, refil = "1" }, 'unknown service field "refil"')
    refused({ service = 1, min = 20000 }, "min 20000 is above max 10000")
    refused({ service = 9, name = "New" }, "service 9: type missing")
    refused({ service = 9, remove = 1 }, "service 9: not in the list")
    refused({ list = "[{" }, "list: bad JSON")
    refused({ list = '[{"service":1,"name":"x","type":"Default","rate":"1","min":1,"max":2},'
      .. '{"service":1,"name":"y","type":"Default","rate":"1","min":1,"max":2}]' },
      "service 1 listed twice")
    local l = api(a, { action = "services" })
    assert.are.equal(2, #l)
    assert.are.equal("0.90", l[1].rate)
  end)

  it("refuses to start on a bad --services file, naming the entry", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write('[{"service": 1, "name": "x", "type": "Default", "rate": "abc", "min": 1, "max": 2}]')
    f:close()
    local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/") or "."
    local p = io.popen(string.format("LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' lua5.4 "
      .. "%s/bin/smm-sandbox --port 0 --services %s 2>&1; echo rc=$?", root, root, root, path))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    assert.matches('services%[1%]: rate: a decimal >= 0, not "abc"', out)
    assert.matches("rc=2", out)
  end)
end)
