-- Issue 10 (trust), the curl transport and smm.core: a handle used from a __gc finalizer in
-- the middle of its own request (point 9), an unasked second answer left on a keep-alive
-- connection (point 14), Ctrl-C seen at once by sleeps, transfers and every CLI command
-- (point 13). Real HTTP on loopback against the hostile panel (spec/helpers/hostile.lua) and
-- the sandbox; the CLI runs as a child process.
local core = require "smm.core"
local smm = require "smm"
local hostile = require "helpers.hostile"

local KEY = "trust-core-key"

-- A large answer: decoding it allocates enough for many collection cycles.
local N = 6000
local function big_list()
  local items = {}
  for i = 1, N do
    items[i] = ('{"service":%d,"name":"Service %d","type":"Default","category":"C","rate":"0.50",'
      .. '"min":"10","max":"1000"}'):format(i, i)
  end
  return "[" .. table.concat(items, ",") .. "]"
end

describe("smm.core: a handle used from a finalizer during its own request (issue 10.9)", function()
  local srv

  setup(function()
    srv = hostile.start{ default = hostile.json(big_list()),
      actions = { balance = hostile.json('{"balance":"5.00","currency":"USD"}') } }
  end)
  teardown(function() srv:stop() end)

  -- In a process of its own (spec/helpers/finalizer_child.lua), with the interpreter running
  -- this spec: a small heap, so that collection cycles surely run during the request.
  local function child(scenario)
    local lua = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
    local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/") or "."
    local cmd = ("LUA_PATH=%q LUA_CPATH=%q %s %s/spec/helpers/finalizer_child.lua %s %s %s %d 2>&1"):format(
      package.path, package.cpath, lua, root, scenario, srv.url, KEY, N)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    return out
  end

  it("close() from the finalizer is deferred until the request ends", function()
    assert.equal("ok\n", child("close"))
  end)

  it("a request from the finalizer is refused, the outer requests complete", function()
    assert.equal("ok\n", child("request"))
  end)
end)

describe("curl transport: an unasked answer left on a kept connection (issue 10.14)", function()
  local BALANCE = hostile.json('{"balance":"1.00","currency":"USD"}')
  local CHUNKED = hostile.chunked{ '24\r\n{"balance":"1.00","currency":"USD"}\r\n', "0\r\n\r\n" }
  local STRAY = hostile.json('{"charge":"9.99","status":"Completed","remains":"0"}')
  local OWN = hostile.json('{"charge":"0.10","status":"Pending","remains":"100"}')

  -- Request 1 is answered byte by byte (so that the client has read that answer to its end
  -- before the stray one arrives), then the stray answer follows on the kept connection.
  local function panel(first)
    return hostile.start{ { raw = first, keep = true, after = STRAY, trickle = 0.001 },
      default = { raw = OWN, keep = true } }
  end

  for _, case in ipairs{ { "Content-Length", BALANCE }, { "chunked", CHUNKED } } do
    local name, first = case[1], case[2]

    it("the next single request gets its own answer (" .. name .. ")", function()
      local srv = panel(first)
      local h = core.new{ timeout = 5000 }
      assert.equal("1.00", h:request(srv.url, { key = KEY, action = "balance" }).json.balance)
      core.sleep(150) -- the stray answer is now waiting on the idle connection
      local r = h:request(srv.url, { key = KEY, action = "status", order = 7 })
      assert.equal(200, r.status)
      assert.equal("0.10", r.json.charge)
      assert.equal(2, srv:count())
      h:close()
      srv:stop()
    end)

    it("request_many gets its own answers (" .. name .. ")", function()
      local srv = panel(first)
      local h = core.new{ timeout = 5000 }
      assert.equal("1.00", h:request(srv.url, { key = KEY, action = "balance" }).json.balance)
      core.sleep(150)
      local list = h:request_many(srv.url, { { key = KEY, action = "status", order = 7 },
        { key = KEY, action = "status", order = 7 } }, { concurrency = 1 })
      for i = 1, 2 do
        assert.equal(200, list[i].status, tostring(list[i].message))
        assert.equal("0.10", list[i].json.charge)
      end
      h:close()
      srv:stop()
    end)

    it("client:status(7) is order 7's own entry (" .. name .. ")", function()
      local srv = panel(first)
      local client = smm.new{ url = srv.url, key = KEY, timeout = 5000 }
      assert.equal("1.00", assert(client:balance()).balance)
      core.sleep(150)
      local entry = assert(client:status(7))
      assert.equal("0.10", entry.charge)
      assert.equal("Pending", entry.status)
      client:close()
      srv:stop()
    end)
  end
end)

