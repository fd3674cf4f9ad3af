-- Test helper: runs Lua chunks inside an nginx worker. Add M.LOCATION to the test nginx's
-- locations (nginx.start{ locations = eval.LOCATION }); eval.run(ng, code, vars) posts the
-- chunk there, with `local name = "value"` lines for vars first, and returns what it returned
-- (through JSON) and the seconds it took. A raise in the worker fails the calling test.
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson.safe"

local M = {}

-- runs the posted Lua chunk in the worker; its result comes back as JSON, a raise as
-- { raised = message } (nginx would answer 500)
M.LOCATION = [[
        location = /eval {
            client_body_buffer_size 1m;
            client_max_body_size 1m;
            content_by_lua_block {
                ngx.req.read_body()
                local chunk, err = loadstring(ngx.req.get_body_data() or "", "=eval")
                if not chunk then ngx.status = 400; ngx.say(err); return end
                ngx.update_time()
                local started = ngx.now()
                local ok, res = pcall(chunk)
                ngx.update_time()
                local out = { seconds = ngx.now() - started }
                if ok then out.value = res else out.raised = tostring(res) end
                ngx.say(require("cjson").encode(out))
            }
        }
]]

function M.run(ng, code, vars)
  local text = ""
  for name, value in pairs(vars or {}) do
    text = text .. ("local %s = %q\n"):format(name, value)
  end
  text = text .. code
  local out = {}
  local _, status = http.request{
    url = ng.base .. "/eval", method = "POST",
    headers = { ["content-type"] = "text/plain", ["content-length"] = #text },
    source = ltn12.source.string(text), sink = ltn12.sink.table(out),
  }
  local raw = table.concat(out)
  assert(status == 200, "HTTP " .. tostring(status) .. " from /eval: " .. raw)
  local res = cjson.decode(raw)
  assert(type(res) == "table", raw)
  assert(res.raised == nil, "raised in the worker: " .. tostring(res.raised))
  return res.value, res.seconds
end

return M
