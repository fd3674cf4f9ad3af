rockspec_format = "3.0"
package = "smm"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-smm/lua-smm.git",
  branch = "main",
}
description = {
  summary = "Client for the SMM panel API v2: libcurl C core, pure-Lua client, OpenResty transport",
  detailed = [[
    lua-smm speaks the SMM panel API v2 (services, add for every order kind, status, refill,
    refill_status, cancel, balance) with exact money, integer ids, classified errors, retry
    that never double-orders, batching past 100 ids, polling and quotes. Runs on Lua 5.1-5.4
    and LuaJIT. The command line tool is the smm-cli rock; the sandbox panel, smm-sandbox.

    Optional, loaded only by the parts that use them (not dependencies of this rock): the
    order book (smm.book) needs LuaDBI with its SQLite3 or PostgreSQL driver (luarocks
    install luadbi-sqlite3 or luadbi-postgresql; Debian: lua-dbi-sqlite3, lua-dbi-postgresql);
    the book's webhooks need LuaSocket, luaossl for their signatures and LuaSec for https.
  ]],
  license = "MIT",
  homepage = "https://github.com/lua-smm/lua-smm",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1",
}
external_dependencies = {
  -- Debian's curl headers are multiarch (/usr/include/x86_64-linux-gnu): naming the header
  -- here makes luarocks 3.8 look only in /usr/include and fail, so only the library is named.
  CURL = { library = "curl" },
}
build = {
  -- Not "builtin": that type also copies the whole lua/ folder into every rock built from this
  -- checkout, so this rock would install the CLI and the sandbox too (luarocks 3.8 does).
  -- The C core is compiled here with luarocks' own compiler settings for the target Lua.
  type = "command",
  build_command = "mkdir -p build/rock && $(CC) $(CFLAGS) -std=c99 -fPIC -fvisibility=hidden $(LIBFLAG) "
    .. "-I$(LUA_INCDIR) -I$(CURL_INCDIR) -o build/rock/core.so src/*.c -L$(CURL_LIBDIR) -lcurl",
  install = {
    lib = { ["smm.core"] = "build/rock/core.so" },
    lua = {
      ["smm"] = "lua/smm/init.lua",
      ["smm.actions"] = "lua/smm/actions.lua",
      ["smm.answer"] = "lua/smm/answer.lua",
      ["smm.batch"] = "lua/smm/batch.lua",
      ["smm.book"] = "lua/smm/book/init.lua",
      ["smm.book.background"] = "lua/smm/book/background.lua",
      ["smm.book.db"] = "lua/smm/book/db.lua",
      ["smm.book.dialects"] = "lua/smm/book/dialects.lua",
      ["smm.book.events"] = "lua/smm/book/events.lua",
      ["smm.book.hooks"] = "lua/smm/book/hooks.lua",
      ["smm.book.schema"] = "lua/smm/book/schema.lua",
      ["smm.book.sync"] = "lua/smm/book/sync.lua",
      ["smm.book.panels"] = "lua/smm/book/panels.lua",
      ["smm.book.target"] = "lua/smm/book/target.lua",
      ["smm.book.thread"] = "lua/smm/book/thread.lua",
      ["smm.book.threaded"] = "lua/smm/book/threaded.lua",
      ["smm.book.webhook_ngx"] = "lua/smm/book/webhook_ngx.lua",
      ["smm.client"] = "lua/smm/client.lua",
      ["smm.dialect"] = "lua/smm/dialect.lua",
      ["smm.errors"] = "lua/smm/errors.lua",
      ["smm.json"] = "lua/smm/json.lua",
      ["smm.kinds"] = "lua/smm/kinds.lua",
      ["smm.money"] = "lua/smm/money.lua",
      ["smm.normalize"] = "lua/smm/normalize.lua",
      ["smm.options"] = "lua/smm/options.lua",
      ["smm.poll"] = "lua/smm/poll.lua",
      ["smm.price"] = "lua/smm/price.lua",
      ["smm.random"] = "lua/smm/random.lua",
      ["smm.router"] = "lua/smm/router/init.lua",
      ["smm.router.catalog"] = "lua/smm/router/catalog.lua",
      ["smm.router.health"] = "lua/smm/router/health.lua",
      ["smm.router.placement"] = "lua/smm/router/placement.lua",
      ["smm.router.match"] = "lua/smm/router/match.lua",
      ["smm.router.snapshot"] = "lua/smm/router/snapshot.lua",
      ["smm.router.watch"] = "lua/smm/router/watch.lua",
      ["smm.ratelimit"] = "lua/smm/ratelimit.lua",
      ["smm.retry"] = "lua/smm/retry.lua",
      ["smm.services"] = "lua/smm/services.lua",
      ["smm.shared"] = "lua/smm/shared.lua",
      ["smm.transport"] = "lua/smm/transport/init.lua",
      ["smm.transport.curl"] = "lua/smm/transport/curl.lua",
      ["smm.transport.form"] = "lua/smm/transport/form.lua",
      ["smm.transport.gunzip"] = "lua/smm/transport/gunzip.lua",
      ["smm.transport.ngx"] = "lua/smm/transport/ngx.lua",
      ["smm.validate"] = "lua/smm/validate.lua",
    },
  },
}
test = {
  type = "busted",
}
