-- `smm batch FILE.csv` against the sandbox: rows checked before anything is sent, exact totals,
-- an order book that survives kill -9 with zero duplicate and zero lost orders, rows in doubt
-- never re-sent silently, result CSV, and the key in no file and no output.
local env = require "helpers.env"
local cli = require "helpers.cli"
local smm_lib = require "smm"

describe("smm batch", function()
  local sb, vars, root, dir, n

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir })
  end

  local function adds() return env.count(sb, "add") end

  -- A CSV of `count` default orders with distinct links (header + rows, CRLF).
  local function default_csv(count, prefix)
    local lines = { "service,link,quantity" }
    for i = 1, count do lines[#lines + 1] = string.format("1,https://x.example/%s%d,100", prefix or "r",
      i) end
    return table.concat(lines, "\r\n") .. "\r\n"
  end

  local function links_placed()
    local count = {}
    for _, o in ipairs(sb:orders()) do count[o.link] = (count[o.link] or 0) + 1 end
    return count
  end

  setup(function()
    sb = env.sandbox()
    root = cli.tmpdir()
    vars = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, XDG_CONFIG_HOME = root .. "/xdg" }
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
    vars.XDG_DATA_HOME = dir .. "/data" -- a new sandbox, a new order book
  end)

  it("checks every row, prices the total exactly, --dry-run sends nothing", function()
    cli.write_file(dir .. "/orders.csv", table.concat({
      "service,link,quantity,runs,interval,comments,username,min,max,posts,answer_number,groups,# note",
      "1,https://x.example/a,100,,,,,,,,,,plain",
      "3,https://x.example/b,500,2,10,,,,,,,,drip-feed",
      "2,https://x.example/c,,,,\"one, with comma|two|3|4|5|6|7|8|9|10\",,,,,,,",
      "2,https://x.example/d,,,,\"he said \"\"hi\"\"\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj\",,,,,,,",
      "7,,,,,,bob,100,200,3,,,",
      "10,https://x.example/poll,200,,,,,,,,2,,",
      "11,https://t.me/x,20,,,,,,,,,g1|g2,",
      "6,https://x.example/pkg,,,,,,,,,,,",
    }, "\r\n") .. "\r\n")
    local r = smm("batch orders.csv --dry-run --json")
    assert.equal(0, r.code, r.err)
    local plan = cli.json(r.out)
    assert.equal(8, plan.rows)
    assert.equal(8, plan.to_send)
    -- 0.09 + 0.35 + 0.08 + 0.08 + 0.24 + 0.36 + 0.095 + 12.50
    assert.equal("13.795", plan.total)
    assert.equal(0, adds())

    r = smm("batch orders.csv --yes")
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("placed 8 orders for 13.795 USD", 1, true))
    local orders = sb:orders()
    assert.equal(8, #orders)
    assert.equal("one, with comma\ntwo\n3\n4\n5\n6\n7\n8\n9\n10", orders[3].comments)
    assert.equal('he said "hi"\nb\nc\nd\ne\nf\ng\nh\ni\nj', orders[4].comments)
    assert.equal("bob", orders[5].username)
    assert.equal("g1\ng2", orders[7].groups)
    assert.equal("86.205", sb:stats().balance)

    local result = cli.read_file(dir .. "/orders.result.csv")
    assert.truthy(result:find("^line,service,link,order,price,status,error,ref\r\n"))
    assert.truthy(result:find("\r\n5,2,https://x.example/d," .. string.format("%d", orders[4].id) ..
      ",0.08,placed,,csv:", 1, true))
    assert.truthy(result:find("@bob", 1, true))

    -- the same command again: everything is done, nothing is sent
    r = smm("batch orders.csv --yes")
    assert.equal(0, r.code)
    assert.equal(8, adds())
    assert.truthy(r.out:find("8 placed earlier", 1, true))
  end)

  it("a malformed row is reported with its line number and nothing is sent", function()
    cli.write_file(dir .. "/bad.csv", table.concat({
      "service,link,quantity",
      "1,https://x.example/a,100",
      "1,https://x.example/b,10",        -- below the minimum
      "\"1\",\"https://x.example/c\",abc", -- not a number
      "99,https://x.example/d,100",      -- no such service
      "6,https://x.example/e,,extra",    -- more fields than the header
    }, "\n") .. "\n")
    local r = smm("batch bad.csv --yes")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("smm: bad.csv:6: 4 fields, but the header has 3", 1, true), r.err)
    cli.write_file(dir .. "/bad.csv", table.concat({
      "service,link,quantity",
      "1,https://x.example/a,100",
      "1,https://x.example/b,10",
      "\"1\",\"https://x.example/c\",abc",
      "99,https://x.example/d,100",
    }, "\n") .. "\n")
    r = smm("batch bad.csv --yes")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("smm: bad.csv:3: 'quantity' is 10, below the minimum 50", 1, true), r.err)
    assert.truthy(r.err:find("smm: bad.csv:4: 'quantity' must be a whole number", 1, true), r.err)
    assert.truthy(r.err:find("smm: bad.csv:5: 'service' 99 is not in the panel's service list", 1, true),
      r.err)
    assert.truthy(r.err:find("3 bad rows in bad.csv: nothing was sent", 1, true))
    cli.write_file(dir .. "/quote.csv",
      "service,link,quantity\n1,https://x.example/a,100\n1,\"https://x\"y,100\n")
    r = smm("batch quote.csv --yes")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("smm: quote.csv:3: text after a closing quote", 1, true), r.err)
    assert.equal(0, adds())
    assert.is_nil(io.open(vars.XDG_DATA_HOME .. "/smm/orders.db")) -- refused before the book was opened
  end)

  it("refuses when the balance is short, unless --force; refuses without --yes off a terminal", function()
    cli.write_file(dir .. "/orders.csv", default_csv(3))
    sb:config{ balance = "0.20" }
    local r = smm("batch orders.csv --yes")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("short by 0.07", 1, true), r.err)
    r = smm("batch orders.csv --force")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("without --yes", 1, true))
    assert.equal(0, adds())
    r = smm("batch orders.csv --yes --force")
    assert.equal(3, r.code) -- two placed, the third refused by the panel: partial
    assert.equal(2, sb:stats().orders)
    local result = cli.read_file(dir .. "/orders.result.csv")
    assert.truthy(result:find("failed,Not enough funds on balance", 1, true))
    -- the panel stops refusing: the failed row (never placed) is sent on resume
    sb:config{ balance = "10.00" }
    r = smm("batch orders.csv --yes --json")
    assert.equal(0, r.code, r.err)
    assert.equal(1, cli.json(r.out).placed)
    assert.equal(3, sb:stats().orders)
  end)

  it("survives kill -9 mid-run: resumed with zero duplicates and zero lost rows", function()
    local rows = 8
    cli.write_file(dir .. "/orders.csv", default_csv(rows, "k"))
    sb:config{ latency = 200 }
    local url = "sqlite:" .. dir .. "/book.db"
    local pid = cli.spawn("batch orders.csv --yes --book " .. url, { cwd = dir, env = vars })
    -- kill when at least two rows are placed and the next add is inside the panel
    local killed_in_flight, book = false, nil
    for _ = 1, 1000 do
      cli.sleep(0.01)
      book = book or (io.open(dir .. "/book.db") and smm_lib.book.open(url))
      local counts = book and book:counts()
      if counts and counts.placed >= 2 and counts.sending >= 1 and sb:stats().in_flight >= 1 then
        os.execute("kill -9 " .. pid)
        killed_in_flight = true
        break
      end
    end
    if book then book:close() end
    assert.is_true(killed_in_flight, "the kill did not land mid-send")
    while cli.alive(pid) do cli.sleep(0.01) end
    sb:config{ latency = 0 }
    cli.sleep(0.3) -- the panel finishes the add it was busy with
    local placed_before = sb:stats().orders
    assert.is_true(placed_before >= 3 and placed_before < rows)

    -- resume: the row whose add was in flight is in doubt, listed, and not sent again; so is the
    -- row claimed ahead of it while it travelled, if the kill came after that claim (client:batch's
    -- window: with --concurrency 1, at most 2 rows claimed and unanswered)
    local r = smm("batch orders.csv --yes --book " .. url)
    assert.equal(4, r.code, r.err)
    local listed = r.err:match("in doubt %(the add may have been placed%): lines? ([^.]+)%.")
    assert.is_string(listed, r.err)
    local doubt = {}
    for line, ref in listed:gmatch("(%d+) %((csv:%x+:%d+)%)") do
      doubt[#doubt + 1] = { line = tonumber(line), ref = ref,
                            link = string.format("https://x.example/k%d", line - 1) }
    end
    assert.is_true(#doubt == 1 or #doubt == 2, r.err)
    local function on_panel(link)
      for _, o in ipairs(sb:orders()) do
        if o.link == link then return tonumber(string.format("%d", o.id)) end
      end
    end
    local count = links_placed()
    for link, c in pairs(count) do assert.equal(1, c, link .. " placed twice") end
    -- every row placed once but the rows in doubt whose add never reached the panel
    local unsent = 0
    for _, d in ipairs(doubt) do if not on_panel(d.link) then unsent = unsent + 1 end end
    assert.is_true(unsent < #doubt, "the add in flight reached the panel")
    assert.equal(rows - unsent, sb:stats().orders)
    -- the same command again sends nothing and still lists the rows
    r = smm("batch orders.csv --yes --book " .. url)
    assert.equal(4, r.code)
    assert.equal(rows - unsent, sb:stats().orders)
    local result = cli.read_file(dir .. "/orders.result.csv")
    for _, d in ipairs(doubt) do
      assert.truthy(result:find("\r\n" .. d.line .. ",1,https://x.example/k%d+,,,in doubt,"), result)
    end

    -- the user checks the panel: a row found there is settled with its order id, one not there as
    -- not placed; the next run sends only the latter
    for _, d in ipairs(doubt) do
      d.id = on_panel(d.link)
      local settle = d.id and string.format("%d", d.id) or "--not-placed"
      r = smm("doubt " .. d.ref .. " " .. settle .. " --book " .. url)
      assert.equal(0, r.code, r.err)
    end
    r = smm("batch orders.csv --yes --book " .. url)
    assert.equal(0, r.code, r.err)
    assert.equal(rows, sb:stats().orders)
    for link, c in pairs(links_placed()) do assert.equal(1, c, link .. " placed twice") end
    result = cli.read_file(dir .. "/orders.result.csv")
    for _, d in ipairs(doubt) do
      local id = d.id or on_panel(d.link)
      assert.truthy(result:find("\r\n" .. d.line .. ",1," .. d.link .. "," ..
        string.format("%d", id) .. ",0.09,placed,", 1, true), result)
    end
  end)

  it("an ambiguous add stops the run; the row is re-sent only once smm doubt says it was not placed", function()
    cli.write_file(dir .. "/orders.csv", default_csv(4, "a"))
    sb:fault("reset_before_read", { action = "add" }) -- the panel never acted on it
    local r = smm("batch orders.csv --yes")
    assert.equal(4, r.code)
    assert.truthy(r.err:find("stopped: ", 1, true))
    assert.truthy(r.err:find("line 2", 1, true))
    assert.equal(0, sb:stats().orders)
    r = smm("batch orders.csv --yes") -- the others are sent, the doubtful row is not
    assert.equal(4, r.code)
    assert.equal(3, sb:stats().orders)
    assert.is_nil(links_placed()["https://x.example/a1"])
    local ref = r.err:match("line 2 %((csv:%x+:2)%)")
    assert.truthy(ref, r.err)
    r = smm("doubt " .. ref:gsub(":2$", ":3") .. " --not-placed")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("not in doubt", 1, true))
    r = smm("doubt " .. ref .. " --not-placed")
    assert.equal(0, r.code, r.err)
    r = smm("batch orders.csv --yes --json")
    assert.equal(0, r.code, r.err)
    assert.equal(1, cli.json(r.out).placed)
    assert.equal(4, sb:stats().orders)
    for _, c in pairs(links_placed()) do assert.equal(1, c) end
  end)

  it("refuses to resume when the CSV changed under the refs the book has", function()
    cli.write_file(dir .. "/orders.csv", default_csv(3))
    assert.equal(0, smm("batch orders.csv --yes").code)
    cli.write_file(dir .. "/orders.csv", default_csv(3):gsub("r2,100", "r2,200"))
    local r = smm("batch orders.csv --yes")
    assert.equal(1, r.code)
    assert.truthy(r.err:find("orders.csv:3: the row changed", 1, true), r.err)
    assert.equal(3, adds())
    -- rows appended at the end are new rows: fine
    cli.write_file(dir .. "/orders.csv", default_csv(4))
    r = smm("batch orders.csv --yes")
    assert.equal(0, r.code, r.err)
    assert.equal(4, sb:stats().orders)
  end)

  it("--wait follows every placed order to the end", function()
    cli.write_file(dir .. "/orders.csv", default_csv(3, "w"))
    local r = smm("batch orders.csv --yes --wait --every 0.02")
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("3 orders: 3 Completed; charged 0.27", 1, true), r.out)
    r = smm("batch orders.csv --yes --wait --every 0.02 --json")
    local list = cli.json(r.out)
    assert.equal(3, #list)
    assert.equal("Completed", list[1].status)
  end)
end)
