/*
 * internal.h: the parts of smm.core that need no libcurl: the C buffer, form encoding and
 * answer decoding. client.h includes it; the fuzz harnesses in fuzz/ include only this and
 * link form.c, decode.c and buffer.c directly, so they exercise the very code the module
 * runs without going through HTTP. Nothing here is exported from core.so.
 */
#ifndef SMM_INTERNAL_H
#define SMM_INTERNAL_H

#include <stddef.h>

#include "buffer.h"
#include "compat.h"

/* form.c: encodes the fields table at idx into out (reset first); raises on a bad field.
 * item > 0 names the list position in error messages (request_many). */
void smm_form_encode(lua_State *L, int idx, smm_buffer *out, int item);

/* decode.c: pushes the JSON decode function every handle uses (the decode of a private
 * lua-cjson instance, require("cjson.safe").new()). Raises when cjson is missing. */
void smm_push_decoder(lua_State *L);

/* decode.c: sets json / body / decode_error on the table at the top of the stack, decoding
 * with the function at decode_idx (from smm_push_decoder). Leaves the stack as it found it.
 * Returns 1 when it set json.
 * schema_idx != 0: a table of field name -> "integer" | "money" | "boolean" | "text" (checked
 * by smm_schema_valid); the fields it names in each record are normalised exactly as
 * lua/smm/normalize.lua's integer()/money()/boolean()/text() would, and the result gets
 * normalized = true. The records are the objects of a top-level array; when schema[1] is
 * "by_id", the object values of a top-level object keyed by ids, whose keys then become
 * integers where integer() reads them so (records keyed "" are dropped; an array root, which
 * has no ids, is decoded without the schema); when it is "record", the top-level object itself.
 * A UTF-8 byte order mark before the JSON is skipped. */
int smm_decode_body(lua_State *L, int decode_idx, int schema_idx, const char *p, size_t n);

/* decode.c: 1 when the value at idx is a valid schema for smm_decode_body. */
int smm_schema_valid(lua_State *L, int idx);

#endif
