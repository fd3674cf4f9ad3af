-- What the order book holds, from the command line: `smm orders` (the orders, filtered),
-- `smm doubt` (the orders in doubt, and settling one), `smm report` (what was charged, summed
-- exactly). None of them asks the panel, except that none needs to: they read the book.
local args = require "smm.cli.args"
local output = require "smm.cli.output"
local commands = require "smm.cli.commands"
local cli_book = require "smm.cli.book"
local normalize = require "smm.normalize"
local money = require "smm.money"

local M = {}

local EXIT = commands.EXIT

-- The book's states (smm.book): --status takes one of these, or a panel status ("Completed").
local STATES = { sending = true, placed = true, in_doubt = true, failed = true, final = true, stale = true }

local function id_text(v)
  if v == nil then return nil end
  return string.format("%d", v)
end

-- An order as --json shows it: times as ISO 8601 UTC, ids integers, money exact strings.
local function order_doc(row)
  return { ref = row.ref, panel = row.panel, state = row.state, order = row.order_id, service = row.service,
    link = row.link, quantity = row.quantity, quote = row.quote, status = row.status, remains = row.remains,
    charge = row.charge, start_count = row.start_count, currency = row.currency, error = row.error,
    attempts = row.attempts, created_at = cli_book.iso(row.created_at), sent_at = cli_book.iso(row.sent_at),
    updated_at = cli_book.iso(row.updated_at), final_at = cli_book.iso(row.final_at),
    route = type(row.route) == "table" and row.route or nil }
end

local function state_colour(row)
  if row.state == "in_doubt" or row.state == "sending" then return "yellow" end
  if row.state == "failed" or row.state == "stale" then return "red" end
  if row.state == "final" then return "green" end
  return nil
end

local ORDER_COLUMNS = {
  { title = "REF", key = "ref", shrink = 12, weight = 2 },
  { title = "ORDER", get = function(row) return id_text(row.order_id) end, align = "right" },
  { title = "STATE", key = "state", colour = state_colour },
  { title = "STATUS", key = "status", colour = function(row) return output.status_colour(row.status) end },
  { title = "SERVICE", key = "service", align = "right", drop = 2 },
  { title = "LINK", key = "link", shrink = 12, weight = 2, drop = 1 },
  { title = "CHARGE", key = "charge", align = "right" },
  { title = "REMAINS", key = "remains", align = "right", drop = 3 },
  { title = "CREATED", get = function(row) return cli_book.iso(row.created_at) end },
}

