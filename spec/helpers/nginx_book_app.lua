-- The handlers spec 24 runs inside nginx: an order placed through a client whose book runs its
-- database work in a worker thread (thread_pool "smm"), or, as the measure's control, through a
-- book opened without one (its LuaDBI calls then block the worker).
--
-- Environment (nginx `env`): SMM_API_URL, SMM_API_KEY, SMM_BOOK_URL.
local smm = require "smm"
local errors = require "smm.errors"
local cjson = require "cjson.safe"

local M = {}

local clients = {}

local function client(threaded)
  local c = clients[threaded]
  if not c then
    local book = assert(smm.book.open(os.getenv("SMM_BOOK_URL"), threaded and { thread_pool = "smm" } or nil))
    c = smm.new{ url = os.getenv("SMM_API_URL"), key = os.getenv("SMM_API_KEY"), book = book,
                 retry_base = 10, timeout = 5000 }
    clients[threaded] = c
  end
  return c
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

local function error_json(err)
  return { error = { kind = err.kind, code = err.code, message = err.message,
    is_error_object = errors.is(err), text = tostring(err) } }
end

-- POST service, link, quantity, ref -> the add's result, or { error = }
function M.order(threaded)
  ngx.req.read_body()
  local a = ngx.req.get_post_args()
  local res, err = client(threaded):add({ service = tonumber(a.service), link = a.link,
    quantity = tonumber(a.quantity) }, { ref = a.ref })
  if not res then return reply(error_json(err)) end
  return reply(res)
end

-- GET ?ref= -> the book's row, or { error = }
function M.get()
  local row, err = client(true).book:get(ngx.var.arg_ref)
  if err then return reply(error_json(err)) end
  return reply(row or { none = true })
end

-- init_worker: the background sync and delivery (smm.book.background), every second, the
-- events to the webhook in SMM_WEBHOOK_URL signed with SMM_WEBHOOK_SECRET.
function M.background()
  return require("smm.book.background").start{
    book = function() return client(true).book end,
    client = function() return client(true) end,
    dict = "smm", every = 1, sync = { min_interval = 1 },
    hooks = { { webhook = os.getenv("SMM_WEBHOOK_URL"), secret = os.getenv("SMM_WEBHOOK_SECRET") } },
  }
end

-- GET ?ref= -> book:resolve(ref, false) straight from the threaded book: true, or { error = }
function M.resolve()
  local ok, err = client(true).book:resolve(ngx.var.arg_ref, false)
  if not ok then return reply(error_json(err)) end
  return reply({ resolved = ok })
end

return M
