/*
 * decode.c: an answer body -> Lua values, and the dispatch between the two readers. The direct
 * reader (reader.c) reads the shapes most answers have, normalising as it reads; everything
 * else goes through a private lua-cjson instance (require("cjson.safe").new(), made at core.new
 * and kept in the handle's user value), called with lua_pcall, then through schema.c: on Lua
 * 5.3+ integral floats within +-2^53 become integers (cjson decodes every number as a float),
 * and a request's schema is applied to the records. Both paths give the same values; built
 * with -DSMM_NO_DIRECT_READER (make SMM_DIRECT_READER=0) every answer takes the cjson path.
 * What is not JSON is kept as the result's body.
 */
#include <string.h>

#include "decode.h"
#include "reader.h"
#include "schema.h"

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

/* A UTF-8 byte order mark: some panels (files saved by Windows editors, PHP includes) write one
 * before the JSON. It is no part of the JSON (cjson refuses it): decoding starts after it. */
#define SMM_BOM "\xEF\xBB\xBF"

int smm_decode_body(lua_State *L, int decode_idx, int schema_idx, const char *p, size_t n) {
  int result = lua_gettop(L), layout = SMM_LAYOUT_NONE, walked = 0;
  const char *text;
  size_t len;
  if (p == NULL) p = "";
  text = p, len = n; /* the JSON; the body stays whole for a not_json result */
  if (len >= 3 && memcmp(text, SMM_BOM, 3) == 0) text += 3, len -= 3;
  if (schema_idx != 0) {
    size_t first = 0;
    while (first < len && (text[first] == ' ' || text[first] == '\t' || text[first] == '\n' ||
                           text[first] == '\r'))
      first++;
    lua_rawgeti(L, schema_idx, 1);
    layout = smm_schema_layout(L, -1);
    lua_pop(L, 1);
    /* A "by_id" answer given as an array has no ids, only positions: it is decoded without the
     * schema, and normalize.orders reads it only where each element names its own id. */
    if (layout == SMM_LAYOUT_BY_ID && first < len && text[first] == '[') {
      schema_idx = 0;
      layout = SMM_LAYOUT_NONE;
    }
  }
#ifndef SMM_NO_DIRECT_READER
  if (smm_read_direct(L, text, len, schema_idx, layout)) {
    /* Its numbers are integers already, and its records were normalised (and keyed by id) as
     * they were read (a flat object root holds no records of a list). */
    walked = 1;
  } else
#endif
  if (!looks_like_json(text, len)) {
    goto not_json;
  } else {
    lua_pushvalue(L, decode_idx);
    lua_pushlstring(L, text, len);
    if (lua_pcall(L, 1, 2, 0) != 0) {
      /* cjson.safe does not raise on bad JSON; this is e.g. a memory error. */
      lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "decode failed");
      lua_setfield(L, result, "decode_error");
      lua_pop(L, 1);
      goto not_json;
    }
    if (lua_isnil(L, -2)) {
      lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid JSON");
      lua_setfield(L, result, "decode_error");
      lua_pop(L, 2);
      goto not_json;
    }
    lua_pop(L, 1); /* the nil error */
    if (schema_idx == 0 && lua_type(L, -1) == LUA_TTABLE) smm_integerize(L, lua_gettop(L), 1);
  }
  if (schema_idx != 0 && lua_type(L, -1) == LUA_TTABLE) {
    if (!walked) smm_schema_apply(L, schema_idx, layout);
    lua_pushboolean(L, 1);
    lua_setfield(L, result, "normalized");
  }
  lua_setfield(L, result, "json");
  return 1;
not_json:
  lua_pushlstring(L, p, n);
  lua_setfield(L, result, "body");
  return 0;
}
