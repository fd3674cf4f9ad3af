-- The order book inside nginx: a client's book opened with { thread_pool = "smm" } runs its
-- LuaDBI calls in nginx's worker threads (ngx.run_worker_thread), so that an order waiting for
-- the book (here: for a SQLite write lock another process holds for 2 s) never delays the other
-- requests of the same worker. Real nginx (one worker, a thread pool), a real SQLite file, the
-- sandbox panel.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local process = require "helpers.nginx_process"
local books = require "helpers.book"
local socket = require "socket"
local cjson = require "cjson.safe"
local webhook = require "helpers.webhook"
local hooks = require "smm.book.hooks"

local ROOT = nginx.root
local HOLD = 2 -- seconds the other process holds the book's write lock
local SECRET = "whsec-spec24-0b1c"

local function conf(_, port)
  return ([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon on;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
thread_pool smm threads=4;
env SMM_API_URL;
env SMM_API_KEY;
env SMM_BOOK_URL;
env SMM_WEBHOOK_URL;
env SMM_WEBHOOK_SECRET;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path logs/body;
  lua_package_path "ROOT/lua/?.lua;ROOT/lua/?/init.lua;ROOT/spec/?.lua;;";
  lua_shared_dict smm 1m;
  init_worker_by_lua_block { assert(require("helpers.nginx_book_app").background()) }
  server {
    listen 127.0.0.1:PORT;
    location = /order { content_by_lua_block { require("helpers.nginx_book_app").order(true) } }
    location = /blocking_order { content_by_lua_block { require("helpers.nginx_book_app").order(false) } }
    location = /book { content_by_lua_block { require("helpers.nginx_book_app").get() } }
    location = /resolve { content_by_lua_block { require("helpers.nginx_book_app").resolve() } }
    location = /plain { content_by_lua_block { ngx.say("plain") } }
  }
}
]]):gsub("ROOT", ROOT):gsub("PORT", tostring(port))
end

-- A raw HTTP/1.0 exchange on its own connection: send() now, answer() later.
local function open_request(port, method, path, fields)
  local body = fields and nginx.encode(fields) or ""
  local c = assert(socket.tcp())
  c:settimeout(30)
  assert(c:connect("127.0.0.1", port))
  assert(c:send(method .. " " .. path .. " HTTP/1.0\r\nHost: x\r\n" ..
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body))
  return function()
    local data = c:receive("*a") or ""
    c:close()
    local raw = data:match("\r\n\r\n(.*)$") or ""
    return tonumber(data:match("^HTTP/1%.%d (%d+)")), cjson.decode(raw), raw
  end
end

local function request(port, method, path, fields)
  return open_request(port, method, path, fields)()
end

