-- Issue 13, the command line over several panels: `smm panels`, `smm quote --product` and
-- `smm add --product` (routed to the cheapest able panel through the book). Real `smm`
-- processes, three real sandbox panels with their own keys and prices (a x3, b x1, c x2), and a
-- real SQLite book in a temporary folder, opened by the spec to look inside.
local env = require "helpers.env"
local cli = require "helpers.cli"
local smm_lib = require "smm"

describe("smm over several panels: panels, quote --product, add --product", function()
  local sbs, keys, dir, vars, path, n

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir, stdin = opts.stdin })
  end

  local function book_url() return "sqlite:" .. dir .. "/orders" .. n .. ".db" end

  local function write_config(extra_panels)
    path = dir .. "/config"
    cli.write_file(path, table.concat({
      "[profile default]",
      "book = " .. book_url(),
      "",
      "[panel a]",
      "url = " .. sbs.a.url,
      "key = " .. keys.a,
      "retries = 0",
      "",
      "[panel b]",
      "url = " .. sbs.b.url,
      "key = " .. keys.b,
      "retries = 0",
      "",
      "[panel c]",
      "url = " .. sbs.c.url,
      "key = " .. keys.c,
      "retries = 0",
      extra_panels or "",
      "[products]",
      "ig-followers = a:1, b:1, c:1",
      "ig-likes = b:3, c:3",
    }, "\n") .. "\n")
    os.execute("chmod 600 " .. cli.quote(path))
    vars.SMM_CONFIG = path
  end

  local function stats(name) return sbs[name]:stats() end
  local function adds(name) return stats(name).actions.add or 0 end

  setup(function()
    dir = cli.tmpdir()
    keys = { a = env.KEY .. "-a", b = env.KEY .. "-b", c = env.KEY .. "-c" }
    sbs = {
      a = env.sandbox{ key = keys.a, rates_for = keys.a .. "=3" },
      b = env.sandbox{ key = keys.b },
      c = env.sandbox{ key = keys.c, rates_for = keys.c .. "=2" },
    }
    vars = { XDG_CONFIG_HOME = dir .. "/xdg", HOME = dir, XDG_DATA_HOME = dir .. "/data" }
    n = 0
  end)

  teardown(function()
    for _, sb in pairs(sbs) do sb:stop() end
    local files = {}
    local p = io.popen("find " .. cli.quote(dir) .. " -type f")
    for f in p:lines() do
      if f ~= path then files[#files + 1] = f end -- (the config file holds the keys)
    end
    p:close()
    local leaked, where = cli.leaks(env.KEY, files)
    assert.is_false(leaked, "a key leaked into " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  before_each(function()
    for _, sb in pairs(sbs) do sb:reset() end
    n = n + 1 -- a new book for each test
    write_config()
  end)

  describe("smm panels", function()
    it("each panel: state, balance, number of services (table and --json), exit 0", function()
      local r = smm("panels")
      assert.equal(0, r.code, r.err)
      local lines = {}
      for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.truthy(lines[1]:find("^PANEL%s+STATE%s+BALANCE%s+SERVICES"), lines[1])
      assert.truthy(lines[2]:find("^a%s+up%s+100%.00 USD%s+12"), lines[2])
      assert.truthy(lines[3]:find("^b%s+up%s+100%.00 USD%s+12"), lines[3])
      assert.truthy(lines[4]:find("^c%s+up%s+100%.00 USD%s+12"), lines[4])
      r = smm("panels --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(3, #doc)
      assert.same({ "a", "b", "c" }, { doc[1].name, doc[2].name, doc[3].name })
      assert.equal("up", doc[2].state)
      assert.equal("100.00", doc[2].balance)
      assert.equal("USD", doc[2].currency)
      assert.equal(12, doc[2].services)
      assert.equal(sbs.b.url, doc[2].url)
      -- the balances were recorded in the book
      local book = assert(smm_lib.book.open(book_url()))
      local rows = assert(book:panels())
      book:close()
      assert.equal(3, #rows)
    end)

    it("a panel that does not answer: down with its error, the others listed, exit 3", function()
      write_config("\n[panel d]\nurl = http://127.0.0.1:" .. env.closed_port() .. "/api/v2\nkey = " ..
        env.KEY .. "-d\nretries = 0\n")
      local r = smm("panels --json")
      assert.equal(3, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(4, #doc)
      assert.equal("up", doc[1].state)
      assert.equal("d", doc[4].name)
      assert.is_nil(doc[4].balance)
      assert.truthy(doc[4].error:find("^network"), doc[4].error)
      r = smm("panels")
      assert.equal(3, r.code)
      assert.truthy(r.out:find("\nd%s+%a+%s+.*network"), r.out)
      -- failures in a row trip its breaker: down, until when, the failures counted (in the book)
      smm("panels --panel d")
      r = smm("panels --panel d --json")
      assert.equal(2, r.code) -- the one panel asked failed: its error's code
      doc = cli.json(r.out)
      assert.equal("down", doc[1].state)
      assert.truthy(doc[1].down_until:find("^%d%d%d%d%-%d%d%-%d%dT"), doc[1].down_until)
      assert.equal(4, doc[1].failures)
      assert.truthy(doc[1].last_error:find("network", 1, true), doc[1].last_error)
      r = smm("panels")
      assert.truthy(r.out:find("\nd%s+down%s"), r.out)
    end)

    it("--panel NAME: that panel only", function()
      local r = smm("panels --panel c --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(1, #doc)
      assert.equal("c", doc[1].name)
      assert.equal(0, stats("a").requests)
    end)

    it("no [panel NAME] sections: a usage error naming the file, exit 1", function()
      cli.write_file(path, "[profile default]\nurl = " .. sbs.a.url .. "\nkey = " .. keys.a .. "\n")
      local r = smm("panels")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("smm panels works over several panels: add [panel NAME] sections", 1, true), r.err)
    end)
  end)

  describe("smm quote --product", function()
    it("the candidates cheapest first, exact prices; --json", function()
      local r = smm("quote --product ig-followers --quantity 1000")
      assert.equal(0, r.code, r.err)
      local lines = {}
      for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.truthy(lines[1]:find("^PANEL%s+SERVICE%s+NAME%s+RATE%s+PRICE%s+MIN%s+MAX"), lines[1])
      assert.truthy(lines[2]:find("^b%s+1%s+Instagram Followers.-0%.90%s+0%.90%s+50%s+10000"), lines[2])
      assert.truthy(lines[3]:find("^c%s+1%s+.-1%.80%s+1%.80"), lines[3])
      assert.truthy(lines[4]:find("^a%s+1%s+.-2%.70%s+2%.70"), lines[4])
      r = smm("quote --product ig-followers --quantity 150 --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal("ig-followers", doc.product)
      assert.equal(150, doc.quantity)
      assert.same({ "b", "c", "a" }, { doc.candidates[1].panel, doc.candidates[2].panel, doc.candidates[3].panel })
      assert.same({ "0.135", "0.27", "0.405" },
        { doc.candidates[1].price, doc.candidates[2].price, doc.candidates[3].price })
      assert.same({}, doc.excluded)
      for _, name in ipairs{ "a", "b", "c" } do assert.equal(0, adds(name)) end
    end)

    it("the panels left out, with their reasons: avoided, over max_cost, no refill, below min", function()
      local r = smm("quote --product ig-followers --quantity 1000 --avoid c --max-cost 1.00 --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(1, #doc.candidates)
      assert.equal("b", doc.candidates[1].panel)
      local reasons = {}
      for _, e in ipairs(doc.excluded) do reasons[e.panel] = e.reason end
      assert.same({ a = "over_max_cost", c = "avoided" }, reasons)
      r = smm("quote --product ig-likes --quantity 100 --refill")
      assert.equal(1, r.code)
      assert.truthy(r.out:find("no panel can take 100 of ig-likes", 1, true), r.out)
      assert.truthy(r.out:find("LEFT OUT%s+SERVICE%s+REASON"), r.out)
      assert.truthy(r.out:find("\nb%s+3%s+no_refill"), r.out)
      assert.truthy(r.err:find("smm: no panel can take 100 of ig-likes", 1, true), r.err)
      r = smm("quote --product ig-followers --quantity 20 --json")
      assert.equal(1, r.code)
      doc = cli.json(r.out)
      assert.same({}, doc.candidates)
      assert.equal(3, #doc.excluded)
      assert.equal("below_min", doc.excluded[1].reason)
    end)

    it("usage errors: an unknown product, an unknown panel, --panel, no quantity; nothing asked", function()
      local cases = {
        { "quote --product ig-folowers --quantity 100",
          "no product 'ig-folowers' in " .. path .. " (products: ig-followers, ig-likes); did you mean " ..
          "'ig-followers'?" },
        { "quote --product ig-followers --quantity 100 --avoid z", "--avoid: no panel 'z' in " .. path },
        { "quote --product ig-followers --quantity 100 --prefer b,q", "--prefer: no panel 'q'" },
        { "quote --product ig-followers --quantity 100 --panel a", "--panel with --product" },
        { "quote --product ig-followers", "how many? (--quantity N)" },
        { "quote --product ig-followers --quantity 1.5", "option --quantity must be a whole number" },
        { "quote --product ig-followers --quantity 100 --max-cost abc", "option --max-cost must be a decimal" },
        { "quote 1 100 --product ig-followers --quantity 100", "takes no SERVICE QUANTITY" },
        { "quote --product ig-followers --quantity 100 --runs 3", "option --runs does not apply" },
      }
      for _, case in ipairs(cases) do
        local r = smm(case[1])
        assert.equal(1, r.code, case[1])
        assert.truthy(r.err:find(case[2], 1, true), case[1] .. ": " .. r.err)
      end
      for _, name in ipairs{ "a", "b", "c" } do assert.equal(0, stats(name).requests) end
    end)
  end)

  describe("smm add --product", function()
    local function route_of(ref)
      local book = assert(smm_lib.book.open(book_url()))
      local row = book:get(ref)
      book:close()
      return row
    end

    it("goes to the cheapest panel, through the book; the same ref again sends nothing", function()
      local r = smm("add --product ig-followers --link https://ig.example/shop --quantity 1000 --ref shop-1 --yes")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("order 1 placed on panel b (0.90), ref shop-1", 1, true), r.out)
      assert.truthy(r.out:find("panels    b: service 1, 0.90", 1, true), r.out)
      assert.same({ 0, 1, 0 }, { adds("a"), adds("b"), adds("c") })
      assert.equal(1, stats("b").orders)
      local row = route_of("shop-1")
      assert.equal("placed", row.state)
      assert.equal(1, row.order_id)
      assert.equal(sbs.b.url, row.panel)
      assert.equal("b", row.route.panel)
      assert.equal("ig-followers", row.route.product)
      r = smm("add --product ig-followers --link https://ig.example/shop --quantity 1000 --ref shop-1 --yes --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.is_true(doc.recorded)
      assert.equal("b", doc.panel)
      assert.equal(1, adds("b"))
      -- smm orders: the panel of each routed order; --panel NAME: that panel's orders only
      r = smm("orders")
      assert.truthy(r.out:find("^REF%s+ORDER%s+PANEL%s+STATE"), r.out)
      assert.truthy(r.out:find("\nshop%-1%s+1%s+b%s+placed"), r.out)
      r = smm("orders --panel b --json")
      assert.equal(0, r.code, r.err)
      doc = cli.json(r.out)
      assert.equal(1, #doc)
      assert.equal("shop-1", doc[1].ref)
      assert.equal("b", doc[1].route.panel)
      r = smm("orders --panel c --json")
      assert.equal(0, r.code, r.err)
      assert.same({}, cli.json(r.out))
      -- the same ref for another order: refused, nothing sent
      r = smm("add --product ig-followers --link https://ig.example/other --quantity 1000 --ref shop-1 --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("ref shop-1 names another order in the book", 1, true), r.err)
      assert.same({ 0, 1, 0 }, { adds("a"), adds("b"), adds("c") })
    end)

    it("--json: the order, its panel, price and route", function()
      local r = smm("add --product ig-followers --link https://ig.example/j --quantity 500 --ref j-1 --yes --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(1, doc.order)
      assert.equal("b", doc.panel)
      assert.equal("0.45", doc.price)
      assert.equal("j-1", doc.ref)
      assert.equal("ig-followers", doc.product)
      assert.equal("cheapest", doc.route.reason)
      assert.equal("", r.err)
    end)

    it("--avoid and --max-cost narrow the choice; none left: exit 1, nothing sent", function()
      local r = smm("add --product ig-followers --link https://ig.example/a --quantity 1000 --ref av-1 --avoid b " ..
        "--yes --json")
      assert.equal(0, r.code, r.err)
      assert.equal("c", cli.json(r.out).panel)
      assert.same({ 0, 0, 1 }, { adds("a"), adds("b"), adds("c") })
      r = smm("add --product ig-followers --link https://ig.example/m --quantity 1000 --ref mc-1 --max-cost 0.50 --yes")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("no panel can take 1000 of ig-followers: nothing was sent", 1, true), r.err)
      assert.same({ 0, 0, 1 }, { adds("a"), adds("b"), adds("c") })
      assert.is_nil(route_of("mc-1"))
    end)

    it("--prefer puts a dearer panel first: quoted first, placed there", function()
      local r = smm("quote --product ig-followers --quantity 1000 --prefer c,a --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.same({ "c", "a", "b" }, { doc.candidates[1].panel, doc.candidates[2].panel, doc.candidates[3].panel })
      r = smm("add --product ig-followers --link https://ig.example/p --quantity 1000 --ref pref-1 --prefer c " ..
        "--yes --json")
      assert.equal(0, r.code, r.err)
      assert.equal("c", cli.json(r.out).panel)
      assert.same({ 0, 0, 1 }, { adds("a"), adds("b"), adds("c") })
    end)

    it("the cheapest panel short of funds: refused there, placed with the next", function()
      sbs.b:config{ balance = "0.10" }
      local r = smm("add --product ig-followers --link https://ig.example/f --quantity 1000 --ref funds-1 --yes --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal("c", doc.panel)
      assert.equal("1.80", doc.price)
      assert.same({ 0, 1, 1 }, { adds("a"), adds("b"), adds("c") })
      assert.same({ 0, 0, 1 }, { stats("a").orders, stats("b").orders, stats("c").orders })
      local row = route_of("funds-1")
      assert.equal("c", row.route.panel)
      assert.equal("short_of_funds", row.route.passed_over[1].reason)
    end)

    it("every panel refuses for funds: each tried once, none placed it, exit 1, the book says failed", function()
      for _, name in ipairs{ "a", "b", "c" } do sbs[name]:config{ balance = "0.10" } end
      local r = smm("add --product ig-followers --link https://ig.example/n --quantity 1000 --ref none-1 --yes")
      assert.equal(1, r.code, r.err)
      assert.truthy(r.err:find("no panel could take this order of ig-followers", 1, true), r.err)
      assert.same({ 1, 1, 1 }, { adds("a"), adds("b"), adds("c") })
      assert.same({ 0, 0, 0 }, { stats("a").orders, stats("b").orders, stats("c").orders })
      local row = route_of("none-1")
      assert.truthy(row == nil or row.state == "failed", row and row.state)
      -- the balances are known now: a quote leaves every panel out as short of funds, nothing sent
      r = smm("quote --product ig-followers --quantity 1000 --json")
      assert.equal(1, r.code)
      for _, e in ipairs(cli.json(r.out).excluded) do assert.equal("short_of_funds", e.reason) end
      assert.same({ 1, 1, 1 }, { adds("a"), adds("b"), adds("c") })
    end)

    it("an ambiguous failure at the cheapest panel: exit 4, in doubt there, no other panel asked", function()
      sbs.b:fault("reset_after_read", { action = "add" })
      local r = smm("add --product ig-followers --link https://ig.example/d --quantity 1000 --ref doubt-1 --yes")
      assert.equal(4, r.code, r.err)
      assert.truthy(r.err:find("may have been placed on panel b", 1, true), r.err)
      assert.truthy(r.err:find("smm doubt doubt-1 ORDER_ID", 1, true), r.err)
      assert.same({ 0, 1, 0 }, { adds("a"), adds("b"), adds("c") })
      assert.equal(1, stats("b").orders) -- the panel did place it
      -- the same ref again: exit 6, nothing sent anywhere
      r = smm("add --product ig-followers --link https://ig.example/d --quantity 1000 --ref doubt-1 --yes")
      assert.equal(6, r.code, r.err)
      assert.truthy(r.err:find("ref doubt-1 is in doubt", 1, true), r.err)
      assert.same({ 0, 1, 0 }, { adds("a"), adds("b"), adds("c") })
    end)

    it("asks before spending: without --yes and no terminal, refused, nothing sent", function()
      local r = smm("add --product ig-followers --link https://ig.example/y --quantity 1000 --ref y-1")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("refusing to spend money without --yes", 1, true), r.err)
      assert.same({ 0, 0, 0 }, { adds("a"), adds("b"), adds("c") })
    end)

    it("smm sync follows the routed orders of every panel; --panel NAME one panel's", function()
      assert.equal(0, smm("add --product ig-followers --link https://ig.example/s1 --quantity 1000 --ref s-1 " ..
        "--yes").code)
      assert.equal(0, smm("add --product ig-followers --link https://ig.example/s2 --quantity 1000 --ref s-2 " ..
        "--avoid b --yes").code)
      -- time passes for the book: the orders are due for a check
      local function due()
        local book = assert(smm_lib.book.open(book_url()))
        require("smm.book").connections[book].db:run("UPDATE orders SET next_check = 0")
        book:close()
      end
      due()
      local r = smm("sync --once --panel c --json")
      assert.equal(0, r.code, r.err)
      assert.equal(1, cli.json(r.out).sync.checked)
      assert.equal(0, stats("b").actions.status or 0)
      due()
      r = smm("sync --once --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(2, doc.sync.checked) -- b's order and c's
      assert.equal(1, stats("b").actions.status)
      assert.equal(2, stats("c").actions.status)
      assert.equal(0, stats("a").actions.status or 0)
      assert.truthy(doc.sync.next_due > 1e9 and doc.sync.next_due < 1e10, doc.sync.next_due) -- a time, not a sum
      local s1, s2 = route_of("s-1"), route_of("s-2")
      assert.equal("Pending", s1.status)        -- b's order: asked once
      assert.equal("In progress", s2.status)    -- c's: asked twice (the sandbox moves on each time)
      -- a panel that does not answer: the round failed (exit 2, as with one panel), the other
      -- panel's order recorded all the same
      sbs.b:fault("html503", { action = "status", times = 5 })
      due()
      r = smm("sync --once --json")
      assert.equal(2, r.code, r.err)
      assert.truthy(r.err:find("round 1 failed: smm http error (status) [HTTP 503]", 1, true), r.err)
      doc = cli.json(r.out)
      assert.truthy(doc.error:find("HTTP 503", 1, true), doc.error)
      assert.truthy(doc.sync.checked >= 1, doc.sync.checked)
      assert.equal(3, stats("c").actions.status)
      assert.equal("Completed", route_of("s-2").status)
      assert.equal("Pending", route_of("s-1").status)
    end)

    it("usage errors: no link, --service with --product, --panel; nothing sent", function()
      for _, case in ipairs{
        { "add --product ig-followers --quantity 100 --yes", "which link? (--link URL)" },
        { "add --product ig-followers --service 1 --link x --quantity 100 --yes", "option --service does not apply" },
        { "add --product ig-followers --link x --quantity 100 --panel b --yes", "--panel with --product" },
        { "add --product nope --link x --quantity 100 --yes", "no product 'nope'" },
      } do
        local r = smm(case[1])
        assert.equal(1, r.code, case[1])
        assert.truthy(r.err:find(case[2], 1, true), case[1] .. ": " .. r.err)
      end
      for _, name in ipairs{ "a", "b", "c" } do assert.equal(0, adds(name)) end
    end)
  end)
end)
