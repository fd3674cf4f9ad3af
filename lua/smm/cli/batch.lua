-- smm batch FILE.csv: many orders from a CSV, crash-safe.
--
-- 1. Every row is read and checked (CSV syntax, fields, the service's rules, the price) before
--    anything is sent; one bad row and nothing is sent.
-- 2. The total (exact, smm.money) is set against the balance: --dry-run stops here; a short
--    balance stops here unless --force.
-- 3. Each row: its intent is journaled and synced, then `add` is sent, then its order id (or
--    failure) is journaled. Killed at any moment, the same command resumes: done rows are
--    skipped, rows in doubt (intent without answer, or an ambiguous failure) are listed and
--    never sent again unless named with --resend-ambiguous (or settled with --mark-placed).
-- 4. A result CSV (FILE.result.csv: line, service, link, order, price, error) and a summary;
--    --wait then follows every placed order to the end.
local csv = require "smm.cli.csv"
local journal = require "smm.cli.journal"
local order = require "smm.cli.order"
local output = require "smm.cli.output"
local args = require "smm.cli.args"
local config = require "smm.cli.config"
local commands = require "smm.cli.commands"
local money = require "smm.money"

local M = {}

local EXIT = commands.EXIT

-- Errors that would fail every following row as well: stop the run instead.
local STOP_CODES = { invalid_key = true, not_enough_funds = true, rate_limited = true }

local function normalise_header(name)
  return (name:gsub("^%s+", ""):gsub("%s+$", ""):lower():gsub("[%s%-]+", "_"))
end

-- CSV text -> rows { line =, order =, hash = } or nil, { "line N: message", ... }
function M.rows(text)
  local records, problem, line = csv.parse(text)
  if not records then return nil, { { line = line, message = problem:gsub("^line %d+: ", "") } } end
  if #records == 0 then return nil, { { line = 1,
    message = "the file is empty (a header row is needed)" } } end
  local header, columns, seen = records[1], {}, {}
  for i, raw in ipairs(header) do
    local name = normalise_header(raw)
    if name == "" or name:find("^#") then
      columns[i] = false -- a notes column: ignored
    elseif not name:find("^[%a_][%w_]*$") then
      return nil, { { line = header.line, message = "column " .. i ..
        " '" .. raw .. "' is not a field name" } }
    elseif name == "key" or name == "action" then
      return nil, { { line = header.line, message = "column '" .. name .. "' cannot be set from a CSV" } }
    elseif seen[name] then
      return nil, { { line = header.line, message = "column '" .. name .. "' appears twice" } }
    else
      seen[name] = true
      columns[i] = name
    end
  end
  if not seen.service then
    return nil, { { line = header.line, message = "the header has no 'service' column" } }
  end
  local rows, problems = {}, {}
  for r = 2, #records do
    local rec = records[r]
    if #rec > #header then
      problems[#problems + 1] = { line = rec.line, message = #rec .. " fields, but the header has " ..
        #header }
    else
      local o = {}
      for i, name in ipairs(columns) do
        local cell = rec[i]
        if name and cell then
          if order.LINES[name] then
            local lines = order.split_lines(cell)
            if #lines > 0 then o[name] = table.concat(lines, "\n") end
          else
            cell = cell:gsub("^%s+", ""):gsub("%s+$", "")
            if cell ~= "" then o[name] = cell end
          end
        end
      end
      if next(o) ~= nil then
        rows[#rows + 1] = { line = rec.line, order = o, hash = order.hash(o) }
      end
    end
  end
  if #problems > 0 then return nil, problems end
  return rows
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

local function line_list(text, flag)
  local out = {}
  for _, word in ipairs(text or {}) do
    for part in word:gmatch("[^,%s]+") do
      local n = args.tointeger(tonumber(part))
      if not n or n < 1 then return nil, "--" .. flag .. " takes CSV line numbers, got '" .. part .. "'" end
      out[#out + 1] = n
    end
  end
  return out
end

local function progress(live, done, total, cost, failed)
  local text = string.format("[%d/%d] cost %s, %d failed", done, total, money.format(cost), failed)
  if live then
    io.stderr:write("\r\27[K", text)
    io.stderr:flush()
  end
  return text
end

function M.run(ctx)
  local ok, problem = args.check(ctx, "batch",
    { "dry-run", "force", "wait", "journal", "result", "resend-ambiguous", "mark-placed" }, args.WAIT)
  if not ok then return ctx:usage(problem) end
  if #ctx.args ~= 1 then return ctx:usage("usage: smm batch FILE.csv [--dry-run] [--yes] [--wait]") end
  local path = ctx.args[1]
  local flags = ctx.flags
  local journal_path = flags.journal or (path .. ".journal")
  local result_path = flags.result or (path:gsub("%.[Cc][Ss][Vv]$", "") .. ".result.csv")
  if result_path == path then result_path = path .. ".result.csv" end
  local wait_opts
  wait_opts, problem = commands.wait_options(flags)
  if not wait_opts then return ctx:usage(problem) end
  local resend, mark = {}, {}
  local list
  list, problem = line_list(flags["resend-ambiguous"], "resend-ambiguous")
  if not list then return ctx:usage(problem) end
  for _, n in ipairs(list) do resend[n] = true end
  for _, pair in ipairs(flags["mark-placed"] or {}) do
    for item in pair:gmatch("[^,%s]+") do
      local l, id = item:match("^(%d+)=(%d+)$")
      if not l then return ctx:usage("--mark-placed takes LINE=ORDER_ID, got '" .. item .. "'") end
      mark[args.tointeger(tonumber(l))] = args.tointeger(tonumber(id))
    end
  end

  -- 1. read and check every row -----------------------------------------------------------
  local text, err = read_file(path)
  if not text then return ctx:usage("cannot read " .. tostring(err)) end
  local rows, problems = M.rows(text)
  local function report(list_of)
    for _, p in ipairs(list_of) do output.error(path .. ":" .. p.line .. ": " .. p.message) end
    output.error(#list_of .. " bad row" .. (#list_of == 1 and "" or "s") .. " in " .. path ..
      ": nothing was sent")
    return EXIT.error
  end
  if not rows then return report(problems) end
  local client = ctx:client()
  local services
  services, err = client:services()
  if not services then return ctx:fail(err) end
  problems = {}
  for _, row in ipairs(rows) do
    local clean, price = order.check(client, row.order)
    if not clean then
      problems[#problems + 1] = { line = row.line, message = price.message }
    else
      row.clean, row.price = clean, price
    end
  end
  if #problems > 0 then return report(problems) end

  -- 2. the journal: what earlier runs did --------------------------------------------------
  local state
  state, err = journal.read(journal_path)
  if not state then return ctx:usage(err) end
  local panel = config.printable_url(ctx.url)
  if state.open and state.open.panel and state.open.panel ~= panel then
    return ctx:usage(journal_path .. " was written for the panel " .. tostring(state.open.panel) ..
      ", not " .. panel .. ": use --journal FILE for a new run")
  end
  local by_line = {}
  for _, row in ipairs(rows) do by_line[row.line] = row end
  local changed = {}
  for line, j in pairs(state.rows) do
    local row = by_line[line]
    if not row then
      changed[#changed + 1] = { line = line,
        message = "the journal has this line but the CSV no longer does" }
    elseif row.hash ~= j.hash then
      changed[#changed + 1] = { line = line, message = "the row changed since " .. journal_path ..
        " recorded it (" .. (j.state == "done" and ("order " .. tostring(j.order)) or j.state) .. ")" }
    else
      row.journal = j
    end
  end
  if #changed > 0 then
    table.sort(changed, function(a, b) return a.line < b.line end)
    for _, p in ipairs(changed) do output.error(path .. ":" .. p.line .. ": " .. p.message) end
    output.error("refusing to resume: the CSV changed under the journal; restore it, or start a " ..
      "new run with --journal FILE")
    return EXIT.error
  end
  for line in pairs(resend) do
    local row = by_line[line]
    local s = row and row.journal and row.journal.state
    if s ~= "intent" and s ~= "ambiguous" then
      return ctx:usage("--resend-ambiguous " .. line .. ": that row is not in doubt")
    end
  end
  for line in pairs(mark) do
    local row = by_line[line]
    local s = row and row.journal and row.journal.state
    if s ~= "intent" and s ~= "ambiguous" then
      return ctx:usage("--mark-placed " .. line .. ": that row is not in doubt")
    end
  end

  local done, doubt, to_send = {}, {}, {}
  local total = "0"
  for _, row in ipairs(rows) do
    local s = row.journal and row.journal.state
    if s == "done" then
      done[#done + 1] = row
    elseif (s == "intent" or s == "ambiguous") and not resend[row.line] and not mark[row.line] then
      doubt[#doubt + 1] = row
    elseif not mark[row.line] then
      to_send[#to_send + 1] = row
      total = money.add(total, row.price)
    end
  end
  total = money.format(total)

  local balance
  balance, err = client:balance()
  if not balance then return ctx:fail(err) end
  local currency = balance.currency and (" " .. balance.currency) or ""
  local plan = string.format(
    "%s: %d row%s; %d placed earlier, %d in doubt, %d to send for %s%s; balance %s%s",
    path, #rows, #rows == 1 and "" or "s", #done, #doubt, #to_send, total, currency,
    tostring(balance.balance), currency)
  output.note(plan)
  if state.torn > 0 then output.warn(journal_path .. ": ignored " .. state.torn .. " torn line(s)") end
  local short = money.is_decimal(balance.balance) and money.compare(total, balance.balance) > 0
  if flags["dry-run"] then
    if output.json_mode() then
      output.json{ rows = #rows, done = #done, doubt = #doubt, to_send = #to_send, total = total,
        balance = balance.balance, currency = balance.currency, short = short, dry_run = true }
    end
    if short then output.warn("the balance is short by " .. money.format(money.sub(total,
      balance.balance))) end
    return 0
  end
  if short and not flags.force then
    output.error("the balance " .. tostring(balance.balance) .. " is short by " ..
      money.format(money.sub(total, balance.balance)) .. ": nothing was sent (--force to send anyway)")
    return EXIT.error
  end
  if #to_send > 0 or next(mark) then
    local confirmed = commands.confirm(ctx, "Place " .. #to_send .. " orders for " .. total .. currency ..
      "?")
    if confirmed ~= true then return confirmed end
  end

  -- 3. send, journaling before and after ----------------------------------------------------
  local lock
  lock, err = journal.lock(journal_path)
  if not lock then return ctx:usage(err) end
  local j
  j, err = journal.open(journal_path)
  if not j then journal.unlock(lock) return ctx:usage(err) end
  local live = output.isatty(2)
  local cost, failed, placed, stopped = "0", 0, 0, nil
  local new_doubt = {}
  local ran_ok, run_err = pcall(function()
    if not state.open then
      assert(j:write({ t = "open", csv = path:match("[^/]*$"), panel = panel }, true))
    end
    for line, id in pairs(mark) do
      local row = by_line[line]
      assert(j:write({ t = "done", line = line, hash = row.hash, order = id, price = row.price,
        manual = true }))
      row.journal = { state = "done", order = id, price = row.price, manual = true }
      done[#done + 1] = row
    end
    for line in pairs(resend) do
      assert(j:write({ t = "resend", line = line, hash = by_line[line].hash }))
    end
    for i, row in ipairs(to_send) do
      assert(j:write({ t = "intent", line = row.line, hash = row.hash }, true))
      local add = {}
      for k, v in pairs(row.clean) do add[k] = v end
      add.max_cost = row.price
      local res, add_err = client:add(add)
      local msg
      if res then
        assert(j:write({ t = "done", line = row.line, hash = row.hash, order = res.order,
          price = row.price }))
        row.journal = { state = "done", order = res.order, price = row.price }
        done[#done + 1] = row
        placed = placed + 1
        cost = money.add(cost, row.price)
        msg = string.format("line %d: order %d (%s)", row.line, res.order, row.price)
      elseif add_err.ambiguous then
        assert(j:write({ t = "ambiguous", line = row.line, hash = row.hash, error = add_err.message,
          kind = add_err.kind }, true))
        row.journal = { state = "ambiguous", error = add_err.message }
        new_doubt[#new_doubt + 1] = row
        msg = string.format("line %d: IN DOUBT: %s", row.line, add_err.message)
        stopped = "the panel's answer left an order in doubt"
      else
        assert(j:write({ t = "failed", line = row.line, hash = row.hash, error = add_err.message,
          kind = add_err.kind, code = add_err.code }))
        row.journal = { state = "failed", error = add_err.message }
        failed = failed + 1
        msg = string.format("line %d: failed: %s", row.line, add_err.message)
        if STOP_CODES[add_err.code] or add_err.kind == "network" or add_err.kind == "timeout" or
            add_err.kind == "http" then
          stopped = add_err.message
        end
      end
      local line_text = progress(live, i, #to_send, cost, failed)
      if live then
        if not res then io.stderr:write("\r\27[K", msg, "\n") end
      elseif not output.json_mode() then
        output.say(msg, "  ", line_text)
      end
      if stopped then break end
      -- Ctrl-C: the add in flight has finished and is journaled; nothing more is sent
      if ctx.interrupts and ctx.interrupts() > 0 then break end
    end
  end)
  if live then io.stderr:write("\r\27[K") io.stderr:flush() end
  j:close()
  journal.unlock(lock)
  if not ran_ok then error(run_err, 0) end

  -- 4. results ----------------------------------------------------------------------------
  for _, row in ipairs(new_doubt) do doubt[#doubt + 1] = row end
  table.sort(doubt, function(a, b) return a.line < b.line end)
  table.sort(done, function(a, b) return a.line < b.line end)
  local result_rows, untried = {}, 0
  local results_json = output.array()
  for _, row in ipairs(rows) do
    local js = row.journal or {}
    local status = js.state == "done" and "placed" or (js.state == "failed" and "failed") or
      ((js.state == "intent" or js.state == "ambiguous") and "in doubt") or "not sent"
    if status == "not sent" then untried = untried + 1 end
    local err_text = js.state == "done" and "" or (js.error or (status == "in doubt" and
      "the add was sent but no answer came back: check the panel" or ""))
    result_rows[#result_rows + 1] = { row.line, row.clean.service, order.target(row.clean),
      js.order and string.format("%d", js.order) or "", js.state == "done" and (js.price or row.price) or "",
      status, err_text }
    results_json[#results_json + 1] = { line = row.line, service = row.clean.service,
      link = order.target(row.clean), order = js.order, price = row.price, status = status,
      error = err_text ~= "" and err_text or nil }
  end
  local wrote, werr = csv.write_file(result_path,
    { "line", "service", "link", "order", "price", "status", "error" }, result_rows)
  if not wrote then output.warn("cannot write " .. result_path .. ": " .. tostring(werr)) end

  local summary = string.format("placed %d order%s for %s%s this run (%d in all); %d failed; %d in doubt%s",
    placed, placed == 1 and "" or "s", money.format(cost), currency, #done, failed, #doubt,
    untried > 0 and ("; " .. untried .. " not sent") or "")
  local sync_note = string.format("journal %s: %d syncs, %.1f ms each", journal_path, j.syncs,
    j.syncs > 0 and j.sync_time * 1000 / j.syncs or 0)
  if output.json_mode() then
    if not flags.wait then
      output.json{ placed = placed, cost = money.format(cost), done = #done, failed = failed,
        doubt = #doubt, not_sent = untried, rows = results_json, result_csv = result_path,
        journal = journal_path, stopped = stopped }
    end
  else
    output.say(summary)
    output.say("results in ", result_path)
    if not flags.quiet and os.getenv("SMM_DEBUG_SYNC") then output.say(sync_note) end
  end
  if stopped then output.error("stopped: " .. stopped) end
  if #doubt > 0 then
    local lines = {}
    for _, row in ipairs(doubt) do lines[#lines + 1] = tostring(row.line) end
    output.error(#doubt .. " row" .. (#doubt == 1 and " is" or "s are") .. " in doubt (the add may have " ..
      "been placed): line" .. (#doubt == 1 and " " or "s ") .. table.concat(lines, ", ") ..
      ". Check the panel's orders, then rerun with --mark-placed LINE=ORDER_ID or --resend-ambiguous LINE")
  end

  local code = 0
  if #doubt > 0 then code = EXIT.ambiguous
  elseif failed > 0 or untried > 0 then code = (#done == 0) and EXIT.error or EXIT.partial end
  if flags.wait and #done > 0 then
    local ids = {}
    for _, row in ipairs(done) do ids[#ids + 1] = row.journal.order end
    local wait_code = commands.follow(ctx, client, ids, wait_opts)
    if code == 0 then code = wait_code end
  elseif flags.wait and output.json_mode() then
    output.json(output.array())
  end
  return code
end

return M
