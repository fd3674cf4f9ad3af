-- A rock per audience: `smm` (the library: Lua 5.1-5.4 and LuaJIT, libcurl, lua-cjson), `smm-cli`
-- (bin/smm) and `smm-sandbox` (bin/smm-sandbox: Lua 5.3+, luasocket). Each rockspec lists exactly
-- the files of its part of the tree, declares the rocks its files require, installs with luarocks
-- on 5.1 and 5.4 (the sandbox on 5.4) with nothing of the others, works from the installed tree,
-- and every file it installs parses on every Lua it claims.
local env = require "helpers.env"

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/") or "."

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function lines(cmd)
  local list = {}
  for line in capture(cmd):gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

local function load_rockspec(file)
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

-- Which rock owns a file of the tree: the tools own their folders, the library the rest of lua/.
local function owner(file)
  if file:find("^lua/smm/cli/") or file == "bin/smm" then return "smm-cli" end
  if file:find("^lua/smm/sandbox/") or file == "bin/smm-sandbox" then return "smm-sandbox" end
  if file:find("^lua/") then return "smm" end
end

local ROCKS = {
  { name = "smm", file = "smm-scm-1.rockspec" },
  { name = "smm-cli", file = "smm-cli-scm-1.rockspec" },
  { name = "smm-sandbox", file = "smm-sandbox-scm-1.rockspec" },
}
for _, rock in ipairs(ROCKS) do
  rock.spec = load_rockspec(rock.file)
  rock.lua = rock.spec.build.install and rock.spec.build.install.lua or {}
  rock.bin = rock.spec.build.install and rock.spec.build.install.bin or {}
end
local BY_NAME = {}
for _, rock in ipairs(ROCKS) do BY_NAME[rock.name] = rock end

local function depends(rock, name)
  for _, dep in ipairs(rock.spec.dependencies or {}) do
    if dep == name or dep:match("^(%S+)") == name then return dep end
  end
end

-- The interpreters here for the Lua versions a rock's "lua >= A, < B" claims (LuaJIT is a 5.1).
local INTERPRETERS = { ["5.1"] = { "lua5.1", "luajit" }, ["5.2"] = {}, ["5.3"] = { "lua5.3" },
                       ["5.4"] = { "lua5.4" } }
