-- The property that makes failover safe, on SQLite and PostgreSQL: every fault the sandbox can
-- inject (lua/smm/sandbox/faults.lua, the fault matrix of spec 40) and a panel that is down,
-- each against the first (cheapest) panel of three for one router:add with a fresh ref. Then,
-- from the sandboxes' own order lists and counters, never from the client's word:
--   * no ref was ever placed on two panels, nor twice on one;
--   * every ambiguous outcome left the order in doubt with the first panel, and no other panel
--     received an add for it;
--   * every outcome that proves nothing was placed went on to the next panel, which placed it;
--   * the same ref again sends nothing anywhere (answered from the book).
local env = require "helpers.env"
local books = require "helpers.book"
local sandbox = require "helpers.sandbox"
local rt = require "helpers.router"

local CLIENT = { retries = 2, retry_base = 1, timeout = 300, max_body = 4096 }
local PARAMS = { slow = { delay = 1500 }, big = { size = 100000 }, rate429 = { retry_after = 0 } }

-- every fault the sandbox knows, read from its own table (the sandbox's code runs on Lua 5.4
-- only, this spec on every Lua), and "down" (a closed port)
local FAULTS = {}
do
  local f = assert(io.open(books.root .. "/lua/smm/sandbox/faults.lua"))
  local text = f:read("*a")
  f:close()
  local block = assert(text:match("M%.PERFORMS = (%b{})"), "faults.lua has no PERFORMS table")
  for name in block:gmatch("([%w_]+) = [%a]+") do FAULTS[#FAULTS + 1] = name end
  assert(#FAULTS >= 14, "fewer faults than the matrix knows: " .. #FAULTS)
end
table.sort(FAULTS)
FAULTS[#FAULTS + 1] = "down"

local function links(sb)
  local out = {}
  for _, o in ipairs(sb:orders()) do out[o.link] = (out[o.link] or 0) + 1 end
  return out
end

-- why the route passed over panel `name`
local function placement_reason(route, name)
  for _, e in ipairs(route.passed_over or {}) do
    if e.panel == name then return e.reason end
  end
end

local function total_requests(sbs)
  local total = 0
  for _, name in ipairs(rt.NAMES) do total = total + sbs[name]:stats().requests end
  return total
end

for _, engine in ipairs(books.ENGINES) do
  describe("smm.router never orders twice, under every fault of the first panel, on " .. engine .. " #router",
    function()
      local sbs, store, book, router, outcomes

      setup(function()
        sbs = rt.start()
        store = books.store(engine)
        book = store:open()
        -- a high threshold: the breaker must not hide the first panel from any fault
        router = rt.router(book, sbs, { client = CLIENT, breaker = { failures = 1000, cool_off = 1 } })
        outcomes = {}
      end)

      teardown(function()
        if book then book:close() end
        if store then store:close() end
        rt.stop(sbs)
      end)

      for _, fault in ipairs(FAULTS) do
        it(fault .. " on the cheapest panel", function()
          local ref = "prop-" .. engine .. "-" .. fault
          local link = "https://x.test/" .. ref
          local r, own = router, nil
          if fault == "down" then
            own = sandbox.start{ key = rt.KEYS.a }
            r = rt.router(book, { a = own, b = sbs.b, c = sbs.c }, { client = CLIENT,
              breaker = { failures = 1000, cool_off = 1 } })
            assert(r:quote{ product = "followers", quantity = 1000 }) -- a's list at hand
            own:stop()
          else
            local params = { action = "add" }
            for k, v in pairs(PARAMS[fault] or {}) do params[k] = v end
            sbs.a:fault(fault, params) -- once: an add is never sent again after it may have arrived
          end
          local before = rt.adds(sbs)
          local res, err = r:add{ product = "followers", link = link, quantity = 1000, ref = ref }
          if fault ~= "down" then assert.same({}, sbs.a:admin("faults").pending, fault .. " did not fire") end
          local row = assert(book:get(ref))
          local after = rt.adds(sbs)
          local on = {}
          for _, name in ipairs(rt.NAMES) do
            on[name] = (name == "a" and own) and 0 or (links(sbs[name])[link] or 0)
          end
          outcomes[#outcomes + 1] = { fault = fault, ref = ref, link = link }

          -- at most one order for the ref, on all panels together
          assert.is_true(on.a + on.b + on.c <= 1, fault .. ": placed " .. on.a .. "/" .. on.b .. "/" .. on.c)
          if res then
            assert.is_true(env.is_integer(res.order))
            assert.equal(1, on[res.panel], fault)
            assert.equal("placed", row.state)
            assert.equal(r.by_name[res.panel].url, row.panel)
            if res.panel ~= "a" then -- failed over: a provably placed nothing
              assert.equal(0, on.a, fault)
              assert.is_string(placement_reason(res.route, "a"), fault)
            end
          else
            assert.is_true(err.ambiguous == true, fault .. ": " .. tostring(err))
            -- in doubt with the first panel; no other panel was asked
            assert.equal("in_doubt", row.state, fault)
            assert.equal(r.by_name.a.url, row.panel, fault)
            assert.equal("a", err.panel)
            assert.same({ before.b, before.c }, { after.b, after.c }, fault)
            assert.equal(0, on.b + on.c, fault)
            -- whether a placed it is a's secret: the sandbox knows, the book must not guess
            assert.is_true(on.a <= 1)
          end
          -- the same ref again: nothing sent anywhere
          local requests = total_requests(sbs)
          local again, again_err = r:add{ product = "followers", link = link, quantity = 1000, ref = ref }
          assert.equal(requests, total_requests(sbs), fault)
          if res then
            assert.is_true(again.recorded)
            assert.equal(res.order, again.order)
            assert.equal(res.panel, again.panel)
          else
            assert.equal("in_doubt", again_err.code, fault)
          end
        end)
      end

      it("across all those faults: each ref on one panel at most, each panel's orders each a different ref", function()
        assert.equal(#FAULTS, #outcomes)
        local seen = {}
        for _, name in ipairs(rt.NAMES) do
          for link, count in pairs(links(sbs[name])) do
            assert.equal(1, count, name .. " placed " .. link .. " " .. count .. " times")
            assert.is_nil(seen[link], link .. " placed on " .. tostring(seen[link]) .. " and on " .. name)
            seen[link] = name
          end
        end
        -- every fault case ended placed once or in doubt; some failed over, some stayed
        local failed_over, in_doubt = 0, 0
        for _, o in ipairs(outcomes) do
          local row = assert(book:get(o.ref))
          if row.state == "in_doubt" then in_doubt = in_doubt + 1
          elseif row.panel ~= sbs.a.url then failed_over = failed_over + 1 end
        end
        assert.is_true(in_doubt >= 10, "in doubt: " .. in_doubt)
        assert.is_true(failed_over >= 2, "failed over: " .. failed_over) -- rate429 and down at least
      end)
    end)
end
