-- The C core's files depend on each other one way (issue 11): core -> client -> multi -> result
-- -> decode -> {reader, schema}, with options, interrupt and the handle's data where they are
-- used, and form, buffer and compat at the bottom. A file may include the header of its own
-- concept and those of lower layers only; a new file must be given its place here.
local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/") or "."

-- Layer of each concept (its .c and .h): a larger number is lower.
local LAYER = {
  core = 1,
  client = 2,
  options = 3, multi = 3,
  interrupt = 4, result = 4,
  handle = 5,
  decode = 6,
  reader = 7,
  schema = 8, form = 8,
  buffer = 9, compat = 9,
}

local function src_files()
  local p = assert(io.popen("cd '" .. ROOT .. "' && ls src"))
  local files = {}
  for line in p:lines() do
    if line:match("%.[ch]$") then files[#files + 1] = line end
  end
  p:close()
  return files
end

local function includes(file)
  local f = assert(io.open(ROOT .. "/src/" .. file, "r"))
  local found = {}
  for line in f:lines() do
    local name = line:match('^%s*#%s*include%s+"([^"]+)"')
    if name then found[#found + 1] = name end
  end
  f:close()
  return found
end

local function concept(file) return (file:gsub("%.[ch]$", "")) end

describe("C layers", function()
  it("every file of src/ has a layer", function()
    local files = src_files()
    assert.is_true(#files >= 20, "src/ not found from " .. ROOT)
    for _, file in ipairs(files) do
      assert.is_not_nil(LAYER[concept(file)], "src/" .. file .. " has no layer in spec/64")
    end
  end)

  it("includes run one way: down, never up or sideways", function()
    local wrong = {}
    for _, file in ipairs(src_files()) do
      local own = concept(file)
      for _, header in ipairs(includes(file)) do
        local other = concept(header)
        assert.is_not_nil(LAYER[other], "src/" .. file .. " includes an unknown " .. header)
        if other ~= own and LAYER[other] <= LAYER[own] then
          wrong[#wrong + 1] = file .. " includes " .. header
        end
      end
    end
    assert.same({}, wrong)
  end)

  it("the order is the one the design names", function()
    local chain = { "core", "client", "multi", "result", "decode", "reader", "schema" }
    for i = 2, #chain do
      assert.is_true(LAYER[chain[i - 1]] < LAYER[chain[i]], chain[i - 1] .. " above " .. chain[i])
    end
    for _, bottom in ipairs{ "form", "buffer", "compat" } do
      assert.is_true(LAYER[bottom] > LAYER.decode, bottom .. " at the bottom")
    end
  end)

  it("reads the include lines the tree has", function()
    -- multi.c builds its results with result.c: a line this parser must find
    local seen = {}
    for _, h in ipairs(includes("multi.c")) do seen[h] = true end
    assert.is_true(seen["result.h"])
    assert.is_true(LAYER.result > LAYER.multi)
  end)
end)