local function claimed(rock)
  local dep = assert(depends(rock, "lua"), rock.name .. " claims no Lua version")
  local low, high = dep:match("^lua >= (%d+%.%d+), < (%d+%.%d+)$")
  assert(low, rock.name .. ": " .. dep)
  local versions, interpreters = {}, {}
  for _, v in ipairs{ "5.1", "5.2", "5.3", "5.4" } do
    if tonumber(v) >= tonumber(low) and tonumber(v) < tonumber(high) then
      versions[#versions + 1] = v
      for _, i in ipairs(INTERPRETERS[v]) do interpreters[#interpreters + 1] = i end
    end
  end
  return versions, interpreters
end

-- Which rock provides a module required by name (nil: Lua's own or unknown).
local EXTERNAL = { cjson = "lua-cjson", ["cjson.safe"] = "lua-cjson", socket = "luasocket",
                   ["socket.http"] = "luasocket", ["socket.url"] = "luasocket" }
local function provider(module)
  for _, rock in ipairs(ROCKS) do
    if rock.lua[module] then return rock.name end
  end
  if module == "smm.core" then return "smm" end
  return EXTERNAL[module]
end

describe("the rockspecs", function()
  local tree_lua = lines("cd " .. q(ROOT) .. " && find lua -name '*.lua' | sort")
  local tree_bin = lines("cd " .. q(ROOT) .. " && find bin -type f | sort")

  it("give every Lua file of the tree to exactly the rock of its folder, under its module name", function()
    assert.is_true(#tree_lua > 20)
    local listed = {}
    for _, rock in ipairs(ROCKS) do
      for module, file in pairs(rock.lua) do
        assert.is_nil(listed[file], file .. " is listed twice")
        listed[file] = rock.name
        assert.truthy(read(ROOT .. "/" .. file), rock.file .. " lists " .. file .. ", which is missing")
        local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
        assert.equal(name, module, file)
      end
    end
    for _, file in ipairs(tree_lua) do
      assert.equal(owner(file), listed[file], file .. " is not in " .. owner(file) .. "'s rockspec")
    end
  end)

  it("give every program in bin/ to exactly its tool's rock", function()
    local listed = {}
    for _, rock in ipairs(ROCKS) do
      for _, file in ipairs(rock.bin) do
        assert.is_nil(listed[file], file .. " is listed twice")
        listed[file] = rock.name
        assert.truthy(read(ROOT .. "/" .. file), rock.file .. " lists " .. file .. ", which is missing")
      end
    end
    assert.equal(2, #tree_bin)
    for _, file in ipairs(tree_bin) do
      assert.equal(owner(file), listed[file], file)
    end
  end)

  it("build the C core from every C source, in the library rock only", function()
    local smm = BY_NAME.smm.spec.build
    -- "builtin" would also copy all of lua/ (the tools too) into the library's tree
    assert.equal("command", smm.type)
    assert.truthy(smm.build_command:find(" src/*.c ", 1, true), smm.build_command)
    local output = smm.build_command:match("%-o (%S+)")
    assert.equal(output, smm.install.lib["smm.core"])
    assert.same({ CURL = { library = "curl" } }, BY_NAME.smm.spec.external_dependencies)
    assert.equal("none", BY_NAME["smm-cli"].spec.build.type)
    assert.equal("none", BY_NAME["smm-sandbox"].spec.build.type)
  end)

  it("claim the Lua versions of their audience", function()
    assert.equal("lua >= 5.1, < 5.5", depends(BY_NAME.smm, "lua"))
    assert.equal("lua >= 5.1, < 5.5", depends(BY_NAME["smm-cli"], "lua"))
    -- the panel's exact money is 5.3 integer arithmetic
    assert.equal("lua >= 5.3, < 5.5", depends(BY_NAME["smm-sandbox"], "lua"))
    assert.is_nil(depends(BY_NAME.smm, "luasocket"), "the library needs no luasocket")
    assert.truthy(depends(BY_NAME["smm-sandbox"], "luasocket"))
  end)

  it("declare every rock whose modules their files require", function()
    for _, rock in ipairs(ROCKS) do
      local files = {}
      for _, file in pairs(rock.lua) do files[#files + 1] = file end
      for _, file in ipairs(rock.bin) do files[#files + 1] = file end
      for _, file in ipairs(files) do
        local text = assert(read(ROOT .. "/" .. file))
        -- a pcall(require, ...) is optional by design: only plain requires must be declared
        for module in text:gmatch("[^%w_]require%s*%(?%s*[\"']([%w_.]+)[\"']") do
          local from = provider(module)
          if from and from ~= rock.name then
            assert.truthy(depends(rock, from), ("%s requires %s: %s does not declare %s")
              :format(file, module, rock.file, from))
          end
          assert.is_not_equal("smm-sandbox", from ~= rock.name and from or nil,
            file .. " requires the sandbox")
        end
      end
    end
  end)
end)

-- Installs the rocks one after the other into a tree for one Lua version and returns, for each,
-- the files it added.
local function install(version, names)
  local tree = os.tmpname()
  os.remove(tree)
  local added = {}
  local before = {}
  for _, name in ipairs(names) do
    local log = capture(("cd %s && luarocks --lua-version=%s --tree=%s make --deps-mode=none %s 2>&1")
      :format(q(ROOT), version, q(tree), q(BY_NAME[name].file)))
    local now, new = {}, {}
    for _, f in ipairs(lines("cd " .. q(tree) .. " && find share lib bin -type f 2>/dev/null | sort")) do
      now[f] = true
      if not before[f] then new[#new + 1] = f end
    end
    before = now
    added[name] = { files = new, log = log }
  end
  return tree, added
end

-- The files a rock should add to a tree: its modules, its programs (luarocks' wrapper and the
-- script kept in the rock's folder), the C core.
local function expected(rock, version)
  local files = {}
  for module in pairs(rock.lua) do
    files[#files + 1] = "share/lua/" .. version .. "/" .. module:gsub("%.", "/") .. ".lua"
  end
  for module in pairs(rock.spec.build.install.lib or {}) do
    files[#files + 1] = "lib/lua/" .. version .. "/" .. module:gsub("%.", "/") .. ".so"
  end
  for _, file in ipairs(rock.bin) do
    local program = file:match("[^/]+$")
    files[#files + 1] = "bin/" .. program
    files[#files + 1] = ("lib/luarocks/rocks-%s/%s/scm-1/bin/%s"):format(version, rock.name, program)
  end
  table.sort(files)
  return files
end

local function installed_code(added)
  local list = {}
  for _, f in ipairs(added.files) do
    if f:find("^share/") or f:find("^lib/lua/") or f:find("^bin/") or f:find("/bin/[^/]+$") then
      list[#list + 1] = f
    end
  end
  return list
end

local function tree_env(tree, version)
  return ("PATH=/usr/bin:/bin LUA_PATH=%s LUA_CPATH=%s"):format(
    q(("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, version, tree, version)),
    q(("%s/lib/lua/%s/?.so;;"):format(tree, version)))
end

-- Every installed Lua file of a rock (modules and the real scripts) loads with each interpreter.
local function parse_errors(tree, rock, version, interpreter)
  local files = {}
  for module in pairs(rock.lua) do
    files[#files + 1] = ("%s/share/lua/%s/%s.lua"):format(tree, version, module:gsub("%.", "/"))
  end
  for _, file in ipairs(rock.bin) do
    files[#files + 1] = ("%s/lib/luarocks/rocks-%s/%s/scm-1/bin/%s")
      :format(tree, version, rock.name, file:match("[^/]+$"))
  end
  local script = "for _, f in ipairs(arg) do local ok, e = loadfile(f); " ..
    "if not ok then io.write(e, '\\n') end end"
  local words = {}
  for i, f in ipairs(files) do words[i] = q(f) end
  local checker = os.tmpname()
  local out = assert(io.open(checker, "w"))
  out:write(script)
  out:close()
  local errors = capture(("%s %s %s 2>&1"):format(interpreter, q(checker), table.concat(words, " ")))
  os.remove(checker)
  return errors
end

for _, version in ipairs{ "5.1", "5.4" } do
  describe("installed with luarocks for Lua " .. version, function()
    local names = { "smm", "smm-cli" }
    if version == "5.4" then names[3] = "smm-sandbox" end
    local tree, added

    setup(function()
      tree, added = install(version, names)
    end)

    teardown(function()
      os.execute("rm -rf " .. q(tree))
    end)

    for _, name in ipairs(names) do
      it(name .. " adds exactly its own files", function()
        assert.same(expected(BY_NAME[name], version), installed_code(added[name]), added[name].log)
      end)

      it(name .. "'s installed files parse on every Lua it claims", function()
        local versions, interpreters = claimed(BY_NAME[name])
        assert.is_true(#versions >= 2)
        for _, interpreter in ipairs(interpreters) do
          assert.equal("", parse_errors(tree, BY_NAME[name], version, interpreter), interpreter)
        end
      end)
    end

    it("smm: require 'smm' and smm.new work from the tree, with the tree's C core", function()
      local sb = env.sandbox()
      local script = ("local c = require('smm').new{ url = %q, key = %q }; " ..
        "local b = assert(c:balance()); local found; " ..
        "for t in package.cpath:gmatch('[^;]+') do local p = t:gsub('%%?', 'smm/core'); " ..
        "local f = io.open(p); if f and not found then found = p; f:close() end end; " ..
        "io.write(b.balance, ' ', found)"):format(sb.url, env.KEY)
      local out = capture(("%s lua%s -e %s 2>&1"):format(tree_env(tree, version), version, q(script)))
      sb:stop()
      assert.equal("100.00 " .. tree .. "/lib/lua/" .. version .. "/smm/core.so", out)
    end)

    it("smm-cli: smm --version runs from the tree", function()
      local out = capture(("%s %s --version 2>&1"):format(tree_env(tree, version), q(tree .. "/bin/smm")))
      assert.truthy(out:find("^smm %S+ %(lua%-smm; smm%.core %S+; Lua " .. version:gsub("%.", "%%.") .. "%)\n$"), out)
    end)

    if version == "5.4" then
      it("smm-sandbox: smm-sandbox prints its banner from the tree", function()
        local p = assert(io.popen(("cd /tmp && %s timeout 20 %s --port 0 --key k 2>&1")
          :format(tree_env(tree, version), q(tree .. "/bin/smm-sandbox"))))
        local banner = p:read("*l") or ""
        local pid = banner:match("^smm%-sandbox listening on http://127%.0%.0%.1:%d+/api/v2 pid (%d+)$")
        if pid then os.execute("kill " .. pid) end
        p:close()
        assert.truthy(pid, banner)
      end)
    else
      it("smm-cli without smm-sandbox: `smm sandbox` says which rock to install", function()
        -- bounded: a CLI that still runs a panel here would otherwise never return
        local out = capture(("%s timeout 20 %s sandbox --port 0 2>&1; echo \"exit $?\"")
          :format(tree_env(tree, version), q(tree .. "/bin/smm")))
        assert.equal("smm: the sandbox panel is not installed: luarocks install smm-sandbox " ..
          "(Lua 5.3+, luasocket)\nexit 1\n", out)
      end)
    end
  end)
end