describe("the order book inside nginx #nginx #book", function()
  local sb, ng, store, book_url, book_path, receiver

  setup(function()
    assert(nginx.available())
    sb = env.sandbox()
    store = books.store("sqlite")
    book_url = store:fresh_url()
    book_path = book_url:match("^sqlite:(.*)$")
    receiver = webhook.start()
    ng = process.start({ name = "smm-nginx-book", conf = conf,
      env = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, SMM_BOOK_URL = book_url,
              SMM_WEBHOOK_URL = receiver.url, SMM_WEBHOOK_SECRET = SECRET } })
  end)

  teardown(function()
    if ng then
      local log = ng:error_log()
      ng:stop()
      assert.is_nil(log:find(env.KEY, 1, true), "the key is in nginx's error log")
    end
    if sb then sb:stop() end
    if receiver then receiver:stop() end
    if store then store:close() end
  end)

  local order = { service = 1, link = "https://x.test/ngx", quantity = 100 }
  local function with_ref(ref)
    local f = { ref = ref }
    for k, v in pairs(order) do f[k] = v end
    return f
  end

  it("places an order with a ref through the book; the same ref again sends nothing", function()
    local status, res, raw = request(ng.port, "POST", "/order", with_ref("shop-1"))
    assert.equal(200, status, raw)
    assert.is_number(res.order, raw)
    assert.equal(1, env.count(sb, "add"))

    -- the row, read through the threaded book
    local _, row = request(ng.port, "GET", "/book?ref=shop-1")
    assert.equal("placed", row.state, cjson.encode(row))
    assert.equal(res.order, row.order_id)
    assert.equal(100, row.quantity)

    -- and in the file itself, by another connection
    local check = assert(require("smm").book.open(book_url))
    local direct = assert(check:get("shop-1"))
    check:close()
    assert.equal(res.order, direct.order_id)

    -- the same ref: the recorded order comes back and nothing reaches the panel
    local status2, again, raw2 = request(ng.port, "POST", "/order", with_ref("shop-1"))
    assert.equal(200, status2, raw2)
    assert.equal(res.order, again.order, raw2)
    assert.is_true(again.recorded, raw2)
    assert.equal(1, env.count(sb, "add"))

    -- the file holds no key
    local f = assert(io.open(book_path, "rb"))
    local bytes = f:read("*a")
    f:close()
    assert.is_nil(bytes:find(env.KEY, 1, true))
  end)

  it("a book error comes back from the thread as an error object (a ref used for another order)", function()
    local f = with_ref("shop-1")
    f.quantity = 200
    local _, res, raw = request(ng.port, "POST", "/order", f)
    assert.is_table(res.error, raw)
    assert.equal("book", res.error.kind)
    assert.equal("ref_conflict", res.error.code)
    assert.is_true(res.error.is_error_object)
    assert.truthy(res.error.text:find("^smm book error"), res.error.text)
    assert.equal(1, env.count(sb, "add"))

    -- straight from the book's own method (the client above builds its errors anew)
    local _, res2, raw2 = request(ng.port, "GET", "/resolve?ref=no-such-ref")
    assert.is_table(res2.error, raw2)
    assert.equal("not_found", res2.error.code)
    assert.is_true(res2.error.is_error_object, raw2)
    assert.truthy(res2.error.text:find("^smm book error: no order"), res2.error.text)
  end)

  -- Another process holds the book's write lock for HOLD seconds: the order waits for it
  -- (busy_timeout), while a plain request to the same worker is answered at once.
  local function measure(path, ref)
    local lock = io.popen(books.child(ROOT .. "/spec/helpers/book_lock.lua", { book_path, tostring(HOLD) }), "r")
    assert.equal("locked", lock:read("*l"))
    local t0 = socket.gettime()
    local answer = open_request(ng.port, "POST", path, with_ref(ref))
    socket.sleep(0.2) -- the order is inside the book, waiting for the lock
    local t1 = socket.gettime()
    local status, body = request(ng.port, "GET", "/plain")
    local plain_took = socket.gettime() - t1
    assert.equal(200, status)
    local ostatus, res, raw = answer()
    local order_took = socket.gettime() - t0
    assert.equal("released", lock:read("*l"))
    lock:close()
    assert.equal(200, ostatus, raw)
    assert.is_number(res.order, raw)
    assert.is_nil(body)
    return plain_took, order_took
  end

  it("a request answered by the same worker during a 2-second book write is not delayed by it", function()
    local plain_took, order_took = measure("/order", "shop-slow")
    assert.is_true(order_took >= HOLD - 0.3, "the order did not wait for the lock: " .. order_took)
    assert.is_true(plain_took < 0.5, "the plain request waited " .. plain_took .. " s")
  end)

  it("the measure tells: a book opened without thread_pool blocks the worker for the write", function()
    local plain_took, order_took = measure("/blocking_order", "shop-blocking")
    assert.is_true(order_took >= HOLD - 0.3, "the order did not wait for the lock: " .. order_took)
    assert.is_true(plain_took >= HOLD - 0.5, "the plain request was not delayed: " .. plain_took)
  end)

  it("the background sync (one worker, a timer) follows the order to its end and signs its webhooks", function()
    local _, placed = request(ng.port, "POST", "/order", with_ref("shop-bg"))
    assert.is_number(placed.order)
    sb:advance(20) -- the panel completes it
    -- an hour passes for the book: the order is due (its first check is a minute after placing)
    local direct = assert(require("smm").book.open(book_url))
    assert(books.db(direct):changes("UPDATE orders SET next_check = 0 WHERE ref = 'shop-bg'"))
    direct:close()
    local row
    for _ = 1, 100 do
      row = select(2, request(ng.port, "GET", "/book?ref=shop-bg"))
      if row and row.state == "final" then break end
      socket.sleep(0.1)
    end
    assert.equal("final", row.state, cjson.encode(row))
    assert.equal("Completed", row.status)
    assert.is_true(env.count(sb, "status") >= 1)

    local final
    for _ = 1, 50 do
      for _, r in ipairs(receiver:requests()) do
        local event = cjson.decode(r.body)
        if event and event.type == "order.final" and event.ref == "shop-bg" then final = r end
      end
      if final then break end
      socket.sleep(0.1)
    end
    assert.is_table(final, "no order.final webhook for shop-bg")
    assert.equal(hooks.signature(SECRET, final.body), final.headers["x-smm-signature"])
    assert.equal("order.final", final.headers["x-smm-event"])
  end)
end)
