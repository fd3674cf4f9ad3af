-- gzip and zlib bodies inflated through LuaJIT's FFI and the zlib that nginx itself links, so
-- the cosocket transport can accept compressed answers (a 10,000-service list shrinks about
-- tenfold). Unavailable outside LuaJIT or without libz: M.available is then false.
local M = { available = false }

local ok_ffi, ffi = pcall(require, "ffi")
if not ok_ffi then return M end

local ok_cdef = pcall(ffi.cdef, [[
typedef struct smm_z_stream_s {
  const unsigned char *next_in; unsigned avail_in; unsigned long total_in;
  unsigned char *next_out; unsigned avail_out; unsigned long total_out;
  const char *msg; void *state;
  void *zalloc; void *zfree; void *opaque;
  int data_type; unsigned long adler; unsigned long reserved;
} smm_z_stream;
const char *zlibVersion(void);
int inflateInit2_(smm_z_stream *strm, int windowBits, const char *version, int stream_size);
int inflate(smm_z_stream *strm, int flush);
int inflateEnd(smm_z_stream *strm);
]])
if not ok_cdef then return M end

local zlib
for _, name in ipairs{ "z", "libz.so.1" } do
  local ok, lib = pcall(ffi.load, name)
  if ok then zlib = lib break end
end
if not zlib then return M end

local Z_OK, Z_STREAM_END, Z_BUF_ERROR = 0, 1, -5
local CHUNK = 65536
M.available = true

-- body (gzip or zlib) -> inflated string, or nil, "too_large" when it would exceed `limit`
-- bytes, or nil, message for a body that is not valid compressed data.
-- A body cut short (its gzip trailer, CRC-32 and length, or its deflate data) is inflated as far
-- as it goes, as libcurl does: the two transports follow one rule, and the JSON decoder refuses
-- what is not whole (an answer cut in its data; one cut only in its trailer is all there).
function M.inflate(body, limit)
  local stream = ffi.new("smm_z_stream")
  -- 15 + 32: the largest window, and gzip or zlib headers recognised alike
  if zlib.inflateInit2_(stream, 15 + 32, zlib.zlibVersion(), ffi.sizeof(stream)) ~= Z_OK then
    return nil, "cannot start inflating"
  end
  local input = ffi.cast("const unsigned char *", body)
  stream.next_in, stream.avail_in = input, #body
  local out = ffi.new("unsigned char[?]", CHUNK)
  local parts, total = {}, 0
  while true do
    stream.next_out, stream.avail_out = out, CHUNK
    local rc = zlib.inflate(stream, 0)
    local produced = CHUNK - stream.avail_out
    total = total + produced
    if total > limit then
      zlib.inflateEnd(stream)
      return nil, "too_large"
    end
    if produced > 0 then parts[#parts + 1] = ffi.string(out, produced) end
    if rc == Z_STREAM_END then break end
    -- out of input before the end: cut short (see above)
    if stream.avail_in == 0 and produced == 0 and (rc == Z_OK or rc == Z_BUF_ERROR) then break end
    if rc ~= Z_OK and not (rc == Z_BUF_ERROR and produced > 0) then
      local message = stream.msg ~= nil and ffi.string(stream.msg) or ("zlib error " .. rc)
      zlib.inflateEnd(stream)
      return nil, message
    end
  end
  zlib.inflateEnd(stream)
  return table.concat(parts)
end

return M
