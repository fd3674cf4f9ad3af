-- The order book across processes, on SQLite and PostgreSQL: a process killed with SIGKILL
-- between its intent and the answer leaves its order in doubt and never sent again; eight
-- processes adding the same 100 refs at once (opening a new book at once, too) place exactly
-- 100 orders. The counts observed are printed.
local env = require "helpers.env"
local books = require "helpers.book"
local cli = require "helpers.cli"
local socket = require "socket"

local CHILD = books.root .. "/spec/helpers/book_child.lua"
local PROCESSES, REFS = 8, 100

local function succeeds(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- waits up to `seconds` for check() to be true
local function eventually(seconds, check)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    if check() then return true end
    socket.sleep(0.02)
  end
  return check()
end

for _, engine in ipairs(books.ENGINES) do
  describe("the order book across processes on " .. engine .. " #book", function()
    local sb, store

    setup(function()
      sb = env.sandbox()
      sb:config{ balance = "1000000.00" }
      store = books.store(engine)
    end)

    teardown(function()
      if store then store:close() end
      if sb then sb:stop() end
    end)

    it("leaves an order whose sender was killed (SIGKILL) mid-request in doubt, never sent again", function()
      local book = store:open()
      local url = store.url
      local before = sb:stats()
      sb:fault("slow", { action = "add", delay = 4000 })
      local out = store.dir .. "/killed.out"
      local p = assert(io.popen("sh -c " .. cli.quote(books.child(CHILD, { url, sb.url, env.KEY, 1, 1 }) ..
        " >" .. cli.quote(out) .. " 2>&1 & echo $!")))
      local pid = tonumber(p:read("*l"))
      p:close()
      assert.is_number(pid)
      assert.is_true(eventually(20, function() return env.count(sb, "add") > (before.actions.add or 0) end),
        "the child's add never reached the panel")
      local row = book:get("race-1")
      assert.equal("sending", row and row.state)
      assert(succeeds("kill -9 " .. pid))
      assert.is_true(eventually(10, function() return not succeeds("kill -0 " .. pid .. " 2>/dev/null") end))
      -- the panel placed it (the slow fault performs the add); the answer never reached the book
      assert.is_true(eventually(10, function() return sb:stats().orders == (before.orders or 0) + 1 end))
      local again = io.popen(books.child(CHILD, { url, sb.url, env.KEY, 1, 1 }) .. " 2>&1")
      local said = again:read("*a")
      again:close()
      local after = sb:stats()
      print(("\n[%s] killed mid-request: sandbox adds %d -> %d, orders %d -> %d; row %s; rerun: %s"):format(
        engine, before.actions.add or 0, after.actions.add, before.orders, after.orders,
        book:get("race-1").state, (said:gsub("%s+$", ""))))
      assert.matches("placed=0 recorded=0 in_doubt=1 failed=0", said, 1, true)
      assert.equal((before.actions.add or 0) + 1, after.actions.add)
      assert.equal(before.orders + 1, after.orders)
      assert.equal("sending", book:get("race-1").state)
      assert.equal(1, #assert(book:doubt()))
      book:close()
    end)

    it("places exactly " .. REFS .. " orders when " .. PROCESSES .. " processes add the same " .. REFS ..
      " refs at once", function()
      local url = store:fresh_url() -- SQLite: a file none of them has made yet
      local before = sb:stats()
      local dir = store.dir .. "/race"
      os.execute("rm -rf " .. cli.quote(dir) .. " && mkdir -p " .. cli.quote(dir))
      local go = dir .. "/go"
      local commands = {}
      for i = 1, PROCESSES do
        commands[i] = books.child(CHILD, { url, sb.url, env.KEY, 1, REFS, go, dir .. "/ready" .. i }) ..
          " >" .. cli.quote(dir .. "/out" .. i) .. " 2>&1 &"
      end
      local script = table.concat(commands, "\n") .. "\nwait\ntouch " .. cli.quote(dir .. "/done")
      os.execute("sh -c " .. cli.quote(script) .. " >/dev/null 2>&1 &")
      assert.is_true(eventually(30, function()
        for i = 1, PROCESSES do if not exists(dir .. "/ready" .. i) then return false end end
        return true
      end), "the children did not start")
      cli.write_file(go, "go")
      assert.is_true(eventually(120, function() return exists(dir .. "/done") end), "the children did not end")
      local totals = { placed = 0, recorded = 0, in_doubt = 0, failed = 0 }
      local lines = {}
      for i = 1, PROCESSES do
        local text = cli.read_file(dir .. "/out" .. i) or ""
        lines[#lines + 1] = "  process " .. i .. ": " .. (text:gsub("%s+$", ""):gsub("\n", "\n    "))
        for name, n in text:gmatch("([%a_]+)=(%d+)") do totals[name] = (totals[name] or 0) + tonumber(n) end
      end
      local after = sb:stats()
      local book = assert(require("smm").book.open(url))
      local placed = #assert(book:orders{ state = "placed" })
      local all = #assert(book:orders{})
      book:close()
      print(("\n[%s] %d processes x %d refs: sandbox add requests %d, orders %d; book rows %d (placed %d);" ..
        " answers placed=%d recorded=%d in_doubt=%d failed=%d\n%s"):format(engine, PROCESSES, REFS,
        after.actions.add - (before.actions.add or 0), after.orders - before.orders, all, placed,
        totals.placed, totals.recorded, totals.in_doubt, totals.failed, table.concat(lines, "\n")))
      assert.equal(REFS, after.orders - before.orders)
      assert.equal(REFS, after.actions.add - (before.actions.add or 0))
      assert.equal(REFS, totals.placed)
      assert.equal(0, totals.failed)
      assert.equal(PROCESSES * REFS, totals.placed + totals.recorded + totals.in_doubt)
      assert.equal(REFS, all)
      assert.equal(REFS, placed)
    end)
  end)
end
