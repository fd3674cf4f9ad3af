-- smm batch FILE.csv: many orders from a CSV, through the order book.
--
-- 1. Every row is read and checked (CSV syntax, fields, the service's rules, the price) before
--    anything is sent; one bad row and nothing is sent.
-- 2. Each row has a ref: its `ref` column, else one derived from the file and the line
--    (smm.cli.book.row_ref). The book says what became of each ref in earlier runs: placed
--    rows are skipped, rows in doubt are listed and never sent again until `smm doubt` settles
--    them, a row changed since the book recorded it stops the run.
-- 3. The total (exact, smm.money) is set against the balance: --dry-run stops here; a short
--    balance stops here unless --force.
-- 4. Rows go out N at a time (--concurrency N, default 1) through client:batch: every intent is
--    committed to the book before the requests leave, each answer recorded after. Killed at any
--    moment, the same command resumes; at most N rows are left in doubt.
-- 5. A result CSV (FILE.result.csv) and a summary; --wait then follows every placed order.
-- A journal of an older smm (FILE.csv.journal) is imported into the book first (legacy_journal).
local csv = require "smm.cli.csv"
local cli_book = require "smm.cli.book"
local legacy = require "smm.cli.legacy_journal"
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
-- A row's fingerprint (row.hash: order.hash of its order) is made when first asked for: only an
-- old journal's import compares it (FNV-1a in plain arithmetic: 0.1 s for 2,000 rows).
local ROW = { __index = function(row, name)
  if name ~= "hash" then return nil end
  local hash = order.hash(row.order)
  rawset(row, "hash", hash)
  return hash
end }

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
    elseif name == "ref" and not extra then
      if seen.ref then return nil, { { line = header.line, message = "column 'ref' appears twice" } } end
      seen.ref = true
      columns[i] = "ref"
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
  local rows, problems, refs = {}, {}, {}
  for r = 2, #records do
    local rec = records[r]
    if #rec > #header then
      problems[#problems + 1] = { line = rec.line, message = #rec .. " fields, but the header has " ..
        #header }
    else
      local o, ref = {}, nil
      for i, name in ipairs(columns) do
        local cell = rec[i]
        if name == "ref" then
          ref = cell and cell:gsub("^%s+", ""):gsub("%s+$", "") or ""
        elseif name and cell then
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
        if seen.ref and (ref == "" or #ref > 200 or ref:find("%c")) then
          problems[#problems + 1] = { line = rec.line, message = "the ref must be 1 to 200 characters " ..
            "without control characters" }
        elseif ref and refs[ref] then
          problems[#problems + 1] = { line = rec.line, message = "the ref '" .. ref ..
            "' is the ref of line " .. refs[ref] .. " too: a ref names one order" }
        end
        if ref then refs[ref] = refs[ref] or rec.line end
        rows[#rows + 1] = setmetatable({ line = rec.line, order = o, ref = ref }, ROW)
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

local function progress(live, done, total, cost, failed)
  local text = string.format("[%d/%d] cost %s, %d failed", done, total, money.format(cost), failed)
  if live then output.progress(done, total, text) end
  return text
end

-- The steps of `smm batch`. They share one table, `run`: the settings from the command line,
-- then what each step learns (the rows, what the book knows of them, the plan, the outcomes). A
-- step that ends the command returns its exit code; one that lets it go on returns nil.

-- Every flag problem is a usage error before the CSV is read or the panel is asked.
local function settings(ctx)
  local ok, problem = args.check(ctx, "batch",
    { "dry-run", "force", "wait", "result", "concurrency", "book" }, args.WAIT)
  if not ok then return nil, ctx:usage(problem) end
  if #ctx.args ~= 1 then
    return nil, ctx:usage("usage: smm batch FILE.csv [--dry-run] [--yes] [--wait] [--concurrency N]")
  end
  local path = ctx.args[1]
  local flags = ctx.flags
  local run = { path = path, flags = flags, concurrency = 1,
    result_path = flags.result or (path:gsub("%.[Cc][Ss][Vv]$", "") .. ".result.csv") }
  if run.result_path == path then run.result_path = path .. ".result.csv" end
  if flags.concurrency then
    local n = args.tointeger(args.to_number(flags.concurrency))
    if not n or n < 1 or n > 64 then
      return nil, ctx:usage("option --concurrency must be a whole number from 1 to 64, got '" ..
        tostring(flags.concurrency) .. "'")
    end
    run.concurrency = n
    ctx.client_options = { concurrency = n }
  end
  run.wait_opts, problem = commands.wait_options(flags)
  if not run.wait_opts then return nil, ctx:usage(problem) end
  return run
end

-- "path:line: message" for each problem, then that nothing was sent.
local function refuse_rows(path, problems)
  for _, p in ipairs(problems) do output.error(path .. ":" .. p.line .. ": " .. p.message) end
  output.error(#problems .. " bad row" .. (#problems == 1 and "" or "s") .. " in " .. path ..
    ": nothing was sent")
  return EXIT.error
end

-- One bad row and nothing is sent: every row and its price is checked before anything else;
-- then the book is opened (and proved writable).
local function read_and_check(ctx, run)
  local text, err = read_file(run.path)
  if not text then return ctx:usage("cannot read " .. tostring(err)) end
  local rows, problems = M.rows(text)
  if not rows then return refuse_rows(run.path, problems) end
  run.rows, run.client = rows, ctx:client()
  local absolute = cli_book.absolute_path(run.path)
  run.by_line = {}
  for _, row in ipairs(rows) do
    row.ref = row.ref or cli_book.row_ref(absolute, row.line)
    run.by_line[row.line] = row
  end
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
  run.book = ctx:book(true)
  run.client = ctx:client()
end

-- A batch journaled by an older smm (FILE.csv.journal) is imported into the book, then resumed.
local function import_old_journal(ctx, run)
  local path = legacy.path(run.path)
  if not legacy.exists(path) then return end
  if legacy.exists(path .. ".lock") then
    output.error(path .. ".lock exists: an older smm batch may still be running on this file; " ..
      "nothing was sent; run again once it has ended (remove the lock if none is running)")
    return EXIT.error
  end
  local journal, err = legacy.read(path)
  if not journal then return ctx:usage("cannot read the old journal " .. tostring(err)) end
  local panel = config.printable_url(ctx.url)
  if journal.open and journal.open.panel and journal.open.panel ~= panel then
    output.error(path .. " (an older smm's journal) was written for the panel " ..
      tostring(journal.open.panel) ..
      ", not " .. panel .. ": nothing was sent; run it against that panel, or move the journal away")
    return EXIT.error
  end
  local changed = {}
  for line, j in pairs(journal.rows) do
    local row = run.by_line[line]
    if not row or row.hash ~= j.hash then changed[#changed + 1] = line end
  end
  if #changed > 0 then
    table.sort(changed)
    for _, line in ipairs(changed) do
      output.error(run.path .. ":" .. line .. ": the row changed since the old journal " .. path ..
        " recorded it")
    end
    output.error("refusing to import the old journal: restore the CSV as it was journaled; nothing was sent")
    return EXIT.error
  end
  local counts
  counts, err = legacy.import(run.book, run.client.url, journal, run.by_line)
  if not counts then return ctx:fail(err, "nothing was sent") end
  local kept = path .. ".imported"
  os.rename(path, kept)
  output.note(string.format("imported the old journal %s into the book %s: %d placed, %d in doubt; " ..
    "the journal is kept as %s", path, run.book.name, counts.placed, counts.doubt, kept))
end

-- What the book knows of each row: placed earlier (skipped), in doubt (held back), failed
-- (provably not placed: sent again) or nothing (sent). A row that changed under its ref stops all.
local function plan(ctx, run)
  run.done, run.doubt, run.to_send = {}, {}, {}
  local total, changed = "0", {}
  for _, row in ipairs(run.rows) do
    local rec, err = run.book:get(row.ref)
    if err then return ctx:fail(err, "nothing was sent") end
    if rec and not cli_book.same_fields(rec.fields, row.clean) then
      changed[#changed + 1] = { row = row, rec = rec }
    elseif rec and cli_book.PLACED[rec.state] then
      row.order_id, row.state = rec.order_id, "placed"
      run.done[#run.done + 1] = row
    elseif rec and cli_book.IN_DOUBT[rec.state] then
      row.state, row.error = "in doubt", rec.error
      run.doubt[#run.doubt + 1] = row
    else
      run.to_send[#run.to_send + 1] = row
      total = money.add(total, row.price)
    end
  end
  if #changed > 0 then
    for _, c in ipairs(changed) do
      output.error(string.format("%s:%d: the row changed since the book recorded it as %s (%s)", run.path,
        c.row.line, c.row.ref,
        c.rec.order_id and ("order " .. string.format("%d", c.rec.order_id)) or c.rec.state))
    end
    output.error("refusing to send: the CSV changed under refs the book already has; restore those rows, " ..
      "or put new orders in new rows or a new file; nothing was sent")
    return EXIT.error
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
  local short = money.is_decimal(balance.balance) and money.compare(total, balance.balance) > 0
  if flags["dry-run"] then
    if output.json_mode() then
      output.json{ rows = #run.rows, done = #run.done, doubt = #run.doubt, to_send = #run.to_send,
        total = total, balance = balance.balance, currency = balance.currency, short = short,
        dry_run = true, book = run.book.name }
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
  if #run.to_send > 0 then
    local confirmed = commands.confirm(ctx, "Place " .. #run.to_send .. " orders for " .. total ..
      run.currency .. "?")
    if confirmed ~= true then return confirmed end
  end
end

local function describe(row)
  return string.format("line %d (ref %s, service %s, %s)", row.line, row.ref, tostring(row.clean.service),
    order.target(row.clean))
end

-- What one add ended in, for the row and the run; returns the line to show.
local function record_outcome(run, row, res, add_err)
  if res and res.recorded then
    -- another run (or machine) placed this ref meanwhile: the book sent nothing
    row.order_id, row.state = res.order, "placed"
    run.done[#run.done + 1] = row
    return string.format("line %d: order %d placed by another run (nothing sent)", row.line, res.order)
  elseif res then
    row.order_id, row.state = res.order, "placed"
    run.done[#run.done + 1] = row
    run.placed = run.placed + 1
    run.cost = money.add(run.cost, row.price)
    if res.book_error then
      -- placed, and the book could not say so: the one fact the user needs, on stderr, now
      run.unrecorded = run.unrecorded + 1
      run.stopped = tostring(res.book_error)
      output.error(string.format("%s: order %d was placed (%s), but the book could not record it: %s; " ..
        "once the book works again: smm doubt %s %d", describe(row), res.order, row.price,
        tostring(res.book_error), row.ref, res.order))
    end
    return string.format("line %d: order %d (%s)", row.line, res.order, row.price)
  end
  if add_err.kind == "book" and add_err.code == "in_doubt" then
    row.state, row.error = "in doubt", add_err.message
    run.new_doubt[#run.new_doubt + 1] = row
    return string.format("line %d: in doubt (another run is sending it, or stopped before its answer)",
      row.line)
  elseif add_err.kind == "book" then
    -- the intent could not be committed: this row was not sent, and neither is any after it
    row.state, row.error = "not sent", add_err.message
    run.book_failed = true
    run.stopped = add_err.message .. ": line " .. row.line .. " and the rows after it were not sent"
    return string.format("line %d: not sent: %s", row.line, add_err.message)
  elseif add_err.ambiguous then
    row.state, row.error = "in doubt", add_err.message
    run.new_doubt[#run.new_doubt + 1] = row
    run.stopped = "the panel's answer left an order in doubt"
    return string.format("line %d: IN DOUBT: %s", row.line, add_err.message)
  end
  row.state, row.error = "failed", add_err.message
  run.failed = run.failed + 1
  if add_err.book_error then
    -- refused by the panel, but the book still says "sending": the next run holds it in doubt
    output.warn(describe(row) .. ": the panel refused it, but the book could not record that (" ..
      tostring(add_err.book_error) .. "): " .. cli_book.settle_advice(row.ref))
  end
  if STOP_CODES[add_err.code] or add_err.kind == "network" or add_err.kind == "timeout" or
      add_err.kind == "http" then
    run.stopped = add_err.message
  end
  return string.format("line %d: failed: %s", row.line, add_err.message)
end

-- N rows at a time through client:batch (each intent committed before its request), in calls of
-- CHUNK_WINDOWS groups of N: within a call the book's work for one group is done while the next
-- group's requests travel (client:batch's window), so at most 2N rows are claimed and not yet
-- answered at any moment. Stops, after the group, at an error every next row would meet, a row
-- in doubt, a book that fails; at the first Ctrl-C nothing new is sent. Long calls: a call's
-- first intents are committed before anything travels and its last answers recorded after, a
-- few ms each (at 4 groups a call that was 0.84 -> 0.77 of the bare adds' rate).
local CHUNK_WINDOWS = 64
local function send_rows(ctx, run)
  local live = output.isatty(2)
  local sent = 0
  local i = 1
  while i <= #run.to_send do
    -- Ctrl-C: nothing new is sent (no intent is committed for a request that would not leave)
    if ctx.interrupts and ctx.interrupts() > 0 then break end
    local chunk, calls = {}, {}
    for j = i, math.min(i + CHUNK_WINDOWS * run.concurrency - 1, #run.to_send) do
      local row = run.to_send[j]
      chunk[#chunk + 1] = row
      calls[#calls + 1] = { "add", row.clean, { max_cost = row.price, ref = row.ref } }
    end
    i = i + #chunk
    local seen = {}
    local function take(k, result)
      if seen[k] or not result then return end
      seen[k] = true
      local msg = record_outcome(run, chunk[k], result.value, result.err)
      sent = sent + 1
      local line_text = progress(live, sent, #run.to_send, run.cost, run.failed)
      if live then
        if not result.value then io.stderr:write("\r\27[K", msg, "\n") end
      elseif not output.json_mode() then
        output.say(msg, "  ", line_text)
      end
    end
    -- each group's rows are taken as the group ends, so that a row that stops the run (or a
    -- Ctrl-C) stops it there: the rows after its group are not sent (those claimed already are
    -- recorded as not placed by client:batch, not left in doubt)
    local results = run.client:batch(calls, { window = run.concurrency, stop = function(k, result)
      take(k, result)
      return run.stopped ~= nil or (ctx.interrupts ~= nil and ctx.interrupts() > 0)
    end })
    for k = 1, #chunk do take(k, results[k]) end
    if run.stopped then break end
  end
  if live then io.stderr:write("\r\27[K") io.stderr:flush() end
end

-- What became of each row, for the user: the result CSV, and the rows of the --json summary.
local function write_results(run)
  for _, row in ipairs(run.new_doubt) do run.doubt[#run.doubt + 1] = row end
  table.sort(run.doubt, function(a, b) return a.line < b.line end)
  table.sort(run.done, function(a, b) return a.line < b.line end)
  local result_rows = {}
  run.untried, run.results_json = 0, output.array()
  for _, row in ipairs(run.rows) do
    local status = row.state or "not sent"
    if status == "not sent" then run.untried = run.untried + 1 end
    local err_text = status == "placed" and "" or (row.error or (status == "in doubt" and
      "the add may have been placed: " .. cli_book.settle_advice(row.ref) or ""))
    local id = row.order_id and string.format("%d", row.order_id) or ""
    result_rows[#result_rows + 1] = { row.line, row.clean.service, order.target(row.clean), id,
      status == "placed" and row.price or "", status, err_text, row.ref }
    run.results_json[#run.results_json + 1] = { line = row.line, ref = row.ref, service = row.clean.service,
      link = order.target(row.clean), order = row.order_id, price = row.price, status = status,
      error = err_text ~= "" and err_text or nil }
  end
  local wrote, werr = csv.write_file(run.result_path,
    { "line", "service", "link", "order", "price", "status", "error", "ref" }, result_rows)
  if not wrote then output.warn("cannot write " .. run.result_path .. ": " .. tostring(werr)) end
end

-- The outcome in a few lines (why it stopped, how to settle rows in doubt) and its exit code.
local function summarise(run)
  local flags, doubt = run.flags, run.doubt
  if output.json_mode() then
    if not flags.wait then
      output.json{ placed = run.placed, cost = money.format(run.cost), done = #run.done,
        failed = run.failed, doubt = #doubt, not_sent = run.untried, rows = run.results_json,
        result_csv = run.result_path, book = run.book.name, stopped = run.stopped }
    end
  else
    output.say(string.format("placed %d order%s for %s%s this run (%d in all); %d failed; %d in doubt%s",
      run.placed, run.placed == 1 and "" or "s", money.format(run.cost), run.currency, #run.done,
      run.failed, #doubt, run.untried > 0 and ("; " .. run.untried .. " not sent") or ""))
    output.say("results in ", run.result_path)
  end
  if run.stopped then output.error("stopped: " .. run.stopped) end
  if #doubt > 0 then
    local lines = {}
    for _, row in ipairs(doubt) do lines[#lines + 1] = row.line .. " (" .. row.ref .. ")" end
    output.error(#doubt .. " row" .. (#doubt == 1 and " is" or "s are") .. " in doubt (the add may have " ..
      "been placed): line" .. (#doubt == 1 and " " or "s ") .. table.concat(lines, ", ") ..
      ". Check the panel's orders, then settle each: smm doubt REF ORDER_ID (it was placed) or " ..
      "smm doubt REF --not-placed (then run the batch again to send it)")
  end
  if #doubt > 0 or run.unrecorded > 0 then return EXIT.ambiguous end
  if run.book_failed then return EXIT.book end
  if run.failed > 0 or run.untried > 0 then return (#run.done == 0) and EXIT.error or EXIT.partial end
  return 0
end

-- --wait follows every placed order to the end; the batch's own failure code wins over the wait's.
local function follow(ctx, run, code)
  if run.flags.wait and #run.done > 0 then
    local ids = {}
    for _, row in ipairs(run.done) do ids[#ids + 1] = row.order_id end
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
  code = read_and_check(ctx, run) or import_old_journal(ctx, run) or plan(ctx, run) or confirm(ctx, run)
  if code then return code end
  run.cost, run.failed, run.placed, run.unrecorded, run.new_doubt = "0", 0, 0, 0, {}
  send_rows(ctx, run)
  write_results(run)
  return follow(ctx, run, summarise(run))
end

return M
