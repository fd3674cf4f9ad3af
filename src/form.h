/*
 * form.h: a table of fields -> an application/x-www-form-urlencoded body (form.c). Needs only
 * Lua and the C buffer; fuzz/form_fuzzer.c links form.c directly.
 */
#ifndef SMM_FORM_H
#define SMM_FORM_H

#include "buffer.h"
#include "compat.h"

/* Encodes the fields table at idx into out (reset first); raises on a bad field. item > 0
 * names the list position in error messages (request_many). */
void smm_form_encode(lua_State *L, int idx, smm_buffer *out, int item);

#endif
