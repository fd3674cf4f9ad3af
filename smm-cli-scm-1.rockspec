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
    Services, orders of every kind, status, refill, cancel and balance from the shell; CSV
    batches with a journal that never orders twice; profiles; --json output. Runs on Lua
    5.1-5.4 and LuaJIT. `smm sandbox` runs the sandbox panel when the smm-sandbox rock is
    installed.
  ]],
  license = "MIT",
  homepage = "https://github.com/lua-smm/lua-smm",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "smm = scm-1",
  -- the journal reads its own lines back with cjson (luasocket, when present, only sharpens
  -- the journal's timings: os.time serves without it)
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
      ["smm.cli.commands"] = "lua/smm/cli/commands.lua",
      ["smm.cli.config"] = "lua/smm/cli/config.lua",
      ["smm.cli.csv"] = "lua/smm/cli/csv.lua",
      ["smm.cli.follow"] = "lua/smm/cli/follow.lua",
      ["smm.cli.journal"] = "lua/smm/cli/journal.lua",
      ["smm.cli.order"] = "lua/smm/cli/order.lua",
      ["smm.cli.output"] = "lua/smm/cli/output.lua",
    },
    bin = { "bin/smm" },
  },
}
