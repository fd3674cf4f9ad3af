-- What a new user meets before the first line of their own code: the packages `make demo` and
-- `make test` install, the services they leave behind, the test nginx in a private home folder
-- (run as root), `smm sandbox` after `luarocks make`, and the files the rocks declare.
local socket = require "socket"
local http = require "socket.http"
local cli = require "helpers.cli"
local process = require "helpers.nginx_process"
local nginx = require "helpers.nginx"

local ROOT = cli.ROOT
local q = cli.quote

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function words(text)
  local set = {}
  for w in text:gmatch("%S+") do set[w] = true end
  return set
end

-- every process as "PID ARGS" lines; ps hangs on a futex under check-asan's LD_PRELOAD runtime
local function processes()
  return capture("env -u LD_PRELOAD ps -eo pid=,args=")
end

local function is_root()
  return capture("id -u"):match("^%s*(%d+)") == "0"
end

describe("install-deps", function()
  local demo, test

  setup(function()
    demo = words(capture("sh " .. q(ROOT .. "/scripts/install-deps") .. " --list demo"))
    test = words(capture("sh " .. q(ROOT .. "/scripts/install-deps") .. " --list test"))
  end)

  it("installs for the demo only what the demo runs: no nginx, no test tools, one Lua", function()
    for _, p in ipairs{ "make", "gcc", "pkg-config", "libcurl4-openssl-dev", "lua5.4", "liblua5.4-dev",
                        "lua-cjson", "lua-socket" } do
      assert.is_true(demo[p], "the demo set lacks " .. p)
    end
    for _, p in ipairs{ "nginx", "libnginx-mod-http-lua", "lua-busted", "lua-check", "lua5.1", "lua5.3",
                        "luajit2", "luarocks" } do
      assert.is_nil(demo[p], "the demo set installs " .. p)
    end
  end)

  it("installs for the tests everything the suite runs, the demo set included", function()
    for p in pairs(demo) do assert.is_true(test[p], "the test set lacks the demo's " .. p) end
    for _, p in ipairs{ "nginx", "libnginx-mod-http-lua", "lua-busted", "lua-check", "lua5.1", "lua5.3",
                        "luajit2", "libluajit2-5.1-dev", "luarocks", "openssl" } do
      assert.is_true(test[p], "the test set lacks " .. p)
    end
  end)

  it("is what make demo and make test ask for", function()
    local dry = function(target)
      return capture("cd " .. q(ROOT) .. " && make -n " .. target .. " 2>&1")
    end
    assert.truthy(dry("demo"):find("install-deps demo", 1, true), dry("demo"))
    assert.truthy(dry("test"):find("install-deps test", 1, true), dry("test"))
  end)

  it("keeps Debian's nginx from starting its service while it is installed", function()
    -- nginx's postinst runs `invoke-rc.d nginx start`: a policy-rc.d that exits 101 denies it.
    -- Installing for real here would replace the nginx other runs are using: read the script.
    local script = cli.read_file(ROOT .. "/scripts/install-deps")
    assert.truthy(script:find("/usr/sbin/policy-rc.d", 1, true))
    assert.truthy(script:find("exit 101", 1, true))
    assert.truthy(script:find("rm -f \"$POLICY\"", 1, true), "the policy must be removed after")
  end)
end)

describe("after the tests and the demo", function()
  it("no system nginx runs and nothing listens on port 80", function()
    local listeners = capture("ss -Hltn 'sport = :80' 2>/dev/null")
    assert.equal("", listeners)
    -- a service nginx reads /etc/nginx/nginx.conf: started without -p and -c
    for line in processes():gmatch("[^\n]+") do
      if line:find("^%s*%d+ nginx: master process") then
        assert.truthy(line:find(" -p ", 1, true) or line:find(" -c ", 1, true), "a system nginx runs: " .. line)
      end
    end
  end)

  it("no test nginx outlives its folder", function()
    for line in processes():gmatch("[^\n]+") do
      local prefix = line:match("^%s*%d+ nginx: master process .- %-p (%S+)")
      if prefix and prefix:find("^/tmp/smm%-") then
        local f = io.open(prefix .. "nginx.conf", "r")
        assert.truthy(f, "an nginx runs from a removed test folder: " .. line)
        f:close()
      end
    end
  end)
end)

