-- A cold review of issue 10's fixes, the command line's share: the batch lock. Taking it was two
-- steps (mkdir, then the pid file), so a run arriving in between found no pid, broke the lock
-- and took it while its holder went on. The lock now appears whole (a directory with its pid
-- file, renamed into place), a young lock without a pid is held, and a stale one is renamed
-- away before it is replaced. Real `smm` processes against a hostile panel, and the journal
-- module itself.
local cli = require "helpers.cli"
local hostile = require "helpers.hostile"
local journal = require "smm.cli.journal"

describe("trust review: the batch lock", function()
  local srv, root, dir, n

  local function smm(words)
    return cli.run(words, { cwd = dir, env = { SMM_API_URL = srv.url, SMM_API_KEY = "k3yk3yk3y",
                                               HOME = root, XDG_CONFIG_HOME = root .. "/xdg" } })
  end

  local function exists(path)
    return os.rename(path, path) ~= nil
  end

  local function sh(command)
    local ok = os.execute(command)
    return ok == true or ok == 0
  end

  -- what is left beside the CSV apart from the CSV and its journal
  local function strays()
    local p = io.popen("ls -A " .. cli.quote(dir))
    local left = {}
    for name in p:lines() do
      if name ~= "b.csv" and name ~= "b.csv.journal" then left[#left + 1] = name end
    end
    p:close()
    return left
  end

  setup(function()
    srv = hostile.start{ actions = {
      services = hostile.json('[{"service":1,"name":"x","rate":"1.00","min":10,"max":10000,' ..
        '"type":"Default","category":"c"}]'),
      balance = hostile.json('{"balance":"100.00","currency":"USD"}') } }
    root = cli.tmpdir()
    n = 0
  end)

  teardown(function()
    srv:stop()
    os.execute("rm -rf " .. cli.quote(root))
  end)

  before_each(function()
    n = n + 1
    dir = root .. "/t" .. n
    os.execute("mkdir -p " .. cli.quote(dir))
    cli.write_file(dir .. "/b.csv", "service,link,quantity\n1,https://x.example/1,100\n")
  end)

  it("a lock directory without its pid file yet is held: the run stops and leaves it", function()
    local lock = dir .. "/b.csv.journal.lock"
    assert.is_true(sh("mkdir " .. cli.quote(lock)))
    local r = smm("batch b.csv --dry-run")
    assert.is_not.equal(0, r.code, r.out .. r.err)
    assert.truthy(r.err:find("lock", 1, true), r.err)
    assert.is_true(exists(lock), "the lock was broken")
  end)

  it("a lock directory without a pid file that is minutes old is stale: taken over", function()
    local lock = dir .. "/b.csv.journal.lock"
    assert.is_true(sh("mkdir " .. cli.quote(lock) .. " && touch -d '5 minutes ago' " .. cli.quote(lock)))
    local r = smm("batch b.csv --dry-run")
    assert.equal(0, r.code, r.out .. r.err)
    assert.same({}, strays())
  end)

  it("a lock of a dead process is taken over, and nothing is left behind", function()
    local lock = dir .. "/b.csv.journal.lock"
    local p = io.popen("sh -c 'echo $$'")
    local dead = p:read("*l")
    p:close()
    assert.is_true(sh("mkdir " .. cli.quote(lock) .. " && echo " .. dead .. " >" .. cli.quote(lock .. "/pid")))
    local r = smm("batch b.csv --dry-run")
    assert.equal(0, r.code, r.out .. r.err)
    assert.same({}, strays())
  end)

  it("a lock of a live process is kept", function()
    local lock = dir .. "/b.csv.journal.lock"
    local p = io.popen("sleep 30 >/dev/null 2>&1 & echo $!")
    local live = p:read("*l")
    p:close()
    assert.is_true(sh("mkdir " .. cli.quote(lock) .. " && echo " .. live .. " >" .. cli.quote(lock .. "/pid")))
    local r = smm("batch b.csv --dry-run")
    os.execute("kill " .. live)
    assert.is_not.equal(0, r.code, r.out .. r.err)
    assert.truthy(r.err:find("locked by smm batch PID " .. live, 1, true), r.err)
    assert.is_true(exists(lock .. "/pid"))
  end)

  it("journal.lock: the lock appears whole, a second taker is refused, unlock frees it", function()
    local path = dir .. "/b.csv.journal"
    local first = assert(journal.lock(path))
    local f = assert(io.open(path .. ".lock/pid"))
    assert.truthy(f:read("*l"):match("^%d+$"))
    f:close()
    local second, err = journal.lock(path)
    assert.is_nil(second)
    assert.truthy(err:find("locked", 1, true), err)
    journal.unlock(first)
    assert.same({}, strays())
    local again = assert(journal.lock(path))
    journal.unlock(again)
    assert.same({}, strays())
  end)
end)
