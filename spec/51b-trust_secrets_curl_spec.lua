-- Trust (issue 10), keys and credentials, where only libcurl and the CLI reach: libcurl quotes a
-- proxy URL it cannot parse, password and all; `smm config` and the order book show the panel
-- URL; the CLI's exit codes read err.kind, which a very short key must not mangle.
-- (Both transports: spec/51-trust_secrets_spec.lua.)
local env = require "helpers.env"
local cli = require "helpers.cli"
local smm = require "smm"

local find_any = env.find_any

describe("trust: proxy credentials over libcurl", function()
  it("libcurl's 'Unsupported proxy syntax' message and the client table hold no password", function()
    local url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2"
    for _, case in ipairs{
      { "http://user:PXSECRET@prox y:1", "http://prox y:1" },
      { "http://user:PXSECRET@proxy:99999", "http://proxy:99999" },
      { "http://user:PX@SECRET@proxy:99999", "http://proxy:99999" },
      { "socks5://PXSECRET@[::1:1", "socks5://[::1:1" },
    } do
      local c = smm.new{ url = url, key = "KEYSECRET", proxy = case[1], retries = 0 }
      assert.equal(case[2], c.options.proxy)
      assert.is_nil(find_any(c, { "PXSECRET", "SECRET@", "KEYSECRET" }), case[1])
      local res, err = c:balance()
      c:close()
      assert.is_nil(res)
      assert.equal("network", err.kind)
      local hit = find_any(err, { "PXSECRET", "SECRET@", "user:" })
      assert.is_nil(hit, case[1] .. ": " .. tostring(hit) .. " in " .. tostring(err))
    end
  end)
end)

describe("trust: the CLI", function()
  local dir, running

  before_each(function()
    dir = cli.tmpdir()
    running = {}
  end)

  after_each(function()
    for _, sb in ipairs(running) do sb:stop() end
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  local function sandbox(opts)
    local sb = env.sandbox(opts)
    running[#running + 1] = sb
    return sb
  end

  local function smm_cli(words, vars)
    local e = { XDG_CONFIG_HOME = dir .. "/xdg" }
    for k, v in pairs(vars or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir })
  end

  it("smm config shows https://user:p@ss@host/... as https://host/..., and no proxy password", function()
    local r = smm_cli("config --url 'https://user:p@ss@panel.example/api/v2?key=QSECRET'")
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("https://panel.example/api/v2", 1, true), r.out)
    for _, s in ipairs{ "p@ss", "ss@", "user:", "QSECRET" } do
      assert.is_nil(r.out:find(s, 1, true), s .. " in " .. r.out)
    end
    r = smm_cli("config --json --url 'https://user:p@ss@panel.example/api/v2'")
    assert.equal("https://panel.example/api/v2", cli.json(r.out).url)
    -- a proxy with a password in a profile
    cli.write_file(dir .. "/config", "[profile p]\nurl = https://panel.example/api/v2\nkey = KEYSECRET\n" ..
      "proxy = http://user:PXSECRET@proxy.example:3128\n")
    os.execute("chmod 600 " .. cli.quote(dir .. "/config"))
    for _, words in ipairs{ "config", "config --json" } do
      r = smm_cli(words .. " --config " .. cli.quote(dir .. "/config") .. " --profile p")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("proxy.example:3128", 1, true), r.out)
      assert.is_nil(r.out:find("PXSECRET", 1, true), r.out)
      assert.is_nil(r.out:find("KEYSECRET", 1, true), r.out)
    end
  end)

  it("the CLI's errors hold no URL or proxy password", function()
    cli.write_file(dir .. "/config", "[profile p]\nurl = http://user:PWSECRET@127.0.0.1:" .. env.closed_port() ..
      "/api/v2?key=QSECRET\nkey = KEYSECRET\nproxy = http://user:PXSECRET@prox y:1\nretries = 0\n")
    os.execute("chmod 600 " .. cli.quote(dir .. "/config"))
    local r = smm_cli("balance --config " .. cli.quote(dir .. "/config") .. " --profile p")
    assert.equal(2, r.code, r.err)
    for _, s in ipairs{ "PWSECRET", "QSECRET", "KEYSECRET", "PXSECRET" } do
      assert.is_nil((r.out .. r.err):find(s, 1, true), s .. " in " .. r.err)
    end
  end)

  it("the order book names the panel without user:password@ or ?key=", function()
    local sb = sandbox()
    local url = sb.url:gsub("^http://", "http://user:PWSECRET@") .. "?key=QSECRET"
    cli.write_file(dir .. "/orders.csv", "service,link,quantity\r\n1,https://x.example/j1,100\r\n")
    local r = smm_cli("batch orders.csv --yes", { SMM_API_URL = url, SMM_API_KEY = env.KEY })
    assert.equal(0, r.code, r.err)
    -- the default book of the run (helpers.cli: XDG_DATA_HOME is XDG_CONFIG_HOME/data)
    local path = dir .. "/xdg/data/smm/orders.db"
    local book = assert(smm.book.open("sqlite:" .. path))
    local orders = book:orders{}
    local history = orders[1] and book:history(orders[1].ref)
    local db = require("smm.book").connections[book].db
    local events = db:rows("SELECT panel, data FROM events")
    book:close()
    assert.equal(1, #orders)
    assert.equal(sb.url, orders[1].panel)
    assert.is_true(#history >= 1)
    assert.is_true(#events >= 1)
    for _, e in ipairs(events) do assert.equal(sb.url, e.panel) end
    -- every byte of the database (its rows, history and events, free pages too) and every word
    -- the run printed
    local bytes = assert(cli.read_file(path)) .. (cli.read_file(path .. "-wal") or "")
    assert.truthy(bytes:find(sb.url, 1, true))
    for _, s in ipairs{ "PWSECRET", "QSECRET", "user:", env.KEY } do
      assert.is_nil(bytes:find(s, 1, true), s .. " in the book")
      assert.is_nil(find_any({ orders, history, events }, { s }), s .. " in the book's rows")
      assert.is_nil((r.out .. r.err):find(s, 1, true), s .. " in " .. r.out .. r.err)
    end
  end)

  it("exit codes with a 1-character key: an api error is 1, a network error 2", function()
    local sb = sandbox{ key = "another-key" }
    -- "a": the kind "api" must not become "***pi" (read as a network failure, exit 2)
    local r = smm_cli("status 1", { SMM_API_URL = sb.url, SMM_API_KEY = "a" })
    assert.equal(1, r.code, r.err)
    r = smm_cli("balance", { SMM_API_URL = sb.url, SMM_API_KEY = "a" })
    assert.equal(1, r.code, r.err)
    -- "e": "network" must stay network (exit 2), the add unsent and so retried
    r = smm_cli("balance", { SMM_API_URL = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2",
                             SMM_API_KEY = "e" })
    assert.equal(2, r.code, r.err)
    -- "i": an invalid order is refused before sending, exit 1 ("invalid" must not be mangled)
    r = smm_cli("add --service 1 --link https://x.example/i --quantity lots",
      { SMM_API_URL = sb.url, SMM_API_KEY = "i" })
    assert.equal(1, r.code, r.err)
  end)
end)
