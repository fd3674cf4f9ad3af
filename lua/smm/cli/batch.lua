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
local validate = require "smm.validate"

local M = {}

local EXIT = commands.EXIT

-- Errors that would fail every following row as well: stop the run instead.
local STOP_CODES = { invalid_key = true, not_enough_funds = true, rate_limited = true }

local function normalise_header(name)
  return (name:gsub("^%s+", ""):gsub("%s+$", ""):lower():gsub("[%s%-]+", "_"))
end

-- Column names people write for the API's fields.
local ALIASES = { qty = "quantity", amount = "quantity", count = "quantity", url = "link",
  comment = "comments", group = "groups", service_id = "service", id = "service", user = "username" }

-- Is every letter of `short` in `long`, in order, starting with the same letter ("qty")?
local function abbreviates(short, long)
  if short:sub(1, 1) ~= long:sub(1, 1) then return false end
  local at = 1
  for i = 1, #short do
    at = long:find(short:sub(i, i), at, true)
    if not at then return false end
    at = at + 1
  end
  return true
end

-- The API field a column name most likely meant, or nil.
local function did_you_mean(name)
  if ALIASES[name] then return ALIASES[name] end
  local best, best_distance
  for field in pairs(validate.ADD_FIELDS) do
    local d = args.distance(name, field)
    if d <= 2 and (not best_distance or d < best_distance or (d == best_distance and field < best)) then
      best, best_distance = field, d
    end
  end
  if best then return best end
  for field in pairs(validate.ADD_FIELDS) do
    if #name >= 2 and abbreviates(name, field) and (not best or field < best) then best = field end
  end
  return best
end

-- CSV text -> rows { line =, order =, hash = } or nil, { "line N: message", ... }
function M.rows(text)
  local records, problem, line = csv.parse(text)
  if not records then return nil, { { line = line, message = problem:gsub("^line %d+: ", "") } } end
  if #records == 0 then return nil, { { line = 1,
    message = "the file is empty (a header row is needed)" } } end
  local header, columns, seen = records[1], {}, {}
  for i, raw in ipairs(header) do
    -- a field the panel takes beyond the API's own is named as such: a misspelt column
    -- (`Qty`) must not travel to the panel as an extra field while the real one is missing
    local extra = raw:match("^%s*[Ff][Ii][Ee][Ll][Dd]:(.*)$")
    local name = normalise_header(extra or raw)
    if name == "" or name:find("^#") then
      columns[i] = false -- a notes column: ignored
    elseif not name:find("^[%a_][%w_]*$") then
      return nil, { { line = header.line, message = "column " .. i ..
        " '" .. raw .. "' is not a field name" } }
    elseif name == "key" or name == "action" then
      return nil, { { line = header.line, message = "column '" .. name .. "' cannot be set from a CSV" } }
    elseif not extra and not validate.ADD_FIELDS[name] then
      local guess = did_you_mean(name)
      return nil, { { line = header.line, message = "unknown column '" .. raw .. "'" ..
        (guess and (": did you mean '" .. guess .. "'?") or "") ..
        " (a field the panel takes beyond the API's own: name the column 'field:" .. raw .. "')" } }
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
  if live then output.progress(done, total, text) end
  return text
end