describe("the test nginx", function()
  it("reads Lua files in a private folder (mode 0700, as a Debian home folder) when run as root", function()
    local ok, why = nginx.available()
    assert(ok, why)
    local private = cli.tmpdir() -- mktemp -d: mode 0700
    cli.write_file(private .. "/smm_private_probe.lua", 'return { answer = "readable" }\n')
    local ng = process.start{ name = "smm-nginx-private", conf = function(dir, port)
      return table.concat({
        "load_module " .. nginx.MODULES[1] .. ";",
        "load_module " .. nginx.MODULES[2] .. ";",
        "daemon on;",
        "worker_processes 1;",
        "pid logs/nginx.pid;",
        "error_log logs/error.log warn;",
        "events { worker_connections 64; }",
        "http {",
        "  access_log off;",
        "  client_body_temp_path " .. dir .. "/tmp_body;",
        "  proxy_temp_path " .. dir .. "/tmp_proxy;",
        "  fastcgi_temp_path " .. dir .. "/tmp_fcgi;",
        "  uwsgi_temp_path " .. dir .. "/tmp_uwsgi;",
        "  scgi_temp_path " .. dir .. "/tmp_scgi;",
        '  lua_package_path "' .. private .. '/?.lua;;";',
        "  server {",
        "    listen 127.0.0.1:" .. port .. ";",
        '    location / { content_by_lua_block { ngx.print(require("smm_private_probe").answer) } }',
        "  }",
        "}",
      }, "\n")
    end }
    local body, code = http.request("http://127.0.0.1:" .. ng.port .. "/")
    local log = ng:error_log()
    ng:stop()
    os.execute("rm -rf " .. q(private))
    assert.equal(200, code, (is_root() and "as root: " or "") .. tostring(body) .. "\n" .. log)
    assert.equal("readable", body)
  end)

  it("is told to run its workers as root in every conf the specs write themselves", function()
    -- 21 writes its own conf and starts nginx itself (not through helpers.nginx_process)
    local text = cli.read_file(ROOT .. "/spec/21-suite_in_nginx_spec.lua")
    assert.truthy(text:find("process.user_directive()", 1, true))
    if is_root() then
      assert.equal("user root;\n", process.user_directive())
    else
      assert.equal("", process.user_directive())
    end
  end)
end)

