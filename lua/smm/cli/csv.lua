-- CSV as RFC 4180 has it: fields separated by commas, records by CRLF or LF; a field in
-- double quotes may hold commas, line breaks and doubled quotes (""). A UTF-8 byte order mark
-- is dropped; blank lines are skipped. Every record remembers the line it starts on.
local M = {}

-- text -> { { field, ..., line = n }, ... } or nil, "line N: message", N
function M.parse(s)
  if s:sub(1, 3) == "\239\187\191" then s = s:sub(4) end
  local records, i, n, line = {}, 1, #s, 1
  while i <= n do
    local rec, rec_line = {}, line
    while true do
      local field
      if s:sub(i, i) == '"' then
        local buf, open_line = {}, line
        i = i + 1
        while true do
          local j = s:find('"', i, true)
          if not j then
            return nil, "line " .. open_line .. ": a quoted field is never closed", open_line
          end
          local chunk = s:sub(i, j - 1)
          buf[#buf + 1] = chunk
          for _ in chunk:gmatch("\n") do line = line + 1 end
          if s:sub(j + 1, j + 1) == '"' then
            buf[#buf + 1] = '"'
            i = j + 2
          else
            i = j + 1
            break
          end
        end
        field = table.concat(buf)
        local c = s:sub(i, i)
        if c ~= "," and c ~= "\n" and c ~= "\r" and c ~= "" then
          return nil, "line " .. line .. ": text after a closing quote (a quote inside a " ..
            "quoted field must be doubled: \"\")", line
        end
      else
        local j = s:find('[,\r\n"]', i)
        if j and s:sub(j, j) == '"' then
          return nil, "line " .. line .. ": a quote inside an unquoted field (quote the whole " ..
            "field and double the quote)", line
        end
        field = s:sub(i, (j or n + 1) - 1)
        i = j or n + 1
      end
      rec[#rec + 1] = field
      local c = s:sub(i, i)
      if c == "," then
        i = i + 1
        if i > n then rec[#rec + 1] = "" break end
      elseif c == "\r" then
        i = i + ((s:sub(i + 1, i + 1) == "\n") and 2 or 1)
        line = line + 1
        break
      elseif c == "\n" then
        i = i + 1
        line = line + 1
        break
      else
        break
      end
    end
    rec.line = rec_line
    if not (#rec == 1 and rec[1] == "") then records[#records + 1] = rec end
  end
  return records
end

local function quote(v)
  v = v == nil and "" or tostring(v)
  if v:find('[,"\r\n]') or v:find("^%s") or v:find("%s$") then
    return '"' .. v:gsub('"', '""') .. '"'
  end
  return v
end

-- One record as a CSV line (CRLF, as the RFC says).
function M.line(fields)
  local parts = {}
  for i = 1, #fields do parts[i] = quote(fields[i]) end
  return table.concat(parts, ",") .. "\r\n"
end

-- Writes a whole file atomically: a temporary beside it, then rename.
function M.write_file(path, header, rows)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(M.line(header))
  for _, row in ipairs(rows) do f:write(M.line(row)) end
  local ok, werr = f:close()
  if not ok then return nil, werr end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then return nil, rerr end
  return true
end

return M
