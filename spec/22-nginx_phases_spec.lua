-- Issue 14, a client made at start-up: OpenResty users make their clients once, when a module
-- loads (init_by_lua) or in init_worker_by_lua, where cosockets do not work, and use them later in
-- requests and timers, where they do. Such a client must talk over cosockets there (never
-- libcurl: smm.core stays unloaded), and refuse clearly, naming the phase and sending nothing,
-- where no cosocket can work (init, init_worker, set, header_filter, body_filter, log).
-- Real nginx (examples/nginx/nginx.conf templated by helpers/nginx) in front of the sandbox.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local socket = require "socket"

local available, missing = nginx.available()

local HTTP = [[
    lua_shared_dict smm_phases 1m;
    init_by_lua_block {
        package.path = "ROOT/spec/helpers/?.lua;" .. package.path
        require "nginx_phase_app"
    }
    init_worker_by_lua_block {
        local app = require "nginx_phase_app"
        local dict = ngx.shared.smm_phases
        app.worker_client = app.new_client()
        dict:set("init_worker", app.try(app.worker_client))
        dict:set("init", app.at_init)
        -- timers started at start-up, by the worker
        ngx.timer.at(0, function()
            dict:set("startup_timer_module", app.try(app.module_client))
            dict:set("startup_timer_worker", app.try(app.worker_client))
        end)
    }
]]

local LOCATIONS = [[
        location = /phase/result {
            content_by_lua_block { ngx.say(ngx.shared.smm_phases:get(ngx.var.arg_name) or "null") }
        }
        location = /phase/content {
            content_by_lua_block {
                local app = require "nginx_phase_app"
                ngx.say(app.try(app[ngx.var.arg_client .. "_client"]))
            }
        }
        server_rewrite_by_lua_block {
            if ngx.var.uri == "/phase/server_rewrite" then
                ngx.ctx.outcome = require("nginx_phase_app").try()
            end
        }
        location = /phase/server_rewrite {
            content_by_lua_block { ngx.say(ngx.ctx.outcome) }
        }
        location = /phase/rewrite {
            rewrite_by_lua_block {
                local app = require "nginx_phase_app"
                ngx.ctx.outcome = app.try(app.module_client)
            }
            content_by_lua_block { ngx.say(ngx.ctx.outcome) }
        }
        location = /phase/access {
            access_by_lua_block {
                local app = require "nginx_phase_app"
                ngx.ctx.outcome = app.try(app.worker_client)
            }
            content_by_lua_block { ngx.say(ngx.ctx.outcome) }
        }
        # a timer started by this request; the answer waits for what it found
        location = /phase/timer {
            content_by_lua_block {
                local app = require "nginx_phase_app"
                local dict, name = ngx.shared.smm_phases, "timer_" .. ngx.var.arg_client
                local client = app[ngx.var.arg_client .. "_client"]
                dict:delete(name)
                assert(ngx.timer.at(0, function() dict:set(name, app.try(client)) end))
                for _ = 1, 500 do
                    local v = dict:get(name)
                    if v then ngx.say(v) return end
                    ngx.sleep(0.01)
                end
                ngx.say('{"raised": "the timer said nothing within 5 s"}')
            }
        }
        location = /phase/set {
            set_by_lua_block $smm_outcome {
                return require("nginx_phase_app").try()
            }
            content_by_lua_block { ngx.say(ngx.var.smm_outcome) }
        }
        location = /phase/header_filter {
            content_by_lua_block { ngx.say("{}") }
            header_filter_by_lua_block {
                ngx.shared.smm_phases:set("header_filter", require("nginx_phase_app").try())
            }
        }
        location = /phase/body_filter {
            content_by_lua_block { ngx.say("{}") }
            body_filter_by_lua_block {
                if ngx.arg[2] then
                    ngx.shared.smm_phases:set("body_filter", require("nginx_phase_app").try())
                end
            }
        }
        location = /phase/log {
            content_by_lua_block { ngx.say("{}") }
            log_by_lua_block {
                ngx.shared.smm_phases:set("log", require("nginx_phase_app").try())
            }
        }
        # the client's sleep (retries, client:wait, the rate limit): ngx.sleep cannot yield there
        location = /phase/log_sleep {
            content_by_lua_block { ngx.say("{}") }
            log_by_lua_block {
                ngx.shared.smm_phases:set("log_sleep", require("nginx_phase_app").try(nil, "sleep", 10))
            }
        }
        # an add through an order book, in the log phase: refused before the intent is recorded
        location = /phase/log_add {
            content_by_lua_block { ngx.say("{}") }
            log_by_lua_block {
                local app = require "nginx_phase_app"
                local book = assert(require("smm").book.open("sqlite:BOOK_PATH"))
                local client = app.new_client{ book = book }
                local outcome = cjson_decode(app.try(client, "add",
                    { service = 1, link = "https://example.com/p", quantity = 100 }, { ref = "phase-log" }))
                outcome.recorded = book:get("phase-log") ~= nil
                book:close()
                ngx.shared.smm_phases:set("log_add", require("cjson").encode(outcome))
            }
        }
]]

