/*
 * decode.h: an answer body -> Lua values (decode.c). Needs only Lua and lua-cjson, no
 * libcurl: the fuzz harnesses in fuzz/ include it and link decode.c, reader.c and schema.c
 * directly, so they exercise the very code the module runs without going through HTTP.
 */
#ifndef SMM_DECODE_H
#define SMM_DECODE_H

#include <stddef.h>

#include "compat.h"
#include "schema.h"

/* Pushes the JSON decode function every handle uses (the decode of a private lua-cjson
 * instance, require("cjson.safe").new()). Raises when cjson is missing. */
void smm_push_decoder(lua_State *L);

/* Sets json / body / decode_error on the table at the top of the stack, decoding with the
 * function at decode_idx (from smm_push_decoder). Leaves the stack as it found it. Returns 1
 * when it set json.
 * schema_idx != 0: a table of field name -> "integer" | "money" | "boolean" | "text" (checked
 * by smm_schema_valid); the fields it names in each record are normalised exactly as
 * lua/smm/normalize.lua's integer()/money()/boolean()/text() would, and the result gets
 * normalized = true. The records are the objects of a top-level array; when schema[1] is
 * "by_id", the object values of a top-level object keyed by ids, whose keys then become
 * integers where integer() reads them so (records keyed "" are dropped; an array root, which
 * has no ids, is decoded without the schema); when it is "record", the top-level object itself.
 * A UTF-8 byte order mark before the JSON is skipped. */
int smm_decode_body(lua_State *L, int decode_idx, int schema_idx, const char *p, size_t n);

#endif
