-- Issue 12, the command line through the order book: `smm add --ref`, `smm batch` (refs from the
-- file and line, --concurrency, kill -9 and resume, an old journal imported), `smm sync`,
-- `smm orders`, `smm doubt`, `smm report`, and books that cannot be used refused before anything
-- is sent. Real `smm` processes against the sandbox, real SQLite files in temporary folders, and
-- a real PostgreSQL (helpers.postgres).
local env = require "helpers.env"
local cli = require "helpers.cli"
local smm_lib = require "smm"
local money = require "smm.money"

describe("smm through the order book #book", function()
  local sb, vars, root, dir, n

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir, stdin = opts.stdin })
  end

  local function adds() return env.count(sb, "add") end

  local function csv(count, prefix)
    local lines = { "service,link,quantity" }
    for i = 1, count do lines[#lines + 1] = string.format("1,https://x.example/%s%d,100", prefix or "r", i) end
    return table.concat(lines, "\n") .. "\n"
  end

  local function links_placed()
    local count = {}
    for _, o in ipairs(sb:orders()) do count[o.link] = (count[o.link] or 0) + 1 end
    return count
  end

  -- the book a test's runs use, opened by the spec itself to look inside
  local function book_url() return "sqlite:" .. dir .. "/orders.db" end
  local function open_book()
    return assert(smm_lib.book.open(book_url()))
  end

  local function sh(command)
    local ok = os.execute(command)
    return ok == true or ok == 0
  end

  -- alive and not a zombie (an orphan waits a while to be reaped)
  local function running(pid)
    -- without make check-asan's preloaded sanitizer runtime, under which ps hangs
    local p = io.popen("env -u LD_PRELOAD ps -o stat= -p " .. pid .. " 2>/dev/null")
    local stat = p:read("*l")
    p:close()
    return stat ~= nil and not stat:find("Z", 1, true)
  end

  local function wait_for(predicate, seconds)
    local socket = require "socket"
    local deadline = socket.gettime() + seconds
    while socket.gettime() < deadline do
      if predicate() then return true end
      cli.sleep(0.02)
    end
    return predicate()
  end

  setup(function()
    sb = env.sandbox()
    root = cli.tmpdir()
    n = 0
  end)

  teardown(function()
    sb:stop()
    local files = {}
    local p = io.popen("find " .. cli.quote(root) .. " -type f")
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    local leaked, where = cli.leaks(env.KEY, files)
    assert.is_false(leaked, "the key leaked into " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(root))
  end)

  before_each(function()
    sb:reset()
    n = n + 1
    dir = root .. "/t" .. n
    os.execute("mkdir -p " .. cli.quote(dir))
    vars = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, XDG_CONFIG_HOME = dir .. "/xdg",
             XDG_DATA_HOME = dir .. "/data", HOME = dir }
  end)

  describe("smm add", function()
    it("--ref twice: one order on the panel; the second run prints the recorded order", function()
      local r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes --ref shop-1")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("ref shop-1", 1, true), r.out)
      r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes --ref shop-1 --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.is_true(doc.recorded)
      assert.equal(sb:orders()[1].id, doc.order)
      assert.equal(1, sb:stats().orders)
      assert.equal(1, adds())
      -- the default book: XDG_DATA_HOME/smm/orders.db, in a folder only its owner may enter
      local p = io.popen("stat -c %a " .. cli.quote(dir .. "/data/smm"))
      assert.equal("700", p:read("*l"))
      p:close()
      -- the same ref for another order: refused, nothing sent
      r = smm("add --service 1 --link https://x.example/other --quantity 100 --yes --ref shop-1")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("names another order", 1, true), r.err)
      assert.equal(1, adds())
      -- without --ref: a generated ref, printed, and the order is in the book
      r = smm("add --service 1 --link https://x.example/b --quantity 100 --yes --json")
      assert.equal(0, r.code, r.err)
      local ref = cli.json(r.out).ref
      assert.truthy(ref:find("^auto%-"), ref)
      r = smm("orders --ref " .. ref .. " --json")
      assert.equal(1, #cli.json(r.out))
    end)

    it("a ref in doubt: exit 6, nothing sent, until smm doubt settles it", function()
      sb:fault("reset_before_read", { action = "add" }) -- the panel never acted on it
      local r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes --ref d-1")
      assert.equal(4, r.code, r.err)
      assert.truthy(r.err:find("smm doubt d-1", 1, true), r.err)
      local sent = adds()
      r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes --ref d-1")
      assert.equal(6, r.code, r.err)
      assert.truthy(r.err:find("in doubt", 1, true) and r.err:find("nothing was sent", 1, true), r.err)
      assert.equal(sent, adds())
      r = smm("doubt --json")
      local list = cli.json(r.out)
      assert.equal(1, #list)
      assert.equal("d-1", list[1].ref)
      assert.equal("in_doubt", list[1].state)
      r = smm("doubt d-1 --not-placed")
      assert.equal(0, r.code, r.err)
      r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes --ref d-1")
      assert.equal(0, r.code, r.err)
      assert.equal(1, sb:stats().orders)
      assert.equal(0, #cli.json(smm("doubt --json").out))
    end)
  end)

  describe("smm batch", function()
    it("a re-run sends nothing already placed; a ref column names the rows", function()
      cli.write_file(dir .. "/orders.csv", csv(3))
      local r = smm("batch orders.csv --yes")
      assert.equal(0, r.code, r.err)
      assert.equal(3, adds())
      r = smm("batch orders.csv --yes")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("3 placed earlier", 1, true), r.out)
      assert.equal(3, adds())
      -- the refs: the file's path hash and the line, the same in the result CSV and the book
      local result = cli.read_file(dir .. "/orders.result.csv")
      local ref = result:match("\r\n2,[^\r\n]*,(csv:%x+:2)\r\n")
      assert.truthy(ref, result)
      assert.equal(1, #cli.json(smm("orders --ref " .. ref .. " --json").out))

      cli.write_file(dir .. "/named.csv", "ref,service,link,quantity\nA-1,1,https://x.example/n1,100\n" ..
        "A-2,1,https://x.example/n2,100\n")
      r = smm("batch named.csv --yes --json")
      assert.equal(0, r.code, r.err)
      assert.equal("A-1", cli.json(r.out).rows[1].ref)
      r = smm("add --service 1 --link https://x.example/n2 --quantity 100 --yes --ref A-2")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("placed earlier", 1, true))
      assert.equal(5, adds())
      cli.write_file(dir .. "/dup.csv", "ref,service,link,quantity\nB,1,https://x.example/d1,100\n" ..
        "B,1,https://x.example/d2,100\n")
      r = smm("batch dup.csv --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("dup.csv:3: the ref 'B' is the ref of line 2 too", 1, true), r.err)
      -- a row changed under a ref the book has: refused, nothing sent
      cli.write_file(dir .. "/orders.csv", csv(3):gsub("r2,100", "r2,200"))
      r = smm("batch orders.csv --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("orders.csv:3: the row changed", 1, true), r.err)
      assert.equal(5, adds())
    end)

    it("--concurrency 8 of 200 rows: 200 orders, each recorded with its id", function()
      cli.write_file(dir .. "/big.csv", csv(200, "c"))
      local r = smm("batch big.csv --yes --concurrency 8 --json --book " .. book_url())
      assert.equal(0, r.code, r.err)
      assert.equal(200, cli.json(r.out).placed)
      assert.equal(200, sb:stats().orders)
      assert.equal(200, adds())
      local book = open_book()
      local id_of = {}
      for _, o in ipairs(sb:orders()) do id_of[o.link] = o.id end
      local rows = assert(book:orders{ panel = sb.url })
      assert.equal(200, #rows)
      for _, row in ipairs(rows) do
        assert.equal("placed", row.state)
        assert.equal(id_of[row.link], row.order_id)
      end
      book:close()
      for _, c in pairs(links_placed()) do assert.equal(1, c) end
    end)

    for _, concurrency in ipairs{ 1, 4 } do
      it("killed with SIGKILL mid-batch (--concurrency " .. concurrency .. "): every order sent has its " ..
        "intent in the book; the re-run sends no duplicate, the rows in flight are in doubt", function()
        local rows = 12
        cli.write_file(dir .. "/orders.csv", csv(rows, "k"))
        sb:config{ latency = 250 }
        -- the book made before the batch starts: opening it while the batch writes (the
        -- migrations check takes the write lock) could miss the whole run on a loaded machine
        local book = assert(smm_lib.book.open(book_url()))
        local pid = cli.spawn("batch orders.csv --yes --concurrency " .. concurrency .. " --book " ..
          book_url(), { cwd = dir, env = vars })
        local killed = wait_for(function()
          local counts = book:counts()
          if counts and counts.placed >= concurrency and counts.sending >= 1 and sb:stats().in_flight >= 1 then
            os.execute("kill -9 " .. pid)
            return true
          end
          return false
        end, 30)
        assert.is_true(killed, "the kill did not land mid-send")
        assert.is_true(wait_for(function() return not running(pid) end, 10))
        sb:config{ latency = 0 }
        cli.sleep(0.4) -- the panel finishes the adds it was busy with
        -- the order never sent without its intent: every order on the panel has its row
        local by_link = {}
        for _, row in ipairs(assert(book:orders{})) do by_link[row.link] = row end
        for _, o in ipairs(sb:orders()) do
          assert.truthy(by_link[o.link], o.link .. " was sent without an intent in the book")
        end
        local in_flight = assert(book:doubt())
        -- the group in flight, and the next one, claimed while the first travelled
        assert.truthy(#in_flight >= 1 and #in_flight <= 2 * concurrency, #in_flight .. " rows in doubt")
        book:close()

        local r = smm("batch orders.csv --yes --book " .. book_url())
        assert.equal(4, r.code, r.err)
        assert.truthy(r.err:find("in doubt (the add may have been placed)", 1, true), r.err)
        for link, c in pairs(links_placed()) do assert.equal(1, c, link .. " placed twice") end
        -- every row sent once, except those of the group claimed while the one in flight
        -- travelled (in doubt too: never sent, as the panel shows)
        local placed = sb:stats().orders
        assert.is_true(placed <= rows and placed >= rows - concurrency, placed .. " of " .. rows .. " placed")
        local sends = adds()
        r = smm("batch orders.csv --yes --book " .. book_url()) -- again: nothing sent, still in doubt
        assert.equal(4, r.code)
        assert.equal(sends, adds())

        -- the user looks each ref up on the panel and settles it: placed as that order, or not placed
        local id_of = {}
        for _, o in ipairs(sb:orders()) do id_of[o.link] = string.format("%d", o.id) end
        for _, row in ipairs(cli.json(smm("doubt --json --book " .. book_url()).out)) do
          r = smm("doubt " .. row.ref .. " " .. (id_of[row.link] or "--not-placed") .. " --book " .. book_url())
          assert.equal(0, r.code, r.err)
        end
        r = smm("batch orders.csv --yes --book " .. book_url())
        assert.equal(0, r.code, r.err)
        assert.equal(rows, sb:stats().orders)
      end)
    end

    it("a batch journaled by an older smm is imported into the book and resumed", function()
      local text = csv(5, "j")
      cli.write_file(dir .. "/orders.csv", text)
      local rows = assert(require("smm.cli.batch").rows(text))
      -- lines 2 and 3 reached the panel under the old smm: 2 answered, 3 lost in flight
      local client = env.client(sb)
      local placed = assert(client:add(rows[1].order))
      assert(client:add(rows[2].order))
      client:close()
      local lines = {
        string.format('{"t":"open","csv":"orders.csv","panel":"%s","at":1}', sb.url),
        string.format('{"t":"intent","line":2,"hash":"%s","at":1}', rows[1].hash),
        string.format('{"t":"done","line":2,"hash":"%s","order":%d,"price":"0.09","at":1}', rows[1].hash,
          placed.order),
        string.format('{"t":"intent","line":3,"hash":"%s","at":1}', rows[2].hash),
        string.format('{"t":"intent","line":4,"hash":"%s","at":1}', rows[3].hash),
        string.format('{"t":"failed","line":4,"hash":"%s","error":"Not enough funds","at":1}', rows[3].hash),
      }
      cli.write_file(dir .. "/orders.csv.journal", table.concat(lines, "\n") .. "\n")
      local r = smm("batch orders.csv --yes")
      assert.equal(4, r.code, r.err) -- line 3 in doubt
      assert.truthy((r.out .. r.err):find("imported the old journal", 1, true), r.out .. r.err)
      assert.is_nil(io.open(dir .. "/orders.csv.journal"))
      assert.truthy(io.open(dir .. "/orders.csv.journal.imported"))
      assert.equal(5, sb:stats().orders) -- 2 before, lines 4, 5 and 6 now
      for link, c in pairs(links_placed()) do assert.equal(1, c, link .. " placed twice") end
      local doubt = cli.json(smm("doubt --json").out)
      assert.equal(1, #doubt)
      assert.equal("https://x.example/j2", doubt[1].link)
      local id
      for _, o in ipairs(sb:orders()) do if o.link == "https://x.example/j2" then id = o.id end end
      assert.equal(0, smm("doubt " .. doubt[1].ref .. " " .. string.format("%d", id)).code)
      r = smm("batch orders.csv --yes --json")
      assert.equal(0, r.code, r.err)
      assert.equal(5, cli.json(r.out).done)
      assert.equal(5, sb:stats().orders)
      local got = cli.json(smm("orders --json").out)
      local line2
      for _, o in ipairs(got) do if o.link == "https://x.example/j1" then line2 = o end end
      assert.equal(placed.order, line2.order)
    end)
  end)

  describe("orders, doubt, report and sync", function()
    it("sync --once follows an order to its new status; orders and report show it, --json parses", function()
      for i = 1, 3 do
        local r = smm("add --service 1 --link https://x.example/s" .. i .. " --quantity 100 --yes --ref s-" .. i)
        assert.equal(0, r.code, r.err)
      end
      sb:advance(50) -- the panel moves the orders on
      -- time passes for the book: the orders are due for a check
      local book = assert(smm_lib.book.open("sqlite:" .. dir .. "/data/smm/orders.db"))
      require("smm.book").connections[book].db:run("UPDATE orders SET next_check = 0")
      book:close()
      local r = smm("sync --once")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("round 1: checked", 1, true), r.out)
      local list = cli.json(smm("orders --json --ref s-2").out)
      assert.equal(1, #list)
      local panel_status
      for _, o in ipairs(sb:orders()) do if o.link == "https://x.example/s2" then panel_status = o.status end end
      assert.equal(panel_status, list[1].status)
      assert.is_not_nil(list[1].status)
      -- orders: filters
      assert.equal(3, #cli.json(smm("orders --json --since 1d").out))
      assert.equal(0, #cli.json(smm("orders --json --since 2999-01-01").out))
      local r2 = smm("orders --since tomorrow")
      assert.equal(1, r2.code)
      assert.truthy(r2.err:find("--since", 1, true))
      r = smm("orders")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("^REF"), r.out)
      assert.truthy(r.out:find("s-3", 1, true))
      -- report: the exact sum of what the panel charged
      local total = "0"
      for _, o in ipairs(sb:orders()) do total = money.add(total, o.charge or "0") end
      local rep = cli.json(smm("report --json --by service").out)
      assert.equal(3, rep.total.orders)
      assert.equal(0, money.compare(money.format(total), rep.total.charge))
      assert.equal("1", rep.groups[1].key)
      r = smm("report")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("total", 1, true), r.out)
      assert.equal(1, smm("report --by week").code)
      assert.equal(0, #cli.json(smm("doubt --json").out))
      assert.truthy(smm("doubt").out:find("no orders in doubt", 1, true))
    end)

    it("the sync daemon ends promptly on SIGTERM", function()
      local pid = cli.spawn("sync --every 30", { cwd = dir, env = vars })
      assert.is_true(wait_for(function()
        return (cli.read_file(dir .. "/spawn.out") or ""):find("round 1", 1, true) ~= nil
      end, 20), cli.read_file(dir .. "/spawn.err"))
      os.execute("kill -TERM " .. pid)
      assert.is_true(wait_for(function() return not running(pid) end, 5), "still running 5 s after SIGTERM")
      assert.truthy(cli.read_file(dir .. "/spawn.out"):find("stopped by a signal", 1, true))
    end)

    it("sync refuses a webhook without a secret and a secret variable that is not set", function()
      local r = smm("sync --once --webhook http://127.0.0.1:9/hook")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("secret", 1, true), r.err)
      r = smm("sync --once --webhook http://127.0.0.1:9/hook --webhook-secret-env SMM_NO_SUCH_VAR")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("SMM_NO_SUCH_VAR", 1, true), r.err)
      assert.equal(0, env.count(sb))
    end)
  end)

  describe("a book that cannot be used is refused before anything is sent", function()
    it("a URL that does not parse, a folder that is not there: exit 5, the book named", function()
      local r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes " ..
        "--book 'mysql://u:s3cr3tpw@h/db'")
      assert.equal(5, r.code, r.err)
      assert.truthy(r.err:find("--book", 1, true), r.err)
      assert.is_nil(r.err:find("s3cr3tpw", 1, true))
      cli.write_file(dir .. "/orders.csv", csv(2))
      r = smm("batch orders.csv --yes --book sqlite:" .. dir .. "/no/such/folder/b.db")
      assert.equal(5, r.code, r.err)
      assert.truthy(r.err:find("sqlite:" .. dir .. "/no/such/folder/b.db", 1, true), r.err)
      os.execute("mkdir -p " .. cli.quote(dir .. "/xdg/smm"))
      cli.write_file(dir .. "/xdg/smm/config", "[profile default]\nbook = nope\n")
      r = smm("orders")
      assert.equal(5, r.code, r.err)
      assert.truthy(r.err:find("config key book", 1, true), r.err)
      assert.equal(0, adds()) -- (batch reads the service list to check its rows first: no add)
    end)

    describe("a read-only book", function()
      local mnt
      before_each(function()
        mnt = dir .. "/ro"
        os.execute("mkdir -p " .. cli.quote(mnt))
        assert.is_true(sh("mount -t tmpfs -o size=4m tmpfs " .. cli.quote(mnt)),
          "this spec needs to mount a small tmpfs (root)")
      end)
      after_each(function() os.execute("umount " .. cli.quote(mnt) .. " 2>/dev/null") end)

      it("add, batch and sync refuse it with exit 5, nothing sent", function()
        local url = "sqlite:" .. mnt .. "/book.db"
        local r = smm("add --service 1 --link https://x.example/a --quantity 100 --yes --ref ro-1 --book " .. url)
        assert.equal(0, r.code, r.err)
        assert.is_true(sh("mount -o remount,ro " .. cli.quote(mnt)))
        r = smm("add --service 1 --link https://x.example/b --quantity 100 --yes --book " .. url)
        assert.equal(5, r.code, r.err)
        assert.truthy(r.err:find(url, 1, true), r.err)
        assert.truthy(r.err:find("nothing was sent", 1, true), r.err)
        cli.write_file(dir .. "/orders.csv", csv(2))
        r = smm("batch orders.csv --yes --book " .. url)
        assert.equal(5, r.code, r.err)
        r = smm("sync --once --book " .. url)
        assert.equal(5, r.code, r.err)
        assert.equal(1, adds())
      end)
    end)
  end)

  describe("on PostgreSQL", function()
    local postgres = require "helpers.postgres"
    local pg

    setup(function()
      local ok, why = postgres.available()
      if ok then pg = postgres.start() else print("PostgreSQL cases skipped: " .. tostring(why)) end
    end)
    teardown(function() if pg then pg:stop() end end)

    it("--book postgresql://...: add --ref twice is one order; a wrong password is refused unshown", function()
      if not pg then return pending("no PostgreSQL") end
      local r = smm("add --service 1 --link https://x.example/pg --quantity 100 --yes --ref pg-1 --book " ..
        cli.quote(pg.url))
      assert.equal(0, r.code, r.err)
      r = smm("add --service 1 --link https://x.example/pg --quantity 100 --yes --ref pg-1 --book " ..
        cli.quote(pg.url))
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("placed earlier", 1, true), r.out)
      assert.equal(1, adds())
      assert.equal(1, #cli.json(smm("orders --json --book " .. cli.quote(pg.url)).out))

      local wrong = pg.url:gsub(":" .. pg.password .. "@", ":WrOnGpAsS@")
      r = smm("add --service 1 --link https://x.example/pg2 --quantity 100 --yes --book " .. cli.quote(wrong))
      assert.equal(5, r.code, r.err)
      assert.truthy(r.err:find("postgresql://" .. pg.user .. ":***@", 1, true), r.err)
      assert.is_nil(r.err:find("WrOnGpAsS", 1, true), r.err)
      assert.is_nil(r.err:find(pg.password, 1, true), r.err)
      -- PostgreSQL down: a closed port
      local down = pg.url:gsub(":" .. pg.port .. "/", ":" .. env.closed_port() .. "/")
      cli.write_file(dir .. "/orders.csv", csv(1))
      r = smm("batch orders.csv --yes --book " .. cli.quote(down))
      assert.equal(5, r.code, r.err)
      assert.is_nil(r.err:find(pg.password, 1, true), r.err)
      assert.equal(1, adds())
    end)
  end)
end)
