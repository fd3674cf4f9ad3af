/*
 * decode_fuzzer.c: arbitrary bytes as an HTTP answer body -> smm_decode_body (src/decode.c)
 * with the decoder every handle uses (smm_push_decoder: a private lua-cjson instance), the
 * same call smm_push_result makes for a real answer. Checks:
 *   - no crash, no leak (ASan/LSan), the Lua stack exactly as it was;
 *   - the result table holds json (a table) or body (the input, byte for byte) plus
 *     decode_error when the input looked like JSON and did not decode, and nothing else;
 *   - json is the same tree an independent plain cjson decode gives (same keys, same values,
 *     a leading UTF-8 BOM left out of both),
 *     numbers equal), and no float with an integral value within +-2^53 is left in it: ids
 *     and counts come back as Lua integers; no integer outside +-2^53 was made up;
 *   - Lua memory does not grow across inputs (checked every 2048 inputs after a full GC).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_lua.h"
#include "decode.h"

static const char checker[] =
    "local plain = require('cjson.safe').new()\n"
    "local mtype, floor = math.type, math.floor\n"
    "local LIMIT = 2^53\n"
    "local function fail(path, why) error(path .. ': ' .. why, 0) end\n"
    "local function same(a, b, path)\n"
    "  if type(a) ~= type(b) then fail(path, type(a) .. ' vs ' .. type(b)) end\n"
    "  if type(a) == 'number' then\n"
    "    if a ~= b and (a == a or b == b) then fail(path, tostring(a) .. ' vs ' .. tostring(b)) end\n"
    "    if mtype(a) == 'float' and a == a and a >= -LIMIT and a <= LIMIT and floor(a) == a then\n"
    "      fail(path, 'integral float left: ' .. tostring(a))\n"
    "    end\n"
    "    if mtype(a) == 'integer' and (a < -LIMIT or a > LIMIT) then\n"
    "      fail(path, 'integer out of range: ' .. tostring(a))\n"
    "    end\n"
    "  elseif type(a) ~= 'table' and a ~= b then\n"
    "    fail(path, 'values differ')\n"
    "  end\n"
    "end\n"
    /* An explicit work list, not recursion: cjson allows 1000 levels. */
    "local function walk(a, b)\n"
    "  local todo = { a, b, '$' }\n"
    "  while #todo > 0 do\n"
    "    local path = table.remove(todo); local y = table.remove(todo); local x = table.remove(todo)\n"
    "    same(x, y, path)\n"
    "    if type(x) == 'table' then\n"
    "      if getmetatable(x) ~= getmetatable(y) then fail(path, 'metatables differ') end\n"
    "      for k, v in pairs(y) do\n"
    "        local w = rawget(x, k)\n"
    "        if w == nil then fail(path, 'key missing: ' .. tostring(k)) end\n"
    "        todo[#todo + 1] = w; todo[#todo + 1] = v; todo[#todo + 1] = path .. '.' .. tostring(k)\n"
    "      end\n"
    "      for k in pairs(x) do\n"
    "        if rawget(y, k) == nil then fail(path, 'extra key: ' .. tostring(k)) end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* a UTF-8 BOM before the JSON is skipped by the decode (the body keeps it) */
    "return function(result, input)\n"
    "  local text = input:sub(1, 3) == '\\239\\187\\191' and input:sub(4) or input\n"
    "  local looks = text:find('^[ \\t\\r\\n]*[{%[]') ~= nil\n"
    "  for k in pairs(result) do\n"
    "    if k ~= 'json' and k ~= 'body' and k ~= 'decode_error' then fail('result', 'extra field ' .. tostring(k)) end\n"
    "  end\n"
    "  local v, err = plain.decode(text)\n"
    "  if result.json ~= nil then\n"
    "    if not looks then fail('result', 'json for a body that does not look like JSON') end\n"
    "    if result.body ~= nil or result.decode_error ~= nil then fail('result', 'json with body or error') end\n"
    "    if type(result.json) ~= 'table' then fail('result', 'json is a ' .. type(result.json)) end\n"
    "    if v == nil then fail('result', 'plain cjson refused it: ' .. tostring(err)) end\n"
    "    walk(result.json, v)\n"
    "  else\n"
    "    if result.body ~= input then fail('result', 'body is not the input') end\n"
    "    if looks then\n"
    "      if type(result.decode_error) ~= 'string' then fail('result', 'no decode_error') end\n"
    "      if v ~= nil then fail('result', 'plain cjson decoded it: ' .. result.decode_error) end\n"
    "    elseif result.decode_error ~= nil then\n"
    "      fail('result', 'decode_error for a body that does not look like JSON')\n"
    "    end\n"
    "  end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  int base;

  if (L == NULL) {
    L = fuzz_new_state();
    smm_push_decoder(L);                         /* 1: the handle's decode */
    fuzz_load(L, "decode_checker", checker);     /* 2: the checker */
    if (lua_gettop(L) != 2) FUZZ_FAIL("setup left %d values", lua_gettop(L));
  }
  base = lua_gettop(L);

  lua_createtable(L, 0, 8); /* the result table, as smm_push_result makes it */
  smm_decode_body(L, 1, 0, (const char *)data, size);
  if (lua_gettop(L) != base + 1)
    FUZZ_FAIL("smm_decode_body changed the stack by %d", lua_gettop(L) - (base + 1));

  lua_pushvalue(L, 2);
  lua_insert(L, -2);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) FUZZ_FAIL("%s", lua_tostring(L, -1));
  lua_settop(L, base);

  fuzz_check_heap(L);
  return 0;
}