describe("Ctrl-C: sleeps, transfers and every CLI command end at once (issue 10.13)", function()
  local cli = require "helpers.cli"

  describe("smm.core", function()
    it("has catch_interrupts and interrupts, and refuses a bad abort_at", function()
      assert.equal(0, core.interrupts())
      assert.has_error(function() core.catch_interrupts{ abort_at = 3 } end,
        "smm.core.catch_interrupts: abort_at must be 1 or 2")
    end)
  end)

  local SERVICES = hostile.json('[{"service":1,"name":"Likes","type":"Default","category":"C",'
    .. '"rate":"1.00","min":"10","max":"1000"}]')
  local BALANCE = hostile.json('{"balance":"100.00","currency":"USD"}')
  local IN_PROGRESS = hostile.json('{"1":{"charge":"1.00","start_count":"0","status":"In progress",'
    .. '"remains":"5","currency":"USD"},"charge":"1.00","start_count":"0","status":"In progress",'
    .. '"remains":"5","currency":"USD"}')

  -- Runs smm in the background (through sh, which writes its exit code to dir/code), sends
  -- SIGINT `signals` times (`gap` s apart) once ready(dir) says it is where it should be, and
  -- returns the exit code, the seconds from the first SIGINT to the end, and dir.
  local function run_interrupted(words, srv, ready, signals, gap)
    local dir = cli.tmpdir()
    cli.write_file(dir .. "/run.sh", ("%s %s %s & echo $! > %s/pid; wait $!; echo $? > %s/code\n")
      :format(cli.LUA, cli.quote(cli.SMM), words, cli.quote(dir), cli.quote(dir)))
    os.execute(("cd %s && %s sh %s/run.sh >%s/out 2>%s/err </dev/null &"):format(cli.quote(dir),
      cli.env_prefix{ SMM_API_URL = srv.url, SMM_API_KEY = KEY }, dir, dir, dir))
    local deadline = core.now() + 20000
    while not (cli.read_file(dir .. "/pid") and ready()) and core.now() < deadline do
      cli.sleep(0.05)
    end
    local pid = tonumber(cli.read_file(dir .. "/pid"))
    assert.is_number(pid, "smm did not start: " .. tostring(cli.read_file(dir .. "/err")))
    assert.is_true(cli.alive(pid), "smm ended before the signal: " ..
      tostring(cli.read_file(dir .. "/err")))
    local t0 = core.now()
    for i = 1, signals or 1 do
      if i > 1 then cli.sleep(gap or 0.3) end
      os.execute("kill -INT " .. pid)
    end
    while cli.alive(pid) and core.now() - t0 < 30000 do cli.sleep(0.02) end
    local seconds = (core.now() - t0) / 1000
    deadline = core.now() + 5000
    while not cli.read_file(dir .. "/code") and core.now() < deadline do cli.sleep(0.02) end
    return tonumber(cli.read_file(dir .. "/code")), seconds, dir
  end

  it("smm wait --every 20 ends with 130 right after Ctrl-C", function()
    local srv = hostile.start{ default = IN_PROGRESS }
    local code, seconds = run_interrupted("wait 1 --every 20", srv,
      function() return srv:count() >= 1 end)
    srv:stop()
    assert.equal(130, code)
    assert.is_true(seconds < 3, "ended " .. seconds .. " s after SIGINT")
  end)

  it("smm balance against a silent panel ends with 130 right after Ctrl-C", function()
    local srv = hostile.start{ default = { raw = "", hang = 30 } }
    local code, seconds = run_interrupted("balance", srv, function() return srv:count() >= 1 end)
    srv:stop()
    assert.equal(130, code)
    assert.is_true(seconds < 3, "ended " .. seconds .. " s after SIGINT")
  end)

  local CSV = "service,link,quantity\n1,https://x.test/a,100\n1,https://x.test/b,100\n"

  local function batch_panel()
    -- the add answer takes about 3 s to arrive: the signals land while it is in flight
    return hostile.start{ actions = { services = SERVICES, balance = BALANCE,
      add = { raw = hostile.json('{"order":23501}'), trickle = 0.03 } }, default = BALANCE }
  end

  -- The batch's order book, per run: the rows of the CSV are lines 2 and 3.
  local function batch_run(dir)
    cli.write_file(dir .. "/orders.csv", CSV)
    return "batch " .. cli.quote(dir .. "/orders.csv") .. " --yes --book " ..
      cli.quote("sqlite:" .. dir .. "/orders.db")
  end

  -- The book's rows by link, and its orders in doubt. The second row (link b) was never sent: it
  -- may be absent, or claimed and then recorded as not placed (failed: sendable again), never
  -- in doubt and never with an order id.
  local function book_rows(dir)
    local book = assert(smm.book.open("sqlite:" .. dir .. "/orders.db"))
    local rows = assert(book:orders{})
    local doubt = assert(book:doubt())
    book:close()
    local by_link = {}
    for _, row in ipairs(rows) do
      assert.is_nil(by_link[row.link], row.link .. " has two rows")
      by_link[row.link] = row
    end
    local b = by_link["https://x.test/b"]
    if b then
      assert.equal("failed", b.state)
      assert.is_nil(b.order_id)
    end
    return by_link["https://x.test/a"], doubt
  end

  it("smm batch: the first Ctrl-C finishes the add in flight and records it in the book, then stops (130)",
    function()
      local srv = batch_panel()
      local dir = cli.tmpdir()
      local code, seconds, rdir = run_interrupted(batch_run(dir), srv,
        function() return srv:count("add") >= 1 end)
      local adds = srv:count("add")
      srv:stop()
      assert.equal(130, code, cli.read_file(rdir .. "/err"))
      assert.is_true(seconds < 10, "ended " .. seconds .. " s after SIGINT")
      assert.equal(1, adds)
      -- the add in flight was placed and its answer recorded; the second row was not sent
      local a, doubt = book_rows(dir)
      assert.equal("placed", a.state)
      assert.equal(23501, a.order_id)
      assert.same({}, doubt)
      os.execute("rm -rf " .. cli.quote(dir) .. " " .. cli.quote(rdir))
    end)

  it("smm batch: a second Ctrl-C aborts the add in flight at once, left in doubt in the book (130)",
    function()
      local srv = batch_panel()
      local dir = cli.tmpdir()
      local code, seconds, rdir = run_interrupted(batch_run(dir), srv,
        function() return srv:count("add") >= 1 end, 2, 0.3)
      local adds = srv:count("add")
      srv:stop()
      assert.equal(130, code, cli.read_file(rdir .. "/err"))
      assert.is_true(seconds < 2, "ended " .. seconds .. " s after the first SIGINT")
      assert.equal(1, adds)
      -- sent, its answer never read: no order id, and the book holds the ref in doubt
      local a, doubt = book_rows(dir)
      assert.is_nil(a.order_id)
      assert.truthy(a.state == "sending" or a.state == "in_doubt", a.state)
      assert.equal(1, #doubt)
      assert.equal(a.ref, doubt[1].ref)
      -- and `smm doubt` lists it, with how to settle it
      local r = cli.run("doubt --book " .. cli.quote("sqlite:" .. dir .. "/orders.db"))
      assert.equal(0, r.code, r.err)
      assert.truthy((r.out .. r.err):find(a.ref, 1, true), r.out .. r.err)
      assert.is_nil((r.out .. r.err):find("23501", 1, true), r.out .. r.err)
      os.execute("rm -rf " .. cli.quote(dir) .. " " .. cli.quote(rdir))
    end)
end)
