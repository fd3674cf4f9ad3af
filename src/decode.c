/*
 * decode.c: a response body -> Lua values. Decoding goes through a private lua-cjson instance
 * (require("cjson.safe").new(), made at core.new and kept in the handle's user value), called
 * with lua_pcall. Then, on Lua 5.3+, every float with an exact integer value and |x| <= 2^53 is
 * replaced by a Lua integer, because cjson decodes all numbers as floats and ids such as
 * {"order": 23501} must come back as integers (23501, not 23501.0).
 */
#include <string.h>

#include "internal.h"

/* cjson.safe refuses nesting deeper than 1000 by default; never walk deeper than that. */
#define SMM_DECODE_MAX_DEPTH 1000

#if LUA_VERSION_NUM >= 503
#define SMM_2POW53 9007199254740992.0

static int integral_float(lua_State *L, int idx, lua_Integer *out) {
  lua_Number x;
  if (lua_type(L, idx) != LUA_TNUMBER || lua_isinteger(L, idx)) return 0;
  x = lua_tonumber(L, idx);
  if (!(x >= -SMM_2POW53 && x <= SMM_2POW53)) return 0; /* also rejects NaN */
  *out = (lua_Integer)x;
  return (lua_Number)*out == x;
}

/* Keys need no work: Lua 5.3+ already normalises a float key with an integral value to an
 * integer key when it is stored (and cjson only makes string keys and array indices). Changing
 * the value of an existing key during lua_next is allowed. */
static void integerize(lua_State *L, int idx, int depth) {
  if (depth > SMM_DECODE_MAX_DEPTH) return;
  luaL_checkstack(L, 4, "smm.core: decoded JSON too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_Integer i;
    if (integral_float(L, -1, &i)) {
      lua_pushvalue(L, -2);
      lua_pushinteger(L, i);
      lua_rawset(L, idx);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      integerize(L, lua_gettop(L), depth + 1);
    }
    lua_pop(L, 1);
  }
}
#endif

static int looks_like_json(const char *p, size_t n) {
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  return i < n && (p[i] == '{' || p[i] == '[');
}

void smm_push_decoder(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "cjson.safe");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  if (lua_type(L, -1) != LUA_TFUNCTION) luaL_error(L, "smm.core: cjson.safe.new not found");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode");
  if (lua_type(L, -1) != LUA_TFUNCTION) luaL_error(L, "smm.core: cjson decode not found");
  lua_replace(L, -3); /* over the module */
  lua_pop(L, 1);      /* the instance */
}

void smm_decode_body(lua_State *L, int decode_idx, const char *p, size_t n) {
  int result = lua_gettop(L);
  if (p == NULL) p = "";
  if (looks_like_json(p, n)) {
    lua_pushvalue(L, decode_idx);
    lua_pushlstring(L, p, n);
    if (lua_pcall(L, 1, 2, 0) != 0) {
      /* cjson.safe does not raise on bad JSON; this is e.g. a memory error. */
      lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "decode failed");
      lua_setfield(L, result, "decode_error");
      lua_pop(L, 1);
    } else if (!lua_isnil(L, -2)) {
      lua_pop(L, 1); /* the nil error */
#if LUA_VERSION_NUM >= 503
      if (lua_type(L, -1) == LUA_TTABLE) integerize(L, lua_gettop(L), 1);
#endif
      lua_setfield(L, result, "json");
      return;
    } else {
      lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid JSON");
      lua_setfield(L, result, "decode_error");
      lua_pop(L, 2);
    }
  }
  lua_pushlstring(L, p, n);
  lua_setfield(L, result, "body");
}
