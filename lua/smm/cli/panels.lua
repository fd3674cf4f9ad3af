-- The commands over several panels (smm.router, built from the config's [panel NAME] sections
-- and its [products] map): `smm panels`, `smm quote --product`, `smm add --product`,
-- `smm match` and `smm watch`. Each is (ctx) -> exit code, as in commands.lua; ctx:router()
-- makes the router (and opens the book it records in).
local args = require "smm.cli.args"
local output = require "smm.cli.output"
local cli_book = require "smm.cli.book"
local config = require "smm.cli.config"
local money = require "smm.money"

local M = {}

local commands = require "smm.cli.commands"
local EXIT = commands.EXIT

local function iso(ms)
  if type(ms) ~= "number" then return nil end
  return cli_book.iso(math.floor(ms / 1000))
end

-- An error as one line for a table cell or a JSON field (the keys scrubbed by ctx:scrub).
local function error_text(ctx, err)
  if err == nil then return nil end
  if type(err) ~= "table" then return ctx:scrub(tostring(err)) end
  local text = tostring(err.message or err.kind)
  if err.kind and err.kind ~= "api" and err.kind ~= "invalid" then text = err.kind .. ": " .. text end
  return ctx:scrub((text:gsub("[%s;]+$", "")))
end

-- panels --------------------------------------------------------------------------------------
-- Each panel asked now: its balance and its services (the breaker and the balance recorded as
-- the router records them), then the state the book holds for it.
function M.panels(ctx)
  local ok, problem = args.check(ctx, "panels", { "book" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("'smm panels' takes no arguments") end
  local router, r = ctx:router()
  local names = {}
  for i, p in ipairs(r.panels) do names[i] = p.name end
  if ctx.flags.panel then names = { ctx.flags.panel } end
  local asked, failed, first_err = {}, 0, nil
  for _, name in ipairs(names) do
    local entry = {}
    local b = router:balance(name)[name]
    if b.err then entry.err = b.err else entry.balance, entry.currency = b.balance, b.currency end
    local list, lerr = router:panel(name):services()
    if list then entry.services = #list else entry.err = entry.err or lerr end
    if entry.err then
      failed = failed + 1
      first_err = first_err or entry.err
    end
    asked[name] = entry
  end
  local states, serr = router:panels()
  if not states then return ctx:fail(serr) end
  local by_name = {}
  for _, s in ipairs(states) do by_name[s.name] = s end
  local rows = {}
  for _, name in ipairs(names) do
    local s, a = by_name[name] or {}, asked[name]
    local url
    for _, p in ipairs(r.panels) do if p.name == name then url = p.url end end
    rows[#rows + 1] = {
      name = name, url = config.printable_url(url), state = s.state or (a.err and "down" or "up"),
      balance = a.balance or s.balance, currency = a.currency or s.currency, services = a.services,
      failures = s.failures, down_until = iso(s.down_until),
      error = error_text(ctx, a.err), last_error = s.last_error and ctx:scrub(tostring(s.last_error)) or nil,
    }
  end
  if output.json_mode() then
    output.json(output.array(rows))
  else
    output.print_table({
      { title = "PANEL", key = "name" },
      { title = "STATE", key = "state", colour = function(row)
          return row.state == "up" and "green" or (row.state == "down" and "red" or "yellow") end },
      { title = "BALANCE", get = function(row)
          return row.balance and (row.balance .. (row.currency and (" " .. row.currency) or "")) end,
        align = "right" },
      { title = "SERVICES", key = "services", align = "right" },
      { title = "FAILURES", key = "failures", align = "right", drop = 1 },
      { title = "URL", key = "url", shrink = 12, drop = 2 },
      { title = "LAST ERROR", get = function(row) return row.error or row.last_error end, shrink = 12,
        colour = function() return "red" end },
    }, rows, { width = output.terminal_size() })
  end
  if failed == 0 then return 0 end
  if failed < #names then return EXIT.partial end
  return require("smm.cli").exit_code(first_err)
end

-- quote --product -----------------------------------------------------------------------------
-- The routing request of quote and add: product, quantity, guarantees, preferences. nil, problem
-- for a usage error.
local function route_request(ctx, r)
  local f = ctx.flags
  local product = f.product
  if not r.products[product] then
    local names = {}
    for name in pairs(r.products) do names[#names + 1] = name end
    table.sort(names)
    if #names == 0 then return nil, "no [products] in " .. r.path .. ": map product = panel:service there" end
    local guess = args.suggest(product, names)
    return nil, "no product '" .. product .. "' in " .. r.path .. " (products: " ..
      table.concat(names, ", ") .. ")" .. (guess and ("; did you mean '" .. guess .. "'?") or "")
  end
  if f.quantity == nil then return nil, "how many? (--quantity N)" end
  local quantity = args.tointeger(tonumber(f.quantity))
  if not quantity or quantity < 1 then
    return nil, "option --quantity must be a whole number from 1, got '" .. tostring(f.quantity) .. "'"
  end
  local req = { product = product, quantity = quantity, refill = f.refill or nil, cancel = f.cancel or nil }
  if f["max-cost"] then
    if not money.is_decimal(f["max-cost"]) or f["max-cost"]:find("^%-") then
      return nil, "option --max-cost must be a decimal amount, like 2.50, got '" .. f["max-cost"] .. "'"
    end
    req.max_cost = f["max-cost"]
  end
  for _, flag in ipairs{ "prefer", "avoid" } do
    local list = args.names(f[flag])
    if list then
      for _, name in ipairs(list) do
        if not config.find_panel(r, name) then
          return nil, "--" .. flag .. ": " .. config.no_such_panel(r, name)
        end
      end
      req[flag] = list
    end
  end
  return req
end
M.route_request = route_request

local CANDIDATE_COLUMNS = {
  { title = "PANEL", key = "panel" },
  { title = "SERVICE", key = "service", align = "right" },
  { title = "NAME", key = "name", shrink = 16, weight = 2 },
  { title = "RATE", key = "rate", align = "right" },
  { title = "PRICE", key = "price", align = "right", colour = function() return "bold" end },
  { title = "MIN", key = "min", align = "right" },
  { title = "MAX", key = "max", align = "right" },
  { title = "REFILL", key = "refill", drop = 2 },
  { title = "CANCEL", key = "cancel", drop = 1 },
}

local EXCLUDED_COLUMNS = {
  { title = "LEFT OUT", key = "panel" },
  { title = "SERVICE", key = "service", align = "right" },
  { title = "REASON", key = "reason", colour = function() return "yellow" end },
  { title = "", key = "message", shrink = 10 },
}

local function quote_doc(ctx, req, q)
  local doc = { product = req.product, quantity = req.quantity, candidates = output.array(),
                excluded = output.array() }
  for i, c in ipairs(q.candidates or {}) do
    local row = {}
    for k, v in pairs(c) do row[k] = v end
    doc.candidates[i] = row
  end
  for i, e in ipairs(q.excluded or {}) do
    doc.excluded[i] = { panel = e.panel, service = e.service, reason = e.reason,
                        message = e.message and ctx:scrub(tostring(e.message)) or nil }
  end
  return doc
end

local function print_quote(doc)
  if #doc.candidates > 0 then
    output.print_table(CANDIDATE_COLUMNS, doc.candidates, { width = output.terminal_size() })
  else
    output.say("no panel can take " .. string.format("%d", doc.quantity) .. " of " .. doc.product)
  end
  if #doc.excluded > 0 then
    output.say("")
    output.print_table(EXCLUDED_COLUMNS, doc.excluded, { width = output.terminal_size() })
  end
end

function M.quote(ctx)
  local ok, problem = args.check(ctx, "quote", { "product", "quantity", "refill", "cancel", "max-cost",
    "prefer", "avoid", "book" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("quote --product takes no SERVICE QUANTITY words (--quantity N)") end
  if ctx.flags.panel then
    return ctx:usage("--panel with --product: the product's panels are in [products] (--prefer, --avoid)")
  end
  local router, r = ctx:router()
  local req
  req, problem = route_request(ctx, r)
  if not req then return ctx:usage(problem) end
  local q, err = router:quote(req)
  if not q then return ctx:fail(err) end
  local doc = quote_doc(ctx, req, q)
  if output.json_mode() then output.json(doc) else print_quote(doc) end
  if #doc.candidates == 0 then
    output.error("no panel can take " .. string.format("%d", req.quantity) .. " of " .. req.product ..
      (output.json_mode() and " (see excluded)" or " (see LEFT OUT)"), { kind = "error",
      code = "no_candidate" })
    return EXIT.error
  end
  return 0
end

-- add --product -------------------------------------------------------------------------------
-- Quoted first (the choice and its price shown, and asked about), then placed by router:add
-- through the book: the cheapest able panel, failing over only when the one tried provably
-- did not place it. max_cost is --max-cost, else the dearest price shown: a fail-over never
-- spends more than the person agreed to.

function M.add(ctx)
  local ok, problem = args.check(ctx, "add", { "product", "link", "quantity", "ref", "book", "max-cost",
    "prefer", "avoid", "refill", "cancel" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then
    return ctx:usage("unexpected argument '" .. ctx.args[1] .. "' (order fields are given as --flags)")
  end
  if ctx.flags.panel then
    return ctx:usage("--panel with --product: the product's panels are in [products] (--prefer, --avoid)")
  end
  local ref = ctx.flags.ref
  if ref ~= nil and (ref == "" or #ref > 200 or ref:find("%c")) then
    return ctx:usage("option --ref must be 1 to 200 characters without control characters")
  end
  if ctx.flags.link == nil or ctx.flags.link == "" then return ctx:usage("which link? (--link URL)") end
  local router, r = ctx:router()
  local req
  req, problem = route_request(ctx, r)
  if not req then return ctx:usage(problem) end
  local book = ctx:book(true)
  if ref then
    local row, err = book:get(ref)
    if err then return ctx:fail(err, "nothing was sent") end
    if row and row.state ~= "failed" then
      local product = type(row.route) == "table" and row.route.product or nil
      if product ~= req.product or row.link ~= ctx.flags.link or
        tonumber(row.quantity) ~= req.quantity then
        output.error("ref " .. ref .. " names another order in the book (" .. (product and ("product " ..
          product) or ("service " .. tostring(row.service))) .. "): nothing was sent; a ref names one order",
          { kind = "book", code = "ref_conflict" })
        return EXIT.error
      end
      return commands.already_recorded(ref, row)
    end
  end
  local q, qerr = router:quote(req)
  if not q then return ctx:fail(qerr, "nothing was sent") end
  local doc = quote_doc(ctx, req, q)
  if #doc.candidates == 0 then
    if not output.json_mode() then print_quote(doc) end
    output.error("no panel can take " .. string.format("%d", req.quantity) .. " of " .. req.product ..
      ": nothing was sent", { kind = "error", code = "no_candidate" })
    return EXIT.error
  end
  local best, dearest = doc.candidates[1], doc.candidates[1].price
  for _, c in ipairs(doc.candidates) do
    if money.compare(c.price, dearest) > 0 then dearest = c.price end
  end
  if not output.json_mode() or not ctx.flags.yes then
    local lines = { "product   " .. req.product, "link      " .. ctx.flags.link,
      "quantity  " .. string.format("%d", req.quantity) }
    for i, c in ipairs(doc.candidates) do
      lines[#lines + 1] = string.format("%-9s %s: service %d, %s", i == 1 and "panels" or "", c.panel,
        c.service, output.paint(c.price, i == 1 and "bold" or nil))
    end
    output.note(table.concat(lines, "\n"))
  end
  local question = "Place this order with panel " .. best.panel .. " for " .. best.price ..
    (#doc.candidates > 1 and (" (at most " .. (req.max_cost or dearest) .. " on another panel)") or "") .. "?"
  local confirmed = commands.confirm(ctx, question)
  if confirmed ~= true then return confirmed end
  local call = { product = req.product, link = ctx.flags.link, quantity = req.quantity, ref = ref,
                 max_cost = req.max_cost or dearest, prefer = req.prefer, avoid = req.avoid,
                 refill = req.refill, cancel = req.cancel }
  local res, err = router:add(call)
  if not res then
    if err.kind == "book" and err.code == "in_doubt" then return ctx:fail(err) end
    if err.kind == "book" then return ctx:fail(err, "nothing was sent") end
    if err.ambiguous then
      return ctx:fail(err, "the order may have been placed" .. (err.panel and (" on panel " .. err.panel) or
        "") .. " and is recorded in doubt: " .. cli_book.settle_advice(err.ref or ref or "REF"))
    end
    return ctx:fail(err)
  end
  if res.recorded then
    local row = book:get(res.ref) or { order_id = res.order, state = res.state, status = res.status }
    return commands.already_recorded(res.ref, row)
  end
  local route = type(res.route) == "table" and res.route or {}
  local panel = res.panel or route.panel
  local price = res.price or route.price
  if res.book_error then
    output.error(string.format("order %d was placed on panel %s, but the book could not record it: %s; " ..
      "once the book works again: smm doubt %s %d", res.order, tostring(panel),
      ctx:scrub(tostring(res.book_error)), res.ref, res.order), { kind = "book", code = res.book_error.code })
    return EXIT.ambiguous
  end
  if output.json_mode() then
    output.json{ order = res.order, ref = res.ref, panel = panel, service = res.service or route.service,
      product = req.product, price = price, route = res.route }
  else
    output.say("order ", output.paint(string.format("%d", res.order), "green"), " placed on panel ",
      tostring(panel), price and (" (" .. price .. ")") or "", ", ref ", res.ref,
      route.reason and route.reason ~= "cheapest" and (": " .. route.reason) or "")
  end
  return 0
end

-- match ---------------------------------------------------------------------------------------
-- Suggested products (smm.router.match over every panel's list), printed so that a person can
-- paste the lines they accept into [products]: each suggestion is comment lines (its score, the
-- reasons, each member service) and then `product = panel:service, ...`. A suggestion whose
-- members are all a product already is shown commented out; one that adds panels to a product
-- takes that product's name (its line replaces the old one).
local function members_line(s, panels)
  local parts = {}
  for _, p in ipairs(panels) do
    local id = s.services[p.name]
    if id then parts[#parts + 1] = p.name .. ":" .. string.format("%d", id) end
  end
  return table.concat(parts, ", ")
end

local function extends(s)
  if type(s.known) ~= "table" then return nil end
  local product
  for _, name in pairs(s.known) do
    if product and product ~= name then return nil end -- members of two products: no one name
    product = name
  end
  return product
end

function M.match(ctx)
  local ok, problem = args.check(ctx, "match", { "min-score", "book" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("'smm match' takes no arguments") end
  local min_score
  if ctx.flags["min-score"] then
    min_score = args.to_number(ctx.flags["min-score"])
    if not min_score or min_score < 0 or min_score > 100 then
      return ctx:usage("option --min-score must be a number from 0 to 100, got '" .. ctx.flags["min-score"] ..
        "'")
    end
  end
  local router, r = ctx:router()
  local lists, failed = {}, {}
  for _, p in ipairs(r.panels) do
    local list, err = router.catalog:list(p.name)
    if list then
      lists[#lists + 1] = { name = p.name, services = list }
    else
      failed[#failed + 1] = { panel = p.name, err = err }
    end
  end
  for _, f in ipairs(failed) do
    output.error("panel " .. f.panel .. ": " .. error_text(ctx, f.err) .. " (its services are left out)",
      type(f.err) == "table" and f.err or nil)
  end
  if #lists < 2 then
    if #failed > 0 then return require("smm.cli").exit_code(failed[1].err) end
    return ctx:usage("smm match compares the services of two panels or more: " .. r.path .. " has one")
  end
  local match = require "smm.router.match"
  local suggestions = match.suggest(lists, { products = r.products, min_score = min_score })
  local docs = output.array()
  for i, s in ipairs(suggestions) do
    local name = s.mapped or extends(s) or s.product
    -- each member's record: s.records[panel] (or s.members, { panel, service = record })
    local records = {}
    for panel, rec in pairs(s.records or {}) do records[panel] = rec end
    for _, m in ipairs(s.members or {}) do records[m.panel] = m.service end
    local members = output.array()
    for _, p in ipairs(r.panels) do
      local sv = records[p.name]
      if sv then members[#members + 1] = { service = sv.service, name = sv.name, category = sv.category,
                     type = sv.type, rate = sv.rate, min = sv.min, max = sv.max, refill = sv.refill,
                     cancel = sv.cancel, panel = p.name } end
    end
    docs[i] = { product = name, score = s.score, services = s.services, members = members,
                reasons = output.array(match.explain(s)), mapped = s.mapped, extends = not s.mapped and
                extends(s) or nil, line = name .. " = " .. members_line(s, r.panels) }
  end
  if output.json_mode() then
    output.json(docs)
  else
    local cols = output.terminal_size()
    for _, d in ipairs(docs) do
      output.say(output.paint("# score " .. string.format("%d", d.score), "bold"), ": ",
        table.concat(d.reasons, ", "))
      for _, m in ipairs(d.members) do
        local line = string.format("#   %s:%d  %s  (%s, %s, %s-%s)", m.panel, m.service, tostring(m.name),
          tostring(m.category), tostring(m.rate), tostring(m.min), tostring(m.max))
        output.say(cols and output.cut(line, cols) or line)
      end
      if d.mapped then
        output.say(output.paint("# " .. d.line .. "   (already in [products])", "dim"))
      elseif d.extends then
        output.say("# adds panels to " .. d.extends .. ": this line replaces its line")
        output.say(output.paint(d.line, "green"))
      else
        output.say(output.paint(d.line, "green"))
      end
      output.say("")
    end
    output.say(string.format("# %d suggestion%s (score >= %s): paste the lines you accept into [products] " ..
      "of %s", #docs, #docs == 1 and "" or "s", tostring(min_score or match.MIN_SCORE), r.path))
  end
  return #failed > 0 and EXIT.partial or 0
end

-- watch ---------------------------------------------------------------------------------------
-- Each panel's service list fetched anew and compared with its last snapshot in the book
-- (smm.router.catalog's watch): the changes are stored with the new snapshots and written as
-- events into the book's outbox in one transaction (`smm sync`'s hooks deliver them). Shown as
-- a table, or with --json one JSON object a line, one an event ({"type", "panel", "data"}), so
-- that a pipe can act on each. A panel whose list could not be fetched is named on stderr.

local function bounds(min, max)
  if min == nil and max == nil then return nil end
  return tostring(min or "?") .. "-" .. tostring(max or "?")
end

local function yes_no(v) return v and "yes" or "no" end

-- An event as a table row: { panel, change, service, name, before, after }.
local function change_row(e)
  local d = type(e.data) == "table" and e.data or {}
  -- (the service's name is data.service_name: data.name is the panel's, as in every panel event)
  local row = { panel = e.panel, change = e.type, service = d.service, name = d.service_name, type = e.type }
  local t = e.type
  if t == "service.added" then
    row.change, row.after = "added", "rate " .. tostring(d.rate) .. ", " .. tostring(bounds(d.min, d.max))
  elseif t == "service.removed" then
    row.change, row.before = "removed", "rate " .. tostring(d.rate) .. ", " .. tostring(bounds(d.min, d.max))
  elseif t == "service.rate" then
    row.change = "rate " .. tostring(d.direction or "")
    row.before = d.old
    row.after = tostring(d.new) .. (d.percent and (" (" .. (tostring(d.percent):find("^%-") and "" or "+") ..
      tostring(d.percent) .. "%)") or "")
  elseif t == "service.bounds" then
    row.change, row.before, row.after = "min/max", bounds(d.old_min, d.old_max), bounds(d.new_min, d.new_max)
  elseif t == "service.flags" then
    local changed = type(d.changed) == "table" and d.changed or {}
    local before, after = {}, {}
    for _, f in ipairs(changed) do
      before[#before + 1] = f .. " " .. yes_no(d["old_" .. f])
      after[#after + 1] = f .. " " .. yes_no(d["new_" .. f])
    end
    row.change, row.before, row.after = table.concat(changed, "/"), table.concat(before, ", "),
      table.concat(after, ", ")
  elseif t == "product.orphaned" then
    local parts = {}
    local names = {}
    for name in pairs(type(d.services) == "table" and d.services or {}) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do parts[#parts + 1] = name .. ":" .. tostring(d.services[name]) end
    row.panel, row.change, row.name = nil, "product orphaned", d.product
    row.before, row.after = table.concat(parts, ", "), "no panel"
  elseif t == "product.cheapest" then
    row.panel, row.change, row.name, row.service = d.new_panel, "product cheapest", d.product, d.service
    row.before = tostring(d.old_panel) .. " " .. tostring(d.old_rate)
    row.after = tostring(d.new_panel) .. " " .. tostring(d.new_rate)
  end
  return row
end

local function change_colour(row)
  local t = row.type or ""
  if t == "service.removed" or t == "product.orphaned" or row.change == "rate up" then return "red" end
  if t == "service.added" or row.change == "rate down" then return "green" end
  return "yellow"
end

function M.watch(ctx)
  local ok, problem = args.check(ctx, "watch", { "book" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("'smm watch' takes no arguments") end
  local router, r = ctx:router()
  local result, err = router.catalog:watch()
  if not result then return ctx:fail(err) end
  local failed, first_err = 0, nil
  for _, p in ipairs(result.panels or {}) do
    if p.err then
      failed = failed + 1
      first_err = first_err or p.err
      output.error("panel " .. p.name .. ": " .. error_text(ctx, p.err) ..
        " (its last snapshot stands in for it)", type(p.err) == "table" and p.err or nil)
    end
  end
  local events = result.events or {}
  if output.json_mode() then
    for _, e in ipairs(events) do output.json{ type = e.type, panel = e.panel, data = e.data } end
  elseif #events == 0 then
    output.say("no changes since the last snapshots")
  else
    local rows = {}
    for i, e in ipairs(events) do rows[i] = change_row(e) end
    output.print_table({
      { title = "PANEL", key = "panel" },
      { title = "CHANGE", key = "change", colour = change_colour },
      { title = "SERVICE", key = "service", align = "right" },
      { title = "NAME", key = "name", shrink = 12 },
      { title = "BEFORE", key = "before", align = "right" },
      { title = "AFTER", key = "after", align = "right" },
    }, rows, { width = output.terminal_size() })
  end
  if failed == 0 then return 0 end
  if failed < #r.panels then return EXIT.partial end
  return require("smm.cli").exit_code(first_err)
end

return M