local ALLOWED = "rewrite_by_lua%*, access_by_lua%*, content_by_lua%*"

describe("a client made at start-up, inside nginx #nginx", function()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local sb, ng, dir

  setup(function()
    sb = env.sandbox()
    dir = io.popen("mktemp -d /tmp/smm-phases.XXXXXX"):read("*l")
    os.execute("chmod 755 '" .. dir .. "'")
    local locations = LOCATIONS:gsub("BOOK_PATH", dir .. "/book.db")
      :gsub("cjson_decode", "require(\"cjson\").decode")
    ng = nginx.start{
      env = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY },
      http = (HTTP:gsub("ROOT", nginx.root)),
      example_init = false, -- its own init_by_lua and init_worker_by_lua blocks instead
      locations = locations,
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if sb then sb:stop() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  local function get(path)
    local status, json, raw = ng:get(path)
    assert.equal(200, status, raw)
    assert.is_table(json, raw)
    return json
  end

  -- what a phase that cannot answer itself (or a timer) left in the shared dict
  local function result(name)
    for _ = 1, 250 do
      local _, json = ng:get("/phase/result?name=" .. name)
      if type(json) == "table" then return json end
      socket.sleep(0.02)
    end
    error("nothing recorded for " .. name .. "\n" .. ng:error_log())
  end

  local function served(outcome, phase, raw)
    assert.is_nil(outcome.raised, raw)
    assert.is_nil(outcome.err, raw)
    assert.equal("100.00", outcome.balance, raw)
    assert.equal(phase, outcome.phase)
    assert.equal("ngx", outcome.transport)
    assert.is_false(outcome.core, "smm.core was loaded")
    assert.is_false(outcome.curl, "smm.transport.curl was loaded")
  end

  local function refused(outcome, phase, raw)
    assert.equal(phase, outcome.phase, raw)
    assert.is_string(outcome.raised, raw)
    assert.matches("in nginx's " .. phase .. " phase %(" .. phase .. "_by_lua%*%)", outcome.raised)
    assert.matches(ALLOWED, outcome.raised)
    assert.is_false(outcome.core, "smm.core was loaded")
  end

  it("uses cosockets in the timers the worker starts at start-up, and sent nothing from init*", function()
    served(result("startup_timer_module"), "timer")
    served(result("startup_timer_worker"), "timer")
    refused(result("init"), "init")
    refused(result("init_worker"), "init_worker")
    assert.no.matches("ngx.timer.at", result("init").raised, 1, true) -- no timers in the master
    assert.matches("ngx.timer.at(0, fn)", result("init_worker").raised, 1, true)
    -- the two timers' balances, nothing from init or init_worker
    local stats = sb:stats()
    assert.equal(2, stats.requests)
    assert.equal(2, stats.actions.balance)
  end)

  it("serves requests with a client made at module level and one made in init_worker", function()
    for _, which in ipairs{ "module", "worker" } do
      served(get("/phase/content?client=" .. which), "content")
      served(get("/phase/timer?client=" .. which), "timer")
    end
    served(get("/phase/access"), "access")
    served(get("/phase/rewrite"), "rewrite")
    served(get("/phase/server_rewrite"), "server_rewrite")
  end)

  it("refuses in set, header_filter, body_filter and log, naming the phase, and sends nothing", function()
    local before = sb:stats()
    refused(get("/phase/set"), "set")
    for _, phase in ipairs{ "header_filter", "body_filter", "log", "log_sleep" } do
      get("/phase/" .. phase)
      refused(result(phase), phase == "log_sleep" and "log" or phase)
    end
    local after = sb:stats()
    assert.equal(before.requests, after.requests)
    assert.equal(before.connections, after.connections)
  end)

  it("refuses an add through a book in the log phase before the intent is recorded", function()
    local before = sb:stats()
    get("/phase/log_add")
    local outcome = result("log_add")
    refused(outcome, "log")
    assert.is_false(outcome.recorded, "the book recorded an intent that can never be sent")
    assert.equal(before.requests, sb:stats().requests)
  end)
end)
