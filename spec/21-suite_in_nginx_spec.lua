-- The client's own specs, run again inside nginx: busted runs in an nginx worker (a timer,
-- where cosockets work), so every smm.new there picks the cosocket transport. Retry,
-- validation, errors, batching, polling and the fault matrix must behave exactly as they do
-- over libcurl, and smm.core must never be loaded.
local nginx = require "helpers.nginx"
local process = require "helpers.nginx_process"

local ROOT = nginx.root

-- The specs that talk to the panel only through smm.new or smm.transport.open (not smm.core or
-- transport.curl).
local SPECS = { "02-actions", "03-add", "04-errors", "05-retry", "06-batch", "07-wait", "08-services",
                "40-fault_matrix", "43-secrets", "44-bad_input", "50-trust_answers", "51-trust_secrets",
                "54-trust_api", "58-trust_review", "60-transport_conformance" }

-- master_process off: busted runs in the one nginx process, which keeps root's rights when
-- started as root; user_directive says so all the same, should a master ever fork workers.
local function conf(dir, port, specs)
  return process.user_directive() .. ([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
error_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 256; }
env PATH;
env HOME;
http {
  access_log off;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;";
  lua_package_cpath "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";
  init_worker_by_lua_block {
    ngx.timer.at(0, function()
      local probe = require("smm").new{ url = "http://127.0.0.1:1/api/v2", key = "k" }
      local f = io.open("%s/facts", "w")
      f:write(tostring(probe), "\n", tostring(package.loaded["smm.core"] ~= nil), "\n")
      f:close()
      arg = { [0] = "busted", "--output=plainTerminal", %s }
      require("busted.runner")({ standalone = false })
      os.exit(2) -- the runner exits by itself; reaching this line is a failure
    end)
  }
  server { listen 127.0.0.1:%d; location / { return 404; } }
}
]]):format(dir, dir, ROOT, ROOT, ROOT, dir, specs, port)
end

describe("the client suite inside nginx #nginxsuite", function()
  it("passes with the cosocket transport, without loading smm.core", function()
    if _VERSION ~= "Lua 5.4" then
      pending("runs once, under lua5.4 (nginx runs its own LuaJIT whatever runs busted)")
      return
    end
    assert(nginx.available())
    local p = io.popen("mktemp -d")
    local dir = p:read("*l")
    p:close()
    local list = {}
    for i, name in ipairs(SPECS) do list[i] = ("%q"):format(ROOT .. "/spec/" .. name .. "_spec.lua") end
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(conf(dir, require("helpers.sandbox").closed_port(), table.concat(list, ", ")))
    f:close()
    p = io.popen(("timeout 600 %s -p '%s/' -c '%s/nginx.conf' 2>&1"):format(nginx.BINARY, dir, dir))
    local out = p:read("*a")
    p:close()
    f = io.open(dir .. "/facts")
    local facts = f and f:read("*a") or ""
    if f then f:close() end
    os.execute("rm -rf '" .. dir .. "'")
    assert.truthy(facts:find("(ngx)", 1, true), "the transport inside nginx: " .. facts)
    assert.truthy(facts:find("\nfalse\n", 1, true), "smm.core was loaded inside nginx")
    local s, fl, e = out:match("(%d+) successes? / (%d+) failures? / (%d+) errors?")
    assert.is_truthy(s, "no busted summary from inside nginx:\n" .. out:sub(-3000))
    assert.is_true(tonumber(s) > 500, "only " .. s .. " specs ran")
    assert.equal(0, tonumber(fl) + tonumber(e), out:sub(-6000))
  end)
end)
