-- Splitting id lists into the requests a panel accepts (at most 100 ids each).
local M = {}

M.MAX_IDS = 100

local unpack = table.unpack or unpack
local concat, format = table.concat, string.format

-- ids (already unique) -> { {ids 1..100}, {ids 101..200}, ... }
function M.chunks(ids, size)
  local chunks, n = {}, #ids
  for first = 1, n, size do
    chunks[#chunks + 1] = { unpack(ids, first, math.min(first + size - 1, n)) }
  end
  return chunks
end

-- ids (positive whole numbers) -> "1,2,3". Lua 5.3+ integers are written exactly by
-- table.concat; 5.1/LuaJIT numbers would be written with %.14g there (1e+15), so each goes
-- through %d.
M.join = math.type and function(ids)
  return concat(ids, ",")
end or function(ids)
  local parts = {}
  for i = 1, #ids do parts[i] = format("%d", ids[i]) end
  return concat(parts, ",")
end

return M