describe("the rock", function()
  local ROCKSPECS = { "smm-scm-1.rockspec", "smm-cli-scm-1.rockspec", "smm-sandbox-scm-1.rockspec" }
  local function rockspec(file)
    local spec = {}
    local chunk
    if setfenv then
      chunk = assert(loadfile(ROOT .. "/" .. file))
      setfenv(chunk, spec)
    else
      chunk = assert(loadfile(ROOT .. "/" .. file, "t", spec))
    end
    chunk()
    return spec
  end

  it("has the MIT LICENSE its rockspecs name", function()
    for _, file in ipairs(ROCKSPECS) do assert.equal("MIT", rockspec(file).description.license, file) end
    local text = cli.read_file(ROOT .. "/LICENSE")
    assert.truthy(text, "no LICENSE file")
    assert.truthy(text:find("^MIT License"), text)
    assert.truthy(text:find("Copyright (c) 2026 the lua-smm authors", 1, true), text)
    assert.truthy(text:find("THE SOFTWARE IS PROVIDED \"AS IS\"", 1, true))
  end)

  it("declares luasocket in the sandbox's rock, which needs it, and not in the library's", function()
    local function luasocket(file)
      for _, dep in ipairs(rockspec(file).dependencies) do
        if dep:match("^luasocket") then return dep end
      end
    end
    assert.truthy(luasocket("smm-sandbox-scm-1.rockspec"), "luasocket is not a dependency of smm-sandbox")
    assert.is_nil(luasocket("smm-scm-1.rockspec"), "the library rock declares luasocket")
  end)

  it("keeps the nginx example's logs out of git", function()
    local out = capture("cd " .. q(ROOT) .. " && git check-ignore examples/nginx/logs/error.log 2>&1")
    assert.equal("examples/nginx/logs/error.log\n", out)
  end)

  it("installed by luarocks make, `smm sandbox` and `smm-sandbox` start the panel", function()
    -- the three rocks in one tree for Lua 5.4, whatever runs busted: the sandbox needs 5.3+
    local version = "5.4"
    local tree = cli.tmpdir()
    local build = ""
    for _, file in ipairs(ROCKSPECS) do
      build = build .. capture(("cd %s && luarocks --lua-version=%s make --deps-mode=none --tree=%s %s 2>&1")
        :format(q(ROOT), version, q(tree), file))
    end
    local bin = io.open(tree .. "/bin/smm", "r")
    assert.truthy(bin, "luarocks make installed no bin/smm:\n" .. build)
    bin:close()
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(
      q(("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, version, tree, version)),
      q(("%s/lib/lua/%s/?.so;;"):format(tree, version)))
    local function start(command)
      local out, err = tree .. "/out", tree .. "/err"
      os.remove(out)
      local pid = tonumber(capture(("cd /tmp && %s %s --port 0 --key k >%s 2>%s </dev/null & echo $!")
        :format(env, command, q(out), q(err))))
      local banner
      for _ = 1, 100 do
        banner = cli.read_file(out)
        if banner and banner:find("\n") then break end
        if not cli.alive(pid) then break end
        socket.sleep(0.05)
      end
      local url, server = (banner or ""):match("listening on (%S+) pid (%d+)")
      local answer
      if url then
        answer = http.request((url:gsub("/api/v2$", "/sandbox/stats")))
        os.execute("kill " .. server)
      end
      os.execute("kill " .. pid .. " 2>/dev/null")
      return url, answer, (banner or "") .. (cli.read_file(err) or "")
    end
    local url, stats, printed = start(q(tree .. "/bin/smm") .. " sandbox")
    local url2, stats2, printed2 = start(q(tree .. "/bin/smm-sandbox"))
    os.execute("rm -rf " .. q(tree))
    assert.truthy(url, "smm sandbox: " .. printed)
    assert.truthy((stats or ""):find('"requests":0', 1, true), stats)
    assert.truthy(url2, "smm-sandbox: " .. printed2)
    assert.truthy((stats2 or ""):find('"requests":0', 1, true), stats2)
  end)
end)

describe("make demo", function()
  -- the demo's own sandboxes: lua5.4 bin/smm-sandbox ... --key demo-key, run from this checkout
  local function demo_sandboxes()
    local found = {}
    for line in processes():gmatch("[^\n]+") do
      local pid = line:match("^%s*(%d+) %S+ bin/smm%-sandbox %-%-port 0 %-%-key demo%-key$")
      if pid and capture("readlink /proc/" .. pid .. "/cwd 2>/dev/null") == ROOT .. "\n" then
        found[#found + 1] = pid
      end
    end
    return found
  end

  it("leaves no sandbox running, even when its output is cut short", function()
    local before = #demo_sandboxes()
    -- `| true` reads nothing: the demo's shell dies of SIGPIPE at its first echo, after the
    -- sandbox started (as with `make demo | head`); luasocket, loaded here, ignores SIGPIPE
    os.execute(("cd %s && LUA=lua5.4 env --default-signal=PIPE sh scripts/demo 2>/dev/null | true")
      :format(q(ROOT)))
    socket.sleep(0.2)
    local left = demo_sandboxes()
    for _, pid in ipairs(left) do os.execute("kill " .. pid) end
    assert.equal(before, #left, "the demo left its sandbox running")
    -- and whole, `make demo` runs to its end (on lua5.4, whatever runs busted), sandbox stopped
    -- (a clean environment: under another make, as in make check-memory, the sub-make would
    -- print its Entering/Leaving directory lines around the demo's output)
    local out = capture(("cd %s && env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS make -s demo LUA_VERSION=5.4 2>&1")
      :format(q(ROOT)))
    assert.truthy(out:find("\nBalance now: %d+%.%d+ USD\n$"), out)
    assert.equal(before, #demo_sandboxes(), "the demo left its sandbox running")
  end)
end)
