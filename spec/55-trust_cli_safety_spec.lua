-- Issue 10, the command line's share: two runs of one batch never place a row twice (issue 12:
-- the order book decides, where a lock did), CSV columns that are not fields refused, an order
-- placed on a full disk still reported, --timeout on every command with retries announced, and a key never paired
-- with another source's URL. Real `smm` processes against the sandbox (or a hostile panel).
local env = require "helpers.env"
local cli = require "helpers.cli"
local hostile = require "helpers.hostile"
local smm_lib = require "smm"

describe("trust: command line safety", function()
  local sb, vars, root, dir, n

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir, stdin = opts.stdin })
  end

  local function default_csv(count)
    local lines = { "service,link,quantity" }
    for i = 1, count do lines[#lines + 1] = string.format("1,https://x.example/r%d,100", i) end
    return table.concat(lines, "\n") .. "\n"
  end

  local function wait_for(predicate, seconds)
    local deadline = os.time() + seconds
    while os.time() <= deadline do
      if predicate() then return true end
      cli.sleep(0.05)
    end
    return predicate()
  end

  -- os.execute succeeded (Lua 5.1 and LuaJIT return the status, 5.2+ true)
  local function sh(command)
    local ok = os.execute(command)
    return ok == true or ok == 0
  end

  local function now()
    return require("socket").gettime()
  end

  setup(function()
    sb = env.sandbox()
    root = cli.tmpdir()
    vars = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, XDG_CONFIG_HOME = root .. "/xdg",
             HOME = root }
    n = 0
  end)

  teardown(function()
    sb:stop()
    local leaked, where = cli.leaks(env.KEY)
    assert.is_false(leaked, "the key was printed: " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(root))
  end)

  before_each(function()
    sb:reset()
    n = n + 1
    dir = root .. "/t" .. n
    os.execute("mkdir -p " .. cli.quote(dir))
    vars.XDG_DATA_HOME = dir .. "/data" -- a new sandbox, a new order book
  end)

  describe("two runs of one batch", function()
    it("a run held at its prompt while a second one places the rows: 5 rows place exactly 5 orders",
      function()
      cli.write_file(dir .. "/orders.csv", default_csv(5))
      local fifo = dir .. "/stdin"
      assert.is_true(sh("mkfifo " .. cli.quote(fifo)))
      local e = {}
      for k, v in pairs(vars) do e[k] = v end
      e.SMM_FORCE_TTY = "1" -- the prompt is asked only on a terminal
      local p = assert(io.popen(string.format("cd %s; %s %s %s batch orders.csv <%s >first.out " ..
        "2>first.err & echo $!", cli.quote(dir), cli.env_prefix(e), cli.LUA, cli.quote(cli.SMM),
        cli.quote(fifo))))
      local pid = tonumber(p:read("*l"))
      p:close()
      local answer = assert(io.open(fifo, "w")) -- the first run's terminal, kept silent for now
      assert.is_true(wait_for(function()
        return (cli.read_file(dir .. "/first.err") or ""):find("[y/N]", 1, true) ~= nil
      end, 20), "the first run never asked: " .. tostring(cli.read_file(dir .. "/first.err")))

      -- the second run places the rows while the first waits at its question with a stale plan
      local second = smm("batch orders.csv --yes")
      assert.equal(0, second.code, second.err)
      assert.equal(5, env.count(sb, "add"))

      answer:write("y\n")
      answer:close()
      assert.is_true(wait_for(function() return not cli.alive(pid) end, 30))
      local out = cli.read_file(dir .. "/first.out") or ""
      assert.truthy(out:find("placed 0 orders for 0.00 USD this run (5 in all)", 1, true),
        out .. tostring(cli.read_file(dir .. "/first.err")))

      local again = smm("batch orders.csv --yes")
      assert.equal(0, again.code, again.err)
      assert.equal(5, sb:stats().orders)
      assert.equal(5, env.count(sb, "add"))
    end)

    it("a run that stops before sending (dry run, short balance) records nothing in the book", function()
      cli.write_file(dir .. "/orders.csv", default_csv(2))
      assert.equal(0, smm("batch orders.csv --dry-run").code)
      sb:config{ balance = "0.01" }
      assert.equal(1, smm("batch orders.csv --yes").code)
      local r = smm("orders --json")
      assert.equal(0, r.code, r.err)
      assert.equal(0, #cli.json(r.out))
    end)
  end)

  describe("CSV columns", function()
    it("an unknown column is refused with a did-you-mean; nothing is sent", function()
      cli.write_file(dir .. "/orders.csv", "service,link,Qty\n1,https://x.example/a,100\n")
      local r = smm("batch orders.csv --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("unknown column 'Qty'", 1, true), r.err)
      assert.truthy(r.err:find("did you mean 'quantity'", 1, true), r.err)
      assert.truthy(r.err:find("field:Qty", 1, true), r.err)
      assert.equal(0, env.count(sb, "add"))

      cli.write_file(dir .. "/typo.csv", "service,link,quantiy\n1,https://x.example/a,100\n")
      r = smm("batch typo.csv --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("did you mean 'quantity'", 1, true), r.err)
    end)

    it("a column named field:NAME is sent as the panel field NAME", function()
      cli.write_file(dir .. "/orders.csv",
        "service,link,quantity,field:country\n1,https://x.example/a,100,US\n")
      local r = smm("batch orders.csv --yes")
      assert.equal(0, r.code, r.err)
      local orders = sb:orders()
      assert.equal(1, #orders)
      assert.equal("US", orders[1].country)
    end)
  end)

  describe("a full disk after a successful add", function()
    local mnt

    before_each(function()
      mnt = dir .. "/small"
      os.execute("mkdir -p " .. cli.quote(mnt))
      assert.is_true(sh("mount -t tmpfs -o size=1m tmpfs " .. cli.quote(mnt)),
        "this spec needs to mount a small tmpfs (root)")
    end)

    after_each(function()
      os.execute("umount " .. cli.quote(mnt) .. " 2>/dev/null")
    end)

    it("prints the order id and the row on stderr and exits 4; the row is never sent twice", function()
      cli.write_file(dir .. "/orders.csv", default_csv(1))
      local url = "sqlite:" .. mnt .. "/book.db"
      assert.equal(0, smm("orders --book " .. url).code) -- the book made (and migrated) on the tmpfs
      sb:fault("slow", { action = "add", delay = 1500 })
      local p = assert(io.popen(string.format("cd %s; (%s %s %s batch orders.csv --yes --book %s " ..
        "</dev/null >run.out 2>run.err; echo $? >run.code) >/dev/null 2>&1 &", cli.quote(dir),
        cli.env_prefix(vars), cli.LUA, cli.quote(cli.SMM), cli.quote(url))))
      p:close()
      -- the intent is committed before the add leaves: the add is inside the panel
      assert.is_true(wait_for(function() return sb:stats().in_flight >= 1 end, 20), "no add was sent")
      local book = assert(smm_lib.book.open(url))
      assert.equal(1, book:counts().sending)
      book:close()
      -- the disk fills up before the answer comes back
      os.execute("dd if=/dev/zero of=" .. cli.quote(mnt .. "/fill") .. " bs=4k 2>/dev/null")
      assert.is_true(wait_for(function() return cli.read_file(dir .. "/run.code") ~= nil end, 30))
      local err = cli.read_file(dir .. "/run.err")
      cli.seen[#cli.seen + 1] = err
      local orders = sb:orders()
      assert.equal(1, #orders)
      local id = string.format("%d", orders[1].id)
      assert.falsy(err:find("internal error", 1, true), err)
      local ref = err:match("line 2 %(ref (csv:%x+:2), service 1, https://x.example/r1%): order " .. id ..
        " was placed")
      assert.truthy(ref, err)
      assert.truthy(err:find("smm doubt " .. ref .. " " .. id, 1, true), err)
      assert.equal("4\n", cli.read_file(dir .. "/run.code"), err)

      -- room again: the row is in doubt, never sent twice, and settled as the message says
      os.remove(mnt .. "/fill")
      local r = smm("batch orders.csv --yes --book " .. url)
      assert.equal(4, r.code, r.err)
      r = smm("doubt " .. ref .. " " .. id .. " --book " .. url)
      assert.equal(0, r.code, r.err)
      r = smm("batch orders.csv --yes --book " .. url)
      assert.equal(0, r.code, r.err)
      assert.equal(1, env.count(sb, "add"))
    end)

    it("a disk full before the intent: nothing is sent", function()
      cli.write_file(dir .. "/orders.csv", default_csv(1))
      local url = "sqlite:" .. mnt .. "/book.db"
      assert.equal(0, smm("orders --book " .. url).code)
      os.execute("dd if=/dev/zero of=" .. cli.quote(mnt .. "/fill") .. " bs=4k 2>/dev/null")
      local r = smm("batch orders.csv --yes --book " .. url)
      assert.equal(5, r.code, r.err)
      assert.truthy(r.err:find(url, 1, true), r.err)
      assert.equal(0, env.count(sb, "add"))
    end)
  end)

  describe("--timeout", function()
    it("is taken by every command (seconds)", function()
      local placed = smm("add --service 1 --link https://x.example/t --quantity 100 --yes --json")
      assert.equal(0, placed.code, placed.err)
      local id = cli.json(placed.out).order
      sb:advance(50)
      cli.write_file(dir .. "/orders.csv", default_csv(1))
      local commands = {
        { "services" }, { "balance" }, { "quote 1 100" },
        { "add --service 1 --link https://x.example/u --quantity 100 --yes" },
        { "status " .. id }, { "wait " .. id .. " --every 0.05" }, { "refill " .. id },
        { "refill-status 1" },
        { "cancel " .. id, 1 }, -- the panel's answer: a completed order cannot be cancelled
        { "batch orders.csv --dry-run" }, { "config" },
      }
      for _, c in ipairs(commands) do
        local r = smm(c[1] .. " --timeout 7")
        assert.falsy(r.err:find("does not apply", 1, true), c[1] .. ": " .. r.err)
        assert.equal(c[2] or 0, r.code, c[1] .. ": " .. r.err)
      end
      local r = smm("config --timeout 7 --json")
      assert.equal(7000, cli.json(r.out).options.timeout)
      r = smm("balance --timeout soon")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("--timeout", 1, true), r.err)
    end)

    it("a hung panel ends within the timeout, exit 2", function()
      local srv = hostile.start{ default = { raw = "", hang = 6 } }
      local started = now()
      local r = smm("balance --timeout 1", { env = { SMM_API_URL = srv.url } })
      local took = now() - started
      srv:stop()
      assert.equal(2, r.code, r.err)
      assert.truthy(r.err:find("timeout", 1, true), r.err)
      assert.is_true(took < 3, "took " .. took .. " s")
    end)

    it("on a terminal a retry says so on stderr; not otherwise", function()
      sb:fault("html503", { action = "balance" })
      local r = smm("balance", { env = { SMM_FORCE_TTY = "1" } })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.err:find("retrying balance in %d+%.%d s %(attempt 2 of 3%): http 503"), r.err)
      sb:fault("html503", { action = "balance" })
      r = smm("balance")
      assert.equal(0, r.code, r.err)
      assert.equal("", r.err)
    end)

    it("the library's on_retry hook: called before each retry, false gives up, not a function refused",
      function()
      local calls = {}
      local client = smm_lib.new{ url = sb.url, key = env.KEY, retry_base = 10,
        on_retry = function(info) calls[#calls + 1] = info end }
      sb:fault("html503", { action = "balance", times = 2 })
      assert.truthy(client:balance())
      assert.equal(2, #calls)
      assert.equal("balance", calls[1].action)
      assert.equal(2, calls[1].attempt)
      assert.equal(3, calls[1].attempts)
      assert.equal("http", calls[1].err.kind)
      assert.is_number(calls[1].wait)
      assert.is_number(calls[1].elapsed)
      client:close()

      client = smm_lib.new{ url = sb.url, key = env.KEY, retry_base = 10,
        on_retry = function() return false end }
      sb:reset()
      sb:fault("html503", { action = "balance", times = 2 })
      local b, err = client:balance()
      assert.is_nil(b)
      assert.equal("http", err.kind)
      assert.equal(1, env.count(sb, "balance"))
      client:close()

      local ok, problem = pcall(smm_lib.new, { url = sb.url, key = env.KEY, on_retry = 5 })
      assert.is_false(ok)
      assert.truthy(tostring(problem):find("on_retry", 1, true), tostring(problem))
    end)
  end)

  describe("where the key and the URL come from", function()
    local other

    before_each(function()
      other = hostile.start{ default = hostile.json('{"balance":"1.00","currency":"USD"}') }
    end)

    after_each(function()
      other:stop()
    end)

    local function config(text, mode)
      local path = dir .. "/config"
      cli.write_file(path, text)
      os.execute("chmod " .. (mode or "600") .. " " .. cli.quote(path))
      return path
    end

    it("SMM_API_KEY is never sent to a profile's URL; a profile's key never to --url", function()
      local path = config("[profile default]\nurl = " .. other.url .. "\nkey = key-of-panel-b\n")
      -- the key of the sandbox (environment) with the URL of the default profile: refused
      local r = smm("balance", { env = { SMM_CONFIG = path, SMM_API_URL = false } })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("SMM_API_KEY", 1, true), r.err)
      assert.equal(0, other:count())
      -- the default profile's key with another URL given by --url: refused
      r = smm("balance --url " .. cli.quote(sb.url), { env = { SMM_CONFIG = path, SMM_API_URL = false,
        SMM_API_KEY = false } })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("profile default", 1, true), r.err)
      assert.equal(0, env.count(sb))
      -- --key with a profile's URL: refused
      r = smm("balance --key other-key", { env = { SMM_CONFIG = path, SMM_API_URL = false,
        SMM_API_KEY = false } })
      assert.equal(1, r.code)
      assert.equal(0, other:count())

      -- one source, or both given explicitly: fine
      r = smm("balance", { env = { SMM_CONFIG = path, SMM_API_URL = false, SMM_API_KEY = false } })
      assert.equal(0, r.code, r.err)
      assert.equal(1, other:count())
      r = smm("balance", { env = { SMM_CONFIG = path } })
      assert.equal("100.00 USD\n", r.out)
      r = smm("balance --url " .. cli.quote(sb.url), { env = { SMM_CONFIG = path, SMM_API_URL = false } })
      assert.equal("100.00 USD\n", r.out)
      r = smm("balance --url " .. cli.quote(sb.url) .. " --key " .. env.KEY, { env = { SMM_CONFIG = path,
        SMM_API_URL = false, SMM_API_KEY = false } })
      assert.equal("100.00 USD\n", r.out)
      for _, req in ipairs(other:requests()) do
        assert.equal("key-of-panel-b", req.form.key)
      end
    end)

    it("a config file with keys that others can read gets a warning, as ssh gives", function()
      local text = "[profile default]\nurl = " .. sb.url .. "\nkey = " .. env.KEY .. "\n"
      local path = config(text, "644")
      local r = smm("balance", { env = { SMM_CONFIG = path, SMM_API_URL = false, SMM_API_KEY = false } })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.err:find("warning: " .. path .. " holds API keys and others can read it " ..
        "(mode 0644): chmod 600 " .. path, 1, true), r.err)
      path = config(text, "600")
      r = smm("balance", { env = { SMM_CONFIG = path, SMM_API_URL = false, SMM_API_KEY = false } })
      assert.equal(0, r.code, r.err)
      assert.equal("", r.err)
      -- no key in it, nothing to protect
      path = config("[profile default]\nurl = " .. sb.url .. "\n", "644")
      r = smm("config", { env = { SMM_CONFIG = path } })
      assert.equal(0, r.code, r.err)
      assert.equal("", r.err)
    end)
  end)
end)
