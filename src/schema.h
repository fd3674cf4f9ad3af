/*
 * schema.h: integer and money fidelity (schema.c), the C twin of lua/smm/normalize.lua. Used by
 * decode.c (after a cjson decode) and reader.c (while it reads); needs only Lua.
 */
#ifndef SMM_SCHEMA_H
#define SMM_SCHEMA_H

#include <stddef.h>

#include "compat.h"

#define SMM_2POW53 9007199254740992.0

/* The type a schema gives a field (schema[field]). */
enum { SMM_T_NONE, SMM_T_INTEGER, SMM_T_MONEY, SMM_T_BOOLEAN, SMM_T_TEXT };

/* Where a schema's records are, by its layout marker schema[1]: none, the elements of a
 * top-level array (the service list); "by_id", the values of a top-level object keyed by ids
 * (statuses of many orders); "record", the top-level object itself (a balance, one order). */
enum { SMM_LAYOUT_NONE, SMM_LAYOUT_LIST, SMM_LAYOUT_BY_ID, SMM_LAYOUT_RECORD };

/* Keys whose type code a walk or a read remembers (past that, the schema is asked). */
#define SMM_KEY_CACHE 32

/* 1 when the value at idx is a valid schema: a table of field name -> "integer" | "money" |
 * "boolean" | "text", with at most a layout marker at [1]. */
int smm_schema_valid(lua_State *L, int idx);

/* The layout of the marker at idx (schema[1], pushed by the caller): SMM_LAYOUT_*. */
int smm_schema_layout(lua_State *L, int idx);

/* The type code (SMM_T_*) the schema at schema_idx gives the key at stack index key (< 0). */
int smm_schema_code(lua_State *L, int schema_idx, int key);

/* The value at the top normalised as type `code` says: 0 (keep it) or 1 (it pushed the new
 * value, nil meaning remove the field). */
int smm_schema_normalize(lua_State *L, int code);

/* normalize.lua's integer() of the value at idx: 0 (keep it) or 1 (it pushed the new value). */
int smm_norm_integer(lua_State *L, int idx);

/* The records of the decoded value at the top (a table) normalised by the schema at
 * schema_idx as its layout says, in place ("by_id" replaces the value). */
void smm_schema_apply(lua_State *L, int schema_idx, int layout);

/* Lua 5.3+: every float in the table at idx (and below, to the depth cjson allows) with an
 * exact integer value within +-2^53 becomes an integer. Nothing to do on 5.1/LuaJIT. */
#if LUA_VERSION_NUM >= 503
void smm_integerize(lua_State *L, int idx, int depth);
#else
#define smm_integerize(L, idx, depth) ((void)0)
#endif

#endif
