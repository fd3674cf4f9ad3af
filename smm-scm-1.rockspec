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
    that never double-orders, batching past 100 ids, polling, quotes, a sandbox panel and a
    command line tool.
  ]],
  license = "MIT",
  homepage = "https://github.com/lua-smm/lua-smm",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1",
  -- only the sandbox panel (smm-sandbox, `smm sandbox`, smm.sandbox) uses it; the client never does
  "luasocket >= 3.0",
}
external_dependencies = {
  -- Debian's curl headers are multiarch (/usr/include/x86_64-linux-gnu): naming the header
  -- here makes luarocks 3.8 look only in /usr/include and fail, so only the library is named.
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["smm.core"] = {
      sources = { "src/buffer.c", "src/client.c", "src/core.c", "src/decode.c", "src/form.c", "src/interrupt.c",
                  "src/multi.c", "src/options.c", "src/reader.c", "src/result.c", "src/schema.c" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["smm"] = "lua/smm/init.lua",
    ["smm.actions"] = "lua/smm/actions.lua",
    ["smm.answer"] = "lua/smm/answer.lua",
    ["smm.batch"] = "lua/smm/batch.lua",
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
    ["smm.client"] = "lua/smm/client.lua",
    ["smm.errors"] = "lua/smm/errors.lua",
    ["smm.json"] = "lua/smm/json.lua",
    ["smm.kinds"] = "lua/smm/kinds.lua",
    ["smm.money"] = "lua/smm/money.lua",
    ["smm.normalize"] = "lua/smm/normalize.lua",
    ["smm.options"] = "lua/smm/options.lua",
    ["smm.poll"] = "lua/smm/poll.lua",
    ["smm.price"] = "lua/smm/price.lua",
    ["smm.ratelimit"] = "lua/smm/ratelimit.lua",
    ["smm.retry"] = "lua/smm/retry.lua",
    ["smm.sandbox"] = "lua/smm/sandbox/init.lua",
    ["smm.sandbox.decimal"] = "lua/smm/sandbox/decimal.lua",
    ["smm.sandbox.faults"] = "lua/smm/sandbox/faults.lua",
    ["smm.sandbox.http"] = "lua/smm/sandbox/http.lua",
    ["smm.sandbox.panel"] = "lua/smm/sandbox/panel.lua",
    ["smm.sandbox.services"] = "lua/smm/sandbox/services.lua",
    ["smm.services"] = "lua/smm/services.lua",
    ["smm.transport"] = "lua/smm/transport/init.lua",
    ["smm.transport.curl"] = "lua/smm/transport/curl.lua",
    ["smm.transport.form"] = "lua/smm/transport/form.lua",
    ["smm.transport.gunzip"] = "lua/smm/transport/gunzip.lua",
    ["smm.transport.ngx"] = "lua/smm/transport/ngx.lua",
    ["smm.validate"] = "lua/smm/validate.lua",
  },
  install = {
    bin = { "bin/smm", "bin/smm-sandbox" },
  },
}
test = {
  type = "busted",
}
