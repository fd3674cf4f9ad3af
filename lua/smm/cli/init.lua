-- The `smm` command line: parses the words, finds the panel (flags, profile, environment),
-- runs one command and turns its outcome into an exit code:
--   0 ok · 1 API or usage error · 2 network, timeout, HTTP or decode error
--   3 partial success (some ids or rows failed) · 4 outcome in doubt (check before retrying)
--   5 the order book cannot be used (nothing was sent) · 6 the ref is in doubt from an
--   earlier run (nothing was sent: settle it with `smm doubt`) · 130 interrupted (Ctrl-C)
-- It is a user of the library: `require "smm"` and smm.money, nothing private.
local smm = require "smm"
local args = require "smm.cli.args"
local config = require "smm.cli.config"
local output = require "smm.cli.output"
local commands = require "smm.cli.commands"
local cli_book = require "smm.cli.book"

local M = {}

local EXIT = commands.EXIT
M.EXIT = EXIT

M.USAGE = [[
usage: smm [options] COMMAND [arguments]

commands:
  services [--search TEXT] [--category TEXT] [--type TYPE]   the panel's services
  balance                                                     the account's balance
  quote SERVICE QUANTITY [--runs N]  (or order --flags)       the exact price of an order
  add --service ID [order fields] [--ref R]                   place an order through the book (asks first)
  status ID...                                                orders' status
  wait ID... [--every S] [--timeout S] [--grace S]            follow orders until final
  refill ID...                                                ask refills for orders
  refill-status ID...                                         refills' status
  cancel ID...                                                cancel orders
  batch FILE.csv [--dry-run] [--force] [--wait] [--result F] [--concurrency N]
                                                              many orders from a CSV through the book
  sync [--once] [--every S] [--exec CMD] [--webhook URL] [--webhook-secret-env NAME]
                                                              follow the book's orders, deliver events
  orders [--status S] [--ref R] [--since T]                   the book's orders
  doubt [REF ORDER_ID | REF --not-placed]                     orders in doubt; settle one
  report [--since T] [--by day|service|panel]                 what was charged, exactly
  config                                                      the settings in use (key hidden)

several panels (the config's [panel NAME] sections and [products] map; see docs/cli.md):
  panels                                                      each panel: state, balance, services, last error
  quote --product P --quantity N [--refill] [--cancel]        the candidates, cheapest first, and the left out
  add --product P --link L --quantity N [--ref R] [--max-cost X] [--prefer a,b] [--avoid c]
                                                              to the cheapest able panel, through the book
  match [--min-score S]                                       suggested products, to paste into [products]
  watch                                                       what changed in the panels' service lists
  sandbox [--port N ...]                                      run the sandbox panel
  help                                                        this text (also --help)
  --version                                                   the version of smm

order fields (add, quote):
  --service ID --link URL --quantity N --runs N --interval MIN
  --comments TEXT (repeatable)  --comments-file FILE   --groups TEXT (repeatable) --groups-file FILE
  --username NAME --min N --max N --posts N --old-posts N --delay MIN --expiry D/M/YYYY
  --answer-number N --field NAME=VALUE (repeatable: fields some panels add)

options:
  --url URL --key KEY      the panel (or SMM_API_URL / SMM_API_KEY, or a profile)
  --profile NAME           a [profile NAME] of the config file (default: "default")
  --panel NAME             a [panel NAME] of the config file (where one panel is meant)
  --config FILE            the config file (default $XDG_CONFIG_HOME/smm/config)
  --json                   one JSON document on stdout ({"error": {...}} on failure)
  --no-color               no colours (also: NO_COLOR=1)
  -y, --yes                do not ask before spending money (needed when stdin is no terminal)
  --timeout S              give up on the panel after S seconds (wait: also the whole wait)
  --book URL               the order book (add, batch, sync, orders, doubt, report): sqlite:FILE or
                           postgresql://user:password@host/db (default sqlite:$XDG_DATA_HOME/smm/orders.db)

exit codes: 0 ok, 1 API or usage error, 2 network/timeout/HTTP/decode error,
            3 partial success, 4 outcome in doubt (check before retrying),
            5 the order book cannot be used (nothing sent), 6 the ref is in doubt from before
            (nothing sent: smm doubt), 130 interrupted

the manual: docs/cli.md
]]

-- quote and add with --product go through the router
local function routed(name, direct)
  return function(ctx)
    if ctx.flags.product ~= nil then return require("smm.cli.panels")[name](ctx) end
    return direct(ctx)
  end
end

local COMMANDS = {
  services = commands.services, balance = commands.balance, quote = routed("quote", commands.quote),
  add = routed("add", commands.add),
  panels = function(ctx) return require("smm.cli.panels").panels(ctx) end,
  match = function(ctx) return require("smm.cli.panels").match(ctx) end,
  watch = function(ctx) return require("smm.cli.panels").watch(ctx) end,
  status = commands.status, wait = commands.wait, refill = commands.refill,
  ["refill-status"] = commands.refill_status, refill_status = commands.refill_status,
  cancel = commands.cancel, config = commands.config, sandbox = commands.sandbox,
  batch = function(ctx) return require("smm.cli.batch").run(ctx) end,
  sync = function(ctx) return require("smm.cli.sync").run(ctx) end,
  orders = function(ctx) return require("smm.cli.ledger").orders(ctx) end,
  doubt = function(ctx) return require("smm.cli.ledger").doubt(ctx) end,
  report = function(ctx) return require("smm.cli.ledger").report(ctx) end,
}

-- The library's version (smm._VERSION), and the C core's when it loads.
function M.version() return smm._VERSION end
function M.core_version()
  local ok, core = pcall(require, "smm.core")
  return ok and type(core) == "table" and core._VERSION or nil
end

local Ctx = {}
local DEFAULT_REQUEST_TIMEOUT = 30000 -- smm.new's timeout, ms
Ctx.__index = Ctx

-- The exit code for a library error.
function M.exit_code(err)
  if type(err) ~= "table" then return EXIT.error end
  if err.ambiguous then return EXIT.ambiguous end
  if err.kind == "book" then
    if err.code == "in_doubt" then return EXIT.ref_in_doubt end
    if err.code == "ref_conflict" or err.code == "not_found" or err.code == "not_in_doubt" then
      return EXIT.error
    end
    return EXIT.book
  end
  if err.kind == "invalid" or err.kind == "api" then return EXIT.error end
  return EXIT.network
end

function Ctx.usage(_, message)
  output.error(message, { kind = "usage" })
  return EXIT.error
end

-- Prints a library error as one line (never the key: errors are scrubbed by the library, and
-- the key is also scrubbed here) and returns its exit code.
function Ctx:fail(err, advice)
  local message = type(err) == "table" and err.message or tostring(err)
  if type(err) == "table" and err.field and err.kind == "invalid" and not message:find(err.field, 1,
    true) then
    message = err.field .. ": " .. message
  end
  if type(err) == "table" and err.kind ~= "invalid" and err.kind ~= "api" and err.kind ~= "book" then
    message = err.kind .. " error" .. (err.status and (" (HTTP " .. err.status .. ")") or "") .. ": " ..
      message
  end
  message = message:gsub("[%s;]+$", "")
  if advice then message = message .. " - " .. advice end
  output.error(self:scrub(message), type(err) == "table" and err or nil)
  return M.exit_code(err)
end

-- Of the key, and of the URL's and the proxy's credentials once they are known.
function Ctx:scrub(text)
  return smm.redact(text, self.secrets or self.key)
end

-- The client, made on first use from the resolved configuration. Raises a usage problem.
function Ctx:client()
  if self.the_client then return self.the_client end
  local r, err = config.resolve(self.flags)
  if not r then error({ usage = err }, 0) end
  if r.warning then output.warn(r.warning) end
  if not r.url then
    error({ usage = r.choose_panel or ("no panel URL: give --url, set SMM_API_URL, or add a profile to " ..
      r.path) }, 0)
  end
  if not r.key and r.key_problem then error({ usage = r.key_problem }, 0) end
  if not r.key then
    error({ usage = "no API key for " .. config.printable_url(r.url) ..
      ": set SMM_API_KEY, add key = ... to a profile in " .. r.path .. ", or give --key" }, 0)
  end
  self.key, self.url = r.key, r.url
  self.secrets = smm.secrets(r.key, r.url, r.options.proxy)
  local opts = { url = r.url, key = r.key, book = self.the_book }
  for name, value in pairs(r.options) do opts[name] = value end
  for name, value in pairs(self.client_options or {}) do opts[name] = value end
  opts.on_retry = self:retry_hook(self.flags.timeout and r.options.timeout)
  if self.flags.timeout and (self.command == "wait" or self.flags.wait) then
    -- --timeout is the whole wait there: one request keeps its own, shorter limit
    opts.timeout = math.min(opts.timeout, r.request_timeout or DEFAULT_REQUEST_TIMEOUT)
  end
  local ok, client = pcall(smm.new, opts)
  if not ok then error({ usage = self:scrub(tostring(client):gsub("^.-smm%.new: ", "")) }, 0) end
  self.the_client = client
  return client
end

-- The router over the config's [panel NAME] sections (smm.router), with the book it records in
-- (opened for writing: the panels' state, snapshots and routed orders go there). Returns
-- router, the resolved config. Raises a usage problem (no panels, a key missing) or a failure.
function Ctx:router()
  if self.the_router then return self.the_router, self.router_config end
  local r, err = config.resolve(self.flags)
  if not r then error({ usage = err }, 0) end
  if #r.panels == 0 then
    error({ usage = "smm " .. self.command .. " works over several panels: add [panel NAME] sections " ..
      "(url, key) to " .. r.path .. " (see docs/cli.md)" }, 0)
  end
  if self.flags.url or self.flags.key then
    error({ usage = "--url and --key name one panel: smm " .. self.command .. " uses the [panel NAME] " ..
      "sections of " .. r.path }, 0)
  end
  local panels, perr = config.router_panels(r)
  if not panels then error({ usage = perr }, 0) end
  -- every panel's key and URL credentials are scrubbed from anything printed
  local secrets = {}
  for _, p in ipairs(panels) do
    for _, s in ipairs(smm.secrets(p.key, p.url, p.proxy)) do secrets[#secrets + 1] = s end
  end
  self.secrets = secrets
  local book = self:book(true)
  local ok, router = pcall(function()
    return require("smm.router").new{ book = book, panels = panels, products = r.products }
  end)
  if not ok then
    -- (the library's words without where it raised: "smm.new: unknown option ...")
    error({ usage = self:scrub((tostring(router):gsub("^.*smm%.[%w%.]+: ", ""))) }, 0)
  end
  self.the_router, self.router_config = router, r
  return router, r
end

-- The order book, opened on first use (writing: the command records in it, so a book that
-- cannot take a write is refused now, before anything is sent). Raises a failure: exit 5.
function Ctx:book(writing)
  if self.the_book then return self.the_book end
  local r, err = config.resolve(self.flags)
  if not r then error({ usage = err }, 0) end
  if r.warning and not self.the_client then output.warn(r.warning) end
  local url, source = cli_book.url(self.flags, r.settings)
  local book, berr = cli_book.open(url, source, writing)
  if not book then
    if type(berr) == "table" and berr.code == "book_url" then
      berr.message = tostring(berr.message):gsub("^smm%.book: ", "") .. " (the book of " ..
        (source == "--book" and "--book" or ("the config key book in " .. r.path)) .. ")"
    end
    error({ failure = berr, advice = "nothing was sent" }, 0)
  end
  self.the_book, self.book_url = book, book.name
  -- a client made before the book (to check rows) is made again, with the book
  if self.the_client then self.the_client:close() self.the_client = nil end
  return book
end

-- What happens before a retry: with --timeout, none starts that would end past it (a hung
-- panel then takes the time given, not three times it); on a terminal, the retry is said on
-- stderr, since otherwise a hung panel is minutes of silence. nil when neither applies.
function Ctx:retry_hook(timeout_ms)
  local live = output.isatty(2)
  if not timeout_ms and not live then return nil end
  return function(info)
    if timeout_ms and info.elapsed + info.wait >= timeout_ms then return false end
    if live then
      local e = info.err
      io.stderr:write(string.format("smm: retrying %s in %.1f s (attempt %d of %d): %s\n", info.action,
        info.wait / 1000, info.attempt, info.attempts, self:scrub(tostring(e.kind) ..
        (e.status and (" " .. e.status) or ""))))
      io.stderr:flush()
    end
  end
end

-- Ctrl-C and SIGTERM: smm.core counts them (it installs no handler unless asked), its sleeps
-- and transfers end at once, nothing new is sent, and the command ends with 130. `batch` asks
-- for abort_at = 2: the first signal lets the add in flight finish and be journaled, the second
-- aborts it. Returns the function that counts the signals so far.
local function catch_interrupts(name)
  local ok, core = pcall(require, "smm.core")
  if not ok or type(core) ~= "table" or not core.catch_interrupts then
    return function() return 0 end
  end
  core.catch_interrupts{ abort_at = name == "batch" and 2 or 1 }
  -- (sync too stops at the first: a status request in flight changes nothing when aborted)
  return core.interrupts
end

local function run(argv, env)
  local parsed, problem = args.parse(argv)
  if not parsed then
    -- the words did not parse, but a --json among them still asks for a JSON answer
    local json = false
    for _, word in ipairs(argv) do
      if word == "--" then break end
      if word == "--json" then json = true end
    end
    output.setup{ json = json }
    output.error(problem, { kind = "usage" })
    return EXIT.error
  end
  output.setup{ json = parsed.flags.json, no_color = parsed.flags["no-color"] }
  local name = parsed.command
  if parsed.flags.version and name ~= "sandbox" then
    if output.json_mode() then
      output.json{ version = M.version(), core = M.core_version() }
    else
      io.stdout:write("smm ", M.version(), " (lua-smm", M.core_version() and ("; smm.core " ..
        M.core_version()) or "", "; ", rawget(_G, "jit") and jit.version or _VERSION, ")\n")
    end
    return 0
  end
  if name == nil or name == "help" or (parsed.flags.help and name ~= "sandbox") then
    local failed = name == nil and not parsed.flags.help
    if not output.json_mode() then
      io.stdout:write(M.USAGE)
    elseif failed then
      output.error("no command given (see smm help)", { kind = "usage" })
    else
      output.json{ usage = M.USAGE }
    end
    return failed and EXIT.error or 0
  end
  local command = COMMANDS[name]
  if not command then
    local names = {}
    for known in pairs(COMMANDS) do if known ~= "refill_status" then names[#names + 1] = known end end
    names[#names + 1] = "help"
    table.sort(names)
    local guess = args.suggest(name, names)
    output.error("unknown command '" .. name .. "'" .. (guess and ("; did you mean '" .. guess .. "'?")
      or " (see smm help)"), { kind = "usage" })
    return EXIT.error
  end
  -- (the sandbox command serves until Ctrl-C kills it: no handler there)
  local interrupts = name == "sandbox" and function() return 0 end or catch_interrupts(name)
  local ctx = setmetatable({ args = parsed.args, flags = parsed.flags, raw = parsed.raw,
    root = env.root, command = name, interrupts = interrupts }, Ctx)
  -- (Lua 5.1's xpcall passes no arguments: a closure carries ctx)
  local ok, code = xpcall(function() return command(ctx) end, function(e)
    if type(e) == "table" then return e end
    if interrupts() > 0 or tostring(e):find("interrupted!$") then return { interrupted = true } end
    return { crash = debug.traceback(tostring(e), 2) }
  end)
  if ctx.the_client then ctx.the_client:close() end
  if ctx.the_router and ctx.the_router.close then ctx.the_router:close() end
  if ctx.the_book then ctx.the_book:close() end
  if ok and interrupts() > 0 and not ctx.stops_on_signal then ok, code = false, { interrupted = true } end
  if ok then return code or 0 end
  if code.usage then return ctx:usage(code.usage) end
  if code.failure then return ctx:fail(code.failure, code.advice) end
  if code.interrupted then
    io.stderr:write("\n")
    output.error("interrupted" .. (name == "batch" and ": run the same command again to resume" or ""),
      { kind = "interrupted" })
    return EXIT.interrupted
  end
  output.error(ctx:scrub("internal error: " .. tostring(code.crash)), { kind = "internal" })
  return EXIT.error
end

-- argv: the words after the program name; env: { root = the source tree, when known }
function M.main(argv, env)
  env = env or {}
  local ok, code = pcall(run, argv, env)
  if not ok then
    if tostring(code):find("interrupted!$") then
      code = EXIT.interrupted
    else
      io.stderr:write("smm: internal error: ", tostring(code), "\n")
      code = EXIT.error
    end
  end
  pcall(output.finish, code)
  return code
end

return M
