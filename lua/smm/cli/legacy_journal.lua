-- The JSON-lines journal of smm batch before the order book (FILE.csv.journal beside the CSV),
-- read once and imported into the book, so that a batch half done by an older smm is resumed
-- without placing a row twice:
--
--   {"t":"open","csv":"orders.csv","panel":"http://host/api/v2","at":...}
--   {"t":"intent","line":5,"hash":"9f1c..."}      the add was about to be sent
--   {"t":"done","line":5,"hash":...,"order":23501,"price":"0.90"}
--   {"t":"failed" | "ambiguous" | "resend","line":5,"hash":...,"error":"..."}
--
-- A row whose last record is "done" is recorded in the book as placed with its order id; one
-- left at "intent" or "ambiguous" as in doubt (`smm doubt` settles it); "failed" and "resend"
-- (not placed) are not recorded, so the batch sends them. The file is then renamed to
-- FILE.csv.journal.imported: kept for the record, never read again.
local cjson = require "cjson"
local errors = require "smm.errors"

local M = {}

local tointeger = math.tointeger or function(x)
  if type(x) == "number" and x == math.floor(x) and x > -2 ^ 53 and x < 2 ^ 53 then return x end
  return nil
end

function M.path(csv_path) return csv_path .. ".journal" end

local function exists(path)
  return os.rename(path, path) ~= nil
end
M.exists = exists

-- -> { open = the open record or nil, rows = { [line] = { hash =, state =, order =, price = } },
--      torn = n } or nil, message
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, tostring(err) end
  local r = { rows = {}, torn = 0 }
  local n = 0
  for raw in f:lines() do
    n = n + 1
    local ok, rec = pcall(cjson.decode, raw)
    if not ok or type(rec) ~= "table" then
      r.torn = r.torn + 1 -- cut by a power failure: never synced, so never acted on
    elseif rec.t == "open" then
      r.open = r.open or rec
    elseif type(rec.line) == "number" and tointeger(rec.line) then
      local line = tointeger(rec.line)
      local row = r.rows[line] or {}
      if row.hash and rec.hash ~= row.hash then
        f:close()
        return nil, path .. ":" .. n .. ": line " .. line .. " was journaled with two different contents"
      end
      row.hash = rec.hash
      if rec.t == "done" then
        row.state, row.order, row.price = "done", tointeger(rec.order), rec.price
      elseif (rec.t == "failed" or rec.t == "ambiguous" or rec.t == "intent" or rec.t == "resend") and
          row.state ~= "done" then
        row.state = rec.t
      end
      r.rows[line] = row
    end
  end
  f:close()
  return r
end

-- Records the journal's rows in the book. rows_by_line: the batch's checked rows (ref, clean,
-- price, hash); panel: the client's printable URL. Returns { placed =, doubt = } or nil, err
-- (an smm book error).
function M.import(book, panel, journal, rows_by_line)
  local counts = { placed = 0, doubt = 0 }
  local lines = {}
  for line in pairs(journal.rows) do lines[#lines + 1] = line end
  table.sort(lines)
  for _, line in ipairs(lines) do
    local j, row = journal.rows[line], rows_by_line[line]
    local placed = j.state == "done" and j.order
    local doubt = j.state == "intent" or j.state == "ambiguous"
    if placed or doubt then
      local intent = { panel = panel, ref = row.ref, fields = row.clean, quote = j.price or row.price }
      local claim, err = book:intent(intent)
      if not claim then
        -- imported before (a run stopped after part of the import): already in doubt is fine
        if not (err.code == "in_doubt" and doubt) then return nil, err end
      elseif claim.claimed then
        local ok
        if placed then
          ok, err = book:outcome(intent, { order = j.order })
        else
          ok, err = book:outcome(intent, nil, errors.new({ kind = "network", ambiguous = true,
            message = "imported from the old batch journal: the add was sent and no answer was recorded" }))
        end
        if not ok then return nil, err end
      end
      if placed then counts.placed = counts.placed + 1 else counts.doubt = counts.doubt + 1 end
    end
  end
  return counts
end

return M
