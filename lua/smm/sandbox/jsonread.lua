-- A small JSON reader for the sandbox's own inputs (a --services file, POST /sandbox/services
-- list=...). Numbers come back as their text ("0.90" stays "0.90"), so a rate is never a float
-- on its way into the panel's exact decimal; true/false as booleans, null as nil. The sandbox
-- stays independent of the client library (which reads answers with lua-cjson), so it reads its
-- inputs itself.
local M = {}

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r",
  t = "\t" }

local function utf8_char(c)
  if c < 0x80 then return string.char(c) end
  if c < 0x800 then return string.char(0xC0 + c // 64, 0x80 + c % 64) end
  if c < 0x10000 then
    return string.char(0xE0 + c // 4096, 0x80 + c // 64 % 64, 0x80 + c % 64)
  end
  return string.char(0xF0 + c // 262144, 0x80 + c // 4096 % 64, 0x80 + c // 64 % 64, 0x80 + c % 64)
end

local function fail(pos, what)
  error({ json = string.format("bad JSON at byte %d: %s", pos, what) }, 0)
end

local value

local function skip(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function read_string(text, pos)
  local out, i = {}, pos + 1
  while true do
    local j = text:find('["\\]', i)
    if not j then fail(pos, "unterminated string") end
    out[#out + 1] = text:sub(i, j - 1)
    if text:sub(j, j) == '"' then return table.concat(out), j + 1 end
    local e = text:sub(j + 1, j + 1)
    if e == "u" then
      local hex = text:match("^%x%x%x%x", j + 2)
      if not hex then fail(j, "bad \\u escape") end
      local c = tonumber(hex, 16)
      local k = j + 6
      if c >= 0xD800 and c < 0xDC00 then
        local lo = text:match("^\\u(%x%x%x%x)", k)
        if lo then
          c = 0x10000 + (c - 0xD800) * 1024 + (tonumber(lo, 16) - 0xDC00)
          k = k + 6
        end
      end
      out[#out + 1] = utf8_char(c)
      i = k
    elseif ESC[e] then
      out[#out + 1] = ESC[e]
      i = j + 2
    else
      fail(j, "bad escape")
    end
  end
end

function value(text, pos)
  pos = skip(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    local obj = {}
    pos = skip(text, pos + 1)
    if text:sub(pos, pos) == "}" then return obj, pos + 1 end
    while true do
      if text:sub(pos, pos) ~= '"' then fail(pos, "object key expected") end
      local k
      k, pos = read_string(text, pos)
      pos = skip(text, pos)
      if text:sub(pos, pos) ~= ":" then fail(pos, "':' expected") end
      obj[k], pos = value(text, pos + 1)
      pos = skip(text, pos)
      c = text:sub(pos, pos)
      if c == "}" then return obj, pos + 1 end
      if c ~= "," then fail(pos, "',' or '}' expected") end
      pos = skip(text, pos + 1)
    end
  elseif c == "[" then
    local arr = {}
    pos = skip(text, pos + 1)
    if text:sub(pos, pos) == "]" then return arr, pos + 1 end
    while true do
      arr[#arr + 1], pos = value(text, pos)
      pos = skip(text, pos)
      c = text:sub(pos, pos)
      if c == "]" then return arr, pos + 1 end
      if c ~= "," then fail(pos, "',' or ']' expected") end
      pos = pos + 1
    end
  elseif c == '"' then
    return read_string(text, pos)
  end
  local num = text:match("^%-?%d+%.?%d*[eE]?[%+%-]?%d*", pos)
  if num and num ~= "" then return num, pos + #num end
  if text:sub(pos, pos + 3) == "true" then return true, pos + 4 end
  if text:sub(pos, pos + 4) == "false" then return false, pos + 5 end
  if text:sub(pos, pos + 3) == "null" then return nil, pos + 4 end
  fail(pos, "unexpected " .. (c == "" and "end of text" or ("'" .. c .. "'")))
end

-- Returns the value, or nil and a message saying where the text is wrong.
function M.decode(text)
  if type(text) ~= "string" then return nil, "bad JSON: text expected" end
  local ok, v, pos = pcall(value, text, 1)
  if not ok then
    if type(v) == "table" then return nil, v.json end
    error(v, 0)
  end
  if skip(text, pos) <= #text then return nil, "bad JSON at byte " .. pos .. ": trailing text" end
  return v
end

return M
