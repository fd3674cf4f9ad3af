-- The commands of `smm`, one function each: (ctx) -> exit code. ctx carries the parsed
-- command line (ctx.args, ctx.flags), ctx:client() and ctx:fail(err).
local args = require "smm.cli.args"
local output = require "smm.cli.output"
local order = require "smm.cli.order"
local follow = require "smm.cli.follow"
local config = require "smm.cli.config"
local money = require "smm.money"
local cli_book = require "smm.cli.book"

local M = {}

M.EXIT = { ok = 0, error = 1, network = 2, partial = 3, ambiguous = 4, book = 5, ref_in_doubt = 6,
           interrupted = 130 }

-- services ------------------------------------------------------------------------------------
function M.services(ctx)
  local ok, problem = args.check(ctx, "services", { "search", "category", "type" })
  if not ok then return ctx:usage(problem) end
  local client = ctx:client()
  local list, err = client:find_services{ search = ctx.flags.search, type = ctx.flags.type }
  if not list then return ctx:fail(err) end
  if ctx.flags.category then
    -- any part of the category, in any case: "comments" finds "Instagram Comments"
    local wanted, matching = ctx.flags.category:lower(), {}
    for _, s in ipairs(list) do
      if tostring(s.category or ""):lower():find(wanted, 1, true) then matching[#matching + 1] = s end
    end
    list = matching
  end
  if output.json_mode() then
    output.json(output.array(list))
    return 0
  end
  if #list == 0 then
    output.say("no services match")
    return 0
  end
  -- on a narrow terminal the names give way first, then REFILL and CANCEL go
  output.print_table({
    { title = "ID", key = "service", align = "right" },
    { title = "NAME", key = "name", shrink = 20, weight = 2 },
    { title = "CATEGORY", key = "category", shrink = 10 },
    { title = "TYPE", key = "type", shrink = 8 },
    { title = "RATE", key = "rate", align = "right" },
    { title = "MIN", key = "min", align = "right" },
    { title = "MAX", key = "max", align = "right" },
    { title = "REFILL", key = "refill", drop = 2,
      colour = function(row) return row.refill and "green" or "dim" end },
    { title = "CANCEL", key = "cancel", drop = 1,
      colour = function(row) return row.cancel and "green" or "dim" end },
  }, list, { width = output.terminal_size() })
  return 0
end

-- balance -------------------------------------------------------------------------------------
function M.balance(ctx)
  local ok, problem = args.check(ctx, "balance")
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("'smm balance' takes no arguments") end
  local b, err = ctx:client():balance()
  if not b then return ctx:fail(err) end
  if output.json_mode() then
    output.json{ balance = b.balance, currency = b.currency }
  else
    output.say(output.paint(tostring(b.balance), "bold"), " ", tostring(b.currency or ""))
  end
  return 0
end

-- The order described by the flags of `command` (and, for quote, SERVICE QUANTITY positionals),
-- or nil and the problem to show as a usage error.
local function order_from(ctx, command, positional, extra)
  local ok, problem = args.check(ctx, command, args.ORDER, extra or {})
  if not ok then return nil, problem end
  local o
  o, problem = order.from_flags(ctx.flags)
  if not o then return nil, problem end
  if positional then
    local names = { "service", "quantity" }
    if #ctx.args > 2 then return nil, "too many arguments (quote SERVICE QUANTITY)" end
    for i, word in ipairs(ctx.args) do
      local name = names[i]
      if o[name] ~= nil then return nil, name .. " is given twice" end
      o[name] = word
    end
  elseif #ctx.args > 0 then
    return nil, "unexpected argument '" .. ctx.args[1] .. "' (order fields are given as --flags)"
  end
  if o.service == nil then return nil, "which service? (--service ID)" end
  return o
end

local function describe_order(clean, service, price)
  local lines = { string.format("service   %d %s (%s)", clean.service, tostring(service.name),
    tostring(service.type)) }
  local shown = { "link", "quantity", "runs", "interval", "username", "min", "max", "posts",
                  "old_posts", "delay", "expiry", "answer_number" }
  local known = {}
  for _, name in ipairs(shown) do
    known[name] = true
    if clean[name] ~= nil then lines[#lines + 1] = string.format("%-9s %s", name, tostring(clean[name])) end
  end
  for _, name in ipairs{ "comments", "groups" } do
    known[name] = true
    if clean[name] then
      local n = 0
      for _ in clean[name]:gmatch("[^\n]+") do n = n + 1 end
      lines[#lines + 1] = string.format("%-9s %d line%s", name, n, n == 1 and "" or "s")
    end
  end
  known.service = true
  local extras = {}
  for name in pairs(clean) do if not known[name] then extras[#extras + 1] = name end end
  table.sort(extras)
  for _, name in ipairs(extras) do lines[#lines + 1] = string.format("%-9s %s", name,
    tostring(clean[name])) end
  lines[#lines + 1] = "price     " .. output.paint(price, "bold")
  return table.concat(lines, "\n")
end

-- quote ---------------------------------------------------------------------------------------
function M.quote(ctx)
  local o, problem = order_from(ctx, "quote", true)
  if not o then return ctx:usage(problem) end
  local client = ctx:client()
  -- checked like an order (the service's bounds too); link and username do not change a price
  local probe = {}
  for k, v in pairs(o) do probe[k] = v end
  if probe.link == nil and probe.username == nil then
    if probe.min ~= nil or probe.max ~= nil then probe.username = "-" else probe.link = "-" end
  end
  local clean, price = order.check(client, probe)
  if not clean then return ctx:fail(price) end
  if output.json_mode() then
    local service = args.tointeger(tonumber(o.service)) or o.service
    output.json{ service = service, quantity = args.tointeger(tonumber(o.quantity or "")),
      runs = args.tointeger(tonumber(o.runs or "")), price = price }
  else
    output.say(price)
  end
  return 0
end

-- Asks before money is spent: --yes, or a y on a terminal. Returns true or an exit code.
function M.confirm(ctx, question)
  if ctx.flags.yes then return true end
  if not output.isatty(0) then
    return ctx:usage("refusing to spend money without --yes (stdin is not a terminal)")
  end
  io.stderr:write(question, " [y/N] ")
  io.stderr:flush()
  local answer = io.stdin:read("*l")
  if answer and answer:lower():match("^%s*ye?s?%s*$") then return true end
  output.error("canceled: nothing was sent")
  return M.EXIT.error
end

-- add -----------------------------------------------------------------------------------------
-- Through the order book: the intent is committed before the request leaves, so the same --ref
-- again (from this machine or another sharing the book) sends nothing.

-- An order the book already has under this ref: placed (said, exit 0) or in doubt (exit 6); a
-- routed one names its panel (order ids collide across panels). smm add and smm add --product.
function M.already_recorded(ref, row)
  if cli_book.IN_DOUBT[row.state] then
    output.error("ref " .. ref .. " is in doubt (" .. (row.state == "sending" and
      "its add was sent and no answer was recorded" or tostring(row.error or "its answer was lost")) ..
      "): nothing was sent; " .. cli_book.settle_advice(ref), { kind = "book", code = "in_doubt" })
    return M.EXIT.ref_in_doubt
  end
  local panel = type(row.route) == "table" and row.route.panel or nil
  if output.json_mode() then
    output.json{ order = row.order_id, ref = ref, recorded = true, state = row.state, status = row.status,
      service = row.service, panel = panel }
  else
    output.say("order ", string.format("%d", row.order_id), panel and (" on panel " .. panel) or "", " (ref ",
      ref, ") was placed earlier", row.status and (", status " .. row.status) or "", ": nothing was sent")
  end
  return 0
end

function M.add(ctx)
  local o, problem = order_from(ctx, "add", false, { "ref", "book" })
  if not o then return ctx:usage(problem) end
  local ref = ctx.flags.ref
  if ref ~= nil and (ref == "" or #ref > 200 or ref:find("%c")) then
    return ctx:usage("option --ref must be 1 to 200 characters without control characters")
  end
  local book = ctx:book(true)
  local client = ctx:client()
  local clean, price, service = order.check(client, o)
  if not clean then return ctx:fail(price) end
  if ref then
    local row, err = book:get(ref)
    if err then return ctx:fail(err, "nothing was sent") end
    if row and not cli_book.same_fields(row.fields, clean) then
      output.error("ref " .. ref .. " names another order in the book (" .. output.encode(row.fields) ..
        "): nothing was sent; a ref names one order", { kind = "book", code = "ref_conflict" })
      return M.EXIT.error
    end
    if row and row.state ~= "failed" then return M.already_recorded(ref, row) end
  end
  if not output.json_mode() or not ctx.flags.yes then
    output.note(describe_order(clean, service, price))
  end
  local confirmed = M.confirm(ctx, "Place this order for " .. price .. "?")
  if confirmed ~= true then return confirmed end
  local res, err = client:add(clean, { max_cost = price, ref = ref })
  if not res then
    if err.kind == "book" and err.code == "in_doubt" then
      return ctx:fail(err)
    end
    if err.kind == "book" then return ctx:fail(err, "nothing was sent") end
    if err.ambiguous then
      return ctx:fail(err, "the order may have been placed and is recorded in doubt: " ..
        cli_book.settle_advice(ref or "REF"))
    end
    return ctx:fail(err)
  end
  if res.recorded then
    -- another run placed it between the look-up above and this add: the book decided
    local row = book:get(res.ref) or { order_id = res.order, state = res.state, status = res.status }
    return M.already_recorded(res.ref, row)
  end
  if res.book_error then
    output.error(string.format("order %d was placed (%s), but the book could not record it: %s; " ..
      "once the book works again: smm doubt %s %d", res.order, price, ctx:scrub(tostring(res.book_error)),
      res.ref, res.order), { kind = "book", code = res.book_error.code })
    return M.EXIT.ambiguous
  end
  if output.json_mode() then
    output.json{ order = res.order, ref = res.ref, service = clean.service, price = price }
  else
    output.say("order ", output.paint(string.format("%d", res.order), "green"), " placed (", price,
      "), ref ", res.ref)
  end
  return 0
end

-- Multi-id commands share one shape: ids in, a table of entries out, partial failures counted.
local function exit_for_entries(ids, entries)
  local failed, ambiguous = 0, false
  for _, id in ipairs(ids) do
    local e = entries[id]
    if not e or e.error then failed = failed + 1 end
    if e and e.ambiguous then ambiguous = true end
  end
  if ambiguous then return M.EXIT.ambiguous end
  if failed == 0 then return 0 end
  if failed == #ids then return M.EXIT.error end
  return M.EXIT.partial
end

local function ids_command(ctx, name, what, call, columns, to_json)
  local ok, problem = args.check(ctx, name)
  if not ok then return ctx:usage(problem) end
  local ids
  ids, problem = args.ids(ctx.args, what)
  if not ids then return ctx:usage(problem) end
  local client = ctx:client()
  local entries, err = call(client, ids)
  if not entries then return ctx:fail(err) end
  if output.json_mode() then
    local list = output.array()
    for _, id in ipairs(ids) do
      local e = entries[id] or { error = "no answer for this id" }
      list[#list + 1] = to_json(id, e)
    end
    output.json(list)
  else
    local rows = {}
    local seen = {}
    for _, id in ipairs(ids) do
      if not seen[id] then
        seen[id] = true
        local e = entries[id] or { error = "no answer for this id" }
        local row = { id = id }
        for k, v in pairs(e) do row[k] = v end
        rows[#rows + 1] = row
      end
    end
    output.print_table(columns, rows)
  end
  if err and err.ambiguous then output.error(err.message) end
  return exit_for_entries(ids, entries)
end

local function status_text(row)
  if row.error then return row.error end
  return row.status
end
local function status_colour(row)
  if row.error then return "red" end
  return output.status_colour(row.status)
end

-- status --------------------------------------------------------------------------------------
function M.status(ctx)
  return ids_command(ctx, "status", "an order", function(client, ids) return client:status(ids) end, {
    { title = "ORDER", key = "id", align = "right" },
    { title = "STATUS", get = status_text, colour = status_colour },
    { title = "CHARGE", key = "charge", align = "right" },
    { title = "START", key = "start_count", align = "right" },
    { title = "REMAINS", key = "remains", align = "right" },
    { title = "CURRENCY", key = "currency" },
  }, function(id, e)
    local out = { order = id }
    for k, v in pairs(e) do out[k] = v end
    return out
  end)
end

-- refill --------------------------------------------------------------------------------------
function M.refill(ctx)
  return ids_command(ctx, "refill", "an order", function(client, ids) return client:refill(ids) end, {
    { title = "ORDER", key = "id", align = "right" },
    { title = "REFILL", get = function(row) return row.error or row.refill end,
      colour = function(row) return row.error and "red" or "green" end },
  }, function(id, e) return { order = id, refill = e.refill, error = e.error } end)
end

-- refill-status -------------------------------------------------------------------------------
function M.refill_status(ctx)
  return ids_command(ctx, "refill-status", "a refill",
    function(client, ids) return client:refill_status(ids) end, {
    { title = "REFILL", key = "id", align = "right" },
    { title = "STATUS", get = status_text, colour = status_colour },
  }, function(id, e) return { refill = id, status = e.status, error = e.error } end)
end

-- cancel --------------------------------------------------------------------------------------
function M.cancel(ctx)
  return ids_command(ctx, "cancel", "an order", function(client, ids) return client:cancel(ids) end, {
    { title = "ORDER", key = "id", align = "right" },
    { title = "CANCEL", get = function(row)
        if row.error then return row.error end
        return row.cancel and "Canceled" or "refused"
      end,
      colour = function(row) return (row.error or not row.cancel) and "red" or "green" end },
  }, function(id, e) return { order = id, cancel = e.cancel, error = e.error } end)
end

-- Wait options from --every/--timeout/--grace (seconds) -> ms, or nil, message.
function M.wait_options(flags)
  local o = {}
  for flag, name in pairs{ every = "interval", timeout = "timeout", grace = "grace" } do
    if flags[flag] then
      local n, problem = args.number(flags[flag], flag, true)
      if not n then return nil, problem end
      o[name] = n * 1000
    end
  end
  return o
end

-- Follows orders to the end and prints the summary. Returns an exit code.
function M.follow(ctx, client, ids, opts)
  local by_id, err = follow.wait(client, ids, opts)
  if not by_id and not (err and err.entries) then return ctx:fail(err) end
  by_id = by_id or err.entries -- a timeout: the summary of where the orders stand
  if output.json_mode() then
    local list = output.array()
    for _, id in ipairs(ids) do
      local e = by_id[id] or { error = "no answer" }
      local out = { order = id }
      for k, v in pairs(e) do out[k] = v end
      list[#list + 1] = out
    end
    output.json(list)
  else
    output.say(follow.summary(ids, by_id))
  end
  if err then
    output.error(err.message)
    return M.EXIT.network
  end
  return exit_for_entries(ids, by_id)
end

-- wait ----------------------------------------------------------------------------------------
function M.wait(ctx)
  local ok, problem = args.check(ctx, "wait", args.WAIT)
  if not ok then return ctx:usage(problem) end
  local ids
  ids, problem = args.ids(ctx.args, "an order")
  if not ids then return ctx:usage(problem) end
  local opts
  opts, problem = M.wait_options(ctx.flags)
  if not opts then return ctx:usage(problem) end
  local unique, seen = {}, {}
  for _, id in ipairs(ids) do
    if not seen[id] then seen[id] = true unique[#unique + 1] = id end
  end
  return M.follow(ctx, ctx:client(), unique, opts)
end

-- A product's map as the config file writes it, in the panels' order: "a:1, b:17".
function M.product_entries(map, panels)
  local parts = {}
  for _, p in ipairs(panels or {}) do
    if map[p.name] then parts[#parts + 1] = p.name .. ":" .. string.format("%d", map[p.name]) end
  end
  return table.concat(parts, ", ")
end

-- config: what the command line would use, without the key -----------------------------------
function M.config(ctx)
  local ok, problem = args.check(ctx, "config", { "book" })
  if not ok then return ctx:usage(problem) end
  local r, err = config.resolve(ctx.flags)
  if not r then return ctx:usage(err) end
  local book_url, book_source = cli_book.url(ctx.flags, r.settings)
  local where = require("smm.book.target").parse(book_url)
  if r.warning then output.warn(r.warning) end
  local doc = {
    config_file = r.path, profile = r.profile, profiles = output.array(r.profiles),
    url = config.printable_url(r.url), url_source = r.sources.url,
    key = r.key and "***" or nil, key_source = r.sources.key, options = {},
    book = where and where.name or "(does not parse)", book_source = book_source,
    webhook_secret = r.settings.webhook_secret and "***" or nil,
  }
  for name, value in pairs(r.options) do doc.options[name] = value end
  doc.options.proxy = config.printable_url(doc.options.proxy)
  -- several panels: each with where its key comes from (never the key), and the products
  doc.panel = r.panel
  doc.panels = output.array()
  for _, p in ipairs(r.panels or {}) do
    doc.panels[#doc.panels + 1] = { name = p.name, url = config.printable_url(p.url), key = "***",
      key_source = config.key_source(p), dialect = p.dialect, low_balance = p.low_balance }
  end
  local product_names = {}
  for name in pairs(r.products or {}) do product_names[#product_names + 1] = name end
  table.sort(product_names)
  doc.products = {}
  for _, name in ipairs(product_names) do doc.products[name] = r.products[name] end
  if #product_names == 0 then doc.products = nil end
  if output.json_mode() then
    output.json(doc)
  else
    local function row(name, value, source)
      output.say(string.format("%-9s %s%s", name, tostring(value or "-"), source and ("  (" .. source ..
        ")") or ""))
    end
    row("config", r.path)
    row("profiles", #r.profiles > 0 and table.concat(r.profiles, ", ") or "none")
    row("profile", r.profile)
    if #doc.panels > 0 then
      local names = {}
      for i, p in ipairs(doc.panels) do names[i] = p.name end
      row("panels", table.concat(names, ", "))
      if doc.panel then row("panel", doc.panel) end
    end
    row("url", doc.url, doc.url_source)
    row("key", doc.key, doc.key_source)
    row("book", doc.book, doc.book_source)
    local names = {}
    for name in pairs(doc.options) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      local v = doc.options[name]
      if type(v) == "table" then v = v.requests .. "/" .. v.per end
      row(name, tostring(v))
    end
    for _, p in ipairs(doc.panels) do
      output.say(string.format("panel %s  %s  key ***  (%s)%s%s", p.name, p.url, p.key_source,
        p.dialect and ("  dialect " .. p.dialect) or "", p.low_balance and ("  low_balance " .. p.low_balance)
        or ""))
    end
    for _, name in ipairs(product_names) do
      output.say("product " .. name .. " = " .. M.product_entries(r.products[name], r.panels))
    end
  end
  return 0
end

-- sandbox: run the sandbox panel --------------------------------------------------------------
-- The panel is its own rock (smm-sandbox: Lua 5.3+, luasocket), so it is looked for, not loaded:
-- beside this script in a checkout, then in this luarocks tree's bin, then on PATH.
local function find_sandbox(root)
  local checkout = root .. "/bin/smm-sandbox"
  local f = io.open(checkout, "r")
  if f then f:close(); return checkout, true end
  -- installed, this script is TREE/lib/luarocks/rocks-5.x/smm-cli/VERSION/bin/smm
  local tree = root:match("^(.*)/lib/luarocks/rocks%-[^/]+/[^/]+/[^/]+$")
  if tree then
    f = io.open(tree .. "/bin/smm-sandbox", "r")
    if f then f:close(); return tree .. "/bin/smm-sandbox", false end
  end
  local p = io.popen("command -v smm-sandbox 2>/dev/null")
  local found = p and p:read("*l")
  if p then p:close() end
  if found and found ~= "" then return found, false end
  return nil
end

function M.sandbox(ctx)
  local script, in_checkout = find_sandbox(ctx.root or ".")
  if not script then
    output.error("the sandbox panel is not installed: luarocks install smm-sandbox (Lua 5.3+, luasocket)",
      { kind = "missing" })
    return M.EXIT.error
  end
  local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local words = {}
  for i, w in ipairs(ctx.raw) do words[i] = quote(w) end
  local command = {}
  if in_checkout then
    -- The interpreter with every option it was given before the script (the checkout's script
    -- moves itself to lua5.4 when that is 5.1 or LuaJIT). luarocks' wrapper runs
    -- `lua -e 'package.path=...' .../bin/smm`, so arg[-1] is that -e text, not the interpreter.
    local first = 0
    while arg and arg[first - 1] ~= nil do first = first - 1 end
    for i = first, -1 do command[#command + 1] = quote(arg[i]) end
    if #command == 0 then command[1] = "lua5.4" end
  end
  -- an installed smm-sandbox is luarocks' wrapper, which starts the Lua its rock was built for
  command[#command + 1] = quote(script)
  local ok, how, code = output.execute("exec " .. table.concat(command, " ") .. " " ..
    table.concat(words, " "))
  if ok then return 0 end
  if how == "signal" then return M.EXIT.interrupted end
  return code or 1
end

-- money helper used by batch summaries
M.money = money

return M
