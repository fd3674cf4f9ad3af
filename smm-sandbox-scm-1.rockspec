rockspec_format = "3.0"
package = "smm-sandbox"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-smm/lua-smm.git",
  branch = "main",
}
description = {
  summary = "smm-sandbox: a local SMM panel (API v2) with fault injection, to test clients against",
  detailed = [[
    A panel on a loopback port that speaks the SMM panel API v2 as real panels do (their
    number and status styles, their error texts), with an admin API to inject faults, advance
    orders and make partial orders. Lua 5.3+ (its exact money is integer arithmetic).
  ]],
  license = "MIT",
  homepage = "https://github.com/lua-smm/lua-smm",
}
dependencies = {
  -- the panel's exact money uses 5.3's integers and // operator
  "lua >= 5.3, < 5.5",
  "luasocket >= 3.0",
  -- only for smm.json, the deterministic encoder its answers are written with; the panel
  -- requires nothing of the client (it stays an independent check of it)
  "smm = scm-1",
}
build = {
  -- Not "builtin", which would copy the whole lua/ folder (the library and the other tool too).
  type = "none",
  install = {
    lua = {
      ["smm.sandbox"] = "lua/smm/sandbox/init.lua",
      ["smm.sandbox.decimal"] = "lua/smm/sandbox/decimal.lua",
      ["smm.sandbox.dialect"] = "lua/smm/sandbox/dialect.lua",
      ["smm.sandbox.faults"] = "lua/smm/sandbox/faults.lua",
      ["smm.sandbox.http"] = "lua/smm/sandbox/http.lua",
      ["smm.sandbox.jsonread"] = "lua/smm/sandbox/jsonread.lua",
      ["smm.sandbox.panel"] = "lua/smm/sandbox/panel.lua",
      ["smm.sandbox.services"] = "lua/smm/sandbox/services.lua",
    },
    bin = { "bin/smm-sandbox" },
  },
}
