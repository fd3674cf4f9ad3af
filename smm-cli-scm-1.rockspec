rockspec_format = "3.0"
package = "smm-cli"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-smm/lua-smm.git",
  branch = "main",
}
description = {
  summary = "smm: the command line for SMM panel API v2 panels, built on the smm rock",
  detailed = [[
    Services, orders of every kind, status, refill, cancel and balance from the shell; orders
    and CSV batches through the order book, which never orders twice; `smm sync` following
    the book's orders and delivering its events; profiles; --json output. Runs on Lua
    5.1-5.4 and LuaJIT. `smm sandbox` runs the sandbox panel when the smm-sandbox rock is
    installed. The order book (add, batch, sync, orders, doubt, report) needs LuaDBI with its
    SQLite3 or PostgreSQL driver (luadbi-sqlite3, luadbi-postgresql), an optional dependency
    of the smm rock: without it those commands say so and exit 5, sending nothing.
  ]],
  license = "MIT",
  homepage = "https://github.com/lua-smm/lua-smm",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "smm = scm-1",
  -- an old batch journal (JSON lines) is read with cjson when it is imported into the book
  "lua-cjson >= 2.1",
}
build = {
  -- Not "builtin", which would copy the whole lua/ folder (the library and the other tool too).
  type = "none",
  install = {
    lua = {
      ["smm.cli"] = "lua/smm/cli/init.lua",
      ["smm.cli.args"] = "lua/smm/cli/args.lua",
      ["smm.cli.batch"] = "lua/smm/cli/batch.lua",
      ["smm.cli.book"] = "lua/smm/cli/book.lua",
      ["smm.cli.commands"] = "lua/smm/cli/commands.lua",
      ["smm.cli.config"] = "lua/smm/cli/config.lua",
      ["smm.cli.csv"] = "lua/smm/cli/csv.lua",
      ["smm.cli.follow"] = "lua/smm/cli/follow.lua",
      ["smm.cli.ledger"] = "lua/smm/cli/ledger.lua",
      ["smm.cli.legacy_journal"] = "lua/smm/cli/legacy_journal.lua",
      ["smm.cli.order"] = "lua/smm/cli/order.lua",
      ["smm.cli.output"] = "lua/smm/cli/output.lua",
      ["smm.cli.panels"] = "lua/smm/cli/panels.lua",
      ["smm.cli.sync"] = "lua/smm/cli/sync.lua",
    },
    bin = { "bin/smm" },
  },
}
