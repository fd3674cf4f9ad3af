-- Random hex for names that must not repeat across processes and machines: a generated order ref
-- (client.lua), a sync round's lease token (book/sync.lua). From /dev/urandom; without it, from
-- what this process knows of the moment (a table's address, the clocks), which is unlikely, not
-- certain, to repeat.
local M = {}

-- syntax: text = random.hex(bytes)   -- 2 * bytes hex digits
function M.hex(bytes)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(bytes)
  if f then f:close() end
  if not raw or #raw < bytes then
    raw = tostring({}) .. os.clock() .. os.time() .. math.random()
    return (raw:gsub("[^%w]", "")):sub(-bytes * 2)
  end
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

return M
