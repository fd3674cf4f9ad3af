-- TLS: verification is on by default. A self-signed certificate made at test time, nginx
-- terminating TLS in front of the sandbox: the default client refuses it (nothing reaches
-- the panel), ssl_verify = false and cainfo = <that certificate> reach it.
local env = require "helpers.env"
local plain = require "helpers.plain_nginx"
local smm = require "smm"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function run(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local have_nginx = plain.available()
local have_openssl = run("command -v openssl >/dev/null 2>&1")

describe("TLS", function()
  local sb, ng, dir, cert

  setup(function()
    assert(have_openssl, "openssl not found: apt-get install openssl")
    assert(have_nginx, "nginx not found: apt-get install nginx")
    dir = assert(io.popen("mktemp -d /tmp/smm-tls.XXXXXX")):read("*l")
    cert = dir .. "/cert.pem"
    assert(run("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost " ..
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 -keyout " .. quote(dir .. "/key.pem") ..
      " -out " .. quote(cert) .. " >/dev/null 2>&1"), "openssl req failed")
    run("chmod 755 " .. quote(dir) .. " && chmod 644 " .. quote(dir) .. "/*.pem")
    sb = env.sandbox()
    ng = plain.start{ hosts = { "127.0.0.1", "127.0.0.2" }, ssl = { cert = cert, key = dir .. "/key.pem" }, server = [[
    location = /api/v2 { proxy_pass ]] .. sb.base .. [[/api/v2; proxy_http_version 1.1;
                         proxy_set_header Connection ""; }
    location = /static { default_type application/json;
                         return 200 '{"balance":"1.00","currency":"USD"}'; }
]] }
  end)

  teardown(function()
    if ng then ng:stop() end
    if sb then sb:stop() end
    if dir then run("rm -rf " .. quote(dir)) end
  end)

  before_each(function() sb:reset() end)

  local function client(opts)
    local o = { url = "https://127.0.0.1:" .. ng.port .. "/api/v2", key = env.KEY, retries = 0,
                timeout = 5000 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return smm.new(o)
  end

  it("a client with default options refuses the self-signed certificate: network, not sent", function()
    local c = client()
    local b, err = c:balance()
    c:close()
    assert.is_nil(b)
    assert.equal("network", err.kind)
    assert.is_false(err.sent)
    assert.is_false(err.ambiguous)
    assert.equal(0, env.count(sb))
    assert.is_false(env.leaks_key(err))
  end)

  it("an add refused by TLS is not ambiguous, and nothing reached the panel", function()
    local c = client{ retries = 2, retry_base = 1 }
    local res, err = c:add{ service = 1, link = "https://x.test/tls", quantity = 100 }
    c:close()
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_false(err.sent)
    assert.is_false(err.ambiguous)
    assert.equal(0, env.count(sb))
    assert.equal(0, sb:stats().orders)
  end)

  it("ssl_verify = false reaches the panel", function()
    local c = client{ ssl_verify = false }
    local b, err = c:balance()
    c:close()
    assert.is_nil(err and tostring(err))
    assert.equal("100.00", b.balance)
    assert.equal(1, env.count(sb, "balance"))
  end)

  it("cainfo = the certificate reaches the panel, host name checked", function()
    local c = client{ cainfo = cert }
    local b, err = c:balance()
    assert.is_nil(err and tostring(err))
    assert.equal("100.00", b.balance)
    local res
    res, err = c:add{ service = 1, link = "https://x.test/tls", quantity = 100 }
    assert.is_nil(err and tostring(err))
    assert.is_true(env.is_integer(res.order))
    c:close()
    assert.equal(1, sb:stats().orders)
    -- the same certificate under a name it was not issued for (localhost is; 127.0.0.2 not)
    local other = smm.new{ url = "https://127.0.0.2:" .. ng.port .. "/api/v2", key = env.KEY,
                           cainfo = cert, retries = 0, timeout = 2000 }
    local _, err2 = other:balance()
    other:close()
    assert.is_table(err2)
    assert.equal("network", err2.kind)
    assert.is_false(err2.sent)
    assert.truthy(err2.message:lower():find("ssl", 1, true) or err2.message:lower():find("certificate", 1, true), err2.message)
  end)

  it("a static answer over TLS with cainfo", function()
    local c = smm.new{ url = "https://localhost:" .. ng.port .. "/static", key = env.KEY,
                       cainfo = cert, retries = 0 }
    local b, err = c:balance()
    c:close()
    assert.is_nil(err and tostring(err))
    assert.equal("1.00", b.balance)
  end)
end)
