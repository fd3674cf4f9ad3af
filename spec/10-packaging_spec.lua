-- The rock installs what the repository has, and the installed module works.
local env = require "helpers.env"

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/") or "."

local function lua_files()
  local p = assert(io.popen("cd '" .. ROOT .. "' && find lua -name '*.lua' | sort"))
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

local function rockspec()
  local chunk = assert(loadfile(ROOT .. "/smm-scm-1.rockspec", "t", {}))
  local spec = {}
  if setfenv then setfenv(chunk, spec) else
    chunk = assert(loadfile(ROOT .. "/smm-scm-1.rockspec", "t", spec))
  end
  chunk()
  return spec
end

describe("packaging", function()
  it("the rockspec names every Lua module and every C source", function()
    local modules = rockspec().build.modules
    local listed = {}
    for name, file in pairs(modules) do
      if type(file) == "string" then listed[file] = name end
    end
    for _, file in ipairs(lua_files()) do
      local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(name, listed[file], file .. " is not in the rockspec")
    end
    local p = assert(io.popen("cd '" .. ROOT .. "' && ls src/*.c"))
    local sources = {}
    for _, s in ipairs(modules["smm.core"].sources) do sources[s] = true end
    for line in p:lines() do assert.is_true(sources[line], line .. " is not in the rockspec") end
    p:close()
  end)

  it("luarocks make installs a working client", function()
    local version = _VERSION:match("%d+%.%d+")
    local tree = os.tmpname()
    os.remove(tree)
    local log = tree .. ".log"
    local cmd = ("cd '%s' && luarocks --lua-version=%s make --deps-mode=none --tree='%s' smm-scm-1.rockspec >'%s' 2>&1")
      :format(ROOT, version, tree, log)
    os.execute(cmd)
    local f = io.open(tree .. "/lib/lua/" .. version .. "/smm/core.so", "rb")
    assert.is_truthy(f, "luarocks make did not install smm.core")
    f:close()
    local sb = env.sandbox()
    local script = ("local c = require('smm').new{ url = %q, key = %q }; " ..
      "local b = assert(c:balance()); local found; " ..
      "for t in package.cpath:gmatch('[^;]+') do local p = t:gsub('%%?', 'smm/core'); " ..
      "local f = io.open(p); if f and not found then found = p; f:close() end end; " ..
      "io.write(b.balance, ' ', found)")
      :format(sb.url, env.KEY)
    local interp = (type(jit) == "table") and "luajit" or ("lua" .. version)
    local p = io.popen(("LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' LUA_CPATH='%s/lib/lua/%s/?.so;;' %s -e %q")
      :format(tree, version, tree, version, tree, version, interp, script))
    local out = p:read("*a")
    p:close()
    sb:stop()
    os.execute("rm -rf '" .. tree .. "' '" .. log .. "'")
    assert.equal("100.00 " .. tree .. "/lib/lua/" .. version .. "/smm/core.so", out)
  end)
end)
