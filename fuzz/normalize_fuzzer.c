/*
 * normalize_fuzzer.c: lua/smm/normalize.lua's integer() and money() (what every answer's ids,
 * counts and prices go through) on arbitrary strings and numbers. The first input byte picks
 * the shape; the checks (in the Lua chunk below) are the functions' documented promises:
 *   integer(s)  a decimal integer string (trimmed, optional sign, optional ".000") within
 *               +-2^53 -> that Lua integer; blank -> nil; anything else -> s unchanged
 *   integer(x)  a number -> a number equal to x (an integer when x is integral and fits)
 *   money(s)    a plain decimal string -> that string, trimmed (the same string when it had no
 *               surrounding space); an e-notation decimal -> a plain decimal of the same value;
 *               blank -> nil; anything else -> s unchanged
 *   money(x)    a finite number -> a plain decimal string that reads back as exactly x
 * and neither ever raises.
 *
 * It found four bugs in money()'s e-notation handling (a mantissa with two points raised, a
 * leading '+' stayed in e-notation, '.e5' became '0', and a huge exponent built a string of
 * that many zeros); the checks below hold them fixed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_lua.h"

static const char checker[] =
    "local N = require('smm.normalize')\n"
    "local mtype, floor = math.type, math.floor\n"
    "local LIMIT = 2^53\n"
    "local function fail(fmt, ...) error(string.format(fmt, ...), 0) end\n"
    "local function trim(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end\n"
    "local PLAIN = '^%-?%d+%.?%d*$'\n" /* what money() promises to return for a number */
    /* e-notation that money() turns into a plain decimal: one optional sign, digits with at
     * most one point (at least one digit), an exponent within +-400 (beyond, a 12-byte
     * '1e999999999' would become a billion zeros: such strings come back unchanged) */
    "local function e_decimal(t)\n"
    "  local m, e = t:match('^[+-]?(%d*%.?%d*)[eE]([+-]?%d+)$')\n"
    "  return m and m:find('%d') and math.abs(tonumber(e)) <= 400\n"
    "end\n"
    "local function check_string(s)\n"
    "  local t = trim(s)\n"
    "  local i = N.integer(s)\n"
    "  local whole = t:match('^([+-]?%d+)$') or t:match('^([+-]?%d+)%.0*$')\n"
    "  if t == '' then\n"
    "    if i ~= nil then fail('integer(%q) = %s, want nil', s, tostring(i)) end\n"
    "  elseif whole and tonumber(whole) > -LIMIT and tonumber(whole) < LIMIT then\n"
    "    local want = math.tointeger(tonumber(whole))\n"
    "    if mtype(i) ~= 'integer' or i ~= want then fail('integer(%q) = %s, want %d', s, tostring(i), want) end\n"
    "  elseif i ~= s then\n"
    "    fail('integer(%q) = %s, want the string unchanged', s, tostring(i))\n"
    "  end\n"
    "  local m = N.money(s)\n"
    "  if t == '' then\n"
    "    if m ~= nil then fail('money(%q) = %q, want nil', s, tostring(m)) end\n"
    "  elseif t:find('^[+-]?%d*%.?%d+$') or t:find('^[+-]?%d+%.$') then\n"
    "    if m ~= t then fail('money(%q) = %q, want %q', s, tostring(m), t) end\n"
    "  elseif e_decimal(t) then\n"
    "    if type(m) ~= 'string' or not m:find(PLAIN) then fail('money(%q) = %q: not a plain decimal', s, tostring(m)) end\n"
    /* as floats: '1e18' is a float, '1000000000000000000' an integer, compared exactly */
    "    local a, b = tonumber(m), tonumber(t)\n"
    "    if a then a = a + 0.0 end\n"
    "    if b then b = b + 0.0 end\n"
    "    if b and a ~= b then fail('money(%q) = %q: value changed', s, m) end\n"
    "  elseif m ~= s then\n"
    "    fail('money(%q) = %q, want the string unchanged', s, tostring(m))\n"
    "  end\n"
    "end\n"
    "local function check_number(x)\n"
    "  local i = N.integer(x)\n"
    "  if type(i) ~= 'number' or (i ~= x and x == x) then fail('integer(%s) = %s', tostring(x), tostring(i)) end\n"
    "  if x == x and floor(x) == x and math.abs(x) < LIMIT and mtype(i) ~= 'integer' then\n"
    "    fail('integer(%s) = %s, want an integer', tostring(x), tostring(i))\n"
    "  end\n"
    "  local m = N.money(x)\n"
    "  if x ~= x or x == math.huge or x == -math.huge then return end\n"
    "  if type(m) ~= 'string' or not m:find(PLAIN) then fail('money(%s) = %s: not a plain decimal', tostring(x), tostring(m)) end\n"
    "  if tonumber(m) + 0.0 ~= x + 0.0 then fail('money(%.17g) = %s: reads back as %.17g', x, m, tonumber(m)) end\n"
    "  if mtype(x) == 'integer' and m ~= string.format('%d', x) then fail('money(%d) = %s', x, m) end\n"
    "end\n"
    "return function(mode, s, x)\n"
    "  if mode == 0 then check_string(s)\n"
    "  elseif mode == 1 then check_number(x)\n"
    "  else\n"
    /* A digit string, sometimes signed, with leading zeros, a '.000' tail or spaces around. */
    "    check_string(s)\n"
    "    local t = trim(s)\n"
    "    local n = N.integer(s)\n"
    "    if t:find('^%d+$') and #t <= 15 then\n"
    "      if string.format('%d', n) ~= (t:gsub('^0+(%d)', '%1')) then fail('integer(%q) = %s: no round trip', s, tostring(n)) end\n"
    "    end\n"
    "  end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  int mode;
  if (L == NULL) {
    L = fuzz_new_state();
    fuzz_load(L, "normalize_checker", checker); /* 1 */
    fuzz_lua_coverage(L);
  }
  if (size == 0) return 0;
  mode = data[0] % 4;
  data++, size--;
  lua_pushvalue(L, 1);
  if (mode == 0 || mode == 3) { /* any string */
    lua_pushinteger(L, 0);
    lua_pushlstring(L, (const char *)data, size);
    lua_pushnil(L);
  } else if (mode == 1) { /* any double */
    double d = 0;
    memcpy(&d, data, size < sizeof d ? size : sizeof d);
    lua_pushinteger(L, 1);
    lua_pushnil(L);
    lua_pushnumber(L, d);
  } else { /* a digit string built from the bytes, or an integer */
    char s[64];
    size_t i, k = 0;
    if (size > 0 && data[0] % 5 == 0) {
      int64_t v = 0;
      memcpy(&v, data + 1, size - 1 < sizeof v ? size - 1 : sizeof v);
      lua_pushinteger(L, 1);
      lua_pushnil(L);
      lua_pushinteger(L, (lua_Integer)v);
    } else {
      if (size > 0 && data[0] % 7 == 1) s[k++] = ' ';
      if (size > 0 && data[0] % 3 == 1) s[k++] = '-';
      for (i = 1; i < size && k < 40; i++) s[k++] = (char)('0' + data[i] % 10);
      if (size > 0 && data[0] % 11 == 2) k += (size_t)snprintf(s + k, sizeof s - k, ".000");
      if (size > 0 && data[0] % 13 == 3) s[k++] = '\t';
      lua_pushinteger(L, 2);
      lua_pushlstring(L, s, k);
      lua_pushnil(L);
    }
  }
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) FUZZ_FAIL("%s", lua_tostring(L, -1));
  if (lua_gettop(L) != 1) FUZZ_FAIL("stack changed to %d", lua_gettop(L));
  return 0;
}
