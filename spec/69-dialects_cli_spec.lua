-- Issue 13, dialects from the command line: a profile's `dialect` reaches smm.new, so that
-- `smm` talks to a panel of any dialect; a misspelled one is refused naming it; the key, sent
-- as api_token or in a header, is never printed. (Several panels' [panel NAME] sections, each
-- with its dialect: the CLI's own specs.)
local env = require "helpers.env"
local cli = require "helpers.cli"

describe("smm (command line) with a profile's dialect", function()
  local sbs, dir = {}, nil

  setup(function()
    for _, d in ipairs{ "api_token", "bearer" } do sbs[d] = env.sandbox{ dialect = d, balance = "12.50" } end
    dir = cli.tmpdir()
  end)

  teardown(function()
    for _, sb in pairs(sbs) do sb:stop() end
    local leaked, where = cli.leaks(env.KEY)
    assert.is_false(leaked, "the key was printed: " .. tostring(where))
  end)

  local function smm(words, config)
    local path = dir .. "/config.ini"
    cli.write_file(path, config)
    os.execute("chmod 600 " .. cli.quote(path))
    return cli.run(words .. " --config " .. cli.quote(path),
      { env = { SMM_API_URL = false, SMM_API_KEY = false, HOME = dir, XDG_CONFIG_HOME = dir } })
  end

  local function profile(sb, dialect)
    return "[profile default]\nurl = " .. sb.url .. "\nkey = " .. env.KEY .. "\ndialect = " .. dialect .. "\n"
  end

  it("balance, add and status through an api_token and a bearer panel", function()
    for d, sb in pairs(sbs) do
      local r = smm("balance", profile(sb, d))
      assert.equal(0, r.code, r.err)
      assert.equal("12.50 USD\n", r.out)
      r = smm("add --service 1 --link https://x.test/cli --quantity 100 --yes --json", profile(sb, d))
      assert.equal(0, r.code, r.err)
      local placed = cli.json(r.out)
      assert.is_number(placed.order)
      r = smm("status " .. placed.order .. " --json", profile(sb, d))
      assert.equal(0, r.code, r.err)
      assert.equal(1, sb:stats().orders)
    end
  end)

  it("a profile without the panel's dialect is refused as a bad key; a misspelled one names it",
    function()
    local r = smm("balance", profile(sbs.bearer, "perfectpanel"))
    assert.equal(1, r.code)
    assert.truthy(r.err:find("Invalid API key", 1, true), r.err)
    r = smm("balance", profile(sbs.bearer, "bearr"))
    assert.equal(1, r.code)
    assert.truthy(r.err:find('"bearr"', 1, true), r.err)
  end)
end)
