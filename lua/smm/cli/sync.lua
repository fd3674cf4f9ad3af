-- smm sync: the daemon that follows the book's orders to their end and delivers their events.
-- Each round: book:sync(client) (statuses of the orders due, recorded as history and events),
-- then book:deliver(hooks) (each event to every --exec command and --webhook). On a terminal a
-- live summary redrawn in place; otherwise one log line per round (or one JSON line with
-- --json). --once runs one round and exits, for cron: 0, or nonzero when the round failed.
--
-- SIGTERM and SIGINT (smm.core.catch_interrupts, abort_at = 1) end it promptly: the stop
-- function passed to book:sync and book:deliver says so between their writes, a request in
-- flight is aborted (a status request changes nothing), the sleep between rounds ends at once,
-- and the book is closed, which releases what this worker held.
local args = require "smm.cli.args"
local output = require "smm.cli.output"
local config = require "smm.cli.config"
local commands = require "smm.cli.commands"
local cli_book = require "smm.cli.book"

local M = {}

local EXIT = commands.EXIT
local DEFAULT_EVERY = 60 -- seconds between rounds

-- Milliseconds of sleep that a signal ends at once (the C core's), else luasocket's.
local sleep_ms
do
  local ok, core = pcall(require, "smm.core")
  if ok and type(core) == "table" and core.sleep then
    sleep_ms = core.sleep
  else
    local has_socket, socket = pcall(require, "socket")
    sleep_ms = has_socket and function(ms) socket.sleep(ms / 1000) end or
      function(ms) os.execute("sleep " .. string.format("%.3f", ms / 1000)) end
  end
end

-- The hooks from the flags: { exec = CMD } and { webhook = URL, secret = S }, or nil, problem.
local function hooks_from(ctx)
  local flags, hooks = ctx.flags, {}
  for _, cmd in ipairs(flags.exec or {}) do
    if cmd == "" then return nil, "option --exec needs a command" end
    hooks[#hooks + 1] = { exec = cmd }
  end
  local webhooks = flags.webhook or {}
  if #webhooks == 0 then
    if flags["webhook-secret-env"] then return nil, "option --webhook-secret-env goes with --webhook URL" end
    return hooks
  end
  local secret
  if flags["webhook-secret-env"] then
    local name = flags["webhook-secret-env"]
    secret = os.getenv(name)
    if not secret or secret == "" then
      return nil, "option --webhook-secret-env " .. name .. ": the environment variable " .. name ..
        " is not set (or empty)"
    end
  else
    local r, err = config.resolve(flags)
    if not r then return nil, err end
    secret = r.settings.webhook_secret
    if not secret or secret == "" then
      return nil, "--webhook needs a secret to sign the deliveries: --webhook-secret-env NAME (the " ..
        "variable holding it) or webhook_secret = ... in the config file"
    end
  end
  for _, url in ipairs(webhooks) do
    if not url:find("^https?://[^/]") then
      return nil, "option --webhook takes an http:// or https:// URL, got '" .. url .. "'"
    end
    hooks[#hooks + 1] = { webhook = url, secret = secret }
  end
  return hooks
end

local function settings(ctx)
  local ok, problem = args.check(ctx, "sync", { "once", "every", "exec", "webhook", "webhook-secret-env",
    "book" })
  if not ok then return nil, problem end
  if #ctx.args > 0 then return nil, "'smm sync' takes no arguments (see smm help)" end
  local every = DEFAULT_EVERY
  if ctx.flags.every then
    every, problem = args.number(ctx.flags.every, "every", true)
    if not every then return nil, problem end
    if every <= 0 then
      return nil, "option --every must be above 0 seconds, got '" .. ctx.flags.every .. "'"
    end
  end
  local hooks
  hooks, problem = hooks_from(ctx)
  if not hooks then return nil, problem end
  return { every = every, hooks = hooks, once = ctx.flags.once }
end

local function n(v) return tonumber(v) or 0 end

-- The round in one line, for logs (journald, cron mail).
local function log_line(round, s, d, counts)
  local parts = { cli_book.iso(os.time()), " round ", round, ": " }
  if s then
    parts[#parts + 1] = string.format("checked %d, changed %d, final %d, stale %d, in doubt %d, errors %d",
      n(s.checked), n(s.changed), n(s.final), n(s.stale), n(s.in_doubt), n(s.errors))
  end
  if d then
    parts[#parts + 1] = string.format("; events delivered %d, failed %d, pending %d", n(d.delivered),
      n(d.failed), n(d.pending))
  end
  if counts then
    parts[#parts + 1] = string.format("; book: %d open, %d final, %d in doubt", n(counts.open),
      n(counts.final), n(counts.in_doubt) + n(counts.sending))
  end
  return table.concat(parts)
end

-- The live summary of a terminal.
local function view(state)
  local c, s, d = state.counts or {}, state.summary, state.delivery
  local lines = {
    output.paint("smm sync", "bold") .. " · " .. state.book .. " · " .. state.panel,
    string.format("open %d · final %d · in doubt %d · events pending %d", n(c.open), n(c.final),
      n(c.in_doubt) + n(c.sending), n(c.events_pending)),
  }
  if s then
    lines[#lines + 1] = string.format(
      "round %d at %s: checked %d, changed %d, final %d, stale %d, errors %d%s",
      state.round, state.at, n(s.checked), n(s.changed), n(s.final), n(s.stale), n(s.errors),
      d and string.format("; delivered %d, failed %d", n(d.delivered), n(d.failed)) or "")
  end
  if state.error then lines[#lines + 1] = output.paint("last round failed: " .. state.error, "red") end
  lines[#lines + 1] = state.next and ("next round in ~" .. output.duration(state.next)) or "working…"
  return lines
end

-- The panels to follow: the one panel of the command line (--panel, --url, a profile, the
-- environment), else every [panel NAME] of the config file (through smm.router's clients, made
-- with each panel's own options). -> { clients }, what to call them in the view.
local function panels_of(ctx)
  local r, err = config.resolve(ctx.flags)
  if not r then error({ usage = err }, 0) end
  if r.url or not r.choose_panel then
    local client = ctx:client()
    return { client }, client.url
  end
  local router, rc = ctx:router()
  local clients, names = {}, {}
  for i, p in ipairs(rc.panels) do
    clients[i], names[i] = router:panel(p.name), p.name
  end
  return clients, "panels " .. table.concat(names, ", ")
end

-- One round over every panel followed: their summaries added up, the first failure kept.
local function sync_all(book, clients, stop)
  if #clients == 1 then return book:sync(clients[1], { stop = stop }) end
  local total, first_err = nil, nil
  for _, client in ipairs(clients) do
    if stop() then break end
    local s, err = book:sync(client, { stop = stop })
    if err then first_err = first_err or err end
    if s then
      total = total or {}
      for k, v in pairs(s) do
        if type(v) == "number" then
          -- counts add up; a time (next_due) is the soonest of the panels'
          if k:find("_due$") or k:find("_at$") then
            total[k] = total[k] and math.min(total[k], v) or v
          else
            total[k] = (total[k] or 0) + v
          end
        end
      end
    end
  end
  if first_err and not total then return nil, first_err end
  return total or {}, first_err
end

function M.run(ctx)
  local run, problem = settings(ctx)
  if not run then return ctx:usage(problem) end
  local book = ctx:book(true)
  local clients, label = panels_of(ctx)
  ctx.stops_on_signal = true
  local function stop() return ctx.interrupts() > 0 end
  local live = output.isatty(1) and not output.json_mode() and not run.once
  local board, state = {}, { book = book.name, panel = label, round = 0 }
  local failed_code
  while true do
    state.round, state.at, state.next, state.error = state.round + 1, cli_book.iso(os.time()), nil, nil
    if live then output.redraw(board, view(state)) end
    local s, err = sync_all(book, clients, stop)
    local d, derr
    -- (with several panels, s adds up those that answered, err is the first that did not)
    if s and #run.hooks > 0 and not stop() then d, derr = book:deliver(run.hooks, { stop = stop }) end
    local counts = book:counts()
    state.summary, state.delivery, state.counts = s, d, counts
    local failure = err or derr
    if failure then
      state.error = ctx:scrub(tostring(failure))
      failed_code = commands.EXIT.book
      if type(failure) == "table" and failure.kind ~= "book" then failed_code = EXIT.network end
    else
      failed_code = 0
    end
    if output.json_mode() then
      output.json{ round = state.round, at = state.at, sync = s, deliver = d, counts = counts,
        error = state.error }
      io.stdout:flush()
    elseif not live then
      output.say(log_line(state.round, s, d, counts))
    end
    if failure and not live then output.error("round " .. state.round .. " failed: " .. state.error) end
    if run.once or stop() then break end
    -- the next round: --every seconds after this one ended; the view counts down once a second
    local started = output.clock()
    while not stop() do
      local left = run.every - (output.clock() - started)
      if left <= 0 then break end
      state.next = left
      if live then output.redraw(board, view(state)) end
      sleep_ms(math.floor(math.min(left, live and 1 or left) * 1000 + 0.5))
    end
    if stop() then break end
  end
  if stop() then
    if live then output.redraw(board, view(state)) end
    output.note("smm sync: stopped by a signal after round " .. state.round)
    return 0
  end
  return failed_code
end

return M
