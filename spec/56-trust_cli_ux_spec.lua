-- Issue 10, the command line's presentation, driven as a user drives it (bin/smm in a child
-- process against the sandbox; terminals are real pseudo-terminals: `script` for the raw bytes,
-- tmux for what a screen and its scrollback end up holding):
--   24 --json: a failure is {"error": {...}} on stdout, the exit code kept
--   22 wait: a live view that stays within the screen; batch and wait show a bar with an ETA
--   26 services: fits 80 and 110 columns, a category column, --category by part of the name
--   29 --version, did-you-mean for commands and options, docs/cli.md, cuts end in an ellipsis
-- (and issue 11: every relative link of README.md and docs/ resolves)
local env = require "helpers.env"
local cli = require "helpers.cli"
local smm_lib = require "smm"

-- display width of UTF-8 text: the bytes that do not continue a character
local function width(s)
  return select(2, s:gsub("[^\128-\191]", ""))
end

local function lines_of(text)
  local out = {}
  for line in (text:gsub("\r", "")):gmatch("[^\n]*") do out[#out + 1] = line end
  if out[#out] == "" then out[#out] = nil end
  return out
end

local function has_program(name)
  local ok = os.execute("command -v " .. name .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

describe("smm command line presentation (issue 10)", function()
  local sb, vars, dir

  local function all_vars(extra)
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function smm(words, opts)
    opts = opts or {}
    return cli.run(words, { env = all_vars(opts.env), stdin = opts.stdin, cwd = opts.cwd })
  end

  -- The shell command that runs smm with the spec's environment.
  local function command(words, extra)
    return cli.env_prefix(all_vars(extra)) .. " " .. cli.LUA .. " " .. cli.quote(cli.SMM) .. " " .. words
  end

  -- smm under a pseudo-terminal of cols x rows (util-linux script): every byte it wrote, stdout
  -- and stderr together, as a terminal receives them.
  local function in_pty(words, cols, rows, extra)
    local inner = string.format("stty cols %d rows %d; %s", cols, rows, command(words, extra))
    local p = assert(io.popen("cd " .. cli.quote(dir) .. " && script -qfec " .. cli.quote(inner) ..
      " /dev/null </dev/null; echo \"smm-exit:$?\""))
    local out = p:read("*a")
    p:close()
    local code
    out = out:gsub("smm%-exit:(%d+)\n$", function(c) code = tonumber(c) return "" end)
    cli.seen[#cli.seen + 1] = out
    return out, code
  end

  -- smm in a tmux pane of cols x rows: { screen = the visible lines, history = how many lines
  -- went into the scrollback }
  local function in_tmux(words, cols, rows, extra)
    local socket = "smm-spec-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e6))
    local done = dir .. "/tmux.done"
    os.remove(done)
    local tmux = "env -u TMUX tmux -L " .. socket .. " "
    local inner = command(words, extra) .. "; echo smm-exit:$? >" .. cli.quote(done) .. "; sleep 60"
    assert(os.execute(tmux .. "-f /dev/null new-session -d -x " .. cols .. " -y " .. rows ..
      " -s spec " .. cli.quote(inner)))
    for _ = 1, 600 do
      if cli.read_file(done) then break end
      cli.sleep(0.05)
    end
    local p = io.popen(tmux .. "display -p -t spec '#{history_size}'")
    local history = tonumber(p:read("*a"):match("%d+"))
    p:close()
    p = io.popen(tmux .. "capture-pane -p -t spec")
    local screen = p:read("*a")
    p:close()
    os.execute(tmux .. "kill-server")
    local code = tonumber((cli.read_file(done) or ""):match("smm%-exit:(%d+)"))
    cli.seen[#cli.seen + 1] = screen
    return { screen = screen, history = history, code = code }
  end

  setup(function()
    sb = env.sandbox()
    dir = cli.tmpdir()
    vars = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, XDG_CONFIG_HOME = dir .. "/xdg",
             HOME = dir, COLUMNS = false, LINES = false }
  end)

  teardown(function()
    sb:stop()
    local leaked, where = cli.leaks(env.KEY)
    assert.is_false(leaked, "the key was printed: " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  local books = 0
  before_each(function()
    sb:reset()
    -- a new sandbox, a new order book: the panel's order ids start again at 1
    books = books + 1
    vars.XDG_DATA_HOME = dir .. "/data" .. books
  end)

  local function place(n)
    local client = env.client(sb)
    local ids = {}
    for i = 1, n do
      local res = assert(client:add{ service = 1, link = "https://x.example/" .. i, quantity = 100 })
      ids[i] = res.order
    end
    client:close()
    return ids
  end

  describe("--json on failure (point 24)", function()
    local down
    setup(function()
      down = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2"
      cli.write_file(dir .. "/bad.csv", "service,link,quantity\n1,https://x.example/a,10\n1,,100\n")
    end)

    local WRONG = { SMM_API_KEY = "wrong-key-for-this-panel" }
    -- words, environment, exit code, kind (and code / field when the library gives one)
    local CASES = {
      { "balance", "down", 2, "network" },
      { "services", "down", 2, "network" },
      { "quote 1 100", "down", 2, "network" },
      { "status 1 2", "down", 2, "network" },
      { "refill 1", "down", 2, "network" },
      { "refill-status 1", "down", 2, "network" },
      { "cancel 1", "down", 2, "network" },
      { "add --service 1 --link https://x.example/a --quantity 100 --yes", "down", 2, "network" },
      { "balance", WRONG, 1, "api", "invalid_key" },
      { "services", WRONG, 1, "api", "invalid_key" },
      { "wait 1 --every 0.05", WRONG, 1, "api", "invalid_key" },
      { "status 1", WRONG, 1, "api", "invalid_key" },
      { "cancel 1", WRONG, 1, "api", "invalid_key" },
      { "add --service 1 --link https://x.example/a --quantity 10 --yes", {}, 1, "invalid", nil,
        "quantity" },
      { "add --service 1 --link https://x.example/a --quantity 100", {}, 1, "usage" },
      { "quote 999 100", {}, 1, "invalid" },
      { "status abc", {}, 1, "usage" },
      { "wait 1 --every soon", {}, 1, "usage" },
      { "batch no-such-file.csv --yes", {}, 1, "usage" },
      { "batch bad.csv --yes", {}, 1, "error" },
      { "config --profile nowhere", {}, 1, "usage" },
      { "balance --frob", {}, 1, "usage" },
      { "balanse", {}, 1, "usage" },
      { "balance", { SMM_API_URL = false }, 1, "usage" },
      { "", {}, 1, "usage" },
    }

    for _, case in ipairs(CASES) do
      local words, how, code, kind, api_code, field = case[1], case[2], case[3], case[4], case[5], case[6]
      local label = words .. (how == "down" and " (panel down)" or (how == WRONG and " (wrong key)" or ""))
      it(label .. ": exit " .. code .. ", one {\"error\"} document on stdout", function()
        local e = how == "down" and { SMM_API_URL = down } or how
        local r = smm(words .. " --json", { env = e, cwd = dir })
        assert.equal(code, r.code, r.err)
        assert.truthy(("\n" .. r.err):find("\nsmm: "), r.err) -- the human line stays on stderr
        assert.truthy(r.out:find("^{.*}\n$"), "stdout: " .. r.out)
        assert.equal(1, select(2, r.out:gsub("\n", "")), "one line: " .. r.out)
        local doc = cli.json(r.out)
        assert.is_table(doc.error, r.out)
        assert.equal(kind, doc.error.kind)
        assert.equal(code, doc.error.exit)
        assert.is_string(doc.error.message)
        assert.truthy(#doc.error.message > 0)
        if api_code then assert.equal(api_code, doc.error.code) end
        if field then assert.equal(field, doc.error.field) end
        if kind == "network" then assert.is_false(doc.error.ambiguous) end
        assert.is_nil(doc.error.body)
      end)
    end

    it("a batch with bad rows lists every message", function()
      local r = smm("batch bad.csv --yes --json", { cwd = dir })
      local doc = cli.json(r.out)
      assert.equal(3, #doc.error.messages)
      assert.truthy(doc.error.messages[1]:find("bad.csv:2:", 1, true))
      assert.equal(0, env.count(sb, "add"))
    end)

    it("a command that printed its document on a partial failure prints no second one", function()
      local ids = place(1)
      local r = smm("status " .. ids[1] .. " 999999 --json")
      assert.equal(3, r.code)
      local list = cli.json(r.out)
      assert.equal(2, #list)
      assert.is_nil(list.error)
    end)

    it("without --json, stdout stays empty on failure", function()
      local r = smm("balance", { env = { SMM_API_URL = down } })
      assert.equal(2, r.code)
      assert.equal("", r.out)
    end)
  end)

  describe("wait and batch on a terminal (point 22)", function()
    it("60 orders in a 45-row terminal: the view stays on the screen, nothing floods the scrollback",
      function()
      if not has_program("tmux") then pending("tmux is not installed") return end
      local ids = place(60)
      sb:config{ steps = 8 }
      local r = in_tmux("wait " .. table.concat(ids, " ") .. " --every 0.05", 100, 45)
      assert.equal(0, r.code, r.screen)
      -- the old view printed 60 lines per change: thousands of lines into the scrollback
      assert.truthy(r.history < 10, "scrollback lines: " .. tostring(r.history) .. "\n" .. r.screen)
      assert.truthy(r.screen:find("60 of 60 final", 1, true), r.screen)
      assert.truthy(r.screen:find("60 orders: 60 Completed; charged 5.40", 1, true), r.screen)
      assert.truthy(r.screen:find("… and %d+ more: %d+ Completed"), r.screen)
    end)

    it("every redraw is shorter than the screen and lines never wrap; the header shows the next poll",
      function()
      local ids = place(60)
      sb:config{ steps = 6 }
      local out, code = in_pty("wait " .. table.concat(ids, " ") .. " --every 0.05", 70, 45)
      assert.equal(0, code, out)
      local redraws = 0
      for n in out:gmatch("\27%[(%d+)A") do
        redraws = redraws + 1
        assert.truthy(tonumber(n) < 45, "a redraw of " .. n .. " lines")
      end
      assert.truthy(redraws >= 6, out)
      local newlines = select(2, out:gsub("\n", ""))
      assert.truthy(newlines < 45 * (redraws + 1), newlines .. " lines for " .. redraws .. " redraws")
      for _, line in ipairs(lines_of(out)) do
        -- a line as the terminal shows it: what follows the last "clear line"
        local shown = line:match(".*\27%[K(.*)$") or line
        shown = shown:gsub("\27%[[%d;]*[A-Za-z]", "")
        assert.truthy(width(shown) < 70, "too wide: " .. shown)
      end
      assert.truthy(out:find("of 60 final · %d+:%d%d elapsed · next poll in ~%d+:%d%d"), out)
      assert.truthy(out:find("%[#*%-*%] %d+/60 %d+%%"), out)
    end)

    it("off a terminal, 60 orders are plain lines without escape codes", function()
      local ids = place(60)
      sb:config{ steps = 3 }
      local r = smm("wait " .. table.concat(ids, " ") .. " --every 0.02")
      assert.equal(0, r.code, r.err)
      assert.is_nil(r.out:find("\27", 1, true))
      assert.truthy(r.out:find("order " .. ids[60] .. ": Completed", 1, true))
      assert.is_nil(r.out:find("of 60 final", 1, true))
    end)

    it("batch on a terminal shows a bar with rows done of all and an ETA", function()
      local rows = { "service,link,quantity" }
      for i = 1, 6 do rows[#rows + 1] = "1,https://x.example/b" .. i .. ",100" end
      cli.write_file(dir .. "/bar.csv", table.concat(rows, "\n") .. "\n")
      local out, code = in_pty("batch bar.csv --yes", 100, 45)
      assert.equal(0, code, out)
      assert.truthy(out:find("%[#+%-+%] 2/6 33%% ETA %d+:%d%d"), out)
      assert.truthy(out:find("%[#+%] 6/6 100%%"), out)
      local r = smm("batch bar.csv --yes --book " .. cli.quote("sqlite:" .. dir .. "/other.db"), { cwd = dir })
      assert.equal(0, r.code, r.err)
      assert.is_nil((r.out .. r.err):find("\27", 1, true))
      assert.is_nil((r.out .. r.err):find("ETA", 1, true))
    end)
  end)

  describe("services (point 26)", function()
    local function check_fits(text, cols)
      local lines = lines_of(text)
      assert.truthy(#lines >= 13, text)
      for _, line in ipairs(lines) do
        line = line:gsub("\27%[[%d;]*m", "")
        assert.truthy(width(line) <= cols, width(line) .. " > " .. cols .. ": " .. line)
      end
      assert.truthy(lines[1]:find("CATEGORY", 1, true), lines[1])
      return lines
    end

    for _, cols in ipairs{ 80, 110 } do
      it("fits " .. cols .. " columns (COLUMNS and a real terminal), names cut with an ellipsis",
        function()
        local r = smm("services", { env = { COLUMNS = tostring(cols) } })
        assert.equal(0, r.code, r.err)
        local lines = check_fits(r.out, cols)
        assert.truthy(r.out:find("…", 1, true)) -- the longest name does not fit either width
        for _, line in ipairs(lines) do
          -- a cut cell ends in the ellipsis: no name cut short silently
          assert.is_nil(line:find("Instagram Starter Package %[1000 Likes %+ 50 Co[^m]"), line)
        end
        local out, code = in_pty("services", cols, 45)
        assert.equal(0, code, out)
        check_fits(out, cols)
      end)
    end

    it("off a terminal without COLUMNS, whole names and categories", function()
      local r = smm("services")
      assert.equal(0, r.code)
      assert.truthy(r.out:find("Instagram Starter Package [1000 Likes + 50 Comments]", 1, true))
      assert.truthy(r.out:find("^ID%s+NAME%s+CATEGORY%s+TYPE"))
      assert.truthy(r.out:find("Instagram Packages", 1, true))
      assert.is_nil(r.out:find("…", 1, true))
    end)

    it("--category matches any part of the category, in any case", function()
      local list = cli.json(smm("services --category comments --json").out)
      assert.equal(2, #list)
      assert.equal(2, list[1].service)
      assert.equal(9, list[2].service)
      list = cli.json(smm("services --category INSTAGRAM --json").out)
      assert.equal(7, #list)
      list = cli.json(smm("services --category 'tiktok views' --json").out)
      assert.equal(1, #list)
      local r = smm("services --category nothing-like-this")
      assert.equal(0, r.code)
      assert.equal("no services match\n", r.out)
    end)
  end)

  describe("smaller things (point 29)", function()
    it("smm --version prints the library's version", function()
      local r = smm("--version")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("^smm " .. smm_lib._VERSION:gsub("%.", "%%.") .. " "), r.out)
      r = smm("--version --json")
      assert.equal(smm_lib._VERSION, cli.json(r.out).version)
    end)

    it("a misspelled command or option gets a did-you-mean, exit 1", function()
      local r = smm("balanse")
      assert.equal(1, r.code)
      assert.equal("smm: unknown command 'balanse'; did you mean 'balance'?\n", r.err)
      for wrong, right in pairs{ stauts = "status", refil = "refill", ["refill-stats"] = "refill-status",
                                 servics = "services", bacth = "batch", cancle = "cancel" } do
        r = smm(wrong .. " 1")
        assert.equal(1, r.code)
        assert.equal("smm: unknown command '" .. wrong .. "'; did you mean '" .. right .. "'?\n", r.err)
      end
      r = smm("balance --jsno")
      assert.equal(1, r.code)
      assert.equal("smm: unknown option '--jsno'; did you mean '--json'?\n", r.err)
      r = smm("add --serivce 1 --link x --quantity 100 --yes")
      assert.equal("smm: unknown option '--serivce'; did you mean '--service'?\n", r.err)
      r = smm("frobnicate")
      assert.equal("smm: unknown command 'frobnicate' (see smm help)\n", r.err)
      assert.equal(0, env.count(sb, "add"))
    end)

    it("bin/smm points at the CLI manual, which covers every command, option and exit code", function()
      local script = cli.read_file(cli.SMM)
      local doc_path = script:match("see `smm help` and ([%w_/%.%-]+%.md)")
      assert.truthy(doc_path, "bin/smm names no manual")
      local manual = cli.read_file(cli.ROOT .. "/" .. doc_path)
      assert.truthy(manual, doc_path .. " is missing")
      for _, name in ipairs{ "services", "balance", "quote", "add", "status", "wait", "refill",
                             "refill-status", "cancel", "batch", "config", "sandbox", "help" } do
        assert.truthy(manual:find("\n### `smm " .. name, 1, true), "no section for " .. name)
      end
      local args = require "smm.cli.args"
      for flag in pairs(args.FLAGS) do
        assert.truthy(manual:find("--" .. flag, 1, true), "--" .. flag .. " is not documented")
      end
      for _, code in ipairs{ "| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |" } do
        assert.truthy(manual:find(code, 1, true), "exit code " .. code)
      end
      for _, var in ipairs{ "SMM_API_URL", "SMM_API_KEY", "SMM_PROFILE", "SMM_CONFIG", "NO_COLOR",
                            "COLUMNS", "XDG_CONFIG_HOME" } do
        assert.truthy(manual:find(var, 1, true), var)
      end
      assert.truthy(cli.read_file(cli.ROOT .. "/README.md"):find("(" .. doc_path .. ")", 1, true),
        "README does not link the manual")
      assert.truthy(smm("help").out:find(doc_path, 1, true))
    end)

    it("every relative link of README.md and docs/ resolves, anchors too; the README's contents list its sections", function()
      -- GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes
      local function anchors(text)
        local set = {}
        for heading in text:gmatch("\n#+ ([^\n]+)") do
          set[(heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))] = true
        end
        return set
      end
      local function prose(text) return ("\n" .. text):gsub("\n```.-\n```", "\n") end
      local pages = { "README.md" }
      local ls = io.popen("cd '" .. cli.ROOT .. "' && ls docs/*.md")
      for path in ls:lines() do pages[#pages + 1] = path end
      ls:close()
      assert.truthy(#pages >= 6, "docs/ has " .. (#pages - 1) .. " pages")
      local checked = 0
      for _, page in ipairs(pages) do
        local text = prose(assert(cli.read_file(cli.ROOT .. "/" .. page), page))
        local page_dir = page:match("^(.*)/") or "."
        for target in text:gmatch("%]%(([^)%s]+)%)") do
          if not target:find("^%a+:") then
            local path, anchor = target:match("^([^#]*)#?(.*)$")
            local file = path == "" and page or (page_dir .. "/" .. path)
            local linked = cli.read_file(cli.ROOT .. "/" .. file)
            assert.truthy(linked, page .. ": " .. target .. " is missing")
            if anchor ~= "" then
              assert.truthy(anchors(prose(linked))[anchor], page .. ": no heading for " .. target)
            end
            checked = checked + 1
          end
        end
      end
      assert.truthy(checked >= 20, checked .. " links")
      local readme = prose(cli.read_file(cli.ROOT .. "/README.md"))
      local toc, sections = {}, {}
      for anchor in readme:match("<!%-%- toc %-%->\n(.-)\n\n"):gmatch("%]%(#([^)]+)%)") do toc[#toc + 1] = anchor end
      for heading in readme:gmatch("\n## ([^\n]+)") do
        sections[#sections + 1] = (heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))
      end
      assert.same(sections, toc)
    end)
  end)
end)
