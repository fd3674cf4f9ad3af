-- bench/lua_curl_loop.lua: the Lua floor for the balance measure, a reference row of
-- bench/run.lua. Debian's lua-curl (Lua 5.1) sends N POSTs of BODY over one easy handle; each
-- answer's chunks are collected in a Lua table and concatenated, and, with --decode, the JSON is
-- decoded by lua-cjson. Nothing else is done: no User-Agent, no result, no errors, no integers.
-- Without --decode: what calling libcurl from Lua costs at all; with it: the least any Lua
-- client of a JSON API does.
--
--   lua5.1 bench/lua_curl_loop.lua URL N BODY [--decode]
--
-- Prints {"n":N,"wall_ms":..,"cpu_ms":..} like build/bench/curl_loop (cpu: os.clock, which is
-- user + system time, as getrusage there).
local curl = require "curl"
local socket = require "socket"

local url, n, body = arg[1], tonumber(arg[2]), arg[3]
local decode = arg[4] == "--decode" and require("cjson").decode or function() end
local warmup = 20
local chunks
local e = curl.easy_init()
e:setopt(curl.OPT_URL, url)
e:setopt(curl.OPT_NOSIGNAL, 1)
e:setopt(curl.OPT_POSTFIELDS, body)
e:setopt(curl.OPT_WRITEFUNCTION, function(s)
  chunks[#chunks + 1] = s
  return #s
end)

local function one()
  chunks = {}
  local ok, err = e:perform()
  if not ok then error("lua_curl_loop: " .. tostring(err)) end
  return table.concat(chunks)
end

for _ = 1, warmup do decode(one()) end
local w0, c0 = socket.gettime(), os.clock()
local last
for _ = 1, n do
  last = one()
  decode(last)
end
local wall, cpu = (socket.gettime() - w0) * 1000, (os.clock() - c0) * 1000
assert(last:find('"balance"', 1, true), "unexpected answer: " .. last)
print(string.format('{"n":%d,"wall_ms":%.3f,"cpu_ms":%.3f}', n, wall, cpu))
