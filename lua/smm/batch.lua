-- Splitting id lists into the requests a panel accepts (at most 100 ids each).
local M = {}

M.MAX_IDS = 100

-- ids (already unique) -> { {ids 1..100}, {ids 101..200}, ... }
function M.chunks(ids, size)
  local chunks = {}
  for i, id in ipairs(ids) do
    local n = math.floor((i - 1) / size) + 1
    local chunk = chunks[n]
    if not chunk then
      chunk = {}
      chunks[n] = chunk
    end
    chunk[#chunk + 1] = id
  end
  return chunks
end

return M
