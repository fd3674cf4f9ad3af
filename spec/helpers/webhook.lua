-- Test helper: starts spec/helpers/webhook_receiver.lua (a webhook receiver in its own
-- process) and reads what it received.
--   local receiver = require("helpers.webhook").start{ fail = 2, status = 303, echo = true, hang = true }
--   receiver.url                       -- "http://127.0.0.1:PORT/hook"
--   receiver:requests()                -- { { n, method, path, headers, body, answered }, ... }
--   receiver:stop()
local cjson = require "cjson"
local cli = require "helpers.cli"

local M = {}
local Receiver = {}
Receiver.__index = Receiver

function M.start(opts)
  opts = opts or {}
  local dir = cli.tmpdir()
  local log = dir .. "/requests.jsonl"
  local args = {}
  if opts.fail then args[#args + 1] = "--fail " .. opts.fail end
  if opts.status then args[#args + 1] = "--status " .. opts.status end
  if opts.echo then args[#args + 1] = "--echo" end
  if opts.hang then args[#args + 1] = "--hang" end
  local lua = os.getenv("SMM_SANDBOX_LUA") or "lua5.4"
  local cmd = string.format("exec %s %s %s %s", lua,
    cli.quote(cli.ROOT .. "/spec/helpers/webhook_receiver.lua"), cli.quote(log), table.concat(args, " "))
  local pipe = assert(io.popen(cmd, "r"))
  local line = assert(pipe:read("*l"), "the webhook receiver did not start")
  local port, pid = line:match("listening on (%d+) pid (%d+)")
  assert(port, "unexpected banner from the webhook receiver: " .. line)
  return setmetatable({ port = tonumber(port), pid = tonumber(pid), pipe = pipe, dir = dir, log = log,
    url = "http://127.0.0.1:" .. port .. "/hook" }, Receiver)
end

function Receiver:requests()
  local list = {}
  local text = cli.read_file(self.log) or ""
  for line in text:gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
  return list
end

function Receiver:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pid = nil
    os.execute("rm -rf " .. cli.quote(self.dir))
  end
end

return M
