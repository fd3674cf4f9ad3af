-- smm.book.hooks: the book's events (made by real orders through a book client against the
-- sandbox) delivered at least once to a Lua function, a command and a signed webhook (a real
-- receiver in its own process), retried with backoff on the book's clock, leased so that two
-- deliverers on one book (SQLite, and PostgreSQL when there is one) do not send an event twice
-- at once, and never a secret in what is stored.
local smm = require "smm"
local cjson = require "cjson"
local sandbox = require "helpers.sandbox"
local webhook = require "helpers.webhook"
local cli = require "helpers.cli"
local postgres = require "helpers.postgres"
local hooks = require "smm.book.hooks"
local socket = require "socket"

local KEY = "hooks-spec-key-0123"
local SECRET = "whsec-Zq9!x7 pa$$"

local function shell(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

-- the signature as openssl computes it, from the body written to a file: not this library's code
local function openssl_signature(secret, body, dir)
  local path = dir .. "/body"
  cli.write_file(path, body)
  local out = shell("openssl dgst -sha256 -hmac " .. cli.quote(secret) .. " < " .. cli.quote(path))
  return "sha256=" .. assert(out:match("= (%x+)$"), out)
end

local function events_of(book)
  local db = smm.book.connections[book].db
  return db:rows("SELECT " .. db:columns("id type delivered_at attempts next_attempt") ..
    ", last_error, lease_owner FROM events ORDER BY id")
end

local function order(n)
  return { service = 1, link = "https://example.com/p/" .. n, quantity = 100 }
end

describe("smm.book.hooks #book", function()
  local sb, dir, book, client, now

  setup(function()
    sb = sandbox.start{ key = KEY }
    dir = cli.tmpdir()
  end)

  teardown(function()
    if sb then sb:stop() end
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  local n = 0
  before_each(function()
    n = n + 1
    sb:reset()
    now = 1700000000
    book = assert(smm.book.open("sqlite:" .. dir .. "/book" .. n .. ".db", { clock = function() return now end }))
    client = smm.new{ url = sb.url, key = KEY, book = book }
  end)

  after_each(function() book:close() end)

  local function place(count, prefix)
    for i = 1, count do
      assert(client:add(order(i), { ref = (prefix or "shop-") .. i }))
    end
  end

  it("signs a body as openssl does", function()
    local body = '{"id":1,"type":"order.placed"}'
    assert.equal(openssl_signature(SECRET, body, dir), hooks.signature(SECRET, body))
    assert.matches("^sha256=%x+$", hooks.signature("k", ""))
    assert.has_error(function() hooks.signature(nil, "x") end)
  end)

  it("delivers order.placed and order.in_doubt to a function, in id order, each with its id, once", function()
    place(3)
    sb:fault("reset_after_read", { action = "add" })
    local res, err = client:add(order(9), { ref = "doubtful" })
    assert.is_nil(res)
    assert.is_true(err.ambiguous)
    local seen = {}
    local summary = assert(book:deliver({ { fn = function(event) seen[#seen + 1] = event return true end } }))
    assert.same({ delivered = 4, failed = 0, pending = 0 }, summary)
    assert.equal(4, #seen)
    for i, event in ipairs(seen) do
      assert.equal(i, event.id)
      assert.is_true(math.type == nil or math.type(event.id) == "integer")
    end
    assert.same({ "order.placed", "order.placed", "order.placed", "order.in_doubt" },
      { seen[1].type, seen[2].type, seen[3].type, seen[4].type })
    assert.equal("shop-2", seen[2].ref)
    assert.equal(book:get("shop-2").order_id, seen[2].order)
    assert.equal("doubtful", seen[4].ref)
    assert.equal(sb.url, seen[1].panel)
    for _, row in ipairs(events_of(book)) do assert.equal(now, row.delivered_at) end
    -- delivered means not offered again
    assert.same({ delivered = 0, failed = 0, pending = 0 },
      book:deliver({ { fn = function() error("offered again") end } }))
  end)

  it("retries what a function failed or raised on, after a growing pause on the book's clock", function()
    place(2)
    local calls, mood = {}, "raise"
    local hook = { fn = function(event)
      calls[#calls + 1] = event.id
      if event.id == 2 and mood == "raise" then error("boom in hook") end
      if event.id == 2 and mood == "refuse" then return nil, "not today" end
      return true
    end }
    assert.same({ delivered = 1, failed = 1, pending = 1 }, book:deliver({ hook }))
    local rows = events_of(book)
    assert.equal(1, rows[2].attempts)
    assert.equal(now + 5, rows[2].next_attempt)
    assert.matches("hook 1 %(function%): raised: .*boom in hook", rows[2].last_error)
    assert.is_nil(rows[2].lease_owner)
    -- not due yet: nothing offered
    assert.same({ delivered = 0, failed = 0, pending = 1 }, book:deliver({ hook }))
    now = now + 5
    mood = "refuse"
    assert.same({ delivered = 0, failed = 1, pending = 1 }, book:deliver({ hook }))
    rows = events_of(book)
    assert.equal(2, rows[2].attempts)
    assert.equal(now + 10, rows[2].next_attempt)
    assert.matches("not today", rows[2].last_error)
    now = now + 10
    mood = "fine"
    assert.same({ delivered = 1, failed = 0, pending = 0 }, book:deliver({ hook }))
    assert.same({ 1, 2, 2, 2 }, calls)
    assert.equal(3600, hooks.backoff(20))
  end)

  it("runs a command with the event's JSON on stdin, and retries it when it fails", function()
    place(2)
    local out, flag = dir .. "/exec-out-" .. n, dir .. "/exec-ok-" .. n
    local hook = { exec = "test -f " .. cli.quote(flag) .. " || { echo 'not ready' >&2; exit 3; }; cat >> " ..
      cli.quote(out) }
    assert.same({ delivered = 0, failed = 2, pending = 2 }, book:deliver({ hook }))
    local rows = events_of(book)
    assert.matches("hook 1 %(exec test%): exited with status 3: not ready", rows[1].last_error)
    assert.is_nil(cli.read_file(out))
    cli.write_file(flag, "")
    now = now + 5
    assert.same({ delivered = 2, failed = 0, pending = 0 }, book:deliver({ hook }))
    local lines = {}
    for line in cli.read_file(out):gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(2, #lines)
    assert.matches('^{"id":1,', lines[1])
    local second = cjson.decode(lines[2])
    assert.equal(2, second.id)
    assert.equal("order.placed", second.type)
    assert.equal("shop-2", second.ref)
  end)

  it("kills a command that outlives the timeout, its children too", function()
    place(1)
    local marker = dir .. "/late-" .. n
    local t0 = socket.gettime()
    local summary = assert(book:deliver({ { exec = "sleep 30; touch " .. cli.quote(marker) } }, { timeout = 300 }))
    assert.same({ delivered = 0, failed = 1, pending = 1 }, summary)
    assert.is_true(socket.gettime() - t0 < 10)
    assert.matches("timed out after 300 ms", events_of(book)[1].last_error)
    assert.equal("", shell("env -u LD_PRELOAD pgrep -f 'slee[p] 30; touch' || true"))
  end)

  describe("a webhook", function()
    local receiver
    after_each(function() if receiver then receiver:stop() receiver = nil end end)

    it("is POSTed each event, signed; a failing receiver is retried with backoff until it takes it", function()
      receiver = webhook.start{ fail = 2 }
      place(1)
      local hook = { webhook = receiver.url, secret = SECRET }
      assert.same({ delivered = 0, failed = 1, pending = 1 }, book:deliver({ hook }))
      local rows = events_of(book)
      assert.matches("answered HTTP 500", rows[1].last_error)
      assert.equal(now + 5, rows[1].next_attempt)
      now = now + 4
      assert.same({ delivered = 0, failed = 0, pending = 1 }, book:deliver({ hook }))
      now = now + 1
      assert.same({ delivered = 0, failed = 1, pending = 1 }, book:deliver({ hook }))
      assert.equal(now + 10, events_of(book)[1].next_attempt)
      now = now + 10
      place(2, "later-")
      assert.same({ delivered = 3, failed = 0, pending = 0 }, book:deliver({ hook }))
      rows = events_of(book)
      assert.equal(now, rows[1].delivered_at)
      assert.equal(2, rows[1].attempts)
      assert.is_nil(rows[1].last_error)

      local got = receiver:requests()
      assert.equal(5, #got)
      for i, req in ipairs(got) do
        assert.equal("POST", req.method)
        assert.equal("/hook", req.path)
        assert.equal("application/json", req.headers["content-type"])
        assert.equal(openssl_signature(SECRET, req.body, dir), req.headers["x-smm-signature"], "request " .. i)
        local event = cjson.decode(req.body)
        assert.equal(string.format("%d", event.id), req.headers["x-smm-event-id"])
        assert.equal(event.type, req.headers["x-smm-event"])
        assert.matches('^{"id":' .. string.format("%d", event.id) .. ',', req.body)
      end
      -- the same bytes on every attempt
      assert.equal(got[1].body, got[3].body)
      assert.same({ 1, 1, 1, 2, 3 }, { cjson.decode(got[1].body).id, cjson.decode(got[2].body).id,
        cjson.decode(got[3].body).id, cjson.decode(got[4].body).id, cjson.decode(got[5].body).id })
      assert.equal("later-2", cjson.decode(got[5].body).ref)
    end)

    it("takes a 303 as a failure and does not follow it", function()
      receiver = webhook.start{ status = 303 }
      place(1)
      assert.same({ delivered = 0, failed = 1, pending = 1 },
        book:deliver({ { webhook = receiver.url, secret = SECRET } }))
      assert.matches("answered HTTP 303 %(redirects are not followed%)", events_of(book)[1].last_error)
      local got = receiver:requests()
      assert.equal(1, #got)
      assert.equal("/hook", got[1].path)
    end)

    it("keeps the secret and the URL's credentials out of last_error, even when the receiver echoes them", function()
      receiver = webhook.start{ fail = 1, echo = true }
      place(1)
      local url = receiver.url:gsub("^http://", "http://hookuser:Pa55word-9@") .. "?token=tok-abcdef123456"
      local summary = assert(book:deliver({ { webhook = url, secret = SECRET, header = "X-Shop-Sig" } }))
      assert.same({ delivered = 0, failed = 1, pending = 1 }, summary)
      local got = receiver:requests()
      assert.equal(openssl_signature(SECRET, got[1].body, dir), got[1].headers["x-shop-sig"])
      assert.is_truthy(got[1].headers.authorization) -- the receiver did get (and echo) them
      local stored = events_of(book)[1].last_error
      assert.matches("answered HTTP 500", stored)
      assert.matches("webhook http://127.0.0.1:" .. receiver.port .. "/hook", stored, 1, true)
      for _, secret in ipairs({ SECRET, "Pa55word-9", "tok-abcdef123456", got[1].headers.authorization:match("Basic (.*)") }) do
        assert.is_nil(stored:find(secret, 1, true), secret)
      end
      local file = cli.read_file(dir .. "/book" .. n .. ".db") .. (cli.read_file(dir .. "/book" .. n .. ".db-wal") or "")
      assert.is_nil(file:find(SECRET, 1, true))
      assert.is_nil(file:find("Pa55word-9", 1, true))
    end)

    it("gives up on a receiver that never answers at the timeout, and on a refused connection", function()
      receiver = webhook.start{ hang = true }
      place(3)
      local t0 = socket.gettime()
      local summary = assert(book:deliver({ { webhook = receiver.url, secret = SECRET, timeout = 300 } }))
      assert.same({ delivered = 0, failed = 3, pending = 3 }, summary)
      assert.is_true(socket.gettime() - t0 < 10)
      local rows = events_of(book)
      assert.matches("timed out after 300 ms", rows[1].last_error)
      -- one wait, not one per event: the rest of the round is not offered to it
      assert.equal(1, #receiver:requests())
      assert.matches("not tried", rows[2].last_error)
      now = now + 5
      local closed = sandbox.closed_port()
      summary = assert(book:deliver({ { webhook = "http://127.0.0.1:" .. closed .. "/x", secret = SECRET } }))
      assert.same({ delivered = 0, failed = 3, pending = 3 }, summary)
      assert.matches("could not be reached: .*refused", events_of(book)[1].last_error)
    end)
  end)

  it("refuses bad hooks and options before claiming anything", function()
    place(1)
    local fn = function() return true end
    local cases = {
      { {}, nil, "hooks is empty" },
      { { { fn = fn, exec = "true" } }, nil, "one kind per hook" },
      { { { fun = fn } }, nil, "needs one of" },
      { { { webhook = "http://127.0.0.1/x" } }, nil, "needs a 'secret'" },
      { { { webhook = "ftp://h/x", secret = "s" } }, nil, "http:// or https://" },
      { { { webhook = "http://h/x", secret = "s", retries = 2 } }, nil, "unknown field 'retries'" },
      { { { fn = fn } }, { limt = 5 }, "unknown option 'limt'" },
      { { { fn = fn } }, { timeout = -1 }, "option 'timeout'" },
      { { { fn = fn } }, { limit = 1.5 }, "option 'limit'" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(book.deliver, book, case[1], case[2])
      assert.is_false(ok)
      assert.matches(case[3], tostring(err), 1, true)
    end
    assert.equal(1, book:counts().events_pending)
    assert.is_nil(events_of(book)[1].lease_owner)
  end)
end)

-- Two deliverers on one book: one mid-delivery holds its claimed events; the other, running at
-- that moment (its own connection), skips them; once the first's lease has run out (it was
-- killed), the other takes them. And `stop` ends a call with the rest left as they were.
local function lease_cases(engine, open_url, reset, finish)
  describe("two deliverers on one " .. engine .. " book #book", function()
    local sb, now, a, b
    setup(function() sb = sandbox.start{ key = KEY } end)
    teardown(function()
      sb:stop()
      finish()
    end)
    before_each(function()
      reset()
      now = 1700000000
      local clock = function() return now end
      a = assert(smm.book.open(open_url(), { clock = clock }))
      b = assert(smm.book.open(open_url(), { clock = clock }))
      local client = smm.new{ url = sb.url, key = KEY, book = a }
      for i = 1, 40 do assert(client:add(order(i), { ref = engine .. "-" .. i })) end
    end)
    after_each(function() a:close() b:close() end)

    it("do not deliver the same event at the same time; an expired lease is taken over", function()
      local by_a, by_b, inner = {}, {}, nil
      local hook_b = { fn = function(event) by_b[#by_b + 1] = event.id return true end }
      local hook_a = { fn = function(event)
        by_a[#by_a + 1] = event.id
        if event.id == 1 then inner = assert(b:deliver({ hook_b }, { limit = 10 })) end
        return true
      end }
      assert.same({ delivered = 30, failed = 0, pending = 0 }, a:deliver({ hook_a }))
      -- b ran while a held 1..25: it took the next ten, a never saw those
      assert.same({ delivered = 10, failed = 0, pending = 30 }, inner)
      assert.same({ 26, 27, 28, 29, 30, 31, 32, 33, 34, 35 }, by_b)
      local seen = {}
      for _, id in ipairs(by_a) do seen[id] = true end
      for _, id in ipairs(by_b) do assert.is_nil(seen[id]) seen[id] = true end
      for id = 1, 40 do assert.is_true(seen[id], "event " .. id) end
    end)

    it("takes over the events of a deliverer whose lease ran out (killed mid-batch)", function()
      local by_b = {}
      local hook_b = { fn = function(event) by_b[#by_b + 1] = event.id return true end }
      local hook_a = { fn = function(event)
        if event.id == 1 then
          now = now + 3600 -- a's lease is long over: as if a had been killed here
          assert.same({ delivered = 40, failed = 0, pending = 0 }, b:deliver({ hook_b }))
        end
        return true
      end }
      a:deliver({ hook_a }, { limit = 1 })
      assert.equal(40, #by_b)
      assert.equal(1, by_b[1])
    end)

    it("ends promptly when stop says so, leaving the rest pending and unleased", function()
      local count = 0
      local summary = assert(a:deliver({ { fn = function() count = count + 1 return true end } },
        { stop = function() return count >= 3 end }))
      assert.same({ delivered = 3, failed = 0, pending = 37 }, summary)
      local db = smm.book.connections[a].db
      assert.equal(0, db:row("SELECT " .. db:int("n") ..
        " FROM (SELECT count(*) AS n FROM events WHERE lease_owner IS NOT NULL) AS c").n)
      assert.same({ delivered = 37, failed = 0, pending = 0 },
        b:deliver({ { fn = function() return true end } }))
    end)
  end)
end

local sqlite_dir = cli.tmpdir()
local sqlite_n = 0
lease_cases("SQLite", function() return "sqlite:" .. sqlite_dir .. "/lease" .. sqlite_n .. ".db" end,
  function() sqlite_n = sqlite_n + 1 end, function() os.execute("rm -rf " .. cli.quote(sqlite_dir)) end)

local pg_ok, pg_why = postgres.available()
if pg_ok then
  local pg
  lease_cases("PostgreSQL", function()
    if not pg then pg = postgres.start() end
    return pg.url
  end, function() if pg then pg:reset() end end, function() if pg then pg:stop() end end)
else
  describe("two deliverers on one PostgreSQL book #book", function()
    pending("no PostgreSQL here: " .. tostring(pg_why))
  end)
end