-- The steps of `smm batch`. They share one table, `run`: the settings from the command line,
-- then what each step learns (the rows, the journal's state, the plan, the outcomes). A step
-- that ends the command returns its exit code; one that lets it go on returns nil.

-- Every flag problem is a usage error before the CSV is read or the panel is asked.
local function settings(ctx)
  local ok, problem = args.check(ctx, "batch",
    { "dry-run", "force", "wait", "journal", "result", "resend-ambiguous", "mark-placed" }, args.WAIT)
  if not ok then return nil, ctx:usage(problem) end
  if #ctx.args ~= 1 then return nil, ctx:usage("usage: smm batch FILE.csv [--dry-run] [--yes] [--wait]") end
  local path = ctx.args[1]
  local flags = ctx.flags
  local run = { path = path, flags = flags, resend = {}, mark = {},
    journal_path = flags.journal or (path .. ".journal"),
    result_path = flags.result or (path:gsub("%.[Cc][Ss][Vv]$", "") .. ".result.csv") }
  if run.result_path == path then run.result_path = path .. ".result.csv" end
  run.wait_opts, problem = commands.wait_options(flags)
  if not run.wait_opts then return nil, ctx:usage(problem) end
  local list
  list, problem = line_list(flags["resend-ambiguous"], "resend-ambiguous")
  if not list then return nil, ctx:usage(problem) end
  for _, n in ipairs(list) do run.resend[n] = true end
  for _, pair in ipairs(flags["mark-placed"] or {}) do
    for item in pair:gmatch("[^,%s]+") do
      local l, id = item:match("^(%d+)=(%d+)$")
      if not l then return nil, ctx:usage("--mark-placed takes LINE=ORDER_ID, got '" .. item .. "'") end
      run.mark[args.tointeger(tonumber(l))] = args.tointeger(tonumber(id))
    end
  end
  return run
end

-- "path:line: message" for each problem, then that nothing was sent.
local function refuse_rows(path, problems)
  for _, p in ipairs(problems) do output.error(path .. ":" .. p.line .. ": " .. p.message) end
  output.error(#problems .. " bad row" .. (#problems == 1 and "" or "s") .. " in " .. path ..
    ": nothing was sent")
  return EXIT.error
end

-- One bad row and nothing is sent: every row and its price is checked before anything else.
local function read_and_check(ctx, run)
  local text, err = read_file(run.path)
  if not text then return ctx:usage("cannot read " .. tostring(err)) end
  local rows, problems = M.rows(text)
  if not rows then return refuse_rows(run.path, problems) end
  run.rows, run.client = rows, ctx:client()
  local services
  services, err = run.client:services()
  if not services then return ctx:fail(err) end
  problems = {}
  for _, row in ipairs(rows) do
    local clean, price = order.check(run.client, row.order)
    if not clean then
      problems[#problems + 1] = { line = row.line, message = price.message }
    else
      row.clean, row.price = clean, price
    end
  end
  if #problems > 0 then return refuse_rows(run.path, problems) end
end

-- The usage error for a --resend-ambiguous or --mark-placed line that is not in doubt, or nil.
local function not_in_doubt(ctx, run, lines, flag)
  for line in pairs(lines) do
    local row = run.by_line[line]
    local s = row and row.journal and row.journal.state
    if s ~= "intent" and s ~= "ambiguous" then
      return ctx:usage("--" .. flag .. " " .. line .. ": that row is not in doubt")
    end
  end
end

-- A resumed run must meet the journal it left (same panel, same rows); each row gets row.journal.
local function match_journal(ctx, run)
  local earlier, err = journal.read(run.journal_path)
  if not earlier then return ctx:usage(err) end
  run.earlier, run.panel = earlier, config.printable_url(ctx.url)
  if earlier.open and earlier.open.panel and earlier.open.panel ~= run.panel then
    return ctx:usage(run.journal_path .. " was written for the panel " ..
      tostring(earlier.open.panel) .. ", not " .. run.panel .. ": use --journal FILE for a new run")
  end
  run.by_line = {}
  for _, row in ipairs(run.rows) do run.by_line[row.line] = row end
  local changed = {}
  for line, j in pairs(earlier.rows) do
    local row = run.by_line[line]
    if not row then
      changed[#changed + 1] = { line = line,
        message = "the journal has this line but the CSV no longer does" }
    elseif row.hash ~= j.hash then
      changed[#changed + 1] = { line = line, message = "the row changed since " .. run.journal_path ..
        " recorded it (" .. (j.state == "done" and ("order " .. tostring(j.order)) or j.state) .. ")" }
    else
      row.journal = j
    end
  end
  if #changed > 0 then
    table.sort(changed, function(a, b) return a.line < b.line end)
    for _, p in ipairs(changed) do output.error(run.path .. ":" .. p.line .. ": " .. p.message) end
    output.error("refusing to resume: the CSV changed under the journal; restore it, or start a " ..
      "new run with --journal FILE")
    return EXIT.error
  end
  return not_in_doubt(ctx, run, run.resend, "resend-ambiguous") or
    not_in_doubt(ctx, run, run.mark, "mark-placed")
end

-- Rows done earlier are skipped, rows in doubt held back unless named; the rest and its total.
local function plan(run)
  run.done, run.doubt, run.to_send = {}, {}, {}
  local total = "0"
  for _, row in ipairs(run.rows) do
    local s = row.journal and row.journal.state
    if s == "done" then
      run.done[#run.done + 1] = row
    elseif (s == "intent" or s == "ambiguous") and not run.resend[row.line] and not run.mark[row.line] then
      run.doubt[#run.doubt + 1] = row
    elseif not run.mark[row.line] then
      run.to_send[#run.to_send + 1] = row
      total = money.add(total, row.price)
    end
  end
  run.total = money.format(total)
end

-- Money is spent only with a balance that covers it (or --force) and a yes; --dry-run ends here.
local function confirm(ctx, run)
  local balance, err = run.client:balance()
  if not balance then return ctx:fail(err) end
  local flags, total = run.flags, run.total
  run.currency = balance.currency and (" " .. balance.currency) or ""
  output.note(string.format(
    "%s: %d row%s; %d placed earlier, %d in doubt, %d to send for %s%s; balance %s%s",
    run.path, #run.rows, #run.rows == 1 and "" or "s", #run.done, #run.doubt, #run.to_send, total,
    run.currency, tostring(balance.balance), run.currency))
  if run.earlier.torn > 0 then
    output.warn(run.journal_path .. ": ignored " .. run.earlier.torn .. " torn line(s)")
  end
  local short = money.is_decimal(balance.balance) and money.compare(total, balance.balance) > 0
  if flags["dry-run"] then
    if output.json_mode() then
      output.json{ rows = #run.rows, done = #run.done, doubt = #run.doubt, to_send = #run.to_send,
        total = total, balance = balance.balance, currency = balance.currency, short = short,
        dry_run = true }
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
  if #run.to_send > 0 or next(run.mark) then
    local confirmed = commands.confirm(ctx, "Place " .. #run.to_send .. " orders for " .. total ..
      run.currency .. "?")
    if confirmed ~= true then return confirmed end
  end
end

-- A row whose outcome the journal could not record (a full disk): said on stderr at once, with
-- what the user needs to settle it by hand; the run stops and ends with EXIT.ambiguous.
local function unrecorded(run, row, what, advice, werr)
  run.unrecorded = run.unrecorded + 1
  run.stopped = werr
  output.error(string.format("line %d (service %s, %s): %s, but %s: %s", row.line,
    tostring(row.clean.service), order.target(row.clean), what, werr, advice))
end

-- The journal says what became of every add, so a rerun never places a row twice: the row's line.
local function record_outcome(run, row, res, add_err)
  local j = run.journal_file
  if res then
    local wrote, werr = j:write({ t = "done", line = row.line, hash = row.hash, order = res.order,
      price = row.price })
    if not wrote then
      unrecorded(run, row, string.format("order %d was placed (%s)", res.order, row.price),
        string.format("once there is room, run again with --mark-placed %d=%d", row.line,
          res.order), werr)
    end
    row.journal = { state = "done", order = res.order, price = row.price }
    run.done[#run.done + 1] = row
    run.placed = run.placed + 1
    run.cost = money.add(run.cost, row.price)
    return string.format("line %d: order %d (%s)", row.line, res.order, row.price)
  elseif add_err.ambiguous then
    local wrote, werr = j:write({ t = "ambiguous", line = row.line, hash = row.hash,
      error = add_err.message, kind = add_err.kind }, true)
    if not wrote then
      unrecorded(run, row, "the order may have been placed (" .. add_err.message .. ")",
        "check the panel's orders, then run again with --mark-placed " .. row.line ..
        "=ORDER_ID or --resend-ambiguous " .. row.line, werr)
    end
    row.journal = { state = "ambiguous", error = add_err.message }
    run.new_doubt[#run.new_doubt + 1] = row
    run.stopped = "the panel's answer left an order in doubt"
    return string.format("line %d: IN DOUBT: %s", row.line, add_err.message)
  end
  local wrote, werr = j:write({ t = "failed", line = row.line, hash = row.hash,
    error = add_err.message, kind = add_err.kind, code = add_err.code })
  if not wrote then
    unrecorded(run, row, "the panel refused the order, nothing was placed (" .. add_err.message ..
      ")", "the journal will show this row in doubt: run again with --resend-ambiguous " ..
      row.line, werr)
  end
  row.journal = { state = "failed", error = add_err.message }
  run.failed = run.failed + 1
  if STOP_CODES[add_err.code] or add_err.kind == "network" or add_err.kind == "timeout" or
      add_err.kind == "http" then
    run.stopped = add_err.message
  end
  return string.format("line %d: failed: %s", row.line, add_err.message)
end

-- Before anything is sent, a journal that cannot be written ends the run cleanly.
local function recorded(ok_written, werr)
  if not ok_written then error({ journal = werr }, 0) end
end

-- --mark-placed and --resend-ambiguous settle rows in doubt: journaled before any row is sent.
local function record_settled(run)
  local j = run.journal_file
  if not run.earlier.open then
    recorded(j:write({ t = "open", csv = run.path:match("[^/]*$"), panel = run.panel }, true))
  end
  for line, id in pairs(run.mark) do
    local row = run.by_line[line]
    recorded(j:write({ t = "done", line = line, hash = row.hash, order = id, price = row.price,
      manual = true }))
    row.journal = { state = "done", order = id, price = row.price, manual = true }
    run.done[#run.done + 1] = row
  end
  for line in pairs(run.resend) do
    recorded(j:write({ t = "resend", line = line, hash = run.by_line[line].hash }))
  end
end

-- Intent synced before each add, outcome after: a kill at any moment leaves every row known or
-- in doubt. Stops at an error every next row would meet, a row in doubt, or the first Ctrl-C.
local function send_rows(ctx, run)
  for i, row in ipairs(run.to_send) do
    local intended, werr = run.journal_file:write({ t = "intent", line = row.line, hash = row.hash }, true)
    if not intended then
      run.stopped = werr .. ": line " .. row.line .. " and the rows after it were not sent"
      break
    end
    local res, add_err = run.client:add(row.clean, { max_cost = row.price })
    local msg = record_outcome(run, row, res, add_err)
    local line_text = progress(run.live, i, #run.to_send, run.cost, run.failed)
    if run.live then
      if not res then io.stderr:write("\r\27[K", msg, "\n") end
    elseif not output.json_mode() then
      output.say(msg, "  ", line_text)
    end
    if run.stopped then break end
    -- Ctrl-C: the add in flight has finished and is journaled; nothing more is sent
    if ctx.interrupts and ctx.interrupts() > 0 then break end
  end
end

-- The journal is closed and the lock released whatever happens while sending.
local function send(ctx, run)
  local j, err = journal.open(run.journal_path)
  if not j then journal.unlock(run.lock) return ctx:usage(err) end
  run.journal_file, run.live = j, output.isatty(2)
  run.cost, run.failed, run.placed, run.unrecorded, run.new_doubt = "0", 0, 0, 0, {}
  local ran_ok, run_err = pcall(function()
    record_settled(run)
    send_rows(ctx, run)
  end)
  if run.live then io.stderr:write("\r\27[K") io.stderr:flush() end
  j:close()
  journal.unlock(run.lock)
  if not ran_ok and type(run_err) == "table" and run_err.journal then
    output.error(tostring(run_err.journal) .. ": nothing was sent")
    return EXIT.error
  end
  if not ran_ok then error(run_err, 0) end
end

-- What became of each row, for the user: the result CSV, and the rows of the --json summary.
local function write_results(run)
  for _, row in ipairs(run.new_doubt) do run.doubt[#run.doubt + 1] = row end
  table.sort(run.doubt, function(a, b) return a.line < b.line end)
  table.sort(run.done, function(a, b) return a.line < b.line end)
  local result_rows = {}
  run.untried, run.results_json = 0, output.array()
  for _, row in ipairs(run.rows) do
    local js = row.journal or {}
    local status = js.state == "done" and "placed" or (js.state == "failed" and "failed") or
      ((js.state == "intent" or js.state == "ambiguous") and "in doubt") or "not sent"
    if status == "not sent" then run.untried = run.untried + 1 end
    local err_text = js.state == "done" and "" or (js.error or (status == "in doubt" and
      "the add was sent but no answer came back: check the panel" or ""))
    result_rows[#result_rows + 1] = { row.line, row.clean.service, order.target(row.clean),
      js.order and string.format("%d", js.order) or "", js.state == "done" and (js.price or row.price) or "",
      status, err_text }
    run.results_json[#run.results_json + 1] = { line = row.line, service = row.clean.service,
      link = order.target(row.clean), order = js.order, price = row.price, status = status,
      error = err_text ~= "" and err_text or nil }
  end
  local wrote, werr = csv.write_file(run.result_path,
    { "line", "service", "link", "order", "price", "status", "error" }, result_rows)
  if not wrote then output.warn("cannot write " .. run.result_path .. ": " .. tostring(werr)) end
end

-- The outcome in a few lines (why it stopped, how to settle rows in doubt) and its exit code.
local function summarise(run)
  local flags, j, doubt = run.flags, run.journal_file, run.doubt
  if output.json_mode() then
    if not flags.wait then
      output.json{ placed = run.placed, cost = money.format(run.cost), done = #run.done,
        failed = run.failed, doubt = #doubt, not_sent = run.untried, rows = run.results_json,
        result_csv = run.result_path, journal = run.journal_path, stopped = run.stopped }
    end
  else
    output.say(string.format("placed %d order%s for %s%s this run (%d in all); %d failed; %d in doubt%s",
      run.placed, run.placed == 1 and "" or "s", money.format(run.cost), run.currency, #run.done,
      run.failed, #doubt, run.untried > 0 and ("; " .. run.untried .. " not sent") or ""))
    output.say("results in ", run.result_path)
    if not flags.quiet and os.getenv("SMM_DEBUG_SYNC") then
      output.say(string.format("journal %s: %d syncs, %.1f ms each", run.journal_path, j.syncs,
        j.syncs > 0 and j.sync_time * 1000 / j.syncs or 0))
    end
  end
  if run.stopped then output.error("stopped: " .. run.stopped) end
  if #doubt > 0 then
    local lines = {}
    for _, row in ipairs(doubt) do lines[#lines + 1] = tostring(row.line) end
    output.error(#doubt .. " row" .. (#doubt == 1 and " is" or "s are") .. " in doubt (the add may have " ..
      "been placed): line" .. (#doubt == 1 and " " or "s ") .. table.concat(lines, ", ") ..
      ". Check the panel's orders, then rerun with --mark-placed LINE=ORDER_ID or --resend-ambiguous LINE")
  end
  if #doubt > 0 or run.unrecorded > 0 then return EXIT.ambiguous end
  if run.failed > 0 or run.untried > 0 then return (#run.done == 0) and EXIT.error or EXIT.partial end
  return 0
end

-- --wait follows every placed order to the end; the batch's own failure code wins over the wait's.
local function follow(ctx, run, code)
  if run.flags.wait and #run.done > 0 then
    local ids = {}
    for _, row in ipairs(run.done) do ids[#ids + 1] = row.journal.order end
    local wait_code = commands.follow(ctx, run.client, ids, run.wait_opts)
    if code == 0 then code = wait_code end
  elseif run.flags.wait and output.json_mode() then
    output.json(output.array())
  end
  return code
end

function M.run(ctx)
  local run, code = settings(ctx)
  if not run then return code end
  code = read_and_check(ctx, run)
  if code then return code end
  -- The lock comes first and is held through the question: a plan read without it could be
  -- made stale by another run placing the same rows while this one waits at its [y/N].
  local err
  run.lock, err = journal.lock(run.journal_path)
  if not run.lock then return ctx:usage(err) end
  code = match_journal(ctx, run) or plan(run) or confirm(ctx, run)
  if code then journal.unlock(run.lock) return code end
  code = send(ctx, run) -- releases the lock
  if code then return code end
  write_results(run)
  return follow(ctx, run, summarise(run))
end

return M
