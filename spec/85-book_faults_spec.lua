-- The order book against bad input and a failing store: URLs that do not parse, databases that
-- cannot be opened, a schema from a newer lua-smm, a read-only book, a full disk, PostgreSQL
-- down, misspelled options and bad refs. Each is a clear error naming the book (never its
-- password), and no order leaves without its intent on disk: the sandbox counts the adds.
--
-- The read-only and full-disk cases mount a tmpfs (the specs run as root, whom file modes do
-- not stop), unmounted after.
local env = require "helpers.env"
local books = require "helpers.book"
local cli = require "helpers.cli"
local smm = require "smm"

local PASSWORD = "pw-SENTINEL-93fd"

local function order(n) return { service = 1, link = "https://x.test/" .. n, quantity = 100 } end

local function succeeds(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- url, what the message must say (a Lua pattern)
local BAD_URLS = {
  { 42, "must be a string" },
  { "", "must be a string" },
  { "sqlite:", "names no file" },
  { "sqlite://host/orders.db", "sqlite:/absolute/path" },
  { "sqlite:/tmp/x\n.db", "control characters" },
  { "orders.db", "must start with sqlite: or postgresql://" },
  { "mysql://u:" .. PASSWORD .. "@127.0.0.1/db", 'unknown book scheme "mysql"' },
  { "postgresql://u:" .. PASSWORD .. "@127.0.0.1:5432/", "names no database" },
  { "postgresql://u:p@ss" .. PASSWORD .. "@127.0.0.1/", "names no database" },
  { "postgresql://u:" .. PASSWORD .. "@127.0.0.1:99999/db", "port is out of range" },
  { "postgresql://u:" .. PASSWORD .. "@127.0.0.1:0/db", "port is out of range" },
  { "postgresql://u:" .. PASSWORD .. "@127.0.0.1:pq/db", "host part does not parse" },
  { "postgresql://u:" .. PASSWORD .. "@127.0.0.1/db?password=" .. PASSWORD, "takes no %?options" },
  { "postgresql://u@127.0.0.1/db?PASSWORD=" .. PASSWORD, "takes no %?options" },
  { "postgresql://u@127.0.0.1/db?sslpassword=" .. PASSWORD .. "&sslmode=require", "takes no %?options" },
  { "postgresql://u:" .. PASSWORD .. "\r\n@127.0.0.1/db", "control characters" },
}

describe("the order book refuses a book URL that does not parse #book", function()
  for _, case in ipairs(BAD_URLS) do
    it("refuses " .. string.format("%q", tostring(case[1])):gsub("\\\n", "\\n"), function()
      local book, err = smm.book.open(case[1])
      assert.is_nil(book)
      assert.equal("book", err.kind)
      assert.equal("book_url", err.code)
      assert.matches(case[2], err.message)
      assert.is_nil(tostring(err):find(PASSWORD, 1, true), "the password shown: " .. tostring(err))
    end)
  end
end)

describe("the order book refuses a SQLite book it cannot open #book", function()
  local dir
  setup(function() dir = books.tempdir() end)
  teardown(function() os.execute("rm -rf " .. cli.quote(dir)) end)

  it("in a folder that does not exist", function()
    local book, err = smm.book.open("sqlite:" .. dir .. "/missing/orders.db")
    assert.is_nil(book)
    assert.equal("book_unavailable", err.code)
    assert.matches(dir .. "/missing/orders.db", err.message, 1, true)
    assert.matches("folder", err.message)
  end)

  it("that is a folder", function()
    local book, err = smm.book.open("sqlite:" .. dir)
    assert.is_nil(book)
    assert.equal("book", err.kind)
    assert.matches(dir, err.message, 1, true)
  end)
end)

for _, engine in ipairs(books.ENGINES) do
  describe("the order book on " .. engine .. " against misuse and a failing store #book", function()
    local sb, store, book, client

    setup(function()
      sb = env.sandbox()
      sb:config{ balance = "1000000.00" }
      store = books.store(engine)
      book = store:open()
      client = env.client(sb, { book = book })
    end)

    teardown(function()
      if client then client:close() end
      if book then book:close() end
      if store then store:close() end
      if sb then sb:stop() end
    end)

    local function adds() return env.count(sb, "add") end

    it("raises on a misspelled option to open, orders and report", function()
      assert.has_error(function() smm.book.open(store.url, { clok = os.time }) end)
      assert.has_error(function() smm.book.open(store.url, { clock = 5 }) end)
      assert.has_error(function() book:orders{ stat = "placed" } end)
      assert.has_error(function() book:orders{ state = 1 } end)
      assert.has_error(function() book:orders{ limit = 0 } end)
      assert.has_error(function() book:orders{ limit = 2.5 } end)
      assert.has_error(function() book:report{ bye = "day" } end)
      assert.has_error(function() book:report{ by = "week" } end)
      assert.has_error(function() book:report{ since = "yesterday" } end)
      assert.has_error(function() book:report{ panel = 5 } end)
      assert.is_table(assert(book:orders{ limit = 1 }))
      assert.is_table(assert(book:report{ since = 0, by = "service", panel = sb.url }))
    end)

    it("raises on `ref` without a book, in add and in batch", function()
      local bare = env.client(sb)
      local before = adds()
      assert.has_error(function() bare:add(order("bare"), { ref = "bare-1" }) end)
      assert.has_error(function() bare:batch{ { "add", order("bare"), { ref = "bare-1" } } } end)
      bare:close()
      assert.equal(before, adds())
    end)

    for _, bad in ipairs({ { "", "empty" }, { string.rep("r", 300), "300 bytes" }, { "a\nb", "a newline" },
                           { "a\0b", "a NUL" }, { 42, "a number" } }) do
      it("refuses a bad ref (" .. bad[2] .. ") with field 'ref', before sending", function()
        local before = adds()
        local res, err = client:add(order("bad-ref"), { ref = bad[1] })
        assert.is_nil(res)
        assert.equal("invalid", err.kind)
        assert.equal("ref", err.field)
        local results = client:batch{ { "add", order("bad-ref"), { ref = bad[1] } } }
        assert.equal("ref", results[1].err.field)
        assert.equal(before, adds())
        assert.equal(0, #assert(book:orders{ ref = tostring(bad[1]) }))
      end)
    end

    it("refuses a book whose schema is newer than this lua-smm knows", function()
      local url = store.url
      books.db(book):run("UPDATE smm_schema SET version = 99")
      local newer, err = smm.book.open(url)
      books.db(book):run("UPDATE smm_schema SET version = ?", require("smm.book.schema").LATEST)
      assert.is_nil(newer)
      assert.equal("book_newer", err.code)
      assert.matches("version 99", err.message)
      assert.matches("upgrade lua%-smm", err.message)
      if store.secret then assert.is_nil(tostring(err):find(store.secret, 1, true)) end
    end)

    if engine == "postgresql" then
      it("opens a PostgreSQL book whose password holds @ : and /, unescaped or escaped", function()
        local pg = store.pg
        local weird = "p@ss:w/rd" .. PASSWORD
        local admin = pg:connect()
        local st = assert(admin:prepare("ALTER USER " .. pg.user .. " PASSWORD '" .. weird .. "'"))
        assert(st:execute())
        st:close()
        local base = "@" .. pg.host .. ":" .. pg.port .. "/" .. pg.database
        local raw = smm.book.open("postgresql://" .. pg.user .. ":" .. weird .. base)
        local escaped = smm.book.open("postgresql://" .. pg.user .. ":" ..
          weird:gsub("[@:/]", function(c) return string.format("%%%02X", c:byte()) end) .. base)
        local wrong, err = smm.book.open("postgresql://" .. pg.user .. ":" .. weird .. "x" .. base)
        st = assert(admin:prepare("ALTER USER " .. pg.user .. " PASSWORD '" .. pg.password .. "'"))
        assert(st:execute())
        st:close()
        admin:close()
        assert.is_truthy(raw, "the unescaped password did not connect")
        assert.is_truthy(escaped, "the escaped password did not connect")
        raw:close()
        escaped:close()
        assert.is_nil(wrong)
        assert.equal("book_unavailable", err.code)
        assert.matches("postgresql://smm:%*%*%*@127%.0%.0%.1:" .. pg.port .. "/smm", err.message)
        assert.is_nil(tostring(err):find(PASSWORD, 1, true), tostring(err))
        assert.is_nil(tostring(err):find("w/rd", 1, true), tostring(err))
      end)

      it("refuses a missing database and a closed port clearly, without the password", function()
        local pg = store.pg
        local _, err = smm.book.open(("postgresql://%s:%s@%s:%d/nosuchdb"):format(pg.user, pg.password,
          pg.host, pg.port))
        assert.equal("book_unavailable", err.code)
        assert.matches("nosuchdb", err.message)
        assert.is_nil(tostring(err):find(pg.password, 1, true))
        _, err = smm.book.open(("postgresql://%s:%s@%s:%d/smm"):format(pg.user, pg.password, pg.host,
          env.closed_port()))
        assert.equal("book_unavailable", err.code)
        assert.is_nil(tostring(err):find(pg.password, 1, true))
      end)

      -- last: it stops the server
      it("refuses to send while PostgreSQL is down, and says so without the password", function()
        assert(client:add(order("pg-up"), { ref = "pg-up" }))
        local url, password = store.url, store.secret
        local before = adds()
        store.pg:stop()
        local res, err = client:add(order("pg-down"), { ref = "pg-down" })
        assert.is_nil(res)
        assert.equal("book", err.kind)
        assert.matches("postgresql://smm:%*%*%*@", err.message)
        assert.is_nil(tostring(err):find(password, 1, true), tostring(err))
        res, err = client:add(order("pg-up"), { ref = "pg-up" })
        assert.is_nil(res)
        assert.equal("book", err.kind)
        assert.equal(before, adds())
        local again
        again, err = smm.book.open(url)
        assert.is_nil(again)
        assert.equal("book_unavailable", err.code)
        assert.is_nil(tostring(err):find(password, 1, true), tostring(err))
        book:close()
        book = nil
      end)
    end
  end)
end

describe("the order book on a SQLite file it cannot write #book", function()
  local sb, dir, mnt

  setup(function()
    sb = env.sandbox()
    sb:config{ balance = "1000000.00" }
    dir = books.tempdir()
    mnt = dir .. "/mnt"
    os.execute("mkdir -p " .. cli.quote(mnt))
  end)

  teardown(function()
    os.execute("umount " .. cli.quote(mnt) .. " 2>/dev/null")
    os.execute("rm -rf " .. cli.quote(dir))
    sb:stop()
  end)

  local function adds() return env.count(sb, "add") end

  local function mount(options)
    assert(succeeds("mount -t tmpfs -o " .. options .. " tmpfs " .. cli.quote(mnt)),
      "cannot mount a tmpfs here (these specs need root)")
  end
  local function umount() assert(succeeds("umount " .. cli.quote(mnt))) end

  it("refuses to send when the book is on a read-only filesystem", function()
    mount("size=4m")
    local url = "sqlite:" .. mnt .. "/orders.db"
    local book = assert(smm.book.open(url))
    local client = env.client(sb, { book = book })
    local placed = assert(client:add(order("ro-1"), { ref = "ro-1" }))
    book:close()
    assert(succeeds("mount -o remount,ro " .. cli.quote(mnt)))
    local before = adds()
    book = smm.book.open(url)
    if book then -- a read-only book still answers reads
      client = env.client(sb, { book = book })
      assert.equal(placed.order, book:get("ro-1").order_id)
      local res, err = client:add(order("ro-2"), { ref = "ro-2" })
      assert.is_nil(res)
      assert.equal("book_read_only", err.code)
      assert.matches(url, err.message, 1, true)
      client:close()
      book:close()
    end
    -- and a new book in a read-only folder cannot be made at all
    local new, err = smm.book.open("sqlite:" .. mnt .. "/new.db")
    assert.is_nil(new)
    assert.equal("book", err.kind)
    assert.equal(before, adds())
    umount()
  end)

  it("refuses to send when the disk is full (book_full), and places once there is room", function()
    -- room for the book as made (its WAL is checkpointed only at 1000 pages) and a few orders
    mount("size=2m")
    local url = "sqlite:" .. mnt .. "/orders.db"
    local book = assert(smm.book.open(url))
    local client = env.client(sb, { book = book })
    assert(client:add(order("full-1"), { ref = "full-1" }))
    os.execute("dd if=/dev/zero of=" .. cli.quote(mnt .. "/filler") .. " bs=4k 2>/dev/null")
    local before = adds()
    local refused = 0
    for i = 2, 6 do -- a few: the first may still fit in pages the file already has
      local res, err = client:add(order("full-" .. i), { ref = "full-" .. i })
      if not res then
        refused = refused + 1
        assert.equal("book_full", err.code)
        assert.matches(url, err.message, 1, true)
      end
    end
    assert.is_true(refused > 0)
    assert.equal(before + 5 - refused, adds())
    os.remove(mnt .. "/filler")
    for i = 2, 6 do
      local res = assert(client:add(order("full-" .. i), { ref = "full-" .. i }))
      assert.equal(res.order, book:get("full-" .. i).order_id)
    end
    assert.equal(before + 5, adds())
    client:close()
    book:close()
    umount()
  end)
end)
