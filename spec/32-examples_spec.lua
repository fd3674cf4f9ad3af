-- The examples are programs people copy: each one runs against the sandbox and does its job.
local env = require "helpers.env"

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/") or "."

describe("examples #examples", function()
  local sb, client, dir

  setup(function()
    sb = env.sandbox()
    client = env.client(sb)
    local p = io.popen("mktemp -d")
    dir = p:read("*l")
    p:close()
  end)

  teardown(function()
    client:close()
    sb:stop()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  before_each(function() sb:reset() end)

  -- Runs an example with the interpreter under test; -> output, exit code
  local function run(args)
    local lua = os.getenv("SMM_CLI_LUA") or "lua5.4"
    local cmd = ("cd '%s' && SMM_API_URL='%s' SMM_API_KEY='%s' %s %s 2>&1; echo \"\nexit:$?\"")
      :format(ROOT, sb.url, env.KEY, lua, args)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    local code
    out = out:gsub("\nexit:(%d+)\n$", function(c) code = tonumber(c) return "" end)
    assert.is_nil(out:find(env.KEY, 1, true), "the key was printed")
    return out, code
  end

  it("quickstart: an order followed to the end, a refill and a cancel", function()
    local out, code = run("examples/quickstart.lua")
    assert.equal(0, code, out)
    assert.truthy(out:find("is Completed", 1, true), out)
    assert.truthy(out:find("canceled", 1, true), out)
    assert.equal(2, sb:stats().orders)
  end)

  it("bulk_order: every row of a CSV placed once", function()
    local csv = dir .. "/orders.csv"
    local f = assert(io.open(csv, "w"))
    f:write("service,link,quantity\n1,https://x.test/a,100\n3,https://x.test/b,200\n5,https://x.test/c,1000\n")
    f:close()
    local out, code = run("examples/bulk_order.lua '" .. csv .. "'")
    assert.equal(0, code, out)
    assert.equal(3, sb:stats().orders)
  end)

  it("cheapest_service: the cheapest in a category, priced exactly", function()
    local out, code = run("examples/cheapest_service.lua 'Instagram Likes' 1000")
    assert.equal(0, code, out)
    assert.truthy(out:find("0.35", 1, true), out) -- service 3: 0.35 per 1000
    assert.equal(0, sb:stats().orders)
  end)

  it("refill_partials: refills the partial orders whose service offers refills", function()
    local partial = client:add{ service = 1, link = "https://x.test/partial", quantity = 1000 }.order
    local done = client:add{ service = 1, link = "https://x.test/full", quantity = 1000 }.order
    sb:advance(10)
    local out, code = run("examples/refill_partials.lua " .. partial .. " " .. done)
    assert.equal(0, code, out)
    assert.equal(1, #sb:admin("refills"))
  end)

  it("cron_poller: follows orders across runs and forgets the final ones", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local state = dir .. "/state.txt"
    local out, code = run("examples/cron_poller.lua '" .. state .. "' --add " .. a)
    assert.equal(0, code, out)
    for _ = 1, 5 do
      out, code = run("examples/cron_poller.lua '" .. state .. "'")
      assert.equal(0, code, out)
    end
    local f = io.open(state)
    local left = f and f:read("*a") or ""
    if f then f:close() end
    assert.is_nil(left:find(tostring(a), 1, true), "a final order is still followed: " .. left)
  end)
end)