-- smm orders [--status S] [--ref R] [--since T] [--json] --------------------------------------
function M.orders(ctx)
  local ok, problem = args.check(ctx, "orders", { "status", "ref", "since", "book" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("'smm orders' takes no arguments (filters are --flags)") end
  local filter = {}
  local status = ctx.flags.status
  if status then
    if STATES[status] then filter.state = status
    elseif status == "open" then filter.open = true
    else filter.status = normalize.status and normalize.status(status) or status end
  end
  filter.ref = ctx.flags.ref
  if ctx.flags.panel then
    -- a [panel NAME] of the config: the book keys its orders by the panel's printable URL
    -- (found without reading its key: the book is all this command reads)
    local config = require "smm.cli.config"
    local flags = {}
    for k, v in pairs(ctx.flags) do flags[k] = v end
    flags.panel = nil
    local r, err = config.resolve(flags)
    if not r then return ctx:usage(err) end
    local panel = config.find_panel(r, ctx.flags.panel)
    if not panel then return ctx:usage(config.no_such_panel(r, ctx.flags.panel)) end
    filter.panel = config.printable_url(panel.url)
  end
  if ctx.flags.since then
    filter.since, problem = cli_book.since(ctx.flags.since)
    if not filter.since then return ctx:usage(problem) end
  end
  local book = ctx:book(false)
  local list, err = book:orders(filter)
  if not list then return ctx:fail(err) end
  if output.json_mode() then
    local docs = output.array()
    for i, row in ipairs(list) do docs[i] = order_doc(row) end
    output.json(docs)
  elseif #list == 0 then
    output.say("no orders in ", book.name, next(filter) and " match" or "")
  else
    -- orders routed over several panels (smm.router): their ids collide across panels, so the
    -- panel each went to is shown after the id
    local columns = ORDER_COLUMNS
    for _, row in ipairs(list) do
      if type(row.route) == "table" then
        columns = { ORDER_COLUMNS[1], ORDER_COLUMNS[2], { title = "PANEL", get = function(r)
          return type(r.route) == "table" and r.route.panel or nil end } }
        for i = 3, #ORDER_COLUMNS do columns[#columns + 1] = ORDER_COLUMNS[i] end
        break
      end
    end
    output.print_table(columns, list, { width = output.terminal_size() })
  end
  return 0
end

-- smm doubt | smm doubt REF ORDER_ID | smm doubt REF --not-placed ------------------------------
function M.doubt(ctx)
  local ok, problem = args.check(ctx, "doubt", { "not-placed", "book" })
  if not ok then return ctx:usage(problem) end
  local words = ctx.args
  if #words == 0 then
    if ctx.flags["not-placed"] then return ctx:usage("--not-placed needs the REF it settles") end
    local book = ctx:book(false)
    local list, err = book:doubt()
    if not list then return ctx:fail(err) end
    if output.json_mode() then
      local docs = output.array()
      for i, row in ipairs(list) do docs[i] = order_doc(row) end
      output.json(docs)
      return 0
    end
    if #list == 0 then
      output.say("no orders in doubt in ", book.name)
      return 0
    end
    output.print_table({
      { title = "REF", key = "ref", shrink = 12, weight = 2 },
      { title = "STATE", key = "state", colour = state_colour },
      { title = "SERVICE", key = "service", align = "right" },
      { title = "LINK", key = "link", shrink = 12, weight = 2 },
      { title = "QUANTITY", key = "quantity", align = "right", drop = 2 },
      { title = "SENT", get = function(row) return cli_book.iso(row.sent_at) end, drop = 1 },
      { title = "PANEL", key = "panel", shrink = 10, drop = 3 },
    }, list, { width = output.terminal_size() })
    output.note(#list .. " order" .. (#list == 1 and "" or "s") ..
      " in doubt: the add was sent and no answer " ..
      "was recorded. Check the panel's order list, then settle each: smm doubt REF ORDER_ID (it was " ..
      "placed) or smm doubt REF --not-placed (it may be sent again)")
    return 0
  end
  local ref, id = words[1], false
  if ctx.flags["not-placed"] then
    if #words ~= 1 then return ctx:usage("usage: smm doubt REF --not-placed (no order id with it)") end
  else
    if #words ~= 2 then
      return ctx:usage("usage: smm doubt REF ORDER_ID (it was placed as that order) or " ..
        "smm doubt REF --not-placed")
    end
    id = words[2]:match("^%d+$") and args.tointeger(tonumber(words[2]))
    if not id or id < 1 then return ctx:usage("'" .. words[2] .. "' is not an order id") end
  end
  local book = ctx:book(true)
  local settled, err = book:resolve(ref, id)
  if not settled then return ctx:fail(err) end
  if output.json_mode() then
    output.json{ ref = ref, placed = id and true or false, order = id or nil }
  elseif id then
    output.say("ref ", ref, " recorded as placed: order ", id_text(id), " (smm sync follows it)")
  else
    output.say("ref ", ref, " recorded as not placed: the next add or batch with this ref sends it")
  end
  return 0
end

-- smm report [--since T] [--by day|service|panel] [--json] -------------------------------------
function M.report(ctx)
  local ok, problem = args.check(ctx, "report", { "since", "by", "book" })
  if not ok then return ctx:usage(problem) end
  if #ctx.args > 0 then return ctx:usage("'smm report' takes no arguments") end
  local by = ctx.flags.by or "day"
  if by ~= "day" and by ~= "service" and by ~= "panel" then
    return ctx:usage("option --by takes day, service or panel, got '" .. by .. "'")
  end
  local since
  if ctx.flags.since then
    since, problem = cli_book.since(ctx.flags.since)
    if not since then return ctx:usage(problem) end
  end
  local book = ctx:book(false)
  local groups, err = book:report{ since = since, by = by }
  if not groups then return ctx:fail(err) end
  -- (exact decimals: formatted here, whether the book hands strings or smm.money's values)
  for _, g in ipairs(groups) do g.charge = money.format(g.charge) end
  local all = { orders = groups.all.orders, charge = money.format(groups.all.charge) }
  if output.json_mode() then
    local list = output.array()
    for i, g in ipairs(groups) do list[i] = { key = g.key, orders = g.orders, charge = g.charge } end
    output.json{ by = by, since = cli_book.iso(since), groups = list,
      total = { orders = all.orders, charge = all.charge } }
    return 0
  end
  local title = ({ day = "DAY (UTC)", service = "SERVICE", panel = "PANEL" })[by]
  local rows = {}
  for i, g in ipairs(groups) do rows[i] = g end
  rows[#rows + 1] = { key = "total", orders = all.orders, charge = all.charge }
  output.print_table({
    { title = title, key = "key" },
    { title = "ORDERS", key = "orders", align = "right" },
    { title = "CHARGED", key = "charge", align = "right" },
  }, rows)
  return 0
end

M.EXIT = EXIT

return M
