-- The `smm` command line, driven as a user drives it (a child process, real HTTP against the
-- sandbox panel): every command, --json parsed back, exit codes, profiles, colours, and the
-- key never printed anywhere.
local env = require "helpers.env"
local cli = require "helpers.cli"

describe("smm (command line)", function()
  local sb, vars, dir

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, stdin = opts.stdin, cwd = opts.cwd })
  end

  local function adds() return env.count(sb, "add") end

  setup(function()
    sb = env.sandbox()
    dir = cli.tmpdir()
    vars = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, XDG_CONFIG_HOME = dir .. "/xdg",
             HOME = dir }
  end)

  teardown(function()
    sb:stop()
    local leaked, where = cli.leaks(env.KEY)
    assert.is_false(leaked, "the key was printed: " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  local books = 0
  before_each(function()
    sb:reset()
    -- a new sandbox, a new order book: the panel's order ids start again at 1
    books = books + 1
    vars.XDG_DATA_HOME = dir .. "/data" .. books
  end)

  describe("help and usage", function()
    it("help prints the commands and exit codes, exit 0", function()
      local r = smm("help")
      assert.equal(0, r.code)
      for _, word in ipairs{ "services", "balance", "quote", "add", "status", "wait", "refill",
                             "refill-status", "cancel", "batch", "sandbox", "exit codes" } do
        assert.truthy(r.out:find(word, 1, true), word)
      end
    end)

    it("no command, an unknown command or an unknown option: one line on stderr, exit 1", function()
      assert.equal(1, smm("").code)
      local r = smm("frobnicate")
      assert.equal(1, r.code)
      assert.equal("smm: unknown command 'frobnicate' (see smm help)\n", r.err)
      r = smm("balance --frob")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("^smm: unknown option '%-%-frob'"))
      r = smm("balance --search x")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("does not apply"))
    end)
  end)

  describe("services", function()
    it("prints an aligned table sorted by id", function()
      local r = smm("services")
      assert.equal(0, r.code)
      local lines = {}
      for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.truthy(lines[1]:find("^ID%s+NAME%s+CATEGORY%s+TYPE%s+RATE%s+MIN%s+MAX%s+REFILL%s+CANCEL$"))
      assert.truthy(lines[2]:find("^ 1  Instagram Followers"))
      local rate_col = lines[1]:find("RATE") + 3
      for i = 2, #lines do -- right-aligned rates end in the same column
        local prefix = lines[i]:sub(1, rate_col)
        assert.truthy(prefix:find("%d$"), lines[i])
      end
      local last = 0
      for i = 2, #lines do
        local id = tonumber(lines[i]:match("^%s*(%d+)"))
        assert.is_true(id > last)
        last = id
      end
      assert.is_nil(r.out:find("\27", 1, true)) -- not a terminal: no colours
    end)

    it("filters by --search, --category and --type; --json is an array", function()
      local r = smm("services --search instagram --json")
      assert.equal(0, r.code)
      local list = cli.json(r.out)
      assert.is_true(#list >= 5)
      for _, s in ipairs(list) do
        assert.truthy((s.name .. s.category):lower():find("instagram"))
      end
      list = cli.json(smm("services --type poll --json").out)
      assert.equal(1, #list)
      assert.equal(10, list[1].service)
      assert.equal("1.80", list[1].rate)
      list = cli.json(smm("services --category 'instagram comments' --json").out)
      assert.equal(2, #list)
      r = smm("services --search nothing-like-this --json")
      assert.equal("[]\n", r.out)
    end)
  end)

  describe("balance and quote", function()
    it("balance prints the exact amount; --json parses", function()
      local r = smm("balance")
      assert.equal(0, r.code)
      assert.equal("100.00 USD\n", r.out)
      local b = cli.json(smm("balance --json").out)
      assert.same({ balance = "100.00", currency = "USD" }, b)
    end)

    it("quote SERVICE QUANTITY [--runs N] prices exactly without placing anything", function()
      assert.equal("0.09\n", smm("quote 1 100").out)
      assert.equal("0.0125\n", smm("quote 5 1000").out)
      local q = cli.json(smm("quote 1 1000 --runs 3 --interval 10 --json").out)
      assert.equal("2.70", q.price)
      assert.equal(1, q.service)
      local words = {}
      for i = 1, 10 do words[i] = "--comments c" .. i end
      local r = smm("quote --service 2 " .. table.concat(words, " "))
      assert.equal("0.08\n", r.out) -- 10 comments x 8 / 1000
      r = smm("quote --service 2 --comments a --comments b")
      assert.equal(1, r.code) -- below the service's minimum of 10
      assert.equal(0, adds())
    end)

    it("quote of a quantity outside the service's bounds is a usage error naming the field", function()
      local r = smm("quote 1 10")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("quantity", 1, true))
      r = smm("quote 999 100")
      assert.equal(1, r.code)
    end)
  end)

  describe("add", function()
    it("refuses without --yes when stdin is not a terminal, and sends nothing", function()
      local r = smm("add --service 1 --link https://x.example/a --quantity 100")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("without --yes", 1, true))
      assert.truthy(r.out:find("price     0.09", 1, true)) -- the price is shown first
      assert.equal(0, adds())
    end)

    it("places a default order with --yes; --json answers the order id and price", function()
      local r = smm("add --service 1 --link https://x.example/a --quantity 1000 --yes --json")
      assert.equal(0, r.code)
      local res = cli.json(r.out)
      assert.equal("0.90", res.price)
      local orders = sb:orders()
      assert.equal(1, #orders)
      assert.equal(res.order, orders[1].id)
      assert.equal("https://x.example/a", orders[1].link)
    end)

    it("places every kind: comments (repeatable and from a file), subscription, poll, groups, extras",
      function()
      local file = dir .. "/comments.txt"
      local lines = {}
      for i = 1, 8 do lines[i] = "comment from file " .. i end
      cli.write_file(file, table.concat(lines, "\n") .. "\n")
      local r = smm("add --service 2 --link https://x.example/p --comments 'first one' " ..
        "--comments 'second, with comma' --comments-file " .. cli.quote(file) .. " --yes --json")
      assert.equal(0, r.code, r.err)
      r = smm("add --service 7 --username bob --min 100 --max 200 --posts 3 --delay 30 " ..
        "--expiry 31/12/2030 --yes --json")
      assert.equal(0, r.code, r.err)
      assert.equal("0.24", cli.json(r.out).price)
      r = smm("add --service 10 --link https://x.example/poll --quantity 100 --answer-number 2 --yes")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("order %d+ placed %(0%.18%)"))
      r = smm("add --service 11 --link https://t.me/x --quantity 20 --groups g1 --groups g2 " ..
        "--field country=US --yes")
      assert.equal(0, r.code, r.err)
      local orders = sb:orders()
      assert.equal(4, #orders)
      assert.equal(10, select(2, orders[1].comments:gsub("\n", "")) + 1)
      assert.truthy(orders[1].comments:find("second, with comma", 1, true))
      assert.equal("bob", orders[2].username)
      assert.equal("2", tostring(orders[3].answer_number))
      assert.equal("g1\ng2", orders[4].groups)
      assert.equal("US", orders[4].country)
    end)

    it("a field the service does not take, or out of bounds: exit 1, the field named, nothing sent",
      function()
      local r = smm("add --service 1 --link https://x.example/a --quantity 10 --yes")
      assert.equal(1, r.code)
      assert.equal("smm: 'quantity' is 10, below the minimum 50 of service 1 (Default)\n", r.err)
      r = smm("add --service 6 --link https://x.example/a --quantity 10 --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("'quantity' is not used", 1, true))
      r = smm("add --service 7 --username bob --min 100 --max 200 --delay 7 --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("'delay'", 1, true))
      r = smm("add --link https://x.example/a --yes")
      assert.equal(1, r.code)
      assert.equal(0, adds())
    end)

    it("an add whose answer is lost is ambiguous: exit 4 and advice to check", function()
      sb:fault("reset_after_read", { action = "add" })
      local r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes")
      assert.equal(4, r.code)
      assert.truthy(r.err:find("may have been placed", 1, true))
      assert.equal(1, adds()) -- never sent twice
    end)

    it("the panel refusing the order is an API error: exit 1", function()
      sb:config{ balance = "0.01" }
      local r = smm("add --service 1 --link https://x.example/a --quantity 1000 --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("^smm: Not enough funds"))
    end)
  end)

  describe("orders by id", function()
    local function place(n)
      local ids = {}
      for i = 1, n do
        local r = smm("add --service 1 --link https://x.example/" .. i .. " --quantity 100 --yes --json")
        ids[i] = cli.json(r.out).order
      end
      return ids
    end

    it("status of many ids: a table, --json entries in order, exit 3 when some ids fail", function()
      local ids = place(2)
      local r = smm("status " .. ids[1] .. " " .. ids[2])
      assert.equal(0, r.code)
      assert.truthy(r.out:find("^ORDER%s+STATUS%s+CHARGE%s+START%s+REMAINS%s+CURRENCY\n"))
      r = smm("status " .. ids[1] .. "," .. ids[2] .. " 999999 --json")
      assert.equal(3, r.code)
      local list = cli.json(r.out)
      assert.equal(3, #list)
      assert.equal(ids[1], list[1].order)
      assert.equal("0.09", list[1].charge)
      assert.equal("Incorrect order ID", list[3].error)
      r = smm("status 999998 999999")
      assert.equal(1, r.code)
      r = smm("status abc")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("'abc' is not an order id", 1, true))
    end)

    it("wait follows orders to the end with plain lines off a terminal, then a summary", function()
      local ids = place(2)
      local r = smm("wait " .. ids[1] .. " " .. ids[2] .. " --every 0.02")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("order " .. ids[1] .. ": Completed", 1, true))
      assert.truthy(r.out:find("2 orders: 2 Completed; charged 0.18", 1, true))
      assert.is_nil(r.out:find("\27[", 1, true))
      r = smm("wait " .. ids[1] .. " --json --every 0.02")
      assert.equal("Completed", cli.json(r.out)[1].status)
    end)

    it("wait on a terminal redraws one line per order in place", function()
      local ids = place(1)
      local r = smm("wait " .. ids[1] .. " --every 0.02", { env = { SMM_FORCE_TTY = "1" } })
      assert.equal(0, r.code)
      assert.truthy(r.out:find("\27%[%d+A")) -- cursor up: a redraw
      assert.truthy(r.out:find("\27[32mCompleted", 1, true))
      r = smm("wait " .. ids[1] .. " --every 0.02", { env = { SMM_FORCE_TTY = "1", NO_COLOR = "1" } })
      assert.is_nil(r.out:find("\27[32m", 1, true))
    end)

    it("wait gives up after --timeout with exit 2", function()
      local r = smm("wait 424242 --every 0.05 --timeout 0.3 --grace 5")
      assert.equal(2, r.code)
      assert.truthy(r.err:find("not final", 1, true))
      assert.truthy(r.out:find("1 order", 1, true), r.out) -- where it stands, though it timed out
    end)

    it("refill, refill-status and cancel: tables, --json, per-id errors", function()
      local ids = place(2)
      smm("wait " .. ids[1] .. " " .. ids[2] .. " --every 0.01")
      local r = smm("refill " .. ids[1] .. " 999999 --json")
      assert.equal(3, r.code)
      local list = cli.json(r.out)
      assert.is_number(list[1].refill)
      assert.equal("Incorrect order ID", list[2].error)
      local refill = list[1].refill
      r = smm("refill-status " .. refill)
      assert.equal(0, r.code)
      assert.truthy(r.out:find("^REFILL%s+STATUS\n%s*" .. refill .. "%s+%a"))
      local more = place(1)
      r = smm("cancel " .. more[1] .. " --json")
      assert.equal(0, r.code, r.err)
      assert.is_true(cli.json(r.out)[1].cancel)
      r = smm("cancel 999999")
      assert.equal(1, r.code)
      more = place(1)
      r = smm("cancel " .. more[1])
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("Canceled", 1, true), r.out) -- one spelling, the API's
      r = smm("cancel")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("no order ids given", 1, true), r.err)
    end)
  end)

  describe("failures", function()
    it("a wrong key: the panel's message, exit 1", function()
      local r = smm("balance", { env = { SMM_API_KEY = "wrong-key" } })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("^smm: .*[Kk]ey"))
    end)

    it("a panel that is down: exit 2, one line", function()
      local url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2"
      local r = smm("balance", { env = { SMM_API_URL = url } })
      assert.equal(2, r.code)
      assert.truthy(r.err:find("^smm: network error"))
      assert.equal(1, select(2, r.err:gsub("\n", "")))
    end)

    it("an HTML page instead of JSON, again and again: exit 2", function()
      sb:fault("html503", { times = 10 })
      local r = smm("balance", { env = {} })
      assert.equal(2, r.code)
      assert.truthy(r.err:find("503", 1, true))
    end)

    it("no URL or no key: a usage error saying where to put them", function()
      local r = smm("balance", { env = { SMM_API_URL = false, SMM_API_KEY = false } })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("no panel URL", 1, true))
      r = smm("balance", { env = { SMM_API_KEY = false } })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("no API key", 1, true))
    end)

    it("Ctrl-C (SIGINT) ends a wait with exit 130", function()
      local pid = cli.spawn("wait 424242 --every 0.05 --grace 30", {
        cwd = dir, env = vars })
      cli.sleep(0.4)
      os.execute("kill -INT " .. pid)
      for _ = 1, 50 do
        cli.sleep(0.05)
        if not cli.alive(pid) then break end
      end
      assert.is_false(cli.alive(pid))
      -- the exit status of a background child is not ours to collect; the message says it
      local err = cli.read_file(dir .. "/spawn.err")
      cli.seen[#cli.seen + 1] = err
      assert.truthy(err:find("smm: interrupted", 1, true), err)
    end)
  end)

  describe("configuration", function()
    local other

    setup(function()
      other = env.sandbox{ balance = "7.50" }
    end)
    teardown(function() other:stop() end)

    local function config_file(text)
      local path = dir .. "/config.ini"
      cli.write_file(path, text)
      return path
    end

    it("profiles from --config: default, --profile NAME, the key shown as ***", function()
      local path = config_file(table.concat({
        "# two panels",
        "[profile default]",
        "url = " .. sb.url,
        "key = " .. env.KEY,
        "",
        "[profile second]",
        "url = " .. other.url,
        "key = \"" .. env.KEY .. "\"",
        "timeout = 5000",
        "retries = 1",
        "rate_limit = 120/60000",
      }, "\n"))
      local none = { SMM_API_URL = false, SMM_API_KEY = false }
      local r = smm("balance --config " .. cli.quote(path), { env = none })
      assert.equal("100.00 USD\n", r.out)
      r = smm("balance --config " .. cli.quote(path) .. " --profile second", { env = none })
      assert.equal("7.50 USD\n", r.out)
      r = smm("config --config " .. cli.quote(path) .. " --profile second --json", { env = none })
      local c = cli.json(r.out)
      assert.equal("***", c.key)
      assert.equal("second", c.profile)
      assert.equal(other.url, c.url)
      assert.same({ "default", "second" }, c.profiles)
      assert.equal(5000, c.options.timeout)
      r = smm("config --config " .. cli.quote(path), { env = none })
      assert.truthy(r.out:find("key       ***  (profile default)", 1, true))
      r = smm("balance --config " .. cli.quote(path) .. " --profile third", { env = none })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("no profile 'third'", 1, true))
    end)

    it("XDG_CONFIG_HOME/smm/config is read; SMM_API_URL beats the default profile; --url beats all",
      function()
      os.execute("mkdir -p " .. cli.quote(dir .. "/xdg/smm"))
      cli.write_file(dir .. "/xdg/smm/config", "[default]\nurl = " .. other.url .. "\nkey = " .. env.KEY ..
        "\n")
      local r = smm("balance", { env = { SMM_API_URL = false, SMM_API_KEY = false } })
      assert.equal("7.50 USD\n", r.out)
      r = smm("balance") -- the environment names the sandbox
      assert.equal("100.00 USD\n", r.out)
      r = smm("balance --url " .. cli.quote(other.url))
      assert.equal("7.50 USD\n", r.out)
      os.remove(dir .. "/xdg/smm/config")
    end)

    it("a bad config file: the file and line named, exit 1", function()
      local path = config_file("[profile x]\nurl = http://a\nbogus = 1\n")
      local r = smm("balance --config " .. cli.quote(path))
      assert.equal(1, r.code)
      assert.equal("smm: " .. path .. ":3: unknown option 'bogus'\n", r.err)
      r = smm("balance --config " .. cli.quote(dir .. "/missing"))
      assert.equal(1, r.code)
    end)
  end)

  describe("output", function()
    it("colours only on a terminal and never with NO_COLOR or --json", function()
      local r = smm("services", { env = { SMM_FORCE_TTY = "1" } })
      assert.truthy(r.out:find("\27[1mID", 1, true))
      r = smm("services", { env = { SMM_FORCE_TTY = "1", NO_COLOR = "1" } })
      assert.is_nil(r.out:find("\27", 1, true))
      r = smm("services --no-color", { env = { SMM_FORCE_TTY = "1" } })
      assert.is_nil(r.out:find("\27", 1, true))
      r = smm("services --json", { env = { SMM_FORCE_TTY = "1" } })
      assert.is_nil(r.out:find("\27", 1, true))
    end)

    it("the key is in no output, not even when given with --key or in an error", function()
      local r = smm("balance --key " .. env.KEY, { env = { SMM_API_KEY = false } })
      assert.equal(0, r.code)
      r = smm("balance --url 'http://127.0.0.1:1/api/v2?key=" .. env.KEY .. "'")
      assert.equal(2, r.code)
      r = smm("config --json")
      assert.equal("***", cli.json(r.out).key)
      local leaked = cli.leaks(env.KEY)
      assert.is_false(leaked)
    end)
  end)

  it("sandbox runs the sandbox panel", function()
    local r = smm("sandbox --help")
    assert.equal(0, r.code)
    assert.truthy(r.out:find("smm-sandbox", 1, true))
  end)
end)
